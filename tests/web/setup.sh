#!/bin/sh
# Installs the browser tests' one npm package, playwright-core, into
# tests/web/node_modules, at the version package-lock.json pins.  No browser
# is downloaded: the tests drive Debian's /usr/bin/chromium.
# Quiet, and does nothing when it is there already.
set -eu
cd "$(dirname "$0")"
want=$(sed -n 's/.*"playwright-core": "\([0-9.]*\)".*/\1/p' package.json)
have=$(sed -n 's/.*"version": "\([0-9.]*\)".*/\1/p' node_modules/playwright-core/package.json 2>/dev/null || true)
[ "$want" = "$have" ] && exit 0
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null
