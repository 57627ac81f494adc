/* Noise schedules, samplers and guidance: the internal API the pipeline calls.
 * Each sampler mirrors one reference (a diffusers scheduler driven the way
 * StableDiffusionPipeline drives it, or a k-diffusion sampling function);
 * ldm_sampler_names()/ldm_sampler_reference() in ldm.h list them.
 *
 * Use:
 *   ldm_sampler_config c; ldm_sampler_config_preset(&c, "dpmpp_2m_karras", err);
 *   c.prediction = ...; c.steps = 20;
 *   ldm_sampler_new(&s, &c, numel, err);      // all buffers allocated here
 *   ldm_sampler_set_strength(s, 0.75f);       // img2img / inpaint only
 *   txt2img:  x = noise * ldm_sampler_init_noise_sigma(s)
 *   img2img:  ldm_sampler_add_noise(s, ldm_sampler_begin(s), x0, noise, x)
 *   ldm_sampler_run(s, x, model, user, rngs, n_rngs, hook, hook_user, err);
 * The sampler never allocates after ldm_sampler_new.
 *
 * Seeds (rng.h): the initial noise is drawn from the same generators that
 * then feed the step noise, in this order, as the tools do:
 *   diffusers / ComfyUI on the CPU: one LDM_RNG_CPU generator seeded with
 *     `seed` for the whole batch (n_rngs = 1), or with a list of generators
 *     one per image (seed + i, n_rngs = B);
 *   AUTOMATIC1111: one generator per image seeded seed + i (LDM_RNG_CPU for
 *     its "CPU" source, LDM_RNG_CUDA for the default "GPU"/"NV"), draws of
 *     [C, H, W] per image; with eta_noise_seed_delta set, A1111 reseeds each
 *     image's generator with seed + i + delta after the initial noise. */
#ifndef LDM_SAMPLE_SAMPLE_H
#define LDM_SAMPLE_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "ldm.h"
#include "sample/rng.h"

typedef enum ldm_beta_schedule {
  LDM_BETAS_SCALED_LINEAR = 0,  /* linspace(sqrt(b0), sqrt(b1))^2 (SD) */
  LDM_BETAS_LINEAR,
  LDM_BETAS_SQUAREDCOS_CAP_V2   /* cosine alpha_bar, betas capped at 0.999 */
} ldm_beta_schedule;

typedef enum ldm_spacing {
  LDM_SPACING_LEADING = 0,
  LDM_SPACING_TRAILING,
  LDM_SPACING_LINSPACE
} ldm_spacing;

typedef enum ldm_sigma_schedule {
  LDM_SIGMAS_DEFAULT = 0,   /* the scheduler's own (interpolated) sigmas */
  LDM_SIGMAS_KARRAS,        /* use_karras_sigmas (rho = 7) */
  LDM_SIGMAS_EXPONENTIAL,   /* use_exponential_sigmas */
  LDM_SIGMAS_SGM_UNIFORM    /* ComfyUI sgm_uniform: trailing spacing */
} ldm_sigma_schedule;

typedef enum ldm_pred {
  LDM_PRED_EPS = 0,         /* prediction_type "epsilon" */
  LDM_PRED_VPRED,           /* "v_prediction" */
  LDM_PRED_X0               /* "sample" */
} ldm_pred;

typedef enum ldm_sampler_kind {
  LDM_SAMPLER_EULER = 0,    /* EulerDiscreteScheduler */
  LDM_SAMPLER_EULER_A,      /* EulerAncestralDiscreteScheduler */
  LDM_SAMPLER_HEUN,         /* HeunDiscreteScheduler */
  LDM_SAMPLER_LMS,          /* LMSDiscreteScheduler (order 4) */
  LDM_SAMPLER_PNDM,         /* PNDMScheduler (skip_prk_steps: PLMS) */
  LDM_SAMPLER_DPMPP_2M,     /* DPMSolverMultistepScheduler dpmsolver++ */
  LDM_SAMPLER_DPMPP_2M_SDE, /* DPMSolverMultistepScheduler sde-dpmsolver++ */
  LDM_SAMPLER_DPMPP_2S_A,   /* k_diffusion.sampling.sample_dpmpp_2s_ancestral */
  LDM_SAMPLER_DDIM,         /* DDIMScheduler (eta) */
  LDM_SAMPLER_LCM,          /* LCMScheduler */
  LDM_SAMPLER_UNIPC,        /* UniPCMultistepScheduler bh2, order 2 */
  LDM_SAMPLER_COUNT
} ldm_sampler_kind;

/* Scheduler configuration; fields named as in diffusers' scheduler configs.
 * ldm_sampler_config_preset fills the values a StableDiffusionPipeline gets
 * with `Scheduler.from_config(sd15_scheduler_config)`. Other families differ
 * only in what their scheduler_config.json states: SDXL sets
 * timestep_spacing "leading" (spacing = LDM_SPACING_LEADING); SD2.x 768
 * sets prediction_type "v_prediction"; zero-terminal-SNR models want
 * rescale_zero_terminal_snr with trailing spacing. */
typedef struct ldm_sampler_config {
  ldm_sampler_kind kind;
  int steps;                    /* num_inference_steps */
  int num_train_timesteps;      /* 1000 */
  double beta_start;            /* 0.00085 */
  double beta_end;              /* 0.012 */
  ldm_beta_schedule beta_schedule;
  ldm_spacing spacing;          /* timestep_spacing (class default) */
  int steps_offset;             /* 1 in the SD1.x/2.x configs */
  bool rescale_zero_terminal_snr;
  bool set_alpha_to_one;        /* DDIM/PNDM/LCM final alpha; false for SD */
  ldm_pred prediction;
  ldm_sigma_schedule sigmas;
  float eta;                    /* DDIM eta; 2S a eta (1) */
  int original_inference_steps; /* LCM: 50 */
  float timestep_scaling;       /* LCM: 10 */
  /* Euler, Euler a, Heun, LMS, DPM++ 2M: run k-diffusion's sample_* function
   * on a DiscreteEpsDDPMDenoiser (continuous timesteps, get_sigmas /
   * get_sigmas_karras), as AUTOMATIC1111 and ComfyUI do, instead of the
   * diffusers scheduler. img2img then starts as A1111's
   * setup_img2img_steps: t_enc = int(min(strength, 0.999) * steps),
   * first sigma index steps - t_enc - 1. Always on for dpmpp_2s_a. */
  bool kdiffusion;
} ldm_sampler_config;

/* Fills c for a user-facing sampler name (table in samplers.c; see
 * ldm_sampler_names(); A1111's display names such as "DPM++ 2M Karras" are
 * accepted too). Returns LDM_ERR_INVALID_ARG for unknown names. */
ldm_status ldm_sampler_config_preset(ldm_sampler_config *c, const char *name,
                                     ldm_error *err);

/* The model as the sampler sees it: given the scaled model input x_in
 * (numel floats, diffusers' scale_model_input already applied) and the
 * timestep the UNet gets (fractional for Karras sigmas), write the raw
 * model output (epsilon, v or x0 per config.prediction) to out. The
 * callback does CFG itself (see ldm_cfg_combine). */
typedef ldm_status (*ldm_denoise_fn)(void *user, const float *x_in,
                                     float timestep, float *out,
                                     ldm_error *err);
/* Called after each scheduler step with the current latent, e.g. for inpaint
 * blending, progress and cancel (return an error to stop). i counts the
 * steps run so far from 0 (diffusers' enumerate index over the timesteps it
 * runs), total is their number; the step's index into
 * ldm_sampler_timesteps() is ldm_sampler_begin() + i. */
typedef ldm_status (*ldm_step_hook)(void *user, int i, int total, float *x,
                                    ldm_error *err);

typedef struct ldm_sampler ldm_sampler;

ldm_status ldm_sampler_new(ldm_sampler **out, const ldm_sampler_config *c,
                           int64_t numel, ldm_error *err);
void ldm_sampler_free(ldm_sampler *s);

/* The scheduler's timesteps after set_timesteps (as the UNet gets them) and
 * its sigmas (VE sigmas incl. the final one; empty for DDIM/PNDM/LCM). */
int ldm_sampler_timestep_count(const ldm_sampler *s);
const float *ldm_sampler_timesteps(const ldm_sampler *s);
int ldm_sampler_sigma_count(const ldm_sampler *s);
const float *ldm_sampler_sigmas(const ldm_sampler *s);
const float *ldm_sampler_alphas_cumprod(const ldm_sampler *s); /* [T] */
/* diffusers' scheduler.init_noise_sigma (txt2img: x = noise * this). */
float ldm_sampler_init_noise_sigma(const ldm_sampler *s);

/* img2img start as diffusers' get_timesteps(steps, strength): skips the first
 * (steps - int(steps * strength)) steps; strength 1 runs everything. */
void ldm_sampler_set_strength(ldm_sampler *s, float strength);
/* Index of the first timestep that ldm_sampler_run will use. */
int ldm_sampler_begin(const ldm_sampler *s);
/* scheduler.add_noise(x0, noise, timesteps[idx]) -> out (numel floats):
 * out = a * x0 + b * noise with (a, b) from ldm_sampler_noise_coeffs;
 * idx == timestep count means "fully denoised" (a = 1, b = 0). */
void ldm_sampler_noise_coeffs(const ldm_sampler *s, int idx, double *a,
                              double *b);
void ldm_sampler_add_noise(const ldm_sampler *s, int idx, const float *x0,
                           const float *noise, float *out);

/* Runs the loop from ldm_sampler_begin() to the end on x (in place).
 * Ancestral/SDE step noise is drawn from rngs: x is n_rngs equal parts and
 * part b draws from rngs[b] (diffusers with a list of generators), one
 * draw per part per step, in the reference's order. hook may be NULL. */
ldm_status ldm_sampler_run(ldm_sampler *s, float *x, ldm_denoise_fn model,
                           void *model_user, ldm_rng_state *rngs, int n_rngs,
                           ldm_step_hook hook, void *hook_user,
                           ldm_error *err);

/* ---- guidance and blending helpers --------------------------------------- */

/* Whether the uncond batch must be evaluated (scale != 1). */
bool ldm_cfg_needs_uncond(float scale);
/* out = uncond + scale * (cond - uncond), then when rescale > 0 diffusers'
 * rescale_noise_cfg: out = phi * out * std(cond)/std(out) + (1-phi) * out,
 * with std over each of the B images (unbiased). n = numel of one half
 * (B images). out may alias uncond or cond. */
void ldm_cfg_combine(float *out, const float *uncond, const float *cond,
                     int64_t n, int batch, float scale, float rescale);
/* StableDiffusionInpaintPipeline with a 4-channel UNet, after the step at
 * timestep index i (= ldm_sampler_begin() + the hook's i):
 * x = (1 - mask) * add_noise(x0, noise, timesteps[i + 1]) + mask * x
 * (x0 itself after the last step). mask has numel entries (1 = repaint). */
void ldm_inpaint_blend(const ldm_sampler *s, int i, float *x, const float *x0,
                       const float *noise, const float *mask);

/* Sampler kind of a preset name (ours or A1111's display name), or -1. */
int ldm_sampler_kind_from_name(const char *name);
/* A1111's display name for a sampler ("DPM++ 2M Karras"), or NULL; for
 * the infotext the CLI writes. */
const char *ldm_sampler_a1111_name(const char *name);

#endif
