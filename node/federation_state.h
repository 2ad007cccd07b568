/*
 * federation_state.h - what federation.c, federation_pki.c and
 * federation_space.c share: the coordinator's folder as a command holds it
 * (locked, federation.json in memory), the helpers every command uses to
 * read and change federation.json, and the steps of a change (sign the
 * next directory, save, write a bundle).
 *
 * Private to the coordinator's files: other modules include federation.h.
 */
#ifndef PASSERELLE_FEDERATION_STATE_H
#define PASSERELLE_FEDERATION_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/x509.h>

#define FEDERATION_MAX_KEYS 16		/* per space, as directory.c allows */

/* The coordinator's folder, locked, with federation.json read. */
struct federation {
	char *dir;
	int lock_fd;
	cJSON *desc;		/* federation.json */
};

/* federation.c */

void federation_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A string member, or NULL. */
/* An integral number member: 0, or -EINVAL. */
int federation_json_int(const cJSON *obj, const char *name, int64_t *ret);
/* Replaces (or adds) a member; item is owned by obj afterwards. */
int federation_json_set(cJSON *obj, const char *name, cJSON *item);
/* True when a member is absent or JSON null: an optional field not given. */
bool federation_json_absent(const cJSON *obj, const char *name);
void federation_now_text(int64_t t, char out[32]);
/* Reads a JSON object from a file of at most max bytes, strictly. */
int federation_read_json(const char *path, size_t max, const char *what,
    cJSON **ret, char *err, size_t errlen);

/* --federation DIR, or $PASSERELLE_FEDERATION; exits when neither is set. */
const char *federation_dir_option(const char *opt);
/* A path inside the folder (exits when out of memory). */
char *federation_path(const struct federation *f, const char *rel);
/* Locks the folder and reads federation.json; federation_close() after. */
int federation_open(struct federation *f, const char *dir, char *err,
    size_t errlen);
void federation_close(struct federation *f);
/* The recorded public key of a signing entry or pass key ("x"). */
int federation_entry_pk(const cJSON *entry, uint8_t pk[32]);
cJSON *federation_spaces(const struct federation *f);
cJSON *federation_find_space(const struct federation *f, const char *id,
    int *ret_index);

/*
 * Signs the next directory (in memory only), then saves federation.json
 * and the directory; see federation.c for the order and why.
 */
int federation_sign(struct federation *f, int64_t now, char **ret_token,
    int64_t *ret_serial, char *err, size_t errlen);
int federation_save(struct federation *f, const char *token, int64_t serial,
    bool *ret_saved, char *err, size_t errlen);
/* A join or renewal bundle for `passerelle join`. */
int federation_write_bundle(const struct federation *f, const char *id,
    const char *kind, const char *cert_rel, const char *token, const char *out,
    char *err, size_t errlen);

/* federation_pki.c */

/* A certificate's serial in upper-case hex without leading zeros. */
int federation_pki_cert_serial(const char *path, char *out, size_t outlen);
/* Revokes one of the federation's certificates unless it already is. */
int federation_pki_revoke(const struct federation *f, const char *cert_rel,
    const char *reason, bool *ret_revoked, char *err, size_t errlen);
/* Rewrites ca/crl.pem so that it outlives the directory that carries it. */
int federation_pki_refresh_crl(const struct federation *f, char *err,
    size_t errlen);
/* Writes a request's CSR (as OpenSSL re-encodes it) for pki.sh to read. */
int federation_pki_write_csr(const struct federation *f, X509_REQ *req,
    const char *rel, char **ret_path, char *err, size_t errlen);
/* Issues a node certificate with pki.sh sign, names from the space's record. */
int federation_pki_issue(const struct federation *f, const char *csr_path,
    const char *cert_rel, const char *id, const char *dns, const cJSON *ips,
    char *err, size_t errlen);

/* federation_space.c */

/* A space's certificate files, oldest first (a new array of strings). */
cJSON *federation_space_certs(const cJSON *space);
/* Sets a space's pins: "cert" for one file, "certs" for several. */
int federation_space_set_certs(cJSON *space, const cJSON *certs);

#endif
