/*
 * test_jws.c - JWS with EdDSA: the RFC 8037 example byte for byte, all the
 * Wycheproof Ed25519 vectors, and the refusals (alg, crit, structure, size).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "b64url.h"
#include "check.h"
#include "jws.h"
#include "util.h"

/* RFC 8037 appendix A.1, A.2 and A.4. */
#define RFC_D "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
#define RFC_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define RFC_PAYLOAD "Example of Ed25519 signing"
#define RFC_JWS                                                           \
	"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."         \
	"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5Bh" \
	"VsPt9g7sVvpAr_MuM0KAg"

static uint8_t rfc_sk[64], rfc_pk[32];

static void
test_rfc8037(void)
{
	uint8_t seed[32], x[32];
	size_t n;
	char *token = NULL;
	struct jws *jws = NULL;
	const uint8_t *payload;
	int r;

	CHECK(b64url_decode(RFC_D, strlen(RFC_D), seed, 32, &n) == 0 && n == 32,
	    "A.1 d decodes to 32 bytes");
	CHECK(b64url_decode(RFC_X, strlen(RFC_X), x, 32, &n) == 0 && n == 32,
	    "A.2 x decodes to 32 bytes");
	crypto_sign_seed_keypair(rfc_pk, rfc_sk, seed);
	CHECK(memcmp(rfc_pk, x, 32) == 0, "A.2 public key derived from A.1 d");

	r = jws_sign("{\"alg\":\"EdDSA\"}", (const uint8_t *)RFC_PAYLOAD,
	    strlen(RFC_PAYLOAD), rfc_sk, &token);
	CHECK(r == 0, "A.4 sign (r=%d)", r);
	CHECK_STR(token, RFC_JWS, "A.4 compact JWS byte for byte");

	r = jws_parse(RFC_JWS, 0, &jws);
	CHECK(r == 0, "A.5 parse (r=%d)", r);
	if (jws != NULL) {
		CHECK(jws_verify(jws, rfc_pk) == 0, "A.5 signature verifies");
		payload = jws_payload(jws, &n);
		CHECK(n == strlen(RFC_PAYLOAD) &&
		    memcmp(payload, RFC_PAYLOAD, n) == 0, "A.5 payload");
		CHECK_STR(jws_header_string(jws, "alg"), "EdDSA", "A.5 alg");
		CHECK(jws_header_string(jws, "kid") == NULL, "absent kid is NULL");
		CHECK(cJSON_IsObject(jws_header(jws)), "header is an object");
		x[0] ^= 1;
		CHECK(jws_verify(jws, x) == JWS_ERR_SIGNATURE,
		    "another key does not verify");
	}
	jws_free(jws);
	free(token);
}

static int
hex_decode(const char *hex, uint8_t **ret, size_t *ret_len)
{
	size_t len = strlen(hex);
	uint8_t *out;

	if (len % 2 != 0)
		return -EINVAL;
	out = malloc(len / 2 + 1);
	if (out == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
			free(out);
			return -EINVAL;
		}
		out[i] = (uint8_t)v;
	}
	*ret = out;
	*ret_len = len / 2;
	return 0;
}

/*
 * Every Wycheproof vector goes through ed25519_verify_len, which refuses
 * signatures that are not 64 bytes and passes the rest to ed25519_verify.
 */
static void
test_wycheproof(void)
{
	const char *dir = getenv("PASSERELLE_TESTDATA");
	int total = 0, valid_ok = 0, invalid_ok = 0, nvalid = 0, ninvalid = 0;
	int declared = -1;
	char *path, *text = NULL;
	cJSON *root, *groups, *g;

	CHECK(dir != NULL, "PASSERELLE_TESTDATA is set (meson sets it)");
	if (dir == NULL)
		return;
	path = util_aprintf("%s/wycheproof/ed25519_test.json", dir);
	CHECK(path != NULL && util_read_file(path, 4 << 20, &text, NULL) == 0,
	    "read %s", path ? path : "(null)");
	free(path);
	if (text == NULL)
		return;
	root = cJSON_Parse(text);
	free(text);
	CHECK(root != NULL, "Wycheproof file is JSON");
	if (root == NULL)
		return;
	if (cJSON_IsNumber(cJSON_GetObjectItem(root, "numberOfTests")))
		declared = cJSON_GetObjectItem(root, "numberOfTests")->valueint;
	groups = cJSON_GetObjectItem(root, "testGroups");
	cJSON_ArrayForEach(g, groups) {
		const cJSON *pkhex, *t;
		uint8_t *pk = NULL;
		size_t pklen = 0;

		pkhex = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "publicKey"),
		    "pk");
		if (!cJSON_IsString(pkhex) ||
		    hex_decode(pkhex->valuestring, &pk, &pklen) < 0 ||
		    pklen != 32) {
			CHECK(0, "group public key is 32 bytes of hex");
			free(pk);
			continue;
		}
		cJSON_ArrayForEach(t, cJSON_GetObjectItem(g, "tests")) {
			const char *result, *msghex, *sighex;
			uint8_t *msg = NULL, *sig = NULL;
			size_t msglen = 0, siglen = 0;
			int valid, r;

			result = cJSON_GetStringValue(cJSON_GetObjectItem(t, "result"));
			msghex = cJSON_GetStringValue(cJSON_GetObjectItem(t, "msg"));
			sighex = cJSON_GetStringValue(cJSON_GetObjectItem(t, "sig"));
			total++;
			if (result == NULL || msghex == NULL || sighex == NULL ||
			    hex_decode(msghex, &msg, &msglen) < 0 ||
			    hex_decode(sighex, &sig, &siglen) < 0) {
				CHECK(0, "vector %d is readable", total);
				free(msg);
				free(sig);
				continue;
			}
			valid = strcmp(result, "valid") == 0;
			r = ed25519_verify_len(sig, siglen, msg, msglen, pk);
			if (valid) {
				nvalid++;
				valid_ok += r == 0;
				if (r != 0)
					CHECK(0, "valid vector tcId %d verifies",
					    cJSON_GetObjectItem(t, "tcId")->valueint);
			} else {
				ninvalid++;
				invalid_ok += r != 0;
				if (r == 0)
					CHECK(0, "invalid vector tcId %d refused",
					    cJSON_GetObjectItem(t, "tcId")->valueint);
			}
			free(msg);
			free(sig);
		}
		free(pk);
	}
	cJSON_Delete(root);
	CHECK(total == 151 && total == declared,
	    "151 Wycheproof vectors run (ran %d, file says %d)", total, declared);
	CHECK(nvalid == 88 && valid_ok == 88, "all 88 valid vectors verify "
	    "(%d of %d)", valid_ok, nvalid);
	CHECK(ninvalid == 63 && invalid_ok == 63, "all 63 invalid vectors are "
	    "refused (%d of %d)", invalid_ok, ninvalid);
}

/* Builds "b64(header).b64(payload).b64(sig)" with a given signature. */
static char *
forge(const char *header, const char *payload, const uint8_t *sig,
    size_t siglen)
{
	char *h = b64url_encode_alloc((const uint8_t *)header, strlen(header));
	char *p = b64url_encode_alloc((const uint8_t *)payload, strlen(payload));
	char *s = b64url_encode_alloc(sig, siglen);
	char *t = util_aprintf("%s.%s.%s", h, p, s);

	free(h);
	free(p);
	free(s);
	return t;
}

static int
parse_code(const char *token)
{
	struct jws *jws = NULL;
	int r = jws_parse(token, 0, &jws);

	jws_free(jws);
	return r;
}

static void
test_refusals(void)
{
	uint8_t zero[64] = { 0 };
	char *t, *big;
	int r;

	t = forge("{\"alg\":\"none\"}", "{}", zero, 0);
	CHECK(parse_code(t) == JWS_ERR_ALG, "alg none refused");
	free(t);
	t = forge("{\"alg\":\"HS256\"}", "{}", zero, 32);
	CHECK(parse_code(t) == JWS_ERR_ALG, "alg HS256 refused");
	free(t);
	t = forge("{\"alg\":\"eddsa\"}", "{}", zero, 64);
	CHECK(parse_code(t) == JWS_ERR_ALG, "alg is case-sensitive");
	free(t);
	t = forge("{\"typ\":\"pass\"}", "{}", zero, 64);
	CHECK(parse_code(t) == JWS_ERR_ALG, "missing alg refused");
	free(t);
	t = forge("{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"exp\":1}", "{}",
	    zero, 64);
	CHECK(parse_code(t) == JWS_ERR_CRIT, "crit refused");
	free(t);
	t = forge("{\"alg\":\"EdDSA\",\"alg\":\"none\"}", "{}", zero, 64);
	CHECK(parse_code(t) == JWS_ERR_MALFORMED, "duplicate header member refused");
	free(t);
	t = forge("[\"alg\",\"EdDSA\"]", "{}", zero, 64);
	CHECK(parse_code(t) == JWS_ERR_MALFORMED, "header array refused");
	free(t);
	t = forge("\"EdDSA\"", "{}", zero, 64);
	CHECK(parse_code(t) == JWS_ERR_MALFORMED, "header string refused");
	free(t);
	t = forge("{\"alg\":\"EdDSA\"} x", "{}", zero, 64);
	CHECK(parse_code(t) == JWS_ERR_MALFORMED, "trailing garbage refused");
	free(t);
	t = forge("{\"alg\":\"EdDSA\",\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
	    "{}", zero, 64);
	CHECK(parse_code(t) == JWS_ERR_MALFORMED, "deep header refused");
	free(t);
	t = forge("{\"alg\":\"EdDSA\"}", "{}", zero, 63);
	CHECK(parse_code(t) == JWS_ERR_MALFORMED, "63-byte signature refused");
	free(t);
	t = forge("{\"alg\":\"EdDSA\"}", "{}", zero, 64);
	CHECK(parse_code(t) == 0, "well-formed token parses");
	free(t);

	CHECK(parse_code("") == JWS_ERR_MALFORMED, "empty token refused");
	CHECK(parse_code("abc.def") == JWS_ERR_MALFORMED, "two parts refused");
	CHECK(parse_code(RFC_JWS ".x") == JWS_ERR_MALFORMED, "four parts refused");
	CHECK(parse_code("eyJhbGciOiJFZERTQSJ9=.e30.AA") == JWS_ERR_MALFORMED,
	    "padding in a part refused");

	r = jws_parse(RFC_JWS, strlen(RFC_JWS) - 1, &(struct jws *){ NULL });
	CHECK(r == JWS_ERR_TOO_LARGE, "token longer than max_len refused");
	big = malloc(JWS_MAX_TOKEN + 2);
	memset(big, 'A', JWS_MAX_TOKEN + 1);
	big[JWS_MAX_TOKEN + 1] = '\0';
	CHECK(parse_code(big) == JWS_ERR_TOO_LARGE, "oversized token refused");
	free(big);

	CHECK(jws_sign("{\"alg\":\"none\"}", (const uint8_t *)"x", 1, rfc_sk,
	    &t) == JWS_ERR_ALG, "signing with alg none refused");
	CHECK(jws_sign("{\"alg\":\"EdDSA\",\"crit\":[]}", (const uint8_t *)"x",
	    1, rfc_sk, &t) == JWS_ERR_CRIT, "signing with crit refused");
	CHECK(strcmp(jws_strerror(JWS_ERR_CRIT), "unknown error") != 0,
	    "jws_strerror knows crit");
}

static void
test_tamper(void)
{
	char *t = strdup(RFC_JWS);
	struct jws *jws = NULL;

	/* "Example" becomes "Fxample": still valid base64url. */
	t[strlen("eyJhbGciOiJFZERTQSJ9.")] = 'S';
	CHECK(jws_parse(t, 0, &jws) == 0, "tampered token still parses");
	if (jws != NULL)
		CHECK(jws_verify(jws, rfc_pk) == JWS_ERR_SIGNATURE,
		    "tampered payload does not verify");
	jws_free(jws);
	free(t);
}

static void
test_json(void)
{
	cJSON *o;

	o = jws_json_parse_object("{\"a\":{\"b\":1}}", 13, 2);
	CHECK(o != NULL, "depth 2 accepted at limit 2");
	cJSON_Delete(o);
	o = jws_json_parse_object("{\"a\":{\"b\":1}}", 13, 1);
	CHECK(o == NULL, "depth 2 refused at limit 1");
	o = jws_json_parse_object("{\"a\":\"{{{{\"}", 12, 1);
	CHECK(o != NULL, "brackets inside strings do not count");
	cJSON_Delete(o);
	o = jws_json_parse_object("{\"a\":{\"b\":1,\"b\":2}}", 19, 4);
	CHECK(o == NULL, "nested duplicate names refused");
	o = jws_json_parse_object("{\"a\":1}\0{", 9, 4);
	CHECK(o == NULL, "embedded NUL refused");
}

int
main(void)
{
	if (sodium_init() < 0) {
		printf("Bail out! sodium_init failed\n");
		return 1;
	}
	test_rfc8037();
	test_wycheproof();
	test_refusals();
	test_tamper();
	test_json();
	return check_done();
}
