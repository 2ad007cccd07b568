/*
 * test_pass.c - passes: a typical one fits in 350 bytes and verifies; every
 * way a pass can be wrong gives its own error.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "b64url.h"
#include "check.h"
#include "jws.h"
#include "pass.h"
#include "util.h"

#define NOW ((int64_t)1767225600) /* 2026-01-01T00:00:00Z */
#define LEEWAY 60
/* {"alg":"EdDSA","typ":"pass","kid":"cordee-1"}, encoded with basenc. */
#define PASS_HEADER64 "eyJhbGciOiJFZERTQSIsInR5cCI6InBhc3MiLCJraWQiOiJjb3JkZWUtMSJ9"

static uint8_t cordee_sk[64], cordee_pk[32], other_sk[64], other_pk[32];
static int lookups;

/* The directory, reduced to one space with one key. */
static int
lookup(void *ctx, const char *iss, const char *kid, uint8_t ret_pk[32])
{
	(void)ctx;
	lookups++;
	if (strcmp(iss, "cordee") != 0 || strcmp(kid, "cordee-1") != 0)
		return -1;
	memcpy(ret_pk, cordee_pk, 32);
	return 0;
}

static void
typical_claims(struct pass_claims *c)
{
	memset(c, 0, sizeof(*c));
	util_strlcpy(c->iss, "cordee", sizeof(c->iss));
	util_strlcpy(c->sub, "Q2FtaWxsZUR1", sizeof(c->sub));
	util_strlcpy(c->name, "Camille Durand", sizeof(c->name));
	util_strlcpy(c->plan, "tickets", sizeof(c->plan));
	util_strlcpy(c->kid, "cordee-1", sizeof(c->kid));
	util_strlcpy(c->jti, "b3Bhc3NlcmVs", sizeof(c->jti));
	c->iat = NOW;
	c->nbf = NOW;
	c->exp = NOW + 31 * 86400;
}

/* Signs any header and payload, bypassing jws_sign's own checks. */
static char *
sign_raw(const char *header, const char *payload, const uint8_t sk[64])
{
	char *h = b64url_encode_alloc((const uint8_t *)header, strlen(header));
	char *p = b64url_encode_alloc((const uint8_t *)payload, strlen(payload));
	char *input = util_aprintf("%s.%s", h, p);
	uint8_t sig[64];
	char s[90], *t;

	crypto_sign_detached(sig, NULL, (const uint8_t *)input, strlen(input), sk);
	b64url_encode(sig, sizeof(sig), s);
	t = util_aprintf("%s.%s", input, s);
	free(h);
	free(p);
	free(input);
	return t;
}

static int
verify_at(const char *token, int64_t now, struct pass_claims *c)
{
	struct pass_claims tmp;

	return pass_verify(token, now, LEEWAY, lookup, NULL, c ? c : &tmp);
}

static void
test_typical(void)
{
	struct pass_claims c, got;
	char *token = NULL;
	int r;

	typical_claims(&c);
	r = pass_sign(&c, cordee_sk, &token);
	CHECK(r == 0 && token != NULL, "sign a typical pass (r=%d)", r);
	if (token == NULL)
		return;
	CHECK(strlen(token) < 350, "typical pass is %zu bytes, under 350",
	    strlen(token));
	printf("# typical pass: %s\n", token);
	CHECK(strncmp(token, PASS_HEADER64 ".", strlen(PASS_HEADER64) + 1) == 0,
	    "header is exactly {\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"cordee-1\"}");

	r = verify_at(token, NOW + 3600, &got);
	CHECK(r == PASS_OK, "typical pass verifies (%s)", pass_error_code(r));
	CHECK_STR(got.iss, "cordee", "iss");
	CHECK_STR(got.sub, c.sub, "sub");
	CHECK_STR(got.name, "Camille Durand", "name");
	CHECK_STR(got.plan, "tickets", "plan");
	CHECK_STR(got.jti, c.jti, "jti");
	CHECK_STR(got.kid, "cordee-1", "kid");
	CHECK(got.iat == NOW && got.nbf == NOW && got.exp == c.exp, "times");

	/* Times, with the clock allowance on both sides. */
	CHECK(verify_at(token, c.exp + LEEWAY, NULL) == PASS_ERR_EXPIRED,
	    "expired after exp + leeway");
	CHECK(verify_at(token, c.exp + 5 * 86400, &got) == PASS_ERR_EXPIRED,
	    "expired long after exp");
	CHECK_STR(got.name, "Camille Durand", "an expired pass still names its member");
	CHECK(verify_at(token, c.exp + LEEWAY - 1, NULL) == PASS_OK,
	    "still valid within the leeway after exp");
	CHECK(verify_at(token, NOW - LEEWAY - 1, NULL) == PASS_ERR_NOT_YET_VALID,
	    "not yet valid before nbf - leeway");
	CHECK(verify_at(token, NOW - LEEWAY, NULL) == PASS_OK,
	    "valid within the leeway before nbf");
	free(token);
}

static void
test_nbf(void)
{
	struct pass_claims c, got;
	char *token = NULL;
	struct jws *jws = NULL;

	typical_claims(&c);
	c.nbf = NOW + 86400;
	CHECK(pass_sign(&c, cordee_sk, &token) == 0, "sign a pass valid tomorrow");
	CHECK(jws_parse(token, 0, &jws) == 0 &&
	    strstr((const char *)jws_payload(jws, NULL), "\"nbf\":") != NULL,
	    "nbf written");
	CHECK(verify_at(token, NOW, &got) == PASS_ERR_NOT_YET_VALID,
	    "pass valid tomorrow is not yet valid today");
	CHECK(got.nbf == NOW + 86400, "nbf read back");
	CHECK(verify_at(token, NOW + 86400, NULL) == PASS_OK,
	    "pass valid tomorrow is valid tomorrow");
	jws_free(jws);
	free(token);
}

static void
test_refusals(void)
{
	struct pass_claims c;
	char *token = NULL, *t, *dot, *payload64, *forged;
	const char *payload = "{\"iss\":\"cordee\",\"sub\":\"Q2FtaWxsZUR1cmFu\","
	    "\"name\":\"Camille Durand\",\"plan\":\"tickets\",\"iat\":1767225600,"
	    "\"nbf\":1767225600,\"exp\":1769904000,\"jti\":\"b3Bhc3NlcmVsbGUx\"}";
	const char *header = "{\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"cordee-1\"}";
	int r;

	/* The hand-made token is right, so every refusal below is for its one change. */
	t = sign_raw(header, payload, cordee_sk);
	CHECK(verify_at(t, NOW, NULL) == PASS_OK, "hand-signed pass verifies");
	free(t);

	/* Every claim of the brief is required, nbf included. */
	{
		char *no_nbf = strdup(payload), *at = strstr(no_nbf, "\"nbf\"");

		memmove(at, at + strlen("\"nbf\":1767225600,"),
		    strlen(at + strlen("\"nbf\":1767225600,")) + 1);
		t = sign_raw(header, no_nbf, cordee_sk);
		r = verify_at(t, NOW, NULL);
		CHECK(r == PASS_ERR_CLAIMS, "pass without nbf refused (%s)",
		    pass_error_code(r));
		free(t);
		free(no_nbf);
	}

	/* alg none, with and without a signature. */
	t = sign_raw("{\"alg\":\"none\",\"typ\":\"pass\",\"kid\":\"cordee-1\"}",
	    payload, cordee_sk);
	r = verify_at(t, NOW, NULL);
	CHECK(r == PASS_ERR_ALG, "alg none refused (%s)", pass_error_code(r));
	dot = strrchr(t, '.');
	dot[1] = '\0';
	CHECK(verify_at(t, NOW, NULL) == PASS_ERR_ALG,
	    "alg none with an empty signature refused");
	free(t);

	/* A changed payload under the original signature. */
	typical_claims(&c);
	CHECK(pass_sign(&c, cordee_sk, &token) == 0, "sign for tampering");
	dot = strrchr(token, '.');
	t = strstr(payload, "Durand");
	forged = util_aprintf("%.*sDupont%s", (int)(t - payload), payload, t + 6);
	payload64 = b64url_encode_alloc((const uint8_t *)forged, strlen(forged));
	free(forged);
	t = strchr(token, '.');
	*t = '\0';
	forged = util_aprintf("%s.%s%s", token, payload64, dot);
	*t = '.';
	r = verify_at(forged, NOW, NULL);
	CHECK(r == PASS_ERR_SIGNATURE, "changed payload refused (%s)",
	    pass_error_code(r));
	free(forged);
	free(payload64);

	/* One character of the signature changed. */
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	r = verify_at(token, NOW, NULL);
	CHECK(r == PASS_ERR_SIGNATURE, "changed signature refused (%s)",
	    pass_error_code(r));
	free(token);
	token = NULL;

	/* The right kid, but the key of someone else. */
	CHECK(pass_sign(&c, other_sk, &token) == 0, "sign with another key");
	r = verify_at(token, NOW, NULL);
	CHECK(r == PASS_ERR_SIGNATURE, "signature by another key refused (%s)",
	    pass_error_code(r));
	free(token);
	token = NULL;

	/* An unknown kid and an unknown issuer. */
	util_strlcpy(c.kid, "cordee-9", sizeof(c.kid));
	CHECK(pass_sign(&c, cordee_sk, &token) == 0, "sign with kid cordee-9");
	lookups = 0;
	r = verify_at(token, NOW, NULL);
	CHECK(r == PASS_ERR_UNKNOWN_KEY && lookups == 1,
	    "unknown kid refused (%s)", pass_error_code(r));
	CHECK(pass_verify(token, NOW, LEEWAY, NULL, NULL, &c) ==
	    PASS_ERR_UNKNOWN_KEY, "no lookup at all: unknown key");
	free(token);
	token = NULL;
	typical_claims(&c);
	util_strlcpy(c.iss, "troquet", sizeof(c.iss));
	CHECK(pass_sign(&c, cordee_sk, &token) == 0, "sign as troquet");
	CHECK(verify_at(token, NOW, NULL) == PASS_ERR_UNKNOWN_KEY,
	    "unknown issuer refused");
	free(token);

	/* Wrong or missing typ. */
	t = sign_raw("{\"alg\":\"EdDSA\",\"typ\":\"directory\",\"kid\":\"cordee-1\"}",
	    payload, cordee_sk);
	r = verify_at(t, NOW, NULL);
	CHECK(r == PASS_ERR_TYP, "typ directory refused (%s)", pass_error_code(r));
	free(t);
	t = sign_raw("{\"alg\":\"EdDSA\",\"kid\":\"cordee-1\"}", payload, cordee_sk);
	CHECK(verify_at(t, NOW, NULL) == PASS_ERR_TYP, "missing typ refused");
	free(t);

	/* crit, even one naming a header that is present. */
	t = sign_raw("{\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"cordee-1\","
	    "\"crit\":[\"exp\"],\"exp\":1}", payload, cordee_sk);
	r = verify_at(t, NOW, NULL);
	CHECK(r == PASS_ERR_CRIT, "crit refused (%s)", pass_error_code(r));
	free(t);

	/* Signed, but with claims missing or of the wrong type. */
	t = sign_raw(header, "{\"iss\":\"cordee\",\"name\":\"Camille Durand\","
	    "\"plan\":\"tickets\",\"iat\":1767225600,\"exp\":1769904000,"
	    "\"jti\":\"b3Bhc3NlcmVsbGUx\"}", cordee_sk);
	r = verify_at(t, NOW, NULL);
	CHECK(r == PASS_ERR_CLAIMS, "missing sub refused (%s)", pass_error_code(r));
	free(t);
	t = sign_raw(header, "{\"iss\":\"cordee\",\"sub\":\"Q2FtaWxsZUR1cmFu\","
	    "\"name\":\"Camille Durand\",\"plan\":\"tickets\",\"iat\":1767225600,"
	    "\"exp\":\"1769904000\",\"jti\":\"b3Bhc3NlcmVsbGUx\"}", cordee_sk);
	CHECK(verify_at(t, NOW, NULL) == PASS_ERR_CLAIMS, "exp as a string refused");
	free(t);
	t = sign_raw(header, "{\"iss\":\"cordee\",\"sub\":\"Q2FtaWxsZUR1cmFu\","
	    "\"name\":\"Camille Durand\",\"plan\":\"tickets\",\"iat\":1767225600.5,"
	    "\"exp\":1769904000,\"jti\":\"b3Bhc3NlcmVsbGUx\"}", cordee_sk);
	CHECK(verify_at(t, NOW, NULL) == PASS_ERR_CLAIMS, "fractional iat refused");
	free(t);
	t = sign_raw(header, "{\"sub\":\"x\"}", cordee_sk);
	CHECK(verify_at(t, NOW, NULL) == PASS_ERR_CLAIMS, "missing iss refused");
	free(t);
	t = sign_raw(header, "[1,2]", cordee_sk);
	CHECK(verify_at(t, NOW, NULL) == PASS_ERR_MALFORMED,
	    "payload that is not an object refused");
	free(t);

	/* Structure. */
	CHECK(verify_at("not a pass", NOW, NULL) == PASS_ERR_MALFORMED,
	    "garbage is malformed");
	t = malloc(PASS_MAX_TOKEN + 10);
	memset(t, 'A', PASS_MAX_TOKEN + 9);
	t[PASS_MAX_TOKEN + 9] = '\0';
	CHECK(verify_at(t, NOW, NULL) == PASS_ERR_MALFORMED,
	    "oversized token refused");
	free(t);
}

static void
test_messages(void)
{
	static const int errs[] = { PASS_ERR_MALFORMED, PASS_ERR_ALG,
		PASS_ERR_TYP, PASS_ERR_CRIT, PASS_ERR_UNKNOWN_KEY,
		PASS_ERR_SIGNATURE, PASS_ERR_NOT_YET_VALID, PASS_ERR_EXPIRED,
		PASS_ERR_CLAIMS };
	static const char *const codes[] = { "malformed", "bad_alg", "bad_typ",
		"crit", "unknown_key", "bad_signature", "not_yet_valid",
		"expired", "bad_claims" };
	int distinct = 1;

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		CHECK_STR(pass_error_code(errs[i]), codes[i], "error code");
		for (size_t j = 0; j < i; j++)
			if (strcmp(pass_error_message(errs[i]),
			    pass_error_message(errs[j])) == 0)
				distinct = 0;
	}
	CHECK(distinct, "each error has its own message");
	CHECK_STR(pass_error_message(PASS_ERR_EXPIRED), "This pass has expired: "
	    "ask the member to get a new one from their home space.",
	    "expired message");
}

int
main(void)
{
	if (sodium_init() < 0) {
		printf("Bail out! sodium_init failed\n");
		return 1;
	}
	crypto_sign_keypair(cordee_pk, cordee_sk);
	crypto_sign_keypair(other_pk, other_sk);
	test_typical();
	test_nbf();
	test_refusals();
	test_messages();
	return check_done();
}
