/*
 * fuzz_directory_signed.c - correctly signed directories with any payload
 * (node/directory.c): the input is the payload's JSON, which the target
 * signs with the coordinator's key, so that the fuzzer works on the checks
 * of every field and on the lookups a node makes in what it loaded.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "directory.h"
#include "fuzz.h"
#include "pass.h"

#define HEADER "{\"alg\":\"EdDSA\",\"typ\":\"directory\",\"kid\":\"coord-1\"}"

/* Everything a node asks of a loaded directory. */
static void
directory_exercise(const struct directory *dir)
{
	uint8_t pk[32], pin[32] = { 0 };
	cJSON *geo;
	char *s;

	(void)directory_serial(dir);
	(void)directory_expires_at(dir);
	(void)directory_federation(dir);
	(void)directory_crl(dir);
	for (size_t i = 0; i < directory_coordinator_key_count(dir); i++)
		if (directory_coordinator_key(dir, i) == NULL)
			abort();
	for (size_t i = 0; i < directory_count(dir); i++) {
		const struct directory_space *sp = directory_space_at(dir, i);

		if (sp == NULL || directory_find_space(dir, sp->id) != sp)
			abort(); /* every space is found by its id */
		(void)directory_space_pinned(sp, pin);
		(void)directory_find_key(dir, sp->id, FUZZ_PASS_KID, pk);
		(void)directory_pass_key_lookup((void *)dir, sp->id, "k1", pk);
	}
	(void)directory_find_space(dir, "nowhere");
	geo = directory_geojson(dir);
	s = cJSON_PrintUnformatted(geo);
	cJSON_free(s);
	cJSON_Delete(geo);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct directory *dir = NULL;
	const char *e = NULL;
	char *token;

	fuzz_init();
	token = fuzz_sign_raw((const uint8_t *)HEADER, strlen(HEADER), data, size,
	    fuzz_coord_sk);
	if (directory_load(token, strlen(token), fuzz_coord_pk, FUZZ_NOW, &dir,
	    &e) == 0)
		directory_exercise(dir);
	else if (dir != NULL || e == NULL)
		abort();
	directory_free(dir);
	free(token);
	return 0;
}
