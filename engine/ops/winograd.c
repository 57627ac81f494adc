/* 3x3 stride-1 pad-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015):
 * each 4x4 input tile d and 3x3 filter g give a 2x2 output tile
 * Y = A^T [(G g G^T) .* (B^T d B)] A, so the channel sums become 16 GEMMs
 * [tiles, Cin] x [Cin, Cout] with 16/36 of im2col's multiplies. Channels-last
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
  int Cin, Cout;
} wt_job;

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

WINO_KERNELS(base, )
#if defined(__x86_64__) || defined(__i386__)
WINO_KERNELS(avx2, __attribute__((target("avx2"))))
#define WINO_X86 1
#endif

typedef void (*bt_fn)(float *restrict, float *restrict, float *restrict,
                      float *restrict, const float *restrict,
                      const float *restrict, const float *restrict,
                      const float *restrict, int);
typedef void (*at_fn)(float *restrict, float *restrict, const float *restrict,
                      const float *restrict, const float *restrict,
                      const float *restrict, const float *restrict, int);

typedef struct wino_kernels {
  bt_fn bt;
  at_fn at;
} wino_kernels;

static wino_kernels pick_kernels(void) {
#ifdef WINO_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return (wino_kernels){bt_avx2, at_avx2};
#endif
  return (wino_kernels){bt_base, at_base};
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

void ops_winograd_weights(ldm_ctx *ctx, float *U, const ldm_tensor *w, int Cin, int Cout) {
  wt_job wj = {U, w, Cin, Cout};
  ldm_pool_for(ctx->pool, Cout, wt_task, &wj);
}

ldm_status ops_conv3x3_winograd(ldm_ctx *ctx, float *y, const float *x, int B,
                                int H, int W, int Cin, int Cout,
                                const float *U, const float *bias,
                                size_t max_scratch_bytes) {
  wino_shape s = {B, H, W, Cin, Cout, (H + 1) / 2, (W + 1) / 2};
  wino_kernels kern = pick_kernels();
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  float *zeros = ldm_arena_floats(ctx->scratch, (size_t)Cin);
  if (!zeros) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for Winograd (%d channels)", Cin);
    goto done;
  }
  memset(zeros, 0, (size_t)Cin * sizeof(float));
  // bands of tile rows: V [16, T, Cin] + M [16, T, Cout] <= max_scratch_bytes
  size_t per_row = (size_t)16 * (size_t)s.tw * ((size_t)Cin + Cout) * sizeof(float);
  int64_t total_rows = (int64_t)B * s.th;
  int64_t band = (int64_t)(max_scratch_bytes / per_row);
  if (band < 1) band = 1;
  if (band > total_rows) band = total_rows;
  int64_t Tmax = band * s.tw;
  float *V = ldm_arena_floats(ctx->scratch, (size_t)16 * (size_t)Tmax * (size_t)Cin);
  float *M = ldm_arena_floats(ctx->scratch, (size_t)16 * (size_t)Tmax * (size_t)Cout);
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
    // input tiles -> V [16, T, Cin]
    in_job ij = {V, x, zeros, &s, r0, T, kern};
    ldm_pool_for(ctx->pool, T, in_task, &ij);
    // M_k = V_k [T, Cin] * U_k^T [Cin, Cout] -> [16, T, Cout]
    for (int k = 0; k < 16; k++) {
      st = ldm_gemm(ctx, false, true, T, Cout, Cin, 1.0f, V + (size_t)k * T * Cin,
                    Cin, U + (size_t)k * Cout * Cin, Cin, 0.0f,
                    M + (size_t)k * T * Cout, Cout);
      if (st != LDM_OK) goto done;
    }
    // output tiles (+ bias) -> y
    out_job oj = {y, M, bias, &s, r0, T, kern};
    ldm_pool_for(ctx->pool, T, out_task, &oj);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}
