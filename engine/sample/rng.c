/* torch.randn on the CPU, bit-exact: at::mt19937 (MT19937 seeded with the low
 * 32 bits of the seed), uniforms from 24-bit (float) or 53-bit (double) draws,
 * and the two Box-Muller paths of ATen's normal kernel: 16-element blocks
 * with the cephes-style log/sincos of avx_mathfun.h (x86 builds, numel >= 16)
 * and the scalar double path with a cached second value (numel < 16). */
#include "sample/rng.h"

#include <math.h>
#include <string.h>

/* Contraction would change roundings the reference does not have; the
 * fused steps are spelled out with fmaf below. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

enum { MT_N = 624, MT_M = 397 };

void ldm_torch_rng_seed(ldm_torch_rng *r, uint64_t seed) {
  r->mt[0] = (uint32_t)(seed & 0xffffffffu);
  for (uint32_t j = 1; j < MT_N; j++)
    r->mt[j] = 1812433253u * (r->mt[j - 1] ^ (r->mt[j - 1] >> 30)) + j;
  r->next = MT_N;
  r->has_cached_normal = false;
  r->cached_normal = 0.0;
}

static void mt_refill(uint32_t *mt) {
  for (int i = 0; i < MT_N; i++) {
    uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7fffffffu);
    mt[i] = mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
  }
}

uint32_t ldm_torch_rng_u32(ldm_torch_rng *r) {
  if (r->next >= MT_N) {
    mt_refill(r->mt);
    r->next = 0;
  }
  uint32_t y = r->mt[r->next++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

/* uniform_real_distribution<float>(0, 1): 24 random bits. */
static float uniform_f32(ldm_torch_rng *r) {
  return (float)(ldm_torch_rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* uniform_real_distribution<double>(0, 1): 53 bits of random64(), whose
 * first 32-bit draw is the high word. */
static double uniform_f64(ldm_torch_rng *r) {
  uint64_t hi = ldm_torch_rng_u32(r);
  uint64_t lo = ldm_torch_rng_u32(r);
  uint64_t v = (hi << 32) | lo;
  return (double)(v & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* avx_mathfun.h log256_ps for one lane, operation by operation (x > 0),
 * with the multiply-adds fused exactly where torch's release build (gcc,
 * -mfma, contraction on) fuses them: any other rounding differs by an ulp. */
static float cephes_logf(float x) {
  const float one = 1.0f;
  if (x < bits_f32(0x00800000u)) x = bits_f32(0x00800000u);
  int32_t imm0 = (int32_t)(f32_bits(x) >> 23);
  x = bits_f32((f32_bits(x) & ~0x7f800000u) | f32_bits(0.5f));
  imm0 -= 0x7f;
  float e = (float)imm0;
  e = e + one;
  bool lt = x < 0.707106781186547524f;
  float tmp = lt ? x : 0.0f;
  x = x - one;
  e = e - (lt ? one : 0.0f);
  x = x + tmp;
  float z = x * x;
  float y = 7.0376836292E-2f;
  y = fmaf(y, x, -1.1514610310E-1f);
  y = fmaf(y, x, 1.1676998740E-1f);
  y = fmaf(y, x, -1.2420140846E-1f);
  y = fmaf(y, x, 1.4249322787E-1f);
  y = fmaf(y, x, -1.6668057665E-1f);
  y = fmaf(y, x, 2.0000714765E-1f);
  y = fmaf(y, x, -2.4999993993E-1f);
  y = fmaf(y, x, 3.3333331174E-1f);
  y = y * x;
  tmp = e * -2.12194440e-4f;
  y = fmaf(y, z, tmp);
  y = fmaf(-z, 0.5f, y);
  x = x + y;
  x = fmaf(e, 0.693359375f, x);
  return x;
}

/* avx_mathfun.h sincos256_ps for one lane (x >= 0 here: 2*pi*u). */
static void cephes_sincosf(float xin, float *s, float *c) {
  uint32_t sign_sin = f32_bits(xin) & 0x80000000u;
  float x = bits_f32(f32_bits(xin) & 0x7fffffffu);
  float y = x * 1.27323954473516f;
  int32_t j = (int32_t)y;
  j = (j + 1) & ~1;
  y = (float)j;
  int32_t j4 = j;
  uint32_t swap_sin = ((uint32_t)(j & 4)) << 29;
  bool poly_mask = (j & 2) == 0;
  x = fmaf(y, -0.78515625f, x);
  x = fmaf(y, -2.4187564849853515625e-4f, x);
  x = fmaf(y, -3.77489497744594108e-8f, x);
  j4 -= 2;
  uint32_t sign_cos = ((uint32_t)(~j4 & 4)) << 29;
  sign_sin ^= swap_sin;
  float z = x * x;
  float p = 2.443315711809948E-005f;
  p = fmaf(p, z, -1.388731625493765E-003f);
  p = fmaf(p, z, 4.166664568298827E-002f);
  float tmp = z * 0.5f;
  p = p * z;
  p = fmaf(p, z, -tmp);
  p = p + 1.0f;
  float q = -1.9515295891E-4f;
  q = fmaf(q, z, 8.3321608736E-3f);
  q = fmaf(q, z, -1.6666654611E-1f);
  float qz = q * z;
  q = fmaf(x, qz, x);
  /* sin takes q where poly_mask, else p; cos the other one; the reference
   * adds a zero lane to each, which only turns -0 into +0. */
  float ysin2 = poly_mask ? q : 0.0f;
  float ysin1 = poly_mask ? 0.0f : p;
  q = q - ysin2;
  p = p - ysin1;
  float vs = ysin1 + ysin2;
  float vc = p + q;
  *s = bits_f32(f32_bits(vs) ^ sign_sin);
  *c = bits_f32(f32_bits(vc) ^ sign_cos);
}

/* normal_fill_16_AVX2 with mean 0, std 1 (the fmadd adds +0). */
static void normal_fill_16(float *d) {
  const float two_pi = (float)(2.0 * 3.14159265358979323846);
  for (int j = 0; j < 8; j++) {
    float u1 = 1.0f - d[j];
    float u2 = d[j + 8];
    float lg = cephes_logf(u1);
    float radius = sqrtf(-2.0f * lg);
    float theta = two_pi * u2;
    float s, c;
    cephes_sincosf(theta, &s, &c);
    float n1 = radius * c;
    float n2 = radius * s;
    d[j] = n1 + 0.0f;
    d[j + 8] = n2 + 0.0f;
  }
}

/* at::normal_distribution<double>(0, 1) with the generator's cache. */
static double normal_f64(ldm_torch_rng *r) {
  if (r->has_cached_normal) {
    r->has_cached_normal = false;
    return r->cached_normal;
  }
  double u1 = uniform_f64(r);
  double u2 = uniform_f64(r);
  double rad = sqrt(-2.0 * log1p(-u2));
  double theta = 2.0 * 3.14159265358979323846 * u1;
  r->cached_normal = rad * sin(theta);
  r->has_cached_normal = true;
  return rad * cos(theta);
}

void ldm_torch_rng_randn(ldm_torch_rng *r, float *out, int64_t n) {
  if (n <= 0) return;
  if (n < 16) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)normal_f64(r);
    return;
  }
  for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(r);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
  if (n % 16 != 0) {
    /* torch redraws the last 16 uniforms and transforms them again */
    float *tail = out + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
    normal_fill_16(tail);
  }
}

void ldm_rng_seed(ldm_rng_state *r, ldm_rng kind, uint64_t seed) {
  memset(r, 0, sizeof *r);
  r->kind = kind;
  if (kind == LDM_RNG_CUDA) {
    r->philox_seed = seed;
    r->philox_offset = 0;
  } else {
    r->kind = LDM_RNG_CPU;
    ldm_torch_rng_seed(&r->torch, seed);
  }
}

void ldm_rng_randn(ldm_rng_state *r, float *out, int64_t n) {
  if (r->kind == LDM_RNG_CUDA) {
    ldm_philox_randn(r->philox_seed, r->philox_offset, out, n);
    r->philox_offset += 1;
  } else {
    ldm_torch_rng_randn(&r->torch, out, n);
  }
}
