/*
 * federation_space.c - the spaces of a federation, on the coordinator's
 * side: what a join request, a key request and a certificate request may
 * hold, and the commands that admit a space, remove it, add a pass key to
 * it and renew its certificate.
 *
 * The checks of a join request are shared with join.c, so that `passerelle
 * init` writes only what `federation admit` accepts.  Each command changes
 * the federation the way federation.c describes: under the folder's lock,
 * in memory, and saved only once the next directory is signed.
 *
 * The command entry points keep the federation_cmd_ names that main.c's
 * table knows them by.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "b64url.h"
#include "cli.h"
#include "directory.h"
#include "federation.h"
#include "federation_state.h"
#include "tls.h"
#include "util.h"

#define FEDERATION_SPACE_MAX_REQUEST (64 * 1024)
#define FEDERATION_SPACE_MAX_KEY_REQUEST 4096
#define FEDERATION_SPACE_MAX_CSR 16384
#define FEDERATION_SPACE_MAX_IPS 8
#define FEDERATION_SPACE_MAX_SERVICES 32
#define FEDERATION_SPACE_MAX_HOURS 7

/* ---------------------------------------------------------------------
 * What a join request may hold
 */

/*
 * Text that ends up in the directory, on a map and on a front desk's
 * screen: valid UTF-8, no control characters, and not too long.
 */
static bool
federation_space_text_ok(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len > max || !util_utf8_valid(s, len))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* C0 and DEL; C1 (U+0080..U+009F) is C2 80..C2 9F in UTF-8. */
		if (c < 0x20 || c == 0x7f || (c == 0xc2 && (unsigned char)s[i + 1] < 0xa0))
			return false;
	}
	return true;
}

bool
federation_space_id_ok(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (c == '-' && i > 0)))
			return false;
	}
	return true;
}

bool
federation_space_dns_name_ok(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > 253 || name[0] == '.' || name[len - 1] == '.')
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '.' || c == '\0') {
			/* Empty labels, and labels that start or end with '-'. */
			if (label == 0 || label > 63 || name[i - 1] == '-' ||
			    name[i - label] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-')
			return false;
		label++;
	}
	return true;
}

bool
federation_space_ip_ok(const char *ip)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
}

bool
federation_space_kid_ok(const char *kid)
{
	size_t len = strlen(kid);

	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = kid[i];

		if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

int
federation_space_url_check(const char *url, int *ret_port)
{
	const char *host, *p;
	char h[256];
	long port = 443;
	size_t hlen;

	if (strncmp(url, "https://", 8) != 0)
		return -EINVAL;
	host = url + 8;
	if (host[0] == '[') {
		unsigned char buf[16];

		p = strchr(host, ']');
		if (p == NULL || (size_t)(p - host - 1) >= sizeof(h))
			return -EINVAL;
		hlen = (size_t)(p - host - 1);
		memcpy(h, host + 1, hlen);
		h[hlen] = '\0';
		if (inet_pton(AF_INET6, h, buf) != 1)
			return -EINVAL;
		p++;
	} else {
		p = host + strcspn(host, ":/?#@[]");
		hlen = (size_t)(p - host);
		if (hlen == 0 || hlen >= sizeof(h))
			return -EINVAL;
		memcpy(h, host, hlen);
		h[hlen] = '\0';
		if (!federation_space_dns_name_ok(h))
			return -EINVAL;
	}
	if (*p == ':') {
		char *end;

		if (!isdigit((unsigned char)p[1]))
			return -EINVAL;
		errno = 0;
		port = strtol(p + 1, &end, 10);
		if (errno != 0 || port < 1 || port > 65535)
			return -EINVAL;
		p = end;
	}
	/* The node appends /federation/v1/...: no path, query or fragment. */
	if (*p != '\0')
		return -EINVAL;
	if (ret_port != NULL)
		*ret_port = (int)port;
	return 0;
}

static bool
federation_space_service_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 32)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* An optional text field: absent, null, or a string that passes. */
static int
federation_space_check_text(const cJSON *req, const char *name, size_t max,
    bool required, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);

	if (!required && (v == NULL || cJSON_IsNull(v)))
		return 0;
	if (!cJSON_IsString(v) || (required && v->valuestring[0] == '\0')) {
		federation_err(err, errlen, "field '%s' must be %stext", name,
		    required ? "non-empty " : "");
		return -EINVAL;
	}
	if (!federation_space_text_ok(v->valuestring, max)) {
		federation_err(err, errlen, "field '%s' must be UTF-8 text of at most "
		    "%zu bytes without control characters", name, max);
		return -EINVAL;
	}
	return 0;
}

static int
federation_space_check_number(const cJSON *req, const char *name, double min,
    double max, bool integral, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max) ||
	    (integral && v->valuedouble != (double)(int64_t)v->valuedouble)) {
		federation_err(err, errlen, "field '%s' must be a%s number from %g to %g",
		    name, integral ? " whole" : "", min, max);
		return -EINVAL;
	}
	return 0;
}

/* The opening hours: {"mon": "09:00-19:00", ...}, days in English. */
static int
federation_space_check_hours(const cJSON *req, char *err, size_t errlen)
{
	static const char *const days[] = { "mon", "tue", "wed", "thu", "fri", "sat",
	    "sun" };
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "hours"), *d;

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v)) {
		federation_err(err, errlen, "field 'hours' must be an object such as "
		    "{\"mon\": \"09:00-19:00\"}");
		return -EINVAL;
	}
	cJSON_ArrayForEach(d, v) {
		bool known = false;

		for (size_t i = 0; i < UTIL_ARRAY_SIZE(days); i++)
			known = known || strcmp(d->string, days[i]) == 0;
		if (!known) {
			federation_err(err, errlen, "hours: '%s' is not a day (mon, tue, "
			    "wed, thu, fri, sat, sun)", d->string);
			return -EINVAL;
		}
		if (!cJSON_IsString(d) || d->valuestring[0] == '\0' ||
		    !federation_space_text_ok(d->valuestring, 64)) {
			federation_err(err, errlen, "hours: the value for '%s' must be "
			    "text such as \"09:00-19:00\"", d->string);
			return -EINVAL;
		}
	}
	return 0;
}

static int
federation_space_check_list(const cJSON *req, const char *name, int max,
    bool (*ok)(const char *), const char *what, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name), *e;

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > max) {
		federation_err(err, errlen, "field '%s' must be a list of at most %d %s",
		    name, max, what);
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, v) {
		if (!cJSON_IsString(e) || !ok(e->valuestring)) {
			federation_err(err, errlen, "field '%s': '%s' is not %s", name,
			    cJSON_IsString(e) ? e->valuestring : "(not text)", what);
			return -EINVAL;
		}
	}
	return 0;
}

int
federation_space_check_details(const cJSON *req, char *err, size_t errlen)
{
	static const char *const known[] = { "v", "id", "name", "city", "address",
	    "lat", "lon", "url", "dns", "ips", "hours", "capacity", "services",
	    "contact", "csr", "pass_key" };
	static const char *const required[] = { "v", "id", "name", "url", "dns" };
	const cJSON *item;
	const char *s;
	int64_t v;
	int r;

	if (!cJSON_IsObject(req)) {
		federation_err(err, errlen, "a join request is a JSON object");
		return -EINVAL;
	}
	cJSON_ArrayForEach(item, req) {
		bool found = false;

		for (size_t i = 0; i < UTIL_ARRAY_SIZE(known) && !found; i++)
			found = strcmp(item->string, known[i]) == 0;
		if (!found) {
			federation_err(err, errlen, "unknown field '%s'", item->string);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(required); i++) {
		if (federation_json_absent(req, required[i])) {
			federation_err(err, errlen, "field '%s' is missing", required[i]);
			return -EINVAL;
		}
	}
	if (federation_json_int(req, "v", &v) < 0 || v != 1) {
		federation_err(err, errlen, "field 'v' must be 1 (this passerelle reads "
		    "version 1 join requests)");
		return -EINVAL;
	}
	s = util_json_string(req, "id");
	if (s == NULL || !federation_space_id_ok(s)) {
		federation_err(err, errlen, "field 'id' must be a space id matching "
		    "^[a-z0-9][a-z0-9-]{0,62}$");
		return -EINVAL;
	}
	if ((r = federation_space_check_text(req, "name", 128, true, err,
	    errlen)) < 0 ||
	    (r = federation_space_check_text(req, "city", 128, false, err,
	    errlen)) < 0 ||
	    (r = federation_space_check_text(req, "address", 256, false, err,
	    errlen)) < 0 ||
	    (r = federation_space_check_text(req, "contact", 254, false, err,
	    errlen)) < 0)
		return r;
	s = util_json_string(req, "url");
	if (s == NULL || federation_space_url_check(s, NULL) < 0) {
		federation_err(err, errlen, "field 'url' must be the federation face's "
		    "https://HOST[:PORT] (no path)");
		return -EINVAL;
	}
	s = util_json_string(req, "dns");
	if (s == NULL || !federation_space_dns_name_ok(s)) {
		federation_err(err, errlen, "field 'dns' must be a DNS name");
		return -EINVAL;
	}
	if ((r = federation_space_check_list(req, "ips", FEDERATION_SPACE_MAX_IPS,
	    federation_space_ip_ok, "IP addresses", err, errlen)) < 0 ||
	    (r = federation_space_check_list(req, "services",
	    FEDERATION_SPACE_MAX_SERVICES, federation_space_service_ok,
	    "service names ([a-z0-9_-], at most 32)", err, errlen)) < 0)
		return r;
	if ((r = federation_space_check_number(req, "lat", -90, 90, false, err,
	    errlen)) < 0 ||
	    (r = federation_space_check_number(req, "lon", -180, 180, false, err,
	    errlen)) < 0 ||
	    (r = federation_space_check_number(req, "capacity", 0, 100000, true, err,
	    errlen)) < 0)
		return r;
	if (federation_json_absent(req, "lat") != federation_json_absent(req, "lon")) {
		federation_err(err, errlen, "fields 'lat' and 'lon' go together");
		return -EINVAL;
	}
	return federation_space_check_hours(req, err, errlen);
}

/*
 * The names a request asks for are only informative (the CA writes its
 * own), but a request naming another space or host is a mix-up that the
 * coordinator should hear about before issuing anything.
 */
static int
federation_space_check_csr_names(X509_REQ *req, const char *id, const char *dns,
    char *err, size_t errlen)
{
	static const size_t prefix_len = sizeof(TLS_SPACE_URI_PREFIX) - 1;
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *names = NULL;
	bool any_dns = false, dns_found = false;
	int r = 0;

	if (exts != NULL)
		names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *s;
		int len;

		if (gn->type == GEN_URI) {
			s = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
			len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
			if (len >= 0 && (size_t)len >= prefix_len &&
			    memcmp(s, TLS_SPACE_URI_PREFIX, prefix_len) == 0 &&
			    ((size_t)len - prefix_len != strlen(id) ||
			    memcmp(s + prefix_len, id, strlen(id)) != 0)) {
				federation_err(err, errlen, "the CSR asks for space '%.*s', "
				    "not '%s'", len - (int)prefix_len, s + prefix_len, id);
				r = -EINVAL;
				goto out;
			}
		} else if (gn->type == GEN_DNS) {
			s = ASN1_STRING_get0_data(gn->d.dNSName);
			len = ASN1_STRING_length(gn->d.dNSName);
			any_dns = true;
			if (len >= 0 && (size_t)len == strlen(dns) &&
			    strncasecmp((const char *)s, dns, (size_t)len) == 0)
				dns_found = true;
		}
	}
	if (any_dns && !dns_found) {
		federation_err(err, errlen, "the CSR asks for other DNS names than '%s'",
		    dns);
		r = -EINVAL;
	}
out:
	GENERAL_NAMES_free(names);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	return r;
}

/*
 * Parses a PEM certificate request and checks it: one request, its
 * self-signature, and a key the federation uses (EC P-256 or Ed25519).
 */
static int
federation_space_check_csr(const char *pem, const char *id, const char *dns,
    X509_REQ **ret, char *err, size_t errlen)
{
	static const char begin[] = "-----BEGIN CERTIFICATE REQUEST-----";
	X509_REQ *req = NULL;
	EVP_PKEY *pkey;
	BIO *bio = NULL;
	int type, r = -EINVAL;

	if (strlen(pem) > FEDERATION_SPACE_MAX_CSR ||
	    strncmp(pem, begin, sizeof(begin) - 1) != 0) {
		federation_err(err, errlen, "the CSR is not a PEM certificate request "
		    "(at most %d bytes)", FEDERATION_SPACE_MAX_CSR);
		goto out;
	}
	bio = BIO_new_mem_buf(pem, (int)strlen(pem));
	if (bio == NULL) {
		r = -ENOMEM;
		goto out;
	}
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	if (req == NULL) {
		federation_err(err, errlen, "the CSR cannot be parsed (damaged PEM or "
		    "DER)");
		goto out;
	}
	pkey = X509_REQ_get0_pubkey(req);
	if (pkey == NULL) {
		federation_err(err, errlen, "the CSR's public key cannot be read");
		goto out;
	}
	type = EVP_PKEY_get_base_id(pkey);
	if (type == EVP_PKEY_EC) {
		char group[64] = "";

		if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1 ||
		    (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
			federation_err(err, errlen, "the CSR's key is on curve %s: node "
			    "keys must be EC P-256 or Ed25519", group[0] ? group : "?");
			goto out;
		}
	} else if (type != EVP_PKEY_ED25519) {
		const char *name = EVP_PKEY_get0_type_name(pkey);

		federation_err(err, errlen, "the CSR's key is %s (%d bits): node keys "
		    "must be EC P-256 or Ed25519", name != NULL ? name : "of an unknown "
		    "type", EVP_PKEY_get_bits(pkey));
		goto out;
	}
	if (X509_REQ_verify(req, pkey) != 1) {
		federation_err(err, errlen, "the CSR's signature does not verify (the "
		    "request was damaged or altered)");
		goto out;
	}
	r = federation_space_check_csr_names(req, id, dns, err, errlen);
	if (r < 0)
		goto out;
	if (ret != NULL) {
		*ret = req;
		req = NULL;
	}
	r = 0;
out:
	X509_REQ_free(req);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

/* A pass key {"kid", "x"} as a request or a key request carries it. */
static int
federation_space_check_pass_key(const char *kid, const char *x, uint8_t pk[32],
    char *err, size_t errlen)
{
	size_t n;

	if (kid == NULL || !federation_space_kid_ok(kid)) {
		federation_err(err, errlen, "the pass key's kid must match "
		    "[A-Za-z0-9._-]{1,64}");
		return -EINVAL;
	}
	if (x == NULL || b64url_decode(x, strlen(x), pk, 32, &n) < 0 || n != 32) {
		federation_err(err, errlen, "the pass key's x must be 32 bytes of "
		    "base64url (an Ed25519 public key)");
		return -EINVAL;
	}
	/* Small-order and non-canonical points could never verify a pass. */
	if (sodium_init() < 0 || crypto_core_ed25519_is_valid_point(pk) != 1) {
		federation_err(err, errlen, "the pass key's x is not a valid Ed25519 "
		    "public key");
		return -EINVAL;
	}
	return 0;
}

int
federation_space_check_request(const cJSON *req, X509_REQ **ret_csr,
    uint8_t ret_pass_pk[32], char *err, size_t errlen)
{
	const cJSON *pk_obj, *item;
	const char *csr;
	uint8_t pk[32];
	int r;

	r = federation_space_check_details(req, err, errlen);
	if (r < 0)
		return r;
	csr = util_json_string(req, "csr");
	if (csr == NULL) {
		federation_err(err, errlen, "field 'csr' (the PEM certificate request) "
		    "is missing");
		return -EINVAL;
	}
	pk_obj = cJSON_GetObjectItemCaseSensitive(req, "pass_key");
	if (!cJSON_IsObject(pk_obj)) {
		federation_err(err, errlen, "field 'pass_key' must be an object "
		    "{\"kid\", \"x\"}");
		return -EINVAL;
	}
	cJSON_ArrayForEach(item, pk_obj) {
		if (strcmp(item->string, "kid") != 0 && strcmp(item->string, "x") != 0) {
			federation_err(err, errlen, "pass_key: unknown field '%s' (a "
			    "private key has no place here)", item->string);
			return -EINVAL;
		}
	}
	r = federation_space_check_pass_key(util_json_string(pk_obj, "kid"),
	    util_json_string(pk_obj, "x"), pk, err, errlen);
	if (r < 0)
		return r;
	r = federation_space_check_csr(csr, util_json_string(req, "id"),
	    util_json_string(req, "dns"), ret_csr, err, errlen);
	if (r < 0)
		return r;
	if (ret_pass_pk != NULL)
		memcpy(ret_pass_pk, pk, 32);
	return 0;
}

/* ---------------------------------------------------------------------
 * A space's record in federation.json
 */

/* A space's certificate files, oldest first (a new array of strings). */
cJSON *
federation_space_certs(const cJSON *space)
{
	const cJSON *cert = cJSON_GetObjectItemCaseSensitive(space, "cert");
	const cJSON *certs = cJSON_GetObjectItemCaseSensitive(space, "certs"), *c;
	cJSON *out = cJSON_CreateArray();

	if (out == NULL)
		return NULL;
	if (cJSON_IsString(cert))
		cJSON_AddItemToArray(out, cJSON_CreateString(cert->valuestring));
	cJSON_ArrayForEach(c, certs)
		if (cJSON_IsString(c))
			cJSON_AddItemToArray(out, cJSON_CreateString(c->valuestring));
	return out;
}

/* Sets a space's pins: "cert" for one file, "certs" for several. */
int
federation_space_set_certs(cJSON *space, const cJSON *certs)
{
	cJSON_DeleteItemFromObjectCaseSensitive(space, "cert");
	cJSON_DeleteItemFromObjectCaseSensitive(space, "certs");
	if (cJSON_GetArraySize(certs) == 1)
		return federation_json_set(space, "cert",
		    cJSON_CreateString(cJSON_GetArrayItem(certs, 0)->valuestring));
	return federation_json_set(space, "certs", cJSON_Duplicate(certs, 1));
}

/* SHA-256 of a key's DER SubjectPublicKeyInfo: the directory's pin. */
static int
federation_space_pkey_pin(EVP_PKEY *pkey, uint8_t out[32])
{
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len, r = -EINVAL;

	len = i2d_PUBKEY(pkey, &der);
	if (len <= 0)
		return -EINVAL;
	if (EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen == 32)
		r = 0;
	OPENSSL_free(der);
	return r;
}

/* Whether a pass key (by kid, or by value) is used by any space. */
static const char *
federation_space_pass_key_owner(const struct federation *f, const char *kid,
    const uint8_t pk[32])
{
	const cJSON *space, *k;

	cJSON_ArrayForEach(space, federation_spaces(f)) {
		cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(space, "pass_keys")) {
			const char *kk = util_json_string(k, "kid");
			uint8_t other[32];

			if (kk != NULL && kid != NULL && strcmp(kk, kid) == 0)
				return util_json_string(space, "id");
			if (pk != NULL && federation_entry_pk(k, other) == 0 &&
			    memcmp(other, pk, 32) == 0)
				return util_json_string(space, "id");
		}
	}
	return NULL;
}

/* The space (other than except) whose certificate has this key pin. */
static const char *
federation_space_pin_owner(const struct federation *f, const uint8_t pin[32],
    const char *except)
{
	const cJSON *space, *c;

	cJSON_ArrayForEach(space, federation_spaces(f)) {
		const char *id = util_json_string(space, "id");
		cJSON *certs;
		bool found = false;

		if (except != NULL && id != NULL && strcmp(id, except) == 0)
			continue;
		certs = federation_space_certs(space);
		cJSON_ArrayForEach(c, certs) {
			char *path = federation_path(f, c->valuestring);
			uint8_t other[32];

			if (tls_file_spki_sha256(path, other) == 0 && memcmp(other, pin, 32) == 0)
				found = true;
			free(path);
		}
		cJSON_Delete(certs);
		if (found)
			return id;
	}
	return NULL;
}

/* ---------------------------------------------------------------------
 * What admit and renew share: the node certificate, then the bundle
 */

/*
 * Keeps the CSR as requests/NAME.csr and issues spaces/NAME.crt from it for
 * space id (dns, ips).  Only on success *ret_cert_path is set (the caller
 * frees it, and removes the file should the command fail later).
 */
static int
federation_space_issue(const struct federation *f, X509_REQ *csr, const char *name,
    const char *id, const char *dns, const cJSON *ips, char *cert_rel,
    size_t cert_rel_len, char **ret_cert_path, char *serial_hex, size_t hexlen,
    char *err, size_t errlen)
{
	char rel[160], *csr_path = NULL, *cert_path = NULL;
	int r;

	snprintf(rel, sizeof(rel), "requests/%s.csr", name);
	r = federation_pki_write_csr(f, csr, rel, &csr_path, err, errlen);
	if (r < 0)
		goto out;
	snprintf(cert_rel, cert_rel_len, "spaces/%s.crt", name);
	cert_path = federation_path(f, cert_rel);
	r = federation_pki_issue(f, csr_path, cert_rel, id, dns, ips, err, errlen);
	if (r < 0)
		goto out;
	federation_pki_cert_serial(cert_path, serial_hex, hexlen);
	*ret_cert_path = cert_path;
	cert_path = NULL;
out:
	free(csr_path);
	free(cert_path);
	return r;
}

/*
 * Writes the bundle (to bundle_opt, or bundles/NAME.json in the folder),
 * then saves the signed directory.  A bundle whose directory was not saved
 * is removed again; *ret_saved says whether it was.  *ret_bundle is the
 * bundle's path, for the caller to show and free.
 */
static int
federation_space_publish(struct federation *f, const char *id, const char *kind,
    const char *cert_rel, const char *token, int64_t serial, const char *bundle_opt,
    const char *name, char **ret_bundle, bool *ret_saved, char *err, size_t errlen)
{
	char *bundle;
	int r;

	*ret_saved = false;
	if (bundle_opt != NULL) {
		bundle = strdup(bundle_opt);
	} else {
		char rel[160];

		snprintf(rel, sizeof(rel), "bundles/%s.json", name);
		bundle = federation_path(f, rel);
	}
	*ret_bundle = bundle;
	/* The bundle first: a space admitted without its bundle is stranded. */
	r = federation_write_bundle(f, id, kind, cert_rel, token, bundle, err, errlen);
	if (r < 0)
		return r;
	r = federation_save(f, token, serial, ret_saved, err, errlen);
	if (!*ret_saved)
		unlink(bundle);
	return r;
}

/* ---------------------------------------------------------------------
 * federation admit
 */

/* The directory entry of a newly admitted space, from its request. */
static cJSON *
federation_space_entry(const cJSON *req, const char *cert_rel, int64_t now)
{
	static const char *const optional[] = { "city", "address", "lat", "lon",
	    "hours", "capacity", "services", "contact" };
	const cJSON *pk = cJSON_GetObjectItemCaseSensitive(req, "pass_key");
	const cJSON *ips = cJSON_GetObjectItemCaseSensitive(req, "ips");
	cJSON *e = cJSON_CreateObject(), *keys, *k;
	char now_s[32];

	federation_now_text(now, now_s);
	if (e == NULL ||
	    cJSON_AddStringToObject(e, "id", util_json_string(req, "id")) == NULL ||
	    cJSON_AddStringToObject(e, "name",
	    util_json_string(req, "name")) == NULL ||
	    cJSON_AddStringToObject(e, "url", util_json_string(req, "url")) == NULL ||
	    cJSON_AddStringToObject(e, "cert", cert_rel) == NULL ||
	    (keys = cJSON_AddArrayToObject(e, "pass_keys")) == NULL ||
	    (k = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(keys, k) ||
	    cJSON_AddStringToObject(k, "kid", util_json_string(pk, "kid")) == NULL ||
	    cJSON_AddStringToObject(k, "x", util_json_string(pk, "x")) == NULL ||
	    cJSON_AddStringToObject(k, "added_at", now_s) == NULL)
		goto fail;
	/* Only what the space gave: an empty city is no city on the map. */
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(optional); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, optional[i]);

		if (v == NULL || cJSON_IsNull(v) ||
		    (cJSON_IsString(v) && v->valuestring[0] == '\0') ||
		    ((cJSON_IsArray(v) || cJSON_IsObject(v)) && v->child == NULL))
			continue;
		if (!cJSON_AddItemToObject(e, optional[i], cJSON_Duplicate(v, 1)))
			goto fail;
	}
	/* The coordinator's own records; directory_sign_description ignores them. */
	if (cJSON_AddStringToObject(e, "dns", util_json_string(req, "dns")) == NULL ||
	    !cJSON_AddItemToObject(e, "ips", cJSON_IsArray(ips) ?
	    cJSON_Duplicate(ips, 1) : cJSON_CreateArray()) ||
	    cJSON_AddStringToObject(e, "admitted_at", now_s) == NULL)
		goto fail;
	return e;
fail:
	cJSON_Delete(e);
	return NULL;
}

int
federation_cmd_admit(int argc, char **argv)
{
	const char *dir_opt = NULL, *bundle_opt = NULL;
	const struct cli_opt opts[] = {
		{ "federation", true, &dir_opt, NULL },
		{ "bundle", true, &bundle_opt, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct federation f = { .lock_fd = -1 };
	cJSON *req = NULL, *entry;
	X509_REQ *csr = NULL;
	const cJSON *space;
	const char *id, *url, *owner;
	char *cert_path = NULL, *bundle = NULL, *token = NULL;
	char err[1024], why[1024], cert_rel[160], serial_hex[128] = "?";
	uint8_t pass_pk[32], pin[32];
	int64_t serial = 0, now = util_now();
	int i = cli_parse_options(argc, argv, opts), r, ret = 1;
	bool issued = false, saved = false;

	if (argc - i != 1)
		cli_die_usage("federation admit takes one join request (REQUEST)");
	if (federation_open(&f, federation_dir_option(dir_opt), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (federation_read_json(argv[i], FEDERATION_SPACE_MAX_REQUEST,
	    "the join request", &req, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (federation_space_check_request(req, &csr, pass_pk, why, sizeof(why)) < 0) {
		cli_fail("%s refused: %s", argv[i], why);
		goto out;
	}
	id = util_json_string(req, "id");
	url = util_json_string(req, "url");
	if (federation_find_space(&f, id, NULL) != NULL) {
		cli_fail("%s refused: space '%s' is already in the federation (ids are "
		    "unique; a new space needs another id)", argv[i], id);
		goto out;
	}
	cJSON_ArrayForEach(space, federation_spaces(&f)) {
		const char *other = util_json_string(space, "url");

		if (other != NULL && strcmp(other, url) == 0) {
			cli_fail("%s refused: space '%s' already uses %s", argv[i],
			    util_json_string(space, "id"), url);
			goto out;
		}
	}
	{
		const cJSON *pk = cJSON_GetObjectItemCaseSensitive(req, "pass_key");

		owner = federation_space_pass_key_owner(&f,
		    util_json_string(pk, "kid"), pass_pk);
		if (owner != NULL) {
			cli_fail("%s refused: space '%s' already has a pass key with this kid "
			    "or this value (kids are unique in the federation)", argv[i],
			    owner);
			goto out;
		}
	}
	if (federation_space_pkey_pin(X509_REQ_get0_pubkey(csr), pin) < 0) {
		cli_fail("cannot hash the CSR's key");
		goto out;
	}
	owner = federation_space_pin_owner(&f, pin, NULL);
	if (owner != NULL) {
		cli_fail("%s refused: the CSR's key is space '%s''s node key", argv[i], owner);
		goto out;
	}
	if (cJSON_GetArraySize(federation_spaces(&f)) >= 10000) {
		cli_fail("the federation has too many spaces");
		goto out;
	}

	if (federation_space_issue(&f, csr, id, id, util_json_string(req, "dns"),
	    cJSON_GetObjectItemCaseSensitive(req, "ips"), cert_rel, sizeof(cert_rel),
	    &cert_path, serial_hex, sizeof(serial_hex), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	issued = true;

	entry = federation_space_entry(req, cert_rel, now);
	if (entry == NULL || !cJSON_AddItemToArray(federation_spaces(&f), entry)) {
		cJSON_Delete(entry);
		cli_fail("out of memory");
		goto out;
	}
	r = federation_sign(&f, now, &token, &serial, err, sizeof(err));
	if (r < 0) {
		cli_fail("%s", err);
		goto out;
	}
	r = federation_space_publish(&f, id, "join", cert_rel, token, serial, bundle_opt,
	    id, &bundle, &saved, err, sizeof(err));
	if (saved)
		issued = false;
	if (r < 0) {
		cli_fail("%s%s", err, saved ? " (the space is admitted: run 'federation "
		    "sign' to publish the directory again)" : "");
		goto out;
	}
	{
		char *copy = util_aprintf("requests/%s.json", id), *path;

		/* A record of what was asked; its loss is no failure. */
		path = copy != NULL ? federation_path(&f, copy) : NULL;
		if (path != NULL) {
			char *text = cJSON_Print(req);

			if (text != NULL)
				util_write_file(path, text, strlen(text), 0644);
			cJSON_free(text);
		}
		free(path);
		free(copy);
	}
	issued = false;

	if (cli_json) {
		cJSON *o = cJSON_CreateObject();
		char pin_s[64];

		b64url_encode(pin, 32, pin_s);
		cJSON_AddStringToObject(o, "space", id);
		cJSON_AddStringToObject(o, "certificate", cert_path);
		cJSON_AddStringToObject(o, "certificate_serial", serial_hex);
		cJSON_AddStringToObject(o, "spki_sha256", pin_s);
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cJSON_AddStringToObject(o, "bundle", bundle);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("admitted space %s (%s)\n"
		    "  certificate  %s (serial %s)\n"
		    "  directory    serial %lld, %d space%s\n"
		    "  bundle       %s\n"
		    "send the bundle to the space; it runs: passerelle join BUNDLE\n",
		    id, util_json_string(req, "name"), cert_path, serial_hex,
		    (long long)serial, cJSON_GetArraySize(federation_spaces(&f)),
		    cJSON_GetArraySize(federation_spaces(&f)) == 1 ? "" : "s", bundle);
	}
	ret = 0;
out:
	/* Issued but not admitted: the certificate must not lie around. */
	if (issued && cert_path != NULL)
		unlink(cert_path);
	free(token);
	free(bundle);
	free(cert_path);
	X509_REQ_free(csr);
	cJSON_Delete(req);
	federation_close(&f);
	return ret;
}

/* ---------------------------------------------------------------------
 * federation remove
 */

int
federation_cmd_remove(int argc, char **argv)
{
	static const char *const reasons[] = { "unspecified", "keyCompromise",
	    "affiliationChanged", "superseded", "cessationOfOperation" };
	const char *dir_opt = NULL, *reason = "cessationOfOperation";
	const struct cli_opt opts[] = {
		{ "federation", true, &dir_opt, NULL },
		{ "reason", true, &reason, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct federation f = { .lock_fd = -1 };
	cJSON *space, *certs = NULL, *c, *revoked = NULL;
	char err[1024], *token = NULL;
	int64_t serial = 0, now = util_now();
	int i = cli_parse_options(argc, argv, opts), index = 0, ret = 1;
	bool known = false;

	if (argc - i != 1)
		cli_die_usage("federation remove takes one space id (SPACE)");
	for (size_t k = 0; k < UTIL_ARRAY_SIZE(reasons); k++)
		known = known || strcmp(reason, reasons[k]) == 0;
	if (!known)
		cli_die_usage("--reason must be unspecified, keyCompromise, "
		    "affiliationChanged, superseded or cessationOfOperation");
	if (federation_open(&f, federation_dir_option(dir_opt), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	space = federation_find_space(&f, argv[i], &index);
	if (space == NULL) {
		cli_fail("no space '%s' in the federation", argv[i]);
		goto out;
	}
	certs = federation_space_certs(space);
	revoked = cJSON_CreateArray();
	if (certs == NULL || revoked == NULL) {
		cli_fail("out of memory");
		goto out;
	}
	/* Revoked first: a retry after a failure finds them revoked already. */
	cJSON_ArrayForEach(c, certs) {
		char serial_hex[128] = "?", *path = federation_path(&f, c->valuestring);
		bool done;

		federation_pki_cert_serial(path, serial_hex, sizeof(serial_hex));
		free(path);
		if (federation_pki_revoke(&f, c->valuestring, reason, &done, err,
		    sizeof(err)) < 0) {
			cli_fail("cannot revoke %s: %s", c->valuestring, err);
			goto out;
		}
		cJSON_AddItemToArray(revoked, cJSON_CreateString(serial_hex));
	}
	if (federation_pki_refresh_crl(&f, err, sizeof(err)) < 0) {
		cli_fail("cannot rewrite the CRL: %s", err);
		goto out;
	}
	cJSON_DeleteItemFromArray(federation_spaces(&f), index);
	if (federation_json_set(f.desc, "crl", cJSON_CreateString("ca/crl.pem")) < 0 ||
	    federation_sign(&f, now, &token, &serial, err, sizeof(err)) < 0 ||
	    federation_save(&f, token, serial, NULL, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", argv[i]);
		cJSON_AddItemToObject(o, "revoked", revoked);
		revoked = NULL;
		cJSON_AddStringToObject(o, "crl", "ca/crl.pem");
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("removed space %s: certificate%s revoked (", argv[i],
		    cJSON_GetArraySize(revoked) == 1 ? "" : "s");
		cJSON_ArrayForEach(c, revoked)
			printf("%sserial %s", c == revoked->child ? "" : ", ", c->valuestring);
		printf("), CRL %s/ca/crl.pem\n"
		    "directory serial %lld carries the CRL; nodes refuse the space once "
		    "they hold it\n", f.dir, (long long)serial);
	}
	ret = 0;
out:
	free(token);
	cJSON_Delete(certs);
	cJSON_Delete(revoked);
	federation_close(&f);
	return ret;
}

/* ---------------------------------------------------------------------
 * federation add-key
 */

int
federation_cmd_add_key(int argc, char **argv)
{
	const char *dir_opt = NULL, *after = "30d";
	const struct cli_opt opts[] = {
		{ "federation", true, &dir_opt, NULL },
		{ "retire-old-after", true, &after, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct federation f = { .lock_fd = -1 };
	cJSON *req = NULL, *space, *keys, *k, *item, *retired = NULL;
	const char *id, *kid, *x, *owner;
	char err[1024], *token = NULL, now_s[32], retire_s[32];
	uint8_t pk[32];
	int64_t serial = 0, v, delay, now = util_now();
	int i = cli_parse_options(argc, argv, opts), ret = 1;

	if (argc - i != 1)
		cli_die_usage("federation add-key takes one key request (KEY_REQUEST)");
	if (util_parse_duration(after, &delay) < 0 || delay > 3650LL * 86400)
		cli_die_usage("--retire-old-after must be a duration such as 30d, 12h or "
		    "0 (at once), not '%s'", after);
	if (federation_open(&f, federation_dir_option(dir_opt), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (federation_read_json(argv[i], FEDERATION_SPACE_MAX_KEY_REQUEST,
	    "the key request", &req, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	cJSON_ArrayForEach(item, req) {
		if (strcmp(item->string, "v") != 0 && strcmp(item->string, "space") != 0 &&
		    strcmp(item->string, "kid") != 0 && strcmp(item->string, "x") != 0) {
			cli_fail("%s refused: unknown field '%s'", argv[i], item->string);
			goto out;
		}
	}
	id = util_json_string(req, "space");
	kid = util_json_string(req, "kid");
	x = util_json_string(req, "x");
	if (federation_json_int(req, "v", &v) < 0 || v != 1) {
		cli_fail("%s refused: field 'v' must be 1", argv[i]);
		goto out;
	}
	if (id == NULL) {
		cli_fail("%s refused: field 'space' is missing", argv[i]);
		goto out;
	}
	if (federation_space_check_pass_key(kid, x, pk, err, sizeof(err)) < 0) {
		cli_fail("%s refused: %s", argv[i], err);
		goto out;
	}
	space = federation_find_space(&f, id, NULL);
	if (space == NULL) {
		cli_fail("%s refused: no space '%s' in the federation", argv[i], id);
		goto out;
	}
	owner = federation_space_pass_key_owner(&f, kid, pk);
	if (owner != NULL) {
		cli_fail("%s refused: space '%s' already has a pass key with kid %s or this "
		    "value", argv[i], owner, kid);
		goto out;
	}
	keys = cJSON_GetObjectItemCaseSensitive(space, "pass_keys");
	if (!cJSON_IsArray(keys)) {
		cli_fail("space '%s' in federation.json has no pass_keys list", id);
		goto out;
	}
	if (cJSON_GetArraySize(keys) >= FEDERATION_MAX_KEYS) {
		cli_fail("space '%s' has %d pass keys already, the most a directory "
		    "carries", id, FEDERATION_MAX_KEYS);
		goto out;
	}
	/*
	 * The keys in use so far retire later, not now: passes already signed
	 * with them stay valid until then.
	 */
	federation_now_text(now, now_s);
	federation_now_text(now + delay, retire_s);
	retired = cJSON_CreateArray();
	cJSON_ArrayForEach(k, keys) {
		if (cJSON_GetObjectItemCaseSensitive(k, "retires_at") != NULL)
			continue;
		if (federation_json_set(k, "retires_at",
		    cJSON_CreateString(retire_s)) < 0)
			goto nomem;
		cJSON_AddItemToArray(retired,
		    cJSON_CreateString(util_json_string(k, "kid")));
	}
	k = cJSON_CreateObject();
	if (k == NULL || !cJSON_AddItemToArray(keys, k) ||
	    cJSON_AddStringToObject(k, "kid", kid) == NULL ||
	    cJSON_AddStringToObject(k, "x", x) == NULL ||
	    cJSON_AddStringToObject(k, "added_at", now_s) == NULL)
		goto nomem;
	if (federation_sign(&f, now, &token, &serial, err, sizeof(err)) < 0 ||
	    federation_save(&f, token, serial, NULL, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", id);
		cJSON_AddStringToObject(o, "kid", kid);
		cJSON_AddItemToObject(o, "retiring", retired);
		retired = NULL;
		cJSON_AddStringToObject(o, "retires_at", retire_s);
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("added pass key %s to space %s; directory serial %lld\n", kid, id,
		    (long long)serial);
		cJSON_ArrayForEach(item, retired)
			printf("  key %s retires at %s (passes it signed stay valid until "
			    "then)\n", item->valuestring, retire_s);
		printf("the space can switch its [pass] key and kid to the new key once "
		    "its node holds directory %lld\n", (long long)serial);
	}
	ret = 0;
	goto out;
nomem:
	cli_fail("out of memory");
out:
	free(token);
	cJSON_Delete(retired);
	cJSON_Delete(req);
	federation_close(&f);
	return ret;
}

/* ---------------------------------------------------------------------
 * federation renew
 */

int
federation_cmd_renew(int argc, char **argv)
{
	const char *dir_opt = NULL, *overlap_s = "7d", *bundle_opt = NULL;
	const struct cli_opt opts[] = {
		{ "federation", true, &dir_opt, NULL },
		{ "overlap", true, &overlap_s, NULL },
		{ "bundle", true, &bundle_opt, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct federation f = { .lock_fd = -1 };
	cJSON *space, *certs = NULL, *retiring, *c;
	X509_REQ *csr = NULL;
	const char *id, *dns, *owner;
	char *text = NULL, *cert_path = NULL, *bundle = NULL, *token = NULL;
	char err[1024], name[128], cert_rel[160], until_s[32], serial_hex[128] = "?";
	uint8_t pin[32];
	int64_t serial = 0, overlap, next, now = util_now();
	int i = cli_parse_options(argc, argv, opts), r, ret = 1;
	bool issued = false, saved = false;

	if (argc - i != 2)
		cli_die_usage("federation renew takes a space id and its new CSR (SPACE CSR)");
	if (util_parse_duration(overlap_s, &overlap) < 0 || overlap > 365LL * 86400)
		cli_die_usage("--overlap must be a duration such as 7d (at most 365d), not "
		    "'%s'", overlap_s);
	if (federation_open(&f, federation_dir_option(dir_opt), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	id = argv[i];
	space = federation_find_space(&f, id, NULL);
	if (space == NULL) {
		cli_fail("no space '%s' in the federation", id);
		goto out;
	}
	dns = util_json_string(space, "dns");
	if (dns == NULL) {
		cli_fail("space '%s' has no recorded DNS name in federation.json (was it "
		    "admitted with 'federation admit'?)", id);
		goto out;
	}
	r = util_read_file(argv[i + 1], FEDERATION_SPACE_MAX_CSR, &text, NULL);
	if (r < 0) {
		cli_fail("cannot read %s: %s", argv[i + 1], r == -EFBIG ? "too large" :
		    strerror(-r));
		goto out;
	}
	if (federation_space_check_csr(text, id, dns, &csr, err, sizeof(err)) < 0) {
		cli_fail("%s refused: %s", argv[i + 1], err);
		goto out;
	}
	if (federation_space_pkey_pin(X509_REQ_get0_pubkey(csr), pin) < 0) {
		cli_fail("cannot hash the CSR's key");
		goto out;
	}
	owner = federation_space_pin_owner(&f, pin, id);
	if (owner != NULL) {
		cli_fail("%s refused: the CSR's key is space '%s''s node key", argv[i + 1],
		    owner);
		goto out;
	}
	certs = federation_space_certs(space);
	if (certs == NULL || cJSON_GetArraySize(certs) == 0) {
		cli_fail("space '%s' has no certificate in federation.json", id);
		goto out;
	}
	if (cJSON_GetArraySize(certs) >= DIRECTORY_MAX_PINS) {
		cli_fail("space '%s' has %d certificates in overlap already; wait until "
		    "an overlap ends and run 'federation sign'", id, cJSON_GetArraySize(certs));
		goto out;
	}

	federation_json_int(f.desc, "serial", &next);
	next++;
	snprintf(name, sizeof(name), "%s-renewed-%lld", id, (long long)next);
	if (federation_space_issue(&f, csr, name, id, dns,
	    cJSON_GetObjectItemCaseSensitive(space, "ips"), cert_rel, sizeof(cert_rel),
	    &cert_path, serial_hex, sizeof(serial_hex), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	issued = true;

	/* Old and new are both pinned until the overlap ends. */
	federation_now_text(now + overlap, until_s);
	retiring = cJSON_GetObjectItemCaseSensitive(space, "retiring_certs");
	if (!cJSON_IsArray(retiring)) {
		retiring = cJSON_CreateArray();
		if (federation_json_set(space, "retiring_certs", retiring) < 0)
			goto nomem;
	}
	cJSON_ArrayForEach(c, certs) {
		const cJSON *e;
		cJSON *ne;
		bool listed = false;

		cJSON_ArrayForEach(e, retiring)
			listed = listed || (util_json_string(e, "cert") != NULL &&
			    strcmp(util_json_string(e, "cert"), c->valuestring) == 0);
		if (listed)
			continue;
		ne = cJSON_CreateObject();
		if (ne == NULL || !cJSON_AddItemToArray(retiring, ne) ||
		    cJSON_AddStringToObject(ne, "cert", c->valuestring) == NULL ||
		    cJSON_AddStringToObject(ne, "until", until_s) == NULL ||
		    cJSON_AddNumberToObject(ne, "since", (double)next) == NULL)
			goto nomem;
	}
	if (!cJSON_AddItemToArray(certs, cJSON_CreateString(cert_rel)) ||
	    federation_space_set_certs(space, certs) < 0)
		goto nomem;
	if (federation_sign(&f, now, &token, &serial, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	/* The bundle is named after the directory that carries the renewal. */
	snprintf(name, sizeof(name), "%s-renewed-%lld", id, (long long)serial);
	r = federation_space_publish(&f, id, "renewal", cert_rel, token, serial,
	    bundle_opt, name, &bundle, &saved, err, sizeof(err));
	if (saved)
		issued = false;
	if (r < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", id);
		cJSON_AddStringToObject(o, "certificate", cert_path);
		cJSON_AddStringToObject(o, "certificate_serial", serial_hex);
		cJSON_AddStringToObject(o, "old_pins_until", until_s);
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cJSON_AddStringToObject(o, "bundle", bundle);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("renewed the certificate of space %s: %s (serial %s)\n"
		    "  directory %lld pins the old and the new certificate; the old one "
		    "leaves at the first 'federation sign' after %s\n"
		    "  bundle    %s\n"
		    "send the bundle to the space; it runs: passerelle join BUNDLE --key "
		    "NEW_KEY\n", id, cert_path, serial_hex, (long long)serial, until_s, bundle);
	}
	ret = 0;
	goto out;
nomem:
	cli_fail("out of memory");
out:
	if (issued && cert_path != NULL)
		unlink(cert_path);
	free(text);
	free(token);
	free(bundle);
	free(cert_path);
	X509_REQ_free(csr);
	cJSON_Delete(certs);
	federation_close(&f);
	return ret;
}
