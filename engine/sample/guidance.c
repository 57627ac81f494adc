/* Classifier-free guidance as StableDiffusionPipeline combines the two
 * halves of the UNet batch, guidance rescale as diffusers' rescale_noise_cfg
 * (Lin et al. 2023, section 3.4), and latent blending for inpainting with a
 * 4-channel UNet as StableDiffusionInpaintPipeline does after each step. */
#include <math.h>

#include "sample/sampler_impl.h"

/* The reference rounds every multiply and add separately (torch's elementwise
 * kernels); contraction into FMA would move ill-conditioned cases (sigma 4096
 * with zero-terminal SNR) past the golden tolerance, so it is off here
 * whatever the build's -std or -march. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

bool ldm_cfg_needs_uncond(float scale) { return scale != 1.0f; }

/* unbiased standard deviation (torch.std default) */
static double std_unbiased(const float *v, int64_t n) {
  if (n < 2) return 0.0;
  double mean = 0;
  for (int64_t i = 0; i < n; i++) mean += v[i];
  mean /= (double)n;
  double ss = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = v[i] - mean;
    ss += d * d;
  }
  return sqrt(ss / (double)(n - 1));
}

void ldm_cfg_combine(float *out, const float *uncond, const float *cond,
                     int64_t n, int batch, float scale, float rescale) {
  for (int64_t i = 0; i < n; i++) {
    float u = uncond[i], c = cond[i];
    out[i] = u + scale * (c - u);
  }
  if (!(rescale > 0) || batch < 1 || n % batch != 0) return;
  int64_t per = n / batch;
  for (int b = 0; b < batch; b++) {
    const float *ct = cond + (int64_t)b * per;
    float *o = out + (int64_t)b * per;
    double sd_text = std_unbiased(ct, per), sd_cfg = std_unbiased(o, per);
    if (!(sd_cfg > 0)) continue;
    float ratio = (float)(sd_text / sd_cfg);
    for (int64_t i = 0; i < per; i++) {
      float resc = o[i] * ratio;
      o[i] = rescale * resc + (1.0f - rescale) * o[i];
    }
  }
}

void ldm_inpaint_blend(const ldm_sampler *s, int i, float *x, const float *x0,
                       const float *noise, const float *mask) {
  double a = 1.0, b = 0.0;
  if (i + 1 < s->nt) ldm_sampler_noise_coeffs(s, i + 1, &a, &b);
  float af = (float)a, bf = (float)b;
  for (int64_t k = 0; k < s->n; k++) {
    float proper = af * x0[k] + noise[k] * bf;
    x[k] = (1.0f - mask[k]) * proper + mask[k] * x[k];
  }
}
