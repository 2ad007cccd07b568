/*
 * federation.c - the coordinator's commands: create a federation, admit and
 * remove spaces, rotate their pass keys and certificates, roll the
 * directory-signing key, and publish each new directory.
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
 * directory: a command that fails leaves the description as it was.  The
 * CA's own files are pki.sh's business; this file runs it and never writes
 * them itself.
 *
 * This file does not distribute directories to nodes, and does not decide
 * what a node trusts: that is node.c's and directory.c's side.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
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
#include "jws.h"
#include "key.h"
#include "tls.h"
#include "util.h"

#ifndef PASSERELLE_SOURCE_DIR
#define PASSERELLE_SOURCE_DIR "."
#endif
#ifndef PASSERELLE_DATADIR
#define PASSERELLE_DATADIR "/usr/local/share"
#endif

#define FEDERATION_STATE "federation.json"
#define FEDERATION_MAX_STATE (8 * 1024 * 1024)
#define FEDERATION_MAX_REQUEST (64 * 1024)
#define FEDERATION_MAX_KEY_REQUEST 4096
#define FEDERATION_MAX_CSR 16384
#define FEDERATION_MAX_PEM (4 * 1024 * 1024)	/* a certificate, a CRL */
#define FEDERATION_MAX_INDEX (64 * 1024 * 1024)	/* the CA's index.txt */
#define FEDERATION_JSON_DEPTH 8
#define FEDERATION_MAX_KEYS 16		/* per space, as directory.c allows */
#define FEDERATION_MAX_IPS 8
#define FEDERATION_MAX_SERVICES 32
#define FEDERATION_MAX_HOURS 7
#define FEDERATION_MAX_VALID_DAYS 3650
#define FEDERATION_MAX_ARGS 32
/* The CRL outlives the directory that carries it by this much. */
#define FEDERATION_CRL_MARGIN_DAYS 7
#define FEDERATION_FIRST_KID "coordinator-1"

/* ---------------------------------------------------------------------
 * Small helpers
 */

static void __attribute__((format(printf, 3, 4)))
federation_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *
json_str(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* An integral number member: 0, or -EINVAL. */
static int
json_int(const cJSON *obj, const char *name, int64_t *ret)
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
static int
json_set(cJSON *obj, const char *name, cJSON *item)
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
static bool
json_absent(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	return item == NULL || cJSON_IsNull(item);
}

static void
federation_now_text(int64_t t, char out[32])
{
	util_format_time(t, out);
}

/*
 * Text that ends up in the directory, on a map and on a front desk's
 * screen: valid UTF-8, no control characters, and not too long.
 */
static bool
federation_text_ok(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	if (len > max)
		return false;
	while (*p != '\0') {
		unsigned char c = *p;
		size_t n;
		uint32_t cp;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return false;
		p += n + 1;
	}
	return true;
}

/* Reads a JSON object from a file of at most max bytes, strictly. */
static int
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

/* SHA-256 of a key's DER SubjectPublicKeyInfo: the directory's pin. */
static int
federation_pkey_pin(EVP_PKEY *pkey, uint8_t out[32])
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

/* ---------------------------------------------------------------------
 * certs/pki.sh
 */

static const char *
federation_pki_path(void)
{
	static char path[4096];
	const char *env = getenv("PASSERELLE_PKI");

	if (env != NULL && env[0] != '\0')
		return env;
	/* A binary run from its build folder uses the tree it was built from. */
	snprintf(path, sizeof(path), "%s/certs/pki.sh", PASSERELLE_SOURCE_DIR);
	if (access(path, R_OK) == 0)
		return path;
	snprintf(path, sizeof(path), "%s/passerelle/certs/pki.sh", PASSERELLE_DATADIR);
	return path;
}

/* Puts a child's stderr on one line: "a; b; c", without the last newline. */
static void
federation_one_line(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	bool sep = false;

	for (const char *p = in; *p != '\0' && o + 3 < outlen; p++) {
		if (*p == '\n' || *p == '\r') {
			sep = o > 0;
			continue;
		}
		if (sep) {
			out[o++] = ';';
			out[o++] = ' ';
			sep = false;
			if (o + 1 >= outlen)
				break;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
}

int
federation_pki_run(const char *const *args, char *err, size_t errlen)
{
	const char *pki = federation_pki_path();
	const char *argv[FEDERATION_MAX_ARGS + 3];
	char buf[4096], tmp[512];
	size_t n = 0, len = 0;
	int fds[2] = { -1, -1 }, status, r;
	bool direct;
	pid_t pid;

	if (access(pki, R_OK) < 0) {
		r = -errno;
		federation_err(err, errlen, "cannot find certs/pki.sh at %s (set "
		    "PASSERELLE_PKI to its path): %s", pki, strerror(-r));
		return r;
	}
	/* An installed copy may have lost its execute bit: sh runs it then. */
	direct = access(pki, X_OK) == 0;
	if (!direct)
		argv[n++] = "sh";
	argv[n++] = pki;
	for (; *args != NULL; args++) {
		if (n >= FEDERATION_MAX_ARGS) {
			federation_err(err, errlen, "too many arguments for pki.sh");
			return -E2BIG;
		}
		argv[n++] = *args;
	}
	argv[n] = NULL;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		r = -errno;
		federation_err(err, errlen, "cannot run pki.sh: %s", strerror(-r));
		return r;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		federation_err(err, errlen, "cannot run pki.sh: %s", strerror(-r));
		return r;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		/* Its chatter on stdout is not our output; stderr is our reason. */
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
		}
		dup2(fds[1], STDERR_FILENO);
		execv(direct ? pki : "/bin/sh", (char *const *)argv);
		dprintf(STDERR_FILENO, "cannot execute %s: %s\n", pki, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t k = read(fds[0], tmp, sizeof(tmp));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		/* Keep the beginning; the rest is read and dropped. */
		for (ssize_t i = 0; i < k && len + 1 < sizeof(buf); i++)
			buf[len++] = tmp[i];
	}
	buf[len] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			r = -errno;
			federation_err(err, errlen, "pki.sh: %s", strerror(-r));
			return r;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	federation_one_line(buf, err, errlen);
	if (err != NULL && errlen > 0 && err[0] == '\0') {
		if (WIFEXITED(status))
			federation_err(err, errlen, "pki.sh exited with status %d",
			    WEXITSTATUS(status));
		else
			federation_err(err, errlen, "pki.sh was killed by signal %d",
			    WTERMSIG(status));
	}
	return -EIO;
}

/* ---------------------------------------------------------------------
 * What a join request may hold
 */

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
federation_dns_name_ok(const char *name)
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
federation_ip_ok(const char *ip)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
}

bool
federation_kid_ok(const char *kid)
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
federation_url_check(const char *url, int *ret_port)
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
		if (!federation_dns_name_ok(h))
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
federation_service_ok(const char *s)
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
federation_check_text(const cJSON *req, const char *name, size_t max, bool required,
    char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);

	if (!required && (v == NULL || cJSON_IsNull(v)))
		return 0;
	if (!cJSON_IsString(v) || (required && v->valuestring[0] == '\0')) {
		federation_err(err, errlen, "field '%s' must be %stext", name,
		    required ? "non-empty " : "");
		return -EINVAL;
	}
	if (!federation_text_ok(v->valuestring, max)) {
		federation_err(err, errlen, "field '%s' must be UTF-8 text of at most "
		    "%zu bytes without control characters", name, max);
		return -EINVAL;
	}
	return 0;
}

static int
federation_check_number(const cJSON *req, const char *name, double min, double max,
    bool integral, char *err, size_t errlen)
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
federation_check_hours(const cJSON *req, char *err, size_t errlen)
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
		    !federation_text_ok(d->valuestring, 64)) {
			federation_err(err, errlen, "hours: the value for '%s' must be "
			    "text such as \"09:00-19:00\"", d->string);
			return -EINVAL;
		}
	}
	return 0;
}

static int
federation_check_list(const cJSON *req, const char *name, int max,
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
federation_check_details(const cJSON *req, char *err, size_t errlen)
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
		if (json_absent(req, required[i])) {
			federation_err(err, errlen, "field '%s' is missing", required[i]);
			return -EINVAL;
		}
	}
	if (json_int(req, "v", &v) < 0 || v != 1) {
		federation_err(err, errlen, "field 'v' must be 1 (this passerelle reads "
		    "version 1 join requests)");
		return -EINVAL;
	}
	s = json_str(req, "id");
	if (s == NULL || !federation_space_id_ok(s)) {
		federation_err(err, errlen, "field 'id' must be a space id matching "
		    "^[a-z0-9][a-z0-9-]{0,62}$");
		return -EINVAL;
	}
	if ((r = federation_check_text(req, "name", 128, true, err, errlen)) < 0 ||
	    (r = federation_check_text(req, "city", 128, false, err, errlen)) < 0 ||
	    (r = federation_check_text(req, "address", 256, false, err, errlen)) < 0 ||
	    (r = federation_check_text(req, "contact", 254, false, err, errlen)) < 0)
		return r;
	s = json_str(req, "url");
	if (s == NULL || federation_url_check(s, NULL) < 0) {
		federation_err(err, errlen, "field 'url' must be the federation face's "
		    "https://HOST[:PORT] (no path)");
		return -EINVAL;
	}
	s = json_str(req, "dns");
	if (s == NULL || !federation_dns_name_ok(s)) {
		federation_err(err, errlen, "field 'dns' must be a DNS name");
		return -EINVAL;
	}
	if ((r = federation_check_list(req, "ips", FEDERATION_MAX_IPS, federation_ip_ok,
	    "IP addresses", err, errlen)) < 0 ||
	    (r = federation_check_list(req, "services", FEDERATION_MAX_SERVICES,
	    federation_service_ok, "service names ([a-z0-9_-], at most 32)", err,
	    errlen)) < 0)
		return r;
	if ((r = federation_check_number(req, "lat", -90, 90, false, err, errlen)) < 0 ||
	    (r = federation_check_number(req, "lon", -180, 180, false, err, errlen)) < 0 ||
	    (r = federation_check_number(req, "capacity", 0, 100000, true, err,
	    errlen)) < 0)
		return r;
	if (json_absent(req, "lat") != json_absent(req, "lon")) {
		federation_err(err, errlen, "fields 'lat' and 'lon' go together");
		return -EINVAL;
	}
	return federation_check_hours(req, err, errlen);
}

/*
 * The names a request asks for are only informative (the CA writes its
 * own), but a request naming another space or host is a mix-up that the
 * coordinator should hear about before issuing anything.
 */
static int
federation_check_csr_names(X509_REQ *req, const char *id, const char *dns, char *err,
    size_t errlen)
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
federation_check_csr(const char *pem, const char *id, const char *dns,
    X509_REQ **ret, char *err, size_t errlen)
{
	static const char begin[] = "-----BEGIN CERTIFICATE REQUEST-----";
	X509_REQ *req = NULL;
	EVP_PKEY *pkey;
	BIO *bio = NULL;
	int type, r = -EINVAL;

	if (strlen(pem) > FEDERATION_MAX_CSR ||
	    strncmp(pem, begin, sizeof(begin) - 1) != 0) {
		federation_err(err, errlen, "the CSR is not a PEM certificate request "
		    "(at most %d bytes)", FEDERATION_MAX_CSR);
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
	r = federation_check_csr_names(req, id, dns, err, errlen);
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
federation_check_pass_key(const char *kid, const char *x, uint8_t pk[32], char *err,
    size_t errlen)
{
	size_t n;

	if (kid == NULL || !federation_kid_ok(kid)) {
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
federation_check_request(const cJSON *req, X509_REQ **ret_csr,
    uint8_t ret_pass_pk[32], char *err, size_t errlen)
{
	const cJSON *pk_obj, *item;
	const char *csr;
	uint8_t pk[32];
	int r;

	r = federation_check_details(req, err, errlen);
	if (r < 0)
		return r;
	csr = json_str(req, "csr");
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
	r = federation_check_pass_key(json_str(pk_obj, "kid"), json_str(pk_obj, "x"),
	    pk, err, errlen);
	if (r < 0)
		return r;
	r = federation_check_csr(csr, json_str(req, "id"), json_str(req, "dns"), ret_csr,
	    err, errlen);
	if (r < 0)
		return r;
	if (ret_pass_pk != NULL)
		memcpy(ret_pass_pk, pk, 32);
	return 0;
}

/* ---------------------------------------------------------------------
 * The coordinator's folder
 */

struct federation {
	char *dir;
	int lock_fd;
	cJSON *desc;		/* federation.json */
};

/* --federation DIR, or $PASSERELLE_FEDERATION. */
static const char *
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

static char *
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

static void
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
static int
federation_entry_pk(const cJSON *entry, uint8_t pk[32])
{
	const char *x = json_str(entry, "x");
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

	if (json_str(desc, "federation") == NULL || json_int(desc, "serial", &v) < 0 ||
	    v < 0 || json_int(desc, "valid_days", &v) < 0 || v < 1 ||
	    v > FEDERATION_MAX_VALID_DAYS || !cJSON_IsArray(spaces)) {
		federation_err(err, errlen, "needs federation, serial, valid_days and "
		    "spaces");
		return -EINVAL;
	}
	cJSON_ArrayForEach(s, spaces) {
		if (!cJSON_IsObject(s) || json_str(s, "id") == NULL) {
			federation_err(err, errlen, "every space needs an id");
			return -EINVAL;
		}
	}
	if (!cJSON_IsObject(signing) || json_str(signing, "kid") == NULL ||
	    json_str(signing, "key") == NULL || federation_entry_pk(signing, pk) < 0) {
		federation_err(err, errlen, "needs signing: {kid, key, x}");
		return -EINVAL;
	}
	if (next != NULL && (!cJSON_IsObject(next) || json_str(next, "kid") == NULL ||
	    json_str(next, "key") == NULL || federation_entry_pk(next, pk) < 0)) {
		federation_err(err, errlen, "signing.next needs {kid, key, x}");
		return -EINVAL;
	}
	return 0;
}

static int
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

static cJSON *
federation_spaces(const struct federation *f)
{
	return cJSON_GetObjectItemCaseSensitive(f->desc, "spaces");
}

static cJSON *
federation_find_space(const struct federation *f, const char *id, int *ret_index)
{
	cJSON *s;
	int i = 0;

	cJSON_ArrayForEach(s, federation_spaces(f)) {
		const char *sid = json_str(s, "id");

		if (sid != NULL && strcmp(sid, id) == 0) {
			if (ret_index != NULL)
				*ret_index = i;
			return s;
		}
		i++;
	}
	return NULL;
}

/* A space's certificate files, oldest first (a new array of strings). */
static cJSON *
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
static int
federation_set_space_certs(cJSON *space, const cJSON *certs)
{
	cJSON_DeleteItemFromObjectCaseSensitive(space, "cert");
	cJSON_DeleteItemFromObjectCaseSensitive(space, "certs");
	if (cJSON_GetArraySize(certs) == 1)
		return json_set(space, "cert",
		    cJSON_CreateString(cJSON_GetArrayItem(certs, 0)->valuestring));
	return json_set(space, "certs", cJSON_Duplicate(certs, 1));
}

/* ---------------------------------------------------------------------
 * Certificates and revocation
 */

static int
federation_read_cert(const char *path, X509 **ret)
{
	FILE *fp = fopen(path, "r");
	X509 *cert;

	if (fp == NULL)
		return -errno;
	cert = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	ERR_clear_error();
	if (cert == NULL)
		return -EINVAL;
	*ret = cert;
	return 0;
}

/* A certificate's serial in upper-case hex without leading zeros. */
static int
federation_cert_serial(const char *path, char *out, size_t outlen)
{
	X509 *cert = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int r;

	r = federation_read_cert(path, &cert);
	if (r < 0)
		return r;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	if (hex == NULL)
		r = -ENOMEM;
	else
		util_strlcpy(out, hex, outlen);
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(cert);
	ERR_clear_error();
	return r;
}

static bool
federation_serial_eq(const char *a, const char *b)
{
	while (*a == '0' && a[1] != '\0')
		a++;
	while (*b == '0' && b[1] != '\0')
		b++;
	return strcasecmp(a, b) == 0;
}

/*
 * Whether the CA's database (ca/index.txt, openssl ca's format: status,
 * expiry, revocation, serial, file, subject, tab-separated) records the
 * certificate as revoked.  Revoking twice is an error for openssl ca, and
 * a command retried after a failure must not stumble on its own work.
 */
static int
federation_cert_revoked(const struct federation *f, const char *cert_rel,
    bool *ret)
{
	char *cert = federation_path(f, cert_rel), *index = federation_path(f,
	    "ca/index.txt"), *text = NULL, serial[128], *line, *save = NULL;
	int r;

	*ret = false;
	r = federation_cert_serial(cert, serial, sizeof(serial));
	if (r < 0)
		goto out;
	r = util_read_file(index, FEDERATION_MAX_INDEX, &text, NULL);
	if (r < 0)
		goto out;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *fields[4], *p = line;
		int n = 0;

		/* Empty fields matter here (a valid certificate has no revocation). */
		while (n < 4) {
			fields[n++] = p;
			p = strchr(p, '\t');
			if (p == NULL)
				break;
			*p++ = '\0';
		}
		if (n == 4 && strcmp(fields[0], "R") == 0 &&
		    federation_serial_eq(fields[3], serial))
			*ret = true;
	}
out:
	free(text);
	free(cert);
	free(index);
	return r;
}

/* Revokes one of the federation's certificates unless it already is. */
static int
federation_revoke(const struct federation *f, const char *cert_rel, const char *reason,
    bool *ret_revoked, char *err, size_t errlen)
{
	char *ca = federation_path(f, "ca"), *cert = federation_path(f, cert_rel);
	const char *args[] = { "revoke", ca, cert, "--reason", reason, NULL };
	bool already = false;
	int r;

	*ret_revoked = false;
	r = federation_cert_revoked(f, cert_rel, &already);
	if (r < 0) {
		federation_err(err, errlen, "cannot check whether %s is revoked: %s",
		    cert, strerror(-r));
		goto out;
	}
	if (already)
		goto out;
	r = federation_pki_run(args, err, errlen);
	if (r == 0)
		*ret_revoked = true;
out:
	free(ca);
	free(cert);
	return r;
}

/*
 * Rewrites ca/crl.pem so that it outlives the directory that carries it:
 * a node that checks an expired CRL refuses every certificate.
 */
static int
federation_refresh_crl(const struct federation *f, char *err, size_t errlen)
{
	char *ca = federation_path(f, "ca"), days[32];
	const char *args[] = { "crl", ca, "--days", days, NULL };
	int64_t valid = 30;
	int r;

	json_int(f->desc, "valid_days", &valid);
	snprintf(days, sizeof(days), "%lld", (long long)(valid + FEDERATION_CRL_MARGIN_DAYS));
	r = federation_pki_run(args, err, errlen);
	free(ca);
	return r;
}

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
			const char *cert = json_str(e, "cert"), *until = json_str(e, "until");
			int64_t t, since = 0;
			bool revoked;

			json_int(e, "since", &since);
			if (cert == NULL || until == NULL || util_parse_time(until, &t) < 0 ||
			    t > now || since >= serial)
				continue;
			r = federation_revoke(f, cert, "superseded", &revoked, err, errlen);
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
		r = federation_set_space_certs(space, certs);
		cJSON_Delete(certs);
		if (r < 0)
			return r;
		if (cJSON_GetArraySize(retiring) == 0)
			cJSON_DeleteItemFromObjectCaseSensitive(space, "retiring_certs");
	}
	if (!any)
		return 0;
	r = federation_refresh_crl(f, err, errlen);
	if (r < 0)
		return r;
	return json_set(f->desc, "crl", cJSON_CreateString("ca/crl.pem"));
}

/* ---------------------------------------------------------------------
 * Signing and publishing
 */

/* Loads the key a signing entry names, and checks it is the one recorded. */
static int
federation_load_signing_key(const struct federation *f, const cJSON *entry,
    uint8_t sk[64], uint8_t pk[32], char *err, size_t errlen)
{
	char *path = federation_path(f, json_str(entry, "key"));
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
		    json_str(entry, "kid"));
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
static int
federation_sign(struct federation *f, int64_t now, char **ret_token, int64_t *ret_serial,
    char *err, size_t errlen)
{
	const cJSON *signing = cJSON_GetObjectItemCaseSensitive(f->desc, "signing");
	uint8_t sk[64], pk[32];
	char *text = NULL, why[1024];
	int64_t serial = 0;
	int r;

	json_int(f->desc, "serial", &serial);
	serial++;
	r = json_set(f->desc, "serial", cJSON_CreateNumber((double)serial));
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
	r = directory_sign_description(text, f->dir, sk, json_str(signing, "kid"), now,
	    ret_token, why, sizeof(why));
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
static int
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

		if (json_int(e, "announced_in", &serial) < 0)
			continue;
		snprintf(rel, sizeof(rel), "published/directory-%lld.jws", (long long)serial);
		path = federation_path(f, rel);
		r = util_read_file(path, DIRECTORY_MAX_TOKEN, &token, NULL);
		if (r < 0) {
			federation_err(err, errlen, "cannot read %s, which announced key %s: "
			    "%s", path, json_str(e, "kid"), strerror(-r));
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
static int
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
	    cJSON_AddStringToObject(b, "federation", json_str(f->desc, "federation")) ==
	    NULL ||
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

/* Whether a pass key (by kid, or by value) is used by any space. */
static const char *
federation_pass_key_owner(const struct federation *f, const char *kid,
    const uint8_t pk[32])
{
	const cJSON *space, *k;

	cJSON_ArrayForEach(space, federation_spaces(f)) {
		cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(space, "pass_keys")) {
			const char *kk = json_str(k, "kid");
			uint8_t other[32];

			if (kk != NULL && kid != NULL && strcmp(kk, kid) == 0)
				return json_str(space, "id");
			if (pk != NULL && federation_entry_pk(k, other) == 0 &&
			    memcmp(other, pk, 32) == 0)
				return json_str(space, "id");
		}
	}
	return NULL;
}

/* The space (other than except) whose certificate has this key pin. */
static const char *
federation_pin_owner(const struct federation *f, const uint8_t pin[32],
    const char *except)
{
	const cJSON *space, *c;

	cJSON_ArrayForEach(space, federation_spaces(f)) {
		const char *id = json_str(space, "id");
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

/* Writes a request's CSR (as OpenSSL re-encodes it) for pki.sh to read. */
static int
federation_write_csr(const struct federation *f, X509_REQ *req, const char *rel,
    char **ret_path, char *err, size_t errlen)
{
	char *path = federation_path(f, rel), *dir = federation_path(f, "requests"),
	    *data;
	BIO *bio = BIO_new(BIO_s_mem());
	long len;
	int r;

	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1) {
		r = -ENOMEM;
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	r = util_mkdir_p(dir, 0755);
	if (r == 0)
		r = util_write_file(path, data, (size_t)len, 0644);
	if (r < 0) {
		federation_err(err, errlen, "cannot write %s: %s", path, strerror(-r));
		goto out;
	}
	*ret_path = path;
	path = NULL;
out:
	BIO_free(bio);
	ERR_clear_error();
	free(path);
	free(dir);
	return r;
}

/* Issues a node certificate with pki.sh sign, names from the space's record. */
static int
federation_issue(const struct federation *f, const char *csr_path, const char *cert_rel,
    const char *id, const char *dns, const cJSON *ips, char *err, size_t errlen)
{
	char *ca = federation_path(f, "ca"), *crt = federation_path(f, cert_rel),
	    *spaces = federation_path(f, "spaces"), why[1024];
	const char *args[FEDERATION_MAX_ARGS];
	const cJSON *ip;
	size_t n = 0;
	int r;

	args[n++] = "sign";
	args[n++] = ca;
	args[n++] = csr_path;
	args[n++] = crt;
	args[n++] = id;
	args[n++] = dns;
	cJSON_ArrayForEach(ip, ips)
		if (cJSON_IsString(ip) && n < FEDERATION_MAX_ARGS - 2)
			args[n++] = ip->valuestring;
	args[n] = NULL;
	r = util_mkdir_p(spaces, 0755);
	if (r < 0) {
		federation_err(err, errlen, "cannot create %s: %s", spaces, strerror(-r));
		goto out;
	}
	r = federation_pki_run(args, why, sizeof(why));
	if (r < 0)
		federation_err(err, errlen, "cannot issue the certificate: %s", why);
out:
	free(ca);
	free(crt);
	free(spaces);
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
	uint8_t sk[64], pk[32];
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
	r = key_generate_file(key);
	if (r == 0)
		r = key_load_private(key, sk, pk);
	sodium_memzero(sk, sizeof(sk));
	if (r == 0)
		r = key_write_public(pub, pk);
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
	    cJSON_AddStringToObject(e, "id", json_str(req, "id")) == NULL ||
	    cJSON_AddStringToObject(e, "name", json_str(req, "name")) == NULL ||
	    cJSON_AddStringToObject(e, "url", json_str(req, "url")) == NULL ||
	    cJSON_AddStringToObject(e, "cert", cert_rel) == NULL ||
	    (keys = cJSON_AddArrayToObject(e, "pass_keys")) == NULL ||
	    (k = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(keys, k) ||
	    cJSON_AddStringToObject(k, "kid", json_str(pk, "kid")) == NULL ||
	    cJSON_AddStringToObject(k, "x", json_str(pk, "x")) == NULL ||
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
	if (cJSON_AddStringToObject(e, "dns", json_str(req, "dns")) == NULL ||
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
	char *csr_path = NULL, *cert_path = NULL, *bundle = NULL, *token = NULL;
	char err[1024], why[1024], cert_rel[128], serial_hex[128] = "?";
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
	if (federation_read_json(argv[i], FEDERATION_MAX_REQUEST, "the join request",
	    &req, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (federation_check_request(req, &csr, pass_pk, why, sizeof(why)) < 0) {
		cli_fail("%s refused: %s", argv[i], why);
		goto out;
	}
	id = json_str(req, "id");
	url = json_str(req, "url");
	if (federation_find_space(&f, id, NULL) != NULL) {
		cli_fail("%s refused: space '%s' is already in the federation (ids are "
		    "unique; a new space needs another id)", argv[i], id);
		goto out;
	}
	cJSON_ArrayForEach(space, federation_spaces(&f)) {
		const char *other = json_str(space, "url");

		if (other != NULL && strcmp(other, url) == 0) {
			cli_fail("%s refused: space '%s' already uses %s", argv[i],
			    json_str(space, "id"), url);
			goto out;
		}
	}
	{
		const cJSON *pk = cJSON_GetObjectItemCaseSensitive(req, "pass_key");

		owner = federation_pass_key_owner(&f, json_str(pk, "kid"), pass_pk);
		if (owner != NULL) {
			cli_fail("%s refused: space '%s' already has a pass key with this kid "
			    "or this value (kids are unique in the federation)", argv[i],
			    owner);
			goto out;
		}
	}
	if (federation_pkey_pin(X509_REQ_get0_pubkey(csr), pin) < 0) {
		cli_fail("cannot hash the CSR's key");
		goto out;
	}
	owner = federation_pin_owner(&f, pin, NULL);
	if (owner != NULL) {
		cli_fail("%s refused: the CSR's key is space '%s''s node key", argv[i], owner);
		goto out;
	}
	if (cJSON_GetArraySize(federation_spaces(&f)) >= 10000) {
		cli_fail("the federation has too many spaces");
		goto out;
	}

	{
		char rel[128];

		snprintf(rel, sizeof(rel), "requests/%s.csr", id);
		if (federation_write_csr(&f, csr, rel, &csr_path, err, sizeof(err)) < 0) {
			cli_fail("%s", err);
			goto out;
		}
	}
	snprintf(cert_rel, sizeof(cert_rel), "spaces/%s.crt", id);
	cert_path = federation_path(&f, cert_rel);
	if (federation_issue(&f, csr_path, cert_rel, id, json_str(req, "dns"),
	    cJSON_GetObjectItemCaseSensitive(req, "ips"), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	issued = true;
	federation_cert_serial(cert_path, serial_hex, sizeof(serial_hex));

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
	if (bundle_opt != NULL) {
		bundle = strdup(bundle_opt);
	} else {
		char rel[128];

		snprintf(rel, sizeof(rel), "bundles/%s.json", id);
		bundle = federation_path(&f, rel);
	}
	/* The bundle first: a space admitted without its bundle is stranded. */
	r = federation_write_bundle(&f, id, "join", cert_rel, token, bundle, err,
	    sizeof(err));
	if (r < 0) {
		cli_fail("%s", err);
		goto out;
	}
	r = federation_save(&f, token, serial, &saved, err, sizeof(err));
	if (!saved)
		unlink(bundle);
	else
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
		    id, json_str(req, "name"), cert_path, serial_hex, (long long)serial,
		    cJSON_GetArraySize(federation_spaces(&f)),
		    cJSON_GetArraySize(federation_spaces(&f)) == 1 ? "" : "s", bundle);
	}
	ret = 0;
out:
	/* Issued but not admitted: the certificate must not lie around. */
	if (issued && cert_path != NULL)
		unlink(cert_path);
	free(token);
	free(bundle);
	free(csr_path);
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

		federation_cert_serial(path, serial_hex, sizeof(serial_hex));
		free(path);
		if (federation_revoke(&f, c->valuestring, reason, &done, err,
		    sizeof(err)) < 0) {
			cli_fail("cannot revoke %s: %s", c->valuestring, err);
			goto out;
		}
		cJSON_AddItemToArray(revoked, cJSON_CreateString(serial_hex));
	}
	if (federation_refresh_crl(&f, err, sizeof(err)) < 0) {
		cli_fail("cannot rewrite the CRL: %s", err);
		goto out;
	}
	cJSON_DeleteItemFromArray(federation_spaces(&f), index);
	if (json_set(f.desc, "crl", cJSON_CreateString("ca/crl.pem")) < 0 ||
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
	if (federation_read_json(argv[i], FEDERATION_MAX_KEY_REQUEST, "the key request",
	    &req, err, sizeof(err)) < 0) {
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
	id = json_str(req, "space");
	kid = json_str(req, "kid");
	x = json_str(req, "x");
	if (json_int(req, "v", &v) < 0 || v != 1) {
		cli_fail("%s refused: field 'v' must be 1", argv[i]);
		goto out;
	}
	if (id == NULL) {
		cli_fail("%s refused: field 'space' is missing", argv[i]);
		goto out;
	}
	if (federation_check_pass_key(kid, x, pk, err, sizeof(err)) < 0) {
		cli_fail("%s refused: %s", argv[i], err);
		goto out;
	}
	space = federation_find_space(&f, id, NULL);
	if (space == NULL) {
		cli_fail("%s refused: no space '%s' in the federation", argv[i], id);
		goto out;
	}
	owner = federation_pass_key_owner(&f, kid, pk);
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
		if (json_set(k, "retires_at", cJSON_CreateString(retire_s)) < 0)
			goto nomem;
		cJSON_AddItemToArray(retired, cJSON_CreateString(json_str(k, "kid")));
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
	char *text = NULL, *csr_path = NULL, *cert_path = NULL, *bundle = NULL;
	char *token = NULL, err[1024], cert_rel[160], until_s[32], serial_hex[128] = "?";
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
	dns = json_str(space, "dns");
	if (dns == NULL) {
		cli_fail("space '%s' has no recorded DNS name in federation.json (was it "
		    "admitted with 'federation admit'?)", id);
		goto out;
	}
	r = util_read_file(argv[i + 1], FEDERATION_MAX_CSR, &text, NULL);
	if (r < 0) {
		cli_fail("cannot read %s: %s", argv[i + 1], r == -EFBIG ? "too large" :
		    strerror(-r));
		goto out;
	}
	if (federation_check_csr(text, id, dns, &csr, err, sizeof(err)) < 0) {
		cli_fail("%s refused: %s", argv[i + 1], err);
		goto out;
	}
	if (federation_pkey_pin(X509_REQ_get0_pubkey(csr), pin) < 0) {
		cli_fail("cannot hash the CSR's key");
		goto out;
	}
	owner = federation_pin_owner(&f, pin, id);
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

	json_int(f.desc, "serial", &next);
	next++;
	{
		char rel[160];

		snprintf(rel, sizeof(rel), "requests/%s-renewed-%lld.csr", id, (long long)next);
		if (federation_write_csr(&f, csr, rel, &csr_path, err, sizeof(err)) < 0) {
			cli_fail("%s", err);
			goto out;
		}
	}
	snprintf(cert_rel, sizeof(cert_rel), "spaces/%s-renewed-%lld.crt", id,
	    (long long)next);
	cert_path = federation_path(&f, cert_rel);
	if (federation_issue(&f, csr_path, cert_rel, id, dns,
	    cJSON_GetObjectItemCaseSensitive(space, "ips"), err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	issued = true;
	federation_cert_serial(cert_path, serial_hex, sizeof(serial_hex));

	/* Old and new are both pinned until the overlap ends. */
	federation_now_text(now + overlap, until_s);
	retiring = cJSON_GetObjectItemCaseSensitive(space, "retiring_certs");
	if (!cJSON_IsArray(retiring)) {
		retiring = cJSON_CreateArray();
		if (json_set(space, "retiring_certs", retiring) < 0)
			goto nomem;
	}
	cJSON_ArrayForEach(c, certs) {
		const cJSON *e;
		cJSON *ne;
		bool listed = false;

		cJSON_ArrayForEach(e, retiring)
			listed = listed || (json_str(e, "cert") != NULL &&
			    strcmp(json_str(e, "cert"), c->valuestring) == 0);
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
	    federation_set_space_certs(space, certs) < 0)
		goto nomem;
	if (federation_sign(&f, now, &token, &serial, err, sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	if (bundle_opt != NULL) {
		bundle = strdup(bundle_opt);
	} else {
		char rel[160];

		snprintf(rel, sizeof(rel), "bundles/%s-renewed-%lld.json", id,
		    (long long)serial);
		bundle = federation_path(&f, rel);
	}
	if (federation_write_bundle(&f, id, "renewal", cert_rel, token, bundle, err,
	    sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	r = federation_save(&f, token, serial, &saved, err, sizeof(err));
	if (!saved)
		unlink(bundle);
	else
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
	free(csr_path);
	free(cert_path);
	X509_REQ_free(csr);
	cJSON_Delete(certs);
	federation_close(&f);
	return ret;
}

/* ---------------------------------------------------------------------
 * federation roll-key
 */

/* "coordinator-1" → "coordinator-2"; anything else gets "-2". */
static void
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
		    cJSON_AddStringToObject(k, "kid", json_str(entries[i], "kid")) == NULL ||
		    cJSON_AddStringToObject(k, "x", json_str(entries[i], "x")) == NULL) {
			cJSON_Delete(keys);
			return -ENOMEM;
		}
	}
	return json_set(f->desc, "coordinator_keys", keys);
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
	uint8_t sk[64], pk[32];
	int64_t serial = 0, now = util_now();
	bool made = false, saved = false;
	int r;

	if (kid_opt != NULL)
		util_strlcpy(kid, kid_opt, sizeof(kid));
	else
		federation_next_kid(json_str(signing, "kid"), kid, sizeof(kid));
	if (!federation_kid_ok(kid) || strcmp(kid, json_str(signing, "kid")) == 0) {
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
	r = key_generate_file(key);
	if (r < 0) {
		federation_err(err, errlen, "cannot make %s: %s", key, strerror(-r));
		goto out;
	}
	made = true;
	r = key_load_private(key, sk, pk);
	sodium_memzero(sk, sizeof(sk));
	if (r == 0)
		r = key_write_public(pub, pk);
	if (r < 0) {
		federation_err(err, errlen, "cannot write %s: %s", pub, strerror(-r));
		goto out;
	}
	b64url_encode(pk, 32, x);
	next = cJSON_CreateObject();
	if (next == NULL || json_set(signing, "next", next) < 0 ||
	    cJSON_AddStringToObject(next, "kid", kid) == NULL ||
	    cJSON_AddStringToObject(next, "key", "signing/directory-next.key") == NULL ||
	    cJSON_AddStringToObject(next, "public", "signing/directory-next.pub") == NULL ||
	    cJSON_AddStringToObject(next, "x", x) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* The directory about to be signed is the new key's announcement. */
	json_int(f->desc, "serial", &serial);
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
		cJSON_AddStringToObject(o, "signed_by", json_str(signing, "kid"));
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
		    (long long)serial, json_str(signing, "kid"), f->dir);
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
	util_strlcpy(old_kid, json_str(signing, "kid"), sizeof(old_kid));
	old = cJSON_Duplicate(signing, 1);
	entry = cJSON_Duplicate(next, 1);
	if (old == NULL || entry == NULL) {
		r = -ENOMEM;
		goto out;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(old, "next");
	cJSON_DeleteItemFromObjectCaseSensitive(old, "retired");
	if (json_set(old, "retired_at", cJSON_CreateString(now_s)) < 0) {
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
	r = json_set(f->desc, "signing", entry);
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

		json_set(last, "key", cJSON_CreateString(old_key));
		if (federation_archive(f, "signing/directory.pub", old_pub) == 0)
			json_set(last, "public", cJSON_CreateString(old_pub));
		r = federation_archive(f, json_str(signing, "key"), "signing/directory.key");
	}
	if (r == 0) {
		json_set(signing, "key", cJSON_CreateString("signing/directory.key"));
		if (federation_archive(f, json_str(signing, "public"),
		    "signing/directory.pub") == 0)
			json_set(signing, "public", cJSON_CreateString("signing/directory.pub"));
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
		cJSON_AddStringToObject(o, "signed_by", json_str(signing, "kid"));
		cJSON_AddStringToObject(o, "retired_kid", old_kid);
		cJSON_AddNumberToObject(o, "serial", (double)serial);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("directory serial %lld is signed with %s; %s is archived in "
		    "%s/signing/archive/\n"
		    "nodes that verified the announcement trust %s already; spaces may "
		    "also replace their coordinator.pub with %s/signing/directory.pub\n",
		    (long long)serial, json_str(signing, "kid"), old_kid, f->dir,
		    json_str(signing, "kid"), f->dir);
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
	if (days > 0 && json_set(f.desc, "valid_days", cJSON_CreateNumber((double)days)) <
	    0) {
		cli_fail("out of memory");
		goto out;
	}
	json_int(f.desc, "valid_days", &days);
	dropped = cJSON_CreateArray();
	/*
	 * Overlaps that have ended are applied first, so that the list of what
	 * was dropped can be shown; federation_sign() would find none left.
	 */
	json_int(f.desc, "serial", &serial);
	if (dropped == NULL || federation_retire_certs(&f, now, serial + 1, dropped, err,
	    sizeof(err)) < 0) {
		cli_fail("%s", err);
		goto out;
	}
	/* The CRL a directory carries must not expire before the directory. */
	if (json_str(f.desc, "crl") != NULL &&
	    federation_refresh_crl(&f, err, sizeof(err)) < 0) {
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
