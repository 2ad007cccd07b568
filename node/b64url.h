/*
 * b64url.h - base64url without padding (RFC 4648 section 5), as JWS uses it.
 *
 * Decoding is strict: no padding, no white space, no characters outside the
 * URL-safe alphabet, and the unused low bits of the last character must be
 * zero, so every byte string has exactly one accepted encoding.
 */
#ifndef PASSERELLE_B64URL_H
#define PASSERELLE_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* Length of the encoding of n bytes, without the terminating NUL. */
size_t b64url_encoded_len(size_t n);

/* Encodes n bytes; out must hold b64url_encoded_len(n) + 1 bytes. */
void b64url_encode(const uint8_t *in, size_t n, char *out);

/* Returns a malloc'ed encoding, or NULL when out of memory. */
char *b64url_encode_alloc(const uint8_t *in, size_t n);

/*
 * Decodes len characters into out (out_size bytes at most).  Returns 0, or
 * -EINVAL for a malformed input, -ENOSPC when out is too small.
 */
int b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size,
    size_t *ret_len);

#endif
