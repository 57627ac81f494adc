/* torch.nn.Conv2d (groups=1, zero padding) on channels-last activations.
 * 1x1 stride-1 convolutions are one GEMM over all pixels; 3x3 stride-1
 * pad-1 ones with enough channels go to Winograd F(2x2,3x3) or F(4x4,3x3)
 * (winograd.c); few output pixels stream the weight (ops_gemm_stream); few
 * output channels take one GEMM per tap and shifted sums;
 * the rest are im2col + GEMM, in bands of output rows so the column buffer
 * stays bounded, with the weight repacked per call to [Cout, kh, kw, Cin]
 * to match the channels-last columns. */
#include "ops/ops.h"
#include "ops/conv_fused.h"
#include "ops/ops_util.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/wcache.h"

#include <string.h>

typedef struct conv_shape {
  int B, H, W, Cin, Cout, kh, kw, stride, pad, Ho, Wo;
  int wino_m; /* Winograd output tile side (2 or 4) once chosen */
  int64_t K; /* kh * kw * Cin */
} conv_shape;

static ldm_status conv_check(ldm_ctx *ctx, const ldm_tensor *w,
                             const ldm_tensor *b, int B, int H, int W, int Cin,
                             int stride, int pad, conv_shape *s) {
  if (!w || w->ndim != 4)
    return ldm_fail(ctx->err, LDM_ERR_SHAPE,
                    "conv2d: weight '%s' must be 4-D [Cout, Cin, kh, kw]",
                    w && w->name ? w->name : "?");
  char buf[96];
  if (w->shape[1] != Cin || w->shape[0] < 1 || w->shape[2] < 1 ||
      w->shape[3] < 1 || w->shape[0] > (1 << 24) || w->shape[2] > 64 ||
      w->shape[3] > 64)
    return ldm_fail(ctx->err, LDM_ERR_SHAPE,
                    "conv2d: weight '%s' has shape %s, expected [Cout, %d, kh, "
                    "kw]",
                    w->name ? w->name : "?", ldm_shape_str(w, buf, sizeof buf),
                    Cin);
  if (B < 1 || H < 1 || W < 1 || Cin < 1 || stride < 1 || pad < 0)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "conv2d: invalid sizes B=%d H=%d W=%d Cin=%d stride=%d "
                    "pad=%d",
                    B, H, W, Cin, stride, pad);
  s->B = B, s->H = H, s->W = W, s->Cin = Cin;
  s->Cout = (int)w->shape[0];
  s->kh = (int)w->shape[2];
  s->kw = (int)w->shape[3];
  s->stride = stride, s->pad = pad;
  if (H + 2 * pad < s->kh || W + 2 * pad < s->kw)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "conv2d: input %dx%d (pad %d) smaller than kernel %dx%d", H,
                    W, pad, s->kh, s->kw);
  s->Ho = ldm_conv_out(H, s->kh, stride, pad);
  s->Wo = ldm_conv_out(W, s->kw, stride, pad);
  s->K = (int64_t)s->kh * s->kw * Cin;
  LDM_TRY(ops_check_float(ctx, w, (int64_t)s->Cout * s->K, "conv2d", "weight"));
  if (b) LDM_TRY(ops_check_float(ctx, b, s->Cout, "conv2d", "bias"));
  return LDM_OK;
}

/* ---- weight packing: [Cout, Cin, kh, kw] (any float) -> [Cout, kh, kw, Cin] */

typedef struct pack_job {
  float *dst;
  const ldm_tensor *w;
  int Cin, taps;
} pack_job;

static void pack_task(void *user, int64_t co) {
  const pack_job *j = user;
  enum { CI_BLOCK = 128 };
  float tmp[CI_BLOCK * 64];
  int taps = j->taps;
  int ci_block = taps <= 64 ? CI_BLOCK : 1;
  float *dst = j->dst + co * (int64_t)taps * j->Cin;
  for (int ci0 = 0; ci0 < j->Cin; ci0 += ci_block) {
    int nci = j->Cin - ci0 < ci_block ? j->Cin - ci0 : ci_block;
    size_t off = ((size_t)co * (size_t)j->Cin + (size_t)ci0) * (size_t)taps;
    size_t n = (size_t)nci * (size_t)taps;
    const float *src;
    if (taps > 64) {
      /* huge kernels: convert element by element */
      for (int t = 0; t < taps; t++) {
        float v;
        size_t e = off + (size_t)t;
        if (j->w->dtype == LDM_DTYPE_F32) v = ((const float *)j->w->data)[e];
        else if (j->w->dtype == LDM_DTYPE_F16)
          v = ldm_f16_to_f32(((const uint16_t *)j->w->data)[e]);
        else v = ldm_bf16_to_f32(((const uint16_t *)j->w->data)[e]);
        dst[(int64_t)t * j->Cin + ci0] = v;
      }
      continue;
    }
    if (j->w->dtype == LDM_DTYPE_F32) {
      src = (const float *)j->w->data + off;
    } else if (j->w->dtype == LDM_DTYPE_F16) {
      ldm_convert_f16_to_f32(tmp, (const uint16_t *)j->w->data + off, n);
      src = tmp;
    } else {
      ldm_convert_bf16_to_f32(tmp, (const uint16_t *)j->w->data + off, n);
      src = tmp;
    }
    for (int ci = 0; ci < nci; ci++)
      for (int t = 0; t < taps; t++)
        dst[(int64_t)t * j->Cin + ci0 + ci] = src[ci * taps + t];
  }
}

/* ---- im2col over a band of output rows --------------------------------- */

typedef struct im2col_job {
  float *cols;        /* [band pixels, K] */
  const float *x;     /* [B, H*W, Cin] */
  const conv_shape *s;
  int64_t row0;       /* first global output row (b * Ho + oy) of the band */
} im2col_job;

static void im2col_task(void *user, int64_t p) {
  const im2col_job *j = user;
  const conv_shape *s = j->s;
  int64_t r = j->row0 + p / s->Wo;
  int ox = (int)(p % s->Wo);
  int b = (int)(r / s->Ho), oy = (int)(r % s->Ho);
  const float *xb = j->x + (int64_t)b * s->H * s->W * s->Cin;
  float *dst = j->cols + p * s->K;
  size_t row_bytes = (size_t)s->Cin * sizeof(float);
  for (int ky = 0; ky < s->kh; ky++) {
    int iy = oy * s->stride - s->pad + ky;
    if (iy < 0 || iy >= s->H) {
      memset(dst, 0, row_bytes * (size_t)s->kw);
      dst += (int64_t)s->kw * s->Cin;
      continue;
    }
    int ix0 = ox * s->stride - s->pad;
    for (int kx = 0; kx < s->kw; kx++) {
      int ix = ix0 + kx;
      if (ix < 0 || ix >= s->W) memset(dst, 0, row_bytes);
      else memcpy(dst, xb + ((int64_t)iy * s->W + ix) * s->Cin, row_bytes);
      dst += s->Cin;
    }
  }
}

/* ---- im2col in the weight's own order, weight streamed ------------------
 * Columns [pixels, Cin*kh*kw] ordered (ci, ky, kx) like a stored row of the
 * weight [Cout, Cin, kh, kw], so the weight needs no packing and goes through
 * ops_gemm_stream as stored (f32/f16/bf16). For convolutions with few output
 * pixels, where the weight's memory traffic is the cost. */
typedef struct im2colw_job {
  float *cols;
  const float *x;
  const conv_shape *s;
  int64_t p0; /* first output pixel (over B*Ho*Wo) of the band */
} im2colw_job;

static void im2colw_task(void *user, int64_t p) {
  const im2colw_job *j = user;
  const conv_shape *s = j->s;
  int64_t g = j->p0 + p;
  int ox = (int)(g % s->Wo);
  int64_t r = g / s->Wo;
  int b = (int)(r / s->Ho), oy = (int)(r % s->Ho);
  const float *xb = j->x + (int64_t)b * s->H * s->W * s->Cin;
  float *dst = j->cols + p * s->K;
  int taps = s->kh * s->kw;
  for (int ky = 0; ky < s->kh; ky++)
    for (int kx = 0; kx < s->kw; kx++) {
      int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
      float *d = dst + ky * s->kw + kx;
      if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) {
        for (int ci = 0; ci < s->Cin; ci++) d[(int64_t)ci * taps] = 0.0f;
      } else {
        const float *src = xb + ((int64_t)iy * s->W + ix) * s->Cin;
        for (int ci = 0; ci < s->Cin; ci++) d[(int64_t)ci * taps] = src[ci];
      }
    }
}

static ldm_status conv_stream(ldm_ctx *ctx, float *y, const float *x, const conv_shape *s,
                              const ldm_tensor *wa, const float *bias, size_t max_scratch_bytes) {
  int64_t total = (int64_t)s->B * s->Ho * s->Wo;
  if (s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0) {
    LDM_TRY(ops_gemm_stream(ctx, total, s->Cout, s->K, x, s->Cin, wa, y, s->Cout));
    if (bias) ops_add_bias_f32(ctx, y, total, s->Cout, bias);
    return LDM_OK;
  }
  int64_t band = (int64_t)(max_scratch_bytes / ((size_t)s->K * sizeof(float)));
  if (band < 1) band = 1;
  if (band > total) band = total;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  float *cols = ldm_arena_floats(ctx->scratch, (size_t)band * (size_t)s->K);
  ldm_status st = LDM_OK;
  if (!cols) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for im2col (%lld pixels x %lld)",
                  (long long)band, (long long)s->K);
    goto done;
  }
  for (int64_t p0 = 0; p0 < total; p0 += band) {
    if (ctx->cancel && atomic_load(ctx->cancel)) {
      st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "conv2d: cancelled");
      goto done;
    }
    int64_t M = total - p0 < band ? total - p0 : band;
    im2colw_job ij = {cols, x, s, p0};
    ldm_pool_for(ctx->pool, M, im2colw_task, &ij);
    float *yb = y + p0 * s->Cout;
    if ((st = ops_gemm_stream(ctx, M, s->Cout, s->K, cols, s->K, wa, yb, s->Cout)) != LDM_OK) goto done;
    if (bias) ops_add_bias_f32(ctx, yb, M, s->Cout, bias);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* ---- few output channels: one GEMM per tap, then shifted sums -----------
 * For Cout <= LDM_CONV_FEW_COUT (a decoder's last conv to RGB) im2col's
 * columns (K = kh*kw*Cin per pixel) cost far more than the GEMM against 3
 * output channels. Instead Z = x Wt^T with Wt [kh*kw*Cout, Cin] gives every
 * pixel's contribution to each tap (N = kh*kw*Cout), and each output pixel
 * sums its taps' entries from the input pixels under them. Bands of output
 * rows bound Z. */
typedef struct few_job {
  float *y;
  const float *Z, *bias;
  const conv_shape *s;
  int b, oy0, iy_lo; /* batch item, first output row, first input row in Z */
} few_job;

static void few_task(void *user, int64_t r) {
  const few_job *j = user;
  const conv_shape *s = j->s;
  int oy = j->oy0 + (int)r, C = s->Cout, N = s->kh * s->kw * C;
  float *yrow = j->y + (((int64_t)j->b * s->Ho + oy) * s->Wo) * C;
  for (int ox = 0; ox < s->Wo; ox++) {
    float acc[LDM_CONV_FEW_COUT];
    for (int co = 0; co < C; co++) acc[co] = j->bias ? j->bias[co] : 0.0f;
    for (int ky = 0; ky < s->kh; ky++) {
      int iy = oy * s->stride - s->pad + ky;
      if (iy < 0 || iy >= s->H) continue;
      for (int kx = 0; kx < s->kw; kx++) {
        int ix = ox * s->stride - s->pad + kx;
        if (ix < 0 || ix >= s->W) continue;
        const float *z = j->Z + ((int64_t)(iy - j->iy_lo) * s->W + ix) * N + (ky * s->kw + kx) * C;
        for (int co = 0; co < C; co++) acc[co] += z[co];
      }
    }
    for (int co = 0; co < C; co++) yrow[(int64_t)ox * C + co] = acc[co];
  }
}

static ldm_status conv_few_cout(ldm_ctx *ctx, float *y, const float *x, const conv_shape *s,
                                const ldm_tensor *w, const float *bias, size_t max_scratch_bytes) {
  int taps = s->kh * s->kw, C = s->Cout, N = taps * C;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  const float *wf = ops_weight_f32(ctx, w, (int64_t)C * s->K);
  float *Wt = wf ? ldm_arena_floats(ctx->scratch, (size_t)N * (size_t)s->Cin) : NULL;
  if (!Wt) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for weight '%s'", w->name ? w->name : "?");
    goto done;
  }
  for (int co = 0; co < C; co++) // Wt[tap * C + co][ci] = w[co][ci][tap]
    for (int ci = 0; ci < s->Cin; ci++)
      for (int t = 0; t < taps; t++) Wt[((int64_t)t * C + co) * s->Cin + ci] = wf[((int64_t)co * s->Cin + ci) * taps + t];
  // output rows per band: their input rows' Z within max_scratch_bytes
  size_t zrow = (size_t)s->W * (size_t)N * sizeof(float);
  int64_t in_rows = (int64_t)(max_scratch_bytes / zrow);
  int band = in_rows > s->kh ? (int)((in_rows - s->kh) / s->stride + 1) : 1;
  if (band > s->Ho) band = s->Ho;
  int64_t zrows = (int64_t)(band - 1) * s->stride + s->kh;
  float *Z = ldm_arena_floats(ctx->scratch, (size_t)zrows * (size_t)s->W * (size_t)N);
  if (!Z) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for %lld rows of tap products", (long long)zrows);
    goto done;
  }
  for (int b = 0; b < s->B && st == LDM_OK; b++)
    for (int oy0 = 0; oy0 < s->Ho; oy0 += band) {
      if (ctx->cancel && atomic_load(ctx->cancel)) {
        st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "conv2d: cancelled");
        break;
      }
      int nb = s->Ho - oy0 < band ? s->Ho - oy0 : band;
      int lo = oy0 * s->stride - s->pad, hi = (oy0 + nb - 1) * s->stride - s->pad + s->kh; // [lo, hi)
      if (lo < 0) lo = 0;
      if (hi > s->H) hi = s->H;
      if (hi > lo) {
        const float *xr = x + (((int64_t)b * s->H + lo) * s->W) * s->Cin;
        st = ldm_gemm(ctx, false, true, (int64_t)(hi - lo) * s->W, N, s->Cin, 1.0f, xr, s->Cin, Wt, s->Cin,
                      0.0f, Z, N);
        if (st != LDM_OK) break;
      }
      few_job fj = {y, Z, bias, s, b, oy0, lo};
      ldm_pool_for(ctx->pool, nb, few_task, &fj);
    }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* ---- few output channels, direct (AVX2) ---------------------------------
 * Where Cin is a multiple of 8: each output pixel is kh*kw dot products of
 * Cin channels against the packed weight [Cout, kh*kw*Cin] (in L1), four
 * pixels x three output channels in twelve accumulators, taps outside the
 * image read a row of zeros. No tap-product buffer, no GEMM with N = 27
 * (TAESD's last conv at 512^2: 22 -> 14 ms, 2 threads). */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FEWD_X86 1

enum { FEWD_PX = 4, FEWD_CO = 3 };

typedef struct fewd_job {
  float *y;
  const float *x, *wp, *bias, *zeros;
  const conv_shape *s;
} fewd_job;

__attribute__((target("avx2,fma"))) static float fewd_hsum(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"))) static void fewd_task(void *user, int64_t r) {
  const fewd_job *j = user;
  const conv_shape *s = j->s;
  int b = (int)(r / s->Ho), oy = (int)(r % s->Ho), C = s->Cout, Cin = s->Cin, taps = s->kh * s->kw;
  const float *xb = j->x + (int64_t)b * s->H * s->W * Cin;
  float *yrow = j->y + r * s->Wo * C;
  for (int ox0 = 0; ox0 < s->Wo; ox0 += FEWD_PX) {
    int np = s->Wo - ox0 < FEWD_PX ? s->Wo - ox0 : FEWD_PX;
    const float *px[FEWD_PX][64]; /* tap rows per pixel (kh*kw <= 64 checked by the caller) */
    for (int p = 0; p < FEWD_PX; p++)
      for (int ky = 0; ky < s->kh; ky++)
        for (int kx = 0; kx < s->kw; kx++) {
          int iy = oy * s->stride - s->pad + ky, ix = (ox0 + p) * s->stride - s->pad + kx;
          px[p][ky * s->kw + kx] = p >= np || iy < 0 || iy >= s->H || ix < 0 || ix >= s->W
                                       ? j->zeros
                                       : xb + ((int64_t)iy * s->W + ix) * Cin;
        }
    for (int co0 = 0; co0 < C; co0 += FEWD_CO) {
      int nc = C - co0 < FEWD_CO ? C - co0 : FEWD_CO;
      const float *w0 = j->wp + (int64_t)co0 * taps * Cin;
      const float *w1 = nc > 1 ? w0 + (int64_t)taps * Cin : w0, *w2 = nc > 2 ? w1 + (int64_t)taps * Cin : w0;
      __m256 acc[FEWD_PX][FEWD_CO];
      for (int p = 0; p < FEWD_PX; p++)
        for (int c = 0; c < FEWD_CO; c++) acc[p][c] = _mm256_setzero_ps();
      for (int t = 0; t < taps; t++) {
        const float *a0 = px[0][t], *a1 = px[1][t], *a2 = px[2][t], *a3 = px[3][t];
        const float *v0 = w0 + (int64_t)t * Cin, *v1 = w1 + (int64_t)t * Cin, *v2 = w2 + (int64_t)t * Cin;
        for (int ci = 0; ci < Cin; ci += 8) {
          __m256 k0 = _mm256_loadu_ps(v0 + ci), k1 = _mm256_loadu_ps(v1 + ci), k2 = _mm256_loadu_ps(v2 + ci);
          __m256 x0 = _mm256_loadu_ps(a0 + ci), x1 = _mm256_loadu_ps(a1 + ci);
          __m256 x2 = _mm256_loadu_ps(a2 + ci), x3 = _mm256_loadu_ps(a3 + ci);
          acc[0][0] = _mm256_fmadd_ps(x0, k0, acc[0][0]), acc[0][1] = _mm256_fmadd_ps(x0, k1, acc[0][1]);
          acc[0][2] = _mm256_fmadd_ps(x0, k2, acc[0][2]), acc[1][0] = _mm256_fmadd_ps(x1, k0, acc[1][0]);
          acc[1][1] = _mm256_fmadd_ps(x1, k1, acc[1][1]), acc[1][2] = _mm256_fmadd_ps(x1, k2, acc[1][2]);
          acc[2][0] = _mm256_fmadd_ps(x2, k0, acc[2][0]), acc[2][1] = _mm256_fmadd_ps(x2, k1, acc[2][1]);
          acc[2][2] = _mm256_fmadd_ps(x2, k2, acc[2][2]), acc[3][0] = _mm256_fmadd_ps(x3, k0, acc[3][0]);
          acc[3][1] = _mm256_fmadd_ps(x3, k1, acc[3][1]), acc[3][2] = _mm256_fmadd_ps(x3, k2, acc[3][2]);
        }
      }
      for (int p = 0; p < np; p++)
        for (int c = 0; c < nc; c++)
          yrow[(int64_t)(ox0 + p) * C + co0 + c] = fewd_hsum(acc[p][c]) + (j->bias ? j->bias[co0 + c] : 0.0f);
    }
  }
}

static bool fewd_fits(const conv_shape *s) {
  return s->Cin % 8 == 0 && s->kh * s->kw <= 64 && ldm_cpu_has_avx2() && ldm_cpu_has_fma();
}

static ldm_status conv_few_direct(ldm_ctx *ctx, float *y, const float *x, const conv_shape *s, const float *wp,
                                  const float *bias) {
  float *zeros = ldm_arena_floats(ctx->scratch, (size_t)s->Cin);
  if (!zeros) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for %d zeros", s->Cin);
  memset(zeros, 0, (size_t)s->Cin * sizeof(float));
  fewd_job j = {y, x, wp, bias, zeros, s};
  ldm_pool_for(ctx->pool, (int64_t)s->B * s->Ho, fewd_task, &j);
  return LDM_OK;
}
#endif

/* ---- bf16 on AMX tiles (gemm_amx.c) -------------------------------------
 * The weight as bf16 panels in (tap, ci) order, made once per job where
 * there is a weight cache. Cin a multiple of 32: the tiles' rows are read
 * from the image itself (implicit im2col: no column buffer, which at 9x the
 * image costs more memory traffic than AMX's products take time); 1x1
 * stride-1 convs are one product over the pixels; the rest im2col in bands.
 * All 3x3 convs go this way under AMX, none to Winograd: its transforms run
 * at f32 speed and would take longer than the products they save. */
static ldm_status conv_amx(ldm_ctx *ctx, float *y, const float *x, const conv_shape *s, const ldm_tensor *w,
                           const float *bias, size_t max_scratch_bytes) {
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ops_amx_panels P;
  ldm_status st = ops_amx_weight(ctx, w, s->Cout, s->K, s->kh * s->kw, &P);
  if (st != LDM_OK) goto done;
  if (s->Cin % 32 == 0) {
    st = ops_amx_conv(ctx, y, x, s->B, s->H, s->W, s->Cin, s->kh, s->kw, s->stride, s->pad, &P, bias);
    goto done;
  }
  if (s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0) {
    st = ops_amx_gemm(ctx, (int64_t)s->B * s->H * s->W, 1.0f, x, s->Cin, &P, 0.0f, y, s->Cout, bias);
    goto done;
  }
  size_t row_bytes = (size_t)s->Wo * (size_t)s->K * sizeof(float);
  int64_t total_rows = (int64_t)s->B * s->Ho;
  int64_t band = (int64_t)(max_scratch_bytes / row_bytes);
  if (band < 1) band = 1;
  if (band > total_rows) band = total_rows;
  float *cols = ldm_arena_floats(ctx->scratch, (size_t)band * (size_t)s->Wo * (size_t)s->K);
  if (!cols) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for im2col (%lld rows x %d x %lld)", (long long)band,
                  s->Wo, (long long)s->K);
    goto done;
  }
  for (int64_t r0 = 0; r0 < total_rows && st == LDM_OK; r0 += band) {
    if (ctx->cancel && atomic_load(ctx->cancel)) {
      st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "conv2d: cancelled");
      break;
    }
    int64_t M = (total_rows - r0 < band ? total_rows - r0 : band) * s->Wo;
    im2col_job ij = {cols, x, s, r0};
    ldm_pool_for(ctx->pool, M, im2col_task, &ij);
    st = ops_amx_gemm(ctx, M, 1.0f, cols, s->K, &P, 0.0f, y + r0 * s->Wo * (int64_t)s->Cout, s->Cout, bias);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* The convolution proper with a packed f32 weight wp [Cout, kh*kw*Cin], or
 * (wp NULL) its panels (ops_gemm_panels) of type pt. */
static ldm_status conv_run(ldm_ctx *ctx, float *y, const float *x, const conv_shape *s, const float *wp,
                           const float *panels, ldm_dtype pt, const float *bias, size_t max_scratch_bytes) {
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  if (s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0) {
    // 1x1: x [B*H*W, Cin] * W^T [Cin, Cout] -> y [B*H*W, Cout]
    int64_t M = (int64_t)s->B * s->H * s->W;
    if (panels)
      ops_gemm_panels(ctx, M, s->Cout, s->Cin, x, s->Cin, panels, pt, y, s->Cout);
    else
      st = ldm_gemm(ctx, false, true, M, s->Cout, s->Cin, 1.0f, x, s->Cin, wp, s->Cin, 0.0f, y, s->Cout);
    if (st == LDM_OK && bias) ops_add_bias_f32(ctx, y, M, s->Cout, bias);
    goto done;
  }
  // bands of output rows: cols [band_rows*Wo, K] <= max_scratch_bytes
  size_t row_bytes = (size_t)s->Wo * (size_t)s->K * sizeof(float);
  int64_t total_rows = (int64_t)s->B * s->Ho;
  int64_t band = (int64_t)(max_scratch_bytes / (row_bytes ? row_bytes : 1));
  if (band < 1) band = 1;
  if (band > total_rows) band = total_rows;
  size_t cols_n;
  float *cols = NULL;
  if (ldm_mul_size((size_t)band * (size_t)s->Wo, (size_t)s->K, &cols_n))
    cols = ldm_arena_floats(ctx->scratch, cols_n);
  if (!cols) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM,
                  "conv2d: no scratch for im2col (%lld rows x %d x %lld)",
                  (long long)band, s->Wo, (long long)s->K);
    goto done;
  }
  for (int64_t r0 = 0; r0 < total_rows; r0 += band) {
    if (ctx->cancel && atomic_load(ctx->cancel)) {
      st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "conv2d: cancelled");
      goto done;
    }
    int64_t nr = total_rows - r0 < band ? total_rows - r0 : band;
    int64_t M = nr * s->Wo;
    // im2col: x rows of the band -> cols [M, kh*kw*Cin]
    im2col_job ij = {cols, x, s, r0};
    ldm_pool_for(ctx->pool, M, im2col_task, &ij);
    // cols [M, K] * wp^T [K, Cout] -> y rows [M, Cout]
    float *yb = y + r0 * s->Wo * (int64_t)s->Cout;
    if (panels)
      ops_gemm_panels(ctx, M, s->Cout, s->K, cols, s->K, panels, pt, yb, s->Cout);
    else
      st = ldm_gemm(ctx, false, true, M, s->Cout, s->K, 1.0f, cols, s->K, wp, s->K, 0.0f, yb, s->Cout);
    if (st != LDM_OK) goto done;
    // + bias while the band is warm
    if (bias) ops_add_bias_f32(ctx, yb, M, s->Cout, bias);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* Packs w (validated, aligned) into wp [Cout, kh*kw*Cin] f32. */
static void conv_pack(ldm_ctx *ctx, float *wp, const ldm_tensor *w, int Cin) {
  pack_job pj = {wp, w, Cin, (int)(w->shape[2] * w->shape[3])};
  ldm_pool_for(ctx->pool, w->shape[0], pack_task, &pj);
}

/* ---- prepared kernels ---------------------------------------------------
 * Winograd-transformed, packed [Cout, kh*kw*Cin] or panels: ops_prepared's
 * prep functions, user the conv_shape. */
static bool prep_winograd(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *user) {
  const conv_shape *s = user;
  ops_winograd_weights(ctx, dst, wa, s->Cin, s->Cout, s->wino_m);
  return true;
}

static bool prep_winograd_panels(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *user) {
  const conv_shape *s = user;
  return ops_winograd_panels(ctx, dst, wa, s->Cin, s->Cout, s->wino_m);
}

static bool prep_packed(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *user) {
  const conv_shape *s = user;
  conv_pack(ctx, dst, wa, s->Cin);
  return true;
}

/* panels of the packed weight (ops_gemm_panels), in the weight's width */
static bool prep_panels(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *user) {
  const conv_shape *s = user;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  float *wp = ldm_arena_floats(ctx->scratch, (size_t)s->Cout * (size_t)s->K);
  if (wp) {
    conv_pack(ctx, wp, wa, s->Cin);
    ops_panels_build(ctx, dst, wa->dtype, wp, s->Cout, s->K);
  } else {
    ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch to pack weight '%s'", wa->name ? wa->name : "?");
  }
  ldm_arena_reset(ctx->scratch, mark);
  return wp != NULL;
}

static bool winograd_fits(const conv_shape *s) {
  return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->pad == 1;
}

/* ---- epilogue after the fact: y = relu?(y + res), parallel over chunks -- */
enum { EP_GRAIN = 16384 };

typedef struct ep_job {
  float *y;
  const ops_epilogue *ep;
  int64_t n;
} ep_job;

static void ep_task(void *user, int64_t t) {
  const ep_job *j = user;
  int64_t i0 = t * EP_GRAIN, i1 = i0 + EP_GRAIN < j->n ? i0 + EP_GRAIN : j->n;
  float *restrict y = j->y;
  const float *restrict r = j->ep->res;
  if (r)
    for (int64_t i = i0; i < i1; i++) y[i] += r[i];
  if (j->ep->relu)
    for (int64_t i = i0; i < i1; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

static void ep_run(ldm_ctx *ctx, float *y, const ops_epilogue *ep, int64_t n) {
  ep_job j = {y, ep, n};
  ldm_pool_for(ctx->pool, ops_tasks(n, EP_GRAIN), ep_task, &j);
}

static ldm_status conv2d_impl(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin,
                              const ldm_tensor *w, const ldm_tensor *b, int stride, int pad,
                              ldm_conv_algo algo, size_t max_scratch_bytes, const ops_epilogue *ep) {
  conv_shape s;
  LDM_TRY(conv_check(ctx, w, b, B, H, W, Cin, stride, pad, &s));
  /* Winograd's weight transform (16/9 of the weight, per call) only pays
   * off from ~250 output pixels on (measured here at 8x8 .. 512x512, 128 ..
   * 1280 channels: 1.3x at 512 pixels, 1.8-2.1x from 4096 on). */
  int64_t pixels = (int64_t)B * s.Ho * s.Wo;
  if (algo == LDM_CONV_AUTO && ops_amx_active(ctx) && pixels >= LDM_AMX_MIN_ROWS &&
      !(s.Cout <= LDM_CONV_FEW_COUT && s.kh * s.kw > 1))
    algo = LDM_CONV_AMX;
  if (algo == LDM_CONV_AMX && !ops_amx_active(ctx))
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "conv2d: the AMX path needs precision bf16 on a CPU with AMX-BF16");
  if (algo == LDM_CONV_AUTO && !ctx->wcache &&
      (pixels <= LDM_CONV_STREAM_MAX_PIXELS ||
       (s.kh == 1 && s.kw == 1 && stride == 1 && pad == 0 && pixels <= ops_gemm_stream_max_rows(ctx))))
    algo = LDM_CONV_STREAM;
  if (algo == LDM_CONV_AUTO && s.Cout <= LDM_CONV_FEW_COUT && s.kh * s.kw > 1 && pixels >= 4096)
    algo = LDM_CONV_FEW_COUT_TAPS;
  if (algo == LDM_CONV_AUTO)
    algo = winograd_fits(&s) && Cin >= LDM_CONV_WINOGRAD_MIN_CH &&
                   s.Cout >= LDM_CONV_WINOGRAD_MIN_CH &&
                   (int64_t)B * H * W >= LDM_CONV_WINOGRAD_MIN_PIXELS
               ? LDM_CONV_WINOGRAD
               : LDM_CONV_IM2COL;
  if (algo == LDM_CONV_WINOGRAD) /* F(4x4) once there are enough 4x4 tiles */
    algo = (int64_t)B * ((H + 3) / 4) * ((W + 3) / 4) >=
                   (ctx->wcache ? LDM_CONV_WINOGRAD4_MIN_TILES_CACHED : LDM_CONV_WINOGRAD4_MIN_TILES)
               ? LDM_CONV_WINOGRAD4
               : LDM_CONV_WINOGRAD2;
  if ((algo == LDM_CONV_WINOGRAD2 || algo == LDM_CONV_WINOGRAD4) && !winograd_fits(&s))
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED,
                    "conv2d: Winograd needs a 3x3 kernel, stride 1, padding 1 "
                    "(weight '%s' is %dx%d, stride %d, padding %d)",
                    w->name ? w->name : "?", s.kh, s.kw, stride, pad);
  s.wino_m = algo == LDM_CONV_WINOGRAD4 ? 4 : 2;
  size_t un = 0, wn = 0;
  if (!ldm_mul_size((size_t)(s.wino_m + 2) * (size_t)(s.wino_m + 2) * (size_t)s.Cout, (size_t)s.Cin, &un) ||
      !ldm_mul_size((size_t)s.Cout, (size_t)s.K, &wn))
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: weight '%s' too large", w->name ? w->name : "?");
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  const float *bias = NULL, *wp = NULL;
  if (b && !(bias = ops_weight_f32(ctx, b, s.Cout))) {
    st = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
    goto done;
  }
  if (algo == LDM_CONV_AMX) {
    st = conv_amx(ctx, y, x, &s, w, bias, max_scratch_bytes);
    goto done;
  }
  if (algo == LDM_CONV_FEW_COUT_TAPS) {
    if (s.Cout > LDM_CONV_FEW_COUT) {
      st = ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "conv2d: weight '%s' has %d output channels, tap products "
                    "take at most %d", w->name ? w->name : "?", s.Cout, LDM_CONV_FEW_COUT);
      goto done;
    }
#ifdef FEWD_X86
    if (fewd_fits(&s)) {
      const float *packed = ops_prepared(ctx, w, LDM_WCACHE_CONV, wn, prep_packed, &s, false);
      st = packed ? conv_few_direct(ctx, y, x, &s, packed, bias) : (ctx->err ? ctx->err->status : LDM_ERR_NOMEM);
      goto done;
    }
#endif
    st = conv_few_cout(ctx, y, x, &s, w, bias, max_scratch_bytes);
    goto done;
  }
  if (algo == LDM_CONV_STREAM) {
    ldm_tensor w_copy;
    const ldm_tensor *wa = ops_aligned(ctx, w, &w_copy);
    st = wa ? conv_stream(ctx, y, x, &s, wa, bias, max_scratch_bytes) : (ctx->err ? ctx->err->status : LDM_ERR_NOMEM);
    goto done;
  }
  if (algo == LDM_CONV_WINOGRAD2 || algo == LDM_CONV_WINOGRAD4) {
    const float *U = NULL;
    /* few tiles, weight cache: the transformed kernel as panels */
    int64_t tiles = (int64_t)B * ((H + s.wino_m - 1) / s.wino_m) * ((W + s.wino_m - 1) / s.wino_m);
    bool panels = ops_panels_usable(ctx, tiles) && !ops_winograd_own_kernel(Cin, s.Cout, s.wino_m) &&
                  (U = ops_prepared(ctx, w, LDM_WCACHE_WINOGRAD_PANELS,
                                    ops_winograd_panels_floats(Cin, s.Cout, s.wino_m), prep_winograd_panels, &s, true));
    if (!panels && !(U = ops_prepared(ctx, w, LDM_WCACHE_WINOGRAD, un, prep_winograd, &s, false))) {
      st = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
      goto done;
    }
    st = ops_conv3x3_winograd(ctx, y, x, B, H, W, Cin, s.Cout, U, panels, bias, ep, max_scratch_bytes, s.wino_m);
    ep = NULL; /* done in the output transform */
    goto done;
  }
  if (ops_panels_usable(ctx, pixels)) { /* few pixels, weight cache: panels */
    const float *P =
        ops_prepared(ctx, w, LDM_WCACHE_PANELS, ops_panels_floats(w->dtype, s.Cout, s.K), prep_panels, &s, false);
    st = P ? conv_run(ctx, y, x, &s, NULL, P, w->dtype, bias, max_scratch_bytes)
           : (ctx->err ? ctx->err->status : LDM_ERR_NOMEM);
    goto done;
  }
  if (s.kh == 1 && s.kw == 1) { // 1x1 needs no packing
    if (!(wp = ops_weight_f32(ctx, w, (int64_t)s.Cout * s.K))) {
      st = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
      goto done;
    }
    st = conv_run(ctx, y, x, &s, wp, NULL, LDM_DTYPE_F32, bias, max_scratch_bytes);
    goto done;
  }
  // weight [Cout, Cin, kh, kw] -> wp [Cout, kh*kw*Cin]
  const float *packed = ops_prepared(ctx, w, LDM_WCACHE_CONV, wn, prep_packed, &s, false);
  if (!packed) {
    st = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
    goto done;
  }
  st = conv_run(ctx, y, x, &s, packed, NULL, LDM_DTYPE_F32, bias, max_scratch_bytes);
done:
  if (st == LDM_OK && ep && (ep->res || ep->relu)) ep_run(ctx, y, ep, pixels * s.Cout);
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

ldm_status ldm_conv2d_algo(ldm_ctx *ctx, float *y, const float *x, int B,
                           int H, int W, int Cin, const ldm_tensor *w,
                           const ldm_tensor *b, int stride, int pad,
                           ldm_conv_algo algo, size_t max_scratch_bytes) {
  return conv2d_impl(ctx, y, x, B, H, W, Cin, w, b, stride, pad, algo, max_scratch_bytes, NULL);
}

ldm_status ldm_conv2d_fused(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin,
                            const ldm_tensor *w, const ldm_tensor *b, int stride, int pad,
                            const float *res, bool relu) {
  ops_epilogue ep = {res, relu};
  return conv2d_impl(ctx, y, x, B, H, W, Cin, w, b, stride, pad, LDM_CONV_AUTO, LDM_CONV2D_SCRATCH_BYTES,
                     res || relu ? &ep : NULL);
}

ldm_status ldm_conv2d_ex(ldm_ctx *ctx, float *y, const float *x, int B, int H,
                         int W, int Cin, const ldm_tensor *w,
                         const ldm_tensor *b, int stride, int pad,
                         size_t max_scratch_bytes) {
  return ldm_conv2d_algo(ctx, y, x, B, H, W, Cin, w, b, stride, pad,
                         LDM_CONV_AUTO, max_scratch_bytes);
}

int64_t ldm_conv2d_packed_size(const ldm_tensor *w) {
  if (!w || w->ndim != 4) return 0;
  return ldm_tensor_numel(w);
}

ldm_status ldm_conv2d_pack(ldm_ctx *ctx, float *dst, const ldm_tensor *w) {
  if (!w || w->ndim != 4 || w->shape[1] < 1)
    return ldm_fail(ctx->err, LDM_ERR_SHAPE,
                    "conv2d_pack: weight '%s' must be 4-D [Cout, Cin, kh, kw]",
                    w && w->name ? w->name : "?");
  conv_shape s;
  int Cin = (int)w->shape[1];
  int kh = (int)w->shape[2], kw = (int)w->shape[3];
  LDM_TRY(conv_check(ctx, w, NULL, 1, kh, kw, Cin, 1, 0, &s));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_tensor w_copy;
  const ldm_tensor *wa = ops_aligned(ctx, w, &w_copy);
  if (!wa) {
    ldm_arena_reset(ctx->scratch, mark);
    return ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
  }
  conv_pack(ctx, dst, wa, Cin);
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

ldm_status ldm_conv2d_packed(ldm_ctx *ctx, float *y, const float *x, int B,
                             int H, int W, int Cin, const float *wp, int Cout,
                             int kh, int kw, const ldm_tensor *b, int stride,
                             int pad) {
  ldm_tensor wt = {LDM_DTYPE_F32, 4, {Cout, Cin, kh, kw}, (void *)wp,
                   "packed conv weight"};
  conv_shape s;
  LDM_TRY(conv_check(ctx, &wt, b, B, H, W, Cin, stride, pad, &s));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  const float *bias = NULL;
  if (b && !(bias = ops_weight_f32(ctx, b, s.Cout)))
    st = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
  else
    st = conv_run(ctx, y, x, &s, wp, NULL, LDM_DTYPE_F32, bias, LDM_CONV2D_SCRATCH_BYTES);
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

ldm_status ldm_conv2d(ldm_ctx *ctx, float *y, const float *x, int B, int H,
                      int W, int Cin, const ldm_tensor *w, const ldm_tensor *b,
                      int stride, int pad) {
  return ldm_conv2d_ex(ctx, y, x, B, H, W, Cin, w, b, stride, pad,
                       LDM_CONV2D_SCRATCH_BYTES);
}

ldm_status ldm_conv2d_naive(ldm_ctx *ctx, float *y, const float *x, int B,
                            int H, int W, int Cin, const ldm_tensor *w,
                            const ldm_tensor *b, int stride, int pad) {
  conv_shape s;
  LDM_TRY(conv_check(ctx, w, b, B, H, W, Cin, stride, pad, &s));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  const float *wf = ops_weight_f32(ctx, w, (int64_t)s.Cout * s.K);
  const float *bias = wf && b ? ops_weight_f32(ctx, b, s.Cout) : NULL;
  if (!wf || (b && !bias)) {
    st = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
    goto done;
  }
  for (int bi = 0; bi < B; bi++)
    for (int oy = 0; oy < s.Ho; oy++)
      for (int ox = 0; ox < s.Wo; ox++)
        for (int co = 0; co < s.Cout; co++) {
          double acc = bias ? bias[co] : 0.0;
          for (int ci = 0; ci < Cin; ci++)
            for (int ky = 0; ky < s.kh; ky++)
              for (int kx = 0; kx < s.kw; kx++) {
                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += (double)x[(((int64_t)bi * H + iy) * W + ix) * Cin + ci] *
                       wf[(((int64_t)co * Cin + ci) * s.kh + ky) * s.kw + kx];
              }
          y[(((int64_t)bi * s.Ho + oy) * s.Wo + ox) * s.Cout + co] = (float)acc;
        }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}
