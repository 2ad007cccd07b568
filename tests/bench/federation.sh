# tests/bench/federation.sh - a real federation on loopback for the
# benchmarks, built the way scripts/demo.sh builds the demo (certs/pki.sh,
# `passerelle key generate`, `passerelle directory sign`): each space a real
# node on its own embedded PostgreSQL with the default, durable settings.
#
# A bash library: source it, then
#   fed_init DIR                 a fresh folder (readable by the postgres user)
#   fed_setup DIR SPACE...       CA, certificates, keys, configs, directory
#   fed_start DIR                start every node, wait until healthy
#   fed_stop DIR                 SIGTERM the nodes this shell started, wait
#   fed_psql DIR SPACE SQL       run SQL on a space's embedded PostgreSQL
#   fed_port DIR SPACE fed|local the ports a space listens on
#   fed_pg_start DIR [MAXCONN]   optional, before fed_setup: ONE PostgreSQL
#                                server for all the spaces (default durable
#                                settings, unix socket only, in DIR/pg); then
#                                fed_setup gives each space its own database
#                                on it ([node] database = postgresql:///...)
#                                instead of the embedded PostgreSQL
#   fed_pg_stop DIR              stop that server (after fed_stop)
#   fed_pg_psql DIR DB SQL       run SQL on it as postgres, in database DB
# Needs PASSERELLE_BIN and PASSERELLE_SOURCE.  Extra configuration for every
# node can be given in FED_EXTRA_CONF (INI text appended to each file).

FED_PIDS=()

fed_free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# COUNT distinct free ports: all bound at once, so none is given twice (the
# nodes bind with SO_REUSEPORT, so two of them given the same port would
# share it silently instead of failing).
fed_free_ports() {
	/usr/bin/python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

fed_init() {
	local dir=$1
	mkdir -p "$dir"
	# The embedded PostgreSQL runs as the postgres user when we are root.
	chmod 0755 "$dir"
}

fed_as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

fed_pg_bin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] || { echo "federation: no PostgreSQL in /usr/lib/postgresql" >&2; return 1; }
	echo "$d"
}

# The shared server: initdb as postgres with the default (durable) settings,
# trust on its unix socket only (no TCP), socket and log in DIR/pg.  Writes
# "SOCKDIR PORT" to DIR/pg/server, which fed_setup and fed_psql then follow.
fed_pg_start() {
	local dir=$1 maxconn=${2:-400} bin port nosync=""
	bin=$(fed_pg_bin) || return 1
	mkdir -p "$dir/pg/run" "$dir/pg/log"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir/pg"
	[ -n "${PASSERELLE_PG_NOSYNC:-}" ] && nosync=--no-sync
	fed_as_postgres "$bin/initdb" -D "$dir/pg/data" -U postgres -E UTF8 \
		--locale=C.UTF-8 --auth-local=trust --auth-host=reject $nosync \
		>"$dir/pg/log/initdb.log" 2>&1 ||
		{ cat "$dir/pg/log/initdb.log" >&2; return 1; }
	port=$(fed_free_port)
	# Only what a shared test server needs; commits stay durable (fsync,
	# synchronous_commit and full_page_writes at their defaults).
	cat >>"$dir/pg/data/postgresql.conf" <<CONF
# tests/bench/federation.sh: one server for the whole federation
listen_addresses = ''
port = $port
unix_socket_directories = '$dir/pg/run'
max_connections = $maxconn
logging_collector = off
CONF
	fed_as_postgres "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log/postgresql.log" \
		-w -t 120 start >/dev/null ||
		{ tail -n 20 "$dir/pg/log/postgresql.log" >&2; return 1; }
	echo "$dir/pg/run $port" >"$dir/pg/server"
	# The nodes' role: it owns its space's database (and so its schema).
	fed_pg_psql "$dir" postgres "create role passerelle login" >/dev/null
}

fed_pg_stop() {
	local dir=$1 bin
	[ -f "$dir/pg/server" ] && [ -f "$dir/pg/data/postmaster.pid" ] || return 0
	bin=$(fed_pg_bin) || return 0
	fed_as_postgres "$bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true
}

fed_pg_psql() {
	local dir=$1 db=$2 sql=$3 sock port
	read -r sock port <"$dir/pg/server"
	fed_as_postgres psql -X -q -h "$sock" -p "$port" -U postgres -d "$db" \
		-v ON_ERROR_STOP=1 -Atc "$sql"
}

fed_setup() {
	local dir=$1; shift
	local pki="$PASSERELLE_SOURCE/certs/pki.sh" bin=$PASSERELLE_BIN desc="" id fport lport
	local dbline sock port db ports
	read -r -a ports <<<"$(fed_free_ports $((2 * $#)))"
	"$pki" ca "$dir/coordinator/ca" "Passerelle bench CA" >/dev/null
	"$bin" key generate "$dir/coordinator/directory.key" \
		--public "$dir/coordinator/directory.pub" >/dev/null
	for id in "$@"; do
		mkdir -p "$dir/$id"
		fport=${ports[0]}
		lport=${ports[1]}
		ports=("${ports[@]:2}")
		echo "$fport $lport" >"$dir/$id/ports"
		"$pki" node "$dir/coordinator/ca" "$dir/$id" "$id" "$id.localhost" 127.0.0.1 >/dev/null
		"$bin" key generate "$dir/$id/pass.key" --public "$dir/$id/pass.pub" >/dev/null
		dbline=""
		if [ -f "$dir/pg/server" ]; then
			# A database of its own on the shared server (fed_pg_start),
			# which the node migrates when it starts.
			read -r sock port <"$dir/pg/server"
			db=bench_${id//-/_}
			fed_pg_psql "$dir" postgres "create database $db owner passerelle" >/dev/null
			echo "$db" >"$dir/$id/dbname"
			dbline="database = postgresql:///$db?host=$sock&port=$port&user=passerelle"
		fi
		cat >"$dir/$id/passerelle.conf" <<CONF
# Benchmark node $id (defaults everywhere but the addresses).
[node]
space_id = $id
data_dir = data
$dbline

[federation]
listen = 127.0.0.1:$fport
cert = node.crt
key = node.key
ca = ca.crt
directory = directory.jws
directory_key = coordinator.pub

[local]
listen = 127.0.0.1:$lport

[pass]
key = pass.key
kid = $id-1
${FED_EXTRA_CONF:-}
CONF
		desc+="${desc:+,}
    {\"id\": \"$id\", \"name\": \"Bench $id\", \"city\": \"Lyon\",
     \"url\": \"https://127.0.0.1:$fport\", \"cert\": \"$id/node.crt\",
     \"pass_keys\": [{\"kid\": \"$id-1\", \"public_key\": \"$id/pass.pub\"}]}"
	done
	cat >"$dir/directory.json" <<JSON
{"federation": "passerelle-bench", "serial": 1, "valid_days": 30,
 "spaces": [$desc]}
JSON
	"$bin" directory sign "$dir/directory.json" --key "$dir/coordinator/directory.key" \
		--output "$dir/coordinator/directory.jws" >/dev/null
	for id in "$@"; do
		cp "$dir/coordinator/directory.jws" "$dir/$id/directory.jws"
		cp "$dir/coordinator/directory.pub" "$dir/$id/coordinator.pub"
		cp "$dir/coordinator/ca/ca.crt" "$dir/$id/ca.crt" 2>/dev/null || true
	done
}

fed_port() {
	local dir=$1 id=$2 which=$3 f l
	read -r f l <"$dir/$id/ports"
	if [ "$which" = fed ]; then echo "$f"; else echo "$l"; fi
}

fed_start() {
	local dir=$1 conf id lport ok pid
	local started=()
	for conf in "$dir"/*/passerelle.conf; do
		"$PASSERELLE_BIN" -c "$conf" serve >"$(dirname "$conf")/node.log" 2>&1 &
		pid=$!
		FED_PIDS+=("$pid")
		started+=("$pid")
		echo "$pid" >"$(dirname "$conf")/pid"
	done
	for conf in "$dir"/*/passerelle.conf; do
		id=$(basename "$(dirname "$conf")")
		lport=$(fed_port "$dir" "$id" local)
		ok=false
		for _ in $(seq 1 600); do
			if curl -fsS "http://127.0.0.1:$lport/healthz" >/dev/null 2>&1; then
				ok=true
				break
			fi
			for pid in "${started[@]}"; do
				if ! kill -0 "$pid" 2>/dev/null; then
					echo "federation: a node stopped; its log:" >&2
					tail -n 20 "$dir"/*/node.log >&2
					return 1
				fi
			done
			sleep 0.1
		done
		if ! $ok; then
			echo "federation: $id did not become healthy in 60 s" >&2
			tail -n 20 "$dir/$id/node.log" >&2
			return 1
		fi
	done
}

fed_stop() {
	local pid
	for pid in "${FED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${FED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	FED_PIDS=()
}

fed_psql() {
	local dir=$1 id=$2 sql=$3 user="" sock port
	[ "$(id -u)" -eq 0 ] && user="runuser -u postgres --"
	if [ -f "$dir/$id/dbname" ]; then
		read -r sock port <"$dir/pg/server"
		$user psql -X -q -h "$sock" -p "$port" -U passerelle -d "$(cat "$dir/$id/dbname")" \
			-v ON_ERROR_STOP=1 -Atc "$sql"
		return
	fi
	$user psql -X -q -h "$dir/$id/data/pg/run" -U passerelle -d passerelle \
		-v ON_ERROR_STOP=1 -Atc "$sql"
}
