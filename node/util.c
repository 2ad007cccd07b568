/*
 * util.c - files, time and random identifiers for every module.
 *
 * Randomness comes from libsodium (randombytes_buf), which reads the
 * kernel's generator; nothing here is secret-specific beyond that.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "b64url.h"
#include "util.h"

size_t
util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int
util_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nbuf;

			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= len + 1) {
				r = -EFBIG;
				goto out;
			}
			nbuf = realloc(buf, ncap);
			if (nbuf == NULL) {
				r = -ENOMEM;
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	buf[len] = '\0';
	*ret = buf;
	buf = NULL;
	if (ret_len != NULL)
		*ret_len = len;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int
util_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char *tmp;
	const char *p = data;
	int fd, r = 0;

	tmp = util_aprintf("%s.tmp.%ld", path, (long)getpid());
	if (tmp == NULL)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	/* The umask must not widen or narrow what the caller asked for. */
	if (fchmod(fd, mode) < 0)
		r = -errno;
	while (r == 0 && len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
out:
	free(tmp);
	return r;
}

char *
util_path_join(const char *dir, const char *path)
{
	if (path[0] == '/' || dir == NULL || dir[0] == '\0')
		return strdup(path);
	return util_aprintf("%s/%s", dir, path);
}

int
util_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t len = util_strlcpy(buf, path, sizeof(buf));

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int64_t
util_now(void)
{
	return (int64_t)time(NULL);
}

int64_t
util_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
util_format_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
util_parse_time(const char *s, int64_t *ret)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -EINVAL;
	if (*end == '.') /* fractions of a second are dropped */
		while (*++end >= '0' && *end <= '9')
			;
	if (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)
		return -EINVAL;
	*ret = (int64_t)timegm(&tm);
	return 0;
}

void
util_uuid_v4(char out[37])
{
	uint8_t b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
	    b[11], b[12], b[13], b[14], b[15]);
}

void
util_random_token(char *out, size_t nbytes)
{
	uint8_t b[64];

	if (nbytes > sizeof(b))
		nbytes = sizeof(b);
	randombytes_buf(b, nbytes);
	b64url_encode(b, nbytes, out);
	sodium_memzero(b, sizeof(b));
}

void
util_random_id(char *out, size_t nbytes)
{
	do
		util_random_token(out, nbytes);
	while (out[0] == '-' || out[0] == '_');
}

void
util_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

void
util_sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	util_hex(h, sizeof(h), out);
}

int
util_parse_duration(const char *s, int64_t *ret_seconds)
{
	char *end;
	long long v;
	int64_t mult = 1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		return -EINVAL;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mult = 1;
	else if (strcmp(end, "ms") == 0)
		mult = -1000; /* marker: milliseconds, see below */
	else if (strcmp(end, "m") == 0)
		mult = 60;
	else if (strcmp(end, "h") == 0)
		mult = 3600;
	else if (strcmp(end, "d") == 0)
		mult = 86400;
	else
		return -EINVAL;
	if (mult < 0) {
		/*
		 * Only whole seconds are representable; round up, without
		 * adding to v, which may be LLONG_MAX.
		 */
		*ret_seconds = v / 1000 + (v % 1000 != 0);
		return 0;
	}
	if (v > INT64_MAX / mult)
		return -ERANGE;
	*ret_seconds = v * mult;
	return 0;
}

const char *
util_json_string(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool
util_json_is(const cJSON *o, const char *name, const char *value)
{
	const char *s = util_json_string(o, name);

	return s != NULL && value != NULL && strcmp(s, value) == 0;
}

int
util_json_int(const cJSON *o, const char *name, int min, int max, bool allow_null,
    int *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	double d;

	if (v == NULL)
		return 0;
	if (allow_null && cJSON_IsNull(v)) {
		*ret = -1;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return -EINVAL;
	d = v->valuedouble;
	/* In range before the cast, which is undefined outside int's. */
	if (!(d >= min && d <= max) || d != (double)(int)d)
		return -EINVAL;
	*ret = (int)d;
	return 0;
}

size_t
util_utf8_prefix(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			break;
		}
		if (len - i <= n)
			break;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			break;
		i += n + 1;
	}
	return i;
}

char *
util_aprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

int
util_parse_listen(const char *addr, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char *colon, *p;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (end == NULL || end[1] != ':')
			return -EINVAL;
		snprintf(host, hostlen, "%.*s", (int)(end - addr - 1), addr + 1);
		p = end + 2;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL || colon == addr)
			return -EINVAL;
		snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
		p = colon + 1;
	}
	if (p[0] == '\0' || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p) ||
	    atoi(p) > 65535)
		return -EINVAL;
	snprintf(port, portlen, "%s", p);
	return 0;
}
