#!/bin/bash
# tests/bench/smoke.sh - the benchmark harness's smoke run for CI (meson
# suite 'bench-smoke'): a real two-space federation on loopback, a few
# hundred bounded requests through each of the harness's modes at
# concurrency 2, and the micro-benchmark.  It checks that every request
# succeeded and that the figures were printed; it never judges speed (see
# tests/bench/run.sh and docs/benchmarks.md for the benchmark itself).
#
# Environment (set by meson): PASSERELLE_BIN, BENCH_BIN_DIR, PASSERELLE_SOURCE.
set -euo pipefail

: "${PASSERELLE_BIN:?}" "${BENCH_BIN_DIR:?}" "${PASSERELLE_SOURCE:?}"
export PASSERELLE_BIN PASSERELLE_SOURCE
# Only initdb's own fsync of the new clusters is skipped: a smoke run.
export PASSERELLE_PG_NOSYNC=1
# Under a sanitizer build, as scripts/test.sh runs the integration tests:
# library globals left at exit (OpenSSL, libcurl) are not leaks worth failing on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
loadgen=$BENCH_BIN_DIR/loadgen
# shellcheck source=tests/bench/federation.sh
. "$PASSERELLE_SOURCE/tests/bench/federation.sh"

work=$(mktemp -d /var/tmp/passerelle-bench-smoke.XXXXXX)
cleanup() {
	fed_stop
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "bench-smoke: $*" >&2
	tail -n 15 "$work"/*/node.log >&2 2>/dev/null || true
	exit 1
}

# Reads loadgen's JSON line and insists on requests, no errors, figures.
check() { # WHAT JSON
	/usr/bin/python3 - "$1" "$2" <<'PY' || fail "$1: the run did not succeed"
import json, sys
what, d = sys.argv[1], json.loads(sys.argv[2])
parts = [d["primary"]] + ([d["then"]] if "then" in d else [])
for p in parts:
    assert p["count"] > 0, f"{what}: no request was measured"
    assert p["errors"] == 0, f"{what}: {p['errors']} errors"
    for k in ("rate", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert k in p, f"{what}: no {k}"
print(f"ok - {what}: " + ", ".join(f"{p['count']} requests, errors {p['errors']}" for p in parts))
PY
}

fed_init "$work"
fed_setup "$work" troquet cordee
fed_start "$work" || fail "the federation did not start"
host_local=$(fed_port "$work" troquet local)
home_fed=$(fed_port "$work" cordee fed)
desk=$("$PASSERELLE_BIN" -c "$work/troquet/passerelle.conf" staff add "Smoke desk" --role concierge)
"$BENCH_BIN_DIR/bench_mint" -c "$work/cordee/passerelle.conf" --count 300 \
	--out "$work/passes.txt" || fail "cannot mint members"

# Check-in then check-out at the host's desk, members reused.  The check-out
# is not required to say reported_to_home: the outbox courier may take the
# completion first (docs/benchmarks.md), which is correct, only slower.
json=$("$loadgen" --json --label smoke-cycle --concurrency 2 --warmup 0 --duration 5 \
	--max-requests 60 --tokens "$work/passes.txt" --reuse-tokens \
	--url "http://127.0.0.1:$host_local/api/v1/checkin" \
	--header "Authorization: Bearer $desk" --header "Content-Type: application/json" \
	--body '{"pass": "{token}"}' --expect '"decision":"admit"' \
	--then-if '"decision":"admit"' \
	--then-url "http://127.0.0.1:$host_local/api/v1/visits/{visit_id}/checkout" \
	--then-method POST --then-header "Authorization: Bearer $desk" \
	--then-expect '"already_closed":false') || true
check "check-in and check-out at the host" "$json"

# Authorizations straight at the home's federation face, over mutual TLS.
json=$("$loadgen" --json --label smoke-authorize --concurrency 2 --warmup 0 --duration 5 \
	--max-requests 60 --tokens "$work/passes.txt" \
	--cert "$work/troquet/node.crt" --key "$work/troquet/node.key" \
	--cacert "$work/troquet/ca.crt" \
	--url "https://127.0.0.1:$home_fed/federation/v1/authorize" \
	--header "Content-Type: application/json" --header "Passerelle-Directory-Serial: 1" \
	--header "Idempotency-Key: {uuid}" \
	--body '{"visit_id": "{uuid}", "pass": "{token}"}' \
	--expect '"decision":"admit"') || true
check "authorizations at the federation face" "$json"

out=$("$BENCH_BIN_DIR/bench_verify" --iterations 200 --rounds 2 --json \
	--directory "$work/cordee/directory.jws" --coordinator "$work/cordee/coordinator.pub" \
	--pass-key "$work/cordee/pass.key" --iss cordee --kid cordee-1) ||
	fail "the verification micro-benchmark failed"
echo "$out"
echo "$out" | grep -q '"pass_verify_rate":' || fail "no verification figures"
echo "ok - pass verification micro-benchmark"

# A small outbox backlog (the home was down) drained to the live home.
hpid=$(cat "$work/troquet/pid")
kill -TERM "$hpid" && wait "$hpid" 2>/dev/null || true
"$BENCH_BIN_DIR/bench_backlog" --host "$work/troquet/passerelle.conf" \
	--home "$work/cordee/passerelle.conf" --count 200 >/dev/null || fail "cannot build a backlog"
"$PASSERELLE_BIN" -c "$work/troquet/passerelle.conf" serve >>"$work/troquet/node.log" 2>&1 &
FED_PIDS+=($!)
for _ in $(seq 1 300); do
	left=$(fed_psql "$work" troquet "select count(*) from outbox
		where delivered_at is null and failed_at is null" 2>/dev/null) || left=x
	[ "$left" = 0 ] && break
	sleep 0.1
done
[ "$left" = 0 ] || fail "the outbox backlog was not drained ($left left)"
closed=$(fed_psql "$work" cordee "select count(*) from home_visits
	where host = 'troquet' and checked_out_at is not null and completion is not null")
[ "$closed" -ge 200 ] || fail "only $closed visits closed at the home"
echo "ok - an outbox backlog of 200 drained, $closed visits closed at the home"
