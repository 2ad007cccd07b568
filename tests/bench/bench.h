/*
 * bench.h - what the benchmark programs share: a monotonic clock in
 * seconds, and the comparison that sorts their rounds for the median.
 */
#ifndef PASSERELLE_BENCH_H
#define PASSERELLE_BENCH_H

#include <time.h>

static inline double
bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* For qsort() of doubles, smallest first. */
static inline int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#endif
