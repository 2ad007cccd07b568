/*
 * test_directory.c - the signed directory, from a description with real
 * certificate and key files to the lookups a node makes; also the key files
 * themselves (mode, `openssl pkey`, refusal to overwrite).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "b64url.h"
#include "check.h"
#include "directory.h"
#include "jws.h"
#include "key.h"
#include "pass.h"
#include "tls.h"
#include "util.h"

#define NOW ((int64_t)1767225600) /* 2026-01-01T00:00:00Z */

static char tmpdir[] = "/tmp/passerelle-test-directory-XXXXXX";
static uint8_t coord_sk[64], coord_pk[32];

static char *
tmp_path(const char *name)
{
	return util_aprintf("%s/%s", tmpdir, name);
}

/* A self-signed Ed25519 certificate naming space id, as the CA scripts do. */
static int
make_cert(const char *file, const char *id)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_EXTENSION *ext = NULL;
	X509_NAME *name;
	char *san = NULL, *path = tmp_path(file);
	FILE *f = NULL;
	int ok = 0;

	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	x = X509_new();
	san = util_aprintf("URI:%s%s,DNS:%s.example", TLS_SPACE_URI_PREFIX, id, id);
	if (pkey == NULL || x == NULL || san == NULL || path == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)id, -1, -1, 0);
	X509_set_issuer_name(x, name);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto out;
	if (X509_sign(x, pkey, NULL) <= 0)
		goto out;
	f = fopen(path, "w");
	if (f == NULL || !PEM_write_X509(f, x))
		goto out;
	ok = 1;
out:
	if (f != NULL)
		fclose(f);
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(pkey);
	free(san);
	free(path);
	return ok ? 0 : -1;
}

/* Generates a pass key pair: private file, public file, and the raw keys. */
static int
make_pass_key(const char *stem, uint8_t sk[64], uint8_t pk[32])
{
	char *priv = util_aprintf("%s/%s.key", tmpdir, stem);
	char *pub = util_aprintf("%s/%s.pub", tmpdir, stem);
	int r;

	r = key_generate_file(priv);
	if (r == 0)
		r = key_load_private(priv, sk, pk);
	if (r == 0)
		r = key_write_public(pub, pk);
	free(priv);
	free(pub);
	return r;
}

static void
test_key_files(void)
{
	uint8_t sk[64], pk[32], pk2[32], pk3[32], msg_sig[64];
	char *priv = tmp_path("k.key"), *pub = tmp_path("k.pub"), *cmd;
	struct stat st;
	int r;

	r = key_generate_file(priv);
	CHECK(r == 0, "generate a key file (r=%d)", r);
	CHECK(stat(priv, &st) == 0 && (st.st_mode & 0777) == 0600,
	    "private key file is mode 0600 (%o)", (unsigned)(st.st_mode & 0777));
	CHECK(key_generate_file(priv) == -EEXIST,
	    "an existing key file is never overwritten");
	CHECK(key_load_private(priv, sk, pk) == 0, "load the private key");
	CHECK(memcmp(sk + 32, pk, 32) == 0, "libsodium form is seed || public");
	crypto_sign_detached(msg_sig, NULL, (const uint8_t *)"hi", 2, sk);
	CHECK(ed25519_verify(msg_sig, (const uint8_t *)"hi", 2, pk) == 0,
	    "the loaded key signs");
	CHECK(key_load_public(priv, pk2) == 0 && memcmp(pk, pk2, 32) == 0,
	    "public key read from the private key file");
	CHECK(key_write_public(pub, pk) == 0, "write the public key");
	CHECK(stat(pub, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "public key file is mode 0644");
	CHECK(key_load_public(pub, pk3) == 0 && memcmp(pk, pk3, 32) == 0,
	    "public key read back from its SPKI file");
	CHECK(key_load_private(pub, sk, pk3) < 0,
	    "a public key file is not a private key");
	CHECK(key_load_public("/nonexistent/key.pem", pk3) == -ENOENT,
	    "missing file gives -ENOENT");

	/* The files must be what any tool expects, not just what we read. */
	if (system("command -v openssl >/dev/null 2>&1") == 0) {
		cmd = util_aprintf("openssl pkey -in %s -noout 2>/dev/null", priv);
		CHECK(system(cmd) == 0, "openssl pkey reads the private key");
		free(cmd);
		cmd = util_aprintf("openssl pkey -pubin -in %s -noout 2>/dev/null",
		    pub);
		CHECK(system(cmd) == 0, "openssl pkey reads the public key");
		free(cmd);
	} else {
		printf("# openssl command not found, skipping its checks\n");
	}
	free(priv);
	free(pub);
}

static const char description[] =
    "{\"federation\":\"Auvergne-Rhone coworking\",\"serial\":7,"
    "\"valid_days\":30,\"spaces\":["
    "{\"id\":\"cordee\",\"name\":\"La Cordee\",\"city\":\"Lyon\","
    "\"url\":\"https://cordee.example:8443\",\"cert\":\"cordee.crt\","
    "\"pass_keys\":[{\"kid\":\"cordee-1\",\"public_key\":\"cordee-1.pub\"},"
    "{\"kid\":\"cordee-2\",\"public_key\":\"cordee-2.key\"}]},"
    "{\"id\":\"troquet\",\"name\":\"Le Troquet numerique\","
    "\"url\":\"https://troquet.example:8443\",\"cert\":\"troquet.crt\","
    "\"pass_keys\":[{\"kid\":\"troquet-1\",\"public_key\":\"troquet-1.pub\"}]}"
    "]}";

static uint8_t cordee1_sk[64], cordee1_pk[32], cordee2_sk[64], cordee2_pk[32];
static uint8_t troquet1_sk[64], troquet1_pk[32];

static char *
sign_ok(const char *desc)
{
	char err[256] = "", *token = NULL;
	int r;

	r = directory_sign_description(desc, tmpdir, coord_sk, "coord-1", NOW,
	    &token, err, sizeof(err));
	CHECK(r == 0 && token != NULL, "sign the description (r=%d: %s)", r, err);
	return token;
}

static void
test_sign_and_load(void)
{
	struct directory *dir = NULL;
	const struct directory_space *sp;
	const char *e = NULL;
	uint8_t pin[32], pk[32];
	char *token, *path;
	struct jws *jws = NULL;
	int r;

	token = sign_ok(description);
	if (token == NULL)
		return;
	CHECK(jws_parse(token, DIRECTORY_MAX_TOKEN, &jws) == 0 &&
	    strcmp(jws_header_string(jws, "typ"), "directory") == 0 &&
	    strcmp(jws_header_string(jws, "kid"), "coord-1") == 0,
	    "header says typ directory and kid coord-1");
	jws_free(jws);

	r = directory_load(token, strlen(token), coord_pk, NOW + 60, &dir, &e);
	CHECK(r == 0 && dir != NULL, "load the directory (r=%d: %s)", r,
	    e ? e : "");
	if (dir == NULL)
		goto out;
	CHECK(directory_serial(dir) == 7, "serial");
	CHECK_STR(directory_federation(dir), "Auvergne-Rhone coworking",
	    "federation");
	CHECK(directory_expires_at(dir) == NOW + 30 * 86400,
	    "expires valid_days after now");
	CHECK(directory_count(dir) == 2, "two spaces");
	sp = directory_space_at(dir, 0);
	CHECK(sp != NULL && strcmp(sp->id, "cordee") == 0,
	    "spaces keep the description's order");
	CHECK(directory_space_at(dir, 2) == NULL, "index past the end is NULL");

	sp = directory_find_space(dir, "troquet");
	CHECK(sp != NULL, "find troquet");
	if (sp != NULL) {
		CHECK_STR(sp->name, "Le Troquet numerique", "name");
		CHECK_STR(sp->url, "https://troquet.example:8443", "url");
		CHECK_STR(sp->city, "", "absent city reads as empty");
		path = tmp_path("troquet.crt");
		CHECK(tls_file_spki_sha256(path, pin) == 0 &&
		    memcmp(pin, sp->spki_sha256, 32) == 0,
		    "spki_sha256 is the certificate's key pin");
		free(path);
	}
	sp = directory_find_space(dir, "cordee");
	CHECK(sp != NULL && strcmp(sp->city, "Lyon") == 0, "find cordee in Lyon");
	CHECK(directory_find_space(dir, "nowhere") == NULL, "unknown space is NULL");

	CHECK(directory_find_key(dir, "cordee", "cordee-1", pk) == 0 &&
	    memcmp(pk, cordee1_pk, 32) == 0, "find cordee-1 key");
	CHECK(directory_find_key(dir, "cordee", "cordee-2", pk) == 0 &&
	    memcmp(pk, cordee2_pk, 32) == 0,
	    "find cordee-2 key (taken from a private key file)");
	CHECK(directory_find_key(dir, "troquet", "troquet-1", pk) == 0 &&
	    memcmp(pk, troquet1_pk, 32) == 0, "find troquet-1 key");
	CHECK(directory_find_key(dir, "cordee", "cordee-9", pk) == -ENOENT,
	    "unknown kid gives -ENOENT");
	CHECK(directory_find_key(dir, "troquet", "cordee-1", pk) == -ENOENT,
	    "a kid of another space gives -ENOENT");
	CHECK(directory_find_key(dir, "nowhere", "cordee-1", pk) == -ENOENT,
	    "unknown space gives -ENOENT");

	/* What a host does with a pass from cordee. */
	{
		struct pass_claims c, got;
		char *pass = NULL;

		memset(&c, 0, sizeof(c));
		util_strlcpy(c.iss, "cordee", sizeof(c.iss));
		util_strlcpy(c.sub, "Q2FtaWxsZUR1cmFu", sizeof(c.sub));
		util_strlcpy(c.name, "Camille Durand", sizeof(c.name));
		util_strlcpy(c.plan, "monthly", sizeof(c.plan));
		util_strlcpy(c.kid, "cordee-2", sizeof(c.kid));
		util_strlcpy(c.jti, "b3Bhc3NlcmVsbGUx", sizeof(c.jti));
		c.iat = c.nbf = NOW;
		c.exp = NOW + 86400;
		CHECK(pass_sign(&c, cordee2_sk, &pass) == 0, "sign a pass");
		CHECK(pass_verify(pass, NOW, 60, directory_pass_key_lookup, dir,
		    &got) == PASS_OK, "the pass verifies through the directory");
		free(pass);
		pass = NULL;
		util_strlcpy(c.iss, "troquet", sizeof(c.iss));
		CHECK(pass_sign(&c, cordee2_sk, &pass) == 0, "sign a false pass");
		CHECK(pass_verify(pass, NOW, 60, directory_pass_key_lookup, dir,
		    &got) == PASS_ERR_UNKNOWN_KEY,
		    "cordee's kid under troquet's name is unknown");
		free(pass);
	}

	/* A trailing newline, as in a file, is fine. */
	path = util_aprintf("%s\n", token);
	directory_free(dir);
	dir = NULL;
	CHECK(directory_load(path, strlen(path), coord_pk, NOW, &dir, &e) == 0,
	    "a trailing newline is accepted");
	free(path);
out:
	directory_free(dir);
	free(token);
}

static void
test_refusals(void)
{
	struct directory *dir = NULL;
	uint8_t other_sk[64], other_pk[32];
	const char *e = NULL;
	char *token, *t, *p, err[256];
	int r;

	token = sign_ok(description);
	if (token == NULL)
		return;

	crypto_sign_keypair(other_pk, other_sk);
	r = directory_load(token, strlen(token), other_pk, NOW, &dir, &e);
	CHECK(r < 0 && dir == NULL && e != NULL,
	    "wrong coordinator key refused (%s)", e ? e : "no message");

	e = NULL;
	r = directory_load(token, strlen(token), coord_pk, NOW + 30 * 86400,
	    &dir, &e);
	CHECK(r == -EKEYEXPIRED && dir == NULL && e != NULL,
	    "expired directory refused (%s)", e ? e : "no message");
	CHECK(directory_load(token, strlen(token), coord_pk,
	    NOW + 30 * 86400 - 1, &dir, &e) == 0, "valid the second before");
	directory_free(dir);
	dir = NULL;

	/* Flip one character in the middle of the payload. */
	t = strdup(token);
	p = strchr(t, '.') + 40;
	*p = *p == 'A' ? 'B' : 'A';
	e = NULL;
	r = directory_load(t, strlen(t), coord_pk, NOW, &dir, &e);
	CHECK(r < 0 && dir == NULL, "tampered directory refused (%s)",
	    e ? e : "no message");
	free(t);

	/* Cut short: a length that stops before the signature ends. */
	CHECK(directory_load(token, strlen(token) - 1, coord_pk, NOW, &dir, &e) < 0,
	    "truncated directory refused");

	/* The coordinator's key, but a pass rather than a directory. */
	r = jws_sign("{\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"coord-1\"}",
	    (const uint8_t *)"{}", 2, coord_sk, &t);
	CHECK(r == 0 && directory_load(t, strlen(t), coord_pk, NOW, &dir, &e) < 0,
	    "typ pass refused as a directory (%s)", e ? e : "no message");
	free(t);
	free(token);

	/* Descriptions that must not produce a directory. */
	r = directory_sign_description("{\"federation\":\"x\",\"serial\":0,"
	    "\"valid_days\":30,\"spaces\":[]}", tmpdir, coord_sk, "coord-1", NOW,
	    &t, err, sizeof(err));
	CHECK(r < 0, "serial 0 refused (%s)", err);
	r = directory_sign_description("{\"federation\":\"x\",\"serial\":1,"
	    "\"valid_days\":30,\"spaces\":[{\"id\":\"a\",\"name\":\"A\","
	    "\"url\":\"https://a.example\",\"cert\":\"missing.crt\","
	    "\"pass_keys\":[]}]}", tmpdir, coord_sk, "coord-1", NOW, &t, err,
	    sizeof(err));
	CHECK(r < 0 && strstr(err, "missing.crt") != NULL,
	    "missing certificate named in the error (%s)", err);
	r = directory_sign_description("{\"federation\":\"x\",\"serial\":1,"
	    "\"valid_days\":30,\"spaces\":["
	    "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a.example\","
	    "\"cert\":\"cordee.crt\",\"pass_keys\":[]},"
	    "{\"id\":\"a\",\"name\":\"A2\",\"url\":\"https://a2.example\","
	    "\"cert\":\"troquet.crt\",\"pass_keys\":[]}]}", tmpdir, coord_sk,
	    "coord-1", NOW, &t, err, sizeof(err));
	CHECK(r < 0 && strstr(err, "same id") != NULL,
	    "duplicate space ids refused (%s)", err);
	r = directory_sign_description("{\"federation\":\"x\",\"serial\":1,"
	    "\"valid_days\":30,\"spaces\":[{\"id\":\"a\",\"name\":\"A\","
	    "\"url\":\"https://a.example\",\"cert\":\"cordee.crt\","
	    "\"pass_keys\":[{\"kid\":\"k\",\"public_key\":\"cordee.crt\"}]}]}",
	    tmpdir, coord_sk, "coord-1", NOW, &t, err, sizeof(err));
	CHECK(r < 0, "a certificate is not a pass key (%s)", err);
}

/* Builds a directory payload by hand, signs it and tries to load it. */
static int
load_payload(const char *payload, const char **ret_error)
{
	struct directory *dir = NULL;
	char *t = NULL;
	int r;

	r = jws_sign("{\"alg\":\"EdDSA\",\"typ\":\"directory\",\"kid\":\"c\"}",
	    (const uint8_t *)payload, strlen(payload), coord_sk, &t);
	if (r == 0)
		r = directory_load(t, strlen(t), coord_pk, NOW, &dir, ret_error);
	directory_free(dir);
	free(t);
	return r;
}

static void
test_payload_rules(void)
{
	char pin[64], x[64], *payload;
	uint8_t zero[32] = { 1 };
	const char *e;
	const char *head = "{\"v\":1,\"federation\":\"f\",\"serial\":1,"
	    "\"issued_at\":\"2026-01-01T00:00:00Z\","
	    "\"expires_at\":\"2026-02-01T00:00:00Z\",\"spaces\":[";
	static const struct {
		const char *space, *what;
		int ok;
	} cases[] = {
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "a correct space", 1 },
		{ "{\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "missing id", 0 },
		{ "{\"id\":\"a b\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "id with a space", 0 },
		{ "{\"id\":\"a\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "missing name", 0 },
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"http://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "url not https", 0 },
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%.42s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "short pin", 0 },
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"EC\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "kty EC", 0 },
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"X25519\",\"kid\":\"k\",\"x\":\"%s\"}]}}", "crv X25519", 0 },
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"%sAA\"}]}}", "x of 33 bytes", 0 },
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}]}}", "key without kid", 0 },
		{ "{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://a\",\"spki_sha256\":\"%s\",\"jwks\":[]}", "jwks not an object", 0 },
	};

	b64url_encode(zero, 32, pin);
	b64url_encode(zero, 32, x);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *space;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		space = util_aprintf(cases[i].space, pin, x);
#pragma GCC diagnostic pop
		payload = util_aprintf("%s%s]}", head, space);
		e = NULL;
		CHECK((load_payload(payload, &e) == 0) == cases[i].ok,
		    "%s %s (%s)", cases[i].what, cases[i].ok ? "accepted" :
		    "refused", e ? e : "-");
		free(space);
		free(payload);
	}

	payload = util_aprintf("{\"v\":1,\"federation\":\"f\",\"serial\":1.5,"
	    "\"issued_at\":\"2026-01-01T00:00:00Z\","
	    "\"expires_at\":\"2026-02-01T00:00:00Z\",\"spaces\":[]}");
	CHECK(load_payload(payload, &e) < 0, "fractional serial refused");
	free(payload);
	payload = util_aprintf("{\"v\":1,\"federation\":\"f\",\"serial\":-3,"
	    "\"issued_at\":\"2026-01-01T00:00:00Z\","
	    "\"expires_at\":\"2026-02-01T00:00:00Z\",\"spaces\":[]}");
	CHECK(load_payload(payload, &e) < 0, "negative serial refused");
	free(payload);
	payload = util_aprintf("{\"v\":2,\"federation\":\"f\",\"serial\":1,"
	    "\"issued_at\":\"2026-01-01T00:00:00Z\","
	    "\"expires_at\":\"2026-02-01T00:00:00Z\",\"spaces\":[]}");
	CHECK(load_payload(payload, &e) < 0, "version 2 refused");
	free(payload);
}

/* Many spaces: every key must still be found, through the sorted index. */
static void
test_many_spaces(void)
{
	enum { N = 2000 };
	struct directory *dir = NULL;
	uint8_t pk[32], want[32];
	char pin[64], x[64], *payload, *t = NULL;
	size_t cap = (size_t)N * 300 + 1024, len;
	const char *e = NULL;
	int found = 0, r;

	memset(want, 0, sizeof(want));
	b64url_encode(want, 32, pin);
	payload = malloc(cap);
	len = (size_t)snprintf(payload, cap, "{\"v\":1,\"federation\":\"f\","
	    "\"serial\":3,\"issued_at\":\"2026-01-01T00:00:00Z\","
	    "\"expires_at\":\"2026-02-01T00:00:00Z\",\"spaces\":[");
	/* Ids in descending order, so that the index has to sort them. */
	for (int i = N - 1; i >= 0; i--) {
		want[0] = (uint8_t)i;
		want[1] = (uint8_t)(i >> 8);
		b64url_encode(want, 32, x);
		len += (size_t)snprintf(payload + len, cap - len,
		    "%s{\"id\":\"space-%d\",\"name\":\"S\",\"url\":\"https://s\","
		    "\"spki_sha256\":\"%s\",\"jwks\":{\"keys\":[{\"kty\":\"OKP\","
		    "\"crv\":\"Ed25519\",\"kid\":\"k1\",\"x\":\"%s\"}]}}",
		    i == N - 1 ? "" : ",", i, pin, x);
	}
	snprintf(payload + len, cap - len, "]}");
	r = jws_sign("{\"alg\":\"EdDSA\",\"typ\":\"directory\",\"kid\":\"c\"}",
	    (const uint8_t *)payload, strlen(payload), coord_sk, &t);
	if (r == 0)
		r = directory_load(t, strlen(t), coord_pk, NOW, &dir, &e);
	CHECK(r == 0 && directory_count(dir) == N, "load %d spaces (%s)", N,
	    e ? e : "ok");
	for (int i = 0; dir != NULL && i < N; i++) {
		char id[32];

		snprintf(id, sizeof(id), "space-%d", i);
		memset(want, 0, sizeof(want));
		want[0] = (uint8_t)i;
		want[1] = (uint8_t)(i >> 8);
		if (directory_find_key(dir, id, "k1", pk) == 0 &&
		    memcmp(pk, want, 32) == 0 && directory_find_space(dir, id) != NULL)
			found++;
	}
	CHECK(found == N, "every space and key found (%d of %d)", found, N);
	directory_free(dir);
	free(t);
	free(payload);
}

int
main(void)
{
	char *cmd;

	if (sodium_init() < 0 || mkdtemp(tmpdir) == NULL) {
		printf("Bail out! cannot set up (sodium_init or mkdtemp)\n");
		return 1;
	}
	crypto_sign_keypair(coord_pk, coord_sk);

	test_key_files();
	CHECK(make_cert("cordee.crt", "cordee") == 0, "make cordee's certificate");
	CHECK(make_cert("troquet.crt", "troquet") == 0,
	    "make troquet's certificate");
	CHECK(make_pass_key("cordee-1", cordee1_sk, cordee1_pk) == 0 &&
	    make_pass_key("cordee-2", cordee2_sk, cordee2_pk) == 0 &&
	    make_pass_key("troquet-1", troquet1_sk, troquet1_pk) == 0,
	    "make the pass keys");
	test_sign_and_load();
	test_refusals();
	test_payload_rules();
	test_many_spaces();

	cmd = util_aprintf("rm -rf '%s'", tmpdir);
	if (cmd != NULL && system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	free(cmd);
	return check_done();
}
