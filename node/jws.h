/*
 * jws.h - JWS compact serialization (RFC 7515) with EdDSA/Ed25519 (RFC 8037).
 *
 * No Debian C library does JWS with EdDSA, so this is small and written here.
 * Only EdDSA is ever accepted: the algorithm is pinned by the verifier, never
 * taken from the token, and any "crit" header is refused (we understand no
 * extension).  Sizes are bounded before anything is decoded.
 */
#ifndef PASSERELLE_JWS_H
#define PASSERELLE_JWS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define JWS_MAX_TOKEN 65536 /* passes are ~350 bytes; directories larger */
#define JWS_MAX_HEADER 1024  /* decoded protected header, in bytes */
#define JWS_MAX_DEPTH 16     /* JSON nesting accepted in a header or payload */

struct jws;

enum jws_error {
	JWS_OK = 0,
	JWS_ERR_MALFORMED = -1,	 /* not three base64url parts, bad JSON... */
	JWS_ERR_TOO_LARGE = -2,
	JWS_ERR_ALG = -3,	 /* alg is not EdDSA (e.g. "none") */
	JWS_ERR_CRIT = -4,	 /* a crit header we do not understand */
	JWS_ERR_SIGNATURE = -5,	 /* signature does not verify */
	JWS_ERR_NOMEM = -6,
};

/* Raw Ed25519 (libsodium): 0 when sig (64 bytes) is valid for msg. */
int ed25519_verify(const uint8_t sig[64], const uint8_t *msg, size_t len,
    const uint8_t pk[32]);

/*
 * The same for a signature of any length: signatures that are not 64 bytes
 * long are refused here, so that callers holding untrusted lengths (test
 * vectors, other encodings) need not check first.
 */
int ed25519_verify_len(const uint8_t *sig, size_t sig_len, const uint8_t *msg,
    size_t len, const uint8_t pk[32]);

/*
 * Signs payload with sk under the protected header header_json (a JSON
 * object that must contain "alg":"EdDSA"); *ret_token is malloc'ed.
 */
int jws_sign(const char *header_json, const uint8_t *payload, size_t payload_len,
    const uint8_t sk[64], char **ret_token);

/*
 * Splits and decodes a compact token of at most max_len bytes.  Checks the
 * structure, that the header is a JSON object with alg EdDSA and no crit;
 * does NOT check the signature (the caller needs the kid to find the key).
 */
int jws_parse(const char *token, size_t max_len, struct jws **ret);

/* The same for a token of exactly len bytes, not necessarily NUL-terminated. */
int jws_parse_len(const char *token, size_t len, size_t max_len,
    struct jws **ret);

/*
 * Parses len bytes of untrusted JSON text that must be a single object, with
 * no NUL byte, nesting at most max_depth deep and no duplicate member name
 * in any object (RFC 7515 section 5.2 lets us refuse them).  Returns the
 * object (free with cJSON_Delete) or NULL.  Shared by pass.c and directory.c.
 */
cJSON *jws_json_parse_object(const char *text, size_t len, int max_depth);

const cJSON *jws_header(const struct jws *jws);
/* The header's string member name, or NULL. */
const char *jws_header_string(const struct jws *jws, const char *name);
/* The decoded payload (NUL-terminated for convenience). */
const uint8_t *jws_payload(const struct jws *jws, size_t *ret_len);
/* Verifies the signature over the signing input with pk. */
int jws_verify(const struct jws *jws, const uint8_t pk[32]);
void jws_free(struct jws *jws);

const char *jws_strerror(int err);

#endif
