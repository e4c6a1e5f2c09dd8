#!/usr/bin/env bash
# Volley benchmarks side by side (issue 7). One command:
#
#   bash bench/run.sh
#
# builds the release binaries (with bench/floor), prepares bench/.venv for the Python
# baselines and the plot, runs the workloads against volley-mockapi on this machine, the
# fleet on the local RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) in a namespace of
# its own (bench-<random>, deleted afterwards), and writes bench/RESULTS.md and
# bench/results.png. Raw results and logs: bench/out/ (git-ignored).
#
#   BENCH_RUNS=3        runs per contender (the tables show medians with min–max)
#   BENCH_QUICK=1       every workload 10x smaller, W4 at 100k/1M: for trying the harness
#   BENCH_ONLY=W1,W2    some workloads only (W1..W6, RSS; W2 brings RSS along); the report
#                       reads every bench/out/W*.json present, so others stay from earlier runs
#   BENCH_PYTHON=...    the Python for the venv (default: python3, 3.10 or newer)
#   BENCH_SKIP_BUILD=1  use the binaries already in target/release (no cargo build)
#
# The binaries are copied to bench/out/bin before the runs, so a rebuild of target/ while the
# benchmark runs (another checkout step, a test run) cannot swap them half way.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
ONLY=${BENCH_ONLY:-W1,W2,W3,W4,W5,W6,RSS}
PY=${BENCH_PYTHON:-python3}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# Tools of the harness, from Debian when missing.
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-cli >/dev/null || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The services the fleet uses must be up (bash scripts/test.sh starts them when they are not).
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "bench: Redis is not answering on 127.0.0.1:6379" >&2
    exit 69
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "bench: RabbitMQ is not listening on 127.0.0.1:5672" >&2
    exit 69
fi

# The venv: aiohttp for the seed baselines, pika for queue counts, matplotlib for the plot.
if [ ! -x bench/.venv/bin/python ]; then
    log "creating bench/.venv"
    "$PY" -m venv bench/.venv
fi
if ! bench/.venv/bin/python -c 'import aiohttp, pika, matplotlib' 2>/dev/null; then
    log "installing bench/requirements.txt into bench/.venv"
    bench/.venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
fi

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release --workspace"
    cargo build --release --workspace
fi
mkdir -p bench/out/bin
for b in volley volley-worker volley-producer volley-mockapi volley-floor; do
    cp -f "target/release/$b" "bench/out/bin/$b"
done
# What the binaries were built from (the harness puts it into every workload's results).
{
    if [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then
        echo "target/release of $(date -u -r target/release/volley-worker '+%Y-%m-%d %H:%M UTC') (not rebuilt)"
    else
        dirty=$(git status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null || true)
        echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ + uncommitted changes in crates/}"
    fi
} > bench/out/bin/BUILD
export BENCH_BIN="$ROOT/bench/out/bin"

args=(--runs "$RUNS" --only "$ONLY")
[ "$QUICK" = 1 ] && args+=(--quick)
log "running ${ONLY} (runs: ${RUNS}, quick: ${QUICK})"
bench/.venv/bin/python bench/lib/harness.py "${args[@]}"
bench/.venv/bin/python bench/report.py
log "wrote bench/RESULTS.md and bench/results.png"
