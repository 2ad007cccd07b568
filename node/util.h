/*
 * util.h - small helpers every module needs: files, time, random ids.
 *
 * Nothing here knows about the federation; it is the C library the node
 * wishes it had.  Functions return 0 or a negative errno-style code.
 */
#ifndef PASSERELLE_UTIL_H
#define PASSERELLE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal. */
#define UTIL_STR(x) UTIL_STR_(x)
#define UTIL_STR_(x) #x

/* Copies at most size - 1 bytes and always terminates; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* Reads a whole file of at most max bytes; *ret is NUL-terminated. */
int util_read_file(const char *path, size_t max, char **ret, size_t *ret_len);

/*
 * Writes a file atomically (temporary file, fsync, rename) with the given
 * mode, so that a crash leaves either the old or the new content whole.
 */
int util_write_file(const char *path, const void *data, size_t len, mode_t mode);

/* Joins a directory and a relative path; absolute paths are returned as is. */
char *util_path_join(const char *dir, const char *path);

/* Creates a directory and its parents (like mkdir -p). */
int util_mkdir_p(const char *path, mode_t mode);

/* Seconds since the epoch (UTC) and a monotonic clock in microseconds. */
int64_t util_now(void);
int64_t util_monotonic_us(void);

/* RFC 3339 UTC ("2026-11-30T08:15:00Z") to and from epoch seconds. */
void util_format_time(int64_t t, char out[32]);
int util_parse_time(const char *s, int64_t *ret);

/* A random version 4 UUID in its canonical lower-case form. */
void util_uuid_v4(char out[37]);

/* nbytes of randomness, base64url-encoded (out needs 4*nbytes/3 + 2). */
void util_random_token(char *out, size_t nbytes);

/*
 * The same for an identifier people type or paste on a command line
 * (pseudonyms, pass ids): it never starts with '-' or '_', so that it is
 * never taken for an option.
 */
void util_random_id(char *out, size_t nbytes);

/* Lower-case hex of len bytes into out (2*len + 1). */
void util_hex(const uint8_t *in, size_t len, char *out);

/* SHA-256 of len bytes, as 64 lower-case hex digits. */
void util_sha256_hex(const void *data, size_t len, char out[65]);

/* Parses a duration like "90s", "15m", "5h", "30d" (bare number: seconds). */
int util_parse_duration(const char *s, int64_t *ret_seconds);

/*
 * A listen address, HOST:PORT or [IPV6]:PORT, into its host and its port
 * (0 to 65535, digits only): 0, or -EINVAL.  The host is not resolved.
 */
int util_parse_listen(const char *addr, char *host, size_t hostlen, char *port,
    size_t portlen);

/* The string member name of a JSON object, or NULL (absent, not a string). */
const char *util_json_string(const cJSON *o, const char *name);
/* Whether o[name] is a string equal to value (never for a NULL value). */
bool util_json_is(const cJSON *o, const char *name, const char *value);
/*
 * The whole number o[name], from min to max, into *ret: 0 (*ret unchanged
 * when the member is absent; -1 for null when allow_null), -EINVAL for
 * anything else (1.7, "3", true, out of range).
 */
int util_json_int(const cJSON *o, const char *name, int min, int max, bool allow_null,
    int *ret);

/*
 * The length of the longest prefix of s[0..len) that is well-formed UTF-8
 * (no overlong forms, no UTF-16 surrogates, nothing past U+10FFFF); len
 * when all of it is.
 */
size_t util_utf8_prefix(const char *s, size_t len);
#define util_utf8_valid(s, len) (util_utf8_prefix((s), (len)) == (len))

/* malloc'ed printf; NULL only on allocation failure. */
char *util_aprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
