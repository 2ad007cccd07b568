/*
 * corpus_gen.c - writes the seed corpus of every fuzz target (corpus/), so
 * that the fuzzers start from real structure: passes and directories signed
 * with fuzz.c's fixed keys, their JSON, configuration files, times.
 *
 * Usage: corpus_gen DIR   (DIR/TARGET/NAME; the committed tests/fuzz/corpus
 * comes from this, plus the regression cases the fuzzers found)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "b64url.h"
#include "config.h"
#include "federation.h"
#include "fuzz.h"
#include "pass.h"
#include "tls.h"
#include "util.h"

static const char *root;

static void
put(const char *target, const char *name, const void *data, size_t len)
{
	char *dir = util_aprintf("%s/%s", root, target);
	char *path = util_aprintf("%s/%s/%s", root, target, name);

	if (dir == NULL || path == NULL || util_mkdir_p(dir, 0755) < 0 ||
	    util_write_file(path, data, len, 0644) < 0) {
		fprintf(stderr, "corpus_gen: cannot write %s\n", path);
		exit(1);
	}
	free(dir);
	free(path);
}

static void
put_str(const char *target, const char *name, const char *s)
{
	put(target, name, s, strlen(s));
}

#define PASS_HEADER "{\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"cordee-1\"}"
#define PASS_CLAIMS \
	"{\"iss\":\"cordee\",\"sub\":\"Q2FtaWxsZUR1\",\"name\":\"Camille Durand\"," \
	"\"plan\":\"tickets\",\"iat\":1767225600,\"nbf\":1767225600," \
	"\"exp\":1769904000,\"jti\":\"b3Bhc3NlcmVs\"}"
#define DIR_HEADER "{\"alg\":\"EdDSA\",\"typ\":\"directory\",\"kid\":\"coord-1\"}"

static char *
sign(const char *header, const char *payload, const uint8_t sk[64])
{
	return fuzz_sign_raw((const uint8_t *)header, strlen(header),
	    (const uint8_t *)payload, strlen(payload), sk);
}

static void
gen_passes(void)
{
	struct pass_claims c;
	char *t, *expired;
	static const char *const signed_cases[][2] = {
		{ "typical", PASS_HEADER "\n" PASS_CLAIMS },
		{ "claims-only", PASS_CLAIMS },
		{ "monthly", PASS_HEADER "\n{\"iss\":\"cordee\",\"sub\":\"x\",\"name\":"
		    "\"\\u00c9lise \\\"E\\\"\",\"plan\":\"monthly\",\"iat\":0,\"nbf\":0,"
		    "\"exp\":9007199254740992,\"jti\":\"j\"}" },
		{ "not-yet", PASS_HEADER "\n{\"iss\":\"cordee\",\"sub\":\"s\",\"name\":"
		    "\"n\",\"plan\":\"tickets\",\"iat\":1767225600,\"nbf\":1799999999,"
		    "\"exp\":1800000000,\"jti\":\"j\"}" },
		{ "bad-times", PASS_HEADER "\n{\"iss\":\"cordee\",\"sub\":\"s\",\"name\":"
		    "\"n\",\"plan\":\"tickets\",\"iat\":1.5,\"nbf\":-1,"
		    "\"exp\":1e300,\"jti\":\"j\"}" },
		{ "crit", "{\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"cordee-1\","
		    "\"crit\":[\"exp\"]}\n" PASS_CLAIMS },
		{ "alg-none", "{\"alg\":\"none\",\"typ\":\"pass\",\"kid\":\"cordee-1\"}\n"
		    PASS_CLAIMS },
		{ "other-kid", "{\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"cordee-2\"}\n"
		    PASS_CLAIMS },
	};

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(signed_cases); i++)
		put_str("pass_signed", signed_cases[i][0], signed_cases[i][1]);

	t = sign(PASS_HEADER, PASS_CLAIMS, fuzz_pass_sk);
	put_str("pass", "typical", t);
	put_str("jws", "pass", t);
	put_str("b64url", "pass-header", strtok(t, "."));
	free(t);
	memset(&c, 0, sizeof(c));
	util_strlcpy(c.iss, "cordee", sizeof(c.iss));
	util_strlcpy(c.sub, "Q2FtaWxsZUR1", sizeof(c.sub));
	util_strlcpy(c.name, "Camille", sizeof(c.name));
	util_strlcpy(c.plan, "monthly", sizeof(c.plan));
	util_strlcpy(c.kid, FUZZ_PASS_KID, sizeof(c.kid));
	util_strlcpy(c.jti, "b3Bhc3NlcmVs", sizeof(c.jti));
	c.iat = c.nbf = FUZZ_NOW - 90 * 86400;
	c.exp = FUZZ_NOW - 86400;
	if (pass_sign(&c, fuzz_pass_sk, &expired) != 0)
		exit(1);
	put_str("pass", "expired", expired);
	free(expired);
	/* Signed with another key: reaches the signature check and fails it. */
	t = sign(PASS_HEADER, PASS_CLAIMS, fuzz_coord_sk);
	put_str("pass", "wrong-key", t);
	free(t);
	t = sign("{\"alg\":\"EdDSA\",\"typ\":\"receipt\"}", "{}", fuzz_pass_sk);
	put_str("pass", "not-a-pass", t);
	free(t);
}

/* A directory with every optional field, and a minimal one. */
#define DIR_FULL \
	"{\"v\":1,\"federation\":\"alpes\",\"serial\":7," \
	"\"issued_at\":\"2025-12-01T00:00:00Z\",\"expires_at\":\"2026-12-01T00:00:00Z\"," \
	"\"coordinator_keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"coord-2\"," \
	"\"x\":\"%s\"}],\"crl\":\"-----BEGIN X509 CRL-----\\nAA==\\n-----END X509 CRL-----\\n\"," \
	"\"spaces\":[{\"id\":\"cordee\",\"name\":\"La Cord\\u00e9e\",\"city\":\"Lyon\"," \
	"\"url\":\"https://cordee.example:7443\",\"spki_sha256\":\"%s\"," \
	"\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"cordee-1\"," \
	"\"x\":\"%s\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"cordee-0\"," \
	"\"x\":\"%s\",\"retires_at\":\"2026-01-15T00:00:00Z\"}]}," \
	"\"address\":\"1 rue X\",\"lat\":45.76,\"lon\":4.83,\"capacity\":40," \
	"\"services\":[\"wifi\",\"coffee\"],\"hours\":{\"mon\":\"08:00-19:00\"}," \
	"\"contact\":\"hello@cordee.example\"}," \
	"{\"id\":\"troquet\",\"name\":\"Le Troquet\",\"url\":\"https://troquet.example\"," \
	"\"spki_sha256\":[\"%s\",\"%s\"],\"jwks\":{\"keys\":[{\"kty\":\"OKP\"," \
	"\"crv\":\"Ed25519\",\"kid\":\"k1\",\"x\":\"%s\"}]}}]}"
#define DIR_MINIMAL \
	"{\"v\":1,\"federation\":\"f\",\"serial\":1,\"issued_at\":\"2025-12-01T00:00:00Z\"," \
	"\"expires_at\":\"2026-02-01T00:00:00.5+00:00\",\"spaces\":[]}"

static void
gen_directories(void)
{
	char pk[64], ck[64], pin[64], pin2[64], *payload, *t, *tn;
	uint8_t raw[32];

	b64url_encode(fuzz_pass_pk, 32, pk);
	b64url_encode(fuzz_coord_pk, 32, ck);
	memset(raw, 0xab, sizeof(raw));
	b64url_encode(raw, 32, pin);
	memset(raw, 0x01, sizeof(raw));
	b64url_encode(raw, 32, pin2);
	payload = util_aprintf(DIR_FULL, ck, pin, pk, ck, pin, pin2, pk);
	if (payload == NULL)
		exit(1);
	put_str("directory_signed", "full", payload);
	put_str("directory_signed", "minimal", DIR_MINIMAL);
	put_str("json", "directory", payload);
	put_str("json", "pass-claims", PASS_CLAIMS);
	put_str("json", "pass-header", PASS_HEADER);
	put_str("json", "nested", "{\"a\":[{\"b\":{\"c\":[1,2.5e3,-0,true,false,null]}}],"
	    "\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\ud83d\\ude00\"}  \n");
	put_str("b64url", "key", pk);
	put_str("b64url", "short", "QUI");
	put_str("b64url", "two", "QQ");

	t = sign(DIR_HEADER, payload, fuzz_coord_sk);
	put_str("directory", "full", t);
	put_str("jws", "directory", t);
	tn = util_aprintf("%s\r\n", t);
	put_str("directory", "full-newline", tn);
	free(tn);
	free(t);
	/* Under an unknown kid: every trusted key is tried. */
	t = sign("{\"alg\":\"EdDSA\",\"typ\":\"directory\",\"kid\":\"zz\"}",
	    DIR_MINIMAL, fuzz_coord_sk);
	put_str("directory", "other-kid", t);
	free(t);
	t = sign("{\"alg\":\"EdDSA\",\"typ\":\"directory\"}", DIR_MINIMAL,
	    fuzz_pass_sk);
	put_str("directory", "wrong-key", t);
	free(t);
	free(payload);
}

static void
gen_configs(void)
{
	char *ref = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&ref, &len);

	if (f == NULL)
		exit(1);
	/* Every option at its default, then the two required ones. */
	config_print_reference(f);
	fclose(f);
	put("config", "reference", ref, len);
	free(ref);
	put_str("config", "minimal", "[node]\nspace_id = troquet\n[pass]\nkid = troquet-1\n");
	put_str("config", "typical",
	    "; a node\n[node]\nspace_id = cordee\ndata_dir = /var/lib/passerelle\n"
	    "log_level = debug\n\n[federation]\nlisten = 0.0.0.0:7443\n"
	    "directory_refresh = 15m\ndirectory_urls = https://a.example/d file:///x\n"
	    "[pass]\nkid = cordee-1\nlifetime = 30d\nleeway = 90s\n"
	    "[visit]\npeer_timeout = 1500ms\nhalf_day_max = 5h\n"
	    "[terms]\naccept_visitors = on\nrate = 1200\ncurrency = EUR\n"
	    "visitor_monthly_cap = -1\n[limits]\nworkers = 4\nmax_body = 65536\n");
	put_str("config", "errors",
	    "[node]\nspace_id = -Bad\nspace_id = twice\nnope = 1\n[nowhere]\nx = y\n"
	    "[visit]\npeer_timeout = 3d\nhalf_day_max = 1ms\n[terms]\nrate = 1e3\n"
	    "accept_visitors = maybe\n[limits\nthreads = 99999999999999999999\n");
}

static void
gen_util(void)
{
	static const char *const cases[] = {
		"2026-01-01T00:00:00Z", "2026-11-30T08:15:00.123456+00:00",
		"1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
		"90s", "15m", "5h", "30d", "1500ms", "0", "9223372036854775807",
		"3f2504e0-4f89-41d3-9a0c-0305e82c3301",
		"https://cordee.example", "https://cordee.example:7443",
		"https://[::1]:443", "https://10.0.0.1:1", "debug", "warn",
	};
	char name[16];

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
		snprintf(name, sizeof(name), "seed-%02zu", i);
		put_str("util", name, cases[i]);
	}
}

/* A PEM request for an Ed25519 key from a fixed seed (same bytes each time). */
static char *
make_csr(const char *id, const char *dns)
{
	uint8_t seed[32];
	EVP_PKEY *pkey;
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext;
	char *san = util_aprintf("URI:%s%s,DNS:%s", TLS_SPACE_URI_PREFIX, id, dns);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem, *mem;
	long n;

	memset(seed, 'n', sizeof(seed));
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	if (pkey == NULL || req == NULL || exts == NULL || ext == NULL ||
	    bio == NULL || !X509_REQ_set_pubkey(req, pkey) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)id, -1, -1, 0) ||
	    !sk_X509_EXTENSION_push(exts, ext) ||
	    !X509_REQ_add_extensions(req, exts) ||
	    X509_REQ_sign(req, pkey, NULL) <= 0 || !PEM_write_bio_X509_REQ(bio, req))
		exit(1);
	n = BIO_get_mem_data(bio, &mem);
	pem = strndup(mem, (size_t)n);
	BIO_free(bio);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(pkey);
	free(san);
	return pem;
}

/* The seeds must be requests the coordinator accepts. */
static void
put_join_request(const char *name, const cJSON *o, bool pretty)
{
	char *text = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
	char err[512];

	if (text == NULL ||
	    federation_space_check_request(o, NULL, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "corpus_gen: join request %s refused: %s\n", name, err);
		exit(1);
	}
	put_str("join_request", name, text);
	cJSON_free(text);
}

static void
gen_join_requests(void)
{
	char *csr = make_csr("troquet", "troquet.example"), x[64];
	cJSON *o = cJSON_CreateObject(), *pk, *hours;

	b64url_encode(fuzz_pass_pk, 32, x);
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "id", "troquet");
	cJSON_AddStringToObject(o, "name", "Le Troquet");
	cJSON_AddStringToObject(o, "city", "Grenoble");
	cJSON_AddStringToObject(o, "url", "https://troquet.example:7443");
	cJSON_AddStringToObject(o, "dns", "troquet.example");
	pk = cJSON_AddObjectToObject(o, "pass_key");
	cJSON_AddStringToObject(pk, "kid", "troquet-1");
	cJSON_AddStringToObject(pk, "x", x);
	cJSON_AddStringToObject(o, "csr", csr);
	put_join_request("minimal", o, false);
	cJSON_AddStringToObject(o, "address", "2 place X");
	cJSON_AddNumberToObject(o, "lat", 45.19);
	cJSON_AddNumberToObject(o, "lon", 5.72);
	cJSON_AddNumberToObject(o, "capacity", 25);
	cJSON_AddStringToObject(o, "contact", "bonjour@troquet.example");
	cJSON_AddItemToObject(o, "ips", cJSON_CreateStringArray(
	    (const char *const[]){ "192.0.2.7", "2001:db8::7" }, 2));
	cJSON_AddItemToObject(o, "services", cJSON_CreateStringArray(
	    (const char *const[]){ "wifi", "phone_booth" }, 2));
	hours = cJSON_AddObjectToObject(o, "hours");
	cJSON_AddStringToObject(hours, "mon", "08:00-19:00");
	put_join_request("full", o, true);
	cJSON_Delete(o);
	free(csr);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	root = argv[1];
	fuzz_init();
	gen_passes();
	gen_directories();
	gen_configs();
	gen_util();
	gen_join_requests();
	return 0;
}
