/*
 * qr.h - a pass as a QR code, rendered as SVG from libqrencode's modules.
 */
#ifndef PASSERELLE_QR_H
#define PASSERELLE_QR_H

/* Encodes text (byte mode, error correction M) as a standalone SVG document. */
int qr_svg(const char *text, char **ret_svg);

/* The same QR code as text for a terminal (two modules per character). */
int qr_text(const char *text, char **ret_text);

#endif
