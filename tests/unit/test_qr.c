/*
 * test_qr.c - QR rendering: a well-formed SVG of the right size with its
 * quiet zone, and a terminal rendering of the same symbol.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qr.h"

/* A pass-sized text: 340 bytes of base64url and dots. */
static char pass_text[341];

static int
count(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_svg(void)
{
	char *svg = NULL, *big;
	int r, size = 0;
	const char *vb;

	r = qr_svg(pass_text, &svg);
	CHECK(r == 0 && svg != NULL, "SVG of a pass-sized text (r=%d)", r);
	if (svg == NULL)
		return;
	CHECK(strncmp(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ",
	    44) == 0, "starts with the XML declaration and <svg");
	CHECK(strlen(svg) > 7 && strcmp(svg + strlen(svg) - 7, "</svg>\n") == 0,
	    "ends with </svg>");
	CHECK(count(svg, "<path") == 1, "exactly one <path>");
	CHECK(count(svg, "<svg") == 1 && count(svg, "</svg>") == 1,
	    "one svg element");
	CHECK(strstr(svg, "shape-rendering=\"crispEdges\"") != NULL, "crispEdges");
	CHECK(strstr(svg, "xmlns=\"http://www.w3.org/2000/svg\"") != NULL,
	    "SVG namespace");
	vb = strstr(svg, "viewBox=\"0 0 ");
	CHECK(vb != NULL && sscanf(vb, "viewBox=\"0 0 %d", &size) == 1,
	    "viewBox present");
	/* Versions are 21 + 4k modules wide; the quiet zone adds 8. */
	CHECK(size >= 29 && (size - 29) % 4 == 0 && size <= 185,
	    "viewBox size %d is a QR width plus the quiet zone", size);
	/* The finder pattern's top-left corner sits just inside the quiet zone. */
	CHECK(strstr(svg, "d=\"M4 4h7v1h-7z") != NULL,
	    "first run is the top-left finder pattern at (4, 4)");
	CHECK(strstr(svg, "M0 ") == NULL && strstr(svg, "M1 ") == NULL,
	    "nothing drawn in the quiet zone");
	free(svg);

	svg = NULL;
	big = malloc(4000);
	memset(big, 'x', 3999);
	big[3999] = '\0';
	CHECK(qr_svg(big, &svg) < 0 && svg == NULL, "text too long for any QR "
	    "code refused");
	free(big);
}

static void
test_text(void)
{
	char *text = NULL, *svg = NULL;
	int r, lines, size = 0;
	const char *vb;

	r = qr_text("https://passerelle.example/p/abc", &text);
	CHECK(r == 0 && text != NULL && text[0] != '\0',
	    "text rendering is not empty (r=%d)", r);
	if (text == NULL)
		return;
	CHECK(strstr(text, "\xe2\x96\x80") != NULL &&
	    strstr(text, "\xe2\x96\x84") != NULL && strstr(text, " ") != NULL,
	    "uses upper and lower half blocks and spaces");
	CHECK(qr_svg("https://passerelle.example/p/abc", &svg) == 0,
	    "SVG of the same text");
	vb = svg ? strstr(svg, "viewBox=\"0 0 ") : NULL;
	if (vb != NULL)
		sscanf(vb, "viewBox=\"0 0 %d", &size);
	lines = count(text, "\n");
	CHECK(size > 0 && lines == (size + 1) / 2,
	    "%d lines for %d rows (two rows per line)", lines, size);
	/* The first line is quiet zone only: full blocks, size of them. */
	CHECK(strncmp(text, "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88", 12) == 0,
	    "first line starts with the quiet zone");
	CHECK(strchr(text, '\n') - text == 3 * size, "each line is %d modules wide",
	    size);
	free(svg);
	free(text);
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(pass_text) - 1; i++)
		pass_text[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij-_."[i % 39];
	test_svg();
	test_text();
	return check_done();
}
