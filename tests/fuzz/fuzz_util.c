/*
 * fuzz_util.c - the small parsers of text people and peers type or send:
 * RFC 3339 times (directory dates, retires_at, check-out times), durations
 * (the configuration), visit ids (a check-out's URL), space URLs (a join
 * request) and log levels.  The input is one string.
 */
#include <stdlib.h>
#include <string.h>

#include "federation.h"
#include "fuzz.h"
#include "log.h"
#include "util.h"
#include "visit.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size), out[32];
	enum log_level lvl;
	int64_t t;
	int port;

	if (util_parse_time(s, &t) == 0)
		util_format_time(t, out);
	(void)util_parse_duration(s, &t);
	(void)visit_id_valid(s);
	if (federation_space_url_check(s, &port) == 0 && (port < 1 || port > 65535))
		abort();
	(void)log_level_parse(s, &lvl);
	free(s);
	return 0;
}
