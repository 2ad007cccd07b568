#!/bin/sh
# Configures (once) and builds Passerelle into BUILD_DIR (default: build).
set -eu
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" ${MESON_OPTIONS:-} >/dev/null
fi
# New schema files are picked up at configure time.
meson setup --reconfigure "$dir" ${MESON_OPTIONS:-} >/dev/null 2>&1 || true
ninja -C "$dir" >/dev/null
