/* Image and mask helpers of the pipelines (see imageproc.h). */
#include "pipeline/imageproc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float px(const ldm_image *img, int x, int y, int c) {
  int ch = img->channels == 1 ? 0 : c;
  const char *row = (const char *)img->data + (size_t)y * img->stride;
  if (img->type == LDM_PIXEL_F32) return ((const float *)row)[(size_t)x * img->channels + ch];
  return ((const unsigned char *)row)[(size_t)x * img->channels + ch] / 255.0f;
}

void pl_image_to_planar(const ldm_image *img, float *out) {
  size_t HW = (size_t)img->width * img->height;
  for (int y = 0; y < img->height; y++)
    for (int x = 0; x < img->width; x++)
      for (int c = 0; c < 3; c++) out[c * HW + (size_t)y * img->width + x] = px(img, x, y, c) * 2.0f - 1.0f;
}

void pl_planar_to_u8(const float *in, int W, int H, ldm_image *out) {
  size_t HW = (size_t)W * H;
  for (int y = 0; y < H; y++) {
    unsigned char *row = (unsigned char *)out->data + (size_t)y * out->stride;
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        float v = in[c * HW + (size_t)y * W + x] / 2.0f + 0.5f;
        v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        row[(size_t)x * out->channels + c] = (unsigned char)nearbyintf(v * 255.0f);
      }
  }
}

void pl_planar_to_f32(const float *in, int W, int H, ldm_image *out) {
  size_t HW = (size_t)W * H;
  for (int y = 0; y < H; y++) {
    float *row = (float *)((char *)out->data + (size_t)y * out->stride);
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        float v = in[c * HW + (size_t)y * W + x] / 2.0f + 0.5f;
        row[(size_t)x * out->channels + c] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
      }
  }
}

void pl_planar_to_image(const float *in, int W, int H, ldm_image *out) {
  if (out->type == LDM_PIXEL_F32) pl_planar_to_f32(in, W, H, out);
  else pl_planar_to_u8(in, W, H, out);
}

void pl_mask_to_float(const ldm_image *mask, float *out) {
  for (int y = 0; y < mask->height; y++)
    for (int x = 0; x < mask->width; x++) {
      float v = px(mask, x, y, 0);
      out[(size_t)y * mask->width + x] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

/* Index i reflected into [0, n) without repeating the edge sample
 * (OpenCV's BORDER_REFLECT_101: -1 -> 1, n -> n - 2), as often as it takes. */
static int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

void pl_blur(float *plane, int W, int H, float sigma, float *tmp) {
  if (!(sigma > 0.0f)) return;
  /* AUTOMATIC1111's kernel size for mask blur PX: 2 * int(2.5 PX + 0.5) + 1
   * taps of a Gaussian with sigma PX (cv2.GaussianBlur per axis). */
  int r = (int)(2.5 * sigma + 0.5);
  if (r > PL_BLUR_MAX_RADIUS) r = PL_BLUR_MAX_RADIUS;
  float k[2 * PL_BLUR_MAX_RADIUS + 1];
  double w[2 * PL_BLUR_MAX_RADIUS + 1], sum = 0.0, s2 = -0.5 / ((double)sigma * sigma);
  for (int i = -r; i <= r; i++) sum += w[i + r] = exp(s2 * i * i);
  for (int i = 0; i <= 2 * r; i++) k[i] = (float)(w[i] / sum);
  for (int y = 0; y < H; y++) /* horizontal: plane -> tmp */
    for (int x = 0; x < W; x++) {
      float acc = 0.0f;
      for (int i = -r; i <= r; i++) acc += k[i + r] * plane[(size_t)y * W + reflect101(x + i, W)];
      tmp[(size_t)y * W + x] = acc;
    }
  for (int y = 0; y < H; y++) /* vertical: tmp -> plane */
    for (int x = 0; x < W; x++) {
      float acc = 0.0f;
      for (int i = -r; i <= r; i++) acc += k[i + r] * tmp[(size_t)reflect101(y + i, H) * W + x];
      plane[(size_t)y * W + x] = acc;
    }
}

/* 1-D triangle-filter resample of n_in samples (stride s_in) to n_out, as
 * PIL's BILINEAR resize and torch's antialiased bilinear interpolate: the
 * tent is widened by the scale when shrinking, taps outside the line are
 * dropped and the others' weights renormalised. */
static void resample_line(const float *in, int n_in, size_t s_in, float *out, int n_out, size_t s_out) {
  double scale = (double)n_in / n_out;
  double support = scale > 1.0 ? scale : 1.0;
  for (int o = 0; o < n_out; o++) {
    double center = (o + 0.5) * scale;
    int lo = (int)floor(center - support), hi = (int)ceil(center + support);
    if (lo < 0) lo = 0;
    if (hi > n_in - 1) hi = n_in - 1;
    double acc = 0.0, wsum = 0.0;
    for (int i = lo; i <= hi; i++) {
      double d = fabs((i + 0.5 - center) / support);
      if (d >= 1.0) continue;
      double w = 1.0 - d;
      acc += w * in[(size_t)i * s_in];
      wsum += w;
    }
    out[(size_t)o * s_out] = (float)(wsum > 0 ? acc / wsum : in[(size_t)(center < n_in ? (int)center : n_in - 1) * s_in]);
  }
}

void pl_crop(const float *in, int C, int W, int H, int x0, int y0, float *out, int w, int h) {
  for (int c = 0; c < C; c++)
    for (int y = 0; y < h; y++)
      memcpy(out + ((size_t)c * h + y) * w, in + ((size_t)c * H + y0 + y) * W + x0, (size_t)w * sizeof(float));
}

int pl_resize(const float *in, int C, int W, int H, float *out, int w, int h) {
  float *tmp = malloc((size_t)w * H * sizeof(float));
  if (!tmp) return -1;
  for (int c = 0; c < C; c++) {
    const float *src = in + (size_t)c * W * H;
    float *dst = out + (size_t)c * w * h;
    for (int y = 0; y < H; y++) resample_line(src + (size_t)y * W, W, 1, tmp + (size_t)y * w, w, 1);
    for (int x = 0; x < w; x++) resample_line(tmp + x, H, (size_t)w, dst + x, h, (size_t)w);
  }
  free(tmp);
  return 0;
}

int pl_mask_bbox(const float *mask, int W, int H, int *x0, int *y0, int *x1, int *y1) {
  int ax = W, ay = H, bx = -1, by = -1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      if (mask[(size_t)y * W + x] > 0.0f) {
        if (x < ax) ax = x;
        if (x > bx) bx = x;
        if (y < ay) ay = y;
        if (y > by) by = y;
      }
  if (bx < 0) return 0;
  *x0 = ax;
  *y0 = ay;
  *x1 = bx + 1;
  *y1 = by + 1;
  return 1;
}

static unsigned char px_u8(const ldm_image *img, int x, int y, int c) {
  int ch = img->channels == 1 ? 0 : c;
  const char *row = (const char *)img->data + (size_t)y * img->stride;
  if (img->type == LDM_PIXEL_U8) return ((const unsigned char *)row)[(size_t)x * img->channels + ch];
  float v = ((const float *)row)[(size_t)x * img->channels + ch];
  v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
  return (unsigned char)nearbyintf(v * 255.0f);
}

void pl_composite(const ldm_image *orig, const ldm_image *gen, const float *mask, ldm_image *out) {
  for (int y = 0; y < orig->height; y++) {
    const unsigned char *g = (const unsigned char *)gen->data + (size_t)y * gen->stride;
    unsigned char *o = (unsigned char *)out->data + (size_t)y * out->stride;
    for (int x = 0; x < orig->width; x++) {
      float m = mask[(size_t)y * orig->width + x];
      for (int c = 0; c < 3; c++) {
        unsigned char a = px_u8(orig, x, y, c);
        if (m <= 0.0f) {
          o[(size_t)x * out->channels + c] = a;
        } else {
          float v = m * g[(size_t)x * gen->channels + c] + (1.0f - m) * a;
          o[(size_t)x * out->channels + c] = (unsigned char)nearbyintf(v);
        }
      }
    }
  }
}

void pl_copy_rgb(const ldm_image *orig, ldm_image *out) {
  for (int y = 0; y < orig->height; y++) {
    char *o = (char *)out->data + (size_t)y * out->stride;
    for (int x = 0; x < orig->width; x++)
      for (int c = 0; c < 3; c++) {
        size_t k = (size_t)x * out->channels + c;
        if (out->type == LDM_PIXEL_F32) ((float *)o)[k] = px(orig, x, y, c);
        else ((unsigned char *)o)[k] = px_u8(orig, x, y, c);
      }
  }
}

void pl_composite_f32(const ldm_image *orig, const ldm_image *gen, const float *mask, ldm_image *out) {
  for (int y = 0; y < orig->height; y++) {
    const float *g = (const float *)((const char *)gen->data + (size_t)y * gen->stride);
    float *o = (float *)((char *)out->data + (size_t)y * out->stride);
    for (int x = 0; x < orig->width; x++) {
      float m = mask[(size_t)y * orig->width + x];
      for (int c = 0; c < 3; c++) {
        float a = px(orig, x, y, c);
        o[(size_t)x * out->channels + c] = m <= 0.0f ? a : m * g[(size_t)x * gen->channels + c] + (1.0f - m) * a;
      }
    }
  }
}
