/*
 * qr.c - a pass as a QR code: SVG for the web page, text for the terminal.
 *
 * libqrencode computes the modules (byte mode, error correction level M, the
 * smallest version that fits); rendering is ours so that the SVG is one small
 * <path> that scales crisply.  Both renderings keep the 4-module quiet zone
 * that scanners need.  Nothing here knows what the text means.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#include "qr.h"

#define QR_QUIET 4
#define QR_MAX_TEXT 2953 /* the most bytes a version 40-L symbol holds */

static int
qr_encode(const char *text, QRcode **ret)
{
	QRcode *q;

	if (strlen(text) > QR_MAX_TEXT)
		return -E2BIG;
	errno = 0;
	q = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
	if (q == NULL)
		return errno == ERANGE ? -E2BIG : errno != 0 ? -errno : -EINVAL;
	*ret = q;
	return 0;
}

/* Whether the module at (x, y) of the symbol is dark; bit 0 says so. */
static int
qr_dark(const QRcode *q, int x, int y)
{
	if (x < 0 || y < 0 || x >= q->width || y >= q->width)
		return 0;
	return q->data[y * q->width + x] & 1;
}

int
qr_svg(const char *text, char **ret_svg)
{
	QRcode *q = NULL;
	char *svg = NULL;
	size_t cap, len = 0;
	int r, size, n;

	r = qr_encode(text, &q);
	if (r < 0)
		return r;
	size = q->width + 2 * QR_QUIET;

	/*
	 * Each run of dark modules in a row becomes one rectangle
	 * "M{x} {y}h{n}v1h-{n}z" of at most 24 bytes; a row of width w has at
	 * most (w + 1) / 2 runs.  The head and tail fit in 512 bytes.
	 */
	cap = 512 + (size_t)q->width * (size_t)((q->width + 1) / 2) * 24;
	svg = malloc(cap);
	if (svg == NULL) {
		r = -ENOMEM;
		goto out;
	}
	n = snprintf(svg, cap,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
	    "viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">\n"
	    "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n"
	    "<path fill=\"#000000\" d=\"",
	    size, size, size, size);
	len = (size_t)n;
	for (int y = 0; y < q->width; y++) {
		for (int x = 0; x < q->width;) {
			int run = 0;

			if (!qr_dark(q, x, y)) {
				x++;
				continue;
			}
			while (qr_dark(q, x + run, y))
				run++;
			n = snprintf(svg + len, cap - len, "M%d %dh%dv1h-%dz",
			    x + QR_QUIET, y + QR_QUIET, run, run);
			len += (size_t)n;
			x += run;
		}
	}
	n = snprintf(svg + len, cap - len, "\"/>\n</svg>\n");
	len += (size_t)n;
	*ret_svg = svg;
	svg = NULL;
	r = 0;
out:
	free(svg);
	QRcode_free(q);
	return r;
}

/*
 * Terminal rendering: each character shows two rows of modules with the
 * Unicode half blocks.  Like `qrencode -t UTF8`, the characters draw the
 * light modules, so the code reads correctly on the usual light-on-dark
 * terminal; the quiet zone is drawn too.
 */
int
qr_text(const char *text, char **ret_text)
{
	static const char *const glyph[4] = {
		" ",		/* both dark */
		"\xe2\x96\x84", /* U+2584 lower half: bottom light */
		"\xe2\x96\x80", /* U+2580 upper half: top light */
		"\xe2\x96\x88", /* U+2588 full block: both light */
	};
	QRcode *q = NULL;
	char *out = NULL;
	size_t cap, len = 0;
	int r, size;

	r = qr_encode(text, &q);
	if (r < 0)
		return r;
	size = q->width + 2 * QR_QUIET;
	cap = (size_t)((size + 1) / 2) * ((size_t)size * 3 + 1) + 1;
	out = malloc(cap);
	if (out == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (int y = 0; y < size; y += 2) {
		for (int x = 0; x < size; x++) {
			int mx = x - QR_QUIET, my = y - QR_QUIET;
			int top = !qr_dark(q, mx, my);
			/* Past the last row there is nothing to draw. */
			int bottom = y + 1 < size && !qr_dark(q, mx, my + 1);
			const char *g = glyph[top << 1 | bottom];
			size_t glen = strlen(g);

			memcpy(out + len, g, glen);
			len += glen;
		}
		out[len++] = '\n';
	}
	out[len] = '\0';
	*ret_text = out;
	out = NULL;
	r = 0;
out:
	free(out);
	QRcode_free(q);
	return r;
}
