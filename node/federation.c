/*
 * federation.c - the coordinator's folder and the commands that work on it
 * as a whole: create a federation, sign and publish each new directory, and
 * roll the directory-signing key.  Admitting, removing and rotating spaces
 * is federation_space.c; running the CA is federation_pki.c.
 *
 * The coordinator's state is one folder (docs/coordinating.md):
 *
 *   ca/                      the federation CA (certs/pki.sh ca), 0700
 *   signing/directory.key    the directory-signing key (0600), kept out of
 *   signing/directory.pub    the CA's folder so that each can be stored and
 *                            backed up on its own terms
 *   federation.json          the directory description that
 *                            directory_sign_description() reads, plus the
 *                            coordinator's own records it ignores
 *   spaces/ID.crt            the certificates issued
 *   requests/ID.csr, .json   what the spaces sent
 *   directory.jws            the latest signed directory
 *   published/directory-N.jws every directory ever signed
 *   bundles/ID.json          join and renewal bundles for the spaces
 *
 * Every command that changes the federation takes a lock on the folder,
 * reads federation.json, makes its change in memory, signs the next
 * directory, and only then writes federation.json (atomically) and the
 * directory: a command that fails leaves the description as it was.
 *
 * This file does not distribute directories to nodes, and does not decide
 * what a node trusts: that is node.c's and directory.c's side.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "b64url.h"
#include "cli.h"
#include "directory.h"
#include "federation.h"
#include "federation_state.h"
#include "jws.h"
#include "key.h"
#include "util.h"

#define FEDERATION_STATE "federation.json"
#define FEDERATION_MAX_STATE (8 * 1024 * 1024)
#define FEDERATION_MAX_PEM (4 * 1024 * 1024)	/* a certificate, a CRL */
#define FEDERATION_JSON_DEPTH 8
#define FEDERATION_MAX_VALID_DAYS 3650
#define FEDERATION_FIRST_KID "coordinator-1"

/* ---------------------------------------------------------------------
 * Small helpers
 */

void
federation_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}


/* An integral number member: 0, or -EINVAL. */
int
federation_json_int(const cJSON *obj, const char *name, int64_t *ret)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	double d;

	if (!cJSON_IsNumber(item))
		return -EINVAL;
	d = item->valuedouble;
	if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) ||
	    d != (double)(int64_t)d)
		return -EINVAL;
	*ret = (int64_t)d;
	return 0;
}

/* Replaces (or adds) a member; item is owned by obj afterwards. */
int
federation_json_set(cJSON *obj, const char *name, cJSON *item)
{
	if (item == NULL)
		return -ENOMEM;
	/* In place when it exists, so that federation.json keeps its order. */
	if (cJSON_GetObjectItemCaseSensitive(obj, name) != NULL)
		return cJSON_ReplaceItemInObjectCaseSensitive(obj, name, item) ? 0 :
		    (cJSON_Delete(item), -ENOMEM);
	if (!cJSON_AddItemToObject(obj, name, item)) {
		cJSON_Delete(item);
		return -ENOMEM;
	}
	return 0;
}

/* True when a member is absent or JSON null: an optional field not given. */
bool
federation_json_absent(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	return item == NULL || cJSON_IsNull(item);
}

void
federation_now_text(int64_t t, char out[32])
{
	util_format_time(t, out);
}

/* Reads a JSON object from a file of at most max bytes, strictly. */
int
federation_read_json(const char *path, size_t max, const char *what, cJSON **ret,
    char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	cJSON *loose;
	int r;

	r = util_read_file(path, max, &text, &len);
	if (r == -EFBIG) {
		federation_err(err, errlen, "%s %s is larger than %zu bytes", what, path,
		    max);
		return r;
	}
	if (r < 0) {
		federation_err(err, errlen, "cannot read %s %s: %s", what, path,
		    strerror(-r));
		return r;
	}
	/* Two passes: the first only to tell malformed JSON from the rest. */
	loose = cJSON_ParseWithLength(text, len);
	if (loose == NULL) {
		federation_err(err, errlen, "%s %s is not valid JSON", what, path);
		r = -EINVAL;
		goto out;
	}
	cJSON_Delete(loose);
	*ret = jws_json_parse_object(text, len, FEDERATION_JSON_DEPTH);
	if (*ret == NULL) {
		federation_err(err, errlen, "%s %s must be one JSON object, without "
		    "duplicate names, nested at most %d deep", what, path,
		    FEDERATION_JSON_DEPTH);
		r = -EINVAL;
		goto out;
	}
	r = 0;
out:
	free(text);
	return r;
}

/* The public key as SubjectPublicKeyInfo PEM, as key_write_public writes it. */
static char *
federation_public_pem(const uint8_t pk[32])
{
	EVP_PKEY *pkey;
	BIO *bio = NULL;
	char *data, *s = NULL;
	long len;

	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
	if (pkey == NULL)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_PUBKEY(bio, pkey) != 1)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	if (len > 0)
		s = strndup(data, (size_t)len);
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return s;
}

/* ---------------------------------------------------------------------
 * The coordinator's folder
 */

/* --federation DIR, or $PASSERELLE_FEDERATION. */
const char *
federation_dir_option(const char *opt)
{
	const char *env = getenv("PASSERELLE_FEDERATION");

	if (opt != NULL && opt[0] != '\0')
		return opt;
	if (env != NULL && env[0] != '\0')
		return env;
	cli_die_usage("which federation? give --federation DIR (or set "
	    "PASSERELLE_FEDERATION)");
}

char *
federation_path(const struct federation *f, const char *rel)
{
	char *p = util_path_join(f->dir, rel);

	if (p == NULL) {
		cli_fail("out of memory");
		exit(1);
	}
	return p;
}

/*
 * One command at a time per folder: two admissions at once would both take
 * the same serial.
 */
static int
federation_lock(struct federation *f, char *err, size_t errlen)
{
	char *path = federation_path(f, ".lock");
	int r = 0;

	f->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f->lock_fd < 0) {
		r = -errno;
		federation_err(err, errlen, "cannot open %s: %s", path, strerror(-r));
		goto out;
	}
	if (flock(f->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if (r == -EWOULDBLOCK)
			federation_err(err, errlen, "another federation command is working "
			    "on %s; try again when it is done", f->dir);
		else
			federation_err(err, errlen, "cannot lock %s: %s", path,
			    strerror(-r));
	}
out:
	free(path);
	return r;
}

void
federation_close(struct federation *f)
{
	if (f->lock_fd >= 0)
		close(f->lock_fd);
	cJSON_Delete(f->desc);
	free(f->dir);
	memset(f, 0, sizeof(*f));
	f->lock_fd = -1;
}

/* The recorded public key of a signing entry ("x"). */
int
federation_entry_pk(const cJSON *entry, uint8_t pk[32])
{
	const char *x = util_json_string(entry, "x");
	size_t n;

	if (x == NULL || b64url_decode(x, strlen(x), pk, 32, &n) < 0 || n != 32)
		return -EINVAL;
	return 0;
}

/* What every command relies on in federation.json. */
static int
federation_check_state(const cJSON *desc, char *err, size_t errlen)
{
	const cJSON *spaces = cJSON_GetObjectItemCaseSensitive(desc, "spaces"), *s;
	const cJSON *signing = cJSON_GetObjectItemCaseSensitive(desc, "signing");
	const cJSON *next = cJSON_GetObjectItemCaseSensitive(signing, "next");
	int64_t v;
	uint8_t pk[32];

	if (util_json_string(desc, "federation") == NULL ||
	    federation_json_int(desc, "serial", &v) < 0 || v < 0 ||
	    federation_json_int(desc, "valid_days", &v) < 0 || v < 1 ||
	    v > FEDERATION_MAX_VALID_DAYS || !cJSON_IsArray(spaces)) {
		federation_err(err, errlen, "needs federation, serial, valid_days and "
		    "spaces");
		return -EINVAL;
	}
	cJSON_ArrayForEach(s, spaces) {
		if (!cJSON_IsObject(s) || util_json_string(s, "id") == NULL) {
			federation_err(err, errlen, "every space needs an id");
			return -EINVAL;
		}
	}
	if (!cJSON_IsObject(signing) || util_json_string(signing, "kid") == NULL ||
	    util_json_string(signing, "key") == NULL ||
	    federation_entry_pk(signing, pk) < 0) {
		federation_err(err, errlen, "needs signing: {kid, key, x}");
		return -EINVAL;
	}
	if (next != NULL && (!cJSON_IsObject(next) ||
	    util_json_string(next, "kid") == NULL ||
	    util_json_string(next, "key") == NULL ||
	    federation_entry_pk(next, pk) < 0)) {
		federation_err(err, errlen, "signing.next needs {kid, key, x}");
		return -EINVAL;
	}
	return 0;
}

int
federation_open(struct federation *f, const char *dir, char *err, size_t errlen)
{
	char *path = NULL, why[256];
	struct stat st;
	int r;

	memset(f, 0, sizeof(*f));
	f->lock_fd = -1;
	f->dir = strdup(dir);
	if (f->dir == NULL)
		return -ENOMEM;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		federation_err(err, errlen, "%s is not a folder (the coordinator's folder "
		    "is made by 'passerelle federation init')", dir);
		return -ENOENT;
	}
	r = federation_lock(f, err, errlen);
	if (r < 0)
		return r;
	path = federation_path(f, FEDERATION_STATE);
	if (access(path, F_OK) < 0) {
		r = -errno;
		federation_err(err, errlen, "%s is not a federation folder (no %s): see "
		    "'passerelle federation init'", dir, FEDERATION_STATE);
		goto out;
	}
	r = federation_read_json(path, FEDERATION_MAX_STATE, "the description", &f->desc,
	    err, errlen);
	if (r < 0)
		goto out;
	r = federation_check_state(f->desc, why, sizeof(why));
	if (r < 0)
		federation_err(err, errlen, "%s is damaged: %s", path, why);
out:
	free(path);
	return r;
}

cJSON *
federation_spaces(const struct federation *f)
{
	return cJSON_GetObjectItemCaseSensitive(f->desc, "spaces");
}

cJSON *
federation_find_space(const struct federation *f, const char *id, int *ret_index)
{
	cJSON *s;
	int i = 0;

	cJSON_ArrayForEach(s, federation_spaces(f)) {
		const char *sid = util_json_string(s, "id");

		if (sid != NULL && strcmp(sid, id) == 0) {
			if (ret_index != NULL)
				*ret_index = i;
			return s;
		}
		i++;
	}
	return NULL;
}

/* ---------------------------------------------------------------------
 * Signing and publishing
 */

/*
 * Certificates whose overlap after a renewal has ended leave the
 * directory (and are revoked as superseded), at the first signature after
 * their deadline; never in the directory that announced the renewal
 * (serial is the one being made), so that both pins are published at
 * least once.
 */
static int
federation_retire_certs(struct federation *f, int64_t now, int64_t serial, cJSON *done,
    char *err, size_t errlen)
{
	cJSON *space;
	bool any = false;
	int r;

	cJSON_ArrayForEach(space, federation_spaces(f)) {
		cJSON *retiring = cJSON_GetObjectItemCaseSensitive(space, "retiring_certs");
		cJSON *certs;

		if (!cJSON_IsArray(retiring))
			continue;
		certs = federation_space_certs(space);
		if (certs == NULL)
			return -ENOMEM;
		for (int i = cJSON_GetArraySize(retiring) - 1; i >= 0; i--) {
			const cJSON *e = cJSON_GetArrayItem(retiring, i);
			const char *cert = util_json_string(e, "cert");
			const char *until = util_json_string(e, "until");
			int64_t t, since = 0;
			bool revoked;

			federation_json_int(e, "since", &since);
			if (cert == NULL || until == NULL || util_parse_time(until, &t) < 0 ||
			    t > now || since >= serial)
				continue;
			r = federation_pki_revoke(f, cert, "superseded", &revoked, err,
			    errlen);
			if (r < 0) {
				cJSON_Delete(certs);
				return r;
			}
			for (int k = cJSON_GetArraySize(certs) - 1; k >= 0; k--)
				if (strcmp(cJSON_GetArrayItem(certs, k)->valuestring, cert) == 0 &&
				    cJSON_GetArraySize(certs) > 1)
					cJSON_DeleteItemFromArray(certs, k);
			if (done != NULL)
				cJSON_AddItemToArray(done, cJSON_CreateString(cert));
			cJSON_DeleteItemFromArray(retiring, i);
			any = true;
		}
		r = federation_space_set_certs(space, certs);
		cJSON_Delete(certs);
		if (r < 0)
			return r;
		if (cJSON_GetArraySize(retiring) == 0)
			cJSON_DeleteItemFromObjectCaseSensitive(space, "retiring_certs");
	}
	if (!any)
		return 0;
	r = federation_pki_refresh_crl(f, err, errlen);
	if (r < 0)
		return r;
	return federation_json_set(f->desc, "crl", cJSON_CreateString("ca/crl.pem"));
}

/* Loads the key a signing entry names, and checks it is the one recorded. */
static int
federation_load_signing_key(const struct federation *f, const cJSON *entry,
    uint8_t sk[64], uint8_t pk[32], char *err, size_t errlen)
{
	char *path = federation_path(f, util_json_string(entry, "key"));
	uint8_t want[32];
	int r;

	r = key_load_private(path, sk, pk);
	if (r < 0) {
		federation_err(err, errlen, "cannot read the directory-signing key %s: %s",
		    path, strerror(-r));
		goto out;
	}
	if (federation_entry_pk(entry, want) < 0 || sodium_memcmp(want, pk, 32) != 0) {
		sodium_memzero(sk, 64);
		federation_err(err, errlen, "the key in %s is not the key %s that "
		    "federation.json records: refusing to sign with it", path,
		    util_json_string(entry, "kid"));
		r = -EKEYREJECTED;
	}
out:
	free(path);
	return r;
}

/*
 * Makes the next directory: serial + 1, certificates past their overlap
 * dropped, signed with the key federation.json names.  Nothing is written:
 * federation_save() does that once the command's other work has succeeded.
 */
int
federation_sign(struct federation *f, int64_t now, char **ret_token, int64_t *ret_serial,
    char *err, size_t errlen)
{
	const cJSON *signing = cJSON_GetObjectItemCaseSensitive(f->desc, "signing");
	uint8_t sk[64], pk[32];
	char *text = NULL, why[1024];
	int64_t serial = 0;
	int r;

	federation_json_int(f->desc, "serial", &serial);
	serial++;
	r = federation_json_set(f->desc, "serial", cJSON_CreateNumber((double)serial));
	if (r < 0)
		return r;
	r = federation_retire_certs(f, now, serial, NULL, err, errlen);
	if (r < 0)
		return r;
	r = federation_load_signing_key(f, signing, sk, pk, err, errlen);
	if (r < 0)
		return r;
	text = cJSON_PrintUnformatted(f->desc);
	if (text == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = directory_sign_description(text, f->dir, sk,
	    util_json_string(signing, "kid"), now, ret_token, why, sizeof(why));
	if (r < 0) {
		federation_err(err, errlen, "cannot sign directory %lld: %s",
		    (long long)serial, why);
		goto out;
	}
	*ret_serial = serial;
out:
	sodium_memzero(sk, sizeof(sk));
	cJSON_free(text);
	return r;
}

/*
 * Writes federation.json, then the directory (history first, then the
 * current one).  The description goes first: if the directory cannot be
 * written, the next command takes the next serial, and no two different
 * directories ever carry the same one.
 */
int
federation_save(struct federation *f, const char *token, int64_t serial,
    bool *ret_saved, char *err, size_t errlen)
{
	char *text = NULL, *path = NULL, *jws = NULL, rel[64];
	int r;

	if (ret_saved != NULL)
		*ret_saved = false;

	text = cJSON_Print(f->desc);
	jws = util_aprintf("%s\n", token);
	if (text == NULL || jws == NULL) {
		r = -ENOMEM;
		goto out;
	}
	{
		char *t = util_aprintf("%s\n", text);

		cJSON_free(text);
		text = t;
		if (text == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	path = federation_path(f, FEDERATION_STATE);
	r = util_write_file(path, text, strlen(text), 0644);
	if (r < 0) {
		federation_err(err, errlen, "cannot write %s: %s", path, strerror(-r));
		goto out;
	}
	if (ret_saved != NULL)
		*ret_saved = true;
	free(path);
	path = federation_path(f, "published");
	r = util_mkdir_p(path, 0755);
	free(path);
	snprintf(rel, sizeof(rel), "published/directory-%lld.jws", (long long)serial);
	path = federation_path(f, rel);
	if (r == 0)
		r = util_write_file(path, jws, strlen(jws), 0644);
	if (r < 0) {
		federation_err(err, errlen, "cannot write %s: %s", path, strerror(-r));
		goto out;
	}
	free(path);
	path = federation_path(f, "directory.jws");
	r = util_write_file(path, jws, strlen(jws), 0644);
	if (r < 0)
		federation_err(err, errlen, "cannot write %s: %s", path, strerror(-r));
out:
	free(path);
	free(jws);
	free(text);
	return r;
}

/*
 * The directories that announced each directory-signing key since the
 * first, oldest first: with them a node that trusts an older key can follow
 * the roll-overs to the key that signs today (`passerelle join` does).
 */
static int
federation_bundle_announcements(const struct federation *f, cJSON *bundle, char *err,
    size_t errlen)
{
	const cJSON *signing = cJSON_GetObjectItemCaseSensitive(f->desc, "signing");
	const cJSON *retired = cJSON_GetObjectItemCaseSensitive(signing, "retired");
	const cJSON *keys[FEDERATION_MAX_KEYS + 1], *e;
	cJSON *list = NULL;
	size_t n = 0;
	int r = 0;

	/* The retired keys in the order they served, then the current one. */
	cJSON_ArrayForEach(e, retired)
		if (n < FEDERATION_MAX_KEYS)
			keys[n++] = e;
	keys[n++] = signing;
	for (size_t i = 0; i < n; i++) {
		char rel[64], *path, *token = NULL;
		int64_t serial;

		e = keys[i];

		if (federation_json_int(e, "announced_in", &serial) < 0)
			continue;
		snprintf(rel, sizeof(rel), "published/directory-%lld.jws", (long long)serial);
		path = federation_path(f, rel);
		r = util_read_file(path, DIRECTORY_MAX_TOKEN, &token, NULL);
		if (r < 0) {
			federation_err(err, errlen, "cannot read %s, which announced key %s: "
			    "%s", path, util_json_string(e, "kid"), strerror(-r));
			free(path);
			return r;
		}
		free(path);
		token[strcspn(token, "\r\n")] = '\0';
		if (list == NULL)
			list = cJSON_AddArrayToObject(bundle, "coordinator_announcements");
		if (list == NULL || !cJSON_AddItemToArray(list, cJSON_CreateString(token)))
			r = -ENOMEM;
		free(token);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * A join (or renewal) bundle: what a space needs to take its place, for
 * `passerelle join`.  Nothing in it is secret.
 */
int
federation_write_bundle(const struct federation *f, const char *id, const char *kind,
    const char *cert_rel, const char *token, const char *out, char *err, size_t errlen)
{
	const cJSON *signing = cJSON_GetObjectItemCaseSensitive(f->desc, "signing");
	char *cert_path = federation_path(f, cert_rel), *ca_path = federation_path(f,
	    "ca/ca.crt"), *crl_path = federation_path(f, "ca/crl.pem");
	char *cert = NULL, *ca = NULL, *crl = NULL, *pub = NULL, *text = NULL;
	char *dir = NULL, *slash;
	cJSON *b = NULL;
	uint8_t pk[32];
	int r;

	if ((r = util_read_file(cert_path, FEDERATION_MAX_PEM, &cert, NULL)) < 0 ||
	    (r = util_read_file(ca_path, FEDERATION_MAX_PEM, &ca, NULL)) < 0 ||
	    (r = util_read_file(crl_path, FEDERATION_MAX_PEM, &crl, NULL)) < 0) {
		federation_err(err, errlen, "cannot read the files of the bundle (%s, %s, "
		    "%s): %s", cert_path, ca_path, crl_path, strerror(-r));
		goto out;
	}
	if (federation_entry_pk(signing, pk) < 0 || (pub = federation_public_pem(pk)) ==
	    NULL) {
		r = -ENOMEM;
		goto out;
	}
	b = cJSON_CreateObject();
	if (b == NULL || cJSON_AddNumberToObject(b, "v", 1) == NULL ||
	    cJSON_AddStringToObject(b, "kind", kind) == NULL ||
	    cJSON_AddStringToObject(b, "space", id) == NULL ||
	    cJSON_AddStringToObject(b, "federation",
	    util_json_string(f->desc, "federation")) == NULL ||
	    cJSON_AddStringToObject(b, "certificate", cert) == NULL ||
	    cJSON_AddStringToObject(b, "ca", ca) == NULL ||
	    cJSON_AddStringToObject(b, "directory", token) == NULL ||
	    cJSON_AddStringToObject(b, "coordinator_key", pub) == NULL ||
	    cJSON_AddStringToObject(b, "crl", crl) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = federation_bundle_announcements(f, b, err, errlen);
	if (r < 0)
		goto out;
	if ((text = cJSON_Print(b)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	dir = strdup(out);
	if (dir == NULL) {
		r = -ENOMEM;
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		r = util_mkdir_p(dir, 0755);
		if (r < 0) {
			federation_err(err, errlen, "cannot create %s: %s", dir, strerror(-r));
			goto out;
		}
	}
	r = util_write_file(out, text, strlen(text), 0644);
	if (r < 0)
		federation_err(err, errlen, "cannot write the bundle %s: %s", out,
		    strerror(-r));
out:
	cJSON_Delete(b);
	cJSON_free(text);
	free(dir);
	free(pub);
	free(cert);
	free(ca);
	free(crl);
	free(cert_path);
	free(ca_path);
	free(crl_path);
	return r;
}

/* ---------------------------------------------------------------------
 * federation init
 */

static bool
federation_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 64 || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' &&
		    name[i] != '.')
			return false;
	return true;
}

int
federation_cmd_init(int argc, char **argv)
{
	const char *name = NULL, *ca_name = NULL, *valid = "30";
	const struct cli_opt opts[] = {
		{ "name", true, &name, NULL },
		{ "ca-name", true, &ca_name, NULL },
		{ "valid-days", true, &valid, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct federation f = { .lock_fd = -1 };
	char *state = NULL, *ca = NULL, *signing = NULL, *key = NULL, *pub = NULL;
	char *token = NULL, err[1024], default_ca[128], now_s[32], x[64];
	uint8_t pk[32];
	int64_t serial = 0, now = util_now();
	int i = cli_parse_options(argc, argv, opts), days, r, ret = 1;

	if (argc - i != 1)
		cli_die_usage("federation init takes the coordinator's folder (DIR)");
	if (name == NULL)
		cli_die_usage("federation init needs --name, the federation's name "
		    "(e.g. passerelle-rhone-alpes)");
	if (!federation_name_ok(name))
		cli_die_usage("--name must be letters, digits, '.', '_' or '-' (at most 64), "
		    "not '%s'", name);
	days = cli_parse_int(valid, "--valid-days", 1, FEDERATION_MAX_VALID_DAYS);
	if (ca_name == NULL) {
		snprintf(default_ca, sizeof(default_ca), "%s CA", name);
		ca_name = default_ca;
	}
	f.dir = strdup(argv[i]);
	if (f.dir == NULL)
		return cli_fail("out of memory");
	state = federation_path(&f, FEDERATION_STATE);
	ca = federation_path(&f, "ca");
	signing = federation_path(&f, "signing");
	key = federation_path(&f, "signing/directory.key");
	pub = federation_path(&f, "signing/directory.pub");
	if (access(state, F_OK) == 0) {
		cli_fail("%s exists: %s is a federation already", state, f.dir);
		goto out;
	}
	if (access(ca, F_OK) == 0 || access(key, F_OK) == 0) {
		cli_fail("%s holds a CA or a signing key from an earlier attempt; move them "
		    "away (they hold private keys) or choose another folder", f.dir);
		goto out;
	}
	r = util_mkdir_p(f.dir, 0755);
	if (r < 0) {
		cli_fail("cannot create %s: %s", f.dir, strerror(-r));
		goto out;
	}
	r = federation_lock(&f, err, sizeof(err));
	if (r < 0) {
		cli_fail("%s", err);
		goto out;
	}

	{
		const char *args[] = { "ca", ca, ca_name, NULL };

		r = federation_pki_run(args, err, sizeof(err));
		if (r < 0) {
			cli_fail("cannot create the CA: %s", err);
			goto out;
		}
	}
	/* The signing key lives apart from the CA: neither folder holds both. */
	if (mkdir(signing, 0700) < 0 && errno != EEXIST) {
		cli_fail("cannot create %s: %s", signing, strerror(errno));
		goto out;
	}
	r = key_generate_pair(key, pub, pk);
	if (r < 0) {
		cli_fail("cannot make the directory-signing key %s: %s", key, strerror(-r));
		goto out;
	}
	b64url_encode(pk, 32, x);
	federation_now_text(now, now_s);

	f.desc = cJSON_CreateObject();
	{
		cJSON *s = cJSON_CreateObject();

		if (f.desc == NULL || s == NULL ||
		    cJSON_AddStringToObject(f.desc, "federation", name) == NULL ||
		    cJSON_AddNumberToObject(f.desc, "serial", 0) == NULL ||
		    cJSON_AddNumberToObject(f.desc, "valid_days", days) == NULL ||
		    cJSON_AddArrayToObject(f.desc, "spaces") == NULL ||
		    !cJSON_AddItemToObject(f.desc, "signing", s) ||
		    cJSON_AddStringToObject(s, "kid", FEDERATION_FIRST_KID) == NULL ||
		    cJSON_AddStringToObject(s, "key", "signing/directory.key") == NULL ||
		    cJSON_AddStringToObject(s, "public", "signing/directory.pub") == NULL ||
		    cJSON_AddStringToObject(s, "x", x) == NULL ||
		    cJSON_AddStringToObject(f.desc, "created_at", now_s) == NULL) {
			cli_fail("out of memory");
			goto out;
		}
	}
	r = federation_sign(&f, now, &token, &serial, err, sizeof(err));
	if (r == 0)
		r = federation_save(&f, token, serial, NULL, err, sizeof(err));
	if (r < 0) {
		cli_fail("%s (remove %s/ca and %s/signing before trying again)", err, f.dir,
		    f.dir);
		goto out;
	}
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "federation", name);
		cJSON_AddStringToObject(o, "folder", f.dir);
		cJSON_AddStringToObject(o, "ca", "ca/ca.crt");
		cJSON_AddStringToObject(o, "signing_key", "signing/directory.key");
		cJSON_AddStringToObject(o, "public_key", "signing/directory.pub");
		cJSON_AddStringToObject(o, "kid", FEDERATION_FIRST_KID);
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cJSON_AddStringToObject(o, "directory", "directory.jws");
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("created federation %s in %s\n"
		    "  CA                     %s/ca.crt (key ca/ca.key: keep it offline "
		    "when you can)\n"
		    "  directory-signing key  %s (public: %s, kid %s)\n"
		    "  directory              %s/directory.jws, serial %lld, no spaces yet\n"
		    "next: a space runs 'passerelle init' and sends you its "
		    "join-request.json; admit it with\n"
		    "  passerelle federation admit join-request.json --federation %s\n",
		    name, f.dir, ca, key, pub, FEDERATION_FIRST_KID, f.dir, (long long)serial,
		    f.dir);
	}
	ret = 0;
out:
	free(token);
	free(state);
	free(ca);
	free(signing);
	free(key);
	free(pub);
	federation_close(&f);
	return ret;
}

/* ---------------------------------------------------------------------
 * federation roll-key
 */

void
federation_next_kid(const char *kid, char *out, size_t outlen)
{
	size_t len = strlen(kid), d = len;

	while (d > 0 && isdigit((unsigned char)kid[d - 1]))
		d--;
	if (d < len && d > 0 && kid[d - 1] == '-' && len - d < 9)
		snprintf(out, outlen, "%.*s%ld", (int)d, kid, strtol(kid + d, NULL, 10) + 1);
	else
		snprintf(out, outlen, "%s-2", kid);
}

/* The list of keys the directory announces for the directories after it. */
static int
federation_announce(struct federation *f, const cJSON *const *entries, size_t n)
{
	cJSON *keys = cJSON_CreateArray();

	if (keys == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		cJSON *k = cJSON_CreateObject();

		if (k == NULL || !cJSON_AddItemToArray(keys, k) ||
		    cJSON_AddStringToObject(k, "kid",
		    util_json_string(entries[i], "kid")) == NULL ||
		    cJSON_AddStringToObject(k, "x",
		    util_json_string(entries[i], "x")) == NULL) {
			cJSON_Delete(keys);
			return -ENOMEM;
		}
	}
	return federation_json_set(f->desc, "coordinator_keys", keys);
}

/* Step one: a new key, announced in a directory the old key signs. */
static int
federation_roll_start(struct federation *f, const char *kid_opt, char *err,
    size_t errlen)
{
	cJSON *signing = cJSON_GetObjectItemCaseSensitive(f->desc, "signing"), *next;
	const cJSON *both[2];
	char *key = federation_path(f, "signing/directory-next.key");
	char *pub = federation_path(f, "signing/directory-next.pub");
	char kid[80], x[64], *token = NULL;
	uint8_t pk[32];
	int64_t serial = 0, now = util_now();
	bool made = false, saved = false;
	int r;

	if (kid_opt != NULL)
		util_strlcpy(kid, kid_opt, sizeof(kid));
	else
		federation_next_kid(util_json_string(signing, "kid"), kid,
		    sizeof(kid));
	if (!federation_space_kid_ok(kid) ||
	    strcmp(kid, util_json_string(signing, "kid")) == 0) {
		federation_err(err, errlen, "the new key's kid '%s' must match "
		    "[A-Za-z0-9._-]{1,64} and differ from the current one", kid);
		r = -EINVAL;
		goto out;
	}
	if (access(key, F_OK) == 0) {
		federation_err(err, errlen, "%s exists but federation.json records no "
		    "roll-over (left by a failed roll-key?): move it away first", key);
		r = -EEXIST;
		goto out;
	}
	r = key_generate_pair(key, pub, pk);
	if (r < 0) {
		federation_err(err, errlen, "cannot make %s: %s", key, strerror(-r));
		goto out;
	}
	made = true;
	b64url_encode(pk, 32, x);
	next = cJSON_CreateObject();
	if (next == NULL || federation_json_set(signing, "next", next) < 0 ||
	    cJSON_AddStringToObject(next, "kid", kid) == NULL ||
	    cJSON_AddStringToObject(next, "key", "signing/directory-next.key") == NULL ||
	    cJSON_AddStringToObject(next, "public", "signing/directory-next.pub") == NULL ||
	    cJSON_AddStringToObject(next, "x", x) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* The directory about to be signed is the new key's announcement. */
	federation_json_int(f->desc, "serial", &serial);
	if (cJSON_AddNumberToObject(next, "announced_in", (double)(serial + 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/*
	 * Both keys are announced: a node that trusts only the keys of the last
	 * directory it verified still knows the current one.
	 */
	both[0] = signing;
	both[1] = next;
	r = federation_announce(f, both, 2);
	if (r < 0)
		goto out;
	r = federation_sign(f, now, &token, &serial, err, errlen);
	if (r < 0)
		goto out;
	/* Once federation.json names the new key, the key must stay. */
	r = federation_save(f, token, serial, &saved, err, errlen);
	if (saved)
		made = false;
	if (r < 0)
		goto out;
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "step", "announced");
		cJSON_AddStringToObject(o, "signed_by",
		    util_json_string(signing, "kid"));
		cJSON_AddStringToObject(o, "next_kid", kid);
		cJSON_AddStringToObject(o, "next_public_key", pub);
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("new directory-signing key %s (public: %s)\n"
		    "directory serial %lld, signed with %s, announces it\n"
		    "once every node holds this directory, finish with:\n"
		    "  passerelle federation roll-key --finish --federation %s\n", kid, pub,
		    (long long)serial, util_json_string(signing, "kid"), f->dir);
	}
out:
	if (made) {
		unlink(key);
		unlink(pub);
	}
	free(token);
	free(key);
	free(pub);
	return r;
}

/* Moves a file into the archive, refusing to overwrite anything. */
static int
federation_archive(const struct federation *f, const char *from_rel, const char *to_rel)
{
	char *from = federation_path(f, from_rel), *to = federation_path(f, to_rel);
	int r = 0;

	if (access(to, F_OK) == 0)
		r = -EEXIST;
	else if (rename(from, to) < 0)
		r = -errno;
	free(from);
	free(to);
	return r;
}

/* Step two: the new key signs; the old one goes to signing/archive/. */
static int
federation_roll_finish(struct federation *f, char *err, size_t errlen)
{
	cJSON *signing = cJSON_GetObjectItemCaseSensitive(f->desc, "signing");
	cJSON *next = cJSON_GetObjectItemCaseSensitive(signing, "next");
	cJSON *old = NULL, *entry = NULL, *retired;
	const cJSON *one[1];
	char *token = NULL, now_s[32], old_kid[80], old_key[160], old_pub[160];
	int64_t serial = 0, now = util_now();
	int r;

	if (next == NULL) {
		federation_err(err, errlen, "no roll-over to finish: run 'federation "
		    "roll-key' first");
		return -ENOENT;
	}
	federation_now_text(now, now_s);
	util_strlcpy(old_kid, util_json_string(signing, "kid"), sizeof(old_kid));
	old = cJSON_Duplicate(signing, 1);
	entry = cJSON_Duplicate(next, 1);
	if (old == NULL || entry == NULL) {
		r = -ENOMEM;
		goto out;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(old, "next");
	cJSON_DeleteItemFromObjectCaseSensitive(old, "retired");
	if (federation_json_set(old, "retired_at", cJSON_CreateString(now_s)) < 0) {
		r = -ENOMEM;
		goto out;
	}
	/* The history of retired keys moves to the new signing entry. */
	retired = cJSON_DetachItemFromObjectCaseSensitive(signing, "retired");
	if (!cJSON_IsArray(retired)) {
		cJSON_Delete(retired);
		retired = cJSON_CreateArray();
	}
	if (retired == NULL || !cJSON_AddItemToObject(entry, "retired", retired)) {
		cJSON_Delete(retired);
		r = -ENOMEM;
		goto out;
	}
	cJSON_AddItemToArray(retired, old);
	old = NULL;
	r = federation_json_set(f->desc, "signing", entry);
	signing = entry;
	entry = NULL;
	if (r < 0)
		goto out;
	one[0] = signing;
	r = federation_announce(f, one, 1);
	if (r < 0)
		goto out;
	r = federation_sign(f, now, &token, &serial, err, errlen);
	if (r == 0)
		r = federation_save(f, token, serial, NULL, err, errlen);
	if (r < 0)
		goto out;

	/*
	 * The directory is out.  Now the files take their usual names and
	 * federation.json follows; a failure here leaves federation.json
	 * naming the files where they are, and is reported.
	 */
	snprintf(old_key, sizeof(old_key), "signing/archive/%s.key", old_kid);
	snprintf(old_pub, sizeof(old_pub), "signing/archive/%s.pub", old_kid);
	{
		char *archive = federation_path(f, "signing/archive");

		r = mkdir(archive, 0700) < 0 && errno != EEXIST ? -errno : 0;
		free(archive);
	}
	if (r == 0)
		r = federation_archive(f, "signing/directory.key", old_key);
	if (r == 0) {
		cJSON *last = cJSON_GetArrayItem(retired, cJSON_GetArraySize(retired) - 1);

		federation_json_set(last, "key", cJSON_CreateString(old_key));
		if (federation_archive(f, "signing/directory.pub", old_pub) == 0)
			federation_json_set(last, "public", cJSON_CreateString(old_pub));
		r = federation_archive(f, util_json_string(signing, "key"),
		    "signing/directory.key");
	}
	if (r == 0) {
		federation_json_set(signing, "key",
		    cJSON_CreateString("signing/directory.key"));
		if (federation_archive(f, util_json_string(signing, "public"),
		    "signing/directory.pub") == 0)
			federation_json_set(signing, "public",
			    cJSON_CreateString("signing/directory.pub"));
	}
	{
		char why[512];
		int w = federation_save(f, token, serial, NULL, why, sizeof(why));

		if (r < 0) {
			federation_err(err, errlen, "directory %lld is signed with the new key, "
			    "but the key files could not take their usual names (%s); "
			    "federation.json names them where they are", (long long)serial,
			    strerror(-r));
			goto out;
		}
		if (w < 0) {
			federation_err(err, errlen, "%s", why);
			r = w;
			goto out;
		}
	}
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "step", "finished");
		cJSON_AddStringToObject(o, "signed_by",
		    util_json_string(signing, "kid"));
		cJSON_AddStringToObject(o, "retired_kid", old_kid);
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("directory serial %lld is signed with %s; %s is archived in "
		    "%s/signing/archive/\n"
		    "nodes that verified the announcement trust %s already; spaces may "
		    "also replace their coordinator.pub with %s/signing/directory.pub\n",
		    (long long)serial, util_json_string(signing, "kid"), old_kid,
		    f->dir, util_json_string(signing, "kid"), f->dir);
	}
out:
	cJSON_Delete(old);
	cJSON_Delete(entry);
	free(token);
	return r;
}

int
federation_cmd_roll_key(int argc, char **argv)
{
	const char *dir_opt = NULL, *kid = NULL;
	bool finish = false;
	const struct cli_opt opts[] = {
		{ "federation", true, &dir_opt, NULL },
		{ "finish", false, NULL, &finish },
		{ "kid", true, &kid, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct federation f = { .lock_fd = -1 };
	char err[1024];
	int i = cli_parse_options(argc, argv, opts), r;

	if (argc - i != 0)
		cli_die_usage("federation roll-key takes no arguments");
	if (finish && kid != NULL)
		cli_die_usage("--kid names the new key when the roll-over starts, not at "
		    "--finish");
	if (federation_open(&f, federation_dir_option(dir_opt), err, sizeof(err)) < 0) {
		federation_close(&f);
		return cli_fail("%s", err);
	}
	if (!finish && cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    f.desc, "signing"), "next") != NULL) {
		federation_close(&f);
		return cli_fail("a roll-over is in progress already: finish it with "
		    "'federation roll-key --finish'");
	}
	r = finish ? federation_roll_finish(&f, err, sizeof(err)) :
	    federation_roll_start(&f, kid, err, sizeof(err));
	federation_close(&f);
	return r < 0 ? cli_fail("%s", err) : 0;
}

/* ---------------------------------------------------------------------
 * federation sign
 */

int
federation_cmd_sign(int argc, char **argv)
{
	const char *dir_opt = NULL, *valid = NULL;
	const struct cli_opt opts[] = {
		{ "federation", true, &dir_opt, NULL },
		{ "valid-days", true, &valid, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct federation f = { .lock_fd = -1 };
	cJSON *dropped = NULL, *c;
	char err[1024], *token = NULL, exp[32];
	int64_t serial = 0, days = 0, now = util_now();
	int i = cli_parse_options(argc, argv, opts), ret = 1;

	if (argc - i != 0)
		cli_die_usage("federation sign takes no arguments");
	if (valid != NULL)
		days = cli_parse_int(valid, "--valid-days", 1, FEDERATION_MAX_VALID_DAYS);
	if (federation_open(&f, federation_dir_option(dir_opt), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (days > 0 && federation_json_set(f.desc, "valid_days",
	    cJSON_CreateNumber((double)days)) < 0) {
		cli_fail("out of memory");
		goto out;
	}
	federation_json_int(f.desc, "valid_days", &days);
	dropped = cJSON_CreateArray();
	/*
	 * Overlaps that have ended are applied first, so that the list of what
	 * was dropped can be shown; federation_sign() would find none left.
	 */
	federation_json_int(f.desc, "serial", &serial);
	if (dropped == NULL || federation_retire_certs(&f, now, serial + 1, dropped, err,
	    sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	/* The CRL a directory carries must not expire before the directory. */
	if (util_json_string(f.desc, "crl") != NULL &&
	    federation_pki_refresh_crl(&f, err, sizeof(err)) < 0) {
		cli_fail("cannot rewrite the CRL: %s", err);
		goto out;
	}
	if (federation_sign(&f, now, &token, &serial, err, sizeof(err)) < 0 ||
	    federation_save(&f, token, serial, NULL, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	util_format_time(now + days * 86400, exp);
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cJSON_AddStringToObject(o, "expires_at", exp);
		cJSON_AddItemToObject(o, "dropped_certificates", dropped);
		dropped = NULL;
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("signed directory serial %lld (%d space%s), valid until %s: "
		    "%s/directory.jws\n", (long long)serial,
		    cJSON_GetArraySize(federation_spaces(&f)),
		    cJSON_GetArraySize(federation_spaces(&f)) == 1 ? "" : "s", exp, f.dir);
		cJSON_ArrayForEach(c, dropped)
			printf("  overlap ended: %s is no longer pinned, and is revoked\n",
			    c->valuestring);
	}
	ret = 0;
out:
	free(token);
	cJSON_Delete(dropped);
	federation_close(&f);
	return ret;
}
