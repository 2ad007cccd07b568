/*
 * log.c - timestamped log lines on stderr.
 *
 * Each line is formatted into one buffer and written with one write(2), so
 * lines from the loop threads and the workers never interleave.  This is not
 * an audit trail: what must be kept goes to PostgreSQL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level log_max = LOG_LEVEL_INFO;
/* A copy: the caller's string may be freed (a reloaded configuration). */
static char log_tag[64] = "passerelle";

void
log_init(enum log_level level, const char *tag)
{
	log_max = level;
	if (tag != NULL)
		snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

int
log_level_parse(const char *name, enum log_level *ret)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

/*
 * Appends s to out (holding n bytes), with \n, \r, \t and \xNN for the
 * bytes below 0x20 and 0x7f; stops short rather than cut an escape in two.
 * Returns the new length.
 */
static size_t
log_escape(char *out, size_t len, size_t n, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		char esc[5];
		size_t k;

		if (*p >= 0x20 && *p != 0x7f) {
			esc[0] = (char)*p;
			k = 1;
		} else if (*p == '\n') {
			memcpy(esc, "\\n", 2);
			k = 2;
		} else if (*p == '\r') {
			memcpy(esc, "\\r", 2);
			k = 2;
		} else if (*p == '\t') {
			memcpy(esc, "\\t", 2);
			k = 2;
		} else {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			k = 4;
		}
		if (n + k >= len)
			break;
		memcpy(out + n, esc, k);
		n += k;
	}
	if (n < len)
		out[n] = '\0';
	return n;
}

static void
log_vwrite(enum log_level level, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
log_vwrite(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	static const char *const labels[] = { "error", "warn", "info", "debug" };
	char line[2048], text[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (level > log_max)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ",
	    ts.tv_nsec / 1000000, log_tag, labels[level]);
	/*
	 * A message is one line: control bytes in it (a sign-in name, a
	 * path, a peer's text) are escaped, so that nothing a client sends
	 * can forge a line of its own.
	 */
	vsnprintf(text, sizeof(text), fmt, ap);
	n = log_escape(line, sizeof(line) - 1, n, text);	/* room for '\n' */
	if (errnum != 0 && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s",
		    strerror(errnum));
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
