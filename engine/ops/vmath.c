/* Row kernels for the transcendental ops (exp for softmax, SiLU, GELU exact
 * and tanh, quick GELU, GEGLU) with an AVX2+FMA path chosen at run time and
 * the plain libm loop otherwise. The vector exp is Cephes' expf (range
 * reduction by ln 2, degree-6 polynomial, ~1 ulp); erf is Abramowitz &
 * Stegun 7.1.26 (|error| <= 1.5e-7), ample for the 1e-4 op tolerance. */
#include "ops/ops_util.h"
#include "core/cpu.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OPS_X86 1
#endif

/* ---- scalar references ----------------------------------------------- */

static inline float gelu_exact_s(float v) {
  return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

static inline float gelu_tanh_s(float v) {
  const float k = 0.79788456080286536f; /* sqrt(2/pi) */
  return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}

static float exp_sum_scalar(float *y, const float *x, int64_t n, float m) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    float e = expf(x[i] - m);
    y[i] = e;
    s += e;
  }
  return (float)s;
}

static void act_scalar(ops_act kind, float *y, const float *x, int64_t n) {
  switch (kind) {
    case OPS_ACT_SILU:
      for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
      break;
    case OPS_ACT_GELU:
      for (int64_t i = 0; i < n; i++) y[i] = gelu_exact_s(x[i]);
      break;
    case OPS_ACT_GELU_TANH:
      for (int64_t i = 0; i < n; i++) y[i] = gelu_tanh_s(x[i]);
      break;
    case OPS_ACT_QUICK_GELU:
      for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
      break;
  }
}

static void geglu_scalar(float *y, const float *h, const float *g, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = h[i] * gelu_exact_s(g[i]);
}

#ifdef OPS_X86
#define AVX2 __attribute__((target("avx2,fma")))

/* exp on one vector (P: the intrinsics' prefix _mm256_ / _mm512_): clamp
 * (exp(-87.3) is the smallest normal result built directly), n = round(x /
 * ln 2), r = x - n ln 2 in two parts, the degree-6 polynomial, times 2^n. */
#define DEF_EXP(name, attr, V, VI, P, ROUND, CAST)                                                    \
  attr static inline V name(V x) {                                                                  \
    x = P##min_ps(P##max_ps(x, P##set1_ps(-87.3f)), P##set1_ps(88.3f));                              \
    V n = ROUND(P##mul_ps(x, P##set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); \
    V r = P##fmadd_ps(n, P##set1_ps(-0.693359375f), x);                                             \
    r = P##fmadd_ps(n, P##set1_ps(2.12194440e-4f), r);                                              \
    V p = P##set1_ps(1.9875691500e-4f);                                                             \
    p = P##fmadd_ps(p, r, P##set1_ps(1.3981999507e-3f));                                            \
    p = P##fmadd_ps(p, r, P##set1_ps(8.3334519073e-3f));                                            \
    p = P##fmadd_ps(p, r, P##set1_ps(4.1665795894e-2f));                                            \
    p = P##fmadd_ps(p, r, P##set1_ps(1.6666665459e-1f));                                            \
    p = P##fmadd_ps(p, r, P##set1_ps(5.0000001201e-1f));                                            \
    V r2 = P##mul_ps(r, r);                                                                         \
    p = P##fmadd_ps(p, r2, P##add_ps(r, P##set1_ps(1.0f)));                                         \
    VI e = P##slli_epi32(P##add_epi32(P##cvtps_epi32(n), P##set1_epi32(127)), 23);                  \
    return P##mul_ps(p, CAST(e));                                                                   \
  }

DEF_EXP(exp8, AVX2, __m256, __m256i, _mm256_, _mm256_round_ps, _mm256_castsi256_ps)

/* x * sigmoid(a * x) */
AVX2 static inline __m256 xsigmoid8(__m256 x, float a) {
  __m256 e = exp8(_mm256_mul_ps(x, _mm256_set1_ps(-a)));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* erf(x), A&S 7.1.26 on |x| with the sign restored */
AVX2 static inline __m256 erf8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 s = _mm256_and_ps(x, sign), a = _mm256_andnot_ps(sign, x);
  __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f),
                           _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  __m256 e = exp8(_mm256_mul_ps(_mm256_mul_ps(a, a), _mm256_set1_ps(-1.0f)));
  __m256 r = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));
  return _mm256_or_ps(r, s);
}

AVX2 static inline __m256 gelu8(__m256 x) {
  __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x),
                       _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static inline __m256 gelu_tanh8(__m256 x) {
  /* 0.5 x (1 + tanh(u)) = x * sigmoid(2u) */
  __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  __m256 u = _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x);
  u = _mm256_mul_ps(u, _mm256_set1_ps(-2.0f * 0.79788456080286536f));
  __m256 e = exp8(u);
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static float exp_sum_avx2(float *y, const float *x, int64_t n, float m) {
  __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(y + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, acc);
  double s = 0;
  for (int l = 0; l < 8; l++) s += lanes[l];
  for (; i < n; i++) {
    float e = expf(x[i] - m);
    y[i] = e;
    s += e;
  }
  return (float)s;
}

AVX2 static void act_avx2(ops_act kind, float *y, const float *x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i), r;
    switch (kind) {
      case OPS_ACT_SILU: r = xsigmoid8(v, 1.0f); break;
      case OPS_ACT_GELU: r = gelu8(v); break;
      case OPS_ACT_GELU_TANH: r = gelu_tanh8(v); break;
      default: r = xsigmoid8(v, 1.702f); break;
    }
    _mm256_storeu_ps(y + i, r);
  }
  act_scalar(kind, y + i, x + i, n - i);
}

AVX2 static void geglu_avx2(float *y, const float *h, const float *g, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(h + i),
                                          gelu8(_mm256_loadu_ps(g + i))));
  geglu_scalar(y + i, h + i, g + i, n - i);
}

AVX2 static float max_avx2(const float *x, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  float lanes[8], r = -INFINITY;
  _mm256_storeu_ps(lanes, m);
  for (int l = 0; l < 8; l++) r = lanes[l] > r ? lanes[l] : r;
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}

/* sum and sum of squared deviations from m, in double lanes */
AVX2 static void moments_avx2(const float *x, int64_t n, double m,
                              double *sum, double *ssd) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
  __m256d vm = _mm256_set1_pd(m);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_add_pd(s0, lo);
    s1 = _mm256_add_pd(s1, hi);
    lo = _mm256_sub_pd(lo, vm);
    hi = _mm256_sub_pd(hi, vm);
    q0 = _mm256_fmadd_pd(lo, lo, q0);
    q1 = _mm256_fmadd_pd(hi, hi, q1);
  }
  double a[4], b[4];
  _mm256_storeu_pd(a, _mm256_add_pd(s0, s1));
  _mm256_storeu_pd(b, _mm256_add_pd(q0, q1));
  double s = a[0] + a[1] + a[2] + a[3], q = b[0] + b[1] + b[2] + b[3];
  for (; i < n; i++) {
    s += x[i];
    q += (x[i] - m) * (x[i] - m);
  }
  *sum = s;
  *ssd = q;
}

/* AVX-512 exp (DEF_EXP: the same steps as exp8, lane for lane) and the two
 * softmax row kernels. */
#define AVX512 __attribute__((target("avx512f")))

DEF_EXP(exp16, AVX512, __m512, __m512i, _mm512_, _mm512_roundscale_ps, _mm512_castsi512_ps)

AVX512 static float exp_sum_avx512(float *y, const float *x, int64_t n, float m) {
  __m512 vm = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    _mm512_storeu_ps(y + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) { /* the last 1..15 under a mask */
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
    __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
    _mm512_mask_storeu_ps(y + i, k, e);
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, acc);
  double s = 0;
  for (int l = 0; l < 16; l++) s += lanes[l];
  return (float)s;
}

AVX512 static float max_avx512(const float *x, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) { /* the last 1..15 under a mask */
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
    m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, x + i));
  }
  return _mm512_reduce_max_ps(m);
}

static int have_avx2_fma(void) {
  static int cached = -1; /* benign race: every thread computes the same */
  if (cached < 0) {
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return cached;
}
#endif

void ops_row_moments(const float *x, int64_t n, double m, double *sum,
                     double *ssd) {
#ifdef OPS_X86
  if (have_avx2_fma()) {
    moments_avx2(x, n, m, sum, ssd);
    return;
  }
#endif
  double s = 0, q = 0;
  for (int64_t i = 0; i < n; i++) {
    s += x[i];
    q += (x[i] - m) * (x[i] - m);
  }
  *sum = s;
  *ssd = q;
}

float ops_row_max(const float *x, int64_t n) {
#ifdef OPS_X86
  if (ldm_cpu_has_avx512()) return max_avx512(x, n);
  if (have_avx2_fma()) return max_avx2(x, n);
#endif
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

float ops_exp_sum(float *y, const float *x, int64_t n, float m) {
#ifdef OPS_X86
  if (ldm_cpu_has_avx512()) return exp_sum_avx512(y, x, n, m);
  if (have_avx2_fma()) return exp_sum_avx2(y, x, n, m);
#endif
  return exp_sum_scalar(y, x, n, m);
}

void ops_act_row(ops_act kind, float *y, const float *x, int64_t n) {
#ifdef OPS_X86
  if (have_avx2_fma()) {
    act_avx2(kind, y, x, n);
    return;
  }
#endif
  act_scalar(kind, y, x, n);
}

void ops_act_row_naive(ops_act kind, float *y, const float *x, int64_t n) {
  act_scalar(kind, y, x, n);
}

void ops_geglu_row(float *y, const float *h, const float *g, int64_t n) {
#ifdef OPS_X86
  if (have_avx2_fma()) {
    geglu_avx2(y, h, g, n);
    return;
  }
#endif
  geglu_scalar(y, h, g, n);
}

void ops_softmax_row(float *y, const float *x, int64_t n) {
  float m = ops_row_max(x, n);
  if (m == -INFINITY) { /* fully masked row: keep zeros (torch gives NaN) */
    for (int64_t i = 0; i < n; i++) y[i] = 0.0f;
    return;
  }
  float inv = 1.0f / ops_exp_sum(y, x, n, m);
  for (int64_t i = 0; i < n; i++) y[i] *= inv;
}
