/* Sinusoidal timestep embedding, step for step as diffusers'
 * models/embeddings.py get_timestep_embedding (float32 arithmetic in the
 * same order, so the arguments of sin/cos round the same way). */
#include "ops/ops.h"

#include <math.h>

void ldm_timestep_embedding(float *y, const float *t, int B, int dim,
                            bool flip_sin_to_cos, float downscale_freq_shift,
                            float scale, float max_period) {
  int half = dim / 2;
  /* exponent = -log(max_period) * arange(half) / (half - shift), float32 */
  float neg_log = (float)-log((double)max_period);
  float denom = (float)half - downscale_freq_shift;
  for (int b = 0; b < B; b++) {
    float *row = y + (int64_t)b * dim;
    for (int i = 0; i < half; i++) {
      float exponent = ((float)i * neg_log) / denom;
      /* correctly rounded; torch.exp (MKL VML / SLEEF) is within an ulp,
       * which moves sin/cos at t ~ 1000 by up to ~6e-5 */
      float freq = (float)exp((double)exponent);
      float arg = scale * (t[b] * freq);
      float s = (float)sin((double)arg), c = (float)cos((double)arg);
      // cat([sin, cos]) or, with flip_sin_to_cos, cat([cos, sin]) -> [dim]
      row[flip_sin_to_cos ? half + i : i] = s;
      row[flip_sin_to_cos ? i : half + i] = c;
    }
    if (dim % 2) row[dim - 1] = 0.0f; /* F.pad(emb, (0, 1)) */
  }
}
