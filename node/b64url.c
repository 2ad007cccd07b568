/*
 * b64url.c - base64url without padding (RFC 4648 section 5).
 *
 * This is the encoding of every part of a JWS and of every key and pin in the
 * directory.  The decoder is deliberately strict (no padding, no white space,
 * no standard-alphabet '+' or '/', zero unused bits) so that a token has one
 * spelling only; it is not a general base64 decoder and accepts nothing else.
 */
#include <errno.h>
#include <stdlib.h>

#include "b64url.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
b64url_encoded_len(size_t n)
{
	return (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void
b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i = 0;
	char *o = out;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];

		*o++ = b64url_alphabet[(v >> 18) & 0x3f];
		*o++ = b64url_alphabet[(v >> 12) & 0x3f];
		*o++ = b64url_alphabet[(v >> 6) & 0x3f];
		*o++ = b64url_alphabet[v & 0x3f];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		*o++ = b64url_alphabet[(v >> 18) & 0x3f];
		*o++ = b64url_alphabet[(v >> 12) & 0x3f];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		*o++ = b64url_alphabet[(v >> 18) & 0x3f];
		*o++ = b64url_alphabet[(v >> 12) & 0x3f];
		*o++ = b64url_alphabet[(v >> 6) & 0x3f];
	}
	*o = '\0';
}

char *
b64url_encode_alloc(const uint8_t *in, size_t n)
{
	char *out;

	/* Guard the size computation; nothing legitimate comes close. */
	if (n > SIZE_MAX / 2)
		return NULL;
	out = malloc(b64url_encoded_len(n) + 1);
	if (out != NULL)
		b64url_encode(in, n, out);
	return out;
}

/* The 6-bit value of an alphabet character, or -1. */
static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int
b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size,
    size_t *ret_len)
{
	size_t need, o = 0, i;
	uint32_t acc = 0;
	int bits = 0;

	/* A single trailing character carries only 6 bits: never a byte. */
	if (len % 4 == 1)
		return -EINVAL;
	need = (len / 4) * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
	if (need > out_size)
		return -ENOSPC;

	for (i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/*
	 * The bits left over are padding of the last character; a canonical
	 * encoder leaves them zero, and accepting anything else would give one
	 * byte string several encodings.
	 */
	if (acc != 0)
		return -EINVAL;
	if (ret_len != NULL)
		*ret_len = o;
	return 0;
}
