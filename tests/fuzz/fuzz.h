/*
 * fuzz.h - what the fuzz targets share: fixed keys and a raw signer.
 *
 * Every target is one file with LLVMFuzzerTestOneInput; it is linked either
 * with libFuzzer (the fuzz binaries, clang only: -Dfuzz=true) or with
 * replay.c (the unit suite's replay of the corpus, any compiler).  The keys
 * come from fixed seeds, so that the committed corpus (written by
 * corpus_gen.c) holds tokens the targets can verify, and a target signs what
 * the fuzzer made of a payload to get past the signature to the parsers.
 */
#ifndef PASSERELLE_FUZZ_H
#define PASSERELLE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_NOW ((int64_t)1767225600) /* 2026-01-01T00:00:00Z */
#define FUZZ_PASS_ISS "cordee"
#define FUZZ_PASS_KID "cordee-1"
#define FUZZ_COORD_KID "coord-1"

/* The space's pass-signing key and the coordinator's directory key. */
extern uint8_t fuzz_pass_sk[64], fuzz_pass_pk[32];
extern uint8_t fuzz_coord_sk[64], fuzz_coord_pk[32];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Initialises libsodium and derives the keys; cheap after the first call. */
void fuzz_init(void);

/*
 * A compact JWS over any header and payload bytes, signed with sk and
 * bypassing jws_sign's checks (the parsers must judge them).  malloc'ed;
 * aborts when out of memory.
 */
char *fuzz_sign_raw(const uint8_t *header, size_t hlen, const uint8_t *payload,
    size_t plen, const uint8_t sk[64]);

/* A NUL-terminated copy of data (aborts when out of memory). */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* The pass key for (FUZZ_PASS_ISS, FUZZ_PASS_KID): a pass_key_lookup_fn. */
int fuzz_pass_lookup(void *ctx, const char *iss, const char *kid,
    uint8_t ret_pk[32]);

#endif
