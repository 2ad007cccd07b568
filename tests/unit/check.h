/*
 * check.h - a minimal TAP producer for the unit tests (meson reads TAP).
 *
 * CHECK(cond, ...) records one test point; a failing point prints its file,
 * line and message.  check_done() prints the plan and returns the exit code.
 */
#ifndef PASSERELLE_CHECK_H
#define PASSERELLE_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_count, check_failed;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		check_count++;                                            \
		if (cond) {                                               \
			printf("ok %d - ", check_count);                  \
		} else {                                                  \
			check_failed++;                                   \
			printf("not ok %d - %s:%d: ", check_count,        \
			    __FILE__, __LINE__);                          \
		}                                                         \
		printf(__VA_ARGS__);                                      \
		printf("\n");                                             \
	} while (0)

#define CHECK_STR(a, b, what)                                             \
	do {                                                              \
		const char *check_a_ = (a), *check_b_ = (b);              \
		CHECK(check_a_ != NULL && check_b_ != NULL &&             \
		    strcmp(check_a_, check_b_) == 0, "%s: '%s' == '%s'",  \
		    what, check_a_ ? check_a_ : "(null)",                 \
		    check_b_ ? check_b_ : "(null)");                      \
	} while (0)

static inline int
check_done(void)
{
	printf("1..%d\n", check_count);
	return check_failed == 0 ? 0 : 1;
}

#endif
