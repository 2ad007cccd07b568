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
# Needs PASSERELLE_BIN and PASSERELLE_SOURCE.  Extra configuration for every
# node can be given in FED_EXTRA_CONF (INI text appended to each file).

FED_PIDS=()

fed_free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

fed_init() {
	local dir=$1
	mkdir -p "$dir"
	# The embedded PostgreSQL runs as the postgres user when we are root.
	chmod 0755 "$dir"
}

fed_setup() {
	local dir=$1; shift
	local pki="$PASSERELLE_SOURCE/certs/pki.sh" bin=$PASSERELLE_BIN desc="" id fport lport
	"$pki" ca "$dir/coordinator/ca" "Passerelle bench CA" >/dev/null
	"$bin" key generate "$dir/coordinator/directory.key" \
		--public "$dir/coordinator/directory.pub" >/dev/null
	for id in "$@"; do
		mkdir -p "$dir/$id"
		fport=$(fed_free_port)
		lport=$(fed_free_port)
		echo "$fport $lport" >"$dir/$id/ports"
		"$pki" node "$dir/coordinator/ca" "$dir/$id" "$id" "$id.localhost" 127.0.0.1 >/dev/null
		"$bin" key generate "$dir/$id/pass.key" --public "$dir/$id/pass.pub" >/dev/null
		cat >"$dir/$id/passerelle.conf" <<CONF
# Benchmark node $id (defaults everywhere but the addresses).
[node]
space_id = $id
data_dir = data

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
	local dir=$1 id=$2 sql=$3 user=""
	[ "$(id -u)" -eq 0 ] && user="runuser -u postgres --"
	$user psql -X -q -h "$dir/$id/data/pg/run" -U passerelle -d passerelle \
		-v ON_ERROR_STOP=1 -Atc "$sql"
}
