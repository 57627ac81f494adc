/* torch.randn(device='cuda') as AUTOMATIC1111 reproduces it on the CPU
 * ("NV" seeds): element i of draw number `offset` is Philox 4x32-10 of the
 * counter (offset, 0, i, 0) under the key (seed low word, seed high word);
 * the first two output words go through Box-Muller (the sine branch), with
 * uniforms (w + 1/2) * 2^-32 computed in double as that implementation does. */
#include <math.h>

#include "sample/rng.h"

static void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)c[0] * 0xD2511F53u;
    uint64_t p1 = (uint64_t)c[2] * 0xCD9E8D57u;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

void ldm_philox_randn(uint64_t seed, uint64_t offset, float *out, int64_t n) {
  /* the float32 constants of the reference, widened to double */
  const float inv32 = 2.3283064e-10f;
  const float inv32_2pi = (float)(2.3283064e-10 * 6.2831855);
  const double half_inv32 = (double)(inv32 / 2.0f);
  const double half_inv32_2pi = (double)(inv32_2pi / 2.0f);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int64_t i = 0; i < n; i++) {
    uint32_t c[4] = {(uint32_t)offset, 0, (uint32_t)i, 0};
    philox4x32_10(c, k0, k1);
    double u = (double)c[0] * (double)inv32 + half_inv32;
    double v = (double)c[1] * (double)inv32_2pi + half_inv32_2pi;
    double s = sqrt(-2.0 * log(u));
    out[i] = (float)(s * sin(v));
  }
}
