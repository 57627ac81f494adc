/* PNG reading/writing with libpng's simplified transforms (see png_io.h). */
#include "png_io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct png_err_ctx {
  char *msg;
  size_t len;
  const char *path;
} png_err_ctx;

static void on_error(png_structp png, png_const_charp what) {
  png_err_ctx *e = png_get_error_ptr(png);
  snprintf(e->msg, e->len, "%s: not a readable PNG (%s)", e->path, what);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp what) {
  (void)png;
  (void)what;
}

ldm_image *png_read_rgba(const char *path, const char *text_key, char **text, char *msg, size_t msg_len) {
  if (text) *text = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, msg_len, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  unsigned char sig[8];
  if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
    snprintf(msg, msg_len, "%s: not a PNG file", path);
    fclose(f);
    return NULL;
  }
  png_err_ctx ectx = {msg, msg_len, path};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  ldm_image *volatile img = NULL;
  png_bytep *volatile rows = NULL;
  if (!png || !info) {
    snprintf(msg, msg_len, "%s: out of memory", path);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return NULL;
  }
  if (setjmp(png_jmpbuf(png))) {
    ldm_image_free(img);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    if (text && *text) {
      free(*text);
      *text = NULL;
    }
    return NULL;
  }
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  png_set_user_limits(png, 65536, 65536);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int ct = png_get_color_type(png, info), bd = png_get_bit_depth(png, info);
  if (bd == 16) png_set_strip_16(png);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_filler(png, 0xff, PNG_FILLER_AFTER);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  img = ldm_image_new((int)w, (int)h, 4, LDM_PIXEL_U8);
  rows = malloc(h * sizeof *rows);
  if (!img || !rows) {
    snprintf(msg, msg_len, "%s: out of memory for %ux%u pixels", path, (unsigned)w, (unsigned)h);
    png_longjmp(png, 1);
  }
  for (png_uint_32 y = 0; y < h; y++) rows[y] = (png_bytep)img->data + y * img->stride;
  png_read_image(png, rows);
  png_read_end(png, info);
  if (text_key && text) {
    png_textp texts;
    int n = 0;
    png_get_text(png, info, &texts, &n);
    for (int i = 0; i < n; i++)
      if (!strcmp(texts[i].key, text_key)) *text = strdup(texts[i].text ? texts[i].text : "");
  }
  free(rows);
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
  return img;
}

int png_write(const char *path, const ldm_image *img, const char *text_key, const char *text, char *msg,
              size_t msg_len) {
  if (!img || img->type != LDM_PIXEL_U8 || (img->channels != 3 && img->channels != 4)) {
    snprintf(msg, msg_len, "%s: only 8-bit RGB/RGBA images can be written", path);
    return -1;
  }
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) {
    snprintf(msg, msg_len, "%s: out of memory", path);
    return -1;
  }
  snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd >= 0) (void)fchmod(fd, 0644);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    snprintf(msg, msg_len, "%s: cannot create: %s", path, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(tmp);
    }
    free(tmp);
    return -1;
  }
  png_err_ctx ectx = {msg, msg_len, path};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ectx, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    if (!png || !info) snprintf(msg, msg_len, "%s: out of memory", path);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    unlink(tmp);
    free(tmp);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
               img->channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (text_key && text) {
    png_text t = {0};
    t.compression = PNG_TEXT_COMPRESSION_NONE;
    t.key = (png_charp)text_key;
    t.text = (png_charp)text;
    t.text_length = strlen(text);
    png_set_text(png, info, &t, 1);
  }
  png_write_info(png, info);
  for (int y = 0; y < img->height; y++) png_write_row(png, (png_const_bytep)img->data + (size_t)y * img->stride);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  int bad = fflush(f) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    snprintf(msg, msg_len, "%s: cannot write: %s", path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}
