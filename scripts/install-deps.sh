#!/bin/sh
# Installs, from Debian's packages, whatever this machine lacks to build,
# run and test Passerelle.  Safe to run again: it installs only what is missing.
set -eu

packages="build-essential meson ninja-build pkg-config
libssl-dev libcurl4-openssl-dev libcjson-dev libpq-dev libevent-dev
libsodium-dev libqrencode-dev libinih-dev
postgresql openssl curl ca-certificates
python3 python3-pytest python3-psycopg python3-jwcrypto"

# The web page's browser tests (tests/web): Debian's Chromium and zbarimg.
# Node.js 20 and npm usually come with the machine (a nodejs that bundles
# npm); Debian's are installed only when the commands are missing.
packages="$packages chromium zbar-tools"
command -v node >/dev/null 2>&1 || packages="$packages nodejs"
command -v npm >/dev/null 2>&1 || packages="$packages npm"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
