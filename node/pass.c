/*
 * pass.c - signing and offline verification of members' passes.
 *
 * A pass is a compact JWS small enough for a comfortable QR code.  This file
 * decides whether a token is a well-formed, correctly signed pass that is
 * valid now; it does not know whether the member is in good standing or the
 * pass revoked (the home's database and the host's revocation list do), and
 * it never touches the network: the signing key comes from the caller's
 * lookup, normally the directory.
 *
 * Every claim of the brief is written, nbf included, and required when
 * reading; the pass stays under 350 bytes because the pseudonym and the jti
 * are 72 random bits each (12 base64url characters), plenty for ids that
 * only need to be unique within one home space.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jws.h"
#include "pass.h"
#include "util.h"

/* Claims are flat: an object of strings and numbers. */
#define PASS_MAX_DEPTH 2
/* Integers above 2^53 cannot be told apart as JSON numbers (doubles). */
#define PASS_MAX_TIME ((int64_t)1 << 53)

/* ---------------------------------------------------------------------
 * Signing
 */

int
pass_sign(const struct pass_claims *c, const uint8_t sk[64], char **ret_token)
{
	cJSON *header = NULL, *claims = NULL;
	char *header_json = NULL, *payload = NULL;
	int r = PASS_ERR_NOMEM;

	if (c->kid[0] == '\0' || c->iss[0] == '\0' || c->sub[0] == '\0' ||
	    c->jti[0] == '\0' || c->exp <= c->nbf)
		return PASS_ERR_CLAIMS;

	header = cJSON_CreateObject();
	if (header == NULL ||
	    cJSON_AddStringToObject(header, "alg", "EdDSA") == NULL ||
	    cJSON_AddStringToObject(header, "typ", PASS_TYP) == NULL ||
	    cJSON_AddStringToObject(header, "kid", c->kid) == NULL)
		goto out;

	claims = cJSON_CreateObject();
	if (claims == NULL ||
	    cJSON_AddStringToObject(claims, "iss", c->iss) == NULL ||
	    cJSON_AddStringToObject(claims, "sub", c->sub) == NULL ||
	    cJSON_AddStringToObject(claims, "name", c->name) == NULL ||
	    cJSON_AddStringToObject(claims, "plan", c->plan) == NULL ||
	    cJSON_AddNumberToObject(claims, "iat", (double)c->iat) == NULL)
		goto out;
	if (cJSON_AddNumberToObject(claims, "nbf", (double)c->nbf) == NULL)
		goto out;
	if (cJSON_AddNumberToObject(claims, "exp", (double)c->exp) == NULL ||
	    cJSON_AddStringToObject(claims, "jti", c->jti) == NULL)
		goto out;

	header_json = cJSON_PrintUnformatted(header);
	payload = cJSON_PrintUnformatted(claims);
	if (header_json == NULL || payload == NULL)
		goto out;
	r = jws_sign(header_json, (const uint8_t *)payload, strlen(payload), sk,
	    ret_token);
	if (r == JWS_ERR_NOMEM)
		r = PASS_ERR_NOMEM;
	else if (r < 0)
		r = PASS_ERR_MALFORMED;
out:
	cJSON_free(header_json);
	cJSON_free(payload);
	cJSON_Delete(header);
	cJSON_Delete(claims);
	return r;
}

/* ---------------------------------------------------------------------
 * Verifying
 */

/* Copies a string member into dst; 0, or -1 if absent, not a string, empty or too long. */
static int
pass_get_string(const cJSON *claims, const char *name, char *dst, size_t size)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);

	if (!cJSON_IsString(item) || item->valuestring[0] == '\0')
		return -1;
	if (util_strlcpy(dst, item->valuestring, size) >= size)
		return -1;
	return 0;
}

/* Reads an integral number of seconds; 0, or -1. */
static int
pass_get_time(const cJSON *claims, const char *name, int64_t *ret)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
	double d;

	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	/* The range test also refuses NaN, before the cast could misbehave. */
	if (!(d >= 0 && d <= (double)PASS_MAX_TIME) || d != (double)(int64_t)d)
		return -1;
	*ret = (int64_t)d;
	return 0;
}

/*
 * Reads every claim into ret.  Fills what it can even when a claim is bad,
 * so that the log can say whose pass it was.
 */
static int
pass_read_claims(const cJSON *claims, struct pass_claims *ret)
{
	int bad = 0;

	bad |= pass_get_string(claims, "iss", ret->iss, sizeof(ret->iss));
	bad |= pass_get_string(claims, "sub", ret->sub, sizeof(ret->sub));
	bad |= pass_get_string(claims, "name", ret->name, sizeof(ret->name));
	bad |= pass_get_string(claims, "plan", ret->plan, sizeof(ret->plan));
	bad |= pass_get_string(claims, "jti", ret->jti, sizeof(ret->jti));
	bad |= pass_get_time(claims, "iat", &ret->iat);
	bad |= pass_get_time(claims, "exp", &ret->exp);
	bad |= pass_get_time(claims, "nbf", &ret->nbf);
	if (bad == 0 && ret->exp <= ret->nbf)
		bad = -1;
	return bad ? PASS_ERR_CLAIMS : 0;
}

static int
pass_from_jws_error(int r)
{
	switch (r) {
	case JWS_ERR_ALG:
		return PASS_ERR_ALG;
	case JWS_ERR_CRIT:
		return PASS_ERR_CRIT;
	case JWS_ERR_SIGNATURE:
		return PASS_ERR_SIGNATURE;
	case JWS_ERR_NOMEM:
		return PASS_ERR_NOMEM;
	default:
		return PASS_ERR_MALFORMED;
	}
}

static int
pass_check(const char *token, int64_t now, int64_t leeway,
    pass_key_lookup_fn lookup, void *ctx, bool signature, struct pass_claims *ret)
{
	struct pass_claims c;
	struct jws *jws = NULL;
	cJSON *claims = NULL;
	const char *typ, *kid;
	const uint8_t *payload;
	uint8_t pk[32];
	size_t payload_len;
	int r;

	memset(&c, 0, sizeof(c));
	if (leeway < 0)
		leeway = 0;
	if (leeway > 86400)
		leeway = 86400;

	r = jws_parse(token, PASS_MAX_TOKEN, &jws);
	if (r < 0) {
		r = pass_from_jws_error(r);
		goto out;
	}
	typ = jws_header_string(jws, "typ");
	if (typ == NULL || strcmp(typ, PASS_TYP) != 0) {
		r = PASS_ERR_TYP;
		goto out;
	}
	kid = jws_header_string(jws, "kid");
	if (kid == NULL || kid[0] == '\0' ||
	    util_strlcpy(c.kid, kid, sizeof(c.kid)) >= sizeof(c.kid)) {
		r = PASS_ERR_MALFORMED;
		goto out;
	}

	/*
	 * The issuer names the key, so the claims are read before the
	 * signature is checked; nothing read here is trusted until then.
	 */
	payload = jws_payload(jws, &payload_len);
	claims = jws_json_parse_object((const char *)payload, payload_len,
	    PASS_MAX_DEPTH);
	if (claims == NULL) {
		r = PASS_ERR_MALFORMED;
		goto out;
	}
	r = pass_read_claims(claims, &c);
	if (c.iss[0] == '\0') {
		r = PASS_ERR_CLAIMS;
		goto out;
	}
	if (lookup == NULL || lookup(ctx, c.iss, c.kid, pk) < 0) {
		r = PASS_ERR_UNKNOWN_KEY;
		goto out;
	}
	if (signature && jws_verify(jws, pk) < 0) {
		r = PASS_ERR_SIGNATURE;
		goto out;
	}
	if (r < 0)
		goto out; /* signed, but the claims are missing or ill-typed */
	if (now + leeway < c.nbf) {
		r = PASS_ERR_NOT_YET_VALID;
		goto out;
	}
	if (now - leeway >= c.exp) {
		r = PASS_ERR_EXPIRED;
		goto out;
	}
	r = PASS_OK;
out:
	if (ret != NULL)
		*ret = c;
	cJSON_Delete(claims);
	jws_free(jws);
	return r;
}

int
pass_verify(const char *token, int64_t now, int64_t leeway,
    pass_key_lookup_fn lookup, void *ctx, struct pass_claims *ret)
{
	return pass_check(token, now, leeway, lookup, ctx, true, ret);
}

int
pass_read(const char *token, int64_t now, int64_t leeway,
    pass_key_lookup_fn lookup, void *ctx, struct pass_claims *ret)
{
	return pass_check(token, now, leeway, lookup, ctx, false, ret);
}

void
pass_digest(const char *token, char out[65])
{
	util_sha256_hex(token, strlen(token), out);
}

/* ---------------------------------------------------------------------
 * Errors
 */

const char *
pass_error_code(int err)
{
	switch (err) {
	case PASS_OK:
		return "ok";
	case PASS_ERR_MALFORMED:
		return "malformed";
	case PASS_ERR_ALG:
		return "bad_alg";
	case PASS_ERR_TYP:
		return "bad_typ";
	case PASS_ERR_CRIT:
		return "crit";
	case PASS_ERR_UNKNOWN_KEY:
		return "unknown_key";
	case PASS_ERR_SIGNATURE:
		return "bad_signature";
	case PASS_ERR_NOT_YET_VALID:
		return "not_yet_valid";
	case PASS_ERR_EXPIRED:
		return "expired";
	case PASS_ERR_CLAIMS:
		return "bad_claims";
	case PASS_ERR_NOMEM:
		return "internal";
	default:
		return "error";
	}
}

const char *
pass_error_message(int err)
{
	switch (err) {
	case PASS_OK:
		return "This pass is valid.";
	case PASS_ERR_MALFORMED:
		return "This is not a readable pass: ask the member to show it "
		    "again, or to get a new one from their home space.";
	case PASS_ERR_ALG:
		return "This pass is not signed the way passes are and may be "
		    "forged: do not admit the member on it.";
	case PASS_ERR_TYP:
		return "This code is not a pass (it may be another Passerelle "
		    "document): ask the member for their pass.";
	case PASS_ERR_CRIT:
		return "This pass needs features this space does not support: "
		    "ask the member to get a new one from their home space.";
	case PASS_ERR_UNKNOWN_KEY:
		return "This pass comes from a space or key this space does not "
		    "know: check that the directory is up to date, or call the "
		    "member's home space.";
	case PASS_ERR_SIGNATURE:
		return "This pass's signature is wrong, so it may have been "
		    "altered: do not admit the member on it.";
	case PASS_ERR_NOT_YET_VALID:
		return "This pass is not valid yet: check the clock, or ask the "
		    "member to come back when it starts.";
	case PASS_ERR_EXPIRED:
		return "This pass has expired: ask the member to get a new one "
		    "from their home space.";
	case PASS_ERR_CLAIMS:
		return "This pass is missing information about the member: ask "
		    "them to get a new one from their home space.";
	case PASS_ERR_NOMEM:
		return "The pass could not be checked because the system is "
		    "busy: try again in a moment.";
	default:
		return "The pass could not be checked: try again, or call the "
		    "member's home space.";
	}
}
