#!/usr/bin/env bash
# What the dashboard's browser test needs: Debian's chromium and chromium-driver, and
# playwright-core from npm (driving that system Chromium; it downloads no browser) in
# target/browser-node. Run by scripts/test.sh before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
dir=target/browser-node
if [ ! -d "$dir/node_modules/playwright-core" ]; then
  log "installing playwright-core into $dir"
  mkdir -p "$dir"
  (cd "$dir" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent 'playwright-core@^1.40' >/dev/null)
fi
log "browser: $(chromium --version 2>/dev/null | head -n1); playwright-core $(node -p "require('./$dir/node_modules/playwright-core/package.json').version")"
