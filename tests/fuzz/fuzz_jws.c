/*
 * fuzz_jws.c - compact JWS tokens of any bytes (node/jws.c): splitting,
 * decoding, the header's checks and the signature with a real key.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "jws.h"

static void
jws_exercise(struct jws *jws)
{
	const uint8_t *payload;
	size_t len;

	(void)jws_header(jws);
	(void)jws_header_string(jws, "typ");
	(void)jws_header_string(jws, "kid");
	payload = jws_payload(jws, &len);
	if (payload[len] != '\0')
		abort(); /* the payload is NUL-terminated for its callers */
	(void)jws_verify(jws, fuzz_pass_pk);
	(void)jws_verify(jws, fuzz_coord_pk);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jws *jws = NULL;
	char *token;
	int r;

	fuzz_init();

	/* jws_parse_len must keep within len (no NUL after the token). */
	token = malloc(size > 0 ? size : 1);
	if (token == NULL)
		abort();
	memcpy(token, data, size);
	r = jws_parse_len(token, size, 0, &jws);
	if (r == 0)
		jws_exercise(jws);
	else if (jws != NULL)
		abort(); /* *ret is written only on success */
	(void)jws_strerror(r);
	jws_free(jws);
	free(token);

	/* jws_parse reads up to the NUL, under a pass's limit. */
	jws = NULL;
	token = fuzz_strndup(data, size);
	if (jws_parse(token, 1024, &jws) == 0)
		jws_exercise(jws);
	jws_free(jws);
	free(token);
	return 0;
}
