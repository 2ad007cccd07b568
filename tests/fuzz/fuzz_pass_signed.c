/*
 * fuzz_pass_signed.c - passes that are correctly signed but carry any
 * header and claims (node/pass.c): the input is the header's JSON, a
 * newline, and the claims' JSON; the target signs them with the space's key,
 * so that the fuzzer works on what pass_verify checks after the signature.
 * A pass it accepts must be issued again, by pass_sign, as a valid pass
 * with the same claims.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pass.h"

/*
 * cJSON prints numbers with 15 significant digits when that reads back
 * within a relative epsilon, so times from 10^15 s on (the year 31 million)
 * do not come back exactly from pass_sign; pass_verify accepts up to 2^53.
 */
#define EXACT_TIME ((int64_t)1000000000000000)

#define DEFAULT_HEADER "{\"alg\":\"EdDSA\",\"typ\":\"pass\",\"kid\":\"cordee-1\"}"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size), *header, *claims;
	struct pass_claims c, again;
	size_t hlen, clen;
	char *token, *reissued = NULL;
	int r;

	fuzz_init();
	if (nl != NULL) {
		header = data;
		hlen = (size_t)(nl - data);
		claims = nl + 1;
		clen = size - hlen - 1;
	} else {
		header = (const uint8_t *)DEFAULT_HEADER;
		hlen = strlen(DEFAULT_HEADER);
		claims = data;
		clen = size;
	}
	token = fuzz_sign_raw(header, hlen, claims, clen, fuzz_pass_sk);
	r = pass_verify(token, FUZZ_NOW, 60, fuzz_pass_lookup, NULL, &c);
	(void)pass_read(token, FUZZ_NOW, 60, fuzz_pass_lookup, NULL, &again);
	if (r == PASS_OK) {
		if (pass_sign(&c, fuzz_pass_sk, &reissued) != PASS_OK)
			abort();
		/* Escapes may make it longer than the original, and too long. */
		if (strlen(reissued) <= PASS_MAX_TOKEN && c.iat < EXACT_TIME &&
		    c.nbf < EXACT_TIME && c.exp < EXACT_TIME) {
			r = pass_verify(reissued, FUZZ_NOW, 60, fuzz_pass_lookup,
			    NULL, &again);
			if (r != PASS_OK || memcmp(&c, &again, sizeof(c)) != 0)
				abort();
		}
		free(reissued);
	}
	free(token);
	return 0;
}
