/*
 * replay.c - runs a fuzz target without libFuzzer, in the unit suite: every
 * file of its corpus, then a fixed number of simple mutations of them (bit
 * flips, truncations, insertions, deletions, overwrites) drawn from a fixed
 * seed, so that a run is the same on every machine and any compiler.  A
 * crash, a sanitizer report or an abort() of the target fails the test; so
 * does an empty corpus, which would test nothing.
 *
 * Usage: replay CORPUS_DIR [MUTATIONS]      (prints TAP)
 *
 * With PASSERELLE_FUZZ_LAST=FILE in the environment, each input is written
 * to FILE before it runs: after a crash, FILE holds the input that crashed.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define REPLAY_MAX_FILES 1024
#define REPLAY_MAX_SIZE (256 * 1024)

struct input {
	uint8_t *data;
	size_t size;
};

static uint64_t rng_state = 0x5eed5eed5eed5eedULL;

/* splitmix64: small, and the same everywhere. */
static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t
rng_below(size_t n)
{
	return n == 0 ? 0 : (size_t)(rng() % n);
}

static int
read_input(const char *path, struct input *in)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (f == NULL)
		return -1;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
	    n > REPLAY_MAX_SIZE || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -1;
	}
	in->size = (size_t)n;
	in->data = malloc(in->size > 0 ? in->size : 1);
	if (in->data == NULL || fread(in->data, 1, in->size, f) != in->size) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* The input about to run, for PASSERELLE_FUZZ_LAST. */
static void
save_last(const struct input *in)
{
	const char *path = getenv("PASSERELLE_FUZZ_LAST");
	FILE *f;

	if (path == NULL || (f = fopen(path, "wb")) == NULL)
		return;
	fwrite(in->data, 1, in->size, f);
	fclose(f);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Bytes that matter to the parsers: JSON, JWS, INI and time syntax. */
static const uint8_t interesting[] = "{}[]\":,.\\-_=\n[#;0123456789eE+AZaz_ \t\0\xff";

/* One to four random edits of in, into a new buffer. */
static struct input
mutate(const struct input *in)
{
	struct input m;
	size_t cap = in->size + 8, edits = 1 + rng_below(4);

	m.data = malloc(cap);
	if (m.data == NULL)
		abort();
	memcpy(m.data, in->data, in->size);
	m.size = in->size;
	for (size_t e = 0; e < edits; e++) {
		size_t at = rng_below(m.size + 1);

		switch (rng_below(5)) {
		case 0: /* flip a bit */
			if (m.size > 0)
				m.data[at % m.size] ^= (uint8_t)(1u << rng_below(8));
			break;
		case 1: /* truncate */
			m.size = at;
			break;
		case 2: /* insert a byte */
			if (m.size < cap) {
				memmove(m.data + at + 1, m.data + at, m.size - at);
				m.data[at] = rng_below(2) ? (uint8_t)rng() :
				    interesting[rng_below(sizeof(interesting))];
				m.size++;
			}
			break;
		case 3: /* delete a byte */
			if (at < m.size) {
				memmove(m.data + at, m.data + at + 1, m.size - at - 1);
				m.size--;
			}
			break;
		default: /* overwrite a byte */
			if (at < m.size)
				m.data[at] = interesting[rng_below(sizeof(interesting))];
			break;
		}
	}
	return m;
}

int
main(int argc, char **argv)
{
	static struct input inputs[REPLAY_MAX_FILES];
	char *names[REPLAY_MAX_FILES];
	size_t ninputs = 0, mutations = 5000;
	struct dirent *d;
	DIR *dir;
	int failed = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
		return 2;
	}
	if (argc == 3)
		mutations = strtoul(argv[2], NULL, 10);
	dir = opendir(argv[1]);
	if (dir == NULL) {
		printf("not ok 1 - cannot open the corpus %s\n1..1\n", argv[1]);
		return 1;
	}
	while ((d = readdir(dir)) != NULL && ninputs < REPLAY_MAX_FILES) {
		if (d->d_name[0] == '.')
			continue;
		names[ninputs] = malloc(strlen(argv[1]) + strlen(d->d_name) + 2);
		if (names[ninputs] == NULL)
			abort();
		sprintf(names[ninputs], "%s/%s", argv[1], d->d_name);
		ninputs++;
	}
	closedir(dir);
	/* readdir's order is the file system's: sort, for the same mutations. */
	qsort(names, ninputs, sizeof(names[0]), name_cmp);

	for (size_t i = 0; i < ninputs; i++) {
		if (read_input(names[i], &inputs[i]) < 0) {
			printf("not ok 1 - cannot read %s\n1..1\n", names[i]);
			return 1;
		}
		save_last(&inputs[i]);
		LLVMFuzzerTestOneInput(inputs[i].data, inputs[i].size);
	}
	if (ninputs == 0)
		failed = 1;
	printf("%s 1 - %zu corpus files of %s\n", failed ? "not ok" : "ok",
	    ninputs, argv[1]);
	fflush(stdout);

	for (size_t i = 0; i < mutations && ninputs > 0; i++) {
		struct input m = mutate(&inputs[rng_below(ninputs)]);

		save_last(&m);
		LLVMFuzzerTestOneInput(m.data, m.size);
		free(m.data);
	}
	printf("ok 2 - %zu mutations of the corpus\n1..2\n", mutations);

	for (size_t i = 0; i < ninputs; i++) {
		free(inputs[i].data);
		free(names[i]);
	}
	return failed;
}
