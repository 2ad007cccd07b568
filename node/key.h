/*
 * key.h - Ed25519 key files.
 *
 * Keys are stored the standard way, PKCS#8 (private) and SubjectPublicKeyInfo
 * (public) PEM, so that `openssl pkey` reads them; OpenSSL only parses and
 * writes the files, every signature goes through libsodium.  Private key files
 * are created with mode 0600 and never leave their machine.
 */
#ifndef PASSERELLE_KEY_H
#define PASSERELLE_KEY_H

#include <stdint.h>

#define KEY_PUBLIC_LEN 32
#define KEY_SECRET_LEN 64 /* libsodium's seed || public key form */

/*
 * Generates a new key pair and writes the private key (0600) to path.  An
 * existing file is never replaced (-EEXIST): losing a signing key would make
 * every pass it signed unverifiable.
 */
int key_generate_file(const char *path);

/*
 * key_generate_file, then the public key written to pub_path (as
 * key_write_public; none when NULL) and given in ret_pk.  Before anything is
 * made, refuses a pub_path that exists (-EEXIST) or names path itself
 * (-EINVAL).  On failure neither file is left, and nothing that was there
 * before is removed.
 */
int key_generate_pair(const char *path, const char *pub_path,
    uint8_t ret_pk[KEY_PUBLIC_LEN]);

/* Loads a private key file into libsodium's form. */
int key_load_private(const char *path, uint8_t ret_sk[KEY_SECRET_LEN],
    uint8_t ret_pk[KEY_PUBLIC_LEN]);

/* Loads a public key from a public or a private key PEM file. */
int key_load_public(const char *path, uint8_t ret_pk[KEY_PUBLIC_LEN]);

/* Writes the public key as SubjectPublicKeyInfo PEM (mode 0644). */
int key_write_public(const char *path, const uint8_t pk[KEY_PUBLIC_LEN]);

#endif
