/* Models and jobs (public API). Loading opens and maps the files and detects
 * the family; running a job will drive text encoding, sampling and the VAE.
 * The generation pipelines are not in this build yet: ldm_job_run reports
 * LDM_ERR_UNSUPPORTED after validating its parameters. */
#include "ldm.h"
#include "core/status.h"
#include "io/source.h"
#include "models/family.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ldm_model {
  ldm_source *src;
  ldm_family_info fam;
  int threads;
};

struct ldm_job {
  ldm_model *model;
  ldm_job_params p;
  atomic_int cancel;
};

void ldm_model_params_init(ldm_model_params *p) {
  memset(p, 0, sizeof *p);
}

ldm_status ldm_model_load(ldm_model **out, const ldm_model_params *p, ldm_error *err) {
  *out = NULL;
  ldm_error_clear(err);
  if (!p || !p->path) return ldm_fail(err, LDM_ERR_INVALID_ARG, "model: no path given");
  ldm_model *m = calloc(1, sizeof *m);
  if (!m) return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", p->path);
  ldm_status st = ldm_source_open(&m->src, p->path, err);
  if (st == LDM_OK) st = ldm_family_detect(m->src, &m->fam, err);
  if (st == LDM_OK && p->family) {
    ldm_family f = ldm_family_from_name(p->family);
    if (f == LDM_FAMILY_UNKNOWN)
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "model: unknown family '%s'", p->family);
    else
      m->fam.family = f;
  }
  if (st == LDM_OK && p->prediction) {
    if (strcmp(p->prediction, "epsilon") == 0) m->fam.prediction = LDM_PRED_EPSILON;
    else if (strcmp(p->prediction, "v") == 0) m->fam.prediction = LDM_PRED_V;
    else if (strcmp(p->prediction, "sample") == 0) m->fam.prediction = LDM_PRED_SAMPLE;
    else st = ldm_fail(err, LDM_ERR_INVALID_ARG, "model: unknown prediction type '%s' (epsilon, v, sample)", p->prediction);
  }
  if (st != LDM_OK) {
    ldm_model_free(m);
    return st;
  }
  m->threads = p->threads > 0 ? p->threads : ldm_default_threads();
  *out = m;
  return LDM_OK;
}

void ldm_model_free(ldm_model *m) {
  if (!m) return;
  ldm_source_close(m->src);
  free(m);
}

ldm_status ldm_model_get_info(const ldm_model *m, ldm_model_info *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->family, sizeof out->family, "%s", ldm_family_name(m->fam.family));
  snprintf(out->prediction, sizeof out->prediction, "%s", ldm_prediction_name(m->fam.prediction));
  out->unet_in_channels = m->fam.unet_in_channels;
  out->native_size = m->fam.native_size;
  out->n_params = m->fam.unet_params;
  out->file_bytes = ldm_source_bytes(m->src);
  return LDM_OK;
}

void ldm_job_params_init(ldm_job_params *p, ldm_task task) {
  memset(p, 0, sizeof *p);
  p->task = task;
  p->steps = 20;
  p->cfg_scale = 7.0f;
  p->sampler = "euler_a";
  p->rng = LDM_RNG_CPU;
  p->strength = task == LDM_TASK_TXT2IMG ? 1.0f : 0.75f;
  p->batch_count = 1;
  p->clip_skip = 1;
  p->mask_blur = 4.0f;
  p->only_masked_padding = 32;
  p->noise_level = 20;
}

ldm_status ldm_job_new(ldm_job **out, ldm_model *m, const ldm_job_params *p, ldm_error *err) {
  *out = NULL;
  ldm_error_clear(err);
  if (!m || !p) return ldm_fail(err, LDM_ERR_INVALID_ARG, "job: no model or parameters");
  if (p->steps < 1 || p->steps > 1000)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "steps = %d, expected 1..1000", p->steps);
  if (p->batch_count < 1 || p->batch_count > 64)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "batch count = %d, expected 1..64", p->batch_count);
  if (p->strength < 0.0f || p->strength > 1.0f)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "strength = %g, expected 0..1", (double)p->strength);
  if (p->width < 0 || p->height < 0 || p->width % 8 || p->height % 8)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "size %dx%d: width and height must be multiples of 8",
                    p->width, p->height);
  if (p->task != LDM_TASK_TXT2IMG && !p->init)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "this task needs an init image");
  if ((p->task == LDM_TASK_INPAINT) && !p->mask)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "inpaint needs a mask");
  ldm_job *j = calloc(1, sizeof *j);
  if (!j) return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  j->model = m;
  j->p = *p;
  atomic_init(&j->cancel, 0);
  *out = j;
  return LDM_OK;
}

ldm_status ldm_job_run(ldm_job *job, ldm_image ***images, int *n_images, ldm_error *err) {
  *images = NULL;
  *n_images = 0;
  ldm_error_clear(err);
  if (atomic_load(&job->cancel)) return ldm_fail(err, LDM_ERR_CANCELLED, "job cancelled");
  return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: generation pipelines are not available in this build yet",
                  ldm_source_path(job->model->src));
}

void ldm_job_cancel(ldm_job *job) {
  if (job) atomic_store(&job->cancel, 1);
}

void ldm_job_free(ldm_job *job) { free(job); }
