/*
 * jws.c - JWS compact serialization (RFC 7515) with EdDSA/Ed25519 (RFC 8037).
 *
 * Passes, directories and receipts are all compact JWS tokens.  This file
 * splits, decodes, signs and verifies them; it knows nothing about what a
 * payload means (pass.c and directory.c do).  The algorithm is pinned to
 * EdDSA whatever the token says, "crit" is always refused, every size is
 * checked before anything is decoded, and JSON from a peer is parsed with a
 * depth limit and without duplicate member names.  Signatures are libsodium's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "b64url.h"
#include "jws.h"

#define JWS_SIG_LEN 64

struct jws {
	cJSON *header;
	uint8_t *payload; /* NUL-terminated */
	size_t payload_len;
	char *signing_input; /* "header.payload" as it was received */
	size_t signing_input_len;
	uint8_t sig[JWS_SIG_LEN];
};

/* ---------------------------------------------------------------------
 * Raw Ed25519
 */

int
ed25519_verify(const uint8_t sig[64], const uint8_t *msg, size_t len,
    const uint8_t pk[32])
{
	/*
	 * libsodium refuses non-canonical S, small-order R and public keys,
	 * which is what RFC 8032 asks and what the Wycheproof vectors test.
	 */
	if (crypto_sign_verify_detached(sig, msg, len, pk) != 0)
		return JWS_ERR_SIGNATURE;
	return 0;
}

int
ed25519_verify_len(const uint8_t *sig, size_t sig_len, const uint8_t *msg,
    size_t len, const uint8_t pk[32])
{
	if (sig_len != JWS_SIG_LEN)
		return JWS_ERR_SIGNATURE;
	return ed25519_verify(sig, msg, len, pk);
}

/* ---------------------------------------------------------------------
 * Untrusted JSON
 */

/*
 * Measures the nesting of JSON text without building anything, so that a
 * hostile document cannot make the recursive parser go deep.  Brackets
 * inside strings do not count.
 */
static int
json_depth_ok(const char *text, size_t len, int max_depth)
{
	int depth = 0, in_string = 0;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max_depth)
				return 0;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 1;
}

/* Refuses an object in which two members share a name, at any depth. */
static int
json_names_unique(const cJSON *item, int depth)
{
	const cJSON *a, *b;

	if (depth > JWS_MAX_DEPTH * 4)
		return 0;
	if (cJSON_IsObject(item)) {
		for (a = item->child; a != NULL; a = a->next)
			for (b = a->next; b != NULL; b = b->next)
				if (strcmp(a->string, b->string) == 0)
					return 0;
	}
	if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
		for (a = item->child; a != NULL; a = a->next)
			if (!json_names_unique(a, depth + 1))
				return 0;
	}
	return 1;
}

cJSON *
jws_json_parse_object(const char *text, size_t len, int max_depth)
{
	const char *end = NULL;
	cJSON *root;

	if (memchr(text, '\0', len) != NULL)
		return NULL;
	if (!json_depth_ok(text, len, max_depth))
		return NULL;
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (root == NULL)
		return NULL;
	/* Only white space may follow the object. */
	for (; end != NULL && end < text + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
			goto fail;
	}
	if (!cJSON_IsObject(root) || !json_names_unique(root, 0))
		goto fail;
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

/*
 * The checks every protected header gets, when signing as when verifying:
 * alg is exactly "EdDSA" and there is no crit at all.
 */
static int
jws_check_header(const cJSON *header)
{
	const cJSON *alg;

	alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
	if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "EdDSA") != 0)
		return JWS_ERR_ALG;
	if (cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL)
		return JWS_ERR_CRIT;
	return 0;
}

/* ---------------------------------------------------------------------
 * Signing
 */

int
jws_sign(const char *header_json, const uint8_t *payload, size_t payload_len,
    const uint8_t sk[64], char **ret_token)
{
	uint8_t sig[JWS_SIG_LEN];
	cJSON *header = NULL;
	char *token = NULL;
	size_t hlen, h64, p64, s64, len, off;
	int r;

	hlen = strlen(header_json);
	if (hlen > JWS_MAX_HEADER)
		return JWS_ERR_TOO_LARGE;
	header = jws_json_parse_object(header_json, hlen, JWS_MAX_DEPTH);
	if (header == NULL)
		return JWS_ERR_MALFORMED;
	r = jws_check_header(header);
	if (r < 0)
		goto out;
	if (payload_len > SIZE_MAX / 2 - 2 * JWS_MAX_HEADER) {
		r = JWS_ERR_TOO_LARGE;
		goto out;
	}

	h64 = b64url_encoded_len(hlen);
	p64 = b64url_encoded_len(payload_len);
	s64 = b64url_encoded_len(sizeof(sig));
	len = h64 + 1 + p64 + 1 + s64;
	token = malloc(len + 1);
	if (token == NULL) {
		r = JWS_ERR_NOMEM;
		goto out;
	}
	b64url_encode((const uint8_t *)header_json, hlen, token);
	token[h64] = '.';
	b64url_encode(payload, payload_len, token + h64 + 1);
	off = h64 + 1 + p64;
	/* The signature covers the ASCII "header.payload", not the JSON. */
	if (crypto_sign_detached(sig, NULL, (const uint8_t *)token, off, sk) != 0) {
		r = JWS_ERR_SIGNATURE;
		goto out;
	}
	token[off] = '.';
	b64url_encode(sig, sizeof(sig), token + off + 1);
	*ret_token = token;
	token = NULL;
	r = 0;
out:
	free(token);
	cJSON_Delete(header);
	return r;
}

/* ---------------------------------------------------------------------
 * Parsing and verifying
 */

int
jws_parse_len(const char *token, size_t len, size_t max_len, struct jws **ret)
{
	const char *dot1, *dot2, *p64, *s64;
	size_t h64_len, p64_len, s64_len, n;
	char hbuf[JWS_MAX_HEADER + 1];
	struct jws *jws = NULL;
	int r;

	if (max_len == 0)
		max_len = JWS_MAX_TOKEN;
	if (len > max_len)
		return JWS_ERR_TOO_LARGE;

	/* Exactly three parts: no JWE (five parts), no detached payload. */
	dot1 = memchr(token, '.', len);
	if (dot1 == NULL)
		return JWS_ERR_MALFORMED;
	p64 = dot1 + 1;
	dot2 = memchr(p64, '.', len - (size_t)(p64 - token));
	if (dot2 == NULL)
		return JWS_ERR_MALFORMED;
	s64 = dot2 + 1;
	h64_len = (size_t)(dot1 - token);
	p64_len = (size_t)(dot2 - p64);
	s64_len = len - (size_t)(s64 - token);
	if (memchr(s64, '.', s64_len) != NULL || h64_len == 0)
		return JWS_ERR_MALFORMED;
	if (h64_len > b64url_encoded_len(JWS_MAX_HEADER))
		return JWS_ERR_TOO_LARGE;

	jws = calloc(1, sizeof(*jws));
	if (jws == NULL)
		return JWS_ERR_NOMEM;

	/* The header first: a token that is not ours says so by its alg. */
	if (b64url_decode(token, h64_len, (uint8_t *)hbuf, sizeof(hbuf) - 1,
	    &n) < 0) {
		r = JWS_ERR_MALFORMED;
		goto out;
	}
	hbuf[n] = '\0';
	jws->header = jws_json_parse_object(hbuf, n, JWS_MAX_DEPTH);
	if (jws->header == NULL) {
		r = JWS_ERR_MALFORMED;
		goto out;
	}
	r = jws_check_header(jws->header);
	if (r < 0)
		goto out;

	if (s64_len != b64url_encoded_len(JWS_SIG_LEN) ||
	    b64url_decode(s64, s64_len, jws->sig, sizeof(jws->sig), &n) < 0 ||
	    n != JWS_SIG_LEN) {
		r = JWS_ERR_MALFORMED;
		goto out;
	}

	/* len <= max_len bounds this allocation. */
	jws->payload = malloc(p64_len / 4 * 3 + 3);
	if (jws->payload == NULL) {
		r = JWS_ERR_NOMEM;
		goto out;
	}
	if (b64url_decode(p64, p64_len, jws->payload, p64_len / 4 * 3 + 2,
	    &jws->payload_len) < 0) {
		r = JWS_ERR_MALFORMED;
		goto out;
	}
	jws->payload[jws->payload_len] = '\0';

	jws->signing_input_len = h64_len + 1 + p64_len;
	jws->signing_input = malloc(jws->signing_input_len + 1);
	if (jws->signing_input == NULL) {
		r = JWS_ERR_NOMEM;
		goto out;
	}
	memcpy(jws->signing_input, token, jws->signing_input_len);
	jws->signing_input[jws->signing_input_len] = '\0';

	*ret = jws;
	jws = NULL;
	r = 0;
out:
	jws_free(jws);
	return r;
}

int
jws_parse(const char *token, size_t max_len, struct jws **ret)
{
	size_t len;

	if (max_len == 0)
		max_len = JWS_MAX_TOKEN;
	/* strnlen so that an unterminated giant is not read to its end. */
	len = strnlen(token, max_len + 1);
	if (len > max_len)
		return JWS_ERR_TOO_LARGE;
	return jws_parse_len(token, len, max_len, ret);
}

const cJSON *
jws_header(const struct jws *jws)
{
	return jws->header;
}

const char *
jws_header_string(const struct jws *jws, const char *name)
{
	const cJSON *item;

	item = cJSON_GetObjectItemCaseSensitive(jws->header, name);
	return cJSON_IsString(item) ? item->valuestring : NULL;
}

const uint8_t *
jws_payload(const struct jws *jws, size_t *ret_len)
{
	if (ret_len != NULL)
		*ret_len = jws->payload_len;
	return jws->payload;
}

int
jws_verify(const struct jws *jws, const uint8_t pk[32])
{
	return ed25519_verify(jws->sig, (const uint8_t *)jws->signing_input,
	    jws->signing_input_len, pk);
}

void
jws_free(struct jws *jws)
{
	if (jws == NULL)
		return;
	cJSON_Delete(jws->header);
	free(jws->payload);
	free(jws->signing_input);
	free(jws);
}

const char *
jws_strerror(int err)
{
	switch (err) {
	case JWS_OK:
		return "valid";
	case JWS_ERR_MALFORMED:
		return "malformed token";
	case JWS_ERR_TOO_LARGE:
		return "token too large";
	case JWS_ERR_ALG:
		return "algorithm is not EdDSA";
	case JWS_ERR_CRIT:
		return "unsupported critical header";
	case JWS_ERR_SIGNATURE:
		return "signature does not verify";
	case JWS_ERR_NOMEM:
		return "out of memory";
	default:
		return "unknown error";
	}
}
