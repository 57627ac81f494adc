/* ControlNets of a job (public API): names of the preprocessors, defaults,
 * and the checks of every control a caller fills before a job is made. */
#include "ldm.h"
#include "core/status.h"
#include "pipeline/pipeline.h"

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
    if (im && (im->width < 1 || im->height < 1 || !im->data || im->width > LDM_MAX_IMAGE_SIDE ||
               im->height > LDM_MAX_IMAGE_SIDE || (im->channels != 1 && im->channels != 3 && im->channels != 4) ||
               (unsigned)im->type > LDM_PIXEL_F32))
      return ldm_fail(err, LDM_ERR_INVALID_ARG,
                      "control %d: the control image (%dx%d, %d channels) is empty, larger than %d a side or not "
                      "1, 3 or 4 channels", i, im->width, im->height, im->channels, LDM_MAX_IMAGE_SIDE);
  }
  return LDM_OK;
}
