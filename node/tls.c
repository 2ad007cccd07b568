/*
 * tls.c - OpenSSL contexts for the federation face, and peer identities.
 *
 * The federation face admits only nodes that hold a certificate from the
 * federation CA: the CA file given in the configuration is the context's
 * only trust anchor (the system's store is never loaded), a client
 * certificate is required, and it must be fit for clientAuth.  Who the
 * caller is comes from its certificate's subjectAltName URI
 * "urn:passerelle:space:ID" and from nothing else.
 *
 * This file does not decide whether a space is still a member of the
 * federation: that is the signed directory's job (directory.c), checked by
 * the caller once the handshake has named the space.  Certificates and CRLs
 * are made with certs/pki.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

/*
 * The session id context: a session resumed on the federation face must
 * have been made there.  Without one, OpenSSL refuses to resume a session
 * that carries a verified client certificate and fails the handshake.
 */
static const unsigned char tls_session_id_context[] = "passerelle-federation";

/*
 * TLS 1.2 suites: forward secrecy and AEAD only.  TLS 1.3 suites are
 * OpenSSL's defaults, which all qualify.
 */
#define TLS_CIPHERS_12                                                    \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"    \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"      \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"

/* The longest space id (the same rule as certs/pki.sh). */
#define TLS_SPACE_ID_MAX 63

/*
 * Writes "what path: reason" into err, the reason being the first error in
 * OpenSSL's queue (the cause; the later ones only say who noticed), and
 * empties the queue so that the next call starts clean.
 */
static void
tls_set_err(char *err, size_t errlen, const char *what, const char *path)
{
	unsigned long e;
	const char *data = NULL, *reason;
	char buf[256] = "";
	int flags = 0;

	e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
	if (data == NULL || !(flags & ERR_TXT_STRING))
		data = "";
	if (e == 0) {
		reason = "unknown error";
	} else if (ERR_SYSTEM_ERROR(e)) {
		/* errno; the data ("calling fopen(...)") repeats the path. */
		reason = strerror(ERR_GET_REASON(e));
		data = "";
	} else {
		reason = ERR_reason_error_string(e);
		if (reason == NULL) {
			ERR_error_string_n(e, buf, sizeof(buf));
			reason = buf;
		}
	}
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s%s%s: %s%s%s%s", what,
		    path != NULL ? " " : "", path != NULL ? path : "", reason,
		    data[0] != '\0' ? " (" : "", data, data[0] != '\0' ? ")" : "");
	ERR_clear_error();
}

/*
 * Our own certificate must chain to the federation CA, or every peer would
 * refuse us; saying so at start-up beats a stream of failed handshakes.
 */
static int
tls_check_own_cert(SSL_CTX *ctx, const char *cert_file, const char *ca_file,
    char *err, size_t errlen)
{
	X509_STORE_CTX *sctx = NULL;
	X509 *cert;
	STACK_OF(X509) *chain = NULL;
	int r = -EINVAL, v;

	cert = SSL_CTX_get0_certificate(ctx);
	sctx = X509_STORE_CTX_new();
	if (cert == NULL || sctx == NULL) {
		tls_set_err(err, errlen, "checking certificate", cert_file);
		r = -ENOMEM;
		goto out;
	}
	if (SSL_CTX_get0_chain_certs(ctx, &chain) != 1 ||
	    X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), cert,
		chain) != 1 ||
	    X509_STORE_CTX_set_purpose(sctx, X509_PURPOSE_SSL_SERVER) != 1) {
		tls_set_err(err, errlen, "checking certificate", cert_file);
		goto out;
	}
	if (X509_verify_cert(sctx) != 1) {
		v = X509_STORE_CTX_get_error(sctx);
		snprintf(err, errlen,
		    "certificate %s does not verify against CA file %s: %s",
		    cert_file, ca_file, X509_verify_cert_error_string(v));
		ERR_clear_error();
		goto out;
	}
	r = 0;
out:
	X509_STORE_CTX_free(sctx);
	return r;
}

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file,
    const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = NULL, *ret = NULL;
	STACK_OF(X509_NAME) *ca_names = NULL;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_set_err(err, errlen, "creating the TLS context", NULL);
		goto out;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
		tls_set_err(err, errlen, "setting protocols and ciphers", NULL);
		goto out;
	}
	/*
	 * Renegotiation could swap the client certificate after the request
	 * has been attributed to a space; nothing here needs it.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);

	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_set_err(err, errlen, "loading certificate", cert_file);
		goto out;
	}
	/* This call already compares the key with the certificate. */
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char what[512];

		snprintf(what, sizeof(what), "certificate %s and private key",
		    cert_file);
		tls_set_err(err, errlen, what, key_file);
		goto out;
	}

	/* The federation CA and nothing else: no system store. */
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		tls_set_err(err, errlen, "loading CA file", ca_file);
		goto out;
	}
	ca_names = SSL_load_client_CA_file(ca_file);
	if (ca_names == NULL) {
		tls_set_err(err, errlen, "reading CA names from", ca_file);
		goto out;
	}
	SSL_CTX_set_client_CA_list(ctx, ca_names);
	ca_names = NULL; /* owned by ctx */

	if (tls_check_own_cert(ctx, cert_file, ca_file, err, errlen) < 0)
		goto out;

	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
	    NULL);
	/* Node certificate, then the CA: nothing longer is legitimate. */
	SSL_CTX_set_verify_depth(ctx, 2);
	if (X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx),
		X509_PURPOSE_SSL_CLIENT) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, tls_session_id_context,
		sizeof(tls_session_id_context) - 1) != 1) {
		tls_set_err(err, errlen, "setting peer verification", NULL);
		goto out;
	}

	ret = ctx;
	ctx = NULL;
out:
	sk_X509_NAME_pop_free(ca_names, X509_NAME_free);
	SSL_CTX_free(ctx);
	return ret;
}

int
tls_ctx_load_crl(SSL_CTX *ctx, const char *crl_file, char *err,
    size_t errlen)
{
	X509_STORE *store;
	X509_LOOKUP *lookup;

	ERR_clear_error();
	store = SSL_CTX_get_cert_store(ctx);
	lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
	if (lookup == NULL) {
		tls_set_err(err, errlen, "loading CRL", crl_file);
		return -ENOMEM;
	}
	/* Returns the number of CRLs loaded: an empty file is an error too. */
	if (X509_load_crl_file(lookup, crl_file, X509_FILETYPE_PEM) <= 0) {
		tls_set_err(err, errlen, "loading CRL", crl_file);
		return -EINVAL;
	}
	if (X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx),
		X509_V_FLAG_CRL_CHECK) != 1) {
		tls_set_err(err, errlen, "enabling CRL checks for", crl_file);
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Identities */

static int
tls_space_id_valid(const unsigned char *id, size_t len)
{
	size_t i;

	if (len == 0 || len > TLS_SPACE_ID_MAX || id[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		if (!((id[i] >= 'a' && id[i] <= 'z') ||
			(id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
			return 0;
	}
	return 1;
}

int
tls_cert_space_id(X509 *cert, char *out, size_t outlen)
{
	static const size_t prefix_len = sizeof(TLS_SPACE_URI_PREFIX) - 1;
	GENERAL_NAMES *names;
	const unsigned char *id = NULL;
	size_t id_len = 0;
	int crit = 0, found = 0, i, r;

	names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (names == NULL)
		/* -1: no subjectAltName; otherwise duplicated or malformed. */
		return crit == -1 ? -ENOENT : -EINVAL;

	for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *uri;
		int len;

		if (gn->type != GEN_URI)
			continue;
		uri = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		if (len < 0 || (size_t)len < prefix_len ||
		    memcmp(uri, TLS_SPACE_URI_PREFIX, prefix_len) != 0)
			continue;
		/* Two names would make the caller's identity ambiguous. */
		if (++found > 1) {
			r = -EINVAL;
			goto out;
		}
		id = uri + prefix_len;
		id_len = (size_t)len - prefix_len;
	}
	if (found == 0) {
		r = -ENOENT;
		goto out;
	}
	if (!tls_space_id_valid(id, id_len)) {
		r = -EINVAL;
		goto out;
	}
	if (id_len >= outlen) {
		r = -ENOSPC;
		goto out;
	}
	memcpy(out, id, id_len);
	out[id_len] = '\0';
	r = 0;
out:
	GENERAL_NAMES_free(names);
	return r;
}

static int
tls_read_cert_file(const char *cert_file, X509 **ret)
{
	FILE *f;
	X509 *cert;

	f = fopen(cert_file, "r");
	if (f == NULL)
		return -errno;
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL) {
		ERR_clear_error();
		return -EINVAL;
	}
	*ret = cert;
	return 0;
}

int
tls_file_space_id(const char *cert_file, char *out, size_t outlen)
{
	X509 *cert = NULL;
	int r;

	r = tls_read_cert_file(cert_file, &cert);
	if (r < 0)
		return r;
	r = tls_cert_space_id(cert, out, outlen);
	X509_free(cert);
	return r;
}

int
tls_cert_spki_sha256(X509 *cert, uint8_t out[32])
{
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len, r = -EINVAL;

	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (len <= 0)
		return -EINVAL;
	if (EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen == 32)
		r = 0;
	OPENSSL_free(der);
	return r;
}

int
tls_file_spki_sha256(const char *cert_file, uint8_t out[32])
{
	FILE *f;
	X509 *cert;
	int r;

	f = fopen(cert_file, "r");
	if (f == NULL)
		return -errno;
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL)
		return -EINVAL;
	r = tls_cert_spki_sha256(cert, out);
	X509_free(cert);
	return r;
}
