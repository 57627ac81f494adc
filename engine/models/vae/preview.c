/* Zero-weight latent preview: each latent pixel's 4 channels times a fixed
 * 4x3 matrix give an RGB value in about [-1, 1], mapped to [0, 255]. The
 * factors are the least-squares fits of the SD1.x and SDXL VAEs that
 * ComfyUI's latent previewer (comfy/latent_formats.py) ships, and its
 * factors for the x4 upscaler's VAE; SD2.x shares the SD1 VAE. Input is
 * the scaled latent the sampler works on. */
#include "models/vae/vae.h"
#include "core/status.h"

static const float sd1_factors[4][3] = {
    /*  R        G        B   */
    {0.3512f, 0.2297f, 0.3227f},
    {0.3250f, 0.4974f, 0.2350f},
    {-0.2829f, 0.1762f, 0.2721f},
    {-0.2120f, -0.2616f, -0.7177f},
};

static const float sdxl_factors[4][3] = {
    {0.3920f, 0.4054f, 0.4549f},
    {-0.2634f, -0.0196f, 0.0653f},
    {0.0568f, 0.1687f, -0.0755f},
    {-0.3112f, -0.2359f, -0.2076f},
};

static const float x4_factors[4][3] = {
    {-0.2340f, -0.3863f, -0.3257f},
    {0.0994f, 0.0885f, -0.0908f},
    {-0.2833f, -0.2349f, -0.3741f},
    {0.2523f, -0.0055f, -0.1651f},
};

ldm_status ldm_latent_preview(ldm_family f, uint8_t *rgb, const float *latent, int h, int w,
                              ldm_error *err) {
  const float(*m)[3];
  switch (f) {
    case LDM_FAMILY_SD1:
    case LDM_FAMILY_SD1_INPAINT:
    case LDM_FAMILY_SD2:
    case LDM_FAMILY_SD2_INPAINT: m = sd1_factors; break;
    case LDM_FAMILY_SDXL:
    case LDM_FAMILY_SDXL_INPAINT: m = sdxl_factors; break;
    case LDM_FAMILY_X4_UPSCALER: m = x4_factors; break;
    default:
      return ldm_fail(err, LDM_ERR_UNSUPPORTED, "preview: no latent->RGB factors for family '%s'",
                      ldm_family_name(f));
  }
  if (h < 1 || w < 1)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "preview: latent size %d x %d", h, w);
  const size_t plane = (size_t)h * w;
  for (size_t p = 0; p < plane; p++) {
    float c[4] = {latent[p], latent[plane + p], latent[2 * plane + p], latent[3 * plane + p]};
    for (int k = 0; k < 3; k++) {
      float v = c[0] * m[0][k] + c[1] * m[1][k] + c[2] * m[2][k] + c[3] * m[3][k];
      v = (v + 1.0f) * 0.5f; /* [-1, 1] -> [0, 1] */
      v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
      rgb[p * 3 + k] = (uint8_t)(v * 255.0f + 0.5f);
    }
  }
  return LDM_OK;
}
