/*
 * fuzz_b64url.c - base64url decoding of any bytes (node/b64url.c).
 *
 * Besides not crashing, the decoder must be strict: whatever it accepts
 * encodes back to exactly the input, and whatever is encoded decodes back.
 */
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly as large as needed, so that ASan sees any overrun. */
	size_t cap = size / 4 * 3 + 2, n;
	uint8_t *out = malloc(cap);
	char *again = NULL;

	if (out == NULL)
		abort();
	if (b64url_decode((const char *)data, size, out, cap, &n) == 0) {
		again = b64url_encode_alloc(out, n);
		if (again == NULL || strlen(again) != size ||
		    memcmp(again, data, size) != 0)
			abort(); /* a second spelling was accepted */
		free(again);
	}
	/* A smaller buffer is refused, never overrun. */
	if (size > 4)
		(void)b64url_decode((const char *)data, size, out, size / 4, &n);

	again = b64url_encode_alloc(data, size);
	if (again == NULL)
		abort();
	free(out);
	out = malloc(size > 0 ? size : 1);
	if (out == NULL ||
	    b64url_decode(again, strlen(again), out, size, &n) != 0 ||
	    n != size || memcmp(out, data, size) != 0)
		abort();
	free(again);
	free(out);
	return 0;
}
