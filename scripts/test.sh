#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and adapter tests, and the end-to-end suite
# against a real RabbitMQ and a real Redis (started here when they are not running).
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

ensure_packages
ensure_redis
ensure_rabbitmq

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "building binaries"
cargo build --workspace --bins --locked
# The slow scenarios are #[ignore]d, so a default run reports them as skipped, not passed.
slow=${VOLLEY_SLOW:-}
log "running tests${slow:+ (with the slow scenarios)}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast ${slow:+--run-ignored all}
else
  cargo test --workspace --locked --no-fail-fast ${slow:+-- --include-ignored}
fi
