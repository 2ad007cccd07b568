#!/bin/sh
# certs/pki.sh - the federation's certificate authority and node certificates.
#
# One script for operators, the coordinator, the demo and the tests, so that
# what is tested is what is deployed.  It wraps the openssl command line with
# the profiles of certs/openssl.cnf: a federation CA (ECDSA P-256, pathlen:0),
# node keys and requests, node certificates whose subjectAltName names the
# space (URI:urn:passerelle:space:ID), revocation and the CRL.
#
# It is not a general-purpose CA: there are no intermediates, and the CA,
# not the request, decides every field of a certificate except its key.
# Files holding private keys are created mode 0600 (umask 077), never
# overwritten, and written whole or not at all (temporary file, then rename).
set -eu

LC_ALL=C
export LC_ALL

PROG=${0##*/}
CERTS_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
CNF=${PASSERELLE_PKI_CNF:-$CERTS_DIR/openssl.cnf}
OPENSSL=${OPENSSL:-openssl}
SPACE_URI_PREFIX=urn:passerelle:space:
CA_DAYS=3650
NODE_DAYS=825
CRL_DAYS=30

usage() {
	cat <<EOF
usage: $PROG COMMAND ARGS...

  $PROG ca DIR [NAME]
      Create a federation CA in DIR: ca.key (P-256, mode 0600), ca.crt
      (self-signed, $CA_DAYS days), the issuance database and an empty
      crl.pem.  NAME is the CA's common name (default "Passerelle
      federation CA").  Refuses to touch a DIR that already holds a CA.

  $PROG csr OUT_DIR SPACE_ID DNS_NAME
      Create OUT_DIR/node.key (P-256, mode 0600) and OUT_DIR/node.csr with
      subject O=SPACE_ID, CN=DNS_NAME.  Refuses to overwrite node.key.

  $PROG sign CA_DIR CSR OUT_CRT SPACE_ID DNS_NAME [IP...] [--days N]
      Check the request's self-signature, then issue a node certificate for
      its key.  The subject and subjectAltName come from the arguments
      (URI:${SPACE_URI_PREFIX}SPACE_ID, DNS:DNS_NAME, IP:each IP), never
      from the request.  Default validity $NODE_DAYS days.

  $PROG node CA_DIR OUT_DIR SPACE_ID DNS_NAME [IP...] [--days N]
      csr and sign in one go: OUT_DIR/node.key, node.csr, node.crt, and a
      copy of the CA certificate as OUT_DIR/ca.crt.

  $PROG revoke CA_DIR CERT [--reason REASON]
      Record CERT as revoked and rewrite CA_DIR/crl.pem.  REASON is one of
      unspecified, keyCompromise, CACompromise, affiliationChanged,
      superseded, cessationOfOperation, certificateHold.

  $PROG crl CA_DIR [--days N]
      Rewrite CA_DIR/crl.pem (valid $CRL_DAYS days by default).  Run it
      again before the CRL expires: peers that check the CRL refuse every
      certificate once it has expired.

SPACE_ID matches ^[a-z0-9][a-z0-9-]{0,62}\$.  Environment: OPENSSL (the
openssl binary), PASSERELLE_PKI_CNF (the profiles, default certs/openssl.cnf
beside this script).
EOF
}

# A wrong number of arguments: the one usage line that applies.
bad_usage() {
	printf 'usage: %s %s\n' "$PROG" "$1" >&2
	exit 2
}

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

# Runs openssl quietly: its chatter is shown only when it fails.
run_openssl() {
	if ! "$OPENSSL" "$@" >"$WORK/openssl.log" 2>&1; then
		cat "$WORK/openssl.log" >&2
		return 1
	fi
}

# Every command works in a temporary directory next to its outputs, so that
# a rename puts each file in place whole, and nothing is left on failure.
WORK=
cleanup() {
	if [ -n "$WORK" ]; then
		rm -rf -- "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

make_work_dir() {
	WORK=$(mktemp -d "$1/.pki.XXXXXX") ||
		die "cannot create a temporary directory in $1"
	# Set again here: a subshell does not inherit the trap.
	trap cleanup EXIT
}

# --------------------------------------------------------------------------
# Argument checks.  Names end up inside -subj and the subjectAltName list,
# so anything outside these alphabets ("/", ",", ":") is refused rather
# than escaped.

check_space_id() {
	case $1 in
	'' | -* | *[!a-z0-9-]*)
		die "invalid space id '$1': expected ^[a-z0-9][a-z0-9-]{0,62}\$" ;;
	esac
	[ ${#1} -le 63 ] ||
		die "invalid space id '$1': longer than 63 characters"
}

check_dns_name() {
	case $1 in
	'' | .* | *. | *..* | *[!A-Za-z0-9.-]*)
		die "invalid DNS name '$1'" ;;
	esac
	[ ${#1} -le 253 ] || die "invalid DNS name '$1': too long"
	(
		IFS=.
		set -f
		# shellcheck disable=SC2086 # splitting on dots is the point
		set -- $1
		for label in "$@"; do
			[ ${#label} -le 63 ] || exit 1
			case $label in -* | *-) exit 1 ;; esac
		done
	) || die "invalid DNS name '$1': bad label"
}

check_ip() {
	case $1 in
	*.* | *:*) ;;
	*) die "invalid IP address '$1'" ;;
	esac
	case $1 in
	*[!0-9A-Fa-f:.]*) die "invalid IP address '$1'" ;;
	esac
}

check_days() {
	case $1 in
	'' | *[!0-9]* | 0*) die "invalid number of days '$1'" ;;
	esac
	if [ ${#1} -gt 5 ] || [ "$1" -gt 36500 ]; then
		die "invalid number of days '$1'"
	fi
}

check_ca_dir() {
	[ -d "$1" ] || die "$1: no such CA directory"
	for f in ca.key ca.crt index.txt crlnumber; do
		[ -f "$1/$f" ] ||
			die "$1: not a CA directory ($f missing; see '$PROG ca')"
	done
}

abs_dir() {
	(CDPATH='' cd -- "$1" && pwd)
}

# The command line of sign, node, revoke and crl:
#   parse_args OPT REST NAME... -- ARG...
# sets the variable OPT from --OPT V or --OPT=V, and the variables NAME...
# from the arguments, in order.  The arguments after them are, by REST:
# "ips", IP addresses (checked) into $ips, each after a blank; "count",
# only counted; anything else, a usage line shown at once.  $n counts the
# arguments: the caller checks it.
parse_args() {
	opt=$1 rest=$2 arg_names=
	shift 2
	while [ "$1" != -- ]; do
		arg_names="$arg_names $1"
		shift
	done
	shift
	n=0 ips=
	while [ $# -gt 0 ]; do
		case $1 in
		--"$opt")
			[ $# -ge 2 ] || die "--$opt needs a value"
			eval "$opt=\$2"
			shift 2
			continue ;;
		--"$opt"=*) eval "$opt=\${1#--$opt=}" ;;
		-*) die "unknown option '$1'" ;;
		*)
			n=$((n + 1))
			arg_i=0 arg_var=
			for arg_name in $arg_names; do
				arg_i=$((arg_i + 1))
				[ "$arg_i" -ne "$n" ] || arg_var=$arg_name
			done
			if [ -n "$arg_var" ]; then
				eval "$arg_var=\$1"
			else
				case $rest in
				ips) check_ip "$1"; ips="$ips $1" ;;
				count) ;;
				*) bad_usage "$rest" ;;
				esac
			fi ;;
		esac
		shift
	done
}

# --------------------------------------------------------------------------
# Commands.  Each runs in its own subshell (see main), so its variables and
# its temporary directory are its own.

new_key() {
	# umask 077: the key is never readable by others, not even briefly.
	(umask 077 && "$OPENSSL" genpkey -algorithm EC \
	    -pkeyopt ec_paramgen_curve:P-256 \
	    -pkeyopt ec_param_enc:named_curve -out "$1" 2>"$WORK/openssl.log") ||
		{ cat "$WORK/openssl.log" >&2; die "cannot generate a key"; }
	chmod 600 "$1"
}

cmd_ca() {
	[ $# -eq 1 ] || [ $# -eq 2 ] || bad_usage "ca DIR [NAME]"
	dir=$1
	name=${2:-Passerelle federation CA}
	case $name in
	'' | */* | *\\* | *+* | *=*)
		die "invalid CA name '$name' (no '/', '\\', '+' or '=')" ;;
	esac
	for f in ca.key ca.crt index.txt; do
		[ ! -e "$dir/$f" ] ||
			die "$dir/$f exists: refusing to overwrite a CA"
	done
	if [ ! -d "$dir" ]; then
		(umask 077 && mkdir -p -- "$dir") ||
			die "cannot create $dir"
	fi
	dir=$(abs_dir "$dir")
	make_work_dir "$dir"

	new_key "$WORK/ca.key"
	run_openssl req -new -x509 -config "$CNF" -key "$WORK/ca.key" \
	    -subj "/O=Passerelle/CN=$name" -extensions ca_ext \
	    -days "$CA_DAYS" -out "$WORK/ca.crt" ||
		die "cannot create the CA certificate"
	: >"$WORK/index.txt"
	echo 1000 >"$WORK/crlnumber"
	mkdir "$WORK/issued"

	# The key goes last: a CA directory is complete once ca.key is there.
	for f in ca.crt index.txt crlnumber issued ca.key; do
		mv -- "$WORK/$f" "$dir/$f"
	done
	write_crl "$dir" "$CRL_DAYS"
	echo "created CA '$name' in $dir"
}

cmd_csr() {
	[ $# -eq 3 ] || bad_usage "csr OUT_DIR SPACE_ID DNS_NAME"
	out=$1 space=$2 dns=$3
	check_space_id "$space"
	check_dns_name "$dns"
	[ ! -e "$out/node.key" ] ||
		die "$out/node.key exists: refusing to overwrite a key"
	mkdir -p -- "$out" || die "cannot create $out"
	make_work_dir "$out"

	new_key "$WORK/node.key"
	PKI_SAN="URI:$SPACE_URI_PREFIX$space,DNS:$dns" \
	    run_openssl req -new -config "$CNF" -key "$WORK/node.key" \
	    -subj "/O=$space/CN=$dns" -reqexts node_req_ext \
	    -out "$WORK/node.csr" || die "cannot create the request"
	mv -- "$WORK/node.csr" "$out/node.csr"
	mv -- "$WORK/node.key" "$out/node.key"
	echo "created $out/node.key and $out/node.csr for space $space"
}

cmd_sign() {
	days=$NODE_DAYS ca='' csr='' crt='' space='' dns=''
	parse_args days ips ca csr crt space dns -- "$@"
	[ $n -ge 5 ] || bad_usage "sign CA_DIR CSR OUT_CRT SPACE_ID DNS_NAME [IP...] [--days N]"
	check_days "$days"
	check_space_id "$space"
	check_dns_name "$dns"
	check_ca_dir "$ca"
	ca=$(abs_dir "$ca")
	[ -f "$csr" ] || die "$csr: no such file"
	crt_dir=$(dirname -- "$crt")
	[ -d "$crt_dir" ] || die "$crt_dir: no such directory"
	make_work_dir "$crt_dir"

	# `openssl req -verify` reports a bad signature but exits 0 (OpenSSL
	# 3.0), so its message is what decides.
	if ! "$OPENSSL" req -in "$csr" -noout -verify >"$WORK/verify.log" 2>&1 ||
	    ! grep -q 'verify OK' "$WORK/verify.log"; then
		cat "$WORK/verify.log" >&2
		die "$csr: the request's self-signature does not verify; refusing to sign it"
	fi

	san="URI:$SPACE_URI_PREFIX$space,DNS:$dns"
	for ip in $ips; do
		san="$san,IP:$ip"
	done
	PKI_CA_DIR=$ca PKI_SAN=$san run_openssl ca -batch -config "$CNF" -notext -utf8 \
	    -in "$csr" -out "$WORK/node.crt" -days "$days" \
	    -subj "/O=$space/CN=$dns" -extensions node_ext ||
		die "cannot sign $csr"
	run_openssl verify -CAfile "$ca/ca.crt" -purpose sslserver \
	    "$WORK/node.crt" || die "the new certificate does not verify"
	mv -- "$WORK/node.crt" "$crt"
	serial=$("$OPENSSL" x509 -in "$crt" -noout -serial)
	end=$("$OPENSSL" x509 -in "$crt" -noout -enddate)
	echo "issued $crt: $san, $serial, $end"
}

cmd_node() {
	days=$NODE_DAYS ca='' out='' space='' dns=''
	parse_args days ips ca out space dns -- "$@"
	[ $n -ge 4 ] || bad_usage "node CA_DIR OUT_DIR SPACE_ID DNS_NAME [IP...] [--days N]"
	# Check everything before the key is made, so that a typo leaves
	# nothing behind.
	check_days "$days"
	check_space_id "$space"
	check_dns_name "$dns"
	check_ca_dir "$ca"

	(cmd_csr "$out" "$space" "$dns")
	# shellcheck disable=SC2086 # IP addresses hold no blanks (check_ip)
	(cmd_sign "$ca" "$out/node.csr" "$out/node.crt" "$space" "$dns" \
	    $ips --days "$days")
	cp -- "$ca/ca.crt" "$out/ca.crt"
	echo "node files for space $space are in $out"
}

write_crl() {
	PKI_CA_DIR=$1 run_openssl ca -config "$CNF" -gencrl -crldays "$2" \
	    -out "$WORK/crl.pem" || die "cannot write the CRL"
	mv -- "$WORK/crl.pem" "$1/crl.pem"
}

cmd_revoke() {
	reason='' ca='' cert=''
	parse_args reason "revoke CA_DIR CERT [--reason REASON]" ca cert -- "$@"
	[ $n -eq 2 ] || bad_usage "revoke CA_DIR CERT [--reason REASON]"
	case $reason in
	'' | unspecified | keyCompromise | CACompromise | affiliationChanged | \
	    superseded | cessationOfOperation | certificateHold) ;;
	*) die "invalid revocation reason '$reason'" ;;
	esac
	check_ca_dir "$ca"
	ca=$(abs_dir "$ca")
	[ -f "$cert" ] || die "$cert: no such file"
	make_work_dir "$ca"

	# Only certificates of this CA can be revoked by it, expired or not.
	run_openssl verify -no_check_time -CAfile "$ca/ca.crt" "$cert" ||
		die "$cert was not issued by the CA in $ca"
	PKI_CA_DIR=$ca run_openssl ca -config "$CNF" -revoke "$cert" \
	    ${reason:+-crl_reason "$reason"} ||
		die "cannot revoke $cert"
	write_crl "$ca" "$CRL_DAYS"
	serial=$("$OPENSSL" x509 -in "$cert" -noout -serial)
	echo "revoked $cert (${serial}); $ca/crl.pem rewritten"
}

cmd_crl() {
	days=$CRL_DAYS ca=''
	parse_args days count ca -- "$@"
	[ $n -eq 1 ] || bad_usage "crl CA_DIR [--days N]"
	check_days "$days"
	check_ca_dir "$ca"
	ca=$(abs_dir "$ca")
	make_work_dir "$ca"
	write_crl "$ca" "$days"
	next=$("$OPENSSL" crl -in "$ca/crl.pem" -noout -nextupdate)
	echo "wrote $ca/crl.pem (${next})"
}

# --------------------------------------------------------------------------

[ $# -ge 1 ] || { usage >&2; exit 2; }
for arg in "$@"; do
	case $arg in -h | --help) usage; exit 0 ;; esac
done
[ -r "$CNF" ] || die "$CNF: cannot read the profiles"
command -v "$OPENSSL" >/dev/null 2>&1 || die "$OPENSSL: command not found"
cmd=$1
shift
case $cmd in
-h | --help | help) usage ;;
ca) cmd_ca "$@" ;;
csr) cmd_csr "$@" ;;
sign) cmd_sign "$@" ;;
node) cmd_node "$@" ;;
revoke) cmd_revoke "$@" ;;
crl) cmd_crl "$@" ;;
*) printf '%s: unknown command %s\n' "$PROG" "$cmd" >&2; usage >&2; exit 2 ;;
esac
