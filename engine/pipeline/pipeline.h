/* Internal view of models and jobs (the public handles of ldm.h). */
#ifndef LDM_PIPELINE_PIPELINE_H
#define LDM_PIPELINE_PIPELINE_H

#include <stdatomic.h>
#include "ldm.h"
#include "io/source.h"
#include "models/family.h"
#include "models/esrgan/esrgan.h"
#include "models/unet/unet.h"
#include "models/unet/controlnet.h"
#include "models/vae/vae.h"
#include "sample/sample.h"
#include "text/text.h"

/* Scheduler settings a diffusers folder's scheduler/scheduler_config.json
 * gives; `has_*` says which keys were present (absent = sampler default). */
typedef struct pl_sched_config {
  bool has_betas, has_spacing, has_offset, has_zsnr;
  double beta_start, beta_end;
  ldm_beta_schedule beta_schedule;
  ldm_spacing spacing;
  int steps_offset;
  bool zsnr;
  /* the x4 upscaler's low_res_scheduler */
  double low_beta_start, low_beta_end;
  ldm_beta_schedule low_beta_schedule;
} pl_sched_config;

/* What the model states about itself (settings.c); 0 / "" = not stated. */
typedef struct pl_model_settings {
  int native_size;
  int steps;
  float cfg;
  char sampler[32];
} pl_model_settings;

/* A ControlNet a model keeps (pl_model_controlnet). */
typedef struct pl_cnet {
  char *path;
  ldm_source *src;
  ldm_controlnet *cn;
} pl_cnet;

/* A prompt's encoding kept with the model: live painting and Regenerate run
 * the same prompts again and again (the text encoder is a tenth of a
 * one-step job). Kept only for prompts that named no embedding; dropped
 * when the merged LoRA set changes (pl_model_apply_loras). */
typedef struct pl_text_memo {
  char *prompt;          /* NULL = empty slot */
  int clip_skip, chunks; /* the other inputs of ldm_text_cond_encode */
  float *cond, *pooled;  /* [T, D], [P] or NULL */
  int T;
} pl_text_memo;
enum { PL_TEXT_MEMO_SLOTS = 2 }; /* prompt and negative prompt */

struct ldm_model {
  ldm_source *src, *vae_src, *taesd_src;
  ldm_family_info fam;
  int threads;
  pl_sched_config sched;
  ldm_unet_overrides unet_ov;  /* from ldm_model_params.options */
  int vae_groups, text_heads;
  /* loaded on first use */
  ldm_unet *unet;
  ldm_vae *vae;
  ldm_taesd *taesd;
  ldm_text_cond *text;
  struct ldm_wcache *wcache;   /* ldm_model_params.weight_cache_mb, or NULL */
  /* ESRGAN-class feed-forward upscalers (fam.family ESRGAN / SRVGG) */
  ldm_sr_config sr_cfg;
  ldm_sr *sr;                  /* loaded on first use */
  size_t wcache_limit;         /* its size limit in bytes */
  ldm_precision precision;     /* ldm_model_params.precision */
  pl_model_settings settings;  /* stated size (also in fam.native_size) and recommendations */
  char *lora_sig;              /* the LoRA set merged into the weights now, NULL = none */
  /* ControlNets jobs asked for, loaded once and kept with the model (the
   * weight cache keys on their mapped weights) */
  pl_cnet *cnets;
  int n_cnets;
  pl_text_memo memo[PL_TEXT_MEMO_SLOTS];
  int memo_next; /* the slot the next new prompt takes */
  /* With a weight cache (a model that serves job after job: live painting)
   * the jobs' thread pool and scratch arena are kept too: a job then starts
   * no threads and writes into pages it already has (fresh pages are zeroed
   * by the kernel on first touch: a few % of a 512x512 job) */
  struct ldm_pool *job_pool;
  struct ldm_arena *job_scratch;
};

struct ldm_job {
  ldm_model *model;
  ldm_job_params p;
  char *prompt, *negative, *sampler; /* owned copies of the strings (prompt without <lora:> tags) */
  char *model_dirs;
  ldm_job_lora *loras;               /* path and name strings owned */
  int n_loras;
  ldm_lora *lora_params;             /* the same as p.loras (paths borrowed from loras) */
  ldm_control *controls;             /* p.controls copied, model paths owned */
  atomic_int cancel;
};

/* Reads and validates the model's stated settings into m->settings and, when
 * the size is stated, m->fam.native_size (settings.c). */
ldm_status pl_model_read_settings(ldm_model *m, ldm_error *err);
/* A diffusers scheduler_config.json (low: the x4's low_res_scheduler) into
 * s, every value checked against its range; `file` names it. */
ldm_status pl_sched_config_json(pl_sched_config *s, const char *text, bool low, const char *file, ldm_error *err);
/* Loads whatever the model still lacks for running jobs (api.c: the job
 * entry points call it before pl_job_run / pl_sr_job_run / pl_job_estimate,
 * which expect the networks loaded). */
ldm_status pl_model_ensure(ldm_model *m, ldm_error *err);
/* Resolves the job's LoRAs (params, then the prompt's <lora:...> tags,
 * which it removes from job->prompt) (addons.c). */
ldm_status pl_job_resolve_loras(ldm_job *job, const ldm_job_params *p, ldm_error *err);
void pl_job_free_loras(ldm_job *job);
/* Merges the job's LoRAs into the loaded networks unless that set is merged
 * already; restores the file's weights for a job without LoRAs. */
ldm_status pl_model_apply_loras(ldm_model *m, const ldm_job *job, ldm_ctx *ctx, ldm_error *err);
/* Forgets the prompt encodings kept with the model (generate.c). */
void pl_text_memo_clear(ldm_model *m);
/* First file of `kind` named `name` (stem) under the model folders. */
ldm_status pl_models_find(const char *roots, ldm_model_kind kind, const char *name, char *out, size_t n,
                          bool *found, ldm_error *err);

/* Files of `kind` whose stem filter() accepts (others are not opened). */
ldm_status pl_models_scan_filtered(const char *roots, ldm_model_kind kind, bool (*filter)(void *, const char *),
                                   void *filter_user, ldm_model_visit_fn fn, void *user, ldm_error *err);
/* The embeddings (textual inversion) of the model folders that the job's
 * prompts name, loaded for the model's text encoders (malloc'd array). */
ldm_status pl_job_load_embeds(const ldm_job *job, const ldm_model *m, ldm_text_embed **out, int *n, ldm_error *err);

/* Checks the job's ControlNets (control.c): counts, values, images, task,
 * each file's family against the model's; then copies them into the job. */
ldm_status pl_job_check_controls(const ldm_model *m, const ldm_job_params *p, ldm_error *err);
ldm_status pl_job_copy_controls(ldm_job *job, const ldm_job_params *p, ldm_error *err);
void pl_job_free_controls(ldm_job *job);
/* The ControlNet at path, loaded for the model's UNet (cached in the model);
 * the model's networks must be loaded (pl_model_ensure). */
ldm_status pl_model_controlnet(ldm_model *m, const char *path, ldm_controlnet **out, ldm_error *err);
void pl_model_free_controlnets(ldm_model *m);
/* The job's control image i at the working size: planar [3, WH, WW] in
 * 0..1 (-1 where the inpaint convention masks), from the caller's image
 * (preprocessed, cropped to the work region rx0, ry0, RW x RH of an image of
 * FW x FH when it has that size, resized) or, for LDM_PREPROCESS_INPAINT,
 * from the working init image ([-1, 1] planar) and mask. */
ldm_status pl_control_image(const ldm_job *job, int i, int FW, int FH, int rx0, int ry0, int RW, int RH, int WW, int WH,
                            const float *work_init, const float *work_mask, float *out, ldm_error *err);

/* The peak working memory estimate behind max_memory_mb (generate.c; the
 * model loaded). */
ldm_status pl_job_estimate(ldm_job *job, int64_t *bytes, ldm_error *err);
/* Runs a diffusion job (generate.c; the model loaded). */
ldm_status pl_job_run(ldm_job *job, ldm_image ***images, int *n_images, ldm_error *err);
/* True for the ESRGAN-class families (no UNet, VAE or text encoder). */
static inline bool pl_model_is_sr(const ldm_model *m) {
  return m->fam.family == LDM_FAMILY_ESRGAN || m->fam.family == LDM_FAMILY_SRVGG;
}
/* The upscale task of an ESRGAN-class model (upscale_sr.c; it and the
 * refine model loaded), and the optional img2img refine stage over its
 * result. */
ldm_status pl_sr_job_run(ldm_job *job, ldm_image ***images, int *n_images, ldm_error *err);

#endif
