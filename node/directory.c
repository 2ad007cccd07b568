/*
 * directory.c - loading and signing the federation directory.
 *
 * A node takes everything it knows about other spaces from the directory:
 * their URLs, the pins of their node certificates and their pass-signing
 * keys.  directory_load() trusts a token only once its signature verifies
 * with the coordinator key, then checks every field, so that the rest of the
 * node can use a loaded directory without checking again.  Lookups by space
 * id and by (space id, kid) are binary searches over sorted arrays, because
 * they run for every pass scanned and every peer connection.
 *
 * directory_sign_description() is the coordinator's side: it turns a
 * description file (paths to certificates and key files) into the signed
 * document, and checks its own output with directory_load() before handing
 * it out.  Fetching and refreshing the directory is not done here.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "b64url.h"
#include "directory.h"
#include "jws.h"
#include "key.h"
#include "tls.h"
#include "util.h"

#define DIRECTORY_TYP "directory"
#define DIRECTORY_VERSION 1
#define DIRECTORY_MAX_DEPTH 8
#define DIRECTORY_MAX_ID 63
#define DIRECTORY_MAX_KEYS_PER_SPACE 16
#define DIRECTORY_MAX_VALID_DAYS 3650
/* Integers above 2^53 are not exact as JSON numbers (doubles). */
#define DIRECTORY_MAX_INT ((int64_t)1 << 53)

struct directory_key {
	const char *space_id;
	const char *kid;
	uint8_t pk[32];
	int64_t retires_at;	/* 0: not retiring */
};

struct directory {
	cJSON *root; /* owns every string the spaces and keys point to */
	const char *federation;
	int64_t serial;
	int64_t issued_at;
	int64_t expires_at;
	struct directory_space *spaces; /* in document order */
	size_t nspaces;
	const struct directory_space **by_id; /* sorted by id */
	struct directory_key *keys;	      /* sorted by (space_id, kid) */
	size_t nkeys;
	struct directory_trust coordinator_keys[DIRECTORY_MAX_KEYS_PER_SPACE];
	size_t ncoordinator_keys;
	const char *crl;
};

/* ---------------------------------------------------------------------
 * Small JSON readers
 */


/* A non-empty string member, or NULL. */
static const char *
json_nonempty(const cJSON *obj, const char *name)
{
	const char *s = util_json_string(obj, name);

	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* An integral number member in [min, DIRECTORY_MAX_INT]: 0, or -EINVAL. */
static int
json_int(const cJSON *obj, const char *name, int64_t min, int64_t *ret)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	double d;

	if (!cJSON_IsNumber(item))
		return -EINVAL;
	d = item->valuedouble;
	/* The range test also refuses NaN, before the cast could misbehave. */
	if (!(d >= (double)min && d <= (double)DIRECTORY_MAX_INT) ||
	    d != (double)(int64_t)d)
		return -EINVAL;
	*ret = (int64_t)d;
	return 0;
}

/*
 * Space ids end up in certificate URIs, URLs, logs and database rows: keep
 * them to a short, unsurprising alphabet.
 */
static int
directory_id_ok(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len > DIRECTORY_MAX_ID)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* Decodes a b64url member that must be exactly 32 bytes. */
static int
json_b64_32(const cJSON *obj, const char *name, uint8_t out[32])
{
	const char *s = util_json_string(obj, name);
	size_t n;

	if (s == NULL || b64url_decode(s, strlen(s), out, 32, &n) < 0 || n != 32)
		return -EINVAL;
	return 0;
}

/* ---------------------------------------------------------------------
 * Sorting and lookups
 */

static int
space_ptr_cmp(const void *a, const void *b)
{
	const struct directory_space *const *x = a, *const *y = b;

	return strcmp((*x)->id, (*y)->id);
}

static int
key_cmp(const void *a, const void *b)
{
	const struct directory_key *x = a, *y = b;
	int c = strcmp(x->space_id, y->space_id);

	return c != 0 ? c : strcmp(x->kid, y->kid);
}

/* ---------------------------------------------------------------------
 * Loading
 */


/* spki_sha256: one pin, or an array of up to DIRECTORY_MAX_PINS. */
static const char *
directory_read_pins(const cJSON *item, struct directory_space *sp)
{
	const cJSON *pins = cJSON_GetObjectItemCaseSensitive(item, "spki_sha256"), *p;

	sp->npins = 0;
	if (cJSON_IsString(pins)) {
		if (json_b64_32(item, "spki_sha256", sp->spki_sha256[0]) < 0)
			return "a space in the directory has an invalid spki_sha256 pin";
		sp->npins = 1;
		return NULL;
	}
	if (!cJSON_IsArray(pins) || cJSON_GetArraySize(pins) < 1 ||
	    cJSON_GetArraySize(pins) > DIRECTORY_MAX_PINS)
		return "a space in the directory has an invalid spki_sha256 pin";
	cJSON_ArrayForEach(p, pins) {
		size_t n;

		if (!cJSON_IsString(p) || b64url_decode(p->valuestring,
		    strlen(p->valuestring), sp->spki_sha256[sp->npins], 32, &n) < 0 ||
		    n != 32)
			return "a space in the directory has an invalid spki_sha256 pin";
		sp->npins++;
	}
	return NULL;
}

/* The map's fields are optional, but well typed when present. */
static const char *
directory_read_details(const cJSON *item)
{
	const cJSON *v;
	static const char *const strings[] = { "address", "contact", "city" };

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(strings); i++) {
		v = cJSON_GetObjectItemCaseSensitive(item, strings[i]);
		if (v != NULL && !cJSON_IsString(v))
			return "a space in the directory has a text field that is not a string";
	}
	v = cJSON_GetObjectItemCaseSensitive(item, "lat");
	if (v != NULL && (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= 90.0)))
		return "a space in the directory has a latitude out of range";
	v = cJSON_GetObjectItemCaseSensitive(item, "lon");
	if (v != NULL && (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= 180.0)))
		return "a space in the directory has a longitude out of range";
	v = cJSON_GetObjectItemCaseSensitive(item, "capacity");
	if (v != NULL && (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble > 100000 || v->valuedouble != (double)(int)v->valuedouble))
		return "a space in the directory has an invalid capacity";
	v = cJSON_GetObjectItemCaseSensitive(item, "services");
	if (v != NULL) {
		const cJSON *e;

		if (!cJSON_IsArray(v))
			return "a space in the directory has services that are not a list";
		cJSON_ArrayForEach(e, v)
			if (!cJSON_IsString(e))
				return "a space in the directory has a service that is not a string";
	}
	v = cJSON_GetObjectItemCaseSensitive(item, "hours");
	if (v != NULL && !cJSON_IsObject(v))
		return "a space in the directory has hours that are not an object";
	return NULL;
}

/* coordinator_keys and crl, both optional. */
static const char *
directory_read_federation(struct directory *dir)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(dir->root, "coordinator_keys");
	const cJSON *k, *crl;

	if (keys != NULL) {
		if (!cJSON_IsArray(keys))
			return "the directory's coordinator_keys is not a list";
		cJSON_ArrayForEach(k, keys) {
			struct directory_trust *t;
			const char *kty = util_json_string(k, "kty"), *crv = util_json_string(k, "crv");

			if (dir->ncoordinator_keys >= UTIL_ARRAY_SIZE(dir->coordinator_keys))
				return "the directory announces too many coordinator keys";
			t = &dir->coordinator_keys[dir->ncoordinator_keys];
			if (kty == NULL || strcmp(kty, "OKP") != 0 || crv == NULL ||
			    strcmp(crv, "Ed25519") != 0 ||
			    cJSON_GetObjectItemCaseSensitive(k, "d") != NULL ||
			    (t->kid = json_nonempty(k, "kid")) == NULL ||
			    json_b64_32(k, "x", t->pk) < 0)
				return "the directory announces an invalid coordinator key";
			dir->ncoordinator_keys++;
		}
	}
	crl = cJSON_GetObjectItemCaseSensitive(dir->root, "crl");
	if (crl != NULL) {
		if (!cJSON_IsString(crl) ||
		    strncmp(crl->valuestring, "-----BEGIN X509 CRL-----", 24) != 0)
			return "the directory's crl is not a PEM CRL";
		dir->crl = crl->valuestring;
	}
	return NULL;
}

/* Reads one space and appends its keys; a static sentence on error. */
static const char *
directory_read_space(struct directory *dir, const cJSON *item,
    struct directory_space *sp, size_t *nkeys)
{
	const cJSON *jwks, *keys, *k;
	const char *city, *e;
	size_t count = 0;

	if (!cJSON_IsObject(item))
		return "a space in the directory is not a JSON object";
	sp->id = json_nonempty(item, "id");
	if (sp->id == NULL || !directory_id_ok(sp->id))
		return "a space in the directory has a missing or invalid id";
	sp->name = json_nonempty(item, "name");
	if (sp->name == NULL)
		return "a space in the directory has no name";
	city = util_json_string(item, "city");
	if (city == NULL && cJSON_GetObjectItemCaseSensitive(item, "city") != NULL)
		return "a space in the directory has a city that is not a string";
	sp->city = city != NULL ? city : "";
	sp->url = json_nonempty(item, "url");
	if (sp->url == NULL || strncmp(sp->url, "https://", 8) != 0 ||
	    sp->url[8] == '\0')
		return "a space in the directory has no https:// url";
	e = directory_read_pins(item, sp);
	if (e != NULL)
		return e;
	e = directory_read_details(item);
	if (e != NULL)
		return e;
	sp->json = item;

	jwks = cJSON_GetObjectItemCaseSensitive(item, "jwks");
	keys = cJSON_GetObjectItemCaseSensitive(jwks, "keys");
	if (!cJSON_IsObject(jwks) || !cJSON_IsArray(keys))
		return "a space in the directory has no jwks with a keys array";
	cJSON_ArrayForEach(k, keys) {
		struct directory_key *dk = &dir->keys[*nkeys];
		const char *kty, *crv;

		if (++count > DIRECTORY_MAX_KEYS_PER_SPACE)
			return "a space in the directory has too many keys";
		if (!cJSON_IsObject(k))
			return "a key in the directory is not a JSON object";
		kty = util_json_string(k, "kty");
		crv = util_json_string(k, "crv");
		if (kty == NULL || strcmp(kty, "OKP") != 0 || crv == NULL ||
		    strcmp(crv, "Ed25519") != 0)
			return "a key in the directory is not an OKP Ed25519 key";
		/* A private key has no business in a public document. */
		if (cJSON_GetObjectItemCaseSensitive(k, "d") != NULL)
			return "a key in the directory contains a private key";
		dk->space_id = sp->id;
		dk->kid = json_nonempty(k, "kid");
		if (dk->kid == NULL)
			return "a key in the directory has no kid";
		if (json_b64_32(k, "x", dk->pk) < 0)
			return "a key in the directory has an invalid x";
		if (cJSON_GetObjectItemCaseSensitive(k, "retires_at") != NULL) {
			const char *t = util_json_string(k, "retires_at");

			if (t == NULL || util_parse_time(t, &dk->retires_at) < 0)
				return "a key in the directory has an invalid retires_at";
		}
		(*nkeys)++;
	}
	return NULL;
}

/* Checks the payload and fills dir; a static sentence on error. */
static const char *
directory_read(struct directory *dir, int64_t now)
{
	const cJSON *spaces, *item;
	const char *s;
	int64_t v;
	size_t i, nkeys = 0, maxkeys = 0;

	if (json_int(dir->root, "v", 1, &v) < 0 || v != DIRECTORY_VERSION)
		return "the directory has an unsupported version";
	dir->federation = json_nonempty(dir->root, "federation");
	if (dir->federation == NULL)
		return "the directory names no federation";
	if (json_int(dir->root, "serial", 1, &dir->serial) < 0)
		return "the directory's serial is not a positive integer";
	s = util_json_string(dir->root, "issued_at");
	if (s == NULL || util_parse_time(s, &dir->issued_at) < 0)
		return "the directory's issued_at is not an RFC 3339 time";
	s = util_json_string(dir->root, "expires_at");
	if (s == NULL || util_parse_time(s, &dir->expires_at) < 0)
		return "the directory's expires_at is not an RFC 3339 time";
	if (dir->expires_at <= now)
		return "the directory has expired: fetch a new one from the "
		    "coordinator";

	s = directory_read_federation(dir);
	if (s != NULL)
		return s;
	spaces = cJSON_GetObjectItemCaseSensitive(dir->root, "spaces");
	if (!cJSON_IsArray(spaces))
		return "the directory has no spaces array";
	dir->nspaces = (size_t)cJSON_GetArraySize(spaces);
	cJSON_ArrayForEach(item, spaces) {
		const cJSON *keys = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(item, "jwks"), "keys");
		int n = cJSON_IsArray(keys) ? cJSON_GetArraySize(keys) : 0;

		maxkeys += n < DIRECTORY_MAX_KEYS_PER_SPACE ?
		    (size_t)n : DIRECTORY_MAX_KEYS_PER_SPACE + 1;
	}
	dir->spaces = calloc(dir->nspaces + 1, sizeof(*dir->spaces));
	dir->by_id = calloc(dir->nspaces + 1, sizeof(*dir->by_id));
	dir->keys = calloc(maxkeys + 1, sizeof(*dir->keys));
	if (dir->spaces == NULL || dir->by_id == NULL || dir->keys == NULL)
		return "out of memory while loading the directory";

	i = 0;
	cJSON_ArrayForEach(item, spaces) {
		const char *e;

		e = directory_read_space(dir, item, &dir->spaces[i], &nkeys);
		if (e != NULL)
			return e;
		dir->by_id[i] = &dir->spaces[i];
		i++;
	}
	dir->nkeys = nkeys;

	qsort(dir->by_id, dir->nspaces, sizeof(*dir->by_id), space_ptr_cmp);
	for (i = 1; i < dir->nspaces; i++)
		if (strcmp(dir->by_id[i - 1]->id, dir->by_id[i]->id) == 0)
			return "two spaces in the directory have the same id";
	qsort(dir->keys, dir->nkeys, sizeof(*dir->keys), key_cmp);
	for (i = 1; i < dir->nkeys; i++)
		if (key_cmp(&dir->keys[i - 1], &dir->keys[i]) == 0)
			return "a space in the directory has two keys with the "
			    "same kid";
	return NULL;
}

int
directory_load(const char *token, size_t len, const uint8_t coordinator_pk[32],
    int64_t now, struct directory **ret, const char **ret_error)
{
	struct directory_trust t = { .kid = NULL };

	memcpy(t.pk, coordinator_pk, 32);
	return directory_load_trusted(token, len, &t, 1, now, ret, ret_error);
}

int
directory_load_trusted(const char *token, size_t len,
    const struct directory_trust *trust, size_t ntrust, int64_t now,
    struct directory **ret, const char **ret_error)
{
	struct directory *dir = NULL;
	struct jws *jws = NULL;
	const uint8_t *payload;
	const char *typ, *e = NULL;
	size_t payload_len;
	int r;

	/* A directory file may well end with a newline. */
	while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r' ||
	    token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	r = jws_parse_len(token, len, DIRECTORY_MAX_TOKEN, &jws);
	if (r == JWS_ERR_NOMEM) {
		e = "out of memory while loading the directory";
		r = -ENOMEM;
		goto out;
	}
	if (r == JWS_ERR_TOO_LARGE) {
		e = "the directory is too large";
		r = -EFBIG;
		goto out;
	}
	if (r < 0) {
		e = "the directory is not a valid EdDSA JWS";
		r = -EBADMSG;
		goto out;
	}
	typ = jws_header_string(jws, "typ");
	if (typ == NULL || strcmp(typ, DIRECTORY_TYP) != 0) {
		e = "the document is not a directory (its typ is not "
		    "\"directory\")";
		r = -EBADMSG;
		goto out;
	}
	{
		const char *kid = jws_header_string(jws, "kid");
		bool ok = false;

		/* The key the header names first, then any other trusted one. */
		for (size_t i = 0; i < ntrust && !ok; i++)
			if (kid != NULL && trust[i].kid != NULL &&
			    strcmp(kid, trust[i].kid) == 0)
				ok = jws_verify(jws, trust[i].pk) == 0;
		for (size_t i = 0; i < ntrust && !ok; i++)
			ok = jws_verify(jws, trust[i].pk) == 0;
		if (!ok) {
			e = "the directory's signature does not verify with the "
			    "coordinator key";
			r = -EKEYREJECTED;
			goto out;
		}
	}

	dir = calloc(1, sizeof(*dir));
	if (dir == NULL) {
		e = "out of memory while loading the directory";
		r = -ENOMEM;
		goto out;
	}
	payload = jws_payload(jws, &payload_len);
	dir->root = jws_json_parse_object((const char *)payload, payload_len,
	    DIRECTORY_MAX_DEPTH);
	if (dir->root == NULL) {
		e = "the directory's payload is not a JSON object";
		r = -EBADMSG;
		goto out;
	}
	e = directory_read(dir, now);
	if (e != NULL) {
		r = dir->expires_at != 0 && dir->expires_at <= now ?
		    -EKEYEXPIRED : -EBADMSG;
		goto out;
	}
	*ret = dir;
	dir = NULL;
	r = 0;
out:
	if (ret_error != NULL)
		*ret_error = e;
	directory_free(dir);
	jws_free(jws);
	return r;
}

void
directory_free(struct directory *dir)
{
	if (dir == NULL)
		return;
	cJSON_Delete(dir->root);
	free(dir->spaces);
	free(dir->by_id);
	free(dir->keys);
	free(dir);
}

int64_t
directory_serial(const struct directory *dir)
{
	return dir->serial;
}

int64_t
directory_expires_at(const struct directory *dir)
{
	return dir->expires_at;
}

const char *
directory_federation(const struct directory *dir)
{
	return dir->federation;
}

size_t
directory_count(const struct directory *dir)
{
	return dir->nspaces;
}

const struct directory_space *
directory_space_at(const struct directory *dir, size_t i)
{
	return i < dir->nspaces ? &dir->spaces[i] : NULL;
}

const struct directory_space *
directory_find_space(const struct directory *dir, const char *id)
{
	struct directory_space key = { .id = id };
	const struct directory_space *kp = &key, *const *found;

	if (dir == NULL || id == NULL)
		return NULL;
	found = bsearch(&kp, dir->by_id, dir->nspaces, sizeof(*dir->by_id),
	    space_ptr_cmp);
	return found != NULL ? *found : NULL;
}

int
directory_find_key(const struct directory *dir, const char *space_id,
    const char *kid, uint8_t ret_pk[32])
{
	struct directory_key key = { .space_id = space_id, .kid = kid };
	const struct directory_key *found;

	if (dir == NULL || space_id == NULL || kid == NULL)
		return -ENOENT;
	found = bsearch(&key, dir->keys, dir->nkeys, sizeof(*dir->keys),
	    key_cmp);
	if (found == NULL)
		return -ENOENT;
	/* A retired key signs nothing any more, old passes included. */
	if (found->retires_at != 0 && found->retires_at <= util_now())
		return -ENOENT;
	memcpy(ret_pk, found->pk, 32);
	return 0;
}

size_t
directory_coordinator_key_count(const struct directory *dir)
{
	return dir->ncoordinator_keys;
}

const struct directory_trust *
directory_coordinator_key(const struct directory *dir, size_t i)
{
	return i < dir->ncoordinator_keys ? &dir->coordinator_keys[i] : NULL;
}

const char *
directory_crl(const struct directory *dir)
{
	return dir->crl;
}

bool
directory_space_pinned(const struct directory_space *space, const uint8_t pin[32])
{
	for (size_t i = 0; i < space->npins; i++)
		if (memcmp(space->spki_sha256[i], pin, 32) == 0)
			return true;
	return false;
}

cJSON *
directory_geojson(const struct directory *dir)
{
	cJSON *fc = cJSON_CreateObject(), *features;

	cJSON_AddStringToObject(fc, "type", "FeatureCollection");
	features = cJSON_AddArrayToObject(fc, "features");
	for (size_t i = 0; i < dir->nspaces; i++) {
		const struct directory_space *sp = &dir->spaces[i];
		const cJSON *lat = cJSON_GetObjectItemCaseSensitive(sp->json, "lat");
		const cJSON *lon = cJSON_GetObjectItemCaseSensitive(sp->json, "lon");
		static const char *const copied[] = { "address", "hours", "capacity",
		    "services", "contact" };
		cJSON *f = cJSON_CreateObject(), *props, *geom;

		cJSON_AddStringToObject(f, "type", "Feature");
		cJSON_AddStringToObject(f, "id", sp->id);
		/* RFC 7946: a position is [longitude, latitude]. */
		if (cJSON_IsNumber(lat) && cJSON_IsNumber(lon)) {
			cJSON *coords;

			geom = cJSON_AddObjectToObject(f, "geometry");
			cJSON_AddStringToObject(geom, "type", "Point");
			coords = cJSON_AddArrayToObject(geom, "coordinates");
			cJSON_AddItemToArray(coords, cJSON_CreateNumber(lon->valuedouble));
			cJSON_AddItemToArray(coords, cJSON_CreateNumber(lat->valuedouble));
		} else {
			cJSON_AddNullToObject(f, "geometry");
		}
		props = cJSON_AddObjectToObject(f, "properties");
		cJSON_AddStringToObject(props, "id", sp->id);
		cJSON_AddStringToObject(props, "name", sp->name);
		cJSON_AddStringToObject(props, "city", sp->city);
		for (size_t k = 0; k < UTIL_ARRAY_SIZE(copied); k++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(sp->json, copied[k]);

			if (v != NULL)
				cJSON_AddItemToObject(props, copied[k], cJSON_Duplicate(v, 1));
		}
		cJSON_AddItemToArray(features, f);
	}
	return fc;
}

int
directory_pass_key_lookup(void *ctx, const char *iss, const char *kid,
    uint8_t ret_pk[32])
{
	return directory_find_key(ctx, iss, kid, ret_pk);
}

/* ---------------------------------------------------------------------
 * Signing (the coordinator's side)
 */

static void __attribute__((format(printf, 3, 4)))
directory_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Adds a 32-byte value as a b64url string member. */
static int
add_b64_32(cJSON *obj, const char *name, const uint8_t v[32])
{
	char s[64];

	b64url_encode(v, 32, s);
	return cJSON_AddStringToObject(obj, name, s) != NULL ? 0 : -ENOMEM;
}

/* Reads an Ed25519 public key given as "x" or as a "public_key" file. */
static int
directory_describe_key(const cJSON *in, const char *base_dir, uint8_t pk[32],
    char *err, size_t errlen, const char *what)
{
	const char *file = json_nonempty(in, "public_key");
	char *path;
	int r;

	if (cJSON_GetObjectItemCaseSensitive(in, "x") != NULL) {
		if (json_b64_32(in, "x", pk) < 0) {
			directory_err(err, errlen, "%s: x is not 32 bytes of base64url", what);
			return -EINVAL;
		}
		return 0;
	}
	if (file == NULL) {
		directory_err(err, errlen, "%s: needs a public_key file or an x", what);
		return -EINVAL;
	}
	path = util_path_join(base_dir, file);
	if (path == NULL)
		return -ENOMEM;
	r = key_load_public(path, pk);
	if (r < 0)
		directory_err(err, errlen, "%s: cannot read Ed25519 key %s: %s", what,
		    path, strerror(-r));
	free(path);
	return r;
}

/* The pins: from "cert", "certs" (files) or "spki_sha256" (as given). */
static int
directory_describe_pins(const cJSON *in, const char *base_dir, const char *id,
    cJSON *out, char *err, size_t errlen)
{
	const cJSON *certs = cJSON_GetObjectItemCaseSensitive(in, "certs"), *c;
	const cJSON *cert = cJSON_GetObjectItemCaseSensitive(in, "cert");
	const cJSON *given = cJSON_GetObjectItemCaseSensitive(in, "spki_sha256");
	cJSON *pins;
	int r = 0;

	if (given != NULL && cert == NULL && certs == NULL) {
		cJSON_AddItemToObject(out, "spki_sha256", cJSON_Duplicate(given, 1));
		return 0;
	}
	pins = cJSON_CreateArray();
	if (cJSON_IsString(cert))
		certs = NULL;
	else if (!cJSON_IsArray(certs)) {
		cJSON_Delete(pins);
		directory_err(err, errlen, "space %s: cert (a file), certs (files) or "
		    "spki_sha256 is required", id);
		return -EINVAL;
	}
	for (c = certs != NULL ? certs->child : cert; c != NULL && r == 0;
	    c = certs != NULL ? c->next : NULL) {
		uint8_t pin[32];
		char s64[64], *path;

		if (!cJSON_IsString(c)) {
			directory_err(err, errlen, "space %s: certs must be file names", id);
			r = -EINVAL;
			break;
		}
		path = util_path_join(base_dir, c->valuestring);
		if (path == NULL) {
			r = -ENOMEM;
			break;
		}
		r = tls_file_spki_sha256(path, pin);
		if (r < 0)
			directory_err(err, errlen, "space %s: cannot read certificate "
			    "%s: %s", id, path, strerror(-r));
		free(path);
		if (r == 0) {
			b64url_encode(pin, 32, s64);
			cJSON_AddItemToArray(pins, cJSON_CreateString(s64));
		}
	}
	if (r < 0) {
		cJSON_Delete(pins);
		return r;
	}
	/* One pin is written as a string, as most directories have. */
	if (cJSON_GetArraySize(pins) == 1) {
		cJSON_AddItemToObject(out, "spki_sha256",
		    cJSON_Duplicate(cJSON_GetArrayItem(pins, 0), 1));
		cJSON_Delete(pins);
	} else {
		cJSON_AddItemToObject(out, "spki_sha256", pins);
	}
	return 0;
}

/* Builds one space of the payload from its description. */
static int
directory_describe_space(const cJSON *in, const char *base_dir, cJSON *out,
    char *err, size_t errlen)
{
	static const char *const copied[] = { "address", "lat", "lon", "hours",
	    "capacity", "services", "contact" };
	const char *id, *name, *city, *url;
	const cJSON *pass_keys, *pk_in;
	cJSON *jwks, *keys;
	int r;

	id = json_nonempty(in, "id");
	name = json_nonempty(in, "name");
	city = util_json_string(in, "city");
	url = json_nonempty(in, "url");
	if (id == NULL || name == NULL || url == NULL) {
		directory_err(err, errlen, "space %s: id, name and url are required",
		    id != NULL ? id : "(without id)");
		return -EINVAL;
	}
	if (cJSON_AddStringToObject(out, "id", id) == NULL ||
	    cJSON_AddStringToObject(out, "name", name) == NULL ||
	    (city != NULL && cJSON_AddStringToObject(out, "city", city) == NULL) ||
	    cJSON_AddStringToObject(out, "url", url) == NULL)
		return -ENOMEM;
	r = directory_describe_pins(in, base_dir, id, out, err, errlen);
	if (r < 0)
		return r;
	if ((jwks = cJSON_AddObjectToObject(out, "jwks")) == NULL ||
	    (keys = cJSON_AddArrayToObject(jwks, "keys")) == NULL)
		return -ENOMEM;

	pass_keys = cJSON_GetObjectItemCaseSensitive(in, "pass_keys");
	if (!cJSON_IsArray(pass_keys)) {
		directory_err(err, errlen, "space %s: pass_keys must be an array",
		    id);
		return -EINVAL;
	}
	cJSON_ArrayForEach(pk_in, pass_keys) {
		const char *kid = json_nonempty(pk_in, "kid");
		const char *retires = util_json_string(pk_in, "retires_at");
		char what[128];
		uint8_t pk[32];
		int64_t t;
		cJSON *jwk;

		if (kid == NULL) {
			directory_err(err, errlen, "space %s: each pass key needs a kid", id);
			return -EINVAL;
		}
		snprintf(what, sizeof(what), "space %s key %s", id, kid);
		r = directory_describe_key(pk_in, base_dir, pk, err, errlen, what);
		if (r < 0)
			return r;
		if (retires != NULL && util_parse_time(retires, &t) < 0) {
			directory_err(err, errlen, "%s: retires_at is not an RFC 3339 time",
			    what);
			return -EINVAL;
		}
		jwk = cJSON_CreateObject();
		if (jwk == NULL || !cJSON_AddItemToArray(keys, jwk) ||
		    cJSON_AddStringToObject(jwk, "kty", "OKP") == NULL ||
		    cJSON_AddStringToObject(jwk, "crv", "Ed25519") == NULL ||
		    cJSON_AddStringToObject(jwk, "kid", kid) == NULL ||
		    add_b64_32(jwk, "x", pk) < 0 ||
		    (retires != NULL &&
		    cJSON_AddStringToObject(jwk, "retires_at", retires) == NULL))
			return -ENOMEM;
	}
	/* The public details for the map travel as the description has them. */
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(copied); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, copied[i]);

		if (v != NULL)
			cJSON_AddItemToObject(out, copied[i], cJSON_Duplicate(v, 1));
	}
	return 0;
}

/* coordinator_keys (announced for later directories) and the CRL. */
static int
directory_describe_federation(const cJSON *desc, const char *base_dir,
    cJSON *payload, char *err, size_t errlen)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(desc, "coordinator_keys");
	const char *crl = json_nonempty(desc, "crl");
	const cJSON *k;
	int r;

	if (keys != NULL) {
		cJSON *out = cJSON_AddArrayToObject(payload, "coordinator_keys");

		if (!cJSON_IsArray(keys)) {
			directory_err(err, errlen, "coordinator_keys must be an array");
			return -EINVAL;
		}
		cJSON_ArrayForEach(k, keys) {
			const char *kid = json_nonempty(k, "kid");
			uint8_t pk[32];
			cJSON *jwk;

			if (kid == NULL) {
				directory_err(err, errlen, "each coordinator key needs a kid");
				return -EINVAL;
			}
			r = directory_describe_key(k, base_dir, pk, err, errlen,
			    "coordinator key");
			if (r < 0)
				return r;
			jwk = cJSON_CreateObject();
			cJSON_AddItemToArray(out, jwk);
			cJSON_AddStringToObject(jwk, "kty", "OKP");
			cJSON_AddStringToObject(jwk, "crv", "Ed25519");
			cJSON_AddStringToObject(jwk, "kid", kid);
			if (add_b64_32(jwk, "x", pk) < 0)
				return -ENOMEM;
		}
	}
	if (crl != NULL) {
		char *path = util_path_join(base_dir, crl), *pem = NULL;

		if (path == NULL)
			return -ENOMEM;
		r = util_read_file(path, 4 * 1024 * 1024, &pem, NULL);
		if (r < 0) {
			directory_err(err, errlen, "cannot read the CRL %s: %s", path,
			    strerror(-r));
			free(path);
			return r;
		}
		free(path);
		cJSON_AddStringToObject(payload, "crl", pem);
		free(pem);
	}
	return 0;
}

int
directory_sign_description(const char *description_json, const char *base_dir,
    const uint8_t sk[64], const char *kid, int64_t now, char **ret_token,
    char *err, size_t errlen)
{
	cJSON *desc = NULL, *payload = NULL, *header = NULL, *spaces_out;
	const cJSON *spaces_in, *item;
	char *payload_json = NULL, *header_json = NULL, *token = NULL;
	struct directory *check = NULL;
	const char *federation, *e = NULL;
	int64_t serial, valid_days;
	char issued[32], expires[32];
	int r;

	directory_err(err, errlen, "out of memory");
	desc = jws_json_parse_object(description_json, strlen(description_json),
	    DIRECTORY_MAX_DEPTH);
	if (desc == NULL) {
		directory_err(err, errlen, "the description is not a JSON object");
		r = -EINVAL;
		goto out;
	}
	federation = json_nonempty(desc, "federation");
	spaces_in = cJSON_GetObjectItemCaseSensitive(desc, "spaces");
	if (federation == NULL || json_int(desc, "serial", 1, &serial) < 0 ||
	    json_int(desc, "valid_days", 1, &valid_days) < 0 ||
	    valid_days > DIRECTORY_MAX_VALID_DAYS || !cJSON_IsArray(spaces_in)) {
		directory_err(err, errlen, "the description needs federation, a "
		    "positive serial, valid_days between 1 and %d, and a spaces "
		    "array", DIRECTORY_MAX_VALID_DAYS);
		r = -EINVAL;
		goto out;
	}
	if (kid == NULL || kid[0] == '\0') {
		directory_err(err, errlen, "the coordinator key needs a kid");
		r = -EINVAL;
		goto out;
	}

	util_format_time(now, issued);
	util_format_time(now + valid_days * 86400, expires);
	payload = cJSON_CreateObject();
	r = -ENOMEM;
	if (payload == NULL ||
	    cJSON_AddNumberToObject(payload, "v", DIRECTORY_VERSION) == NULL ||
	    cJSON_AddStringToObject(payload, "federation", federation) == NULL ||
	    cJSON_AddNumberToObject(payload, "serial", (double)serial) == NULL ||
	    cJSON_AddStringToObject(payload, "issued_at", issued) == NULL ||
	    cJSON_AddStringToObject(payload, "expires_at", expires) == NULL ||
	    (spaces_out = cJSON_AddArrayToObject(payload, "spaces")) == NULL)
		goto out;
	r = directory_describe_federation(desc, base_dir, payload, err, errlen);
	if (r < 0)
		goto out;
	cJSON_ArrayForEach(item, spaces_in) {
		cJSON *sp = cJSON_CreateObject();

		if (sp == NULL || !cJSON_AddItemToArray(spaces_out, sp)) {
			cJSON_Delete(sp);
			r = -ENOMEM;
			goto out;
		}
		if (!cJSON_IsObject(item)) {
			directory_err(err, errlen, "each space must be a JSON "
			    "object");
			r = -EINVAL;
			goto out;
		}
		r = directory_describe_space(item, base_dir, sp, err, errlen);
		if (r < 0)
			goto out;
	}

	header = cJSON_CreateObject();
	r = -ENOMEM;
	if (header == NULL ||
	    cJSON_AddStringToObject(header, "alg", "EdDSA") == NULL ||
	    cJSON_AddStringToObject(header, "typ", DIRECTORY_TYP) == NULL ||
	    cJSON_AddStringToObject(header, "kid", kid) == NULL)
		goto out;
	header_json = cJSON_PrintUnformatted(header);
	payload_json = cJSON_PrintUnformatted(payload);
	if (header_json == NULL || payload_json == NULL)
		goto out;
	r = jws_sign(header_json, (const uint8_t *)payload_json,
	    strlen(payload_json), sk, &token);
	if (r < 0) {
		directory_err(err, errlen, "cannot sign the directory: %s",
		    jws_strerror(r));
		r = -EINVAL;
		goto out;
	}

	/*
	 * Load what we just signed with the public half of our key: every
	 * rule a node will apply (ids unique, keys well formed, size) is
	 * checked here, before the document is published.
	 */
	r = directory_load(token, strlen(token), sk + 32, now, &check, &e);
	if (r < 0) {
		directory_err(err, errlen, "the signed directory would be "
		    "refused by nodes: %s", e != NULL ? e : strerror(-r));
		goto out;
	}
	*ret_token = token;
	token = NULL;
	directory_err(err, errlen, "ok");
	r = 0;
out:
	directory_free(check);
	free(token);
	cJSON_free(header_json);
	cJSON_free(payload_json);
	cJSON_Delete(header);
	cJSON_Delete(payload);
	cJSON_Delete(desc);
	return r;
}
