/*
 * log.h - the node's one logging facility.
 *
 * Modelled on OpenBSD's log.c: log_warn() appends strerror(errno),
 * log_warnx() does not; fatal()/fatalx() exit and are for start-up only.
 * Lines go to stderr with a UTC timestamp and are safe to call from any
 * thread (one write(2) per line).
 */
#ifndef PASSERELLE_LOG_H
#define PASSERELLE_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_init(enum log_level level, const char *tag);
int log_level_parse(const char *name, enum log_level *ret);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
