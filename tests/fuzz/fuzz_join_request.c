/*
 * fuzz_join_request.c - a join request of any bytes, as the coordinator
 * reads the file a new space sends (node/federation_space.c): the JSON, every
 * field's check, the PEM certificate request (OpenSSL's parser, its
 * self-signature, its names) and the pass key.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "federation.h"
#include "fuzz.h"
#include "jws.h"

/* As federation.c reads it (FEDERATION_JSON_DEPTH). */
#define JOIN_JSON_DEPTH 8

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_REQ *csr = NULL;
	uint8_t pk[32];
	char err[512];
	cJSON *req;
	int r;

	fuzz_init();
	req = jws_json_parse_object((const char *)data, size, JOIN_JSON_DEPTH);
	if (req == NULL)
		return 0;
	err[0] = '\0';
	r = federation_space_check_request(req, &csr, pk, err, sizeof(err));
	if ((r == 0) != (csr != NULL) || (r < 0 && err[0] == '\0'))
		abort(); /* a refusal always says why */
	X509_REQ_free(csr);
	cJSON_Delete(req);
	return 0;
}
