#!/usr/bin/env bash
# Builds every image docker-compose.yml names on a machine that reaches Debian's package
# mirror but no image registry:
#   volley-base:bookworm       a Debian 12 minbase made by debootstrap and `docker import`;
#   rabbitmq:3-management      RabbitMQ from Debian's package (rabbitmq.Dockerfile);
#   redis:7                    Redis from Debian's package (redis.Dockerfile);
#   volley:latest              deploy/Dockerfile's `prebuilt` target around release binaries.
# Images that exist already are kept (VOLLEY_REBUILD_BASE=1 rebuilds the base and the service
# images); the Volley image is rebuilt every time, from BIN_DIR (default target/release, built
# with `cargo build --release --locked --bins`).
#
# Env: BASE_IMAGE, RABBITMQ_IMAGE, REDIS_IMAGE, VOLLEY_IMAGE, BIN_DIR, DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/../.."

base=${BASE_IMAGE:-volley-base:bookworm}
rabbitmq=${RABBITMQ_IMAGE:-rabbitmq:3-management}
redis=${REDIS_IMAGE:-redis:7}
volley=${VOLLEY_IMAGE:-volley:latest}
bin_dir=${BIN_DIR:-target/release}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}
# deploy/Dockerfile needs BuildKit (the default from Docker 23; Debian 12 ships 20.10).
export DOCKER_BUILDKIT=1

log() { printf '==> %s\n' "$*" >&2; }
have_image() { [ -z "${VOLLEY_REBUILD_BASE:-}" ] && "$docker" image inspect "$1" >/dev/null 2>&1; }

if ! have_image "$base"; then
  log "building $base with debootstrap (a few minutes, once)"
  rootfs=$(mktemp -d /var/tmp/volley-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "$docker" import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

build_service_image() {
  local tag=$1 dockerfile=$2
  if have_image "$tag"; then return; fi
  log "building $tag from Debian's package"
  "$docker" build -q --network host --build-arg "BASE_IMAGE=$base" -t "$tag" \
    -f "deploy/offline/$dockerfile" deploy/offline >/dev/null
}
build_service_image "$rabbitmq" rabbitmq.Dockerfile
build_service_image "$redis" redis.Dockerfile

log "building $volley from $bin_dir"
context=$(mktemp -d /var/tmp/volley-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/bin"
for b in volley volley-worker volley-producer volley-mockapi; do
  if [ ! -x "$bin_dir/$b" ]; then
    log "$bin_dir/$b is missing: cargo build --release --locked --bins"; exit 1
  fi
  # The release profile keeps line tables for profiling; the image needs none.
  if command -v strip >/dev/null; then strip -o "$context/bin/$b" "$bin_dir/$b"; else cp "$bin_dir/$b" "$context/bin/"; fi
done
"$docker" build -q --network host --target prebuilt --build-arg "RUNTIME_IMAGE=$base" \
  --build-arg BIN_DIR=bin -t "$volley" -f deploy/Dockerfile "$context" >/dev/null
log "images ready: $volley $rabbitmq $redis"
