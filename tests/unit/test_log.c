/*
 * test_log.c - node/log.c: every message is exactly one line, whatever
 * bytes it carries (a sign-in name is chosen by whoever sends it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static int lines;	/* how many '\n' the last call wrote */

/*
 * What log_warnx("failed sign-in as '%s'", name) writes on stderr, without
 * its final '\n' (so that TAP output stays readable).
 */
static char *
logged(const char *name)
{
	static char buf[8192];
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	if (f == NULL || saved < 0)
		return NULL;
	fflush(stderr);
	dup2(fileno(f), STDERR_FILENO);
	log_warnx("failed sign-in as '%s'", name);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	if (n == 0 || buf[n - 1] != '\n')
		lines = -1;
	else
		buf[n - 1] = '\0';
	return buf;
}

/* The message part of a line: after "TIME TAG warn: ". */
static const char *
message(const char *line)
{
	const char *p = line != NULL ? strstr(line, " warn: ") : NULL;

	return p != NULL ? p + 7 : "";
}

static void
test_one_line(void)
{
	const char *forged = "x\n2026-12-01T01:40:00.000Z cordee info: signed in: 'mgr'";
	char *out = logged(forged);

	CHECK(lines == 1, "a name with a line feed stays on one line: %s", out);
	CHECK_STR(message(out), "failed sign-in as 'x\\n2026-12-01T01:40:00.000Z cordee"
	    " info: signed in: 'mgr''", "the line feed is written \\n");
}

static void
test_escapes(void)
{
	char *out = logged("a\rb\tc\x01" "d\x1f" "e\x7f" "f\x1b[31m");

	CHECK_STR(message(out), "failed sign-in as 'a\\rb\\tc\\x01d\\x1fe\\x7ff\\x1b[31m'",
	    "CR, TAB, other control bytes and DEL are escaped");
	out = logged("caf\xc3\xa9 \"quoted\" back\\slash");
	CHECK_STR(message(out), "failed sign-in as 'caf\xc3\xa9 \"quoted\" back\\slash'",
	    "UTF-8 and printable ASCII are written as they are");
}

static void
test_long(void)
{
	char big[4096];
	char *out;

	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	out = logged(big);
	CHECK(lines == 1, "a message longer than a line is cut, still one line");
	CHECK(out != NULL && strlen(out) < 2048, "and fits the line buffer (%zu)",
	    out != NULL ? strlen(out) : 0);
	CHECK(out != NULL && strlen(out) > 2 && strcmp(out + strlen(out) - 2, "\\n") == 0,
	    "without cutting an escape in two");
}

int
main(void)
{
	log_init(LOG_LEVEL_INFO, "test");
	test_one_line();
	test_escapes();
	test_long();
	return check_done();
}
