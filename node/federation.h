/*
 * federation.h - the coordinator's commands: create a federation, admit,
 * remove and rotate spaces, roll the directory-signing key.
 *
 *   federation.c        the coordinator's folder and federation.json,
 *                       signing and publishing each directory, the bundles;
 *                       federation init, sign and roll-key.
 *   federation_space.c  what a join request, a key request and a CSR may
 *                       hold; federation admit, remove, add-key and renew.
 *   federation_pki.c    the federation CA through certs/pki.sh: issuing,
 *                       revoking, the CRL.
 *
 * The coordinator's state is a folder (see docs/coordinating.md): the CA
 * (certs/pki.sh), the directory-signing key kept apart from it, the
 * directory description (federation.json) and each published directory.
 * What the three files share about it is in federation_state.h.
 *
 * The checks of a join request and the runner of certs/pki.sh are shared
 * with join.c, so that `passerelle init` writes only what `federation
 * admit` accepts; so is the choice of the next key id.
 */
#ifndef PASSERELLE_FEDERATION_H
#define PASSERELLE_FEDERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/x509.h>

int federation_cmd_init(int argc, char **argv);
int federation_cmd_admit(int argc, char **argv);
int federation_cmd_remove(int argc, char **argv);
int federation_cmd_add_key(int argc, char **argv);
int federation_cmd_renew(int argc, char **argv);
int federation_cmd_roll_key(int argc, char **argv);
int federation_cmd_sign(int argc, char **argv);

/*
 * The kid after kid, for a new pass or directory-signing key:
 * "troquet-1" → "troquet-2"; a kid without a number gets "-2".
 */
void federation_next_kid(const char *kid, char *out, size_t outlen);

/*
 * Runs certs/pki.sh with args (NULL-terminated, without the script itself):
 * $PASSERELLE_PKI, else the source tree's copy, else the installed one.  No
 * shell parses anything: the arguments go to execv() as they are.  Returns
 * 0 when it exits 0; otherwise a negative code with its stderr, on one
 * line, in err.
 */
int federation_pki_run(const char *const *args, char *err, size_t errlen);

/* ^[a-z0-9][a-z0-9-]{0,62}$, as certs/pki.sh and node certificates want. */
bool federation_space_id_ok(const char *id);
/* A DNS name of letters, digits and hyphens in dot-separated labels. */
bool federation_space_dns_name_ok(const char *name);
/* An IPv4 or IPv6 address in its usual text form. */
bool federation_space_ip_ok(const char *ip);
/* A pass or coordinator key id: [A-Za-z0-9._-]{1,64}. */
bool federation_space_kid_ok(const char *kid);
/*
 * A federation URL: https://HOST[:PORT], no path, no user part.  *ret_port
 * (if not NULL) gets the port, 443 when none is written.
 */
int federation_space_url_check(const char *url, int *ret_port);

/*
 * Checks a join request's public details: its version, every field's type
 * and range, no unknown field; not the CSR nor the pass key.  Returns 0, or
 * -EINVAL with the reason in err.
 */
int federation_space_check_details(const cJSON *req, char *err, size_t errlen);

/*
 * Checks a whole join request (docs/coordinating.md): its version, every
 * field's type and range, no unknown field, the certificate request (PEM, its
 * self-signature, an EC P-256 or Ed25519 key, and that any names it asks
 * for agree with the request) and the pass-signing key (32 bytes, a valid
 * Ed25519 point).  Returns 0, or -EINVAL with the reason in err.
 * ret_csr and ret_pass_pk may be NULL.
 */
int federation_space_check_request(const cJSON *req, X509_REQ **ret_csr,
    uint8_t ret_pass_pk[32], char *err, size_t errlen);

#endif
