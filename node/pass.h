/*
 * pass.h - a member's pass: a JWS (EdDSA) whose claims say who and from where.
 *
 * Header {"alg":"EdDSA","typ":"pass","kid":KID}; claims iss (home space id),
 * sub (pseudonymous member id, never an e-mail), name (short display name),
 * plan ("monthly" or "tickets"), iat, nbf, exp (epoch seconds) and jti.  The
 * whole token stays under 350 bytes so that its QR code is easy to scan
 * (sub and jti are 12 base64url characters: 72 random bits each).
 *
 * Verification is offline: structure, typ, the key found by (iss, kid) through
 * the caller's lookup (the directory), the signature, then the times with a
 * small clock allowance.  Revocation and the member's standing are checked by
 * the callers (the host's list, the home's database).
 */
#ifndef PASSERELLE_PASS_H
#define PASSERELLE_PASS_H

#include <stddef.h>
#include <stdint.h>

#define PASS_MAX_TOKEN 1024
#define PASS_TYP "pass"

struct pass_claims {
	char iss[64];
	char sub[64];
	char name[64];
	char plan[16];
	char jti[64];
	char kid[64];
	int64_t iat;
	int64_t nbf;
	int64_t exp;
};

enum pass_error {
	PASS_OK = 0,
	PASS_ERR_MALFORMED = -1,
	PASS_ERR_ALG = -2,
	PASS_ERR_TYP = -3,
	PASS_ERR_CRIT = -4,
	PASS_ERR_UNKNOWN_KEY = -5,
	PASS_ERR_SIGNATURE = -6,
	PASS_ERR_NOT_YET_VALID = -7,
	PASS_ERR_EXPIRED = -8,
	PASS_ERR_CLAIMS = -9,
	PASS_ERR_NOMEM = -10,
};

/*
 * Finds the public key of space iss named kid; returns 0 and fills ret_pk, or
 * a negative code when there is no such key (unknown space, unknown or
 * retired key).
 */
typedef int (*pass_key_lookup_fn)(void *ctx, const char *iss, const char *kid,
    uint8_t ret_pk[32]);

/* Signs the claims (c->kid names the key); *ret_token is malloc'ed. */
int pass_sign(const struct pass_claims *c, const uint8_t sk[64],
    char **ret_token);

/*
 * Verifies token at time now with leeway seconds of clock allowance.  On
 * success fills *ret and returns PASS_OK; otherwise returns a pass_error and,
 * where the claims could be read, still fills *ret (for the log).
 */
int pass_verify(const char *token, int64_t now, int64_t leeway,
    pass_key_lookup_fn lookup, void *ctx, struct pass_claims *ret);

/*
 * Everything pass_verify checks but the signature, for a home that finds
 * the token among those it issued (by pass_digest) instead: the claims
 * are not to be trusted until then.  Its errors are pass_verify's, but
 * for a forged pass they may name another fault than the signature.
 */
int pass_read(const char *token, int64_t now, int64_t leeway,
    pass_key_lookup_fn lookup, void *ctx, struct pass_claims *ret);

/* The SHA-256 of the token as issued, in hex (passes.digest). */
void pass_digest(const char *token, char out[65]);

/* A stable machine code ("expired") and a sentence for the front desk. */
const char *pass_error_code(int err);
const char *pass_error_message(int err);

#endif
