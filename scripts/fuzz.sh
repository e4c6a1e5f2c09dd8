#!/usr/bin/env bash
# Fuzzes the input readers and the template renderer with libFuzzer (cargo-fuzz, nightly).
# Usage: bash scripts/fuzz.sh [seconds per target, default 60]
# Findings (crashing inputs) land in fuzz/artifacts/<target>/; fix them and add them as tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
cd fuzz
for target in input_jsonl input_csv template; do
  printf '==> fuzzing %s for %ss\n' "$target" "$SECONDS_PER_TARGET" >&2
  cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_PER_TARGET" -max_len=8192
done
