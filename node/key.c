/*
 * key.c - Ed25519 key files in the formats every tool reads.
 *
 * OpenSSL only translates between PEM (PKCS#8 for private keys,
 * SubjectPublicKeyInfo for public keys) and the raw 32-byte seed and public
 * key; libsodium does all the signing.  Encrypted private keys are refused
 * rather than prompting for a passphrase: a daemon has no terminal.  Secrets
 * are wiped from our buffers once used.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "key.h"
#include "util.h"

#define KEY_FILE_MAX 16384
#define KEY_SEED_LEN 32

/* Refuses encrypted PEM instead of OpenSSL's default terminal prompt. */
static int
key_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Writes pkey as PEM (private or public) to path with mode. */
static int
key_write_pem(const char *path, EVP_PKEY *pkey, int private, mode_t mode)
{
	BIO *bio;
	char *data;
	long len;
	int r;

	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return -ENOMEM;
	if (private)
		r = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
	else
		r = PEM_write_bio_PUBKEY(bio, pkey);
	if (r != 1) {
		r = -EIO;
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0) {
		r = -EIO;
		goto out;
	}
	r = util_write_file(path, data, (size_t)len, mode);
	/* The memory BIO held the private key in clear. */
	OPENSSL_cleanse(data, (size_t)len);
out:
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int
key_generate_file(const char *path)
{
	uint8_t seed[KEY_SEED_LEN];
	struct stat st;
	EVP_PKEY *pkey = NULL;
	int r;

	/* Overwriting a signing key would orphan every pass it signed. */
	if (lstat(path, &st) == 0)
		return -EEXIST;
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(seed, sizeof(seed));
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
	    sizeof(seed));
	if (pkey == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = key_write_pem(path, pkey, 1, 0600);
out:
	sodium_memzero(seed, sizeof(seed));
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return r;
}

/*
 * Reads a PEM file and returns the key in it: a private key when want_private,
 * otherwise a public key or, failing that, a private key (whose public half
 * the caller then uses).
 */
static int
key_read_pem(const char *path, int want_private, EVP_PKEY **ret)
{
	char *text = NULL;
	size_t len = 0;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	int r;

	r = util_read_file(path, KEY_FILE_MAX, &text, &len);
	if (r < 0)
		return r;
	if (!want_private) {
		bio = BIO_new_mem_buf(text, (int)len);
		if (bio == NULL) {
			r = -ENOMEM;
			goto out;
		}
		pkey = PEM_read_bio_PUBKEY(bio, NULL, key_no_passphrase, NULL);
		BIO_free(bio);
		bio = NULL;
	}
	if (pkey == NULL) {
		bio = BIO_new_mem_buf(text, (int)len);
		if (bio == NULL) {
			r = -ENOMEM;
			goto out;
		}
		pkey = PEM_read_bio_PrivateKey(bio, NULL, key_no_passphrase, NULL);
	}
	if (pkey == NULL) {
		r = -EINVAL;
		goto out;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		r = -EPROTONOSUPPORT;
		goto out;
	}
	*ret = pkey;
	pkey = NULL;
	r = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	ERR_clear_error();
	return r;
}

/*
 * Whether a and b name one file, the second not necessarily made yet: the
 * same last component in the same folder (by inode, so "k.key" and
 * "./k.key" are one), or the same inode when both exist.
 */
static bool
key_same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	char *da = NULL, *db = NULL;
	const char *ba, *bb;
	bool same;

	if (strcmp(a, b) == 0)
		return true;
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	ba = strrchr(a, '/') != NULL ? strrchr(a, '/') + 1 : a;
	bb = strrchr(b, '/') != NULL ? strrchr(b, '/') + 1 : b;
	if (strcmp(ba, bb) != 0)
		return false;
	da = ba == a ? strdup(".") : strndup(a, (size_t)(ba - a));
	db = bb == b ? strdup(".") : strndup(b, (size_t)(bb - b));
	same = da != NULL && db != NULL && stat(da, &sa) == 0 &&
	    stat(db, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	free(da);
	free(db);
	return same;
}

int
key_generate_pair(const char *path, const char *pub_path,
    uint8_t ret_pk[KEY_PUBLIC_LEN])
{
	uint8_t sk[KEY_SECRET_LEN];
	struct stat st;
	int r;

	/*
	 * Both refusals come before anything is made: writing the public key
	 * over the private one, or over any other file, would lose a key.
	 */
	if (pub_path != NULL) {
		if (key_same_file(path, pub_path))
			return -EINVAL;
		if (lstat(pub_path, &st) == 0)
			return -EEXIST;
	}
	r = key_generate_file(path);
	if (r < 0)
		return r;
	r = key_load_private(path, sk, ret_pk);
	sodium_memzero(sk, sizeof(sk));
	if (r == 0 && pub_path != NULL)
		r = key_write_public(pub_path, ret_pk);
	/*
	 * Half a pair would stop the next attempt ("exists").  Only the private
	 * key is ours to remove: key_write_public either renamed the whole
	 * public file into place or left pub_path as it was.
	 */
	if (r < 0)
		unlink(path);
	return r;
}

int
key_load_private(const char *path, uint8_t ret_sk[KEY_SECRET_LEN],
    uint8_t ret_pk[KEY_PUBLIC_LEN])
{
	uint8_t seed[KEY_SEED_LEN], sk[KEY_SECRET_LEN], pk[KEY_PUBLIC_LEN];
	size_t n = sizeof(seed);
	EVP_PKEY *pkey = NULL;
	int r;

	r = key_read_pem(path, 1, &pkey);
	if (r < 0)
		return r;
	if (EVP_PKEY_get_raw_private_key(pkey, seed, &n) != 1 ||
	    n != sizeof(seed)) {
		r = -EINVAL;
		goto out;
	}
	if (crypto_sign_seed_keypair(pk, sk, seed) != 0) {
		r = -EINVAL;
		goto out;
	}
	memcpy(ret_sk, sk, sizeof(sk));
	if (ret_pk != NULL)
		memcpy(ret_pk, pk, sizeof(pk));
	r = 0;
out:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return r;
}

int
key_load_public(const char *path, uint8_t ret_pk[KEY_PUBLIC_LEN])
{
	uint8_t pk[KEY_PUBLIC_LEN];
	size_t n = sizeof(pk);
	EVP_PKEY *pkey = NULL;
	int r;

	r = key_read_pem(path, 0, &pkey);
	if (r < 0)
		return r;
	if (EVP_PKEY_get_raw_public_key(pkey, pk, &n) != 1 || n != sizeof(pk)) {
		r = -EINVAL;
		goto out;
	}
	memcpy(ret_pk, pk, sizeof(pk));
	r = 0;
out:
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return r;
}

int
key_write_public(const char *path, const uint8_t pk[KEY_PUBLIC_LEN])
{
	EVP_PKEY *pkey;
	int r;

	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk,
	    KEY_PUBLIC_LEN);
	if (pkey == NULL) {
		ERR_clear_error();
		return -EINVAL;
	}
	r = key_write_pem(path, pkey, 0, 0644);
	EVP_PKEY_free(pkey);
	return r;
}
