/* ldm_image allocation and resampling (public). */
#include "ldm.h"
#include "core/status.h"
#include "pipeline/imageproc.h"

#include <math.h>
#include <stdlib.h>

ldm_image *ldm_image_new(int width, int height, int channels, ldm_pixel_type type) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3 && channels != 4)) return NULL;
  size_t px = type == LDM_PIXEL_F32 ? sizeof(float) : 1, stride, bytes;
  if (!ldm_mul_size((size_t)width * (size_t)channels, px, &stride) ||
      !ldm_mul_size(stride, (size_t)height, &bytes))
    return NULL;
  ldm_image *img = calloc(1, sizeof *img);
  if (!img) return NULL;
  img->data = calloc(bytes, 1);
  if (!img->data) {
    free(img);
    return NULL;
  }
  img->width = width;
  img->height = height;
  img->channels = channels;
  img->type = type;
  img->stride = stride;
  return img;
}

void ldm_image_free(ldm_image *img) {
  if (!img) return;
  free(img->data);
  free(img);
}

ldm_status ldm_image_resize(const ldm_image *src, int width, int height, ldm_image **out, ldm_error *err) {
  if (out) *out = NULL;
  ldm_error_clear(err);
  if (!out) return ldm_fail(err, LDM_ERR_INVALID_ARG, "image resize: no output pointer");
  if (!src || !src->data || src->width < 1 || src->height < 1)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "image resize: the source image is empty");
  if (src->channels != 1 && src->channels != 3 && src->channels != 4)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "image resize: %d channels, expected 1, 3 or 4", src->channels);
  if (src->type != LDM_PIXEL_U8 && src->type != LDM_PIXEL_F32)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "image resize: unknown pixel type %d", (int)src->type);
  size_t px = src->type == LDM_PIXEL_F32 ? sizeof(float) : 1;
  if (src->stride < (size_t)src->width * (size_t)src->channels * px)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "image resize: stride %zu is shorter than a row (%d pixels)",
                    src->stride, src->width);
  if (width < 1 || height < 1 || width > 65536 || height > 65536)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "image resize: size %dx%d, expected 1..65536 per side", width,
                    height);
  int C = src->channels, W = src->width, H = src->height;
  size_t n_in, n_out;
  if (!ldm_mul_size((size_t)W * (size_t)H, (size_t)C * sizeof(float), &n_in) ||
      !ldm_mul_size((size_t)width * (size_t)height, (size_t)C * sizeof(float), &n_out))
    return ldm_fail(err, LDM_ERR_NOMEM, "image resize: %dx%d -> %dx%d is too large", W, H, width, height);
  ldm_image *img = ldm_image_new(width, height, C, src->type);
  float *a = malloc(n_in), *b = malloc(n_out);
  ldm_status st = LDM_OK;
  if (!img || !a || !b) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "image resize: out of memory for %dx%d -> %dx%d", W, H, width, height);
    goto done;
  }
  /* interleaved -> planar floats (U8 kept on its 0..255 scale) */
  size_t plane = (size_t)W * H;
  for (int y = 0; y < H; y++) {
    const char *row = (const char *)src->data + (size_t)y * src->stride;
    for (int x = 0; x < W; x++)
      for (int c = 0; c < C; c++) {
        size_t k = (size_t)x * C + c;
        a[c * plane + (size_t)y * W + x] =
            src->type == LDM_PIXEL_F32 ? ((const float *)row)[k] : (float)((const unsigned char *)row)[k];
      }
  }
  if (pl_resize(a, C, W, H, b, width, height) != 0) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "image resize: out of memory for %dx%d -> %dx%d", W, H, width, height);
    goto done;
  }
  plane = (size_t)width * height;
  for (int y = 0; y < height; y++) {
    char *row = (char *)img->data + (size_t)y * img->stride;
    for (int x = 0; x < width; x++)
      for (int c = 0; c < C; c++) {
        float v = b[c * plane + (size_t)y * width + x];
        size_t k = (size_t)x * C + c;
        if (img->type == LDM_PIXEL_F32) {
          ((float *)row)[k] = v;
        } else {
          v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
          ((unsigned char *)row)[k] = (unsigned char)nearbyintf(v);
        }
      }
  }
done:
  free(a);
  free(b);
  if (st != LDM_OK) {
    ldm_image_free(img);
    return st;
  }
  *out = img;
  return LDM_OK;
}
