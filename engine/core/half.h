/* f16 / bf16 <-> f32 conversion. Bulk converters pick an F16C/AVX2 path at
 * run time when the CPU has it and a portable one otherwise, so the library
 * never executes an instruction the CPU lacks. */
#ifndef LDM_CORE_HALF_H
#define LDM_CORE_HALF_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

static inline float ldm_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do { man <<= 1; e++; } while (!(man & 0x400u));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Round to nearest even, as torch's .half(). */
static inline uint16_t ldm_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf / nan */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow */
  if (ax < 0x38800000u) { /* subnormal or zero in f16 */
    if (ax < 0x33000000u) return (uint16_t)sign;
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u;
  return (uint16_t)(sign | (r >> 13));
}

static inline float ldm_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t ldm_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

/* bf16 pair words, as VDPBF16PS reads them: lo in bits 0-15, hi in 16-31;
 * and the two halves back as f32. */
static inline uint32_t ldm_bf16_pair(float lo, float hi) {
  return (uint32_t)ldm_f32_to_bf16(lo) | (uint32_t)ldm_f32_to_bf16(hi) << 16;
}

static inline float ldm_bf16_pair_lo(uint32_t w) { return ldm_bf16_to_f32((uint16_t)(w & 0xffffu)); }
static inline float ldm_bf16_pair_hi(uint32_t w) { return ldm_bf16_to_f32((uint16_t)(w >> 16)); }

/* Bulk conversions (runtime-dispatched). */
void ldm_convert_f16_to_f32(float *dst, const uint16_t *src, size_t n);
void ldm_convert_bf16_to_f32(float *dst, const uint16_t *src, size_t n);
void ldm_convert_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
void ldm_convert_f32_to_f16(uint16_t *dst, const float *src, size_t n);

#endif
