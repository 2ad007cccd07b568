/*
 * fuzz.c - the fuzz targets' fixed keys and helpers (fuzz.h).
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "b64url.h"
#include "fuzz.h"

uint8_t fuzz_pass_sk[64], fuzz_pass_pk[32];
uint8_t fuzz_coord_sk[64], fuzz_coord_pk[32];

void
fuzz_init(void)
{
	static int done;
	uint8_t seed[crypto_sign_SEEDBYTES];

	if (done)
		return;
	if (sodium_init() < 0)
		abort();
	memset(seed, 'p', sizeof(seed));
	crypto_sign_seed_keypair(fuzz_pass_pk, fuzz_pass_sk, seed);
	memset(seed, 'c', sizeof(seed));
	crypto_sign_seed_keypair(fuzz_coord_pk, fuzz_coord_sk, seed);
	done = 1;
}

char *
fuzz_sign_raw(const uint8_t *header, size_t hlen, const uint8_t *payload,
    size_t plen, const uint8_t sk[64])
{
	size_t h64 = b64url_encoded_len(hlen), p64 = b64url_encoded_len(plen);
	size_t off = h64 + 1 + p64;
	uint8_t sig[64];
	char *t;

	t = malloc(off + 1 + b64url_encoded_len(sizeof(sig)) + 1);
	if (t == NULL)
		abort();
	b64url_encode(header, hlen, t);
	t[h64] = '.';
	b64url_encode(payload, plen, t + h64 + 1);
	crypto_sign_detached(sig, NULL, (const uint8_t *)t, off, sk);
	t[off] = '.';
	b64url_encode(sig, sizeof(sig), t + off + 1);
	return t;
}

char *
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

int
fuzz_pass_lookup(void *ctx, const char *iss, const char *kid, uint8_t ret_pk[32])
{
	(void)ctx;
	if (strcmp(iss, FUZZ_PASS_ISS) != 0 || strcmp(kid, FUZZ_PASS_KID) != 0)
		return -1;
	memcpy(ret_pk, fuzz_pass_pk, 32);
	return 0;
}
