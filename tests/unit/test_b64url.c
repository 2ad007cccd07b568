/*
 * test_b64url.c - base64url: RFC 4648 vectors, round trips, strictness.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "check.h"

/* RFC 4648 section 10 vectors, without the padding. */
static const struct {
	const char *plain, *encoded;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg" },
	{ "fo", "Zm8" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg" },
	{ "fooba", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *p = vectors[i].plain, *e = vectors[i].encoded;
		char out[32];
		uint8_t dec[32];
		size_t n = 99;
		int r;

		CHECK(b64url_encoded_len(strlen(p)) == strlen(e),
		    "encoded length of '%s'", p);
		b64url_encode((const uint8_t *)p, strlen(p), out);
		CHECK_STR(out, e, "encode");
		r = b64url_decode(e, strlen(e), dec, sizeof(dec), &n);
		CHECK(r == 0 && n == strlen(p) && memcmp(dec, p, n) == 0,
		    "decode '%s' (r=%d n=%zu)", e, r, n);
	}
}

/* The two characters that differ from standard base64. */
static void
test_url_alphabet(void)
{
	const uint8_t bytes[] = { 0xfb, 0xff, 0xbf };
	uint8_t dec[3];
	size_t n;
	char *s;

	s = b64url_encode_alloc(bytes, sizeof(bytes));
	CHECK_STR(s, "-_-_", "0xfbffbf uses - and _");
	CHECK(b64url_decode("-_-_", 4, dec, sizeof(dec), &n) == 0 && n == 3 &&
	    memcmp(dec, bytes, 3) == 0, "decode -_-_");
	free(s);
}

static void
test_round_trips(void)
{
	uint8_t buf[300], dec[300];
	int ok = 1;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(buf); len++) {
		char *s = b64url_encode_alloc(buf, len);
		size_t n = 0;

		if (s == NULL || strlen(s) != b64url_encoded_len(len) ||
		    b64url_decode(s, strlen(s), dec, len, &n) != 0 || n != len ||
		    memcmp(dec, buf, len) != 0)
			ok = 0;
		free(s);
	}
	CHECK(ok, "round trips of 0 to 300 bytes");
}

static void
test_rejects(void)
{
	uint8_t out[16];
	size_t n;

	CHECK(b64url_decode("Zg==", 4, out, sizeof(out), &n) == -EINVAL,
	    "padding refused");
	CHECK(b64url_decode("Zm8=", 4, out, sizeof(out), &n) == -EINVAL,
	    "single padding refused");
	CHECK(b64url_decode("Zm+v", 4, out, sizeof(out), &n) == -EINVAL,
	    "standard '+' refused");
	CHECK(b64url_decode("Zm/v", 4, out, sizeof(out), &n) == -EINVAL,
	    "standard '/' refused");
	CHECK(b64url_decode("Zm9 v", 5, out, sizeof(out), &n) == -EINVAL,
	    "space refused");
	CHECK(b64url_decode("Zm9v\n", 5, out, sizeof(out), &n) == -EINVAL,
	    "newline refused");
	CHECK(b64url_decode("Zm9\0v", 5, out, sizeof(out), &n) == -EINVAL,
	    "NUL refused");
	CHECK(b64url_decode("Zm9vY", 5, out, sizeof(out), &n) == -EINVAL,
	    "impossible length (4k+1) refused");
	/* "Zh" decodes to 'f' too if the low 4 bits are ignored. */
	CHECK(b64url_decode("Zh", 2, out, sizeof(out), &n) == -EINVAL,
	    "non-zero trailing bits (2 chars) refused");
	CHECK(b64url_decode("Zm9", 3, out, sizeof(out), &n) == -EINVAL,
	    "non-zero trailing bits (3 chars) refused");
	CHECK(b64url_decode("Zm8", 3, out, sizeof(out), &n) == 0 && n == 2,
	    "zero trailing bits accepted");
	CHECK(b64url_decode("Zm9vYmFy", 8, out, 5, &n) == -ENOSPC,
	    "output too small gives -ENOSPC");
	CHECK(b64url_decode("Zm9vYmFy", 8, out, 6, &n) == 0 && n == 6,
	    "exact output size is enough");
	CHECK(b64url_decode("\xc3\xa9", 2, out, sizeof(out), &n) == -EINVAL,
	    "non-ASCII refused");
}

int
main(void)
{
	test_vectors();
	test_url_alphabet();
	test_round_trips();
	test_rejects();
	return check_done();
}
