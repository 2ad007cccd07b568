/*
 * verify.c - micro-benchmark of pass verification: the node's own code path
 * (pass_verify: size and structure checks, base64url, the header and claims
 * parsed as JSON, the key looked up, the Ed25519 signature, the times)
 * against libsodium's raw crypto_sign_verify_detached() over the same
 * signing input and signature, in the same process, rounds interleaved so
 * that both see the same machine.
 *
 * The key lookup is the directory's own (directory_pass_key_lookup) over a
 * real signed directory when --directory and --coordinator are given, and a
 * fixed key otherwise.
 *
 * Usage: bench_verify [--iterations N] [--rounds R] [--json]
 *                     [--directory FILE --coordinator PUB --pass-key KEY --iss ID --kid KID]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bench.h"
#include "b64url.h"
#include "directory.h"
#include "key.h"
#include "pass.h"
#include "util.h"

#define VERIFY_BLOCK 500

static uint8_t fixed_pk[32];

static int
fixed_lookup(void *ctx, const char *iss, const char *kid, uint8_t ret_pk[32])
{
	memcpy(ret_pk, fixed_pk, 32);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "iterations", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "directory", required_argument, NULL, 'd' },
		{ "coordinator", required_argument, NULL, 'C' },
		{ "pass-key", required_argument, NULL, 'k' },
		{ "iss", required_argument, NULL, 'i' },
		{ "kid", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_path = NULL, *coord_path = NULL, *key_path = NULL;
	const char *iss = "bench", *kid = "bench-1";
	long iterations = 20000;
	int rounds = 5, ch;
	bool json = false;
	uint8_t sk[64], pk[32], sig[64];
	struct directory *dir = NULL;
	pass_key_lookup_fn lookup = fixed_lookup;
	void *lookup_ctx = NULL;
	struct pass_claims c, out;
	char *token = NULL;
	const char *dot;
	size_t siglen = 0;
	double *pass_rates, *raw_rates, *ratios;
	volatile int sink = 0;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n': iterations = atol(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'j': json = true; break;
		case 'd': dir_path = optarg; break;
		case 'C': coord_path = optarg; break;
		case 'k': key_path = optarg; break;
		case 'i': iss = optarg; break;
		case 'K': kid = optarg; break;
		default:
			fprintf(stderr, "usage: bench_verify [--iterations N] [--rounds R] [--json]"
			    " [--directory FILE --coordinator PUB --pass-key KEY --iss ID --kid KID]\n");
			return 2;
		}
	}
	if (iterations < 1 || rounds < 1 || sodium_init() < 0)
		return 2;

	if (key_path != NULL) {
		if (key_load_private(key_path, sk, pk) < 0) {
			fprintf(stderr, "bench_verify: cannot load %s\n", key_path);
			return 1;
		}
	} else {
		crypto_sign_keypair(pk, sk);
	}
	memcpy(fixed_pk, pk, 32);
	if (dir_path != NULL && coord_path != NULL) {
		uint8_t cpk[32];
		char *text = NULL;
		size_t len = 0;
		const char *why = NULL;

		if (key_load_public(coord_path, cpk) < 0 ||
		    util_read_file(dir_path, DIRECTORY_MAX_TOKEN, &text, &len) < 0 ||
		    directory_load(text, len, cpk, util_now(), &dir, &why) < 0) {
			fprintf(stderr, "bench_verify: cannot load the directory %s: %s\n",
			    dir_path, why ? why : "unreadable");
			free(text);
			return 1;
		}
		free(text);
		lookup = directory_pass_key_lookup;
		lookup_ctx = dir;
	}

	memset(&c, 0, sizeof(c));
	util_strlcpy(c.iss, iss, sizeof(c.iss));
	util_strlcpy(c.kid, kid, sizeof(c.kid));
	util_strlcpy(c.sub, "C4fVs6R4209v", sizeof(c.sub));
	util_strlcpy(c.name, "Camille D.", sizeof(c.name));
	util_strlcpy(c.plan, "tickets", sizeof(c.plan));
	util_strlcpy(c.jti, "azy0rAeqUpwy", sizeof(c.jti));
	c.iat = util_now();
	c.nbf = c.iat;
	c.exp = c.iat + 30 * 86400;
	if (pass_sign(&c, sk, &token) < 0 ||
	    pass_verify(token, util_now(), 60, lookup, lookup_ctx, &out) != PASS_OK) {
		fprintf(stderr, "bench_verify: the pass does not sign or verify\n");
		return 1;
	}
	/* The raw path verifies exactly what the pass's signature covers. */
	dot = strrchr(token, '.');
	if (b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig), &siglen) < 0 ||
	    siglen != 64 || crypto_sign_verify_detached(sig, (const uint8_t *)token,
	    (size_t)(dot - token), pk) != 0) {
		fprintf(stderr, "bench_verify: cannot decode the signature\n");
		return 1;
	}

	pass_rates = calloc((size_t)rounds, sizeof(double));
	raw_rates = calloc((size_t)rounds, sizeof(double));
	ratios = calloc((size_t)rounds, sizeof(double));
	if (pass_rates == NULL || raw_rates == NULL || ratios == NULL)
		return 1;
	/*
	 * Each round alternates blocks of both, so that a change of clock speed
	 * or a neighbour's burst during the round falls on both alike.
	 */
	for (int r = 0; r < rounds; r++) {
		double tp = 0, tr = 0;
		int64_t now = util_now();

		for (long done = 0; done < iterations; done += VERIFY_BLOCK) {
			long n = iterations - done < VERIFY_BLOCK ? iterations - done : VERIFY_BLOCK;
			double t0 = bench_now_s(), t1, t2;

			for (long i = 0; i < n; i++)
				sink += pass_verify(token, now, 60, lookup, lookup_ctx, &out);
			t1 = bench_now_s();
			for (long i = 0; i < n; i++)
				sink += crypto_sign_verify_detached(sig, (const uint8_t *)token,
				    (size_t)(dot - token), pk);
			t2 = bench_now_s();
			tp += t1 - t0;
			tr += t2 - t1;
		}
		pass_rates[r] = (double)iterations / tp;
		raw_rates[r] = (double)iterations / tr;
		ratios[r] = tr / tp;
	}
	if (sink != 0) {
		fprintf(stderr, "bench_verify: a verification failed during the run\n");
		return 1;
	}
	qsort(pass_rates, (size_t)rounds, sizeof(double), bench_cmp_double);
	qsort(raw_rates, (size_t)rounds, sizeof(double), bench_cmp_double);
	qsort(ratios, (size_t)rounds, sizeof(double), bench_cmp_double);
	{
		double pm = pass_rates[rounds / 2], rm = raw_rates[rounds / 2];
		double pb = pass_rates[rounds - 1], rb = raw_rates[rounds - 1];
		double ratio = ratios[rounds / 2];

		printf("pass_verify (%s lookup, %zu-byte pass): median %.0f/s, best %.0f/s"
		    " (%.2f us each)\n", dir != NULL ? "directory" : "fixed-key",
		    strlen(token), pm, pb, 1e6 / pm);
		printf("crypto_sign_verify_detached (libsodium %s): median %.0f/s, best %.0f/s"
		    " (%.2f us each)\n", sodium_version_string(), rm, rb, 1e6 / rm);
		printf("ratio pass_verify / raw verify: %.1f %% (median of the rounds' ratios;"
		    " %.1f %% to %.1f %%) [%ld iterations x %d rounds]\n", 100 * ratio,
		    100 * ratios[0], 100 * ratios[rounds - 1], iterations, rounds);
		if (json)
			printf("{\"label\":\"verify\",\"lookup\":\"%s\",\"token_bytes\":%zu,"
			    "\"pass_verify_rate\":%.0f,\"raw_verify_rate\":%.0f,"
			    "\"ratio\":%.4f,\"pass_verify_best\":%.0f,\"raw_verify_best\":%.0f,"
			    "\"iterations\":%ld,\"rounds\":%d}\n",
			    dir != NULL ? "directory" : "fixed", strlen(token), pm, rm, ratio,
			    pb, rb, iterations, rounds);
	}
	free(pass_rates);
	free(raw_rates);
	free(ratios);
	free(token);
	directory_free(dir);
	return 0;
}
