/* PNG in and out for the CLI (libpng). Any PNG people have is accepted:
 * grey, grey+alpha, palette, 16-bit and tRNS are converted to 8-bit RGBA. */
#ifndef LDM_CLI_PNG_IO_H
#define LDM_CLI_PNG_IO_H

#include "ldm.h"

/* Reads path into a new RGBA U8 image; on failure returns NULL and writes a
 * one-line message naming the file into msg. `text_key`, when not NULL,
 * asks for that tEXt/iTXt chunk: its value is malloc'd into *text (NULL
 * when absent). The size is read first and admitted before any pixel is
 * decoded: at most LDM_MAX_IMAGE_SIDE a side, and the decoded pixels within
 * png_io_set_memory_limit's limit. */
ldm_image *png_read_rgba(const char *path, const char *text_key, char **text, char *msg, size_t msg_len);
/* As png_read_rgba on an open stream (left open); `path` names it. */
ldm_image *png_read_rgba_stream(void *stream, const char *path, const char *text_key, char **text, char *msg,
                                size_t msg_len);
/* The most bytes a decode may take: 0 = the memory available now
 * (ldm_memory_available_bytes), -1 = no limit. */
void png_io_set_memory_limit(int64_t bytes);

/* A PNG's size and one text chunk, read without decoding a pixel: the chunk
 * list is walked (IDAT skipped); tEXt, zTXt and iTXt (compressed or not)
 * are read. *text is malloc'd (NULL when absent). Returns 0, or -1 with a
 * message naming the file. */
int png_read_meta(const char *path, const char *text_key, int *width, int *height, char **text, char *msg,
                  size_t msg_len);
/* As png_read_meta on an open stream; `name` names it in messages. */
int png_read_meta_stream(void *stream, const char *name, const char *text_key, int *width, int *height,
                         char **text, char *msg, size_t msg_len);

/* 0 when path may be written (missing, or a regular file); -1 with a
 * message when it is a device, FIFO, folder, socket... that a rename would
 * replace. */
int png_check_target(const char *path, char *msg, size_t msg_len);

/* For SIGINT/SIGTERM handlers: removes the temporary file a png_write in
 * progress has made (async-signal-safe). */
void png_io_remove_partial(void);

/* Writes an RGB or RGBA U8 image, with an optional tEXt chunk key=value,
 * to a temporary file renamed into place (no partial file on failure). */
int png_write(const char *path, const ldm_image *img, const char *text_key, const char *text, char *msg,
              size_t msg_len);

#endif
