/*
 * directory.h - the federation directory: the signed list of member spaces.
 *
 * The coordinator signs a JSON document as a JWS (EdDSA, typ "directory"); a
 * node trusts exactly one coordinator public key (from its configuration) and
 * takes everything else from the directory: which spaces exist, where their
 * federation face is, the SHA-256 pin of each node certificate's public key,
 * and each space's pass-signing keys as a JWKS.
 *
 * Payload (docs/protocol.md has every field):
 *   {"v":1, "federation":NAME, "serial":N, "issued_at":RFC3339,
 *    "expires_at":RFC3339,
 *    "spaces":[{"id","name","city","url","spki_sha256":b64url or [b64url...],
 *               "jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","kid","x",
 *                                "retires_at"?}]},
 *               "address"?, "lat"?, "lon"?, "hours"?, "capacity"?,
 *               "services"?, "contact"?}],
 *    "coordinator_keys"?: [JWK...],   keys announced for later directories
 *    "crl"?: PEM}                     the federation CA's revocation list
 *
 * A loaded directory is immutable and may be shared by threads.
 */
#ifndef PASSERELLE_DIRECTORY_H
#define PASSERELLE_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define DIRECTORY_MAX_TOKEN (16 * 1024 * 1024)

struct directory;

#define DIRECTORY_MAX_PINS 4

struct directory_space {
	const char *id;
	const char *name;
	const char *city;
	const char *url;	     /* federation face base URL */
	/*
	 * Pins of its node certificates' keys: usually one, two while a
	 * renewed certificate with a new key takes over.
	 */
	uint8_t spki_sha256[DIRECTORY_MAX_PINS][32];
	size_t npins;
	const cJSON *json;	     /* the whole entry (address, hours, ...) */
};

/* A coordinator key a node trusts to sign directories. */
struct directory_trust {
	const char *kid;	     /* NULL: any kid */
	uint8_t pk[32];
};

/*
 * Verifies token with the coordinator's key, checks that it has not expired
 * at now, and parses it.  On failure *ret_error (if not NULL) gets a static
 * sentence saying why.
 */
int directory_load(const char *token, size_t len, const uint8_t coordinator_pk[32],
    int64_t now, struct directory **ret, const char **ret_error);
void directory_free(struct directory *dir);

/*
 * The same with a set of trusted coordinator keys (the configured one and
 * those announced by directories already trusted): the header's kid picks
 * the key, or every key is tried when no kid matches.
 */
int directory_load_trusted(const char *token, size_t len,
    const struct directory_trust *trust, size_t ntrust, int64_t now,
    struct directory **ret, const char **ret_error);

/* Coordinator keys this directory announces (for the next ones). */
size_t directory_coordinator_key_count(const struct directory *dir);
const struct directory_trust *directory_coordinator_key(const struct directory *dir,
    size_t i);

/* The federation CA's CRL carried by the directory (PEM), or NULL. */
const char *directory_crl(const struct directory *dir);

/* True when pin is one of the space's certificate key pins. */
bool directory_space_pinned(const struct directory_space *space, const uint8_t pin[32]);

/* The spaces as a GeoJSON FeatureCollection (RFC 7946, longitude first). */
cJSON *directory_geojson(const struct directory *dir);

int64_t directory_serial(const struct directory *dir);
int64_t directory_expires_at(const struct directory *dir);
const char *directory_federation(const struct directory *dir);
size_t directory_count(const struct directory *dir);
const struct directory_space *directory_space_at(const struct directory *dir, size_t i);
const struct directory_space *directory_find_space(const struct directory *dir,
    const char *id);

/*
 * Finds a space's pass-signing key by kid: 0, or -ENOENT (no such key, or
 * the key retired: its retires_at has passed).
 */
int directory_find_key(const struct directory *dir, const char *space_id,
    const char *kid, uint8_t ret_pk[32]);

/* A pass_key_lookup_fn over a directory (ctx is the struct directory *). */
int directory_pass_key_lookup(void *ctx, const char *iss, const char *kid,
    uint8_t ret_pk[32]);

/*
 * Builds and signs a directory from a description file (see docs/protocol.md):
 *   {"federation":NAME, "serial":N, "valid_days":D,
 *    "coordinator_keys"?: [{"kid","public_key":PATH or "x"}], "crl"?: PATH,
 *    "spaces":[{"id","name","city","url","cert":PATH or "certs":[PATH...]
 *               or "spki_sha256", "pass_keys":[{"kid","public_key":PATH
 *               or "x", "retires_at"?}], "address"?, "lat"?, "lon"?,
 *               "hours"?, "capacity"?, "services"?, "contact"?}]}
 * Paths are relative to base_dir.  *ret_token is malloc'ed.
 */
int directory_sign_description(const char *description_json, const char *base_dir,
    const uint8_t sk[64], const char *kid, int64_t now, char **ret_token,
    char *err, size_t errlen);

#endif
