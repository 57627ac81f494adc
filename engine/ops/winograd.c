/* 3x3 stride-1 pad-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * and F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2015): each 4x4 (6x6) input tile d and 3x3 filter g give a 2x2
 * (4x4) output tile Y = A^T [(G g G^T) .* (B^T d B)] A, so the channel sums
 * become 16 (36) GEMMs [tiles, Cin] x [Cin, Cout] with 16/36 (36/144) of
 * im2col's multiplies. Channels-last
 * makes every transform a loop over contiguous channels. Tile rows are
 * processed in bands so the transformed buffers stay bounded. */
#include "ops/ops.h"
#include "ops/ops_util.h"
#include "core/half.h"

#include <string.h>

typedef struct wino_shape {
  int B, H, W, Cin, Cout;
  int th, tw; /* tiles per image: ceil(H/2) x ceil(W/2) */
} wino_shape;

/* ---- weight transform: g [Cout, Cin, 3, 3] -> U [16, Cout, Cin] ---------
 * Straight from the stored dtype: f16/bf16 kernels are widened in blocks of
 * input channels on the stack, not copied to f32 first. */
enum { WT_CI_BLOCK = 64 };

typedef struct wt_job {
  float *U;
  const ldm_tensor *w; /* aligned, f32/f16/bf16 */
  int Cin, Cout, m;    /* m: output tile side, 2 or 4 */
} wt_job;

/* u = G g G^T for F(4x4, 3x3): G rows (1/4, 0, 0), (-1/6, -1/6, -1/6),
 * (-1/6, 1/6, -1/6), (1/24, 1/12, 1/6), (1/24, -1/12, 1/6), (0, 0, 1). */
static void wt_f4(float u[36], const float *g) {
  float t[6][3];
  for (int c = 0; c < 3; c++) {
    float g0 = g[c], g1 = g[3 + c], g2 = g[6 + c];
    t[0][c] = 0.25f * g0;
    t[1][c] = -(g0 + g1 + g2) / 6.0f;
    t[2][c] = -(g0 - g1 + g2) / 6.0f;
    t[3][c] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
    t[4][c] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
    t[5][c] = g2;
  }
  for (int r = 0; r < 6; r++) {
    float g0 = t[r][0], g1 = t[r][1], g2 = t[r][2];
    u[6 * r + 0] = 0.25f * g0;
    u[6 * r + 1] = -(g0 + g1 + g2) / 6.0f;
    u[6 * r + 2] = -(g0 - g1 + g2) / 6.0f;
    u[6 * r + 3] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
    u[6 * r + 4] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
    u[6 * r + 5] = g2;
  }
}

static void wt_task(void *user, int64_t co) {
  const wt_job *j = user;
  size_t plane = (size_t)j->Cout * (size_t)j->Cin;
  float buf[WT_CI_BLOCK * 9];
  const float *blk = NULL;
  for (int ci = 0; ci < j->Cin; ci++) {
    if (ci % WT_CI_BLOCK == 0) {
      size_t off = ((size_t)co * (size_t)j->Cin + (size_t)ci) * 9;
      size_t n = (size_t)(j->Cin - ci < WT_CI_BLOCK ? j->Cin - ci : WT_CI_BLOCK) * 9;
      if (j->w->dtype == LDM_DTYPE_F32) {
        blk = (const float *)j->w->data + off;
      } else {
        if (j->w->dtype == LDM_DTYPE_F16) ldm_convert_f16_to_f32(buf, (const uint16_t *)j->w->data + off, n);
        else ldm_convert_bf16_to_f32(buf, (const uint16_t *)j->w->data + off, n);
        blk = buf;
      }
    }
    const float *g = blk + (size_t)(ci % WT_CI_BLOCK) * 9;
    if (j->m == 4) {
      float u6[36];
      wt_f4(u6, g);
      for (int k = 0; k < 36; k++)
        j->U[(size_t)k * plane + (size_t)co * (size_t)j->Cin + (size_t)ci] = u6[k];
      continue;
    }
    float t[4][3], u[4][4];
    for (int c = 0; c < 3; c++) { /* t = G g */
      t[0][c] = g[c];
      t[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
      t[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
      t[3][c] = g[6 + c];
    }
    for (int r = 0; r < 4; r++) { /* u = t G^T */
      u[r][0] = t[r][0];
      u[r][1] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
      u[r][2] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
      u[r][3] = t[r][2];
    }
    for (int k = 0; k < 16; k++)
      j->U[(size_t)k * plane + (size_t)co * (size_t)j->Cin + (size_t)ci] = u[k / 4][k % 4];
  }
}

/* ---- 1-D transforms over a run of channels -----------------------------
 * bt: (o0, o1, o2, o3) = B^T (a0, a1, a2, a3) = (a0-a2, a1+a2, a2-a1, a1-a3)
 * at: (o0, o1) = A^T (a0, a1, a2, a3) = (a0+a1+a2, a1-a2-a3) (+ bias)
 * Plain loops, compiled twice (baseline and AVX2) and picked at run time. */
#define WINO_KERNELS(SFX, ATTR)                                                \
  ATTR static void bt_##SFX(float *restrict o0, float *restrict o1,           \
                            float *restrict o2, float *restrict o3,           \
                            const float *restrict a0, const float *restrict a1, \
                            const float *restrict a2, const float *restrict a3, \
                            int n) {                                          \
    for (int i = 0; i < n; i++) {                                             \
      o0[i] = a0[i] - a2[i];                                                  \
      o1[i] = a1[i] + a2[i];                                                  \
      o2[i] = a2[i] - a1[i];                                                  \
      o3[i] = a1[i] - a3[i];                                                  \
    }                                                                         \
  }                                                                           \
  ATTR static void at_##SFX(float *restrict o0, float *restrict o1,           \
                            const float *restrict a0, const float *restrict a1, \
                            const float *restrict a2, const float *restrict a3, \
                            const float *restrict bias, int n) {              \
    if (bias) {                                                               \
      for (int i = 0; i < n; i++) {                                           \
        o0[i] = a0[i] + a1[i] + a2[i] + bias[i];                              \
        o1[i] = a1[i] - a2[i] - a3[i] + bias[i];                              \
      }                                                                       \
    } else {                                                                  \
      for (int i = 0; i < n; i++) {                                           \
        o0[i] = a0[i] + a1[i] + a2[i];                                        \
        o1[i] = a1[i] - a2[i] - a3[i];                                        \
      }                                                                       \
    }                                                                         \
  }

/* F(4x4, 3x3), points 0, +-1, +-2, inf:
 * bt6: B^T (a0..a5) = (4a0-5a2+a4, -4a1-4a2+a3+a4, 4a1-4a2-a3+a4,
 *                      -2a1-a2+2a3+a4, 2a1-a2-2a3+a4, 4a1-5a3+a5)
 * at6: A^T (a0..a5) = (a0+a1+a2+a3+a4, a1-a2+2a3-2a4, a1+a2+4a3+4a4,
 *                      a1-a2+8a3-8a4+a5) (+ bias); outputs past the image
 * edge go to `discard` by the caller. */
#define WINO6_KERNELS(SFX, ATTR)                                               \
  ATTR static void bt6_##SFX(float *const *restrict o, const float *const *restrict a, int n) { \
    float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2];       \
    float *restrict o3 = o[3], *restrict o4 = o[4], *restrict o5 = o[5];       \
    const float *restrict a0 = a[0], *restrict a1 = a[1], *restrict a2 = a[2]; \
    const float *restrict a3 = a[3], *restrict a4 = a[4], *restrict a5 = a[5]; \
    for (int i = 0; i < n; i++) {                                             \
      float p = a4[i] - 4.0f * a2[i], q = a3[i] - 4.0f * a1[i];               \
      float r = a4[i] - a2[i], t = 2.0f * (a3[i] - a1[i]);                    \
      o0[i] = 4.0f * a0[i] - 5.0f * a2[i] + a4[i];                            \
      o1[i] = p + q;                                                          \
      o2[i] = p - q;                                                          \
      o3[i] = r + t;                                                          \
      o4[i] = r - t;                                                          \
      o5[i] = 4.0f * a1[i] - 5.0f * a3[i] + a5[i];                            \
    }                                                                         \
  }                                                                           \
  ATTR static void at6_##SFX(float *const *restrict o, const float *const *restrict a, \
                             const float *restrict bias, int n) {             \
    float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2], *restrict o3 = o[3]; \
    const float *restrict a0 = a[0], *restrict a1 = a[1], *restrict a2 = a[2]; \
    const float *restrict a3 = a[3], *restrict a4 = a[4], *restrict a5 = a[5]; \
    for (int i = 0; i < n; i++) {                                             \
      float b = bias ? bias[i] : 0.0f;                                        \
      float s1 = a1[i] + a2[i], d1 = a1[i] - a2[i];                           \
      float s2 = a3[i] + a4[i], d2 = a3[i] - a4[i];                           \
      o0[i] = a0[i] + s1 + s2 + b;                                            \
      o1[i] = d1 + 2.0f * d2 + b;                                             \
      o2[i] = s1 + 4.0f * s2 + b;                                             \
      o3[i] = d1 + 8.0f * d2 + a5[i] + b;                                     \
    }                                                                         \
  }

WINO_KERNELS(base, )
WINO6_KERNELS(base, )
#if defined(__x86_64__) || defined(__i386__)
WINO_KERNELS(avx2, __attribute__((target("avx2"))))
WINO6_KERNELS(avx2, __attribute__((target("avx2,fma"))))
#define WINO_X86 1
#endif

typedef void (*bt_fn)(float *restrict, float *restrict, float *restrict,
                      float *restrict, const float *restrict,
                      const float *restrict, const float *restrict,
                      const float *restrict, int);
typedef void (*at_fn)(float *restrict, float *restrict, const float *restrict,
                      const float *restrict, const float *restrict,
                      const float *restrict, const float *restrict, int);

typedef void (*bt6_fn)(float *const *restrict, const float *const *restrict, int);
typedef void (*at6_fn)(float *const *restrict, const float *const *restrict, const float *restrict, int);

typedef struct wino_kernels {
  bt_fn bt;
  at_fn at;
  bt6_fn bt6;
  at6_fn at6;
} wino_kernels;

static wino_kernels pick_kernels(void) {
#ifdef WINO_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return (wino_kernels){bt_avx2, at_avx2, bt6_avx2, at6_avx2};
#endif
  return (wino_kernels){bt_base, at_base, bt6_base, at6_base};
}

enum { WINO_CB = 64 }; /* channels per block in the transforms */

/* ---- input transform: tiles of a band -> V [16, T, Cin] ----------------- */
typedef struct in_job {
  float *V;
  const float *x, *zeros;
  const wino_shape *s;
  int64_t row0, T; /* first global tile row (b * th + ty); tiles in band */
  wino_kernels kern;
} in_job;

static void in_task(void *user, int64_t t) {
  const in_job *j = user;
  const wino_shape *s = j->s;
  int64_t r = j->row0 + t / s->tw;
  int tx = (int)(t % s->tw);
  int b = (int)(r / s->th), ty = (int)(r % s->th);
  const float *xb = j->x + (int64_t)b * s->H * s->W * s->Cin;
  const float *d[4][4];
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 4; k++) {
      int iy = 2 * ty - 1 + i, ix = 2 * tx - 1 + k;
      d[i][k] = iy < 0 || iy >= s->H || ix < 0 || ix >= s->W
                    ? j->zeros
                    : xb + ((int64_t)iy * s->W + ix) * s->Cin;
    }
  size_t stride = (size_t)j->T * (size_t)s->Cin;
  float *v = j->V + (size_t)t * (size_t)s->Cin;
  float m[16][WINO_CB];
  for (int c0 = 0; c0 < s->Cin; c0 += WINO_CB) {
    int n = s->Cin - c0 < WINO_CB ? s->Cin - c0 : WINO_CB;
    for (int k = 0; k < 4; k++) /* m = B^T d, column k */
      j->kern.bt(m[k], m[4 + k], m[8 + k], m[12 + k], d[0][k] + c0,
                 d[1][k] + c0, d[2][k] + c0, d[3][k] + c0, n);
    for (int i = 0; i < 4; i++) { /* V = m B, row i */
      float *o = v + (size_t)(4 * i) * stride + (size_t)c0;
      j->kern.bt(o, o + stride, o + 2 * stride, o + 3 * stride, m[4 * i],
                 m[4 * i + 1], m[4 * i + 2], m[4 * i + 3], n);
    }
  }
}

/* ---- output transform: M [16, T, Cout] -> y (+ bias) -------------------- */
typedef struct out_job {
  float *y;
  const float *M, *bias;
  const wino_shape *s;
  int64_t row0, T;
  wino_kernels kern;
} out_job;

static void out_task(void *user, int64_t t) {
  const out_job *j = user;
  const wino_shape *s = j->s;
  int64_t r = j->row0 + t / s->tw;
  int tx = (int)(t % s->tw);
  int b = (int)(r / s->th), ty = (int)(r % s->th);
  int C = s->Cout;
  size_t stride = (size_t)j->T * (size_t)C;
  const float *mt = j->M + (size_t)t * (size_t)C;
  float *yb = j->y + (int64_t)b * s->H * s->W * C;
  int oy = 2 * ty, ox = 2 * tx;
  bool has_r1 = oy + 1 < s->H, has_c1 = ox + 1 < s->W;
  float *yrow[2] = {yb + ((int64_t)oy * s->W + ox) * C, NULL};
  if (has_r1) yrow[1] = yrow[0] + (int64_t)s->W * C;
  float a[8][WINO_CB], discard[WINO_CB]; /* right column past an odd W */
  for (int c0 = 0; c0 < C; c0 += WINO_CB) {
    int n = C - c0 < WINO_CB ? C - c0 : WINO_CB;
    for (int k = 0; k < 4; k++) { /* a = A^T M, column k */
      const float *p = mt + (size_t)k * stride + (size_t)c0;
      j->kern.at(a[k], a[4 + k], p, p + 4 * stride, p + 8 * stride,
                 p + 12 * stride, NULL, n);
    }
    const float *bias = j->bias ? j->bias + c0 : NULL;
    for (int rr = 0; rr < (has_r1 ? 2 : 1); rr++) { /* y = a A, row rr */
      float *y0 = yrow[rr] + c0;
      if (has_c1) {
        j->kern.at(y0, y0 + C, a[4 * rr], a[4 * rr + 1], a[4 * rr + 2],
                   a[4 * rr + 3], bias, n);
      } else {
        j->kern.at(y0, discard, a[4 * rr], a[4 * rr + 1], a[4 * rr + 2],
                   a[4 * rr + 3], bias, n);
      }
    }
  }
}

/* ---- F(4x4, 3x3): 6x6 input tiles, 4x4 output tiles --------------------- */
static void in4_task(void *user, int64_t t) {
  const in_job *j = user;
  const wino_shape *s = j->s;
  int64_t r = j->row0 + t / s->tw;
  int tx = (int)(t % s->tw);
  int b = (int)(r / s->th), ty = (int)(r % s->th);
  const float *xb = j->x + (int64_t)b * s->H * s->W * s->Cin;
  const float *d[6][6];
  for (int i = 0; i < 6; i++)
    for (int k = 0; k < 6; k++) {
      int iy = 4 * ty - 1 + i, ix = 4 * tx - 1 + k;
      d[i][k] = iy < 0 || iy >= s->H || ix < 0 || ix >= s->W
                    ? j->zeros
                    : xb + ((int64_t)iy * s->W + ix) * s->Cin;
    }
  size_t stride = (size_t)j->T * (size_t)s->Cin;
  float *v = j->V + (size_t)t * (size_t)s->Cin;
  float m[36][WINO_CB];
  for (int c0 = 0; c0 < s->Cin; c0 += WINO_CB) {
    int n = s->Cin - c0 < WINO_CB ? s->Cin - c0 : WINO_CB;
    for (int k = 0; k < 6; k++) { /* m = B^T d, column k */
      const float *a[6];
      float *o[6];
      for (int i = 0; i < 6; i++) a[i] = d[i][k] + c0, o[i] = m[6 * i + k];
      j->kern.bt6(o, a, n);
    }
    for (int i = 0; i < 6; i++) { /* V = m B, row i */
      const float *a[6];
      float *o[6];
      for (int q = 0; q < 6; q++) a[q] = m[6 * i + q], o[q] = v + (size_t)(6 * i + q) * stride + (size_t)c0;
      j->kern.bt6(o, a, n);
    }
  }
}

static void out4_task(void *user, int64_t t) {
  const out_job *j = user;
  const wino_shape *s = j->s;
  int64_t r = j->row0 + t / s->tw;
  int tx = (int)(t % s->tw);
  int b = (int)(r / s->th), ty = (int)(r % s->th);
  int C = s->Cout;
  size_t stride = (size_t)j->T * (size_t)C;
  const float *mt = j->M + (size_t)t * (size_t)C;
  float *yb = j->y + (int64_t)b * s->H * s->W * C;
  int oy = 4 * ty, ox = 4 * tx;
  int rows = s->H - oy < 4 ? s->H - oy : 4, cols = s->W - ox < 4 ? s->W - ox : 4;
  float a[24][WINO_CB], discard[WINO_CB]; /* columns past the right edge */
  for (int c0 = 0; c0 < C; c0 += WINO_CB) {
    int n = C - c0 < WINO_CB ? C - c0 : WINO_CB;
    for (int k = 0; k < 6; k++) { /* a = A^T M, column k */
      const float *in[6];
      float *o[4];
      for (int p = 0; p < 6; p++) in[p] = mt + (size_t)(6 * p + k) * stride + (size_t)c0;
      for (int q = 0; q < 4; q++) o[q] = a[6 * q + k];
      j->kern.at6(o, in, NULL, n);
    }
    const float *bias = j->bias ? j->bias + c0 : NULL;
    for (int rr = 0; rr < rows; rr++) { /* y = a A, row rr */
      float *y0 = yb + ((int64_t)(oy + rr) * s->W + ox) * C + c0;
      const float *in[6];
      float *o[4];
      for (int q = 0; q < 6; q++) in[q] = a[6 * rr + q];
      for (int q = 0; q < 4; q++) o[q] = q < cols ? y0 + (int64_t)q * C : discard;
      j->kern.at6(o, in, bias, n);
    }
  }
}

void ops_winograd_weights(ldm_ctx *ctx, float *U, const ldm_tensor *w, int Cin, int Cout, int m) {
  wt_job wj = {U, w, Cin, Cout, m};
  ldm_pool_for(ctx->pool, Cout, wt_task, &wj);
}

ldm_status ops_conv3x3_winograd(ldm_ctx *ctx, float *y, const float *x, int B,
                                int H, int W, int Cin, int Cout,
                                const float *U, const float *bias,
                                size_t max_scratch_bytes, int m) {
  wino_shape s = {B, H, W, Cin, Cout, (H + m - 1) / m, (W + m - 1) / m};
  int npts = (m + 2) * (m + 2);
  wino_kernels kern = pick_kernels();
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  float *zeros = ldm_arena_floats(ctx->scratch, (size_t)Cin);
  if (!zeros) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for Winograd (%d channels)", Cin);
    goto done;
  }
  memset(zeros, 0, (size_t)Cin * sizeof(float));
  // bands of tile rows: V [npts, T, Cin] + M [npts, T, Cout] <= max_scratch_bytes
  size_t per_row = (size_t)npts * (size_t)s.tw * ((size_t)Cin + Cout) * sizeof(float);
  int64_t total_rows = (int64_t)B * s.th;
  int64_t band = (int64_t)(max_scratch_bytes / per_row);
  if (band < 1) band = 1;
  if (band > total_rows) band = total_rows;
  int64_t Tmax = band * s.tw;
  float *V = ldm_arena_floats(ctx->scratch, (size_t)npts * (size_t)Tmax * (size_t)Cin);
  float *M = ldm_arena_floats(ctx->scratch, (size_t)npts * (size_t)Tmax * (size_t)Cout);
  if (!V || !M) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM,
                  "conv2d: no scratch for Winograd tiles (%lld tiles)", (long long)Tmax);
    goto done;
  }
  for (int64_t r0 = 0; r0 < total_rows; r0 += band) {
    if (ctx->cancel && atomic_load(ctx->cancel)) {
      st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "conv2d: cancelled");
      goto done;
    }
    int64_t T = (total_rows - r0 < band ? total_rows - r0 : band) * s.tw;
    // input tiles -> V [npts, T, Cin]
    in_job ij = {V, x, zeros, &s, r0, T, kern};
    ldm_pool_for(ctx->pool, T, m == 4 ? in4_task : in_task, &ij);
    // M_k = V_k [T, Cin] * U_k^T [Cin, Cout] -> [npts, T, Cout]
    for (int k = 0; k < npts; k++) {
      st = ldm_gemm(ctx, false, true, T, Cout, Cin, 1.0f, V + (size_t)k * T * Cin,
                    Cin, U + (size_t)k * Cout * Cin, Cin, 0.0f,
                    M + (size_t)k * T * Cout, Cout);
      if (st != LDM_OK) goto done;
    }
    // output tiles (+ bias) -> y
    out_job oj = {y, M, bias, &s, r0, T, kern};
    ldm_pool_for(ctx->pool, T, m == 4 ? out4_task : out_task, &oj);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}
