/* Model family detection from the tensors present and their shapes (and a
 * diffusers config when there is one). Implemented with the UNet. */
#ifndef LDM_MODELS_FAMILY_H
#define LDM_MODELS_FAMILY_H

#include "io/source.h"

typedef enum ldm_family {
  LDM_FAMILY_UNKNOWN = 0,
  LDM_FAMILY_SD1,
  LDM_FAMILY_SD1_INPAINT,
  LDM_FAMILY_SD2,
  LDM_FAMILY_SD2_INPAINT,
  LDM_FAMILY_SDXL,
  LDM_FAMILY_SDXL_INPAINT,
  LDM_FAMILY_X4_UPSCALER,
  LDM_FAMILY_ESRGAN,        /* RRDBNet feed-forward upscaler (models/esrgan) */
  LDM_FAMILY_SRVGG          /* SRVGGNetCompact feed-forward upscaler */
} ldm_family;

typedef enum ldm_prediction {
  LDM_PRED_EPSILON = 0,
  LDM_PRED_V,
  LDM_PRED_SAMPLE
} ldm_prediction;

typedef struct ldm_family_info {
  ldm_family family;
  ldm_prediction prediction;
  int unet_in_channels;
  int context_dim;          /* cross-attention dim */
  int native_size;          /* pixels */
  float vae_scale;          /* 0.18215 / 0.13025 / 0.08333 (x4) */
  int64_t unet_params;
} ldm_family_info;

/* Returns LDM_ERR_UNSUPPORTED naming what was found when no UNet is there. */
ldm_status ldm_family_detect(const ldm_source *src, ldm_family_info *out,
                             ldm_error *err);
const char *ldm_family_name(ldm_family f);           /* "sd1", "sdxl", ... */
ldm_family ldm_family_from_name(const char *name);   /* UNKNOWN if none */
const char *ldm_prediction_name(ldm_prediction p);   /* "epsilon", "v", "sample" */

#endif
