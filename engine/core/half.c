/* Bulk f16/bf16 conversion with run-time dispatch: an F16C/AVX2 path when
 * the CPU reports both, the portable scalar path otherwise. */
#include "core/half.h"
#include "core/cpu.h"

#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LDM_X86 1
#endif

#ifdef LDM_X86
__attribute__((target("avx2,f16c")))
static void f16_to_f32_f16c(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; i++) dst[i] = ldm_f16_to_f32(src[i]);
}

__attribute__((target("avx2,f16c")))
static void f32_to_f16_f16c(uint16_t *dst, const float *src, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128((__m128i *)(dst + i), h);
  }
  for (; i < n; i++) dst[i] = ldm_f32_to_f16(src[i]);
}

__attribute__((target("avx2")))
static void bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
    __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
  }
  for (; i < n; i++) dst[i] = ldm_bf16_to_f32(src[i]);
}

static int have_f16c(void) {
  static atomic_int cached = -1;
  int v = atomic_load(&cached);
  if (v < 0) {
    v = ldm_cpu_has_avx2() && ldm_cpu_has_f16c() ? 1 : 0;
    atomic_store(&cached, v);
  }
  return v;
}
#endif

void ldm_convert_f16_to_f32(float *dst, const uint16_t *src, size_t n) {
#ifdef LDM_X86
  if (have_f16c()) {
    f16_to_f32_f16c(dst, src, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) dst[i] = ldm_f16_to_f32(src[i]);
}

void ldm_convert_f32_to_f16(uint16_t *dst, const float *src, size_t n) {
#ifdef LDM_X86
  if (have_f16c()) {
    f32_to_f16_f16c(dst, src, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) dst[i] = ldm_f32_to_f16(src[i]);
}

void ldm_convert_bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
#ifdef LDM_X86
  if (have_f16c()) {
    bf16_to_f32_avx2(dst, src, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) dst[i] = ldm_bf16_to_f32(src[i]);
}

void ldm_convert_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = ldm_f32_to_bf16(src[i]);
}
