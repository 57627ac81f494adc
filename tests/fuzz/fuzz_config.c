/* Fuzz target: the diffusers config readers (unet/config.json,
 * vae/config.json, text_encoder/config.json, scheduler_config.json). The
 * first byte picks the reader, the rest is the JSON text. Accepted values
 * must be inside their ranges (finite, positive group counts...); every
 * refusal has a message. */
#include "models/unet/unet.h"
#include "models/vae/vae.h"
#include "pipeline/pipeline.h"
#include "text/clip_text.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  char *s = malloc(size);
  if (!s) return 0;
  memcpy(s, data + 1, size - 1);
  s[size - 1] = '\0';
  ldm_error err = {0};
  ldm_status st;
  switch (data[0] % 4) {
    case 0: {
      ldm_unet_config c;
      memset(&c, 0, sizeof c);
      c.n_levels = 4;
      c.groups = 32;
      c.norm_eps = 1e-5f;
      st = ldm_unet_config_json(s, "unet/config.json", &c, NULL, &err);
      if (st == LDM_OK && (c.groups < 1 || c.groups > 4096 || !(c.norm_eps > 0 && c.norm_eps < 1) ||
                           !isfinite(c.freq_shift)))
        abort();
      for (int l = 0; st == LDM_OK && c.heads_from && l < c.n_levels; l++)
        if (c.heads[l] < 0 || c.heads[l] > 4096) abort();
      break;
    }
    case 1: {
      int groups = 32;
      double scale = 0.18215, shift = 0;
      st = ldm_vae_config_json(s, "vae/config.json", &groups, &scale, &shift, &err);
      if (st == LDM_OK && (groups < 1 || !(scale > 0 && scale < 1000) || !isfinite(shift))) abort();
      break;
    }
    case 2: {
      int heads = 12, quick = 1;
      float eps = 1e-5f;
      st = ldm_clip_config_json(s, "text_encoder/config.json", &heads, &quick, &eps, &err);
      if (st == LDM_OK && (heads < 1 || !(eps > 0 && eps < 1))) abort();
      break;
    }
    default: {
      pl_sched_config c;
      memset(&c, 0, sizeof c);
      c.low_beta_start = 0.0001;
      c.low_beta_end = 0.02;
      st = pl_sched_config_json(&c, s, data[0] & 4, "scheduler/scheduler_config.json", &err);
      if (st == LDM_OK && ((c.has_betas && !(c.beta_start > 0 && c.beta_end < 1)) ||
                           !(c.low_beta_start > 0 && c.low_beta_end < 1) || c.steps_offset < 0))
        abort();
    }
  }
  if (st != LDM_OK && !err.msg[0]) abort();
  free(s);
  return 0;
}
