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
#include "core/cpu.h"

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

/* ---- the kernel transform over a block of input channels ---------------
 * Structure of arrays: g[t][i] is tap t (row-major 3x3) of input channel i,
 * u[k][i] point k of its transform; every line is a loop over the block's
 * channels, which the compiler turns into vector code (cloned for AVX2 and
 * AVX-512 where the toolchain can: one scalar transform per channel, storing
 * into 36 planes, had taken 12 % of a 512x512 UNet evaluation). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define WT_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define WT_CLONES
#endif

/* o[0..m+2) = G (x0, x1, x2) over n channels. F(2x2): G rows (1, 0, 0),
 * (1, 1, 1)/2, (1, -1, 1)/2, (0, 0, 1). F(4x4), with the points of
 * bt6/at6: (1/2, 0, 0), (1, -1, 1)/6, (1, 1, 1)/6, (4, 2, 1) 4/15,
 * (1, -2, 4)/30, (0, 0, 1/2). */
static inline void g_rows(float (*o)[WT_CI_BLOCK], const float *x0, const float *x1, const float *x2, int n,
                          int m) {
  if (m == 2) {
    for (int i = 0; i < n; i++) o[0][i] = x0[i];
    for (int i = 0; i < n; i++) o[1][i] = 0.5f * (x0[i] + x1[i] + x2[i]);
    for (int i = 0; i < n; i++) o[2][i] = 0.5f * (x0[i] - x1[i] + x2[i]);
    for (int i = 0; i < n; i++) o[3][i] = x2[i];
    return;
  }
  for (int i = 0; i < n; i++) o[0][i] = 0.5f * x0[i];
  for (int i = 0; i < n; i++) o[1][i] = (x0[i] - x1[i] + x2[i]) / 6.0f;
  for (int i = 0; i < n; i++) o[2][i] = (x0[i] + x1[i] + x2[i]) / 6.0f;
  for (int i = 0; i < n; i++) o[3][i] = (4.0f * x0[i] + 2.0f * x1[i] + x2[i]) * (4.0f / 15.0f);
  for (int i = 0; i < n; i++) o[4][i] = (x0[i] - 2.0f * x1[i] + 4.0f * x2[i]) / 30.0f;
  for (int i = 0; i < n; i++) o[5][i] = 0.5f * x2[i];
}

/* u = G g G^T for n channels: t = G g (columns c of g), then u's row r =
 * G applied to t's row r. */
WT_CLONES static void wt_block(float (*u)[WT_CI_BLOCK], const float (*g)[WT_CI_BLOCK], int n, int m) {
  int a = m + 2; /* points per side */
  float t[6][3][WT_CI_BLOCK], col[6][WT_CI_BLOCK], row[6][WT_CI_BLOCK];
  for (int c = 0; c < 3; c++) {
    g_rows(col, g[c], g[3 + c], g[6 + c], n, m);
    for (int r = 0; r < a; r++) memcpy(t[r][c], col[r], sizeof(float) * (size_t)n);
  }
  for (int r = 0; r < a; r++) {
    g_rows(row, t[r][0], t[r][1], t[r][2], n, m);
    for (int q = 0; q < a; q++) memcpy(u[a * r + q], row[q], sizeof(float) * (size_t)n);
  }
}

/* One output channel: blocks of input channels are widened, transposed to
 * taps x channels, transformed and written to U as one contiguous run per
 * point. */
static void wt_task(void *user, int64_t co) {
  const wt_job *j = user;
  size_t plane = (size_t)j->Cout * (size_t)j->Cin;
  int npts = (j->m + 2) * (j->m + 2);
  float buf[WT_CI_BLOCK * 9], g[9][WT_CI_BLOCK], tr[36][WT_CI_BLOCK];
  for (int ci0 = 0; ci0 < j->Cin; ci0 += WT_CI_BLOCK) {
    size_t off = ((size_t)co * (size_t)j->Cin + (size_t)ci0) * 9;
    int n = j->Cin - ci0 < WT_CI_BLOCK ? j->Cin - ci0 : WT_CI_BLOCK;
    const float *blk;
    if (j->w->dtype == LDM_DTYPE_F32) {
      blk = (const float *)j->w->data + off;
    } else {
      if (j->w->dtype == LDM_DTYPE_F16) ldm_convert_f16_to_f32(buf, (const uint16_t *)j->w->data + off, (size_t)n * 9);
      else ldm_convert_bf16_to_f32(buf, (const uint16_t *)j->w->data + off, (size_t)n * 9);
      blk = buf;
    }
    for (int i = 0; i < n; i++)
      for (int t = 0; t < 9; t++) g[t][i] = blk[(size_t)i * 9 + (size_t)t];
    wt_block(tr, (const float (*)[WT_CI_BLOCK])g, n, j->m);
    for (int k = 0; k < npts; k++)
      memcpy(j->U + (size_t)k * plane + (size_t)co * (size_t)j->Cin + (size_t)ci0, tr[k], (size_t)n * sizeof(float));
  }
}

/* The epilogue on one value: + residual, then ReLU. */
static inline float ep_apply(const ops_epilogue *ep, float v, float r) {
  v += r;
  return ep->relu && !(v > 0.0f) ? 0.0f : v;
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

/* F(4x4, 3x3) with the points 0, -1, 1, 1/2, -2, inf: about half the
 * rounding error of the usual 0, +-1, +-2 (numerically, f32, 32 channels),
 * which keeps it within the ops' tolerance (STYLE.md). Rows of B^T scaled to
 * small integers, G scaled inversely:
 * bt6: (2a0-3a1-4a2+3a3+2a4, -2a1+5a2-a3-2a4, -2a1+a2+5a3+2a4,
 *       2a1+a2-2a3-a4, a1-2a2-a3+2a4, 2a1-3a2-4a3+3a4+2a5)
 * at6: (a0+a1+a2+a3+a4, -a1+a2+a3/2-2a4, a1+a2+a3/4+4a4,
 *       -a1+a2+a3/8-8a4+a5) (+ bias); outputs past the image edge go to
 * `discard` by the caller. */
#define WINO6_KERNELS(SFX, ATTR)                                               \
  ATTR static void bt6_##SFX(float *const *restrict o, const float *const *restrict a, int n) { \
    float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2];       \
    float *restrict o3 = o[3], *restrict o4 = o[4], *restrict o5 = o[5];       \
    const float *restrict a0 = a[0], *restrict a1 = a[1], *restrict a2 = a[2]; \
    const float *restrict a3 = a[3], *restrict a4 = a[4], *restrict a5 = a[5]; \
    for (int i = 0; i < n; i++) {                                             \
      o0[i] = 2.0f * (a0[i] + a4[i]) - 3.0f * (a1[i] - a3[i]) - 4.0f * a2[i]; \
      o1[i] = 5.0f * a2[i] - 2.0f * (a1[i] + a4[i]) - a3[i];                   \
      o2[i] = 5.0f * a3[i] - 2.0f * (a1[i] - a4[i]) + a2[i];                   \
      o3[i] = 2.0f * (a1[i] - a3[i]) + a2[i] - a4[i];                          \
      o4[i] = a1[i] - a3[i] - 2.0f * (a2[i] - a4[i]);                          \
      o5[i] = 2.0f * (a1[i] + a5[i]) - 3.0f * (a2[i] - a4[i]) - 4.0f * a3[i]; \
    }                                                                         \
  }                                                                           \
  ATTR static void at6_##SFX(float *const *restrict o, const float *const *restrict a, \
                             const float *restrict bias, const ops_epilogue *ep, \
                             const float *const *r, int n) {                  \
    float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2], *restrict o3 = o[3]; \
    const float *restrict a0 = a[0], *restrict a1 = a[1], *restrict a2 = a[2]; \
    const float *restrict a3 = a[3], *restrict a4 = a[4], *restrict a5 = a[5]; \
    for (int i = 0; i < n; i++) {                                             \
      float b = bias ? bias[i] : 0.0f;                                        \
      float s = a1[i] + a2[i], d = a2[i] - a1[i];                             \
      float v[4] = {a0[i] + s + a3[i] + a4[i] + b, d + 0.5f * a3[i] - 2.0f * a4[i] + b, \
                    s + 0.25f * a3[i] + 4.0f * a4[i] + b,                     \
                    d + 0.125f * a3[i] - 8.0f * a4[i] + a5[i] + b};           \
      if (ep)                                                                 \
        for (int q = 0; q < 4; q++) v[q] = ep_apply(ep, v[q], r ? r[q][i] : 0.0f); \
      o0[i] = v[0], o1[i] = v[1], o2[i] = v[2], o3[i] = v[3];                 \
    }                                                                         \
  }

WINO_KERNELS(base, )
WINO6_KERNELS(base, )
#if defined(__x86_64__) || defined(__i386__)
WINO_KERNELS(avx2, __attribute__((target("avx2"))))
WINO6_KERNELS(avx2s, __attribute__((target("avx2,fma"))))
#define WINO_X86 1
#include <immintrin.h>

/* bt6/at6 in AVX2 by hand: with twelve pointers from arrays the compiler
 * leaves the plain loops scalar (it will not prove them apart), and these
 * transforms then cost more than the products (TAESD: 55 % of the decode).
 * Runs of 8 channels; a remainder goes to the plain loops. */
__attribute__((target("avx2,fma"))) static void bt6_avx2(float *const *restrict o, const float *const *restrict a,
                                                        int n) {
  const __m256 c2 = _mm256_set1_ps(2.0f), c3 = _mm256_set1_ps(3.0f), c4 = _mm256_set1_ps(4.0f),
               c5 = _mm256_set1_ps(5.0f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 a0 = _mm256_loadu_ps(a[0] + i), a1 = _mm256_loadu_ps(a[1] + i), a2 = _mm256_loadu_ps(a[2] + i);
    __m256 a3 = _mm256_loadu_ps(a[3] + i), a4 = _mm256_loadu_ps(a[4] + i), a5 = _mm256_loadu_ps(a[5] + i);
    __m256 d13 = _mm256_sub_ps(a1, a3), d24 = _mm256_sub_ps(a2, a4);
    __m256 o0 = _mm256_fnmadd_ps(c4, a2, _mm256_fnmadd_ps(c3, d13, _mm256_mul_ps(c2, _mm256_add_ps(a0, a4))));
    __m256 o1 = _mm256_sub_ps(_mm256_fnmadd_ps(c2, _mm256_add_ps(a1, a4), _mm256_mul_ps(c5, a2)), a3);
    __m256 o2 = _mm256_add_ps(_mm256_fnmadd_ps(c2, _mm256_sub_ps(a1, a4), _mm256_mul_ps(c5, a3)), a2);
    __m256 o3 = _mm256_sub_ps(_mm256_fmadd_ps(c2, d13, a2), a4);
    __m256 o4 = _mm256_fnmadd_ps(c2, d24, d13);
    __m256 o5 = _mm256_fnmadd_ps(c4, a3, _mm256_fnmadd_ps(c3, d24, _mm256_mul_ps(c2, _mm256_add_ps(a1, a5))));
    _mm256_storeu_ps(o[0] + i, o0), _mm256_storeu_ps(o[1] + i, o1), _mm256_storeu_ps(o[2] + i, o2);
    _mm256_storeu_ps(o[3] + i, o3), _mm256_storeu_ps(o[4] + i, o4), _mm256_storeu_ps(o[5] + i, o5);
  }
  if (i < n) {
    float *ot[6];
    const float *at[6];
    for (int k = 0; k < 6; k++) ot[k] = o[k] + i, at[k] = a[k] + i;
    bt6_avx2s(ot, at, n - i);
  }
}

__attribute__((target("avx2,fma"))) static void at6_avx2(float *const *restrict o, const float *const *restrict a,
                                                        const float *restrict bias, const ops_epilogue *ep,
                                                        const float *const *r, int n) {
  const __m256 h = _mm256_set1_ps(0.5f), q = _mm256_set1_ps(0.25f), e = _mm256_set1_ps(0.125f);
  const __m256 c2 = _mm256_set1_ps(2.0f), c4 = _mm256_set1_ps(4.0f), c8 = _mm256_set1_ps(8.0f);
  const __m256 zero = _mm256_setzero_ps();
  const bool res = ep && r, relu = ep && ep->relu;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 a0 = _mm256_loadu_ps(a[0] + i), a1 = _mm256_loadu_ps(a[1] + i), a2 = _mm256_loadu_ps(a[2] + i);
    __m256 a3 = _mm256_loadu_ps(a[3] + i), a4 = _mm256_loadu_ps(a[4] + i), a5 = _mm256_loadu_ps(a[5] + i);
    __m256 b = bias ? _mm256_loadu_ps(bias + i) : _mm256_setzero_ps();
    __m256 s = _mm256_add_ps(a1, a2), d = _mm256_sub_ps(a2, a1);
    __m256 o0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, s), _mm256_add_ps(a3, a4)), b);
    __m256 o1 = _mm256_add_ps(_mm256_fnmadd_ps(c2, a4, _mm256_fmadd_ps(h, a3, d)), b);
    __m256 o2 = _mm256_add_ps(_mm256_fmadd_ps(c4, a4, _mm256_fmadd_ps(q, a3, s)), b);
    __m256 o3 = _mm256_add_ps(_mm256_add_ps(_mm256_fnmadd_ps(c8, a4, _mm256_fmadd_ps(e, a3, d)), a5), b);
    if (res) {
      o0 = _mm256_add_ps(o0, _mm256_loadu_ps(r[0] + i)), o1 = _mm256_add_ps(o1, _mm256_loadu_ps(r[1] + i));
      o2 = _mm256_add_ps(o2, _mm256_loadu_ps(r[2] + i)), o3 = _mm256_add_ps(o3, _mm256_loadu_ps(r[3] + i));
    }
    if (relu) /* max(o, 0) with o first: NaN stays 0 as in ep_apply */
      o0 = _mm256_max_ps(o0, zero), o1 = _mm256_max_ps(o1, zero), o2 = _mm256_max_ps(o2, zero),
      o3 = _mm256_max_ps(o3, zero);
    _mm256_storeu_ps(o[0] + i, o0), _mm256_storeu_ps(o[1] + i, o1);
    _mm256_storeu_ps(o[2] + i, o2), _mm256_storeu_ps(o[3] + i, o3);
  }
  if (i < n) {
    float *ot[4];
    const float *at[6];
    const float *rt[4];
    for (int k = 0; k < 6; k++) at[k] = a[k] + i;
    for (int k = 0; k < 4; k++) ot[k] = o[k] + i, rt[k] = r ? r[k] + i : NULL;
    at6_avx2s(ot, at, bias ? bias + i : NULL, ep, r ? rt : NULL, n - i);
  }
}
#endif

typedef void (*bt_fn)(float *restrict, float *restrict, float *restrict,
                      float *restrict, const float *restrict,
                      const float *restrict, const float *restrict,
                      const float *restrict, int);
typedef void (*at_fn)(float *restrict, float *restrict, const float *restrict,
                      const float *restrict, const float *restrict,
                      const float *restrict, const float *restrict, int);

typedef void (*bt6_fn)(float *const *restrict, const float *const *restrict, int);
typedef void (*at6_fn)(float *const *restrict, const float *const *restrict, const float *restrict,
                       const ops_epilogue *, const float *const *, int);

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
  int64_t t0;      /* tile t of the buffer is tile t0 + t of the band */
} in_job;

/* Pixel pointers of buffer tile t's (m+2) x (m+2) input window, starting
 * one pixel above and left of its m x m output tile; zeros outside. */
static void tile_inputs(const in_job *j, int64_t t, int m, const float **d) {
  const wino_shape *s = j->s;
  int64_t g = j->t0 + t, r = j->row0 + g / s->tw;
  int tx = (int)(g % s->tw);
  int b = (int)(r / s->th), ty = (int)(r % s->th), a = m + 2;
  const float *xb = j->x + (int64_t)b * s->H * s->W * s->Cin;
  for (int i = 0; i < a; i++)
    for (int k = 0; k < a; k++) {
      int iy = m * ty - 1 + i, ix = m * tx - 1 + k;
      d[i * a + k] = iy < 0 || iy >= s->H || ix < 0 || ix >= s->W
                         ? j->zeros
                         : xb + ((int64_t)iy * s->W + ix) * s->Cin;
    }
}

static void in_task(void *user, int64_t t) {
  const in_job *j = user;
  const wino_shape *s = j->s;
  const float *d[16];
  tile_inputs(j, t, 2, d);
  size_t stride = (size_t)j->T * (size_t)s->Cin;
  float *v = j->V + (size_t)t * (size_t)s->Cin;
  float m[16][WINO_CB];
  for (int c0 = 0; c0 < s->Cin; c0 += WINO_CB) {
    int n = s->Cin - c0 < WINO_CB ? s->Cin - c0 : WINO_CB;
    for (int k = 0; k < 4; k++) /* m = B^T d, column k */
      j->kern.bt(m[k], m[4 + k], m[8 + k], m[12 + k], d[k] + c0,
                 d[4 + k] + c0, d[8 + k] + c0, d[12 + k] + c0, n);
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
  int64_t t0;
  const ops_epilogue *ep; /* NULL: none */
} out_job;

/* The epilogue over n channels of one output pixel y (F(2x2)'s plain path). */
static void ep_pixel(const out_job *j, float *y, int n) {
  const float *r = j->ep->res ? j->ep->res + (y - j->y) : NULL;
  for (int i = 0; i < n; i++) y[i] = ep_apply(j->ep, y[i], r ? r[i] : 0.0f);
}

/* Buffer tile t's m x m output tile: its image's first output pixel (yb),
 * the tile's first row and column (oy, ox). */
static float *tile_output(const out_job *j, int64_t t, int m, int *oy, int *ox) {
  const wino_shape *s = j->s;
  int64_t g = j->t0 + t, r = j->row0 + g / s->tw;
  *ox = m * (int)(g % s->tw);
  *oy = m * (int)(r % s->th);
  return j->y + (r / s->th) * s->H * s->W * s->Cout;
}

static void out_task(void *user, int64_t t) {
  const out_job *j = user;
  const wino_shape *s = j->s;
  int C = s->Cout, oy, ox;
  size_t stride = (size_t)j->T * (size_t)C;
  const float *mt = j->M + (size_t)t * (size_t)C;
  float *yb = tile_output(j, t, 2, &oy, &ox);
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
      if (j->ep) {
        ep_pixel(j, y0, n);
        if (has_c1) ep_pixel(j, y0 + C, n);
      }
    }
  }
}

/* ---- F(4x4, 3x3): 6x6 input tiles, 4x4 output tiles --------------------- */
static void in4_task(void *user, int64_t t) {
  const in_job *j = user;
  const wino_shape *s = j->s;
  const float *d[36];
  tile_inputs(j, t, 4, d);
  size_t stride = (size_t)j->T * (size_t)s->Cin;
  float *v = j->V + (size_t)t * (size_t)s->Cin;
  float m[36][WINO_CB];
  for (int c0 = 0; c0 < s->Cin; c0 += WINO_CB) {
    int n = s->Cin - c0 < WINO_CB ? s->Cin - c0 : WINO_CB;
    for (int k = 0; k < 6; k++) { /* m = B^T d, column k */
      const float *a[6];
      float *o[6];
      for (int i = 0; i < 6; i++) a[i] = d[6 * i + k] + c0, o[i] = m[6 * i + k];
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
  int C = s->Cout, oy, ox;
  size_t stride = (size_t)j->T * (size_t)C;
  const float *mt = j->M + (size_t)t * (size_t)C;
  float *yb = tile_output(j, t, 4, &oy, &ox);
  int rows = s->H - oy < 4 ? s->H - oy : 4, cols = s->W - ox < 4 ? s->W - ox : 4;
  float a[24][WINO_CB], discard[WINO_CB]; /* columns past the right edge */
  for (int c0 = 0; c0 < C; c0 += WINO_CB) {
    int n = C - c0 < WINO_CB ? C - c0 : WINO_CB;
    for (int k = 0; k < 6; k++) { /* a = A^T M, column k */
      const float *in[6];
      float *o[4];
      for (int p = 0; p < 6; p++) in[p] = mt + (size_t)(6 * p + k) * stride + (size_t)c0;
      for (int q = 0; q < 4; q++) o[q] = a[6 * q + k];
      j->kern.at6(o, in, NULL, NULL, NULL, n);
    }
    const float *bias = j->bias ? j->bias + c0 : NULL;
    for (int rr = 0; rr < rows; rr++) { /* y = a A, row rr */
      float *y0 = yb + ((int64_t)(oy + rr) * s->W + ox) * C + c0;
      const float *in[6], *r[4];
      float *o[4];
      const float *r0 = j->ep && j->ep->res ? j->ep->res + (y0 - j->y) : NULL;
      for (int q = 0; q < 6; q++) in[q] = a[6 * rr + q];
      for (int q = 0; q < 4; q++) {
        o[q] = q < cols ? y0 + (int64_t)q * C : discard;
        r[q] = r0 + (q < cols ? (int64_t)q * C : 0); /* past the edge: any readable row */
      }
      j->kern.at6(o, in, bias, j->ep, r0 ? r : NULL, n);
    }
  }
}

/* ---- small kernels: one pass per block of tiles ------------------------
 * While U fits in cache (SG_MAX_U: 64-256 channels with F(4x4), up to ~400
 * with F(2x2)) OpenBLAS spends about as long packing V_k as multiplying it,
 * and the separate transform passes go through memory. Instead each worker
 * takes a block of tiles and runs input transform, the per-point products
 * on an own AVX2 kernel (U_k^T in panels of 16 output channels [Cin][16],
 * 6 tiles x 16 channels in 12 registers) and the output transform on
 * buffers that stay in its L2: 2x at 64 and 128 channels, 1.15-1.35x at
 * 256-320 (measured here, 2 threads). */
#ifdef WINO_X86
enum {
  SG_MAX_U = 5 << 19, /* floats of U (all points) the own kernel takes: 10 MiB */
  SG_R = 6,
  SG_NP = 16
};

__attribute__((target("avx2,fma"))) static void sg_tile(float *const *C, const float *const *A,
                                                       const float *panel, int K) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float *a0 = A[0], *a1 = A[1], *a2 = A[2], *a3 = A[3], *a4 = A[4], *a5 = A[5];
  for (int k = 0; k < K; k++) {
    __m256 b0 = _mm256_loadu_ps(panel + SG_NP * k), b1 = _mm256_loadu_ps(panel + SG_NP * k + 8), a;
    a = _mm256_broadcast_ss(a0 + k), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(a1 + k), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(a2 + k), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(a3 + k), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(a4 + k), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(a5 + k), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
  }
  _mm256_storeu_ps(C[0], c00), _mm256_storeu_ps(C[0] + 8, c01);
  _mm256_storeu_ps(C[1], c10), _mm256_storeu_ps(C[1] + 8, c11);
  _mm256_storeu_ps(C[2], c20), _mm256_storeu_ps(C[2] + 8, c21);
  _mm256_storeu_ps(C[3], c30), _mm256_storeu_ps(C[3] + 8, c31);
  _mm256_storeu_ps(C[4], c40), _mm256_storeu_ps(C[4] + 8, c41);
  _mm256_storeu_ps(C[5], c50), _mm256_storeu_ps(C[5] + 8, c51);
}

/* sg_tile on AVX-512 for two neighbouring panels (32 output channels), or
 * one (then six accumulators): the same sums in the same order. */
__attribute__((target("avx512f"))) static void sg_tile512(float *const *C, const float *const *A,
                                                         const float *panel, int K, int two) {
  const float *a0 = A[0], *a1 = A[1], *a2 = A[2], *a3 = A[3], *a4 = A[4], *a5 = A[5];
  if (two) {
    const float *pb = panel + (size_t)K * SG_NP;
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < K; k++) {
      __m512 b0 = _mm512_loadu_ps(panel + SG_NP * k), b1 = _mm512_loadu_ps(pb + SG_NP * k), a;
      a = _mm512_set1_ps(a0[k]), c00 = _mm512_fmadd_ps(a, b0, c00), c01 = _mm512_fmadd_ps(a, b1, c01);
      a = _mm512_set1_ps(a1[k]), c10 = _mm512_fmadd_ps(a, b0, c10), c11 = _mm512_fmadd_ps(a, b1, c11);
      a = _mm512_set1_ps(a2[k]), c20 = _mm512_fmadd_ps(a, b0, c20), c21 = _mm512_fmadd_ps(a, b1, c21);
      a = _mm512_set1_ps(a3[k]), c30 = _mm512_fmadd_ps(a, b0, c30), c31 = _mm512_fmadd_ps(a, b1, c31);
      a = _mm512_set1_ps(a4[k]), c40 = _mm512_fmadd_ps(a, b0, c40), c41 = _mm512_fmadd_ps(a, b1, c41);
      a = _mm512_set1_ps(a5[k]), c50 = _mm512_fmadd_ps(a, b0, c50), c51 = _mm512_fmadd_ps(a, b1, c51);
    }
    _mm512_storeu_ps(C[0], c00), _mm512_storeu_ps(C[0] + SG_NP, c01);
    _mm512_storeu_ps(C[1], c10), _mm512_storeu_ps(C[1] + SG_NP, c11);
    _mm512_storeu_ps(C[2], c20), _mm512_storeu_ps(C[2] + SG_NP, c21);
    _mm512_storeu_ps(C[3], c30), _mm512_storeu_ps(C[3] + SG_NP, c31);
    _mm512_storeu_ps(C[4], c40), _mm512_storeu_ps(C[4] + SG_NP, c41);
    _mm512_storeu_ps(C[5], c50), _mm512_storeu_ps(C[5] + SG_NP, c51);
    return;
  }
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  for (int k = 0; k < K; k++) {
    __m512 b = _mm512_loadu_ps(panel + SG_NP * k);
    c0 = _mm512_fmadd_ps(_mm512_set1_ps(a0[k]), b, c0);
    c1 = _mm512_fmadd_ps(_mm512_set1_ps(a1[k]), b, c1);
    c2 = _mm512_fmadd_ps(_mm512_set1_ps(a2[k]), b, c2);
    c3 = _mm512_fmadd_ps(_mm512_set1_ps(a3[k]), b, c3);
    c4 = _mm512_fmadd_ps(_mm512_set1_ps(a4[k]), b, c4);
    c5 = _mm512_fmadd_ps(_mm512_set1_ps(a5[k]), b, c5);
  }
  _mm512_storeu_ps(C[0], c0), _mm512_storeu_ps(C[1], c1), _mm512_storeu_ps(C[2], c2);
  _mm512_storeu_ps(C[3], c3), _mm512_storeu_ps(C[4], c4), _mm512_storeu_ps(C[5], c5);
}

typedef struct sg_pack_job {
  float *P;       /* U as [npts][Cout / 16][Cin][16] */
  const float *U; /* [npts][Cout][Cin] */
  int Cin, Cout;
} sg_pack_job;

static void sg_pack_task(void *user, int64_t k) {
  sg_pack_job *j = user;
  size_t plane = (size_t)j->Cout * (size_t)j->Cin;
  const float *u = j->U + (size_t)k * plane;
  float *p = j->P + (size_t)k * plane;
  for (int n = 0; n < j->Cout; n++)
    for (int c = 0; c < j->Cin; c++) p[((size_t)(n / SG_NP) * j->Cin + c) * SG_NP + n % SG_NP] = u[(size_t)n * j->Cin + c];
}

/* M rows [0, rows) = V rows x U_k^T (both with row strides Cin / Cout) */
static void sg_rows(float *M, const float *V, const float *P, const float *zeros, int64_t rows, int Cin,
                    int Cout, bool avx512) {
  float discard[2 * SG_NP];
  for (int64_t r = 0; r < rows; r += SG_R) {
    const float *A[SG_R];
    for (int i = 0; i < SG_R; i++) A[i] = r + i < rows ? V + (size_t)(r + i) * (size_t)Cin : zeros;
    for (int p = 0; p < Cout / SG_NP;) {
      int two = avx512 && p + 1 < Cout / SG_NP;
      float *C[SG_R];
      for (int i = 0; i < SG_R; i++) C[i] = r + i < rows ? M + (size_t)(r + i) * (size_t)Cout + p * SG_NP : discard;
      if (avx512) sg_tile512(C, A, P + (size_t)p * (size_t)Cin * SG_NP, Cin, two);
      else sg_tile(C, A, P + (size_t)p * (size_t)Cin * SG_NP, Cin);
      p += two ? 2 : 1;
    }
  }
}

/* Fused: each worker takes blocks of tiles and runs input transform,
 * products and output transform on buffers that stay in its L2. */
typedef struct sgf_job {
  const wino_shape *s;
  const float *x, *zeros, *P, *bias;
  const ops_epilogue *ep;
  float *y, *buf;
  int64_t total, tiles, per_worker; /* tiles in all; per block; buffer floats per worker */
  int npts, m;
  bool avx512; /* the products on sg_tile512 */
  wino_kernels kern;
  atomic_int *cancel;
  atomic_int cancelled;
  atomic_llong next;
} sgf_job;

static void sgf_worker(void *user, int64_t w) {
  sgf_job *j = user;
  const wino_shape *s = j->s;
  float *V = j->buf + w * j->per_worker, *M = V + (size_t)j->npts * (size_t)j->tiles * (size_t)s->Cin;
  for (;;) {
    if (j->cancel && atomic_load(j->cancel)) {
      atomic_store(&j->cancelled, 1);
      return;
    }
    int64_t g0 = atomic_fetch_add(&j->next, 1) * j->tiles;
    if (g0 >= j->total) return;
    int64_t n = j->total - g0 < j->tiles ? j->total - g0 : j->tiles;
    in_job ij = {V, j->x, j->zeros, s, 0, j->tiles, j->kern, g0};
    for (int64_t t = 0; t < n; t++) (j->m == 4 ? in4_task : in_task)(&ij, t);
    for (int k = 0; k < j->npts; k++)
      sg_rows(M + (size_t)k * (size_t)j->tiles * (size_t)s->Cout, V + (size_t)k * (size_t)j->tiles * (size_t)s->Cin,
              j->P + (size_t)k * (size_t)s->Cout * (size_t)s->Cin, j->zeros, n, s->Cin, s->Cout, j->avx512);
    out_job oj = {j->y, M, j->bias, s, 0, j->tiles, j->kern, g0, j->ep};
    for (int64_t t = 0; t < n; t++) (j->m == 4 ? out4_task : out_task)(&oj, t);
  }
}

enum { SGF_BUF_FLOATS = 96 * 1024 }; /* per worker: 384 KiB of V and M */

static ldm_status sg_fused(ldm_ctx *ctx, float *y, const float *x, const wino_shape *s, const float *P,
                           const float *bias, const ops_epilogue *ep, const float *zeros, int npts, int m,
                           wino_kernels kern) {
  int workers = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  int64_t tiles = SGF_BUF_FLOATS / ((int64_t)npts * (s->Cin + s->Cout));
  tiles -= tiles % SG_R;
  if (tiles < SG_R) tiles = SG_R;
  int64_t per = (int64_t)npts * tiles * (s->Cin + s->Cout);
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  sgf_job *j = ldm_arena_alloc(ctx->scratch, sizeof *j);
  float *buf = ldm_arena_floats(ctx->scratch, (size_t)workers * (size_t)per);
  if (!j || !buf) {
    ldm_arena_reset(ctx->scratch, mark);
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch for Winograd tile blocks");
  }
  j->s = s, j->x = x, j->zeros = zeros, j->P = P, j->bias = bias, j->ep = ep, j->y = y, j->buf = buf;
  j->total = (int64_t)s->B * s->th * s->tw, j->tiles = tiles, j->per_worker = per;
  j->npts = npts, j->m = m, j->kern = kern, j->cancel = ctx->cancel;
  j->avx512 = ldm_cpu_has_avx512();
  atomic_init(&j->cancelled, 0);
  atomic_init(&j->next, 0);
  ldm_pool_for(workers > 1 ? ctx->pool : NULL, workers, sgf_worker, j);
  bool cancelled = atomic_load(&j->cancelled);
  ldm_arena_reset(ctx->scratch, mark);
  return cancelled ? ldm_fail(ctx->err, LDM_ERR_CANCELLED, "conv2d: cancelled") : LDM_OK;
}
#endif

void ops_winograd_weights(ldm_ctx *ctx, float *U, const ldm_tensor *w, int Cin, int Cout, int m) {
  wt_job wj = {U, w, Cin, Cout, m};
  ldm_pool_for(ctx->pool, Cout, wt_task, &wj);
}

bool ops_winograd_own_kernel(int Cin, int Cout, int m) {
#ifdef WINO_X86
  return (size_t)(m + 2) * (size_t)(m + 2) * (size_t)Cin * (size_t)Cout <= SG_MAX_U && Cout % SG_NP == 0 &&
         pick_kernels().bt6 == bt6_avx2;
#else
  (void)Cin, (void)Cout, (void)m;
  return false;
#endif
}

/* With a weight cache and few tiles (a 16x16 or 32x32 latent at batch 1:
 * 64 tiles) the per-point products [tiles, Cin] x U_k^T went to OpenBLAS,
 * which packed U_k at every call (about 90 GFLOP/s at 64 rows against 130
 * at 2048); as panels kept in the cache they run on ops_gemm_panels. */
size_t ops_winograd_panels_floats(int Cin, int Cout, int m) {
  return (size_t)(m + 2) * (size_t)(m + 2) * ops_panels_floats(LDM_DTYPE_F32, Cout, Cin);
}

bool ops_winograd_panels(ldm_ctx *ctx, float *P, const ldm_tensor *w, int Cin, int Cout, int m) {
  int npts = (m + 2) * (m + 2);
  size_t plane = (size_t)Cout * (size_t)Cin, pf = ops_panels_floats(LDM_DTYPE_F32, Cout, Cin);
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  float *U = ldm_arena_floats(ctx->scratch, (size_t)npts * plane);
  if (!U) {
    ldm_fail(ctx->err, LDM_ERR_NOMEM, "conv2d: no scratch to transform weight '%s' (%zu floats)",
             w->name ? w->name : "?", (size_t)npts * plane);
    return false;
  }
  ops_winograd_weights(ctx, U, w, Cin, Cout, m);
  for (int k = 0; k < npts; k++)
    ops_panels_build(ctx, P + (size_t)k * pf, LDM_DTYPE_F32, U + (size_t)k * plane, Cout, Cin);
  ldm_arena_reset(ctx->scratch, mark);
  return true;
}

ldm_status ops_conv3x3_winograd(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin, int Cout,
                                const float *U, bool panels, const float *bias, const ops_epilogue *ep,
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
#ifdef WINO_X86
  if (!panels && (size_t)npts * (size_t)Cin * (size_t)Cout <= SG_MAX_U && Cout % SG_NP == 0 && kern.bt6 == bt6_avx2) {
    float *P = ldm_arena_floats(ctx->scratch, (size_t)npts * (size_t)Cout * (size_t)Cin);
    if (P) { /* U in panels for the own kernel */
      sg_pack_job pj = {P, U, Cin, Cout};
      ldm_pool_for(ctx->pool, npts, sg_pack_task, &pj);
      st = sg_fused(ctx, y, x, &s, P, bias, ep, zeros, npts, m, kern);
      goto done;
    }
  }
#endif
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
    in_job ij = {V, x, zeros, &s, r0, T, kern, 0};
    ldm_pool_for(ctx->pool, T, m == 4 ? in4_task : in_task, &ij);
    // M_k = V_k [T, Cin] * U_k^T [Cin, Cout] -> [npts, T, Cout]
    for (int k = 0; k < npts; k++) {
      if (panels) {
        size_t pf = ops_panels_floats(LDM_DTYPE_F32, Cout, Cin);
        ops_gemm_panels(ctx, T, Cout, Cin, V + (size_t)k * T * Cin, Cin, U + (size_t)k * pf, LDM_DTYPE_F32,
                        M + (size_t)k * T * Cout, Cout);
        continue;
      }
      st = ldm_gemm(ctx, false, true, T, Cout, Cin, 1.0f, V + (size_t)k * T * Cin,
                    Cin, U + (size_t)k * Cout * Cin, Cin, 0.0f,
                    M + (size_t)k * T * Cout, Cout);
      if (st != LDM_OK) goto done;
    }
    // output tiles (+ bias) -> y
    out_job oj = {y, M, bias, &s, r0, T, kern, 0, ep};
    ldm_pool_for(ctx->pool, T, m == 4 ? out4_task : out_task, &oj);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}
