/* Control images for ControlNet: the preprocessors (none, invert, scribble,
 * canny) and the resize to the generation size.
 * canny mirrors OpenCV's cv::Canny (imgproc/src/canny.cpp: 3x3 Sobel with
 * replicated borders, L1 magnitude, the fixed-point tan(22.5) direction test,
 * hysteresis over 8-neighbours) on cv::cvtColor's RGB2GRAY; scribble is the
 * threshold of ControlNet's scribble demos (white where min(R,G,B) < 127);
 * the resize is diffusers' control_image_processor: PIL's LANCZOS resize. */
#include "ldm.h"
#include "core/status.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ldm_preprocess_params_init(ldm_preprocess_params *p) {
  if (!p) return;
  memset(p, 0, sizeof *p);
  p->kind = LDM_PREPROCESS_NONE;
  p->canny_low = 100.0f;
  p->canny_high = 200.0f;
  p->scribble_threshold = 127.0f;
  p->scribble_dilate = 0;
}

static ldm_status check_image(const ldm_image *src, const char *what, ldm_error *err) {
  if (!src || !src->data || src->width < 1 || src->height < 1)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: the control image is empty", what);
  if (src->channels != 1 && src->channels != 3 && src->channels != 4)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: the control image has %d channels, expected 1, 3 or 4", what,
                    src->channels);
  if (src->type != LDM_PIXEL_U8 && src->type != LDM_PIXEL_F32)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: unknown pixel type %d", what, (int)src->type);
  if (src->width > LDM_MAX_IMAGE_SIDE || src->height > LDM_MAX_IMAGE_SIDE)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: the control image is %dx%d, at most %d per side", what,
                    src->width, src->height, LDM_MAX_IMAGE_SIDE);
  size_t px = src->type == LDM_PIXEL_F32 ? sizeof(float) : 1;
  if (src->stride < (size_t)src->width * (size_t)src->channels * px)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: stride %zu is shorter than a row (%d pixels)", what, src->stride,
                    src->width);
  return LDM_OK;
}

/* Channel c (0..2, grey replicated) and alpha of pixel (x, y) on the 0..255
 * scale; F32 values clamped to 0..1 first. */
static float px255(const ldm_image *img, int x, int y, int c) {
  const char *row = (const char *)img->data + (size_t)y * img->stride;
  int ch = img->channels < 3 ? 0 : c;
  size_t k = (size_t)x * img->channels + ch;
  if (img->type == LDM_PIXEL_U8) return (float)((const unsigned char *)row)[k];
  float v = ((const float *)row)[k];
  v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* NaN -> 0 */
  return v * 255.0f;
}

static float alpha01(const ldm_image *img, int x, int y) {
  if (img->channels != 4) return 1.0f;
  const char *row = (const char *)img->data + (size_t)y * img->stride;
  size_t k = (size_t)x * 4 + 3;
  if (img->type == LDM_PIXEL_U8) return ((const unsigned char *)row)[k] / 255.0f;
  float v = ((const float *)row)[k];
  return v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;
}

/* src -> [H*W*3] floats on the 0..255 scale, alpha composited over bg. */
static void flatten(const ldm_image *src, float bg, float *rgb) {
  for (int y = 0; y < src->height; y++)
    for (int x = 0; x < src->width; x++) {
      float a = alpha01(src, x, y);
      float *o = rgb + ((size_t)y * src->width + x) * 3;
      for (int c = 0; c < 3; c++) {
        float v = px255(src, x, y, c);
        o[c] = a >= 1.0f ? v : a * v + (1.0f - a) * bg;
      }
    }
}

static unsigned char u8_of(float v255) {
  v255 = v255 > 0.0f ? (v255 < 255.0f ? v255 : 255.0f) : 0.0f;
  return (unsigned char)nearbyintf(v255);
}

/* [H*W*3] values on the 0..255 scale -> out (RGB, out's type). */
static void store_rgb(const float *rgb, ldm_image *out) {
  for (int y = 0; y < out->height; y++) {
    char *row = (char *)out->data + (size_t)y * out->stride;
    for (int x = 0; x < out->width * 3; x++) {
      float v = rgb[(size_t)y * out->width * 3 + x];
      if (out->type == LDM_PIXEL_F32) ((float *)row)[x] = v / 255.0f;
      else ((unsigned char *)row)[x] = u8_of(v);
    }
  }
}

/* A binary [H*W] map (0 / 1) -> out as black / white RGB. */
static void store_binary(const unsigned char *bin, ldm_image *out) {
  for (int y = 0; y < out->height; y++) {
    char *row = (char *)out->data + (size_t)y * out->stride;
    for (int x = 0; x < out->width; x++) {
      unsigned char b = bin[(size_t)y * out->width + x];
      for (int c = 0; c < 3; c++) {
        if (out->type == LDM_PIXEL_F32) ((float *)row)[(size_t)x * 3 + c] = b ? 1.0f : 0.0f;
        else ((unsigned char *)row)[(size_t)x * 3 + c] = b ? 255 : 0;
      }
    }
  }
}

/* Dilation of a binary map by a (2r+1) x (2r+1) square (cv2.dilate with
 * np.ones((2r+1, 2r+1)); pixels outside the image do not count), as two
 * running-max passes. tmp: W*H bytes. */
static void dilate(unsigned char *bin, int W, int H, int r, unsigned char *tmp) {
  if (r <= 0) return;
  for (int y = 0; y < H; y++) {
    const unsigned char *s = bin + (size_t)y * W;
    unsigned char *d = tmp + (size_t)y * W;
    int last = -1000000; /* x of the last set pixel at or before x + r */
    for (int x = 0; x < W + r; x++) {
      if (x < W && s[x]) last = x;
      int o = x - r;
      if (o >= 0) d[o] = last >= o - r;
    }
  }
  for (int x = 0; x < W; x++) {
    int last = -1000000;
    for (int y = 0; y < H + r; y++) {
      if (y < H && tmp[(size_t)y * W + x]) last = y;
      int o = y - r;
      if (o >= 0) bin[(size_t)o * W + x] = last >= o - r;
    }
  }
}

/* cv::cvtColor(RGB2GRAY) for 8-bit in OpenCV 4.x: 0.299 R + 0.587 G +
 * 0.114 B in 15-bit fixed point, (9798 R + 19235 G + 3735 B + 2^14) >> 15. */
static void gray_u8(const float *rgb, size_t n, unsigned char *g) {
  for (size_t i = 0; i < n; i++) {
    unsigned r = u8_of(rgb[i * 3]), gr = u8_of(rgb[i * 3 + 1]), b = u8_of(rgb[i * 3 + 2]);
    g[i] = (unsigned char)((r * 9798u + gr * 19235u + b * 3735u + (1u << 14)) >> 15);
  }
}

/* cv::Canny(gray, low, high, 3, false) into bin (1 = edge). Returns -1 when
 * out of memory. */
static int canny(const unsigned char *g, int W, int H, int low, int high, unsigned char *bin) {
  const int MW = W + 2; /* map and magnitude rows carry one pixel of border */
  size_t n = (size_t)W * H, nm = (size_t)MW * (H + 2);
  int16_t *dx = malloc(n * sizeof *dx), *dy = malloc(n * sizeof *dy);
  int *mag = calloc(nm, sizeof *mag);
  unsigned char *map = malloc(nm);
  size_t *stack = malloc(nm * sizeof *stack), top = 0;
  int rc = -1;
  if (!dx || !dy || !mag || !map || !stack) goto done;
  /* Sobel 3x3, BORDER_REPLICATE: dx = [-1 0 1] x [1 2 1]^T, dy transposed */
  for (int y = 0; y < H; y++) {
    const unsigned char *rp = g + (size_t)(y > 0 ? y - 1 : 0) * W, *rc0 = g + (size_t)y * W,
                        *rn = g + (size_t)(y < H - 1 ? y + 1 : H - 1) * W;
    for (int x = 0; x < W; x++) {
      int xl = x > 0 ? x - 1 : 0, xr = x < W - 1 ? x + 1 : W - 1;
      int gx = (rp[xr] - rp[xl]) + 2 * (rc0[xr] - rc0[xl]) + (rn[xr] - rn[xl]);
      int gy = (rn[xl] + 2 * rn[x] + rn[xr]) - (rp[xl] + 2 * rp[x] + rp[xr]);
      dx[(size_t)y * W + x] = (int16_t)gx;
      dy[(size_t)y * W + x] = (int16_t)gy;
      mag[(size_t)(y + 1) * MW + x + 1] = abs(gx) + abs(gy);
    }
  }
  /* map: 0 = may be an edge, 1 = not an edge, 2 = edge; border 1 */
  memset(map, 1, nm);
  enum { SHIFT = 15 };
  const int64_t TG22 = 13573; /* round(tan(22.5 deg) * 2^15) */
  for (int y = 0; y < H; y++) {
    const int *mp = mag + (size_t)y * MW + 1, *ma = mp + MW, *mn = ma + MW;
    unsigned char *mrow = map + (size_t)(y + 1) * MW + 1;
    int prev_flag = 0;
    for (int x = 0; x < W; x++) {
      int m = ma[x];
      int keep = 0;
      if (m > low) {
        int xs = dx[(size_t)y * W + x], ys = dy[(size_t)y * W + x];
        int64_t ax = abs(xs), ay = (int64_t)abs(ys) << SHIFT;
        int64_t tg22x = ax * TG22;
        if (ay < tg22x) {
          keep = m > ma[x - 1] && m >= ma[x + 1];
        } else {
          int64_t tg67x = tg22x + (ax << (SHIFT + 1));
          if (ay > tg67x) {
            keep = m > mp[x] && m >= mn[x];
          } else {
            int s = (xs ^ ys) < 0 ? -1 : 1;
            keep = m > mp[x - s] && m > mn[x + s];
          }
        }
      }
      if (!keep) {
        prev_flag = 0;
        mrow[x] = 1;
        continue;
      }
      if (!prev_flag && m > high && mrow[x - MW] != 2) {
        mrow[x] = 2;
        stack[top++] = (size_t)(mrow + x - map);
        prev_flag = 1;
      } else {
        mrow[x] = 0;
      }
    }
  }
  /* hysteresis: grow edges into 8-connected candidates */
  static const int off_dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1}, off_dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1};
  while (top > 0) {
    size_t m = stack[--top];
    for (int k = 0; k < 8; k++) {
      size_t q = (size_t)((ptrdiff_t)m + off_dy[k] * MW + off_dx[k]);
      if (map[q] == 0) {
        map[q] = 2;
        stack[top++] = q;
      }
    }
  }
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) bin[(size_t)y * W + x] = map[(size_t)(y + 1) * MW + x + 1] == 2;
  rc = 0;
done:
  free(dx), free(dy), free(mag), free(map), free(stack);
  return rc;
}

static ldm_status check_params(const ldm_preprocess_params *p, ldm_error *err) {
  if (!p) return ldm_fail(err, LDM_ERR_INVALID_ARG, "preprocess: no parameters");
  if (p->kind == LDM_PREPROCESS_INPAINT)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "preprocess: the inpaint preprocessor is the job's (it needs the init image and mask)");
  if ((int)p->kind < 0 || (int)p->kind > (int)LDM_PREPROCESS_CANNY)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "preprocess: unknown preprocessor %d (none, invert, scribble, canny)",
                    (int)p->kind);
  if (p->kind == LDM_PREPROCESS_CANNY) {
    if (!isfinite(p->canny_low) || p->canny_low < 0.0f)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "canny: low threshold %g, expected a number >= 0", p->canny_low);
    if (!isfinite(p->canny_high) || p->canny_high < 0.0f)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "canny: high threshold %g, expected a number >= 0", p->canny_high);
    if (p->canny_low > p->canny_high)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "canny: low threshold %g is above the high threshold %g",
                      p->canny_low, p->canny_high);
    if (p->canny_high > 2040.0f)
      return ldm_fail(err, LDM_ERR_INVALID_ARG,
                      "canny: high threshold %g, expected at most 2040 (the largest 3x3 Sobel magnitude)",
                      p->canny_high);
  }
  if (p->kind == LDM_PREPROCESS_SCRIBBLE) {
    if (!isfinite(p->scribble_threshold) || p->scribble_threshold < 0.0f || p->scribble_threshold > 256.0f)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "scribble: threshold %g, expected 0..256 (on the 0..255 scale)",
                      p->scribble_threshold);
    if (p->scribble_dilate < 0 || p->scribble_dilate > LDM_SCRIBBLE_MAX_DILATE)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "scribble: dilation %d pixels, expected 0..%d", p->scribble_dilate,
                      LDM_SCRIBBLE_MAX_DILATE);
  }
  return LDM_OK;
}

ldm_status ldm_control_preprocess(const ldm_image *src, const ldm_preprocess_params *p, ldm_image **out,
                                  ldm_error *err) {
  if (out) *out = NULL;
  ldm_error_clear(err);
  if (!out) return ldm_fail(err, LDM_ERR_INVALID_ARG, "preprocess: no output pointer");
  LDM_TRY(check_params(p, err));
  LDM_TRY(check_image(src, ldm_preprocess_name(p->kind), err));
  int W = src->width, H = src->height;
  size_t n = (size_t)W * H, nrgb;
  if (!ldm_mul_size(n, 3 * sizeof(float), &nrgb))
    return ldm_fail(err, LDM_ERR_NOMEM, "preprocess: %dx%d is too large", W, H);
  ldm_image *img = ldm_image_new(W, H, 3, src->type);
  float *rgb = malloc(nrgb);
  unsigned char *bin = NULL, *tmp = NULL;
  ldm_status st = LDM_OK;
  if (!img || !rgb) goto nomem;
  /* transparent parts: black for a map used as drawn, paper for line art */
  flatten(src, p->kind == LDM_PREPROCESS_NONE ? 0.0f : 255.0f, rgb);
  switch (p->kind) {
  case LDM_PREPROCESS_INPAINT: /* refused by check_params */
  case LDM_PREPROCESS_NONE:
    store_rgb(rgb, img);
    break;
  case LDM_PREPROCESS_INVERT:
    for (size_t i = 0; i < n * 3; i++) rgb[i] = 255.0f - rgb[i];
    store_rgb(rgb, img);
    break;
  case LDM_PREPROCESS_SCRIBBLE:
    bin = malloc(n);
    tmp = malloc(n);
    if (!bin || !tmp) goto nomem;
    for (size_t i = 0; i < n; i++) {
      float m = fminf(rgb[i * 3], fminf(rgb[i * 3 + 1], rgb[i * 3 + 2]));
      bin[i] = m < p->scribble_threshold;
    }
    dilate(bin, W, H, p->scribble_dilate, tmp);
    store_binary(bin, img);
    break;
  case LDM_PREPROCESS_CANNY:
    bin = malloc(n);
    tmp = malloc(n);
    if (!bin || !tmp) goto nomem;
    gray_u8(rgb, n, tmp);
    /* OpenCV truncates the thresholds to integers (cvFloor) */
    if (canny(tmp, W, H, (int)floorf(p->canny_low), (int)floorf(p->canny_high), bin) != 0) goto nomem;
    store_binary(bin, img);
    break;
  }
  goto done;
nomem:
  st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d control image", ldm_preprocess_name(p->kind), W,
                H);
done:
  free(rgb), free(bin), free(tmp);
  if (st != LDM_OK) {
    ldm_image_free(img);
    return st;
  }
  *out = img;
  return LDM_OK;
}

/* ---- PIL's LANCZOS resize ---------------------------------------------
 * Pillow's ImagingResample (libImaging/Resample.c): per output pixel a
 * window of taps centred at (i + 0.5) * scale, support 3 * max(scale, 1),
 * weights sinc(t) sinc(t / 3) normalised to sum 1; horizontal pass first.
 * 8-bit images use 22-bit fixed-point weights and round to 8 bits after
 * each pass; other images stay in floating point. */
enum { PIL_PRECISION_BITS = 32 - 8 - 2 };

static double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return sin(x) / x;
}

static double lanczos3(double x) { return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

/* Window bounds[2*o] (first tap), bounds[2*o+1] (count) and weights
 * kk[o*ksize ...] for n_out samples from n_in. Returns ksize, 0 when out of
 * memory. */
static int lanczos_coeffs(int n_in, int n_out, int **bounds_out, double **kk_out) {
  double scale = (double)n_in / n_out, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 3.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  int *bounds = malloc(sizeof(int) * 2 * (size_t)n_out);
  double *kk = malloc(sizeof(double) * (size_t)n_out * (size_t)ksize);
  if (!bounds || !kk) {
    free(bounds), free(kk);
    return 0;
  }
  for (int o = 0; o < n_out; o++) {
    double center = (o + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
    if (xmin < 0) xmin = 0;
    if (xmax > n_in) xmax = n_in;
    xmax -= xmin;
    double *k = kk + (size_t)o * ksize;
    int x;
    for (x = 0; x < xmax; x++) {
      double w = lanczos3((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0) k[x] /= ww;
    for (; x < ksize; x++) k[x] = 0.0;
    bounds[2 * o] = xmin;
    bounds[2 * o + 1] = xmax;
  }
  *bounds_out = bounds;
  *kk_out = kk;
  return ksize;
}

/* Pillow's normalize_coeffs_8bpc: weights to fixed point, rounded away from 0. */
static void coeffs_fixed(const double *kk, size_t n, int32_t *out) {
  for (size_t i = 0; i < n; i++)
    out[i] = kk[i] < 0 ? (int32_t)(-0.5 + kk[i] * (1 << PIL_PRECISION_BITS))
                       : (int32_t)(0.5 + kk[i] * (1 << PIL_PRECISION_BITS));
}

static unsigned char clip8(int64_t v) {
  v >>= PIL_PRECISION_BITS;
  return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One pass over C interleaved channels: n lines of n_in samples (sample
 * stride sstep, line stride lstep) to n_out samples (dsstep, dlstep). */
static void pass_u8(const unsigned char *in, size_t sstep, size_t lstep, unsigned char *out, size_t dsstep,
                    size_t dlstep, int n_lines, int C, int n_out, int ksize, const int *bounds, const int32_t *k) {
  for (int l = 0; l < n_lines; l++)
    for (int o = 0; o < n_out; o++) {
      const int32_t *w = k + (size_t)o * ksize;
      int xmin = bounds[2 * o], cnt = bounds[2 * o + 1];
      for (int c = 0; c < C; c++) {
        int64_t ss = 1 << (PIL_PRECISION_BITS - 1);
        for (int i = 0; i < cnt; i++) ss += (int64_t)in[l * lstep + (size_t)(xmin + i) * sstep + c] * w[i];
        out[l * dlstep + (size_t)o * dsstep + c] = clip8(ss);
      }
    }
}

static void pass_f(const double *in, size_t sstep, size_t lstep, double *out, size_t dsstep, size_t dlstep,
                   int n_lines, int C, int n_out, int ksize, const int *bounds, const double *k) {
  for (int l = 0; l < n_lines; l++)
    for (int o = 0; o < n_out; o++) {
      const double *w = k + (size_t)o * ksize;
      int xmin = bounds[2 * o], cnt = bounds[2 * o + 1];
      for (int c = 0; c < C; c++) {
        double ss = 0.0;
        for (int i = 0; i < cnt; i++) ss += in[l * lstep + (size_t)(xmin + i) * sstep + c] * w[i];
        out[l * dlstep + (size_t)o * dsstep + c] = ss;
      }
    }
}

ldm_status ldm_control_resize(const ldm_image *src, int width, int height, ldm_image **out, ldm_error *err) {
  if (out) *out = NULL;
  ldm_error_clear(err);
  if (!out) return ldm_fail(err, LDM_ERR_INVALID_ARG, "control resize: no output pointer");
  LDM_TRY(check_image(src, "control resize", err));
  if (width < 1 || height < 1 || width > LDM_MAX_IMAGE_SIDE || height > LDM_MAX_IMAGE_SIDE)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "control resize: size %dx%d, expected 1..%d per side", width, height,
                    LDM_MAX_IMAGE_SIDE);
  int W = src->width, H = src->height;
  bool u8 = src->type == LDM_PIXEL_U8;
  size_t esz = u8 ? 1 : sizeof(double), n_in, n_mid, n_out;
  if (!ldm_mul_size((size_t)W * H * 3, esz, &n_in) || !ldm_mul_size((size_t)width * H * 3, esz, &n_mid) ||
      !ldm_mul_size((size_t)width * height * 3, esz, &n_out))
    return ldm_fail(err, LDM_ERR_NOMEM, "control resize: %dx%d -> %dx%d is too large", W, H, width, height);
  ldm_image *img = ldm_image_new(width, height, 3, LDM_PIXEL_F32);
  void *a = malloc(n_in), *b = malloc(n_mid), *c = malloc(n_out);
  int *bh = NULL, *bv = NULL;
  double *kh = NULL, *kv = NULL;
  int32_t *ih = NULL, *iv = NULL;
  int ksh = 0, ksv = 0;
  ldm_status st = LDM_OK;
  if (!img || !a || !b || !c) goto nomem;
  if (width != W && !(ksh = lanczos_coeffs(W, width, &bh, &kh))) goto nomem;
  if (height != H && !(ksv = lanczos_coeffs(H, height, &bv, &kv))) goto nomem;
  /* RGB (grey replicated, alpha dropped as PIL's convert("RGB")) */
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int ch = 0; ch < 3; ch++) {
        size_t i = ((size_t)y * W + x) * 3 + ch;
        const char *row = (const char *)src->data + (size_t)y * src->stride;
        size_t k = (size_t)x * src->channels + (src->channels < 3 ? 0 : ch);
        if (u8) ((unsigned char *)a)[i] = ((const unsigned char *)row)[k];
        else ((double *)a)[i] = ((const float *)row)[k];
      }
  const void *cur = a;
  if (ksh) {
    if (u8) {
      ih = malloc(sizeof(int32_t) * (size_t)width * ksh);
      if (!ih) goto nomem;
      coeffs_fixed(kh, (size_t)width * ksh, ih);
      pass_u8(cur, 3, (size_t)W * 3, b, 3, (size_t)width * 3, H, 3, width, ksh, bh, ih);
    } else {
      pass_f(cur, 3, (size_t)W * 3, b, 3, (size_t)width * 3, H, 3, width, ksh, bh, kh);
    }
    cur = b;
  }
  if (ksv) {
    if (u8) {
      iv = malloc(sizeof(int32_t) * (size_t)height * ksv);
      if (!iv) goto nomem;
      coeffs_fixed(kv, (size_t)height * ksv, iv);
      pass_u8(cur, (size_t)width * 3, 1, c, (size_t)width * 3, 1, width * 3, 1, height, ksv, bv, iv);
    } else {
      pass_f(cur, (size_t)width * 3, 1, c, (size_t)width * 3, 1, width * 3, 1, height, ksv, bv, kv);
    }
    cur = c;
  }
  for (int y = 0; y < height; y++) {
    float *row = (float *)((char *)img->data + (size_t)y * img->stride);
    for (int x = 0; x < width * 3; x++) {
      size_t i = (size_t)y * width * 3 + x;
      if (u8) {
        row[x] = ((const unsigned char *)cur)[i] / 255.0f;
      } else {
        double v = ((const double *)cur)[i];
        row[x] = v > 0.0 ? (v < 1.0 ? (float)v : 1.0f) : 0.0f;
      }
    }
  }
  goto done;
nomem:
  st = ldm_fail(err, LDM_ERR_NOMEM, "control resize: out of memory for %dx%d -> %dx%d", W, H, width, height);
done:
  free(a), free(b), free(c), free(bh), free(bv), free(kh), free(kv), free(ih), free(iv);
  if (st != LDM_OK) {
    ldm_image_free(img);
    return st;
  }
  *out = img;
  return LDM_OK;
}
