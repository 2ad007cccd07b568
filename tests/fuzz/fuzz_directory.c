/*
 * fuzz_directory.c - a federation directory of any bytes (node/directory.c),
 * as a node reads it from its file or from a peer: the JWS, the typ, the
 * choice among trusted coordinator keys and the signature.
 */
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct directory_trust trust[2];
	struct directory *dir = NULL;
	const char *e = NULL;
	char *token;
	int r;

	fuzz_init();
	/* The wrong key first, under another kid, then the right one. */
	trust[0].kid = "old";
	memcpy(trust[0].pk, fuzz_pass_pk, 32);
	trust[1].kid = FUZZ_COORD_KID;
	memcpy(trust[1].pk, fuzz_coord_pk, 32);

	/* Exactly size bytes, not NUL-terminated, as read from a socket. */
	token = malloc(size > 0 ? size : 1);
	if (token == NULL)
		abort();
	memcpy(token, data, size);
	r = directory_load_trusted(token, size, trust, 2, FUZZ_NOW, &dir, &e);
	if ((r == 0) != (dir != NULL) || (r < 0 && e == NULL))
		abort(); /* a failure always says why */
	directory_free(dir);
	free(token);
	return 0;
}
