/*
 * federation_pki.c - the federation CA, through certs/pki.sh: runs the
 * script, issues node certificates, reads their serials, revokes them in
 * the CA's database and rewrites the CRL.
 *
 * The CA's own files are pki.sh's business; this file runs it and never
 * writes them itself.  It reads ca/index.txt only to know whether a
 * certificate is revoked already.  Deciding what to issue or revoke is the
 * commands' side (federation.c, federation_space.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "federation.h"
#include "federation_state.h"
#include "util.h"

#ifndef PASSERELLE_SOURCE_DIR
#define PASSERELLE_SOURCE_DIR "."
#endif
#ifndef PASSERELLE_DATADIR
#define PASSERELLE_DATADIR "/usr/local/share"
#endif

#define FEDERATION_PKI_MAX_INDEX (64 * 1024 * 1024)	/* the CA's index.txt */
#define FEDERATION_PKI_MAX_ARGS 32
/* The CRL outlives the directory that carries it by this much. */
#define FEDERATION_PKI_CRL_MARGIN_DAYS 7

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
federation_pki_one_line(const char *in, char *out, size_t outlen)
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
	const char *argv[FEDERATION_PKI_MAX_ARGS + 3];
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
		if (n >= FEDERATION_PKI_MAX_ARGS) {
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
	federation_pki_one_line(buf, err, errlen);
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
 * Certificates and revocation
 */

static int
federation_pki_read_cert(const char *path, X509 **ret)
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
int
federation_pki_cert_serial(const char *path, char *out, size_t outlen)
{
	X509 *cert = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int r;

	r = federation_pki_read_cert(path, &cert);
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
federation_pki_serial_eq(const char *a, const char *b)
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
federation_pki_cert_revoked(const struct federation *f, const char *cert_rel,
    bool *ret)
{
	char *cert = federation_path(f, cert_rel), *index = federation_path(f,
	    "ca/index.txt"), *text = NULL, serial[128], *line, *save = NULL;
	int r;

	*ret = false;
	r = federation_pki_cert_serial(cert, serial, sizeof(serial));
	if (r < 0)
		goto out;
	r = util_read_file(index, FEDERATION_PKI_MAX_INDEX, &text, NULL);
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
		    federation_pki_serial_eq(fields[3], serial))
			*ret = true;
	}
out:
	free(text);
	free(cert);
	free(index);
	return r;
}

/* Revokes one of the federation's certificates unless it already is. */
int
federation_pki_revoke(const struct federation *f, const char *cert_rel,
    const char *reason, bool *ret_revoked, char *err, size_t errlen)
{
	char *ca = federation_path(f, "ca"), *cert = federation_path(f, cert_rel);
	const char *args[] = { "revoke", ca, cert, "--reason", reason, NULL };
	bool already = false;
	int r;

	*ret_revoked = false;
	r = federation_pki_cert_revoked(f, cert_rel, &already);
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
int
federation_pki_refresh_crl(const struct federation *f, char *err, size_t errlen)
{
	char *ca = federation_path(f, "ca"), days[32];
	const char *args[] = { "crl", ca, "--days", days, NULL };
	int64_t valid = 30;
	int r;

	federation_json_int(f->desc, "valid_days", &valid);
	snprintf(days, sizeof(days), "%lld",
	    (long long)(valid + FEDERATION_PKI_CRL_MARGIN_DAYS));
	r = federation_pki_run(args, err, errlen);
	free(ca);
	return r;
}

/* ---------------------------------------------------------------------
 * Issuing
 */

/* Writes a request's CSR (as OpenSSL re-encodes it) for pki.sh to read. */
int
federation_pki_write_csr(const struct federation *f, X509_REQ *req, const char *rel,
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
int
federation_pki_issue(const struct federation *f, const char *csr_path,
    const char *cert_rel, const char *id, const char *dns, const cJSON *ips, char *err,
    size_t errlen)
{
	char *ca = federation_path(f, "ca"), *crt = federation_path(f, cert_rel),
	    *spaces = federation_path(f, "spaces"), why[1024];
	const char *args[FEDERATION_PKI_MAX_ARGS];
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
		if (cJSON_IsString(ip) && n < FEDERATION_PKI_MAX_ARGS - 2)
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
