/*
 * test_util.c - files, time formats, durations and random ids.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "util.h"
#include "visit.h"

static void
test_time(void)
{
	char buf[32];
	int64_t t = 0;

	util_format_time(1767225600, buf);
	CHECK_STR(buf, "2026-01-01T00:00:00Z", "format");
	CHECK(util_parse_time("2026-01-01T00:00:00Z", &t) == 0 && t == 1767225600, "parse");
	CHECK(util_parse_time("2026-01-01T00:00:00.250Z", &t) == 0 && t == 1767225600,
	    "fractions dropped");
	CHECK(util_parse_time("2026-01-01T00:00:00+00:00", &t) == 0, "+00:00 accepted");
	CHECK(util_parse_time("2026-01-01T01:00:00+01:00", &t) < 0, "other offsets refused");
	CHECK(util_parse_time("yesterday", &t) < 0, "garbage refused");
}

static void
test_duration(void)
{
	int64_t s = 0;

	CHECK(util_parse_duration("90", &s) == 0 && s == 90, "bare seconds");
	{
		char host[64], port[8];

		CHECK(util_parse_listen("127.0.0.1:7080", host, sizeof(host), port,
		    sizeof(port)) == 0 && strcmp(host, "127.0.0.1") == 0 &&
		    strcmp(port, "7080") == 0, "HOST:PORT");
		CHECK(util_parse_listen("[::1]:443", host, sizeof(host), port,
		    sizeof(port)) == 0 && strcmp(host, "::1") == 0 &&
		    strcmp(port, "443") == 0, "[IPV6]:PORT");
		CHECK(util_parse_listen("nonsense", host, sizeof(host), port,
		    sizeof(port)) == -EINVAL, "no port");
		CHECK(util_parse_listen("h:", host, sizeof(host), port, sizeof(port)) ==
		    -EINVAL && util_parse_listen("h:http", host, sizeof(host), port,
		    sizeof(port)) == -EINVAL && util_parse_listen("h:65536", host,
		    sizeof(host), port, sizeof(port)) == -EINVAL &&
		    util_parse_listen(":80", host, sizeof(host), port, sizeof(port)) ==
		    -EINVAL && util_parse_listen("[::1]80", host, sizeof(host), port,
		    sizeof(port)) == -EINVAL, "empty, named, too big, no host, no colon");
	}
	CHECK(util_parse_duration("15m", &s) == 0 && s == 900, "minutes");
	CHECK(util_parse_duration("5h", &s) == 0 && s == 18000, "hours");
	CHECK(util_parse_duration("30d", &s) == 0 && s == 2592000, "days");
	CHECK(util_parse_duration("1500ms", &s) == 0 && s == 2, "milliseconds round up");
	CHECK(util_parse_duration("2000ms", &s) == 0 && s == 2, "whole seconds stay");
	CHECK(util_parse_duration("9223372036854775807ms", &s) == 0 &&
	    s == 9223372036854776, "the largest count of milliseconds rounds up "
	    "without overflow (%lld)", (long long)s);
	CHECK(util_parse_duration("-5s", &s) < 0, "negative refused");
	CHECK(util_parse_duration("5 h", &s) < 0, "space refused");
	CHECK(util_parse_duration("99999999999999999d", &s) < 0, "overflow refused");
}

static void
test_ids(void)
{
	char a[37], b[37], t[64];

	util_uuid_v4(a);
	util_uuid_v4(b);
	CHECK(visit_id_valid(a), "uuid is canonical: %s", a);
	CHECK(a[14] == '4' && strchr("89ab", a[19]) != NULL, "version 4, variant 1");
	CHECK(strcmp(a, b) != 0, "two uuids differ");
	CHECK(!visit_id_valid("134EBFE2-39fc-48cc-a075-ca0acdd62d9b"), "upper case refused");
	CHECK(!visit_id_valid("134ebfe2-39fc-48cc-a075-ca0acdd62d9"), "short refused");
	CHECK(!visit_id_valid("'; drop table visits; --'''''''''''''"), "junk refused");
	util_random_token(t, 9);
	CHECK(strlen(t) == 12, "9 random bytes are 12 base64url characters");
}

static void
test_files(void)
{
	char dir[] = "/tmp/passerelle-test-util-XXXXXX", path[256], *data = NULL;
	struct stat st;
	size_t len = 0;

	CHECK(mkdtemp(dir) != NULL, "temp dir");
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	CHECK(util_mkdir_p(path, 0755) == 0, "mkdir -p");
	CHECK(util_mkdir_p(path, 0755) == 0, "mkdir -p again");
	snprintf(path, sizeof(path), "%s/secret", dir);
	umask(0);
	CHECK(util_write_file(path, "hello", 5, 0600) == 0, "write");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600 kept");
	CHECK(util_read_file(path, 100, &data, &len) == 0 && len == 5 &&
	    strcmp(data, "hello") == 0, "read back");
	free(data);
	data = NULL;
	CHECK(util_read_file(path, 4, &data, &len) == -EFBIG, "size limit enforced");
	CHECK(util_read_file("/nonexistent", 4, &data, &len) == -ENOENT, "missing file");
	unlink(path);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	CHECK(system(path) == 0, "cleanup");
}

static void
test_utf8(void)
{
	static const struct {
		const char *s;
		size_t prefix;
	} cases[] = {
		{ "plain ASCII", 11 },
		{ "num\xc3\xa9rique", 10 },		/* é */
		{ "\xe2\x82\xac \xf0\x9f\x98\x80", 8 },	/* € and an emoji */
		{ "ab\xff", 2 },			/* never a UTF-8 byte */
		{ "ab\xc3", 2 },			/* cut short */
		{ "ab\xc3(", 2 },			/* not a continuation */
		{ "\xc0\xaf", 0 },			/* overlong '/' */
		{ "\xe0\x80\xaf", 0 },		/* overlong '/' */
		{ "x\xed\xa0\x80", 1 },		/* a UTF-16 surrogate */
		{ "\xf4\x90\x80\x80", 0 },		/* past U+10FFFF */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(util_utf8_prefix(cases[i].s, strlen(cases[i].s)) == cases[i].prefix,
		    "utf8 prefix of case %zu is %zu", i, cases[i].prefix);
	CHECK(util_utf8_valid("", 0), "the empty string is UTF-8");
	CHECK(!util_utf8_valid("\xff", 1), "0xff is not");
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_time();
	test_duration();
	test_ids();
	test_files();
	test_utf8();
	return check_done();
}
