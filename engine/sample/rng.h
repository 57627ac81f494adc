/* Seeded Gaussian noise that means the same as in other tools:
 *  - torch.randn on the CPU (MT19937 + torch's Box-Muller; diffusers on CPU,
 *    ComfyUI), bit-exact for any shape: the values depend only on numel;
 *  - torch.randn(device='cuda') as AUTOMATIC1111 draws it by default
 *    (Philox 4x32-10 + curand's Box-Muller, one draw per element). */
#ifndef LDM_SAMPLE_RNG_H
#define LDM_SAMPLE_RNG_H

#include <stdbool.h>
#include <stdint.h>

#include "ldm.h"

/* at::CPUGeneratorImpl: the MT19937 engine plus the cached second value of
 * the double Box-Muller pair that torch keeps for small (numel < 16) draws. */
typedef struct ldm_torch_rng {
  uint32_t mt[624];
  int next;                 /* index of the next word in mt; 624 = refill */
  bool has_cached_normal;
  double cached_normal;
} ldm_torch_rng;

/* torch.manual_seed(seed): only the low 32 bits seed the engine. */
void ldm_torch_rng_seed(ldm_torch_rng *r, uint64_t seed);
uint32_t ldm_torch_rng_u32(ldm_torch_rng *r);
/* torch.randn(n) (float32, any shape with numel n) from the generator's
 * current state, advancing it exactly as torch does. */
void ldm_torch_rng_randn(ldm_torch_rng *r, float *out, int64_t n);

/* The generator the samplers and the pipeline draw from. */
typedef struct ldm_rng_state {
  ldm_rng kind;             /* LDM_RNG_CPU or LDM_RNG_CUDA */
  ldm_torch_rng torch;      /* kind == LDM_RNG_CPU */
  uint64_t philox_seed;     /* kind == LDM_RNG_CUDA */
  uint64_t philox_offset;   /* draws made so far (A1111 advances it by 1) */
} ldm_rng_state;

void ldm_rng_seed(ldm_rng_state *r, ldm_rng kind, uint64_t seed);
/* n standard normal floats, the next draw of this generator: torch.randn
 * with numel n on the CPU generator, or the next Philox draw (CUDA). */
void ldm_rng_randn(ldm_rng_state *r, float *out, int64_t n);

/* Philox 4x32-10 normal draw as torch.randn(n, device='cuda') after
 * torch.manual_seed(seed), with `offset` the generator's Philox offset in
 * 4-word units (0 for the first draw after seeding). */
void ldm_philox_randn(uint64_t seed, uint64_t offset, float *out, int64_t n);

#endif
