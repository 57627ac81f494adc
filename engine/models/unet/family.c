/* Model family detection from the UNet's tensors and shapes: input channels
 * (4 / 9 inpainting / 7 x4 upscaler), cross-attention width (768 / 1024 /
 * 2048), SDXL's add embedding, SD2's linear projections; the prediction type
 * from the scheduler config, the file's metadata or (SD2) the weights. */
#include "models/family.h"
#include "models/unet/unet.h"
#include "core/status.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {"unknown", "sd1", "sd1-inpaint", "sd2", "sd2-inpaint",
                                    "sdxl", "sdxl-inpaint", "x4-upscaler", "esrgan", "srvgg"};

const char *ldm_family_name(ldm_family f) {
  return (unsigned)f < sizeof names / sizeof *names ? names[f] : "unknown";
}

ldm_family ldm_family_from_name(const char *name) {
  for (unsigned i = 1; i < sizeof names / sizeof *names; i++)
    if (name && strcmp(name, names[i]) == 0) return (ldm_family)i;
  return LDM_FAMILY_UNKNOWN;
}

const char *ldm_prediction_name(ldm_prediction p) {
  return p == LDM_PRED_V ? "v" : p == LDM_PRED_SAMPLE ? "sample" : "epsilon";
}

ldm_family ldm_unet_guess_family(const ldm_unet_config *c) {
  if (c->in_channels == 7 && c->num_classes > 0) return LDM_FAMILY_X4_UPSCALER;
  if (c->in_channels != 4 && c->in_channels != 9) return LDM_FAMILY_UNKNOWN;
  bool inpaint = c->in_channels == 9;
  /* real widths first; the structure decides for other widths (tiny models) */
  if (c->adm_in_channels > 0 || c->context_dim == 2048) return inpaint ? LDM_FAMILY_SDXL_INPAINT : LDM_FAMILY_SDXL;
  if (c->context_dim == 1024 || (c->context_dim != 768 && c->linear_proj))
    return inpaint ? LDM_FAMILY_SD2_INPAINT : LDM_FAMILY_SD2;
  return inpaint ? LDM_FAMILY_SD1_INPAINT : LDM_FAMILY_SD1;
}

static int parse_prediction(const char *s, ldm_prediction *out) {
  if (!s) return 0;
  if (!strcmp(s, "v_prediction") || !strcmp(s, "v")) *out = LDM_PRED_V;
  else if (!strcmp(s, "epsilon") || !strcmp(s, "eps")) *out = LDM_PRED_EPSILON;
  else if (!strcmp(s, "sample")) *out = LDM_PRED_SAMPLE;
  else return 0;
  return 1;
}

/* SD2 768-v and 512-eps checkpoints have the same tensors; the v models'
 * first norm of the last transformer has clearly larger bias spread (the
 * ComfyUI heuristic, threshold 0.09). */
static int sd2_bias_says_v(const ldm_source *src, const ldm_unet_config *c) {
  int lpb = c->layers_per_block, last = c->n_levels * (lpb + 1) - 1, u = c->n_levels - 1;
  char ln[160], dn[160];
  snprintf(ln, sizeof ln, "%soutput_blocks.%d.1.transformer_blocks.0.norm1.bias",
           c->layout == LDM_UNET_LAYOUT_LDM ? "model.diffusion_model." : "", last);
  snprintf(dn, sizeof dn, "up_blocks.%d.attentions.%d.transformer_blocks.0.norm1.bias", u, lpb);
  const ldm_tensor *t = ldm_source_find(src, "unet", c->layout == LDM_UNET_LAYOUT_DIFFUSERS ? dn : ln);
  if (!t || t->ndim != 1 || t->shape[0] < 2 || t->shape[0] > 4096) return 0;
  float v[4096];
  if (ldm_tensor_read_f32(t, 0, t->shape[0], v, NULL) != LDM_OK) return 0;
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < t->shape[0]; i++) s += v[i];
  double mean = s / (double)t->shape[0];
  for (int64_t i = 0; i < t->shape[0]; i++) s2 += (v[i] - mean) * (v[i] - mean);
  return sqrt(s2 / (double)t->shape[0]) > 0.09;
}

static int folder_prediction(const ldm_source *src, ldm_prediction *out) {
  char path[4096];
  if (!ldm_source_file(src, "scheduler/scheduler_config.json", path, sizeof path)) return 0;
  json_t *root = json_load_file(path, 0, NULL);
  int ok = parse_prediction(json_string_value(json_object_get(root, "prediction_type")), out);
  json_decref(root);
  return ok;
}

ldm_status ldm_family_detect(const ldm_source *src, ldm_family_info *out, ldm_error *err) {
  memset(out, 0, sizeof *out);
  ldm_unet_config c;
  LDM_TRY(ldm_unet_probe(src, NULL, &c, err));
  if (c.controlnet)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "%s: this is a ControlNet, not a checkpoint (use it as a control: "
                    "--controlnet)",
                    ldm_source_path(src));
  out->family = ldm_unet_guess_family(&c);
  out->unet_in_channels = c.in_channels;
  out->context_dim = c.context_dim;
  out->unet_params = c.n_params;
  ldm_family f = out->family;
  bool sd2 = f == LDM_FAMILY_SD2 || f == LDM_FAMILY_SD2_INPAINT;
  ldm_prediction p = LDM_PRED_EPSILON;
  if (folder_prediction(src, &p)) {
  } else if (parse_prediction(ldm_source_metadata(src, "modelspec.prediction_type"), &p)) {
  } else if (!ldm_source_is_folder(src) && ldm_source_find(src, NULL, "v_pred")) {
    p = LDM_PRED_V;
  } else if (f == LDM_FAMILY_X4_UPSCALER || (f == LDM_FAMILY_SD2 && sd2_bias_says_v(src, &c))) {
    p = LDM_PRED_V;
  }
  out->prediction = p;
  switch (f) {
  case LDM_FAMILY_SDXL:
  case LDM_FAMILY_SDXL_INPAINT: out->native_size = 1024; out->vae_scale = 0.13025f; break;
  case LDM_FAMILY_X4_UPSCALER: out->native_size = 512; out->vae_scale = 0.08333f; break;
  default:
    out->native_size = sd2 && p == LDM_PRED_V ? 768 : 512;
    out->vae_scale = 0.18215f;
  }
  return LDM_OK;
}
