/*
 * dirload.c - how long a node takes to verify and load a signed directory
 * (directory_load: the coordinator's signature, then every space parsed,
 * checked and indexed), for the 10,000-space target.
 *
 * Usage: bench_dirload DIRECTORY.jws COORDINATOR.pub [--rounds R] [--json]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "directory.h"
#include "key.h"
#include "util.h"

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int rounds = 7, ch;
	bool json = false;
	uint8_t cpk[32];
	char *text = NULL;
	size_t len = 0, spaces = 0;
	double *ms;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r': rounds = atoi(optarg); break;
		case 'j': json = true; break;
		default: goto usage;
		}
	}
	if (argc - optind != 2 || rounds < 1)
		goto usage;
	if (key_load_public(argv[optind + 1], cpk) < 0 ||
	    util_read_file(argv[optind], DIRECTORY_MAX_TOKEN, &text, &len) < 0) {
		fprintf(stderr, "bench_dirload: cannot read %s or %s\n", argv[optind],
		    argv[optind + 1]);
		return 1;
	}
	ms = calloc((size_t)rounds, sizeof(double));
	if (ms == NULL)
		return 1;
	for (int r = 0; r < rounds; r++) {
		struct directory *dir = NULL;
		const char *why = NULL;
		double t0 = bench_now_s();

		if (directory_load(text, len, cpk, util_now(), &dir, &why) < 0) {
			fprintf(stderr, "bench_dirload: the directory does not load: %s\n",
			    why ? why : "?");
			return 1;
		}
		ms[r] = (bench_now_s() - t0) * 1000;
		spaces = directory_count(dir);
		directory_free(dir);
	}
	qsort(ms, (size_t)rounds, sizeof(double), bench_cmp_double);
	printf("directory_load: %zu spaces, %zu bytes: median %.1f ms, min %.1f ms,"
	    " max %.1f ms (%d rounds)\n", spaces, len, ms[rounds / 2], ms[0],
	    ms[rounds - 1], rounds);
	if (json)
		printf("{\"label\":\"directory\",\"spaces\":%zu,\"bytes\":%zu,"
		    "\"median_ms\":%.2f,\"min_ms\":%.2f,\"max_ms\":%.2f}\n", spaces, len,
		    ms[rounds / 2], ms[0], ms[rounds - 1]);
	free(ms);
	free(text);
	return 0;
usage:
	fprintf(stderr, "usage: bench_dirload DIRECTORY.jws COORDINATOR.pub [--rounds R] [--json]\n");
	return 2;
}
