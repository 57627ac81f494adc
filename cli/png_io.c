/* PNG reading/writing with libpng's simplified transforms (see png_io.h). */
#include "png_io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int64_t memory_limit; /* 0 = MemAvailable, -1 = none */

void png_io_set_memory_limit(int64_t bytes) { memory_limit = bytes; }

/* Refuses w x h RGBA pixels beyond the side limit or the memory limit. */
static int admit_size(const char *path, uint64_t w, uint64_t h, char *msg, size_t msg_len) {
  if (w < 1 || h < 1 || w > LDM_MAX_IMAGE_SIDE || h > LDM_MAX_IMAGE_SIDE) {
    snprintf(msg, msg_len, "%s: the image is %llux%llu pixels: ldm takes 1 to %d pixels a side", path,
             (unsigned long long)w, (unsigned long long)h, LDM_MAX_IMAGE_SIDE);
    return -1;
  }
  uint64_t need = w * h * 4 + h * sizeof(void *);
  uint64_t limit = memory_limit < 0 ? 0 : memory_limit > 0 ? (uint64_t)memory_limit : ldm_memory_available_bytes();
  if (limit > 0 && need > limit) {
    snprintf(msg, msg_len, "%s: decoding its %llux%llu pixels needs %llu MiB, more than the %llu MiB %s", path,
             (unsigned long long)w, (unsigned long long)h, (unsigned long long)(need >> 20),
             (unsigned long long)(limit >> 20), memory_limit > 0 ? "allowed (--max-memory)" : "available");
    return -1;
  }
  return 0;
}

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

ldm_image *png_read_rgba_stream(void *stream, const char *path, const char *text_key, char **text, char *msg,
                                size_t msg_len) {
  if (text) *text = NULL;
  FILE *f = stream;
  /* the text through our chunk walk (bounded), then the pixels through
   * libpng with the text and other large ancillary chunks skipped unread:
   * libpng allocates a chunk's declared length before reading it */
  if (text_key && text) {
    if (png_read_meta_stream(f, path, text_key, NULL, NULL, text, msg, msg_len) != 0) return NULL;
    if (fseek(f, 0, SEEK_SET) != 0) {
      snprintf(msg, msg_len, "%s: cannot read it twice (not seekable)", path);
      free(*text);
      *text = NULL;
      return NULL;
    }
  }
  unsigned char sig[8];
  if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
    snprintf(msg, msg_len, "%s: not a PNG file", path);
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
    return NULL;
  }
  if (setjmp(png_jmpbuf(png))) {
    ldm_image_free(img);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    if (text && *text) {
      free(*text);
      *text = NULL;
    }
    return NULL;
  }
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  /* the size is admitted by admit_size (with a message that says why);
   * text chunks are bounded */
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_set_chunk_malloc_max(png, (png_alloc_size_t)8 << 20);
  static const png_byte skipped[] = "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf\0";
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped, 6);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (admit_size(path, w, h, msg, msg_len) != 0) {
    png_destroy_read_struct(&png, &info, NULL);
    return NULL;
  }
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
  free(rows);
  png_destroy_read_struct(&png, &info, NULL);
  return img;
}

ldm_image *png_read_rgba(const char *path, const char *text_key, char **text, char *msg, size_t msg_len) {
  if (text) *text = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, msg_len, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  ldm_image *img = png_read_rgba_stream(f, path, text_key, text, msg, msg_len);
  fclose(f);
  return img;
}

static char partial[4096];
static volatile sig_atomic_t partial_set;

void png_io_remove_partial(void) {
  if (partial_set) unlink(partial);
  partial_set = 0;
}

int png_check_target(const char *path, char *msg, size_t msg_len) {
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    snprintf(msg, msg_len, "%s: exists and is not a regular file (%s): refusing to replace it", path,
             S_ISDIR(st.st_mode)    ? "a folder"
             : S_ISCHR(st.st_mode)  ? "a character device"
             : S_ISBLK(st.st_mode)  ? "a block device"
             : S_ISFIFO(st.st_mode) ? "a FIFO"
             : S_ISSOCK(st.st_mode) ? "a socket"
                                    : "not a file");
    return -1;
  }
  return 0;
}

int png_write(const char *path, const ldm_image *img, const char *text_key, const char *text, char *msg,
              size_t msg_len) {
  if (!img || img->type != LDM_PIXEL_U8 || (img->channels != 3 && img->channels != 4)) {
    snprintf(msg, msg_len, "%s: only 8-bit RGB/RGBA images can be written", path);
    return -1;
  }
  if (png_check_target(path, msg, msg_len) != 0) return -1;
  size_t plen = strlen(path);
  if (plen + 16 > sizeof partial) {
    snprintf(msg, msg_len, "%.200s...: path too long", path);
    return -1;
  }
  char *tmp = malloc(plen + 16);
  if (!tmp) {
    snprintf(msg, msg_len, "%s: out of memory", path);
    return -1;
  }
  /* the name a SIGINT/SIGTERM handler removes (png_io_remove_partial) */
  snprintf(partial, sizeof partial, "%s.tmpXXXXXX", path);
  partial_set = 1;
  int fd = mkstemp(partial);
  snprintf(tmp, plen + 16, "%s", partial);
  if (fd < 0) partial_set = 0;
  if (fd >= 0) (void)fchmod(fd, 0644);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    snprintf(msg, msg_len, "%s: cannot create: %s", path, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(tmp);
    }
    partial_set = 0;
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
    partial_set = 0;
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
    partial_set = 0;
    free(tmp);
    return -1;
  }
  partial_set = 0;
  free(tmp);
  return 0;
}

/* ---- metadata without decoding ------------------------------------------ */

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

enum { TEXT_MAX = 1 << 20 }; /* the most text a chunk may hold, inflated (recipes are KBs) */

/* zlib data -> malloc'd NUL-terminated text of at most TEXT_MAX bytes. */
static char *inflate_text(const unsigned char *z, size_t n) {
  z_stream zs = {0};
  if (inflateInit(&zs) != Z_OK) return NULL;
  size_t cap = 4096, len = 0;
  char *out = malloc(cap + 1);
  zs.next_in = (unsigned char *)z;
  zs.avail_in = (uInt)n;
  int rc = Z_OK;
  while (out && rc == Z_OK) {
    if (len == cap) {
      if (cap >= TEXT_MAX) break;
      cap *= 2;
      char *o2 = realloc(out, cap + 1);
      if (!o2) {
        free(out);
        out = NULL;
        break;
      }
      out = o2;
    }
    zs.next_out = (unsigned char *)out + len;
    zs.avail_out = (uInt)(cap - len);
    rc = inflate(&zs, Z_NO_FLUSH);
    len = cap - zs.avail_out;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  if (!out || rc != Z_STREAM_END) {
    free(out);
    return NULL;
  }
  out[len] = '\0';
  return out;
}

/* A tEXt / zTXt / iTXt chunk's value when its keyword is key: 1 found
 * (*text set), 0 another keyword, -1 malformed. */
static int chunk_text(const char *type, const unsigned char *d, size_t n, const char *key, char **text) {
  const unsigned char *nul = memchr(d, 0, n);
  if (!nul || nul == d || nul - d > 79) return -1;
  if (strlen(key) != (size_t)(nul - d) || memcmp(d, key, (size_t)(nul - d)) != 0) return 0;
  const unsigned char *p = nul + 1, *end = d + n;
  if (!strcmp(type, "tEXt")) {
    *text = strndup((const char *)p, (size_t)(end - p));
    return *text ? 1 : -1;
  }
  if (!strcmp(type, "zTXt")) {
    if (p >= end || *p != 0) return -1;
    *text = inflate_text(p + 1, (size_t)(end - p - 1));
    return *text ? 1 : -1;
  }
  /* iTXt: compression flag, method, language\0, translated keyword\0, text */
  if (end - p < 2) return -1;
  int compressed = p[0];
  p += 2;
  for (int k = 0; k < 2; k++) {
    const unsigned char *z = memchr(p, 0, (size_t)(end - p));
    if (!z) return -1;
    p = z + 1;
  }
  *text = compressed ? inflate_text(p, (size_t)(end - p)) : strndup((const char *)p, (size_t)(end - p));
  return *text ? 1 : -1;
}

int png_read_meta_stream(void *stream, const char *name, const char *text_key, int *width, int *height,
                         char **text, char *msg, size_t msg_len) {
  FILE *f = stream;
  if (text) *text = NULL;
  unsigned char b[16];
  if (fread(b, 1, 8, f) != 8 || memcmp(b, "\x89PNG\r\n\x1a\n", 8) != 0) {
    snprintf(msg, msg_len, "%s: not a PNG file", name);
    return -1;
  }
  bool have_ihdr = false;
  for (int chunk = 0;; chunk++) {
    if (fread(b, 1, 8, f) != 8) break; /* the end, IEND or not */
    uint32_t len = be32(b);
    char type[5] = {(char)b[4], (char)b[5], (char)b[6], (char)b[7], 0};
    if (len > 0x7fffffffu) {
      snprintf(msg, msg_len, "%s: not a readable PNG (chunk %d has length %u)", name, chunk, (unsigned)len);
      goto fail;
    }
    if (chunk == 0) {
      if (strcmp(type, "IHDR") != 0 || len != 13 || fread(b, 1, 13, f) != 13) {
        snprintf(msg, msg_len, "%s: not a readable PNG (no IHDR header first)", name);
        goto fail;
      }
      uint32_t w = be32(b), h = be32(b + 4);
      if (w < 1 || h < 1 || w > 0x7fffffffu || h > 0x7fffffffu) {
        snprintf(msg, msg_len, "%s: not a readable PNG (size %ux%u)", name, (unsigned)w, (unsigned)h);
        goto fail;
      }
      if (width) *width = (int)w;
      if (height) *height = (int)h;
      have_ihdr = true;
      if (fseek(f, 4, SEEK_CUR) != 0) break;
      continue;
    }
    if (!strcmp(type, "IEND")) break;
    bool is_text = !strcmp(type, "tEXt") || !strcmp(type, "zTXt") || !strcmp(type, "iTXt");
    if (is_text && text_key && text && !*text && len <= TEXT_MAX) {
      unsigned char *d = malloc((size_t)len + 1);
      if (!d) {
        snprintf(msg, msg_len, "%s: out of memory reading a %u-byte text chunk", name, (unsigned)len);
        goto fail;
      }
      if (fread(d, 1, len, f) != len) {
        free(d);
        break; /* truncated: what came before stands */
      }
      int r = chunk_text(type, d, len, text_key, text);
      free(d);
      if (r < 0 && *text) {
        free(*text);
        *text = NULL;
      }
      if (fseek(f, 4, SEEK_CUR) != 0) break;
      continue;
    }
    if (fseek(f, (long)len + 4, SEEK_CUR) != 0) break;
  }
  if (!have_ihdr) {
    snprintf(msg, msg_len, "%s: not a readable PNG (no IHDR header)", name);
    goto fail;
  }
  return 0;
fail:
  if (text && *text) {
    free(*text);
    *text = NULL;
  }
  return -1;
}

int png_read_meta(const char *path, const char *text_key, int *width, int *height, char **text, char *msg,
                  size_t msg_len) {
  if (text) *text = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, msg_len, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  int rc = png_read_meta_stream(f, path, text_key, width, height, text, msg, msg_len);
  fclose(f);
  return rc;
}
