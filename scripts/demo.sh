#!/bin/bash
# The demo federation: Le Troquet numérique (Bourgoin-Jallieu) and La Cordée
# (Lyon), each a real node on its own embedded PostgreSQL, with a federation
# CA and a signed directory made by the same tools operators use.  A La Cordée
# member with ten half-day tickets checks in at Le Troquet's front desk; both
# databases record the visit.  Then both nodes keep serving until Ctrl-C
# (or stop at once with --once).
#
# Usage: scripts/demo.sh [--once]
# Environment: PASSERELLE_DEMO_DIR (default /var/tmp/passerelle-demo: the
# embedded PostgreSQL runs as an unprivileged user, which must reach it),
# DEMO_PORT_BASE (default 7440: federation faces 7443/7444, local 7080/7081
# are derived as base+3, base+4 and base-360, base-359), PASSERELLE_BIN (a
# binary to run instead of building build/passerelle; the test of this
# script gives the one under test).
set -euo pipefail

once=false
for a in "$@"; do
	case "$a" in
	--once) once=true ;;
	-h|--help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "demo: unknown argument '$a' (try --once)" >&2; exit 2 ;;
	esac
done

src=$(cd "$(dirname "$0")/.." && pwd)
"$src/scripts/install-deps.sh"
[ -n "${PASSERELLE_BIN:-}" ] || "$src/scripts/build.sh"
bin=${PASSERELLE_BIN:-$src/build/passerelle}
pki="$src/certs/pki.sh"
demo=${PASSERELLE_DEMO_DIR:-/var/tmp/passerelle-demo}
base=${DEMO_PORT_BASE:-7440}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

pids=()
stop_nodes() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	pids=()
}
trap stop_nodes EXIT
trap 'echo; exit 0' INT TERM

# A fresh federation every time; an old demo's nodes are stopped first.
if [ -d "$demo" ]; then
	for conf in "$demo"/*/passerelle.conf; do
		[ -f "$conf" ] || continue
		pkill -f -- "-c $conf serve" 2>/dev/null || true
	done
	sleep 0.5
	for pg in "$demo"/*/data/pg; do
		[ -d "$pg/data" ] && runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl \
			-D "$pg/data" -m immediate stop >/dev/null 2>&1 || true
	done
	rm -rf "$demo"
fi
mkdir -p "$demo"
chmod 0755 "$demo"

say "The coordinator creates the federation: a CA and a directory-signing key"
"$pki" ca "$demo/coordinator/ca" "Passerelle Rhône-Alpes CA" >/dev/null
"$bin" key generate "$demo/coordinator/directory.key" \
	--public "$demo/coordinator/directory.pub"
echo "CA: $demo/coordinator/ca/ca.crt"

# space id, name, city, federation port, local port, map details (JSON)
h='"09:00-19:00"'
weekdays="\"mon\": $h, \"tue\": $h, \"wed\": $h, \"thu\": $h, \"fri\": $h"
spaces=(
	"troquet|Le Troquet numérique|Bourgoin-Jallieu|$((base + 3))|$((base - 360))|\"lat\": 45.5866, \"lon\": 5.2794, \"capacity\": 25, \"hours\": {$weekdays}, \"services\": [\"coworking\", \"télétravail\", \"salle de réunion\", \"domiciliation\"]"
	"cordee|La Cordée Lyon|Lyon|$((base + 4))|$((base - 359))|\"lat\": 45.7640, \"lon\": 4.8357, \"capacity\": 40, \"hours\": {$weekdays}, \"services\": [\"coworking\", \"salle de réunion\", \"cuisine\"]"
)

desc_spaces=""
for s in "${spaces[@]}"; do
	IFS='|' read -r id name city fport lport details <<<"$s"
	dir="$demo/$id"
	mkdir -p "$dir"
	say "$name gets its node certificate and pass-signing key"
	"$pki" node "$demo/coordinator/ca" "$dir" "$id" "$id.localhost" 127.0.0.1 >/dev/null
	"$bin" key generate "$dir/pass.key" --public "$dir/pass.pub"
	cat >"$dir/passerelle.conf" <<CONF
# $name: a Passerelle node (see docs/operating.md).
[node]
space_id = $id
data_dir = data
timezone = Europe/Paris

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
CONF
	echo "certificate $dir/node.crt (urn:passerelle:space:$id), config $dir/passerelle.conf"
	desc_spaces+="${desc_spaces:+,}
    {\"id\": \"$id\", \"name\": \"$name\", \"city\": \"$city\",
     \"url\": \"https://127.0.0.1:$fport\", \"cert\": \"$id/node.crt\",
     \"pass_keys\": [{\"kid\": \"$id-1\", \"public_key\": \"$id/pass.pub\"}], $details}"
done

say "The coordinator signs the directory (serial 1) and hands it to both spaces"
cat >"$demo/directory.json" <<JSON
{"federation": "passerelle-rhone-alpes", "serial": 1, "valid_days": 30,
 "spaces": [$desc_spaces]}
JSON
"$bin" directory sign "$demo/directory.json" --key "$demo/coordinator/directory.key" \
	--output "$demo/coordinator/directory.jws"
for s in "${spaces[@]}"; do
	IFS='|' read -r id _ <<<"$s"
	cp "$demo/coordinator/directory.jws" "$demo/$id/directory.jws"
	cp "$demo/coordinator/directory.pub" "$demo/$id/coordinator.pub"
done
"$bin" -c "$demo/troquet/passerelle.conf" directory show
"$bin" -c "$demo/troquet/passerelle.conf" directory export --geojson \
	--output "$demo/spaces.geojson"
echo "the map of spaces: $demo/spaces.geojson (GeoJSON)"

say "Both nodes start, each on its own embedded PostgreSQL"
for s in "${spaces[@]}"; do
	IFS='|' read -r id _ _ _ lport _ <<<"$s"
	"$bin" -c "$demo/$id/passerelle.conf" serve >"$demo/$id/node.log" 2>&1 &
	pids+=($!)
done
for s in "${spaces[@]}"; do
	IFS='|' read -r id _ _ _ lport _ <<<"$s"
	for _ in $(seq 1 300); do
		curl -fsS "http://127.0.0.1:$lport/healthz" >/dev/null 2>&1 && break
		if ! kill -0 "${pids[0]}" 2>/dev/null || ! kill -0 "${pids[1]}" 2>/dev/null; then
			echo "demo: a node stopped; its log:" >&2
			tail -n 20 "$demo"/*/node.log >&2
			exit 1
		fi
		sleep 0.1
	done
	health=$(curl -fsS "http://127.0.0.1:$lport/healthz") || {
		echo "demo: $id does not answer on http://127.0.0.1:$lport; its log:" >&2
		tail -n 20 "$demo/$id/node.log" >&2
		exit 1
	}
	echo "$id: $health"
done

cordee="$bin -c $demo/cordee/passerelle.conf"
troquet="$bin -c $demo/troquet/passerelle.conf"

say "La Cordée's manager adds Camille with a book of ten half-day tickets"
$cordee member add "Camille Durand" --email camille@example.org --tickets 10
say "and issues her pass (a QR code on her phone; SVG in $demo/camille-pass.svg)"
# Shown as it comes, and its last line kept (not "tee /dev/stderr": that
# opens the file anew at its start when the output goes to a file, and the
# QR code overwrote the beginning of the log).
issued=$($cordee pass issue camille@example.org --svg "$demo/camille-pass.svg" --qr)
printf '%s\n' "$issued"
token=${issued##*$'\n'}
echo "${#token} bytes"

say "Le Troquet's front desk scans it (POST /api/v1/checkin on the local face)"
desk=$($troquet staff add "Accueil Troquet" --role concierge)
# The same accounts sign in to the web page (a demo password, not for real use).
printf 'passerelle-demo\n' >"$demo/demo-password"
$troquet staff passwd "Accueil Troquet" --password-file "$demo/demo-password" >/dev/null
$cordee staff add "Gérante Cordée" --role manager >/dev/null
$cordee staff passwd "Gérante Cordée" --password-file "$demo/demo-password" >/dev/null
answer=$(curl -fsS -H "Authorization: Bearer $desk" -H 'Content-Type: application/json' \
	-d "{\"pass\": \"$token\"}" "http://127.0.0.1:$((base - 360))/api/v1/checkin")
echo "$answer" | python3 -c 'import json,sys; a=json.load(sys.stdin)
a["receipt"] = a["receipt"][:40] + "... (signed by the home)"; print(json.dumps(a, indent=2))'
visit=$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["visit_id"])')
echo "$answer" | grep -q '"decision":"admit"' || { echo "demo: not admitted" >&2; exit 1; }

say "What each side recorded"
echo "-- Le Troquet (host): who is here"
$troquet visit list --present
echo "-- La Cordée (home): Camille's tickets"
$cordee member show camille@example.org

say "The pass verifies with a standard JOSE library (python3-jwcrypto) and the directory's JWKS"
/usr/bin/python3 "$src/scripts/verify-pass.py" "$demo/coordinator/directory.pub" \
	"$demo/coordinator/directory.jws" "$token"

say "At the end of the day Camille checks out"
$troquet visit checkout "$visit"
sleep 1.5
echo "-- La Cordée (home) now knows the visit is complete:"
runuser -u postgres -- psql -X -P pager=off -h "$demo/cordee/data/pg/run" -U passerelle -d passerelle -Atc \
	"select 'visit ' || visit_id || ' at ' || host || ': ' || decision || ', '
	        || coalesce(units::text, '?') || ' unit(s), checked out '
	        || coalesce(checked_out_at::text, 'not yet') from home_visits"

if $once; then
	say "Done (--once): stopping both nodes"
	exit 0
fi
say "Both nodes keep serving; Ctrl-C stops them"
for s in "${spaces[@]}"; do
	IFS='|' read -r id name _ fport lport _ <<<"$s"
	echo "$name: federation https://127.0.0.1:$fport (mutual TLS)," \
		"front desk API http://127.0.0.1:$lport, log $demo/$id/node.log"
done
echo "front desk token at Le Troquet: $desk"
echo "web page: Le Troquet's desk at http://127.0.0.1:$((base - 360))/ (sign in as"
echo "  'Accueil Troquet'), La Cordée's office at http://127.0.0.1:$((base - 359))/"
echo "  (sign in as 'Gérante Cordée'); password: passerelle-demo"
echo "try: $troquet visit checkin '$token'"
wait
