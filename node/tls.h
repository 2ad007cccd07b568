/*
 * tls.h - OpenSSL contexts for the federation face and peer identities.
 *
 * A node certificate names its space in a subjectAltName URI
 * "urn:passerelle:space:ID" beside its DNS name; the calling space is read
 * from there and from nowhere else.
 */
#ifndef PASSERELLE_TLS_H
#define PASSERELLE_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TLS_SPACE_URI_PREFIX "urn:passerelle:space:"

/*
 * Builds the federation face's server context: our certificate and key, the
 * federation CA as the only trust anchor, a client certificate required and
 * verified for the clientAuth purpose, TLS 1.2 at least, and a session id
 * context so that resumed sessions keep their client certificate.  On failure
 * returns NULL and writes OpenSSL's reason into err.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
    const char *ca_file, char *err, size_t errlen);

/*
 * Makes a context check its peers against the federation CA's revocation
 * list: every CRL in the PEM file crl_file joins the context's trust store
 * and X509_V_FLAG_CRL_CHECK is set, so a revoked certificate fails the
 * handshake, and so does every certificate once the CRL has expired
 * (fail closed).  A context takes one CRL for its life: to apply a newer
 * CRL, build a new context.  Returns 0, or a negative errno-style code with
 * the reason in err.
 */
int tls_ctx_load_crl(SSL_CTX *ctx, const char *crl_file, char *err,
    size_t errlen);

/*
 * The space id from the certificate's one subjectAltName URI
 * "urn:passerelle:space:ID" (other URIs are ignored).  Returns 0; -ENOENT
 * when there is no such URI; -EINVAL when there are several, or the id is
 * not [a-z0-9][a-z0-9-]{0,62}; -ENOSPC when out is too small.  out is
 * written only on success.
 */
int tls_cert_space_id(X509 *cert, char *out, size_t outlen);

/* SHA-256 of the certificate's DER SubjectPublicKeyInfo. */
int tls_cert_spki_sha256(X509 *cert, uint8_t out[32]);
int tls_file_spki_sha256(const char *cert_file, uint8_t out[32]);

/*
 * The space id named by a PEM certificate file (for config check, the
 * demo): as tls_cert_space_id, or -errno when the file cannot be read.
 */
int tls_file_space_id(const char *cert_file, char *out, size_t outlen);

#endif
