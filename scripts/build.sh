#!/bin/sh
# Configures (once) and builds Passerelle into BUILD_DIR (default: build).
# Quiet when all is well; the compiler's messages when it is not.
set -eu
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$dir/build.ninja" ]; then
	# shellcheck disable=SC2086
	meson setup "$dir" ${MESON_OPTIONS:-} >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
fi
# New schema files are picked up at configure time.
# shellcheck disable=SC2086
meson setup --reconfigure "$dir" ${MESON_OPTIONS:-} >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
ninja -C "$dir" >"$log" 2>&1 || { grep -v '^\[' "$log" >&2; echo "build: failed (above)" >&2; exit 1; }
