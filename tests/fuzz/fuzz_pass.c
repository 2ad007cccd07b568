/*
 * fuzz_pass.c - a scanned pass of any bytes (node/pass.c): pass_verify, as
 * the host runs it on whatever the front desk's scanner read, and pass_read,
 * as the home runs it on a token it finds among its own, with a real key
 * lookup so that a token that is still well formed reaches the signature.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pass.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pass_claims c;
	char *token, digest[65];
	int r;

	fuzz_init();
	token = fuzz_strndup(data, size);
	r = pass_verify(token, FUZZ_NOW, 60, fuzz_pass_lookup, NULL, &c);
	(void)pass_error_code(r);
	(void)pass_error_message(r);
	/* What pass_verify accepts, pass_read (no signature) accepts too. */
	if (pass_read(token, FUZZ_NOW, 60, fuzz_pass_lookup, NULL, &c) != PASS_OK &&
	    r == PASS_OK)
		abort();
	(void)pass_verify(token, FUZZ_NOW, 60, NULL, NULL, NULL);
	pass_digest(token, digest);
	free(token);
	return 0;
}
