/*
 * join.c - a new space's side of a federation: `passerelle init` makes its
 * keys, its certificate request and its join request; `passerelle join`
 * checks the coordinator's bundle and installs it; `passerelle pass
 * new-key` prepares a rotation of the pass-signing key.
 *
 * Private keys are made here and never leave the machine: the join request
 * carries only the CSR and the public pass key.  A bundle is checked
 * entirely before anything is written (the certificate names this space,
 * holds this node's key and verifies against the bundle's CA; the directory
 * verifies with the bundle's coordinator key and pins that certificate and
 * this space's pass key), so that a bundle for another space, or from
 * another coordinator, changes nothing.
 *
 * The coordinator's side is federation.c (signing) and federation_space.c
 * (admitting), which also holds the checks of a join request that both
 * sides apply.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "b64url.h"
#include "cli.h"
#include "config.h"
#include "directory.h"
#include "federation.h"
#include "join.h"
#include "jws.h"
#include "key.h"
#include "tls.h"
#include "util.h"

#define JOIN_MAX_BUNDLE (DIRECTORY_MAX_TOKEN + 8 * 1024 * 1024)
#define JOIN_MAX_PEM (4 * 1024 * 1024)
#define JOIN_MAX_KEY_FILE 16384
#define JOIN_MAX_IPS 8
#define JOIN_JSON_DEPTH 4

/* ---------------------------------------------------------------------
 * Small helpers
 */

/* The folder of a path ("." when it has none); malloc'ed. */
static char *
join_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}


/* Writes a cJSON document as indented text with a final newline. */
static int
join_write_json(const char *path, const cJSON *doc, mode_t mode)
{
	char *text = cJSON_Print(doc), *line;
	int r;

	if (text == NULL)
		return -ENOMEM;
	line = util_aprintf("%s\n", text);
	cJSON_free(text);
	if (line == NULL)
		return -ENOMEM;
	r = util_write_file(path, line, strlen(line), mode);
	free(line);
	return r;
}

static X509 *
join_pem_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
	X509 *cert = NULL;

	if (bio != NULL)
		cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return cert;
}

static X509_CRL *
join_pem_crl(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
	X509_CRL *crl = NULL;

	if (bio != NULL)
		crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return crl;
}

/* An Ed25519 public key from SubjectPublicKeyInfo PEM. */
static int
join_pem_ed25519(const char *pem, uint8_t pk[32])
{
	BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
	EVP_PKEY *pkey = NULL;
	size_t n = 32;
	int r = -EINVAL;

	if (bio != NULL)
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (pkey != NULL && EVP_PKEY_get_id(pkey) == EVP_PKEY_ED25519 &&
	    EVP_PKEY_get_raw_public_key(pkey, pk, &n) == 1 && n == 32)
		r = 0;
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

/* A PEM object's canonical text (what OpenSSL writes back). */
static char *
join_bio_text(BIO *bio)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);

	return len > 0 ? strndup(data, (size_t)len) : NULL;
}

static char *
join_cert_text(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
		s = join_bio_text(bio);
	BIO_free(bio);
	return s;
}

static char *
join_crl_text(X509_CRL *crl)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (bio != NULL && PEM_write_bio_X509_CRL(bio, crl) == 1)
		s = join_bio_text(bio);
	BIO_free(bio);
	return s;
}

/* Refuses encrypted keys instead of prompting on a terminal. */
static int
join_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *
join_read_private_key(const char *path)
{
	FILE *fp = fopen(path, "r");
	EVP_PKEY *pkey;

	if (fp == NULL)
		return NULL;
	pkey = PEM_read_PrivateKey(fp, NULL, join_no_passphrase, NULL);
	fclose(fp);
	ERR_clear_error();
	return pkey;
}

/* ---------------------------------------------------------------------
 * passerelle init
 */

/* Every --ip, repeated or comma-separated (cli_opt keeps only the last). */
static int
join_collect_ips(int argc, char **argv, cJSON *ips)
{
	for (int k = 1; k < argc; k++) {
		const char *v = NULL;
		char *copy, *tok, *save = NULL;

		if (strcmp(argv[k], "--") == 0)
			break;
		if (strcmp(argv[k], "--ip") == 0 && k + 1 < argc)
			v = argv[++k];
		else if (strncmp(argv[k], "--ip=", 5) == 0)
			v = argv[k] + 5;
		if (v == NULL)
			continue;
		copy = strdup(v);
		if (copy == NULL)
			return -ENOMEM;
		for (tok = strtok_r(copy, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save)) {
			/* cli_die_usage() exits: copy is not freed, tok stays valid. */
			if (!federation_space_ip_ok(tok))
				cli_die_usage("--ip: '%s' is not an IP address", tok);
			if (cJSON_GetArraySize(ips) >= JOIN_MAX_IPS)
				cli_die_usage("--ip: at most %d addresses", JOIN_MAX_IPS);
			cJSON_AddItemToArray(ips, cJSON_CreateString(tok));
		}
		free(copy);
	}
	return 0;
}

static double
join_parse_coordinate(const char *s, const char *what, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || fabs(v) > max)
		cli_die_usage("%s must be a number from %g to %g, not '%s'", what, -max, max,
		    s);
	return v;
}

/* The join request's public part, from the command line. */
static cJSON *
join_build_request(const char *id, const char *name, const char *url, const char *dns,
    cJSON *ips, const char *city, const char *address, const char *lat,
    const char *lon, const char *hours, const char *capacity, const char *services,
    const char *contact)
{
	cJSON *req = cJSON_CreateObject(), *list;

	if (req == NULL)
		return NULL;
	cJSON_AddNumberToObject(req, "v", 1);
	cJSON_AddStringToObject(req, "id", id);
	cJSON_AddStringToObject(req, "name", name);
	cJSON_AddStringToObject(req, "city", city != NULL ? city : "");
	cJSON_AddStringToObject(req, "address", address != NULL ? address : "");
	if (lat != NULL) {
		cJSON_AddNumberToObject(req, "lat", join_parse_coordinate(lat, "--lat", 90));
		cJSON_AddNumberToObject(req, "lon", join_parse_coordinate(lon, "--lon", 180));
	} else {
		cJSON_AddNullToObject(req, "lat");
		cJSON_AddNullToObject(req, "lon");
	}
	cJSON_AddStringToObject(req, "url", url);
	cJSON_AddStringToObject(req, "dns", dns);
	cJSON_AddItemToObject(req, "ips", ips);
	if (hours != NULL) {
		cJSON *h = jws_json_parse_object(hours, strlen(hours), JOIN_JSON_DEPTH);

		if (h == NULL)
			cli_die_usage("--hours must be a JSON object such as "
			    "'{\"mon\": \"09:00-19:00\", \"tue\": \"09:00-19:00\"}'");
		cJSON_AddItemToObject(req, "hours", h);
	} else {
		cJSON_AddObjectToObject(req, "hours");
	}
	if (capacity != NULL)
		cJSON_AddNumberToObject(req, "capacity",
		    cli_parse_int(capacity, "--capacity", 0, 100000));
	else
		cJSON_AddNullToObject(req, "capacity");
	list = cJSON_AddArrayToObject(req, "services");
	if (services != NULL && list != NULL) {
		char *copy = strdup(services), *tok, *save = NULL;

		for (tok = copy != NULL ? strtok_r(copy, ",", &save) : NULL; tok != NULL;
		    tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ')
				tok++;
			if (*tok != '\0')
				cJSON_AddItemToArray(list, cJSON_CreateString(tok));
		}
		free(copy);
	}
	cJSON_AddStringToObject(req, "contact", contact != NULL ? contact : "");
	return req;
}

/* The node's configuration, as scripts/demo.sh writes one by hand. */
static char *
join_config_text(const char *id, const char *name, const char *listen,
    const char *local, const char *kid, const char *urls)
{
	return util_aprintf(
	    "# %s: a Passerelle node (see docs/operating.md).\n"
	    "# Written by 'passerelle init'; node.crt, ca.crt, directory.jws and\n"
	    "# coordinator.pub arrive with the coordinator's bundle "
	    "('passerelle join').\n"
	    "[node]\n"
	    "space_id = %s\n"
	    "data_dir = data\n"
	    "\n"
	    "[federation]\n"
	    "listen = %s\n"
	    "cert = node.crt\n"
	    "key = node.key\n"
	    "ca = ca.crt\n"
	    "directory = directory.jws\n"
	    "directory_key = coordinator.pub\n"
	    "%s%s%s"
	    "\n"
	    "[local]\n"
	    "listen = %s\n"
	    "\n"
	    "[pass]\n"
	    "key = pass.key\n"
	    "kid = %s\n", name, id, listen, urls != NULL ? "directory_urls = " : "",
	    urls != NULL ? urls : "", urls != NULL ? "\n" : "", local, kid);
}

int
join_cmd_init(int argc, char **argv)
{
	const char *id = NULL, *name = NULL, *url = NULL, *dns = NULL, *ip = NULL,
	    *city = NULL, *address = NULL, *lat = NULL, *lon = NULL, *hours = NULL,
	    *capacity = NULL, *services = NULL, *contact = NULL, *listen = NULL,
	    *local = "127.0.0.1:7080", *urls = NULL;
	const struct cli_opt opts[] = {
		{ "id", true, &id, NULL },
		{ "name", true, &name, NULL },
		{ "url", true, &url, NULL },
		{ "dns", true, &dns, NULL },
		{ "ip", true, &ip, NULL },
		{ "city", true, &city, NULL },
		{ "address", true, &address, NULL },
		{ "lat", true, &lat, NULL },
		{ "lon", true, &lon, NULL },
		{ "hours", true, &hours, NULL },
		{ "capacity", true, &capacity, NULL },
		{ "services", true, &services, NULL },
		{ "contact", true, &contact, NULL },
		{ "listen", true, &listen, NULL },
		{ "local-listen", true, &local, NULL },
		{ "directory-url", true, &urls, NULL },
		{ NULL, false, NULL, NULL },
	};
	static const char *const outputs[] = { "node.key", "node.csr", "pass.key",
	    "pass.pub", "passerelle.conf", "join-request.json" };
	char *paths[UTIL_ARRAY_SIZE(outputs)] = { NULL };
	bool made[UTIL_ARRAY_SIZE(outputs)] = { false };
	cJSON *req = NULL, *ips, *pk_obj;
	char *dir, *csr = NULL, *conf = NULL, kid[80], x[64], listen_buf[64], err[1024];
	uint8_t pk[32];
	int i, port, r, ret = 1;

	ips = cJSON_CreateArray();
	if (ips == NULL || join_collect_ips(argc, argv, ips) < 0)
		return cli_fail("out of memory");
	(void)ip;
	i = cli_parse_options(argc, argv, opts);
	if (argc - i != 1)
		cli_die_usage("init takes the folder to create the space's files in (DIR)");
	if (id == NULL || name == NULL || url == NULL || dns == NULL)
		cli_die_usage("init needs --id, --name, --url and --dns");
	if (!federation_space_id_ok(id))
		cli_die_usage("--id must match ^[a-z0-9][a-z0-9-]{0,62}$, not '%s'", id);
	if (federation_space_url_check(url, &port) < 0)
		cli_die_usage("--url must be https://HOST[:PORT] (the federation face, no "
		    "path), not '%s'", url);
	if (!federation_space_dns_name_ok(dns))
		cli_die_usage("--dns must be a DNS name, not '%s'", dns);
	if ((lat == NULL) != (lon == NULL))
		cli_die_usage("--lat and --lon go together");
	if (listen == NULL) {
		/* The federation face listens on every address, on the URL's port. */
		snprintf(listen_buf, sizeof(listen_buf), "0.0.0.0:%d", port);
		listen = listen_buf;
	}
	if (strchr(listen, ':') == NULL || strpbrk(listen, " \t\n#;") != NULL)
		cli_die_usage("--listen must be HOST:PORT, not '%s'", listen);
	if (strchr(local, ':') == NULL || strpbrk(local, " \t\n#;") != NULL)
		cli_die_usage("--local-listen must be HOST:PORT, not '%s'", local);
	if (urls != NULL && ((strncmp(urls, "https://", 8) != 0 &&
	    strncmp(urls, "http://", 7) != 0 && strncmp(urls, "file://", 7) != 0) ||
	    strpbrk(urls, " \t\r\n#;") != NULL))
		cli_die_usage("--directory-url must be one https://, http:// or file:// URL "
		    "where the coordinator publishes the directory, not '%s'", urls);
	req = join_build_request(id, name, url, dns, ips, city, address, lat, lon, hours,
	    capacity, services, contact);
	if (req == NULL)
		return cli_fail("out of memory");
	if (federation_space_check_details(req, err, sizeof(err)) < 0) {
		cJSON_Delete(req);
		cli_die_usage("the space's details would be refused: %s", err);
	}
	snprintf(kid, sizeof(kid), "%s-1", id);

	dir = argv[i];
	for (size_t k = 0; k < UTIL_ARRAY_SIZE(outputs); k++) {
		paths[k] = util_path_join(dir, outputs[k]);
		if (paths[k] == NULL) {
			cli_fail("out of memory");
			goto out;
		}
		if (access(paths[k], F_OK) == 0) {
			cli_fail("%s exists: not overwriting a space's keys or files (use "
			    "another folder)", paths[k]);
			goto out;
		}
	}
	r = util_mkdir_p(dir, 0755);
	if (r < 0) {
		cli_fail("cannot create %s: %s", dir, strerror(-r));
		goto out;
	}

	/* The node key and its request, by the same tool the coordinator uses. */
	{
		const char *args[] = { "csr", dir, id, dns, NULL };

		r = federation_pki_run(args, err, sizeof(err));
		if (r < 0) {
			cli_fail("cannot make the node key and CSR: %s", err);
			goto out;
		}
		made[0] = made[1] = true;
	}
	r = key_generate_pair(paths[2], paths[3], pk);
	if (r < 0) {
		cli_fail("cannot make the pass-signing key %s: %s", paths[2], strerror(-r));
		goto out;
	}
	made[2] = made[3] = true;
	b64url_encode(pk, 32, x);

	conf = join_config_text(id, name, listen, local, kid, urls);
	if (conf == NULL || (r = util_write_file(paths[4], conf, strlen(conf), 0644)) < 0) {
		cli_fail("cannot write %s: %s", paths[4], conf == NULL ? "out of memory" :
		    strerror(-r));
		goto out;
	}
	made[4] = true;

	r = util_read_file(paths[1], 16384, &csr, NULL);
	if (r < 0) {
		cli_fail("cannot read %s: %s", paths[1], strerror(-r));
		goto out;
	}
	pk_obj = cJSON_CreateObject();
	if (pk_obj == NULL || cJSON_AddStringToObject(req, "csr", csr) == NULL ||
	    !cJSON_AddItemToObject(req, "pass_key", pk_obj) ||
	    cJSON_AddStringToObject(pk_obj, "kid", kid) == NULL ||
	    cJSON_AddStringToObject(pk_obj, "x", x) == NULL) {
		cli_fail("out of memory");
		goto out;
	}
	/* What the coordinator will check, checked here first. */
	if (federation_space_check_request(req, NULL, NULL, err, sizeof(err)) < 0) {
		cli_fail("the join request would be refused: %s", err);
		goto out;
	}
	r = join_write_json(paths[5], req, 0644);
	if (r < 0) {
		cli_fail("cannot write %s: %s", paths[5], strerror(-r));
		goto out;
	}
	made[5] = true;

	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", id);
		cJSON_AddStringToObject(o, "request", paths[5]);
		cJSON_AddStringToObject(o, "config", paths[4]);
		cJSON_AddStringToObject(o, "node_key", paths[0]);
		cJSON_AddStringToObject(o, "csr", paths[1]);
		cJSON_AddStringToObject(o, "pass_key", paths[2]);
		cJSON_AddStringToObject(o, "kid", kid);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("space %s is ready to ask to join a federation\n"
		    "  node key       %s (private, mode 0600: it never leaves this "
		    "machine)\n"
		    "  pass key       %s (private, mode 0600), kid %s\n"
		    "  configuration  %s\n"
		    "  join request   %s\n"
		    "send the join request to the coordinator; when the bundle comes back, "
		    "run:\n"
		    "  passerelle -c %s join BUNDLE\n", id, paths[0], paths[2], kid, paths[4],
		    paths[5], paths[4]);
	}
	ret = 0;
out:
	/* A failed init leaves nothing behind, so that it can simply be run again. */
	for (size_t k = UTIL_ARRAY_SIZE(outputs); ret != 0 && k-- > 0;)
		if (made[k])
			unlink(paths[k]);
	for (size_t k = 0; k < UTIL_ARRAY_SIZE(outputs); k++)
		free(paths[k]);
	free(csr);
	free(conf);
	cJSON_Delete(req);
	return ret;
}

/* ---------------------------------------------------------------------
 * passerelle join
 */

struct join_bundle {
	cJSON *doc;
	const char *space;
	const char *token;
	X509 *cert;
	X509 *ca;
	X509_CRL *crl;		/* NULL when the bundle has none */
	uint8_t coordinator_pk[32];
	struct directory *dir;
};

static void
join_bundle_clear(struct join_bundle *b)
{
	cJSON_Delete(b->doc);
	X509_free(b->cert);
	X509_free(b->ca);
	X509_CRL_free(b->crl);
	directory_free(b->dir);
	memset(b, 0, sizeof(*b));
}

/* Reads the bundle and checks its form: known fields, each of its type. */
static int
join_bundle_read(const char *path, struct join_bundle *b, char *err, size_t errlen)
{
	static const char *const known[] = { "v", "kind", "space", "federation",
	    "certificate", "ca", "directory", "coordinator_key", "crl",
	    "coordinator_announcements" };
	static const char *const required[] = { "space", "certificate", "ca",
	    "directory", "coordinator_key" };
	const cJSON *item, *v;
	char *text = NULL;
	size_t len = 0;
	cJSON *loose;
	int r;

	r = util_read_file(path, JOIN_MAX_BUNDLE, &text, &len);
	if (r < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, r == -EFBIG ?
		    "too large for a bundle" : strerror(-r));
		return r;
	}
	r = -EINVAL;
	loose = cJSON_ParseWithLength(text, len);
	if (loose == NULL) {
		snprintf(err, errlen, "%s is not valid JSON", path);
		goto out;
	}
	cJSON_Delete(loose);
	b->doc = jws_json_parse_object(text, len, JOIN_JSON_DEPTH);
	if (b->doc == NULL) {
		snprintf(err, errlen, "%s is not one flat JSON object without duplicate "
		    "names", path);
		goto out;
	}
	cJSON_ArrayForEach(item, b->doc) {
		bool found = false;

		for (size_t k = 0; k < UTIL_ARRAY_SIZE(known) && !found; k++)
			found = strcmp(item->string, known[k]) == 0;
		if (!found) {
			snprintf(err, errlen, "%s: unknown field '%s'", path, item->string);
			goto out;
		}
		if (strcmp(item->string, "coordinator_announcements") == 0) {
			const cJSON *t;

			if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) > 16) {
				snprintf(err, errlen, "%s: coordinator_announcements must be "
				    "a list of at most 16 directories", path);
				goto out;
			}
			cJSON_ArrayForEach(t, item) {
				if (!cJSON_IsString(t)) {
					snprintf(err, errlen, "%s: coordinator_announcements "
					    "must be a list of directories", path);
					goto out;
				}
			}
			continue;
		}
		if (strcmp(item->string, "v") != 0 && !cJSON_IsString(item)) {
			snprintf(err, errlen, "%s: field '%s' must be text", path,
			    item->string);
			goto out;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(b->doc, "v");
	if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
		snprintf(err, errlen, "%s: field 'v' must be 1 (a bundle from another "
		    "version of passerelle?)", path);
		goto out;
	}
	for (size_t k = 0; k < UTIL_ARRAY_SIZE(required); k++) {
		if (util_json_string(b->doc, required[k]) == NULL) {
			snprintf(err, errlen, "%s: field '%s' is missing", path, required[k]);
			goto out;
		}
	}
	if (util_json_string(b->doc, "kind") != NULL && strcmp(util_json_string(b->doc, "kind"), "join") !=
	    0 && strcmp(util_json_string(b->doc, "kind"), "renewal") != 0) {
		snprintf(err, errlen, "%s: kind must be join or renewal", path);
		goto out;
	}
	b->space = util_json_string(b->doc, "space");
	b->token = util_json_string(b->doc, "directory");
	r = 0;
out:
	free(text);
	return r;
}

/* The certificate verifies against the CA for both of its uses. */
static int
join_verify_cert(X509 *cert, X509 *ca, X509_CRL *crl, char *err, size_t errlen)
{
	static const int purposes[] = { X509_PURPOSE_SSL_CLIENT, X509_PURPOSE_SSL_SERVER };
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = NULL;
	int r = -EINVAL;

	if (store == NULL || X509_STORE_add_cert(store, ca) != 1) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < UTIL_ARRAY_SIZE(purposes); k++) {
		X509_STORE_CTX_free(ctx);
		ctx = X509_STORE_CTX_new();
		if (ctx == NULL || X509_STORE_CTX_init(ctx, store, cert, NULL) != 1) {
			r = -ENOMEM;
			goto out;
		}
		X509_STORE_CTX_set_purpose(ctx, purposes[k]);
		if (X509_verify_cert(ctx) != 1) {
			snprintf(err, errlen, "the bundle's certificate does not verify "
			    "against the bundle's CA: %s", X509_verify_cert_error_string(
			    X509_STORE_CTX_get_error(ctx)));
			goto out;
		}
	}
	if (crl != NULL) {
		X509_REVOKED *rev = NULL;

		if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) != 1) {
			snprintf(err, errlen, "the bundle's CRL is not signed by its CA");
			goto out;
		}
		if (X509_CRL_get0_by_cert(crl, &rev, cert) == 1) {
			snprintf(err, errlen, "the bundle's certificate is revoked in its own "
			    "CRL");
			goto out;
		}
	}
	r = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return r;
}

/* Adds the keys a verified directory announces to a trust set. */
static void
join_trust_announced(const struct directory *dir, struct directory_trust *trust,
    size_t *ntrust, size_t max)
{
	for (size_t k = 0; k < directory_coordinator_key_count(dir); k++) {
		const struct directory_trust *t = directory_coordinator_key(dir, k);
		bool known = false;

		for (size_t j = 0; j < *ntrust; j++)
			known = known || memcmp(trust[j].pk, t->pk, 32) == 0;
		if (!known && *ntrust < max) {
			memcpy(trust[*ntrust].pk, t->pk, 32);
			trust[(*ntrust)++].kid = NULL;
		}
	}
}

/*
 * Whether this node may take the bundle's coordinator key: the key it has
 * already, or a key announced by a directory that a key it trusts signed
 * (a roll-over): the installed directory, then the bundle's announcements
 * in order, so that several roll-overs are followed one after the other.
 * Announcements are old by nature: their expiry does not matter here, only
 * who signed them.
 */
static int
join_coordinator_trusted(const struct config *cfg, const struct join_bundle *b,
    char *err, size_t errlen)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(b->doc,
	    "coordinator_announcements"), *t;
	struct directory_trust trust[64];
	struct directory *dir = NULL;
	char *token = NULL;
	size_t len = 0, ntrust = 0;
	int r;

	if (access(cfg->directory_key, F_OK) < 0)
		return 0;	/* the first join: the bundle brings the key */
	memset(trust, 0, sizeof(trust));
	r = key_load_public(cfg->directory_key, trust[0].pk);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the installed coordinator key %s: %s",
		    cfg->directory_key, strerror(-r));
		return r;
	}
	ntrust = 1;
	if (util_read_file(cfg->directory_file, DIRECTORY_MAX_TOKEN, &token, &len) == 0 &&
	    directory_load_trusted(token, len, trust, ntrust, 0, &dir, NULL) == 0)
		join_trust_announced(dir, trust, &ntrust, UTIL_ARRAY_SIZE(trust));
	directory_free(dir);
	dir = NULL;
	free(token);
	cJSON_ArrayForEach(t, list) {
		if (directory_load_trusted(t->valuestring, strlen(t->valuestring), trust,
		    ntrust, 0, &dir, NULL) == 0)
			join_trust_announced(dir, trust, &ntrust, UTIL_ARRAY_SIZE(trust));
		directory_free(dir);
		dir = NULL;
	}
	for (size_t k = 0; k < ntrust; k++)
		if (sodium_memcmp(trust[k].pk, b->coordinator_pk, 32) == 0)
			return 0;
	snprintf(err, errlen, "the bundle's coordinator key is not the one installed "
	    "(%s), and no directory signed with it announces the new one: a bundle "
	    "from another coordinator?", cfg->directory_key);
	return -EKEYREJECTED;
}

/* The installed directory's serial (0 when there is none that verifies). */
static int64_t
join_installed_serial(const struct config *cfg, const uint8_t pk[32])
{
	char *token = NULL;
	size_t len = 0;
	struct directory *dir = NULL;
	uint8_t have[32];
	int64_t serial = 0;

	if (util_read_file(cfg->directory_file, DIRECTORY_MAX_TOKEN, &token, &len) < 0)
		return 0;
	if (directory_load(token, len, pk, util_now(), &dir, NULL) == 0 ||
	    (key_load_public(cfg->directory_key, have) == 0 &&
	    directory_load(token, len, have, util_now(), &dir, NULL) == 0))
		serial = directory_serial(dir);
	directory_free(dir);
	free(token);
	return serial;
}

/* Every check of a bundle against this node; nothing is written. */
static int
join_bundle_check(const struct config *cfg, const char *key_path, struct join_bundle *b,
    char *err, size_t errlen)
{
	const struct directory_space *sp;
	const char *why = NULL, *pem;
	EVP_PKEY *key = NULL;
	char space[64];
	uint8_t pin[32], pass_pk[32], listed[32];
	int64_t installed;
	int r = -EINVAL;

	if (strcmp(b->space, cfg->space_id) != 0) {
		snprintf(err, errlen, "this bundle is for space '%s', and this node is space "
		    "'%s' (%s)", b->space, cfg->space_id, cfg->path);
		return -EINVAL;
	}
	b->cert = join_pem_cert(util_json_string(b->doc, "certificate"));
	b->ca = join_pem_cert(util_json_string(b->doc, "ca"));
	if (b->cert == NULL || b->ca == NULL) {
		snprintf(err, errlen, "the bundle's %s is not a PEM certificate",
		    b->cert == NULL ? "certificate" : "CA");
		return -EINVAL;
	}
	r = tls_cert_space_id(b->cert, space, sizeof(space));
	if (r < 0 || strcmp(space, cfg->space_id) != 0) {
		snprintf(err, errlen, "the bundle's certificate is for %s%s%s, not for space "
		    "'%s'", r < 0 ? "no space" : "space '", r < 0 ? "" : space,
		    r < 0 ? "" : "'", cfg->space_id);
		return -EINVAL;
	}
	if (X509_check_ca(b->ca) < 1) {
		snprintf(err, errlen, "the bundle's CA certificate is not a CA");
		return -EINVAL;
	}
	pem = util_json_string(b->doc, "crl");
	if (pem != NULL && (b->crl = join_pem_crl(pem)) == NULL) {
		snprintf(err, errlen, "the bundle's crl is not a PEM CRL");
		return -EINVAL;
	}
	r = join_verify_cert(b->cert, b->ca, b->crl, err, errlen);
	if (r < 0)
		return r;
	if (access(cfg->fed_ca, F_OK) == 0) {
		FILE *fp = fopen(cfg->fed_ca, "r");
		X509 *have = fp != NULL ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
		bool same = have != NULL && X509_cmp(have, b->ca) == 0;

		if (fp != NULL)
			fclose(fp);
		X509_free(have);
		ERR_clear_error();
		if (!same) {
			snprintf(err, errlen, "the bundle's CA is not the CA installed at %s: a "
			    "bundle from another federation?", cfg->fed_ca);
			return -EINVAL;
		}
	}

	/* The certificate must be for the key this node holds (or will hold). */
	key = join_read_private_key(key_path);
	if (key == NULL) {
		snprintf(err, errlen, "cannot read the node key %s", key_path);
		return -EINVAL;
	}
	r = EVP_PKEY_eq(X509_get0_pubkey(b->cert), key) == 1 ? 0 : -EINVAL;
	EVP_PKEY_free(key);
	ERR_clear_error();
	if (r < 0) {
		snprintf(err, errlen, "the bundle's certificate is not for this node's key "
		    "%s%s", key_path, util_json_string(b->doc, "kind") != NULL &&
		    strcmp(util_json_string(b->doc, "kind"), "renewal") == 0 ?
		    " (for a renewal with a new key, give it with --key)" : "");
		return r;
	}

	if (join_pem_ed25519(util_json_string(b->doc, "coordinator_key"), b->coordinator_pk) < 0) {
		snprintf(err, errlen, "the bundle's coordinator_key is not an Ed25519 public "
		    "key in PEM");
		return -EINVAL;
	}
	r = directory_load(b->token, strlen(b->token), b->coordinator_pk, util_now(),
	    &b->dir, &why);
	if (r < 0) {
		snprintf(err, errlen, "the bundle's directory is refused: %s",
		    why != NULL ? why : strerror(-r));
		return r;
	}
	if (util_json_string(b->doc, "federation") != NULL &&
	    strcmp(util_json_string(b->doc, "federation"), directory_federation(b->dir)) != 0) {
		snprintf(err, errlen, "the bundle names federation '%s' but its directory "
		    "is federation '%s'", util_json_string(b->doc, "federation"),
		    directory_federation(b->dir));
		return -EINVAL;
	}
	sp = directory_find_space(b->dir, cfg->space_id);
	if (sp == NULL) {
		snprintf(err, errlen, "the bundle's directory (serial %lld) does not list "
		    "space '%s'", (long long)directory_serial(b->dir), cfg->space_id);
		return -EINVAL;
	}
	if (tls_cert_spki_sha256(b->cert, pin) < 0 || !directory_space_pinned(sp, pin)) {
		snprintf(err, errlen, "the bundle's directory does not pin the bundle's "
		    "certificate for space '%s'", cfg->space_id);
		return -EINVAL;
	}
	r = key_load_public(cfg->pass_key, pass_pk);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the pass-signing key %s: %s",
		    cfg->pass_key, strerror(-r));
		return r;
	}
	if (directory_find_key(b->dir, cfg->space_id, cfg->pass_kid, listed) < 0 ||
	    sodium_memcmp(listed, pass_pk, 32) != 0) {
		snprintf(err, errlen, "the bundle's directory does not list this node's pass "
		    "key %s (%s) for space '%s'", cfg->pass_kid, cfg->pass_key,
		    cfg->space_id);
		return -EINVAL;
	}
	r = join_coordinator_trusted(cfg, b, err, errlen);
	if (r < 0)
		return r;
	installed = join_installed_serial(cfg, b->coordinator_pk);
	if (installed > directory_serial(b->dir)) {
		snprintf(err, errlen, "the installed directory (serial %lld) is newer than the "
		    "bundle's (serial %lld): not going back", (long long)installed,
		    (long long)directory_serial(b->dir));
		return -EINVAL;
	}
	return 0;
}

/* Writes one installed file; err names it on failure. */
static int
join_install(const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
	int r;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = util_write_file(path, text, strlen(text), mode);
	if (r < 0)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-r));
	return r;
}

int
join_cmd_join(int argc, char **argv)
{
	const char *key_opt = NULL;
	const struct cli_opt opts[] = {
		{ "key", true, &key_opt, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct join_bundle b;
	struct config *cfg;
	char err[1024], *ca_dir = NULL, *crl_path = NULL, *text = NULL, *newkey = NULL;
	char not_after[64] = "?";
	size_t newkey_len = 0;
	int i = cli_parse_options(argc, argv, opts), r, ret = 1;

	if (argc - i != 1)
		cli_die_usage("join takes the bundle the coordinator sent (BUNDLE)");
	memset(&b, 0, sizeof(b));
	cfg = cli_load_config();
	if (join_bundle_read(argv[i], &b, err, sizeof(err)) < 0 ||
	    join_bundle_check(cfg, key_opt != NULL ? key_opt : cfg->fed_key, &b, err,
	    sizeof(err)) < 0) {
		cli_fail("%s refused: %s", argv[i], err);
		goto out;
	}
	if (key_opt != NULL) {
		r = util_read_file(key_opt, JOIN_MAX_KEY_FILE, &newkey, &newkey_len);
		if (r < 0) {
			cli_fail("cannot read %s: %s", key_opt, strerror(-r));
			goto out;
		}
	}

	/* The certificate and its key go last but one, the directory last. */
	ca_dir = join_dirname(cfg->fed_ca);
	crl_path = ca_dir != NULL ? util_path_join(ca_dir, "crl.pem") : NULL;
	if (crl_path == NULL) {
		cli_fail("out of memory");
		goto out;
	}
	text = join_cert_text(b.ca);
	r = join_install(cfg->fed_ca, text, 0644, err, sizeof(err));
	free(text);
	text = NULL;
	if (r == 0 && b.crl != NULL) {
		text = join_crl_text(b.crl);
		r = join_install(crl_path, text, 0644, err, sizeof(err));
		free(text);
		text = NULL;
	}
	if (r == 0) {
		r = key_write_public(cfg->directory_key, b.coordinator_pk);
		if (r < 0)
			snprintf(err, sizeof(err), "cannot write %s: %s", cfg->directory_key,
			    strerror(-r));
	}
	if (r == 0 && newkey != NULL)
		r = join_install(cfg->fed_key, newkey, 0600, err, sizeof(err));
	if (r == 0) {
		text = join_cert_text(b.cert);
		r = join_install(cfg->fed_cert, text, 0644, err, sizeof(err));
		free(text);
		text = NULL;
	}
	if (r == 0) {
		text = util_aprintf("%s\n", b.token);
		r = join_install(cfg->directory_file, text, 0644, err, sizeof(err));
		free(text);
		text = NULL;
	}
	if (r < 0) {
		cli_fail("%s", err);
		goto out;
	}
	{
		BIO *bio = BIO_new(BIO_s_mem());
		char *data;
		long len;

		if (bio != NULL && ASN1_TIME_print(bio, X509_get0_notAfter(b.cert)) == 1 &&
		    (len = BIO_get_mem_data(bio, &data)) > 0)
			snprintf(not_after, sizeof(not_after), "%.*s", (int)len, data);
		BIO_free(bio);
	}
	if (cli_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", cfg->space_id);
		cJSON_AddStringToObject(o, "federation", directory_federation(b.dir));
		cJSON_AddNumberToObject(o, "serial", (double)directory_serial(b.dir));
		cJSON_AddStringToObject(o, "certificate", cfg->fed_cert);
		cJSON_AddStringToObject(o, "not_after", not_after);
		cJSON_AddStringToObject(o, "ca", cfg->fed_ca);
		cJSON_AddStringToObject(o, "directory", cfg->directory_file);
		cJSON_AddStringToObject(o, "coordinator_key", cfg->directory_key);
		if (b.crl != NULL)
			cJSON_AddStringToObject(o, "crl", crl_path);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("space %s %s federation %s\n"
		    "  certificate      %s (valid until %s)\n"
		    "  CA               %s\n"
		    "  coordinator key  %s\n"
		    "  directory        %s (serial %lld, %zu space%s)\n"
		    "check with 'passerelle -c %s config check', then start or restart the "
		    "node ('passerelle -c %s serve')\n", cfg->space_id,
		    key_opt != NULL || (util_json_string(b.doc, "kind") != NULL &&
		    strcmp(util_json_string(b.doc, "kind"), "renewal") == 0) ?
		    "renewed its certificate in" : "joined", directory_federation(b.dir),
		    cfg->fed_cert, not_after, cfg->fed_ca, cfg->directory_key,
		    cfg->directory_file, (long long)directory_serial(b.dir),
		    directory_count(b.dir), directory_count(b.dir) == 1 ? "" : "s", cfg->path,
		    cfg->path);
		if (key_opt != NULL)
			printf("the new node key is installed as %s; %s may be deleted\n",
			    cfg->fed_key, key_opt);
	}
	ret = 0;
out:
	if (newkey != NULL) {
		sodium_memzero(newkey, newkey_len);
		free(newkey);
	}
	free(ca_dir);
	free(crl_path);
	join_bundle_clear(&b);
	config_free(cfg);
	return ret;
}

/* ---------------------------------------------------------------------
 * passerelle pass new-key
 */

int
join_cmd_new_pass_key(int argc, char **argv)
{
	const char *kid_opt = NULL, *out = NULL, *key_opt = NULL;
	const struct cli_opt opts[] = {
		{ "kid", true, &kid_opt, NULL },
		{ "output", true, &out, NULL },
		{ "key", true, &key_opt, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct config *cfg;
	cJSON *req = NULL;
	char kid[80], x[64], *dir = NULL, *key = NULL, *pub = NULL, *text = NULL;
	uint8_t pk[32];
	int i = cli_parse_options(argc, argv, opts), r, ret = 1;
	size_t len;

	if (argc - i != 0)
		cli_die_usage("pass new-key takes no arguments");
	cfg = cli_load_config();
	if (kid_opt != NULL)
		util_strlcpy(kid, kid_opt, sizeof(kid));
	else
		federation_next_kid(cfg->pass_kid, kid, sizeof(kid));
	if (!federation_space_kid_ok(kid) || strcmp(kid, cfg->pass_kid) == 0) {
		config_free(cfg);
		cli_die_usage("the new key's kid must match [A-Za-z0-9._-]{1,64} and differ "
		    "from the current one, not '%s'", kid);
	}
	if (key_opt != NULL) {
		key = strdup(key_opt);
	} else {
		/* Next to the current key: pass.key, then pass-2.key, pass-3.key... */
		const char *suffix = kid;
		size_t idlen = strlen(cfg->space_id);

		if (strncmp(kid, cfg->space_id, idlen) == 0 && kid[idlen] == '-')
			suffix = kid + idlen + 1;
		dir = join_dirname(cfg->pass_key);
		key = dir != NULL ? util_aprintf("%s/pass-%s.key", dir, suffix) : NULL;
	}
	if (key == NULL) {
		cli_fail("out of memory");
		goto out;
	}
	len = strlen(key);
	pub = len > 4 && strcmp(key + len - 4, ".key") == 0 ?
	    util_aprintf("%.*s.pub", (int)(len - 4), key) : util_aprintf("%s.pub", key);
	if (pub == NULL) {
		cli_fail("out of memory");
		goto out;
	}
	if (access(key, F_OK) == 0) {
		cli_fail("%s exists: a rotation is under way already? (choose another with "
		    "--kid or --key)", key);
		goto out;
	}
	r = key_generate_pair(key, pub, pk);
	if (r < 0) {
		cli_fail("cannot make %s: %s", key, strerror(-r));
		goto out;
	}
	b64url_encode(pk, 32, x);
	req = cJSON_CreateObject();
	if (req == NULL || cJSON_AddNumberToObject(req, "v", 1) == NULL ||
	    cJSON_AddStringToObject(req, "space", cfg->space_id) == NULL ||
	    cJSON_AddStringToObject(req, "kid", kid) == NULL ||
	    cJSON_AddStringToObject(req, "x", x) == NULL) {
		cli_fail("out of memory");
		goto out;
	}
	if (out != NULL) {
		r = join_write_json(out, req, 0644);
		if (r < 0) {
			cli_fail("cannot write %s: %s", out, strerror(-r));
			goto out;
		}
	} else {
		text = cJSON_Print(req);
		if (text != NULL)
			puts(text);
	}
	if (cli_json && out != NULL) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "space", cfg->space_id);
		cJSON_AddStringToObject(o, "kid", kid);
		cJSON_AddStringToObject(o, "key", key);
		cJSON_AddStringToObject(o, "public_key", pub);
		cJSON_AddStringToObject(o, "request", out);
		cli_print_json(o);
		cJSON_Delete(o);
	} else if (!cli_json) {
		/* With the request on stdout, the advice goes to stderr. */
		fprintf(out != NULL ? stdout : stderr,
		    "new pass-signing key %s (private, mode 0600), kid %s\n"
		    "1. send the key request%s%s to the coordinator (passerelle federation "
		    "add-key);\n"
		    "2. once this node holds the directory that lists %s, set in %s:\n"
		    "     [pass]\n     key = %s\n     kid = %s\n"
		    "   and reload the node (SIGHUP) or restart it.  Passes signed with %s "
		    "stay valid until the retirement date the coordinator gives it.\n", key,
		    kid,
		    out != NULL ? " " : " (above)", out != NULL ? out : "", kid, cfg->path,
		    key, kid, cfg->pass_kid);
	}
	ret = 0;
out:
	cJSON_free(text);
	cJSON_Delete(req);
	free(dir);
	free(key);
	free(pub);
	config_free(cfg);
	return ret;
}
