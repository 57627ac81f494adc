/* ControlNets of a job (public API): names of the preprocessors, defaults,
 * and the checks of every control a caller fills before a job is made. */
#include "ldm.h"
#include "core/status.h"
#include "pipeline/pipeline.h"

#include "pipeline/imageproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const pre_names[] = {"none", "invert", "scribble", "canny", "inpaint"};

const char *ldm_preprocess_name(ldm_preprocess k) {
  return (unsigned)k < sizeof pre_names / sizeof *pre_names ? pre_names[k] : "unknown";
}

bool ldm_preprocess_parse(const char *name, ldm_preprocess *out) {
  for (unsigned i = 0; name && i < sizeof pre_names / sizeof *pre_names; i++)
    if (!strcmp(name, pre_names[i])) {
      *out = (ldm_preprocess)i;
      return true;
    }
  return false;
}

void ldm_control_init(ldm_control *c) {
  memset(c, 0, sizeof *c);
  c->scale = 1.0f;
  c->start = 0.0f;
  c->end = 1.0f;
  c->preprocess = LDM_PREPROCESS_NONE;
  c->canny_low = 100;
  c->canny_high = 200;
}

/* The families a ControlNet for the model's family must have. */
static ldm_family base_family(ldm_family f) {
  switch (f) {
  case LDM_FAMILY_SD1_INPAINT: return LDM_FAMILY_SD1;
  case LDM_FAMILY_SD2_INPAINT: return LDM_FAMILY_SD2;
  case LDM_FAMILY_SDXL_INPAINT: return LDM_FAMILY_SDXL;
  default: return f;
  }
}

/* The file is a ControlNet of the model's family (from its tensors). */
static ldm_status check_family(const ldm_model *m, int i, const char *path, ldm_error *err) {
  ldm_source *src = NULL;
  ldm_unet_config c;
  ldm_status st = ldm_source_open(&src, path, err);
  if (st == LDM_OK) st = ldm_unet_probe(src, NULL, &c, err);
  if (st == LDM_OK && !c.controlnet)
    st = ldm_fail(err, LDM_ERR_INVALID_ARG,
                  "control %d: %s is not a ControlNet (no 'input_hint_block' or "
                  "'controlnet_cond_embedding' tensors)",
                  i, path);
  if (st == LDM_OK) {
    ldm_family f = ldm_unet_guess_family(&c), mf = base_family(m->fam.family);
    if (f != mf)
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: %s is an %s ControlNet, but the model %s is %s", i, path,
                    ldm_family_name(f), ldm_source_path(m->src), ldm_family_name(m->fam.family));
  } else if (st != LDM_ERR_INVALID_ARG) {
    ldm_error_prefix(err, "control %d", i);
  }
  ldm_source_close(src);
  return st;
}

ldm_status ldm_controlnet_probe(const char *path, ldm_controlnet_info *out, ldm_error *err) {
  memset(out, 0, sizeof *out);
  ldm_error_clear(err);
  ldm_source *src = NULL;
  ldm_unet_config c;
  ldm_status st = ldm_source_open(&src, path, err);
  if (st == LDM_OK) st = ldm_unet_probe(src, NULL, &c, err);
  if (st == LDM_OK && !c.controlnet)
    st = ldm_fail(err, LDM_ERR_INVALID_ARG,
                  "%s: not a ControlNet (no 'input_hint_block' or "
                  "'controlnet_cond_embedding' tensors)",
                  path);
  if (st == LDM_OK) {
    const char *hint = c.layout == LDM_UNET_LAYOUT_DIFFUSERS ? "controlnet_cond_embedding.conv_in.weight"
                       : c.layout == LDM_UNET_LAYOUT_CONTROL ? "control_model.input_hint_block.0.weight"
                                                             : "input_hint_block.0.weight";
    const ldm_tensor *t = ldm_source_find(src, "unet", hint);
    snprintf(out->family, sizeof out->family, "%s", ldm_family_name(ldm_unet_guess_family(&c)));
    snprintf(out->layout, sizeof out->layout, "%s", c.layout == LDM_UNET_LAYOUT_DIFFUSERS ? "diffusers" : "original");
    out->hint_channels = t && t->ndim == 4 ? (int)t->shape[1] : 0;
    out->n_params = c.n_params;
    out->file_bytes = ldm_source_bytes(src);
  }
  ldm_source_close(src);
  return st;
}

ldm_status pl_job_check_controls(const ldm_model *m, const ldm_job_params *p, ldm_error *err) {
  if (p->n_controls == 0) return LDM_OK;
  if (p->n_controls < 0 || p->n_controls > LDM_MAX_CONTROLS || !p->controls)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "controls: %d given, expected 0..%d (and a controls array)",
                    p->n_controls, LDM_MAX_CONTROLS);
  if (p->task != LDM_TASK_TXT2IMG && p->task != LDM_TASK_IMG2IMG && p->task != LDM_TASK_INPAINT)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "ControlNet steers txt2img, img2img and inpaint jobs, not %s",
                    p->task == LDM_TASK_OUTPAINT ? "outpaint" : "upscale");
  if (pl_model_is_sr(m))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: an %s upscaler takes no ControlNet", ldm_source_path(m->src),
                    ldm_family_name(m->fam.family));
  for (int i = 0; i < p->n_controls; i++) {
    const ldm_control *c = &p->controls[i];
    if (!c->model_path || !c->model_path[0])
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: no ControlNet model given", i);
    if (!(c->scale >= 0.0f && c->scale <= 2.0f))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: scale = %g, expected 0..2", i, (double)c->scale);
    if (!(c->start >= 0.0f && c->start <= 1.0f))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: start = %g, expected 0..1", i, (double)c->start);
    if (!(c->end >= 0.0f && c->end <= 1.0f))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: end = %g, expected 0..1", i, (double)c->end);
    if (!(c->start < c->end))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: start %g is not before end %g", i, (double)c->start,
                      (double)c->end);
    if ((unsigned)c->preprocess > LDM_PREPROCESS_INPAINT)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: preprocess = %d, expected 0..%d", i,
                      (int)c->preprocess, (int)LDM_PREPROCESS_INPAINT);
    if (c->preprocess == LDM_PREPROCESS_CANNY &&
        !(c->canny_low >= 0 && c->canny_low <= c->canny_high && c->canny_high <= 255))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: canny thresholds %d,%d, expected 0 <= low <= high <= 255",
                      i, c->canny_low, c->canny_high);
    if (c->preprocess == LDM_PREPROCESS_INPAINT && p->task != LDM_TASK_INPAINT)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: the inpaint preprocessor needs an inpaint job", i);
    const ldm_image *im = c->image;
    if (!im && c->preprocess != LDM_PREPROCESS_INPAINT)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "control %d: no control image given", i);
    LDM_TRY(check_family(m, i, c->model_path, err));
    if (im && (im->width < 1 || im->height < 1 || !im->data || im->width > LDM_MAX_IMAGE_SIDE ||
               im->height > LDM_MAX_IMAGE_SIDE || (im->channels != 1 && im->channels != 3 && im->channels != 4) ||
               (unsigned)im->type > LDM_PIXEL_F32))
      return ldm_fail(err, LDM_ERR_INVALID_ARG,
                      "control %d: the control image (%dx%d, %d channels) is empty, larger than %d a side or not "
                      "1, 3 or 4 channels", i, im->width, im->height, im->channels, LDM_MAX_IMAGE_SIDE);
  }
  return LDM_OK;
}

ldm_status pl_job_copy_controls(ldm_job *job, const ldm_job_params *p, ldm_error *err) {
  job->p.controls = NULL;
  job->p.n_controls = 0;
  if (p->n_controls <= 0) return LDM_OK;
  job->controls = calloc((size_t)p->n_controls, sizeof *job->controls);
  if (!job->controls) return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  for (int i = 0; i < p->n_controls; i++) {
    job->controls[i] = p->controls[i];
    job->controls[i].model_path = NULL;
  }
  job->p.controls = job->controls;
  job->p.n_controls = p->n_controls;
  for (int i = 0; i < p->n_controls; i++)
    if (!(job->controls[i].model_path = strdup(p->controls[i].model_path)))
      return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  return LDM_OK;
}

void pl_job_free_controls(ldm_job *job) {
  for (int i = 0; job->controls && i < job->p.n_controls; i++) free((char *)job->controls[i].model_path);
  free(job->controls);
  job->controls = NULL;
}

ldm_status pl_model_controlnet(ldm_model *m, const char *path, ldm_controlnet **out, ldm_error *err) {
  *out = NULL;
  for (int i = 0; i < m->n_cnets; i++)
    if (!strcmp(m->cnets[i].path, path)) {
      *out = m->cnets[i].cn;
      return LDM_OK;
    }
  pl_cnet *grown = realloc(m->cnets, (size_t)(m->n_cnets + 1) * sizeof *grown);
  if (!grown) return ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  m->cnets = grown;
  pl_cnet e = {0};
  ldm_unet_overrides ov;
  ldm_controlnet_overrides_for(m->unet, &ov);
  ldm_status st = (e.path = strdup(path)) ? LDM_OK : ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  if (st == LDM_OK) st = ldm_source_open(&e.src, path, err);
  if (st == LDM_OK) st = ldm_controlnet_load(&e.cn, e.src, &ov, err);
  if (st == LDM_OK) st = ldm_controlnet_check_fit(e.cn, path, m->unet, ldm_source_path(m->src), err);
  if (st != LDM_OK) {
    ldm_controlnet_free(e.cn);
    ldm_source_close(e.src);
    free(e.path);
    return st;
  }
  m->cnets[m->n_cnets++] = e;
  *out = e.cn;
  return LDM_OK;
}

void pl_model_free_controlnets(ldm_model *m) {
  for (int i = 0; i < m->n_cnets; i++) {
    ldm_controlnet_free(m->cnets[i].cn);
    ldm_source_close(m->cnets[i].src);
    free(m->cnets[i].path);
  }
  free(m->cnets);
  m->cnets = NULL;
  m->n_cnets = 0;
}

ldm_status pl_control_image(const ldm_job *job, int i, int FW, int FH, int rx0, int ry0, int RW, int RH, int WW, int WH,
                            const float *work_init, const float *work_mask, float *out, ldm_error *err) {
  const ldm_control *c = &job->p.controls[i];
  size_t n = (size_t)WW * WH;
  if (c->preprocess == LDM_PREPROCESS_INPAINT) {
    /* diffusers' make_inpaint_condition: the image in 0..1, -1 where masked */
    for (int ch = 0; ch < 3; ch++)
      for (size_t k = 0; k < n; k++)
        out[ch * n + k] = work_mask && work_mask[k] >= 0.5f ? -1.0f : 0.5f * (work_init[ch * n + k] + 1.0f);
    return LDM_OK;
  }
  ldm_status st = LDM_OK;
  ldm_image *pre = NULL, *full = NULL, *sized = NULL;
  const ldm_image *img = c->image;
  if (c->preprocess != LDM_PREPROCESS_NONE) {
    ldm_preprocess_params pp;
    ldm_preprocess_params_init(&pp);
    pp.kind = c->preprocess;
    pp.canny_low = (float)c->canny_low;
    pp.canny_high = (float)c->canny_high;
    st = ldm_control_preprocess(img, &pp, &pre, err);
    img = pre;
  }
  /* the work region of an image-sized control (img2img and inpaint "only
   * masked" work on a crop of the image) */
  bool crop = st == LDM_OK && FW > 0 && (RW != FW || RH != FH);
  if (crop && (img->width != FW || img->height != FH)) {
    st = ldm_control_resize(img, FW, FH, &full, err);
    img = full;
  }
  ldm_image view;
  if (st == LDM_OK && crop) {
    size_t px = img->type == LDM_PIXEL_F32 ? sizeof(float) : 1;
    view = *img;
    view.width = RW;
    view.height = RH;
    view.data = (char *)img->data + (size_t)ry0 * img->stride + (size_t)rx0 * img->channels * px;
    img = &view;
  }
  if (st == LDM_OK) st = ldm_control_resize(img, WW, WH, &sized, err);
  if (st == LDM_OK)
    for (int y = 0; y < WH; y++) {
      const float *row = (const float *)((const char *)sized->data + (size_t)y * sized->stride);
      for (int x = 0; x < WW; x++)
        for (int ch = 0; ch < 3; ch++) out[ch * n + (size_t)y * WW + x] = row[3 * x + ch];
    }
  if (st != LDM_OK) ldm_error_prefix(err, "control %d", i);
  ldm_image_free(pre);
  ldm_image_free(full);
  ldm_image_free(sized);
  return st;
}
