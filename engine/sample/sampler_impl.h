/* Private to engine/sample: the sampler state shared by schedule.c (what
 * set_timesteps computes) and samplers.c (the loops). */
#ifndef LDM_SAMPLE_SAMPLER_IMPL_H
#define LDM_SAMPLE_SAMPLER_IMPL_H

#include "sample/sample.h"

/* Families that share timesteps, sigmas and scale_model_input. */
typedef enum sched_family {
  FAM_KDIFF = 0,   /* Euler, Euler a, Heun, LMS: VE sigmas, input / sqrt(s^2+1) */
  FAM_DPM,         /* DPM++ 2M (SDE), UniPC: VP sample, sigmas of n+1 spacing */
  FAM_DDPM,        /* DDIM, PNDM, LCM: integer timesteps on alphas_cumprod */
  FAM_KSAMPLING    /* k-diffusion samplers on a DiscreteEpsDDPMDenoiser */
} sched_family;

enum { SAMPLER_BUFS = 6 };

struct ldm_sampler {
  ldm_sampler_config c;
  sched_family fam;
  int64_t n;               /* floats per latent (all images) */
  int T;                   /* num_train_timesteps */
  float *acp;              /* [T] alphas_cumprod (float32, as torch) */
  float *log_sigmas;       /* [T] log(((1 - acp) / acp)^0.5), float32 */
  double final_acp;        /* set_alpha_to_one ? 1 : acp[0] */
  int nt;                  /* timestep count (model calls, 2S a: steps) */
  float *ts;               /* [nt] timesteps as the UNet gets them */
  int ns;                  /* sigma count (nt + 1 for sigma families) */
  float *sig;              /* [ns] */
  float init_sigma;
  int begin;               /* first timestep index run (img2img) */
  float *buf[SAMPLER_BUFS];/* numel each: work buffers, reused every step */
  double *tmp;             /* 2 T + 3 (steps + 2) doubles, only while building */
};

ldm_status ldm_schedule_build(ldm_sampler *s, ldm_error *err);
/* diffusers/k-diffusion _sigma_to_t: fractional timestep of a sigma. */
double ldm_schedule_sigma_to_t(const ldm_sampler *s, double sigma);

#endif
