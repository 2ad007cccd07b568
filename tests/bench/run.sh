#!/bin/bash
# tests/bench/run.sh - the benchmark scenarios (docs/benchmarks.md).
#
# Usage: tests/bench/run.sh SCENARIO...
#   checkin    front-desk check-ins at the host (local API; host -> home over
#              mTLS, both ledgers), each concurrency of BENCH_CONCURRENCY,
#              followed by the check-outs of those visits (their own figure)
#   checkout   the same runs (check-outs need check-ins to close)
#   cycle      check-in then check-out on the same connection, members reused
#   authorize  home authorizations straight at the home's federation face
#              with a peer's client certificate; and its ping (completions
#              are signed by the host: they are measured through check-outs)
#   verify     pass_verify against libsodium's raw verify (micro-benchmark)
#   sodium     the same program (the raw rate is its second line)
#   nginx      nginx-light answering a static body over mutual TLS, same
#              generator, same concurrencies (installed with apt if missing)
#   pgbench    one-row insert transactions on the home's own PostgreSQL
#   pgmix      the home's authorization transaction replayed by pgbench,
#              extended protocol (as the node sends it) against prepared
#   directory  verify and load a signed directory of 10,000 spaces
#   rss        resident memory of the idle nodes (their PostgreSQL aside)
#   profile    perf (DWARF call graphs) of the nodes and their PostgreSQL
#              over a check-in run at concurrency 16
#   census     the SQL statements one check-in costs each PostgreSQL
#   statements each statement's time, WAL and buffers per check-in at c=16
#              (both servers restarted with pg_stat_statements, then without)
#   outbox     BENCH_BACKLOG [100000] completions waiting in the host's outbox
#              (the home was down) drained to the live home; then verified
#   all        everything above but profile, census and statements, then
#              the summary
#   federation50  (alone; alias many) 50 spaces on one PostgreSQL server,
#              random roaming, every visit checked on both sides
#              (tests/bench/many.sh, which lists its variables)
#
# Each invocation builds its own two-space federation (troquet hosts, cordee
# is the members' home) in a fresh folder, on free loopback ports, each node
# on its own embedded PostgreSQL with the default durable settings
# (fsync, synchronous_commit), and removes it at the end.
#
# Environment (defaults in brackets):
#   BUILD_DIR [build]  BENCH_DURATION [10]  BENCH_WARMUP [2]
#   BENCH_CONCURRENCY ["1 4 16 64"]  BENCH_FED_CONCURRENCY ["16 64"]
#   BENCH_MEMBERS [60000]  BENCH_OUT [tests/artifacts/bench-DATE]
#   BENCH_KEEP=1 keeps the federation's folder for a look afterwards.
#   BENCH_PG=shared puts both spaces on ONE PostgreSQL server (a database
#              each, the same default durable settings) instead of one
#              embedded server each: one WAL, so the two nodes' commits can
#              share a flush.  checkin, checkout, cycle and authorize only.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-build}
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-2}
conc_list=${BENCH_CONCURRENCY:-1 4 16 64}
fed_conc_list=${BENCH_FED_CONCURRENCY:-16 64}
members=${BENCH_MEMBERS:-60000}
pg_mode=${BENCH_PG:-embedded}
out=${BENCH_OUT:-$src/tests/artifacts/bench-$(date -u +%Y%m%dT%H%M%SZ)}

if [ $# -eq 0 ]; then
	sed -n '2,/^set /{/^set /!p;}' "$0" >&2
	exit 2
fi
# federation50 (or many): 50 spaces on one PostgreSQL server, random roaming
# traffic, then every visit checked on both sides; it builds and sets up its
# own federation (tests/bench/many.sh, which lists its variables), so it runs alone.
case " $* " in
*" federation50 "*|*" many "*)
	[ $# -eq 1 ] || { echo "bench: federation50 runs alone" >&2; exit 2; }
	exec "$src/tests/bench/many.sh" ;;
esac
scenarios=()
for a in "$@"; do
	case "$a" in
	checkin|checkout|cycle|authorize|verify|sodium|nginx|pgbench|pgmix|directory|rss|profile|census|statements|outbox) scenarios+=("$a") ;;
	all) scenarios+=(rss verify directory pgbench nginx authorize checkin cycle pgmix outbox) ;;
	-h|--help) sed -n '2,/^set /{/^set /!p;}' "$0"; exit 0 ;;
	*) echo "bench: unknown scenario '$a'" >&2; exit 2 ;;
	esac
done
case "$pg_mode" in
embedded) ;;
shared)
	for a in "${scenarios[@]}"; do
		case "$a" in
		checkin|checkout|cycle|authorize) ;;
		*) echo "bench: BENCH_PG=shared runs checkin, checkout, cycle and authorize only, not '$a'" >&2
		   exit 2 ;;
		esac
	done ;;
*) echo "bench: BENCH_PG is 'embedded' or 'shared', not '$pg_mode'" >&2; exit 2 ;;
esac

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export PASSERELLE_SOURCE=$src
"$src/scripts/install-deps.sh"
BUILD_DIR=$build "$src/scripts/build.sh"
export PASSERELLE_BIN=${PASSERELLE_BIN:-$src/$build/passerelle}
bench_bin=$src/$build/tests/bench
loadgen=$bench_bin/loadgen
# shellcheck source=tests/bench/federation.sh
. "$src/tests/bench/federation.sh"

mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
work=$(mktemp -d /var/tmp/passerelle-bench.XXXXXX)
nginx_pid=""
cleanup() {
	[ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
	fed_stop
	fed_pg_stop "$work"
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: federation kept in $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the machine

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
	echo "memory: $(free -m | awk '/Mem:/ {print $2}') MiB"
	echo "kernel: $(uname -r)"
	echo "postgresql: $(ls /usr/lib/postgresql | sort -n | tail -1), $(/usr/lib/postgresql/*/bin/postgres --version | tail -1)"
	echo "openssl: $(openssl version)"
	echo "libcurl: $(curl-config --version 2>/dev/null || echo '?')"
	echo "build: $build ($(meson introspect "$src/$build" --buildoptions 2>/dev/null |
		/usr/bin/python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' 2>/dev/null || echo '?'))"
	echo "commit: ${BENCH_COMMIT:-$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$src" diff --quiet 2>/dev/null || echo ' (with local changes)')}"
} | tee "$out/machine.txt"

# ---------------------------------------------------------------- federation

say "Setting up the federation in $work (troquet hosts, cordee is home)"
fed_init "$work"
if [ "$pg_mode" = shared ]; then
	echo "both spaces on one PostgreSQL server (BENCH_PG=shared)"
	fed_pg_start "$work"
fi
fed_setup "$work" troquet cordee
fed_start "$work"
host_local=$(fed_port "$work" troquet local)
home_fed=$(fed_port "$work" cordee fed)
desk=$("$PASSERELLE_BIN" -c "$work/troquet/passerelle.conf" staff add "Bench desk" --role concierge)
echo "troquet: local face :$host_local; cordee: federation face :$home_fed"
# A front desk's check-in of the next minted pass, as every scenario sends it.
checkin_req=(--tokens "$work/passes.txt" --url "http://127.0.0.1:$host_local/api/v1/checkin"
	--header "Authorization: Bearer $desk" --header "Content-Type: application/json"
	--body '{"pass": "{token}"}' --expect '"decision":"admit"')

minted=false
mint() {
	$minted && return 0
	say "Minting $members members of cordee, each with a signed pass"
	local t0=$SECONDS
	"$bench_bin/bench_mint" -c "$work/cordee/passerelle.conf" --count "$members" \
		--out "$work/passes.txt"
	echo "($((SECONDS - t0)) s)"
	minted=true
}

# Closes whatever a scenario left open, so that every member is free again.
reset_visits() {
	fed_psql "$work" troquet "update host_visits set status = 'closed', under_way = false,
		checked_out_at = now(), units = 1 where under_way;
		update outbox set delivered_at = now() where delivered_at is null" >/dev/null
	fed_psql "$work" cordee "update home_visits set checked_out_at = now(), units = 1
		where decision = 'admit' and checked_out_at is null" >/dev/null
}

metric() { # SPACE NAME
	curl -fsS "http://127.0.0.1:$(fed_port "$work" "$1" local)/metrics" |
		awk -v n="$2" '$1 == n {print $2}'
}

# CPU seconds used so far by each node, by each node's PostgreSQL (the
# postmaster, the children it reaped, and its live backends), and by nginx.
cpu_snapshot() {
	/usr/bin/python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
tick = os.sysconf("SC_CLK_TCK")
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    return int(fields[1]), [int(x) for x in fields[11:15]]
procs = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            procs[int(p)] = stat(p)
        except (OSError, IndexError, ValueError):
            pass
out = {}
for space in ("troquet", "cordee"):
    try:
        pid = int(open(f"{work}/{space}/pid").read())
        out[space] = sum(procs[pid][1][:2]) / tick
        pm = int(open(f"{work}/{space}/data/pg/data/postmaster.pid").readline())
        total = sum(procs[pm][1])
        total += sum(sum(v[1][:2]) for k, v in procs.items() if v[0] == pm)
        out[space + "_pg"] = total / tick
    except (OSError, KeyError, ValueError):
        pass
try:
    # BENCH_PG=shared: one server for both spaces, one figure ("pg").
    pm = int(open(f"{work}/pg/data/postmaster.pid").readline())
    out["pg"] = (sum(procs[pm][1]) + sum(sum(v[1][:2]) for k, v in procs.items()
                                         if v[0] == pm)) / tick
except (OSError, KeyError, ValueError):
    pass
try:
    pm = int(open(f"{work}/nginx/nginx.pid").read())
    out["nginx"] = (sum(procs[pm][1]) + sum(sum(v[1][:2]) for k, v in procs.items()
                                            if v[0] == pm)) / tick
except (OSError, KeyError, ValueError):
    pass
print(json.dumps(out))
PY
}

# Runs loadgen, prints its figures, appends its JSON (with the CPU each
# process used during the run, warm-up and drain included) to results.
lg() { # SCENARIO EXTRA_JSON loadgen-args...
	local scen=$1 extra=$2; shift 2
	local line before after
	before=$(cpu_snapshot)
	line=$("$loadgen" --json "$@") || true
	after=$(cpu_snapshot)
	[ -n "$line" ] || { echo "bench: loadgen printed nothing" >&2; return 1; }
	echo "$line" | /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.stdin.read()); d["scenario"] = sys.argv[1]
d.update(json.loads(sys.argv[2] or "{}"))
b, a = json.loads(sys.argv[3]), json.loads(sys.argv[4])
d["cpu_s"] = {k: round(a[k] - b[k], 3) for k in a if k in b}
d["cpu_s"]["loadgen"] = d.get("loadgen_cpu_s", 0)
print(json.dumps(d))' "$scen" "$extra" "$before" "$after" >>"$results"
}

# ---------------------------------------------------------------- scenarios

scenario_checkin() {
	mint
	local c calls0 conns0 calls1 conns1 reuse
	for c in $conc_list; do
		reset_visits
		say "Check-ins at the host, concurrency $c"
		calls0=$(metric troquet passerelle_peer_calls_total)
		conns0=$(metric troquet passerelle_peer_connections_total)
		lg checkin "{}" --label "checkin-c$c" --concurrency "$c" --warmup "$warmup" \
			--duration "$duration" "${checkin_req[@]}" \
			--save "$work/visits-c$c.txt" 2>&1 >/dev/null | sed 's/^/  /'
		calls1=$(metric troquet passerelle_peer_calls_total)
		conns1=$(metric troquet passerelle_peer_connections_total)
		reuse=$(/usr/bin/python3 -c "c=$calls1-$calls0; n=$conns1-$conns0
print('%.2f' % (100.0 * (c - n) / c if c else 0))")
		echo "  peer calls $((calls1 - calls0)), new peer connections $((conns1 - conns0)): $reuse % reused"
		/usr/bin/python3 - "$results" "$reuse" "$((calls1 - calls0))" "$((conns1 - conns0))" <<'PY'
import json, sys
path, reuse, calls, conns = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lines = open(path).read().splitlines()
d = json.loads(lines[-1]); d.update(peer_reuse_pct=reuse, peer_calls=calls, peer_new_connections=conns)
lines[-1] = json.dumps(d); open(path, "w").write("\n".join(lines) + "\n")
PY
		say "Check-outs of those visits, concurrency $c"
		lg checkout "{}" --label "checkout-c$c" --concurrency "$c" --warmup 1 \
			--duration "$duration" --tokens "$work/visits-c$c.txt" \
			--url "http://127.0.0.1:$host_local/api/v1/visits/{token}/checkout" \
			--method POST --header "Authorization: Bearer $desk" \
			--expect '"reported_to_home":true' 2>&1 >/dev/null | sed 's/^/  /'
	done
	reset_visits
}

scenario_cycle() {
	mint
	reset_visits
	say "Check-in then check-out on the same connection, members reused (concurrency 16)"
	lg cycle "{}" --label cycle-c16 --concurrency 16 --warmup "$warmup" \
		--duration "$duration" "${checkin_req[@]}" --reuse-tokens \
		--then-if '"decision":"admit"' \
		--then-url "http://127.0.0.1:$host_local/api/v1/visits/{visit_id}/checkout" \
		--then-method POST --then-header "Authorization: Bearer $desk" \
		--then-expect '"reported_to_home":true' 2>&1 >/dev/null | sed 's/^/  /'
	reset_visits
}

fed_tls=()
scenario_authorize() {
	mint
	local c
	fed_tls=(--cert "$work/troquet/node.crt" --key "$work/troquet/node.key"
		--cacert "$work/troquet/ca.crt")
	for c in $fed_conc_list; do
		reset_visits
		say "Federation face: ping, concurrency $c"
		lg ping "{}" --label "ping-c$c" --concurrency "$c" --warmup "$warmup" \
			--duration "$duration" "${fed_tls[@]}" \
			--url "https://127.0.0.1:$home_fed/federation/v1/ping" \
			--header "Passerelle-Directory-Serial: 1" \
			--expect '"caller":"troquet"' 2>&1 >/dev/null | sed 's/^/  /'
		say "Federation face: home authorizations, concurrency $c"
		lg authorize "{}" --label "authorize-c$c" --concurrency "$c" --warmup "$warmup" \
			--duration "$duration" "${fed_tls[@]}" --tokens "$work/passes.txt" \
			--url "https://127.0.0.1:$home_fed/federation/v1/authorize" \
			--header "Content-Type: application/json" \
			--header "Passerelle-Directory-Serial: 1" --header "Idempotency-Key: {uuid}" \
			--body '{"visit_id": "{uuid}", "pass": "{token}"}' \
			--expect '"decision":"admit"' 2>&1 >/dev/null | sed 's/^/  /'
	done
	reset_visits
}

scenario_verify() {
	say "Pass verification: pass_verify (directory lookup) against libsodium's raw verify"
	"$bench_bin/bench_verify" --iterations 20000 --rounds 5 --json \
		--directory "$work/cordee/directory.jws" --coordinator "$work/cordee/coordinator.pub" \
		--pass-key "$work/cordee/pass.key" --iss cordee --kid cordee-1 >"$work/verify.out"
	grep -v '^{' "$work/verify.out" | sed 's/^/  /'
	grep '^{' "$work/verify.out" | /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.stdin.read()); d["scenario"] = "verify"; print(json.dumps(d))' >>"$results"
}

nginx_start() {
	[ -n "$nginx_pid" ] && return 0
	if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
		say "Installing nginx-light (Debian) for the baseline"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq --no-install-recommends nginx-light >/dev/null ||
			{ apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light >/dev/null; }
	fi
	local port d=$work/nginx
	port=$(fed_free_port)
	mkdir -p "$d/tmp"
	# The same CA and the same server certificate as the home's federation
	# face; a static body of the size of a ping answer.
	cat >"$d/nginx.conf" <<CONF
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	keepalive_requests 10000000;
	keepalive_timeout 120s;
	server {
		listen 127.0.0.1:$port ssl;
		ssl_certificate $work/cordee/node.crt;
		ssl_certificate_key $work/cordee/node.key;
		ssl_client_certificate $work/cordee/ca.crt;
		ssl_verify_client on;
		ssl_protocols TLSv1.2 TLSv1.3;
		location / {
			default_type application/json;
			return 200 '{"space":"cordee","caller":"troquet"}';
		}
	}
}
CONF
	/usr/sbin/nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log" &
	nginx_pid=$!
	nginx_port=$port
	for _ in $(seq 1 100); do
		curl -fsS --cacert "$work/cordee/ca.crt" --cert "$work/troquet/node.crt" \
			--key "$work/troquet/node.key" "https://127.0.0.1:$port/" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench: nginx did not start:" >&2
	cat "$d/error.log" >&2
	return 1
}

scenario_nginx() {
	local c
	nginx_start
	for c in $fed_conc_list; do
		say "nginx-light, static body over mutual TLS, concurrency $c"
		lg nginx "{}" --label "nginx-c$c" --concurrency "$c" --warmup "$warmup" \
			--duration "$duration" --cert "$work/troquet/node.crt" \
			--key "$work/troquet/node.key" --cacert "$work/cordee/ca.crt" \
			--url "https://127.0.0.1:$nginx_port/federation/v1/ping" \
			--expect '"caller":"troquet"' 2>&1 >/dev/null | sed 's/^/  /'
	done
}

scenario_pgbench() {
	local c user="" sock=$work/cordee/data/pg/run tps
	[ "$(id -u)" -eq 0 ] && user="runuser -u postgres --"
	fed_psql "$work" cordee "create table if not exists bench_rows (id bigserial primary key,
		visit_id uuid not null, at timestamptz not null default now(), payload text)" >/dev/null
	cat >"$work/pgbench-insert.sql" <<'SQL'
insert into bench_rows (visit_id, payload) values (gen_random_uuid(), repeat('x', 200));
SQL
	chmod 0644 "$work/pgbench-insert.sql"
	for c in $conc_list; do
		say "pgbench: one-row insert per transaction on the home's PostgreSQL, $c clients"
		tps=$($user pgbench -n -h "$sock" -U passerelle -c "$c" -j "$(( c < 2 ? 1 : 2 ))" \
			-T "$duration" -f "$work/pgbench-insert.sql" passerelle 2>&1 |
			tee "$work/pgbench-c$c.out" | awk '/^tps/ {print $3}') || true
		grep -E 'latency average|^tps' "$work/pgbench-c$c.out" | sed 's/^/  /'
		echo "{\"scenario\":\"pgbench\",\"label\":\"pgbench-c$c\",\"concurrency\":$c,\"tps\":${tps:-0}}" >>"$results"
	done
	fed_psql "$work" cordee "drop table bench_rows" >/dev/null
}

# The home's authorization transaction (docs/benchmarks.md), modelled as a
# pgbench script on the home's own database, sent as the node sends it today
# (extended protocol, each statement parsed and planned every time) and as
# prepared statements: what preparing them once per connection would save.
scenario_pgmix() {
	mint
	local c=16 mode user="" sock=$work/cordee/data/pg/run tps maxid
	[ "$(id -u)" -eq 0 ] && user="runuser -u postgres --"
	maxid=$(fed_psql "$work" cordee "select max(id) from members")
	cat >"$work/pgmix.sql" <<SQL
\\set mid random(1, $maxid)
BEGIN;
SELECT gen_random_uuid() AS vid \\gset
SELECT request_hash, response FROM home_visits WHERE visit_id = :vid;
SELECT m.id, m.status, m.plan, m.display_name, m.tickets, (m.valid_until IS NULL OR m.valid_until >= (now() AT TIME ZONE 'Europe/Paris')::date), p.revoked_at IS NOT NULL FROM passes p JOIN members m ON m.id = p.member_id WHERE m.id = :mid FOR UPDATE OF m;
SELECT request_hash, response FROM home_visits WHERE visit_id = :vid;
SELECT host FROM home_visits WHERE member_id = :mid AND decision = 'admit' AND checked_out_at IS NULL;
WITH debit AS (UPDATE members SET tickets = tickets - 1 WHERE id = :mid RETURNING tickets), movement AS (INSERT INTO ticket_movements (member_id, delta, reason, visit_id, actor) VALUES (:mid, -1, 'visit', :vid, 'bench-pgmix')) SELECT tickets FROM debit;
INSERT INTO home_visits (visit_id, host, member_id, jti, decision, request_hash, response, checked_out_at) VALUES (:vid, 'troquet', :mid, 'bench-pgmix', 'admit', 'x', repeat('x', 600), now());
COMMIT;
SQL
	chmod 0644 "$work/pgmix.sql"
	# The host's first transaction (its pending visit), with and without the
	# space-wide advisory lock that serialises the seat count.
	for mode in locked unlocked; do
		{
			echo 'BEGIN;'
			[ "$mode" = locked ] && echo 'SELECT pg_advisory_xact_lock(7405637113);'
			echo "SELECT value FROM house_settings WHERE name = 'capacity';"
			echo "INSERT INTO host_visits (visit_id, home, pseudonym, plan, jti, status) VALUES (gen_random_uuid(), 'cordee', 'bench', 'tickets', 'bench', 'refused');"
			echo 'COMMIT;'
		} >"$work/pghost-$mode.sql"
		chmod 0644 "$work/pghost-$mode.sql"
		say "pgbench: the host's pending-visit transaction, $mode, $c clients"
		tps=$($user pgbench -n -M extended -h "$work/troquet/data/pg/run" -U passerelle \
			-c "$c" -j 2 -T "$duration" -f "$work/pghost-$mode.sql" passerelle 2>&1 |
			tee "$work/pghost-$mode.out" | awk '/^tps/ {print $3}') || true
		grep -E 'latency average|^tps|ERROR' "$work/pghost-$mode.out" | head -n 5 | sed 's/^/  /'
		echo "{\"scenario\":\"pgmix\",\"label\":\"pghost-$mode\",\"concurrency\":$c,\"tps\":${tps:-0}}" >>"$results"
	done
	fed_psql "$work" troquet "delete from host_visits where jti = 'bench'" >/dev/null
	for mode in extended prepared; do
		say "pgbench: the home's authorization transaction, $mode protocol, $c clients"
		tps=$($user pgbench -n -M "$mode" -h "$sock" -U passerelle -c "$c" -j 2 \
			-T "$duration" -f "$work/pgmix.sql" passerelle 2>&1 |
			tee "$work/pgmix-$mode.out" | awk '/^tps/ {print $3}') || true
		grep -E 'latency average|^tps|error|ERROR' "$work/pgmix-$mode.out" | head -n 5 | sed 's/^/  /'
		echo "{\"scenario\":\"pgmix\",\"label\":\"pgmix-$mode\",\"concurrency\":$c,\"tps\":${tps:-0}}" >>"$results"
	done
}

scenario_directory() {
	local n=10000 d=$work/dir10k
	say "A directory of $n spaces: signed, then verified and loaded"
	mkdir -p "$d"
	# One certificate and one pass key shared by every space: directory_load
	# checks each space's fields, not that pins differ.
	/usr/bin/python3 - "$d/description.json" "$n" "$work/cordee" <<'PY'
import json, sys
path, n, home = sys.argv[1], int(sys.argv[2]), sys.argv[3]
spaces = [{"id": f"space-{i:05d}", "name": f"Espace de coworking {i}", "city": "Lyon",
           "url": f"https://node{i}.example.org:7443", "cert": f"{home}/node.crt",
           "pass_keys": [{"kid": f"space-{i:05d}-1", "public_key": f"{home}/pass.pub"}]}
          for i in range(n)]
json.dump({"federation": "passerelle-bench", "serial": 2, "valid_days": 30,
           "spaces": spaces}, open(path, "w"))
PY
	"$PASSERELLE_BIN" directory sign "$d/description.json" \
		--key "$work/coordinator/directory.key" --output "$d/directory.jws" >/dev/null
	"$bench_bin/bench_dirload" "$d/directory.jws" "$work/coordinator/directory.pub" \
		--json >"$d/out"
	grep -v '^{' "$d/out" | sed 's/^/  /'
	grep '^{' "$d/out" | /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.stdin.read()); d["scenario"] = "directory"; print(json.dumps(d))' >>"$results"
}

scenario_rss() {
	local id pid kb
	say "Resident memory of the idle nodes (without their PostgreSQL)"
	sleep 1
	for id in troquet cordee; do
		pid=$(cat "$work/$id/pid")
		kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
		echo "  $id (pid $pid): $((kb / 1024)).$(( (kb % 1024) * 10 / 1024 )) MiB resident"
		echo "{\"scenario\":\"rss\",\"label\":\"rss-$id\",\"rss_kb\":$kb}" >>"$results"
	done
}

# Which statements one check-in costs each PostgreSQL: log_statement = all
# for a few check-ins at concurrency 1, then counted from the servers' logs.
scenario_census() {
	mint
	reset_visits
	local n=50 what
	: >"$out/census.txt"
	for what in check-in check-out; do
		census_run "$what" "$n"
	done
	reset_visits
}

# One census: n requests of a kind at concurrency 1, and the statements each
# database logged for them.
census_run() {
	local what=$1 n=$2 id sizes=() args
	say "Statement census: $n ${what}s at concurrency 1 with log_statement = all"
	for id in troquet cordee; do
		fed_psql "$work" "$id" "alter system set log_statement = 'all'" >/dev/null
		fed_psql "$work" "$id" "select pg_reload_conf()" >/dev/null
		sizes+=("$(stat -c %s "$work/$id/data/pg/log/postgresql.log")")
	done
	sleep 0.5
	if [ "$what" = check-in ]; then
		args=("${checkin_req[@]}" --save "$work/census-visits.txt")
	else
		args=(--tokens "$work/census-visits.txt" --method POST
			--url "http://127.0.0.1:$host_local/api/v1/visits/{token}/checkout"
			--header "Authorization: Bearer $desk" --expect '"reported_to_home":true')
	fi
	"$loadgen" --label census --concurrency 1 --warmup 0 --duration 30 --max-requests "$n" \
		"${args[@]}" >/dev/null 2>&1 || true
	sleep 0.5
	for id in troquet cordee; do
		fed_psql "$work" "$id" "alter system reset log_statement" >/dev/null
		fed_psql "$work" "$id" "select pg_reload_conf()" >/dev/null
	done
	/usr/bin/python3 - "$work" "$n" "${sizes[0]}" "${sizes[1]}" "$what" <<'PY' | tee -a "$out/census.txt"
import collections, re, sys
work, n, what = sys.argv[1], int(sys.argv[2]), sys.argv[5]
for space, start in (("troquet", int(sys.argv[3])), ("cordee", int(sys.argv[4]))):
    with open(f"{work}/{space}/data/pg/log/postgresql.log", errors="replace") as f:
        f.seek(start)
        text = f.read()
    stmts = re.findall(r"LOG:  (?:statement|execute [^:]*): (.*?)(?=\n\S|\Z)", text, re.S)
    counts = collections.Counter(" ".join(s.split())[:90] for s in stmts)
    total = sum(counts.values())
    print(f"{space}: {total / n:.1f} statements per {what}")
    for s, c in counts.most_common():
        print(f"  {c / n:5.2f}  {s}")
PY
}

# Where PostgreSQL spends a check-in, statement by statement: both servers
# restarted with pg_stat_statements (track = all), check-ins at concurrency
# 16, then each statement's calls per check-in, mean execution and planning
# time, WAL bytes and buffers; the servers are restarted without it after.
# The execution time excludes the executor's start and end, parsing and
# the protocol: it is what the statement itself does.
scenario_statements() {
	mint
	local id n
	say "Statements: pg_stat_statements over check-ins at concurrency 16"
	pgss_restart "'pg_stat_statements'"
	for id in troquet cordee; do
		fed_psql "$work" "$id" "create extension if not exists pg_stat_statements" >/dev/null
	done
	reset_visits
	# A warm-up (plans, caches), then the measured run.
	"$loadgen" --label statements-warmup --concurrency 16 --warmup 0 --duration 2 \
		"${checkin_req[@]}" >/dev/null 2>&1 || true
	reset_visits
	for id in troquet cordee; do
		fed_psql "$work" "$id" "select pg_stat_statements_reset()" >/dev/null
	done
	rm -f "$work/statements-visits.txt"
	"$loadgen" --label statements --concurrency 16 --warmup 0 --duration "$duration" \
		"${checkin_req[@]}" --save "$work/statements-visits.txt" 2>&1 | sed 's/^/  /' || true
	n=0
	[ -f "$work/statements-visits.txt" ] && n=$(wc -l <"$work/statements-visits.txt")
	if [ "$n" -eq 0 ]; then
		echo "bench: no check-in admitted" >&2
		pgss_restart ""
		return 1
	fi
	: >"$out/statements.txt"
	for id in troquet cordee; do
		echo "  $id, per check-in ($n admitted): calls, mean exec us, mean plan us, WAL bytes, buffers" |
			tee -a "$out/statements.txt"
		fed_psql "$work" "$id" "select to_char(calls::numeric / $n, '990.00'),
			to_char(mean_exec_time * 1000, '99990'), to_char(mean_plan_time * 1000, '99990'),
			to_char(wal_bytes / calls, '999990'),
			to_char((shared_blks_hit + shared_blks_read)::numeric / calls, '9990.0'),
			left(regexp_replace(query, '\s+', ' ', 'g'), 80)
			from pg_stat_statements where calls >= $n / 10
			and dbid = (select oid from pg_database where datname = current_database())
			order by total_exec_time desc limit 12" | tr '|' ' ' | sed 's/^/   /' |
			tee -a "$out/statements.txt"
	done
	for id in troquet cordee; do
		fed_psql "$work" "$id" "drop extension pg_stat_statements" >/dev/null
	done
	pgss_restart ""
	reset_visits
}

# Restarts both nodes with shared_preload_libraries set to $1 ("" resets it):
# a node stops its embedded PostgreSQL with itself and starts it again.
pgss_restart() {
	local id
	for id in troquet cordee; do
		if [ -n "$1" ]; then
			fed_psql "$work" "$id" "alter system set shared_preload_libraries = $1" >/dev/null
		else
			# Only what pgss_restart set: other ALTER SYSTEM settings stay.
			fed_psql "$work" "$id" "alter system reset shared_preload_libraries" >/dev/null
			fed_psql "$work" "$id" "alter system reset pg_stat_statements.track" >/dev/null
		fi
	done
	fed_stop
	fed_start "$work"
	if [ -n "$1" ]; then
		# Known only once the library is loaded.
		for id in troquet cordee; do
			fed_psql "$work" "$id" "alter system set pg_stat_statements.track = 'all'" >/dev/null
			fed_psql "$work" "$id" "select pg_reload_conf()" >/dev/null
		done
	fi
}

scenario_profile() {
	mint
	reset_visits
	local pids="" id pm lpid wpids=()
	command -v perf >/dev/null || { echo "bench: no perf (apt-get install linux-perf)" >&2; return 0; }
	for id in troquet cordee; do
		pm=$(head -n1 "$work/$id/data/pg/data/postmaster.pid")
		pids+="${pids:+,}$(cat "$work/$id/pid"),$pm"
		pids+=$(ps -o pid= --ppid "$pm" | awk '{printf ",%s", $1}')
	done
	say "Profile: perf record (DWARF call graphs) of both nodes and their PostgreSQL, check-ins at concurrency 16"
	"$loadgen" --label profile-c16 --concurrency 16 --warmup 1 --duration "$((duration + 4))" \
		"${checkin_req[@]}" >"$out/profile-load.txt" 2>&1 &
	lpid=$!
	sleep 2
	# What the nodes' database sessions are doing, five times a second.
	for id in troquet cordee; do
		printf '%s\n' "select coalesce(wait_event_type, 'CPU') || ':' ||
			coalesce(wait_event, 'running') || ' (' || state || ')'
			from pg_stat_activity where datname = 'passerelle'
			and backend_type = 'client backend' and pid <> pg_backend_pid();" \
			'\watch 0.2' >"$work/waits.sql"
		chmod 0644 "$work/waits.sql"
		timeout "$duration" $( [ "$(id -u)" -eq 0 ] && echo runuser -u postgres -- ) \
			psql -X -q -At -h "$work/$id/data/pg/run" -U passerelle -d passerelle \
			-f "$work/waits.sql" >"$work/waits-$id.txt" 2>/dev/null &
		wpids+=($!)
	done
	perf record -q -F 499 --call-graph dwarf,16384 -p "$pids" -o "$out/perf.data" \
		-- sleep "$duration" >"$out/perf-record.log" 2>&1 || true
	wait "$lpid" || true
	wait "${wpids[@]}" || true
	sed 's/^/  /' "$out/profile-load.txt"
	for id in troquet cordee; do
		echo "  $id's PostgreSQL sessions (samples every 0.2 s, idle ones are waiting for their node):"
		grep -v '^$' "$work/waits-$id.txt" | sort | uniq -c | sort -rn | head -n 8 |
			awk '{ $1 = sprintf("%6d", $1); print "  " $0 }' | tee -a "$out/waits.txt"
	done
	(
		set +o pipefail
		r() { perf report -i "$out/perf.data" --stdio -g none "$@" 2>/dev/null |
			grep -v '^#' | grep '%'; }
		r --no-children --sort comm,dso | head -n 30 >"$out/perf-by-dso.txt"
		r --children --comm passerelle --sort sym | head -n 120 >"$out/perf-passerelle.txt"
		r --children --comm postgres --sort sym | head -n 120 >"$out/perf-postgres.txt"
		r --no-children --comm passerelle --sort dso,sym | head -n 60 >"$out/perf-passerelle-self.txt"
		r --no-children --comm postgres --sort dso,sym | head -n 60 >"$out/perf-postgres-self.txt"
	)
	sed 's/^/  /' "$out/perf-by-dso.txt" | head -n 15
	echo "  reports in $out/perf-*.txt (perf report -i $out/perf.data for more)"
	reset_visits
}

# An outbox backlog drained to a live peer: the host is stopped, bench_backlog
# writes BENCH_BACKLOG visits admitted by the home and checked out at the host
# while the home was down (N signed completions waiting in the host's
# outbox), then the host is started and timed from its launch until nothing
# waits (a psql \watch every 0.1 s; BENCH_DRAIN_TIMEOUT bounds it), with the
# CPU of both nodes and their PostgreSQL.  Then both ledgers are compared.
scenario_outbox() {
	local n=${BENCH_BACKLOG:-100000} limit=${BENCH_DRAIN_TIMEOUT:-300} user="" q waiting
	local hpid pid wpids=() p t0 th="" tend="" left="" before after keep=() couriers line
	[ "$(id -u)" -eq 0 ] && user="runuser -u postgres --"
	couriers=$(sed -n 's/^[[:space:]]*couriers[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' \
		"$work/troquet/passerelle.conf" | tail -n1)
	couriers=${couriers:-2}
	say "Outbox: $n completions waiting at troquet (cordee was down), drained by $couriers couriers"
	hpid=$(cat "$work/troquet/pid")
	kill -TERM "$hpid" && wait "$hpid" 2>/dev/null || true
	for p in "${FED_PIDS[@]}"; do [ "$p" = "$hpid" ] || keep+=("$p"); done
	rm -f "$work/troquet/pid"
	"$bench_bin/bench_backlog" --host "$work/troquet/passerelle.conf" \
		--home "$work/cordee/passerelle.conf" --count "$n" --ids "$work/backlog-ids.txt" |
		sed 's/^/  /'
	# Every 0.1 s whether anything waits (the first row on the outbox_due index:
	# a count(*) of 100,000 rows costs 30-50 ms), every 2 s how many; each with
	# the time of day and its own duration, taken when it is done.
	q="extract(epoch from clock_timestamp()), %s, 1000 * extract(epoch from
		clock_timestamp() - statement_timestamp())"
	waiting="from outbox where delivered_at is null and failed_at is null"
	printf "select $q;\n\\watch 0.1\n" "(select count(*) from (select 1 $waiting
		order by next_attempt_at limit 1) s)" >"$work/drain.sql"
	printf "select $q;\n\\watch 2\n" "(select count(*) $waiting)" >"$work/count.sql"
	chmod 0644 "$work/drain.sql" "$work/count.sql"
	before=$(cpu_snapshot)
	t0=$EPOCHREALTIME
	"$PASSERELLE_BIN" -c "$work/troquet/passerelle.conf" serve >>"$work/troquet/node.log" 2>&1 &
	pid=$!
	echo "$pid" >"$work/troquet/pid"
	FED_PIDS=("${keep[@]}" "$pid")
	until curl -fsS "http://127.0.0.1:$host_local/healthz" >/dev/null 2>&1; do
		kill -0 "$pid" || { tail -n 20 "$work/troquet/node.log" >&2; return 1; }
		sleep 0.05
	done
	th=$EPOCHREALTIME
	for p in drain count; do
		timeout "$limit" $user psql -X -q -At -F ' ' -h "$work/troquet/data/pg/run" \
			-U passerelle -d passerelle -f "$work/$p.sql" >"$work/$p.txt" 2>&1 &
		wpids+=($!)
	done
	while sleep 0.1; do
		line=$(grep -E '^[0-9.]+ [0-9]+ [0-9.]+$' "$work/drain.txt" | tail -n1) || true
		[ -n "$line" ] && read -r tend left _ <<<"$line"
		[ "$left" = 0 ] && break
		(( ${EPOCHREALTIME%.*} - ${t0%.*} >= limit )) && break
	done
	after=$(cpu_snapshot)
	kill "${wpids[@]}" 2>/dev/null; wait "${wpids[@]}" 2>/dev/null || true
	[ "$left" = 0 ] || { tend=$EPOCHREALTIME; left=$(fed_psql "$work" troquet "select count(*) $waiting"); }
	grep -hE '^[0-9.]+ [0-9]+ [0-9.]+$' "$work/count.txt" >"$out/outbox-drain-c$couriers.txt" || true
	echo "$tend $left 0" >>"$out/outbox-drain-c$couriers.txt"
	# Both ledgers, for the comparison.
	fed_psql "$work" troquet "select h.visit_id, h.units, md5(h.completion),
		to_char(h.checked_out_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
		o.delivered_at is not null, o.failed_at is not null, o.attempts
		from host_visits h join outbox o on o.visit_id = h.visit_id and o.kind = 'complete'" \
		>"$work/ob-host.txt"
	fed_psql "$work" cordee "select visit_id, decision, coalesce(units, -1), md5(completion),
		to_char(checked_out_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
		from home_visits where host = 'troquet'" >"$work/ob-home.txt"
	fed_psql "$work" cordee "select visit_id, reason, delta from ticket_movements
		where visit_id is not null" >"$work/ob-moves.txt"
	fed_psql "$work" cordee "select count(*) from members m left join (select member_id,
		sum(delta) s from ticket_movements group by 1) t on t.member_id = m.id
		where m.tickets <> coalesce(t.s, 0)" >"$work/ob-balances.txt"
	fed_psql "$work" cordee "select count(*), coalesce(sum(repeats), 0) from idempotency_keys
		where caller = 'troquet' and created_at >= to_timestamp($t0)" >"$work/ob-idem.txt"
	/usr/bin/python3 - "$work" "$n" "$couriers" "$t0" "$th" "$tend" "${left:-$n}" \
		"$before" "$after" "$work/drain.txt" "$work/count.txt" >>"$results" 2>"$work/ob-report.txt" <<'PY'
import json, os, sys
w, n, couriers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0, th, tend, left = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
b, a = json.loads(sys.argv[8]), json.loads(sys.argv[9])
rows = lambda f: [l.split("|") for l in open(f"{w}/{f}").read().split("\n") if l]
ids = open(f"{w}/backlog-ids.txt").read().split()
host = {r[0]: r for r in rows("ob-host.txt")}
home = {r[0]: r for r in rows("ob-home.txt")}
moves = {}
for v, reason, delta in rows("ob-moves.txt"):
    moves.setdefault(v, []).append((reason, int(delta)))
bad = {"missing": 0, "undelivered": 0, "failed": 0, "open_at_home": 0,
       "units_or_completion_differ": 0, "debits_wrong": 0}
attempts = {}
for v in ids:
    h, m = host.get(v), home.get(v)
    if h is None or m is None or m[1] != "admit":
        bad["missing"] += 1
        continue
    bad["undelivered"] += h[4] != "t"
    bad["failed"] += h[5] == "t"
    attempts[h[6]] = attempts.get(h[6], 0) + 1
    if m[2] == "-1":
        bad["open_at_home"] += 1
    elif (h[1], h[2], h[3]) != (m[2], m[3], m[4]):
        bad["units_or_completion_differ"] += 1
    mv = moves.get(v, [])
    bad["debits_wrong"] += [x for x in mv if x[0] != "visit_unit"] != [("visit", -1)]
bad["balances_not_sum_of_movements"] = int(open(f"{w}/ob-balances.txt").read())
keys, repeats = map(int, open(f"{w}/ob-idem.txt").read().split("|"))
bad["idempotent_repeats"] = repeats
drained = n - left
elapsed = tend - t0
d = {"scenario": "outbox", "label": f"outbox-c{couriers}", "messages": n, "drained": drained,
     "couriers": couriers, "elapsed_s": round(elapsed, 3), "startup_s": round(th - t0, 3),
     "rate": round(drained / elapsed, 1), "rate_after_startup": round(drained / (tend - th), 1),
     "timed_out": left != 0, "wall_s": round(elapsed, 3), "loadavg_1m": os.getloadavg()[0],
     "poll_s": round(sum(float(l.split()[2]) for f in sys.argv[10:] for l in open(f)
                         if len(l.split()) == 3 and l[0].isdigit()) / 1000, 3),
     "cpu_s": {k: round(a[k] - b.get(k, 0), 3) for k in a},
     "verify": dict(bad, ok=not any(bad.values()) and left == 0, idempotency_keys=keys,
                    attempts=attempts)}
print(json.dumps(d))
r = sys.stderr.write
r(f"{drained} of {n} messages in {elapsed:.1f} s from the host's launch: {d['rate']:.0f}/s"
  f"{' (TIMED OUT: partial rate)' if left else ''}; {d['rate_after_startup']:.0f}/s after"
  f" it answered (+{th - t0:.1f} s)\n")
if drained:
    r("CPU per message, us: " + ", ".join(f"{k} {1e6 * v / drained:.0f}"
                                          for k, v in d["cpu_s"].items()) +
      f"; cores busy {100 * sum(d['cpu_s'].values()) / elapsed / os.cpu_count():.0f} %"
      f" of {os.cpu_count()} (load average {d['loadavg_1m']:.1f}); the polls took"
      f" {d['poll_s']:.2f} s of it\n")
r(f"verification {'OK' if d['verify']['ok'] else 'FAILED'}: " +
  ", ".join(f"{k} {v}" for k, v in d["verify"].items() if k != "ok") + "\n")
PY
	sed 's/^/  /' "$work/ob-report.txt"
}

summary() {
	say "Summary (figures in $results)"
	/usr/bin/python3 "$src/tests/bench/summary.py" "$results"
}

for s in "${scenarios[@]}"; do
	case "$s" in
	checkin|checkout) scenario_checkin ;;
	sodium) scenario_verify ;;
	*) "scenario_$s" ;;
	esac
done
summary | tee "$out/summary.txt"
