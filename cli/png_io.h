/* PNG in and out for the CLI (libpng). Any PNG people have is accepted:
 * grey, grey+alpha, palette, 16-bit and tRNS are converted to 8-bit RGBA. */
#ifndef LDM_CLI_PNG_IO_H
#define LDM_CLI_PNG_IO_H

#include "ldm.h"

/* Reads path into a new RGBA U8 image; on failure returns NULL and writes a
 * one-line message naming the file into msg. `text_key`, when not NULL,
 * asks for that tEXt/iTXt chunk: its value is malloc'd into *text (NULL
 * when absent). */
ldm_image *png_read_rgba(const char *path, const char *text_key, char **text, char *msg, size_t msg_len);
/* Writes an RGB or RGBA U8 image, with an optional tEXt chunk key=value,
 * to a temporary file renamed into place (no partial file on failure). */
int png_write(const char *path, const ldm_image *img, const char *text_key, const char *text, char *msg,
              size_t msg_len);

#endif
