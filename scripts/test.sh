#!/usr/bin/env bash
# The whole test suite: the toolchain against rust-version, formatting, lints, cargo deny, unit
# and adapter tests, and the end-to-end suite against a real RabbitMQ and a real Redis
# (started here when they are not running), then the deployment: the Kubernetes manifests
# and the compose file checked offline (scripts/k8s-test.sh), and docker-compose.yml run for
# real with 3 workers (scripts/compose-test.sh; skipped, saying why, where Docker cannot run).
# VOLLEY_SLOW=1 adds the slow fault scenarios (marked #[ignore], reported as skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  log "starting Redis on 127.0.0.1:6379"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/volley-tests.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.2; done
  log "Redis did not start"; exit 1
}

ensure_rabbitmq() {
  if rabbitmq_up; then return; fi
  log "starting RabbitMQ on 127.0.0.1:5672"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  as_root rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do rabbitmq_up && return; sleep 1; done
  log "RabbitMQ did not start"; exit 1
}

rabbitmq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

# rustc against the highest rust-version a member states (cargo refuses an older one too,
# but later and package by package). No older toolchain can be downloaded here, so this
# checks the version; clippy's incompatible_msrv checks the std APIs the code uses against it.
check_rust_version() {
  local needed have
  needed=$(cargo metadata --no-deps --format-version 1 --locked |
    grep -o '"rust_version":"[0-9.]*"' | cut -d'"' -f4 | sort -V | tail -n1)
  have=$(rustc --version | cut -d' ' -f2)
  if [ "$(printf '%s\n%s\n' "$needed" "$have" | sort -V | head -n1)" != "$needed" ]; then
    log "rustc $have is older than the workspace's rust-version $needed: rustup update"; exit 1
  fi
  log "rustc $have (rust-version $needed)"
}

# cargo deny (deny.toml): licences, bans and sources need nothing but Cargo.lock; advisories
# need the RustSec database, which cargo deny fetches: where it cannot (no network), the check
# is reported as skipped, never as passed, and any other advisory failure fails the run.
cargo_deny() {
  if ! cargo deny --version >/dev/null 2>&1; then
    log "installing cargo-deny (once; a few minutes)"
    cargo install cargo-deny --locked --quiet
  fi
  log "cargo deny check licenses bans sources"
  cargo deny --locked check --hide-inclusion-graph licenses bans sources
  log "cargo deny check advisories"
  local out
  if out=$(timeout 120 cargo deny --locked check --hide-inclusion-graph advisories 2>&1); then
    printf '%s\n' "$out" | tail -n 3 >&2
  elif grep -q "failed to fetch advisory database" <<<"$out"; then
    log "cargo deny check advisories SKIPPED: the advisory database cannot be fetched from here"
    printf '%s\n' "$out" | grep -m1 "failed to fetch" >&2 || true
  else
    printf '%s\n' "$out" >&2
    exit 1
  fi
}

ensure_packages
ensure_redis
ensure_rabbitmq

# The tests arm failpoints (VOLLEY_FAILPOINTS), which only a build with this feature has; the
# build, nextest and cargo test get the same features so that none rebuilds without them.
features=(--features volley-core/failpoints)

check_rust_version
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
# A user's build (no failpoints), then the failpoints themselves.
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p volley-core --lib --locked "${features[@]}" -- -D warnings
cargo_deny
log "building binaries (with failpoints)"
cargo build --workspace --bins --locked "${features[@]}"
# The dashboard's browser test: Debian's Chromium and playwright-core; the test fails, not
# skips, when they are missing after this.
bash scripts/browser-tools.sh
export VOLLEY_REQUIRE_BROWSER=1
# The slow scenarios are #[ignore]d, so a default run reports them as skipped, not passed.
slow=${VOLLEY_SLOW:-}
log "running tests${slow:+ (with the slow scenarios)}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked "${features[@]}" --no-fail-fast ${slow:+--run-ignored all}
else
  cargo test --workspace --locked "${features[@]}" --no-fail-fast ${slow:+-- --include-ignored}
fi
log "deployment files (scripts/k8s-test.sh)"
bash scripts/k8s-test.sh
log "docker-compose.yml for real (scripts/compose-test.sh)"
bash scripts/compose-test.sh
