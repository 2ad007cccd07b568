#!/bin/bash
# The whole test suite: installs what is missing, builds, runs the C unit
# tests (meson) and the integration tests (pytest, real PostgreSQL, real
# nodes, real certificates on loopback), first on the normal build, then on
# an AddressSanitizer + UndefinedBehaviorSanitizer build; and, once, on the
# normal build, the web page's browser tests (tests/web: Node.js's test
# runner, playwright-core, Debian's Chromium).  Prints one last line
# "N passed, N failed" with the totals.
#
# Usage: scripts/test.sh [--quick]   (--quick: skip the sanitizer pass)
# Extra pytest arguments can be given in PYTEST_ARGS (e.g. "-k roaming").
set -uo pipefail

quick=false
[ "${1:-}" = "--quick" ] && quick=true

src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
scripts/install-deps.sh || exit 1

passed=0
failed=0
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# Counts one meson run's results from its JSON log.
count_meson() {
	local log=$1 p f
	p=$(grep -c '"result": "OK"' "$log" || true)
	f=$(grep -c '"result": "\(FAIL\|TIMEOUT\|ERROR\|UNEXPECTEDPASS\)"' "$log" || true)
	passed=$((passed + p))
	failed=$((failed + f))
}

# Counts one pytest run's results from its JUnit XML.
count_pytest() {
	local xml=$1 counts
	if [ ! -s "$xml" ]; then
		failed=$((failed + 1))
		return
	fi
	counts=$(/usr/bin/python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
t = sum(int(s.get('tests', 0)) for s in suites)
f = sum(int(s.get('failures', 0)) + int(s.get('errors', 0)) for s in suites)
s = sum(int(s.get('skipped', 0)) for s in suites)
print(t - f - s, f)
PY
)
	passed=$((passed + ${counts% *}))
	failed=$((failed + ${counts#* }))
}

# Counts the browser tests' results from the spec reporter's summary.
count_node() {
	local log=$1 p f c
	p=$(sed -n 's/^ℹ pass \([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
	f=$(sed -n 's/^ℹ fail \([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
	c=$(sed -n 's/^ℹ cancelled \([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
	if [ -z "$p" ] || [ -z "$f" ]; then
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + p))
	failed=$((failed + f + ${c:-0}))
}

run_web() {
	local log="$results/web.log" rc
	echo "=== web: browser tests (build)"
	if [ ! -x build/passerelle ]; then
		echo "=== web: no build/passerelle"
		failed=$((failed + 1))
		return
	fi
	if ! tests/web/setup.sh; then
		echo "=== web: cannot install playwright-core (tests/web/setup.sh)"
		failed=$((failed + 1))
		return
	fi
	PASSERELLE_BIN="$src/build/passerelle" timeout 1500 /usr/bin/python3 tests/web/run.py \
		>"$log" 2>&1
	rc=$?
	grep -E '^(✔|✖)' "$log" || true
	[ "$rc" -ne 0 ] && tail -n 80 "$log"
	count_node "$log"
}

run_suite() {
	local name=$1 dir=$2
	echo "=== $name: build ($dir)"
	if ! BUILD_DIR=$dir scripts/build.sh; then
		echo "=== $name: BUILD FAILED"
		failed=$((failed + 1))
		return
	fi
	echo "=== $name: unit tests"
	meson test -C "$dir" --print-errorlogs --num-processes 2 | grep -E '^ *[0-9]+/[0-9]+ |FAIL|not ok' || true
	count_meson "$dir/meson-logs/testlog.json"
	echo "=== $name: integration tests"
	PASSERELLE_BIN="$src/$dir/passerelle" timeout 1200 /usr/bin/python3 -m pytest \
		-p no:cacheprovider -q tests/integration \
		--junitxml="$results/$name.xml" ${PYTEST_ARGS:-} 2>&1 | tail -n 40
	count_pytest "$results/$name.xml"
}

run_suite plain build
run_web
if ! $quick; then
	# Leaks too, as each program exits: a node that leaked exits non-zero
	# on SIGTERM, which the harness reports (Federation.close), and a
	# command that leaked fails its test.
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	MESON_OPTIONS="-Db_sanitize=address,undefined -Db_lundef=false" \
		run_suite sanitizers build-asan
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
