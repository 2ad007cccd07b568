#!/bin/bash
# tests/bench/many.sh - benchmark scenario "federation50" (tests/bench/run.sh
# federation50, or this script alone): a federation of 50 spaces on one
# machine, one PostgreSQL server with a database each, random roaming
# traffic, then a check that every visit is on both sides exactly once.
#
# One command: it builds the node, starts ONE PostgreSQL server of its own
# (initdb as postgres, default durable settings: fsync, synchronous_commit,
# full_page_writes; unix socket only) in a fresh folder under /var/tmp, sets
# up BENCH_SPACES spaces with tests/bench/federation.sh (CA, node
# certificates, pass keys, signed directory, free loopback ports) each with
# its own database on that server and small pools, mints members with signed
# passes in every space and a concierge token per space, and drives random
# roaming traffic with tests/bench/roam.py: a random free member of a random
# home checks in at a random other space, and a random open visit is checked
# out, with at most BENCH_OPEN visits open at once.  After the traffic it
# waits for every node's outbox to be delivered and checks each visit the
# driver made in both databases (host_visits at the host, home_visits at the
# home: exactly one row each, same member and spaces, both closed with the
# same units), that no row exists the driver does not know of, the counts
# per pair of spaces, and the homes' ticket ledgers.  Exit status 1 on any
# discrepancy or error.
#
# Environment (defaults in brackets):
#   BUILD_DIR [build]  BENCH_SPACES [50]  BENCH_MEMBERS_PER_SPACE [200]
#   BENCH_DURATION [30] measured seconds  BENCH_WARMUP [2]
#   BENCH_VISITS [0: no bound] stop after this many check-ins
#   BENCH_CONCURRENCY [16] driver threads (several values: one run each)
#   BENCH_OPEN [100] visits open at once, at most
#   BENCH_NODE_THREADS [1] BENCH_NODE_WORKERS [2] BENCH_NODE_COURIERS [1]
#   BENCH_OUT [tests/artifacts/bench-DATE] (results.jsonl appended)
#   BENCH_KEEP=1 keeps the folder (nodes' logs, databases' server) afterwards.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-build}
nspaces=${BENCH_SPACES:-50}
per_space=${BENCH_MEMBERS_PER_SPACE:-200}
duration=${BENCH_DURATION:-30}
warmup=${BENCH_WARMUP:-2}
max_visits=${BENCH_VISITS:-0}
conc_list=${BENCH_CONCURRENCY:-16}
open_max=${BENCH_OPEN:-100}
n_threads=${BENCH_NODE_THREADS:-1}
n_workers=${BENCH_NODE_WORKERS:-2}
n_couriers=${BENCH_NODE_COURIERS:-1}
out=${BENCH_OUT:-$src/tests/artifacts/bench-$(date -u +%Y%m%dT%H%M%SZ)}
py=/usr/bin/python3

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
t_start=$SECONDS

export PASSERELLE_SOURCE=$src
if [ -z "${PASSERELLE_BIN:-}" ]; then
	"$src/scripts/install-deps.sh"
	BUILD_DIR=$build "$src/scripts/build.sh"
	export PASSERELLE_BIN=$src/$build/passerelle
fi
bench_bin=$(dirname "$PASSERELLE_BIN")/tests/bench
# shellcheck source=tests/bench/federation.sh
. "$src/tests/bench/federation.sh"

mkdir -p "$out"
results=$out/results.jsonl
work=$(mktemp -d /var/tmp/passerelle-many.XXXXXX)
cleanup() {
	fed_stop
	fed_pg_stop "$work"
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "federation50: folder kept in $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ids=()
for i in $(seq 1 "$nspaces"); do ids+=("$(printf 'sp%02d' "$i")"); done

# Each worker (two pools: federation and local face) and each courier holds
# a connection; a few more per node (start-up, refresher), and the check's.
maxconn=$((nspaces * (2 * n_workers + n_couriers + 3) + nspaces + 20))

say "A federation of $nspaces spaces on one PostgreSQL server ($work)"
t0=$SECONDS
fed_init "$work"
fed_pg_start "$work" "$maxconn"
read -r pg_sock pg_port <"$work/pg/server"
postmaster=$(head -n 1 "$work/pg/data/postmaster.pid")
echo "  PostgreSQL $("$(fed_pg_bin)/postgres" --version | awk '{print $3}'): socket $pg_sock," \
	"port $pg_port, max_connections $maxconn, fsync $(fed_pg_psql "$work" postgres 'show fsync')," \
	"synchronous_commit $(fed_pg_psql "$work" postgres 'show synchronous_commit')"
FED_EXTRA_CONF="[limits]
threads = $n_threads
workers = $n_workers
couriers = $n_couriers"
fed_setup "$work" "${ids[@]}"
echo "  certificates, keys, configurations, directory and databases: $((SECONDS - t0)) s"
t0=$SECONDS
fed_start "$work"
echo "  $nspaces nodes healthy (threads $n_threads, workers $n_workers per face," \
	"couriers $n_couriers): $((SECONDS - t0)) s"

say "Minting $per_space members with signed passes in each space; a concierge per space"
t0=$SECONDS
for id in "${ids[@]}"; do
	"$bench_bin/bench_mint" -c "$work/$id/passerelle.conf" --count "$per_space" \
		--out "$work/$id/passes.txt" >/dev/null
	"$PASSERELLE_BIN" -c "$work/$id/passerelle.conf" staff add "Bench desk" \
		--role concierge >"$work/$id/desk.token"
done
echo "  $((nspaces * per_space)) members: $((SECONDS - t0)) s"
$py - "$work" "$pg_sock" "$pg_port" "${ids[@]}" >"$work/spaces.json" <<'PY'
import json, sys
work, sock, port, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
spaces = []
for i in ids:
    f, l = open(f"{work}/{i}/ports").read().split()
    spaces.append({"id": i, "port": int(l), "fed_port": int(f),
                   "token": open(f"{work}/{i}/desk.token").read().strip(),
                   "passes": f"{work}/{i}/passes.txt", "db": open(f"{work}/{i}/dbname").read().strip(),
                   "pid": int(open(f"{work}/{i}/pid").read())})
json.dump(spaces, sys.stdout)
PY

# Resident memory of the idle nodes and the server's connections, before the traffic.
idle=$($py "$src/tests/bench/roam.py" resources --spaces "$work/spaces.json" \
	--postmaster "$postmaster" --label idle)

runs=()
logs=()
status=0
for c in $conc_list; do
	bound=""
	[ "$max_visits" -gt 0 ] && bound=" (at most $max_visits check-ins)"
	say "Random roaming traffic: concurrency $c, ${duration} s measured after ${warmup} s" \
		"of warm-up$bound"
	$py "$src/tests/bench/roam.py" drive --spaces "$work/spaces.json" --concurrency "$c" \
		--duration "$duration" --warmup "$warmup" --visits "$max_visits" \
		--open "$open_max" --postmaster "$postmaster" \
		--log "$work/visits-c$c.jsonl" --out "$work/run-c$c.json" || status=1
	runs+=("$work/run-c$c.json")
	logs+=("$work/visits-c$c.jsonl")
done

say "Exactly once: every visit on both sides"
$py "$src/tests/bench/roam.py" check --spaces "$work/spaces.json" \
	--server "$pg_sock:$pg_port" --log "${logs[@]}" --runs "${runs[@]}" \
	--results "$results" --extra "{\"idle\": $idle, \"node_limits\": {\"threads\": $n_threads,
		\"workers\": $n_workers, \"couriers\": $n_couriers}, \"pg_max_connections\": $maxconn}" |
	grep -v '^{' || status=1

# What the nodes logged above info ("TIME SPACE LEVEL: message").
warns=$(cat "$work"/*/node.log | grep -c -E '^[^ ]+ [^ ]+ (warn|error):' || true)
echo "  nodes' logs: $warns warnings or errors"
if [ "$warns" -gt 0 ]; then
	grep -h -E '^[^ ]+ [^ ]+ (warn|error):' "$work"/*/node.log | sed 's/^/    /' | head -n 10
fi
echo "  results appended to $results; $((SECONDS - t_start)) s in all"
exit "$status"
