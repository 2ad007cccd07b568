/*
 * fuzz_json.c - untrusted JSON objects (jws_json_parse_object, node/jws.c):
 * the depth limit, duplicate names, NUL bytes and trailing text, under
 * every header, pass and directory a peer sends.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "jws.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Not NUL-terminated: the parser must keep within len. */
	char *text = malloc(size > 0 ? size : 1);
	cJSON *o;

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	for (int depth = 2; depth <= JWS_MAX_DEPTH; depth += JWS_MAX_DEPTH - 2) {
		o = jws_json_parse_object(text, size, depth);
		if (o != NULL) {
			char *s = cJSON_PrintUnformatted(o);

			if (!cJSON_IsObject(o))
				abort();
			cJSON_free(s);
			cJSON_Delete(o);
		}
	}
	free(text);
	return 0;
}
