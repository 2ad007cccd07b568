/*
 * test_tls.c - node/tls.c and the PKI scripts in certs/.
 *
 * The certificates are made by certs/pki.sh, the script operators use, in a
 * temporary directory: a federation CA, nodes under it, and a second CA
 * whose certificates must be refused.  The handshakes are real: a server
 * context from tls_server_ctx_new and a client talk over a socketpair.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "tls.h"

static char tmp[64];
static char pki[1024];

/*
 * Runs a shell command and returns its exit status (-1 when it did not
 * exit).  Its output goes to stderr, away from the TAP stream.
 */
static int __attribute__((format(printf, 1, 2)))
run(const char *fmt, ...)
{
	char cmd[4096], full[4200];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "( %s ) 1>&2", cmd);
	st = system(full);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Runs a shell command and returns the first line of its output. */
static int __attribute__((format(printf, 3, 4)))
capture(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	FILE *p;
	int ok;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	ok = fgets(out, (int)outlen, p) != NULL;
	if (pclose(p) != 0 || !ok)
		return -1;
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

static const char *
path(const char *rel)
{
	static char buf[8][512];
	static int n;
	char *p = buf[n++ % 8];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmp, rel);
	return p;
}

static X509 *
read_cert(const char *file)
{
	FILE *f = fopen(file, "r");
	X509 *cert;

	if (f == NULL)
		return NULL;
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return cert;
}

static int
file_mode(const char *file)
{
	struct stat st;

	if (stat(file, &st) < 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

static int
file_exists(const char *file)
{
	return access(file, F_OK) == 0;
}

/* Validity in days, or -1. */
static int
cert_days(X509 *cert)
{
	int days = 0, secs = 0;

	if (!ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert),
		X509_get0_notAfter(cert)))
		return -1;
	return secs == 0 ? days : -1;
}

/* Counts subjectAltName entries of a type; with value, only those equal. */
static int
san_count(X509 *cert, int type, const char *value)
{
	GENERAL_NAMES *names;
	int i, n = 0;

	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (names == NULL)
		return 0;
	for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const ASN1_STRING *s;

		if (gn->type != type)
			continue;
		if (value == NULL) {
			n++;
			continue;
		}
		s = type == GEN_DNS ? gn->d.dNSName : gn->d.ia5;
		if ((size_t)ASN1_STRING_length(s) == strlen(value) &&
		    memcmp(ASN1_STRING_get0_data(s), value, strlen(value)) == 0)
			n++;
	}
	GENERAL_NAMES_free(names);
	return n;
}

static int
ext_critical(X509 *cert, int nid)
{
	int i = X509_get_ext_by_NID(cert, nid, -1);

	return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, i));
}

/* The O= of a certificate's subject, or "". */
static const char *
subject_org(X509 *cert, char *buf, int len)
{
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
		NID_organizationName, buf, len) < 0)
		buf[0] = '\0';
	return buf;
}

/* A self-signed certificate made with openssl directly. */
static int
make_self_signed(const char *name, const char *san)
{
	return run("openssl req -x509 -newkey ec -pkeyopt "
		   "ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test "
		   "-keyout '%s/%s.key' -out '%s/%s.crt' %s%s%s",
	    tmp, name, tmp, name, san ? "-addext 'subjectAltName=" : "",
	    san ? san : "", san ? "'" : "");
}

/* ---------------------------------------------------------------------- */
/* Handshakes over a socketpair */

static SSL_CTX *
client_ctx(const char *cert, const char *key, const char *ca, int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    (max_version != 0 &&
		SSL_CTX_set_max_proto_version(ctx, max_version) != 1) ||
	    (cert != NULL &&
		(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) !=
			1))) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct shake {
	SSL_SESSION *session_in;   /* offered by the client, if any */
	SSL_SESSION *session_out;  /* the client's session afterwards */
	int reused;                /* the client resumed session_in */
	char peer_space[64];       /* the client's space, seen by the server */
};

/* Steps one side of the handshake: 1 done, 0 again, -1 failed. */
static int
shake_step(SSL *ssl)
{
	int r = SSL_do_handshake(ssl), e;

	if (r == 1)
		return 1;
	e = SSL_get_error(ssl, r);
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/*
 * Runs a handshake, then sends one message from server to client (which
 * also delivers TLS 1.3 session tickets).  Returns 0 when both sides
 * succeeded, -1 otherwise.
 */
static int
handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct shake *sh)
{
	SSL *s = NULL, *c = NULL;
	int sv[2] = { -1, -1 }, sdone = 0, cdone = 0, i, r = -1;
	char buf[16];

	memset(sh->peer_space, 0, sizeof(sh->peer_space));
	sh->session_out = NULL;
	sh->reused = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)
		goto out;
	s = SSL_new(sctx);
	c = SSL_new(cctx);
	if (s == NULL || c == NULL || SSL_set_fd(s, sv[0]) != 1 ||
	    SSL_set_fd(c, sv[1]) != 1 || SSL_set1_host(c, "alpha.example") != 1)
		goto out;
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	if (sh->session_in != NULL && SSL_set_session(c, sh->session_in) != 1)
		goto out;

	for (i = 0; i < 100 && !(sdone == 1 && cdone == 1); i++) {
		if (cdone == 0)
			cdone = shake_step(c);
		if (sdone == 0)
			sdone = shake_step(s);
		if (cdone < 0 || sdone < 0)
			goto out;
	}
	if (sdone != 1 || cdone != 1)
		goto out;

	/*
	 * In TLS 1.3 the client finishes before the server has judged its
	 * certificate; only a message coming back proves the server agreed.
	 */
	if (SSL_write(s, "hello", 5) != 5)
		goto out;
	for (i = 0; i < 100; i++) {
		int n = SSL_read(c, buf, sizeof(buf));

		if (n == 5 && memcmp(buf, "hello", 5) == 0)
			break;
		if (n > 0 || SSL_get_error(c, n) != SSL_ERROR_WANT_READ)
			goto out;
	}
	if (i == 100)
		goto out;
	if (SSL_get0_peer_certificate(s) != NULL)
		tls_cert_space_id(SSL_get0_peer_certificate(s), sh->peer_space,
		    sizeof(sh->peer_space));
	sh->reused = SSL_session_reused(c);
	sh->session_out = SSL_get1_session(c);
	/* Without a close_notify, OpenSSL forgets a session (bad shutdown). */
	SSL_shutdown(c);
	SSL_shutdown(s);
	r = 0;
out:
	SSL_free(s);
	SSL_free(c);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	ERR_clear_error();
	return r;
}

/* ---------------------------------------------------------------------- */

static void
test_pki(void)
{
	char before[256], after[256];
	X509 *cert;
	char org[64];

	CHECK(run("sh '%s' ca '%s/ca' 'Test CA'", pki, tmp) == 0,
	    "pki.sh ca creates a CA");
	CHECK(file_mode(path("ca/ca.key")) == 0600, "ca.key is mode 0600 (%o)",
	    file_mode(path("ca/ca.key")));
	CHECK(file_exists(path("ca/crl.pem")), "pki.sh ca writes a first CRL");

	capture(before, sizeof(before), "openssl x509 -in '%s' -noout "
	    "-fingerprint -sha256", path("ca/ca.crt"));
	CHECK(run("sh '%s' ca '%s/ca' 'Other' 2>/dev/null", pki, tmp) != 0,
	    "pki.sh ca refuses to overwrite a CA");
	capture(after, sizeof(after), "openssl x509 -in '%s' -noout "
	    "-fingerprint -sha256", path("ca/ca.crt"));
	CHECK(before[0] != '\0' && strcmp(before, after) == 0,
	    "the existing CA is untouched");

	CHECK(run("sh '%s' node '%s/ca' '%s/a' alpha alpha.example 127.0.0.1 "
		  "::1", pki, tmp, tmp) == 0, "pki.sh node alpha");
	CHECK(run("sh '%s' node '%s/ca' '%s/b' beta beta.example", pki, tmp,
		  tmp) == 0, "pki.sh node beta");
	CHECK(run("sh '%s' ca '%s/ca2' && sh '%s' node '%s/ca2' '%s/evil' "
		  "beta beta.example", pki, tmp, pki, tmp, tmp) == 0,
	    "a second CA and a node under it");
	CHECK(file_mode(path("a/node.key")) == 0600,
	    "node.key is mode 0600 (%o)", file_mode(path("a/node.key")));
	CHECK(file_exists(path("a/node.csr")) && file_exists(path("a/ca.crt")),
	    "pki.sh node leaves node.csr and ca.crt");
	CHECK(run("sh '%s' csr '%s/bad' Bad_Id bad.example 2>/dev/null", pki,
		  tmp) != 0 && !file_exists(path("bad/node.key")),
	    "pki.sh csr refuses an invalid space id");
	CHECK(run("sh '%s' csr '%s/bad' ok 'ok.example,URI:x' 2>/dev/null", pki,
		  tmp) != 0, "pki.sh csr refuses a DNS name with a comma");
	CHECK(run("sh '%s' csr '%s/a' alpha alpha.example 2>/dev/null", pki,
		  tmp) != 0, "pki.sh csr refuses to overwrite node.key");

	CHECK(run("openssl verify -CAfile '%s' -purpose sslclient '%s'",
		  path("ca/ca.crt"), path("a/node.crt")) == 0,
	    "node certificate verifies for sslclient");
	CHECK(run("openssl verify -CAfile '%s' -purpose sslserver '%s'",
		  path("ca/ca.crt"), path("a/node.crt")) == 0,
	    "node certificate verifies for sslserver");
	CHECK(run("openssl verify -CAfile '%s' -purpose sslclient '%s' "
		  "2>/dev/null", path("ca2/ca.crt"), path("a/node.crt")) != 0,
	    "node certificate does not verify against another CA");

	/* The node profile. */
	cert = read_cert(path("a/node.crt"));
	CHECK(cert != NULL, "read node certificate");
	if (cert != NULL) {
		CHECK(!(X509_get_extension_flags(cert) & EXFLAG_CA) &&
		    ext_critical(cert, NID_basic_constraints),
		    "node: basicConstraints critical CA:FALSE");
		CHECK(X509_get_key_usage(cert) == KU_DIGITAL_SIGNATURE &&
		    ext_critical(cert, NID_key_usage),
		    "node: keyUsage critical digitalSignature only");
		CHECK((X509_get_extended_key_usage(cert) &
			  (XKU_SSL_SERVER | XKU_SSL_CLIENT)) ==
			(XKU_SSL_SERVER | XKU_SSL_CLIENT),
		    "node: extendedKeyUsage serverAuth, clientAuth");
		CHECK(X509_get0_subject_key_id(cert) != NULL &&
		    X509_get0_authority_key_id(cert) != NULL,
		    "node: subject and authority key identifiers");
		CHECK(san_count(cert, GEN_URI, "urn:passerelle:space:alpha") ==
			1 && san_count(cert, GEN_DNS, "alpha.example") == 1 &&
		    san_count(cert, GEN_IPADD, NULL) == 2,
		    "node: SAN has the space URI, the DNS name, two IPs");
		CHECK(cert_days(cert) == 825, "node: valid 825 days (%d)",
		    cert_days(cert));
		CHECK_STR(subject_org(cert, org, sizeof(org)), "alpha",
		    "node: subject O");
		X509_free(cert);
	}

	/* The CA profile. */
	cert = read_cert(path("ca/ca.crt"));
	CHECK(cert != NULL, "read CA certificate");
	if (cert != NULL) {
		CHECK(X509_check_ca(cert) == 1 && X509_get_pathlen(cert) == 0 &&
		    ext_critical(cert, NID_basic_constraints),
		    "CA: basicConstraints critical CA:TRUE pathlen:0");
		CHECK(X509_get_key_usage(cert) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN) &&
		    ext_critical(cert, NID_key_usage),
		    "CA: keyUsage critical keyCertSign, cRLSign");
		CHECK(cert_days(cert) == 3650, "CA: valid 3650 days (%d)",
		    cert_days(cert));
		X509_free(cert);
	}
}

static void
test_sign(void)
{
	char org[64], id[64];
	unsigned char *der = NULL, *hit;
	long len;
	FILE *f;
	X509 *cert;

	/* A tampered request: one byte of its subject changed. */
	CHECK(run("sh '%s' csr '%s/t' tamper tamper.example && openssl req "
		  "-in '%s/t/node.csr' -outform DER -out '%s/t/node.der'",
		  pki, tmp, tmp, tmp) == 0, "make a request to tamper with");
	f = fopen(path("t/node.der"), "r+b");
	if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 &&
	    (der = malloc((size_t)len)) != NULL && fseek(f, 0, SEEK_SET) == 0 &&
	    fread(der, 1, (size_t)len, f) == (size_t)len &&
	    (hit = memmem(der, (size_t)len, "tamper.example", 14)) != NULL) {
		hit[7] = 'f'; /* tamper.fxample */
		fseek(f, 0, SEEK_SET);
		fwrite(der, 1, (size_t)len, f);
	}
	free(der);
	if (f != NULL)
		fclose(f);
	CHECK(run("openssl req -inform DER -in '%s/t/node.der' -out "
		  "'%s/t/bad.csr' && grep -q BEGIN '%s/t/bad.csr'", tmp, tmp,
		  tmp) == 0, "tampered request written");
	CHECK(run("sh '%s' sign '%s/ca' '%s/t/bad.csr' '%s/t/bad.crt' tamper "
		  "tamper.example 2>/dev/null", pki, tmp, tmp, tmp) != 0 &&
	    !file_exists(path("t/bad.crt")),
	    "pki.sh sign refuses a tampered request");
	CHECK(run("sh '%s' sign '%s/ca' '%s/t/node.csr' '%s/t/node.crt' "
		  "tamper tamper.example", pki, tmp, tmp, tmp) == 0,
	    "pki.sh sign accepts the untampered request");

	/* The CA writes the SAN and subject; the request's are ignored. */
	CHECK(run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		  "-nodes -keyout '%s/g.key' -out '%s/g.csr' "
		  "-subj /O=evil/CN=evil.example -addext 'subjectAltName="
		  "URI:urn:passerelle:space:evil,DNS:evil.example' 2>/dev/null",
		  tmp, tmp) == 0, "make a request asking for space evil");
	CHECK(run("sh '%s' sign '%s/ca' '%s/g.csr' '%s/g.crt' gamma "
		  "gamma.example 10.0.0.3 --days 30", pki, tmp, tmp, tmp) == 0,
	    "pki.sh sign gamma --days 30");
	cert = read_cert(path("g.crt"));
	CHECK(cert != NULL, "read gamma's certificate");
	if (cert != NULL) {
		CHECK(tls_cert_space_id(cert, id, sizeof(id)) == 0 &&
		    strcmp(id, "gamma") == 0, "gamma: space id from the CA");
		CHECK(san_count(cert, GEN_URI, NULL) == 1 &&
		    san_count(cert, GEN_DNS, NULL) == 1 &&
		    san_count(cert, GEN_DNS, "evil.example") == 0 &&
		    san_count(cert, GEN_IPADD, NULL) == 1,
		    "gamma: nothing of the request's SAN was copied");
		CHECK_STR(subject_org(cert, org, sizeof(org)), "gamma",
		    "gamma: subject O from the CA");
		CHECK(cert_days(cert) == 30, "gamma: valid 30 days (%d)",
		    cert_days(cert));
		X509_free(cert);
	}
}

static void
test_identity(void)
{
	char id[64], hex[65], want[128];
	uint8_t spki[32], spki_b[32];
	int i, r;

	r = tls_file_space_id(path("a/node.crt"), id, sizeof(id));
	CHECK(r == 0, "tls_file_space_id alpha: %d", r);
	CHECK_STR(r == 0 ? id : NULL, "alpha", "space id of alpha");
	r = tls_file_space_id(path("b/node.crt"), id, sizeof(id));
	CHECK_STR(r == 0 ? id : NULL, "beta", "space id of beta");
	CHECK(tls_file_space_id(path("a/node.crt"), id, 5) == -ENOSPC,
	    "a buffer too small gives -ENOSPC");
	CHECK(tls_file_space_id(path("nope.crt"), id, sizeof(id)) == -ENOENT,
	    "a missing file gives -ENOENT");
	CHECK(tls_file_space_id(path("a/node.key"), id, sizeof(id)) == -EINVAL,
	    "a file that is not a certificate gives -EINVAL");

	CHECK(tls_file_spki_sha256(path("a/node.crt"), spki) == 0,
	    "tls_file_spki_sha256");
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", spki[i]);
	CHECK(capture(want, sizeof(want), "openssl x509 -in '%s' -noout "
		      "-pubkey | openssl pkey -pubin -outform DER | openssl "
		      "dgst -sha256 -r", path("a/node.crt")) == 0,
	    "openssl computes the SPKI hash");
	want[64] = '\0';
	CHECK_STR(hex, want, "SPKI SHA-256 equals openssl's");
	CHECK(tls_file_spki_sha256(path("b/node.crt"), spki_b) == 0 &&
	    memcmp(spki, spki_b, 32) != 0, "another key, another SPKI hash");

	/* Certificates made with openssl directly. */
	CHECK(make_self_signed("nosan", NULL) == 0 &&
	    tls_file_space_id(path("nosan.crt"), id, sizeof(id)) == -ENOENT,
	    "no subjectAltName gives -ENOENT");
	CHECK(make_self_signed("nouri", "DNS:nouri.example") == 0 &&
	    tls_file_space_id(path("nouri.crt"), id, sizeof(id)) == -ENOENT,
	    "a SAN without the space URI gives -ENOENT");
	CHECK(make_self_signed("otheruri", "URI:https://x.example/,"
			       "URI:urn:passerelle:spaces:x") == 0 &&
	    tls_file_space_id(path("otheruri.crt"), id, sizeof(id)) == -ENOENT,
	    "other URIs are not a space id");
	r = make_self_signed("mixed", "URI:https://x.example/,"
				      "URI:urn:passerelle:space:delta-2,DNS:d");
	CHECK(r == 0 && tls_file_space_id(path("mixed.crt"), id, sizeof(id)) ==
		0 && strcmp(id, "delta-2") == 0,
	    "the space URI among others is found");
	CHECK(make_self_signed("two", "URI:urn:passerelle:space:a,"
				      "URI:urn:passerelle:space:b") == 0 &&
	    tls_file_space_id(path("two.crt"), id, sizeof(id)) == -EINVAL,
	    "two space URIs give -EINVAL");
	CHECK(make_self_signed("upper", "URI:urn:passerelle:space:Alpha") == 0 &&
	    tls_file_space_id(path("upper.crt"), id, sizeof(id)) == -EINVAL,
	    "an upper-case space id gives -EINVAL");
	CHECK(make_self_signed("empty", "URI:urn:passerelle:space:") == 0 &&
	    tls_file_space_id(path("empty.crt"), id, sizeof(id)) == -EINVAL,
	    "an empty space id gives -EINVAL");
	CHECK(make_self_signed("dash", "URI:urn:passerelle:space:-a") == 0 &&
	    tls_file_space_id(path("dash.crt"), id, sizeof(id)) == -EINVAL,
	    "a space id starting with '-' gives -EINVAL");
}

static void
test_server_ctx(void)
{
	char err[512] = "";
	SSL_CTX *ctx;

	ctx = tls_server_ctx_new(path("a/node.crt"), path("a/node.key"),
	    path("ca/ca.crt"), err, sizeof(err));
	CHECK(ctx != NULL, "server context with good files (%s)", err);
	SSL_CTX_free(ctx);

	err[0] = '\0';
	ctx = tls_server_ctx_new(path("a/node.crt"), path("b/node.key"),
	    path("ca/ca.crt"), err, sizeof(err));
	CHECK(ctx == NULL && strstr(err, "b/node.key") != NULL &&
	    strstr(err, "mismatch") != NULL,
	    "a key of another certificate is refused: %s", err);
	SSL_CTX_free(ctx);

	err[0] = '\0';
	ctx = tls_server_ctx_new(path("a/node.crt"), path("a/node.key"),
	    path("nope/ca.crt"), err, sizeof(err));
	CHECK(ctx == NULL && strstr(err, "nope/ca.crt") != NULL &&
	    strstr(err, "No such file") != NULL,
	    "a missing CA file is refused: %s", err);
	SSL_CTX_free(ctx);

	err[0] = '\0';
	ctx = tls_server_ctx_new(path("nope/node.crt"), path("a/node.key"),
	    path("ca/ca.crt"), err, sizeof(err));
	CHECK(ctx == NULL && strstr(err, "nope/node.crt") != NULL,
	    "a missing certificate is refused: %s", err);
	SSL_CTX_free(ctx);

	err[0] = '\0';
	ctx = tls_server_ctx_new(path("evil/node.crt"), path("evil/node.key"),
	    path("ca/ca.crt"), err, sizeof(err));
	CHECK(ctx == NULL && strstr(err, "does not verify") != NULL,
	    "a certificate from another CA is refused: %s", err);
	SSL_CTX_free(ctx);
}

static void
test_handshake(void)
{
	struct shake sh = { 0 };
	char err[512] = "";
	SSL_CTX *sctx, *crl_ctx = NULL, *cctx;
	SSL_SESSION *session;
	int r;

	sctx = tls_server_ctx_new(path("a/node.crt"), path("a/node.key"),
	    path("ca/ca.crt"), err, sizeof(err));
	CHECK(sctx != NULL, "server context for the handshakes (%s)", err);
	if (sctx == NULL)
		return;

	cctx = client_ctx(path("b/node.crt"), path("b/node.key"),
	    path("ca/ca.crt"), 0);
	r = cctx != NULL ? handshake(sctx, cctx, &sh) : -1;
	CHECK(r == 0, "a node of the federation gets in");
	CHECK_STR(sh.peer_space, "beta", "the server reads the caller's space");
	SSL_SESSION_free(sh.session_out);
	SSL_CTX_free(cctx);

	cctx = client_ctx(path("evil/node.crt"), path("evil/node.key"),
	    path("ca/ca.crt"), 0);
	CHECK(cctx != NULL && handshake(sctx, cctx, &sh) < 0,
	    "a certificate from another CA is refused");
	SSL_CTX_free(cctx);

	cctx = client_ctx(NULL, NULL, path("ca/ca.crt"), 0);
	CHECK(cctx != NULL && handshake(sctx, cctx, &sh) < 0,
	    "a client without a certificate is refused");
	SSL_CTX_free(cctx);

	/* The federation CA's key, but a certificate for servers only. */
	CHECK(run("printf '%%s\\n' 'extendedKeyUsage=serverAuth' "
		  "'subjectAltName=URI:urn:passerelle:space:srv' >'%s/srv.ext' "
		  "&& umask 077 && openssl x509 -req -in '%s/g.csr' -CA "
		  "'%s/ca/ca.crt' -CAkey '%s/ca/ca.key' -days 1 -extfile "
		  "'%s/srv.ext' -out '%s/srv.crt' 2>/dev/null", tmp, tmp, tmp,
		  tmp, tmp, tmp) == 0, "make a serverAuth-only certificate");
	cctx = client_ctx(path("srv.crt"), path("g.key"), path("ca/ca.crt"), 0);
	CHECK(cctx != NULL && handshake(sctx, cctx, &sh) < 0,
	    "a certificate without clientAuth is refused");
	SSL_CTX_free(cctx);

	cctx = client_ctx(path("b/node.crt"), path("b/node.key"),
	    path("ca2/ca.crt"), 0);
	CHECK(cctx != NULL && handshake(sctx, cctx, &sh) < 0,
	    "the client refuses a server it does not trust (control)");
	SSL_CTX_free(cctx);

	/*
	 * Resumption keeps the client certificate: this is what the session id
	 * context is for, in TLS 1.2 and TLS 1.3 alike.
	 */
	for (int v = 0; v < 2; v++) {
		const char *name = v == 0 ? "TLS 1.2" : "TLS 1.3";

		cctx = client_ctx(path("b/node.crt"), path("b/node.key"),
		    path("ca/ca.crt"), v == 0 ? TLS1_2_VERSION : 0);
		r = cctx != NULL ? handshake(sctx, cctx, &sh) : -1;
		session = sh.session_out;
		CHECK(r == 0 && session != NULL, "%s: first handshake", name);
		sh.session_in = session;
		r = session != NULL ? handshake(sctx, cctx, &sh) : -1;
		CHECK(r == 0 && sh.reused, "%s: session resumed", name);
		CHECK_STR(sh.peer_space, "beta", "resumed session's space");
		SSL_SESSION_free(sh.session_out);
		SSL_SESSION_free(session);
		sh.session_in = NULL;
		SSL_CTX_free(cctx);
	}

	/* Revocation: beta revoked, the tamper node still in. */
	CHECK(run("sh '%s' revoke '%s/ca' '%s/b/node.crt' --reason "
		  "keyCompromise", pki, tmp, tmp) == 0, "pki.sh revoke beta");
	CHECK(run("sh '%s' revoke '%s/ca2' '%s/a/node.crt' 2>/dev/null", pki,
		  tmp, tmp) != 0, "pki.sh revoke refuses another CA's certificate");
	CHECK(run("sh '%s' crl '%s/ca' --days 7", pki, tmp) == 0,
	    "pki.sh crl");
	CHECK(run("openssl verify -crl_check -CAfile '%s/ca/ca.crt' -CRLfile "
		  "'%s/ca/crl.pem' '%s/b/node.crt' 2>/dev/null", tmp, tmp,
		  tmp) != 0, "openssl sees beta revoked");
	err[0] = '\0';
	crl_ctx = tls_server_ctx_new(path("a/node.crt"), path("a/node.key"),
	    path("ca/ca.crt"), err, sizeof(err));
	CHECK(crl_ctx != NULL &&
	    tls_ctx_load_crl(crl_ctx, path("ca/crl.pem"), err, sizeof(err)) ==
		0, "tls_ctx_load_crl (%s)", err);
	err[0] = '\0';
	CHECK(crl_ctx != NULL &&
	    tls_ctx_load_crl(crl_ctx, path("nope/crl.pem"), err, sizeof(err)) <
		0 && strstr(err, "nope/crl.pem") != NULL,
	    "a missing CRL is refused: %s", err);
	if (crl_ctx != NULL) {
		cctx = client_ctx(path("b/node.crt"), path("b/node.key"),
		    path("ca/ca.crt"), 0);
		CHECK(cctx != NULL && handshake(sctx, cctx, &sh) == 0,
		    "without the CRL, beta still gets in (control)");
		SSL_SESSION_free(sh.session_out);
		CHECK(cctx != NULL && handshake(crl_ctx, cctx, &sh) < 0,
		    "with the CRL, revoked beta is refused");
		SSL_CTX_free(cctx);
		cctx = client_ctx(path("t/node.crt"), path("t/node.key"),
		    path("ca/ca.crt"), 0);
		CHECK(cctx != NULL && handshake(crl_ctx, cctx, &sh) == 0,
		    "with the CRL, a valid node gets in");
		SSL_SESSION_free(sh.session_out);
		SSL_CTX_free(cctx);
	}
	SSL_CTX_free(crl_ctx);
	SSL_CTX_free(sctx);
}

int
main(void)
{
	const char *src = getenv("PASSERELLE_SOURCE");
	const char *keep = getenv("PASSERELLE_KEEP_TMP");

	signal(SIGPIPE, SIG_IGN);
	snprintf(pki, sizeof(pki), "%s/certs/pki.sh", src ? src : ".");
	snprintf(tmp, sizeof(tmp), "/tmp/passerelle-tls-XXXXXX");
	CHECK(mkdtemp(tmp) != NULL, "temporary directory %s", tmp);
	CHECK(access(pki, R_OK) == 0, "%s is there (PASSERELLE_SOURCE)", pki);

	test_pki();
	test_sign();
	test_identity();
	test_server_ctx();
	test_handshake();

	if (keep == NULL || keep[0] == '\0')
		run("rm -rf '%s'", tmp);
	return check_done();
}
