/* The sampling loops, each the loop StableDiffusionPipeline runs with one
 * diffusers scheduler (scale_model_input, UNet, scheduler.step) or one
 * k-diffusion sampling function, step for step: Euler, Euler ancestral, Heun,
 * LMS, PNDM/PLMS, DPM-Solver++ 2M (+SDE), DDIM, LCM, UniPC-bh2; and the
 * k-diffusion functions A1111 runs (sample_euler, _euler_ancestral, _heun,
 * _lms, _dpmpp_2m, _dpmpp_2s_ancestral). Per-step coefficients are computed
 * in double; latents stay float32. Buffers come from ldm_sampler_new only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "sample/sampler_impl.h"

/* The reference rounds every multiply and add separately (torch's elementwise
 * kernels); contraction into FMA would move ill-conditioned cases (sigma 4096
 * with zero-terminal SNR) past the golden tolerance, so it is off here
 * whatever the build's -std or -march. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- the name table --------------------------------------------------------- */

typedef struct sampler_entry {
  const char *name;       /* our name (ComfyUI's spelling) */
  const char *a1111;      /* the name AUTOMATIC1111 shows (also accepted) */
  ldm_sampler_kind kind;
  ldm_sigma_schedule sigmas;
  const char *reference;
  bool kdiffusion;        /* k-diffusion sampling function, as A1111 runs it */
} sampler_entry;

/* the reference string also names A1111's sampler, for `ldm samplers` */
#define E(name, a1111, kind, sigmas, ref) \
  {name, a1111, kind, sigmas, ref " [A1111 label: " a1111 "]", false}
/* k-diffusion variants: A1111's own samplers (its labels resolve to these) */
#define KD(name, a1111, kind, sigmas, ref) \
  {name, a1111, kind, sigmas, ref " [as A1111's " a1111 "]", true}
static const sampler_entry k_samplers[] = {
  E("euler", "Euler", LDM_SAMPLER_EULER, LDM_SIGMAS_DEFAULT,
   "diffusers EulerDiscreteScheduler"),
  E("euler_a", "Euler a", LDM_SAMPLER_EULER_A, LDM_SIGMAS_DEFAULT,
   "diffusers EulerAncestralDiscreteScheduler"),
  E("heun", "Heun", LDM_SAMPLER_HEUN, LDM_SIGMAS_DEFAULT,
   "diffusers HeunDiscreteScheduler"),
  E("lms", "LMS", LDM_SAMPLER_LMS, LDM_SIGMAS_DEFAULT,
   "diffusers LMSDiscreteScheduler"),
  E("lms_karras", "LMS Karras", LDM_SAMPLER_LMS, LDM_SIGMAS_KARRAS,
   "diffusers LMSDiscreteScheduler(use_karras_sigmas=True)"),
  E("pndm", "PLMS", LDM_SAMPLER_PNDM, LDM_SIGMAS_DEFAULT,
   "diffusers PNDMScheduler(skip_prk_steps=True) (SD1.x default)"),
  E("dpmpp_2m", "DPM++ 2M", LDM_SAMPLER_DPMPP_2M, LDM_SIGMAS_DEFAULT,
   "diffusers DPMSolverMultistepScheduler"),
  E("dpmpp_2m_karras", "DPM++ 2M Karras", LDM_SAMPLER_DPMPP_2M, LDM_SIGMAS_KARRAS,
   "diffusers DPMSolverMultistepScheduler(use_karras_sigmas=True)"),
  E("dpmpp_2m_sde", "DPM++ 2M SDE", LDM_SAMPLER_DPMPP_2M_SDE, LDM_SIGMAS_DEFAULT,
   "diffusers DPMSolverMultistepScheduler(algorithm_type='sde-dpmsolver++')"),
  E("dpmpp_2m_sde_karras", "DPM++ 2M SDE Karras", LDM_SAMPLER_DPMPP_2M_SDE,
   LDM_SIGMAS_KARRAS,
   "diffusers DPMSolverMultistepScheduler(algorithm_type='sde-dpmsolver++', "
   "use_karras_sigmas=True)"),
  KD("dpmpp_2s_a", "DPM++ 2S a", LDM_SAMPLER_DPMPP_2S_A, LDM_SIGMAS_DEFAULT,
   "k-diffusion sample_dpmpp_2s_ancestral, DiscreteEpsDDPMDenoiser.get_sigmas"),
  KD("dpmpp_2s_a_karras", "DPM++ 2S a Karras", LDM_SAMPLER_DPMPP_2S_A,
   LDM_SIGMAS_KARRAS, "k-diffusion sample_dpmpp_2s_ancestral, get_sigmas_karras"),
  E("ddim", "DDIM", LDM_SAMPLER_DDIM, LDM_SIGMAS_DEFAULT,
   "diffusers DDIMScheduler (eta from the job, default 0)"),
  E("lcm", "LCM", LDM_SAMPLER_LCM, LDM_SIGMAS_DEFAULT, "diffusers LCMScheduler"),
  E("unipc", "UniPC", LDM_SAMPLER_UNIPC, LDM_SIGMAS_DEFAULT,
   "diffusers UniPCMultistepScheduler (bh2, order 2)"),
  KD("k_euler", "Euler", LDM_SAMPLER_EULER, LDM_SIGMAS_DEFAULT,
     "k-diffusion sample_euler, get_sigmas"),
  KD("k_euler_a", "Euler a", LDM_SAMPLER_EULER_A, LDM_SIGMAS_DEFAULT,
     "k-diffusion sample_euler_ancestral, get_sigmas"),
  KD("k_heun", "Heun", LDM_SAMPLER_HEUN, LDM_SIGMAS_DEFAULT,
     "k-diffusion sample_heun, get_sigmas"),
  KD("k_lms", "LMS", LDM_SAMPLER_LMS, LDM_SIGMAS_DEFAULT,
     "k-diffusion sample_lms, get_sigmas"),
  KD("k_lms_karras", "LMS Karras", LDM_SAMPLER_LMS, LDM_SIGMAS_KARRAS,
     "k-diffusion sample_lms, get_sigmas_karras"),
  KD("k_dpmpp_2m", "DPM++ 2M", LDM_SAMPLER_DPMPP_2M, LDM_SIGMAS_DEFAULT,
     "k-diffusion sample_dpmpp_2m, get_sigmas"),
  KD("k_dpmpp_2m_karras", "DPM++ 2M Karras", LDM_SAMPLER_DPMPP_2M, LDM_SIGMAS_KARRAS,
     "k-diffusion sample_dpmpp_2m, get_sigmas_karras"),
};
#undef E
#undef KD
enum { N_SAMPLERS = sizeof k_samplers / sizeof k_samplers[0] };

/* Kept in the table's order; test_sample_unit checks that every listed
 * name resolves and that the counts agree. */
static const char *const k_sampler_names[] = {
  "euler", "euler_a", "heun", "lms", "lms_karras", "pndm", "dpmpp_2m",
  "dpmpp_2m_karras", "dpmpp_2m_sde", "dpmpp_2m_sde_karras", "dpmpp_2s_a",
  "dpmpp_2s_a_karras", "ddim", "lcm", "unipc", "k_euler", "k_euler_a", "k_heun",
  "k_lms", "k_lms_karras", "k_dpmpp_2m", "k_dpmpp_2m_karras", NULL};
_Static_assert(sizeof k_sampler_names / sizeof k_sampler_names[0] == N_SAMPLERS + 1,
               "k_sampler_names must list every k_samplers row");

const char *const *ldm_sampler_names(void) { return k_sampler_names; }

static bool same_ci(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char ca = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
    char cb = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
    if (ca != cb) return false;
  }
  return *a == *b;
}

/* our name, or A1111's display name in any case ("DPM++ 2M Karras"); a
 * label resolves to the k-diffusion row when there is one (what A1111 runs) */
static const sampler_entry *find_entry(const char *name) {
  for (int i = 0; name && i < N_SAMPLERS; i++)
    if (strcmp(k_samplers[i].name, name) == 0) return &k_samplers[i];
  const sampler_entry *hit = NULL;
  for (int i = 0; name && i < N_SAMPLERS; i++)
    if (same_ci(k_samplers[i].a1111, name) && (!hit || k_samplers[i].kdiffusion))
      hit = &k_samplers[i];
  return hit;
}

const char *ldm_sampler_a1111_name(const char *name) {
  const sampler_entry *e = find_entry(name);
  return e ? e->a1111 : NULL;
}

const char *ldm_sampler_reference(const char *name) {
  const sampler_entry *e = find_entry(name);
  return e ? e->reference : NULL;
}

int ldm_sampler_kind_from_name(const char *name) {
  const sampler_entry *e = find_entry(name);
  return e ? (int)e->kind : -1;
}

ldm_status ldm_sampler_config_preset(ldm_sampler_config *c, const char *name,
                                     ldm_error *err) {
  const sampler_entry *e = find_entry(name);
  if (!e)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "unknown sampler '%s' (see `ldm samplers`)", name ? name : "(null)");
  memset(c, 0, sizeof *c);
  c->kind = e->kind;
  c->sigmas = e->sigmas;
  c->kdiffusion = e->kdiffusion || e->kind == LDM_SAMPLER_DPMPP_2S_A;
  c->steps = 20;
  /* the SD1.x scheduler_config.json (runwayml/stable-diffusion-v1-5) */
  c->num_train_timesteps = 1000;
  c->beta_start = 0.00085;
  c->beta_end = 0.012;
  c->beta_schedule = LDM_BETAS_SCALED_LINEAR;
  c->steps_offset = 1;
  c->set_alpha_to_one = false;
  c->prediction = LDM_PRED_EPS;
  /* timestep_spacing: not in that file, so each class's default */
  switch (e->kind) {
    case LDM_SAMPLER_PNDM:
    case LDM_SAMPLER_DDIM:
    case LDM_SAMPLER_LCM: c->spacing = LDM_SPACING_LEADING; break;
    default: c->spacing = LDM_SPACING_LINSPACE; break;
  }
  c->eta = e->kind == LDM_SAMPLER_DPMPP_2S_A ? 1.0f : 0.0f;
  c->original_inference_steps = 50;
  c->timestep_scaling = 10.0f;
  return LDM_OK;
}

/* ---- construction ------------------------------------------------------------ */

static sched_family family_of(ldm_sampler_kind k, bool kdiffusion) {
  if (kdiffusion && (k == LDM_SAMPLER_EULER || k == LDM_SAMPLER_EULER_A ||
                     k == LDM_SAMPLER_HEUN || k == LDM_SAMPLER_LMS ||
                     k == LDM_SAMPLER_DPMPP_2M))
    return FAM_KSAMPLING;
  switch (k) {
    case LDM_SAMPLER_EULER:
    case LDM_SAMPLER_EULER_A:
    case LDM_SAMPLER_HEUN:
    case LDM_SAMPLER_LMS: return FAM_KDIFF;
    case LDM_SAMPLER_DPMPP_2M:
    case LDM_SAMPLER_DPMPP_2M_SDE:
    case LDM_SAMPLER_UNIPC: return FAM_DPM;
    case LDM_SAMPLER_DPMPP_2S_A: return FAM_KSAMPLING;
    default: return FAM_DDPM;
  }
}

void ldm_sampler_free(ldm_sampler *s) {
  if (!s) return;
  free(s->acp);
  free(s->log_sigmas);
  free(s->ts);
  free(s->sig);
  free(s->tmp);
  for (int i = 0; i < SAMPLER_BUFS; i++) free(s->buf[i]);
  free(s);
}

ldm_status ldm_sampler_new(ldm_sampler **out, const ldm_sampler_config *c,
                           int64_t numel, ldm_error *err) {
  *out = NULL;
  if ((unsigned)c->kind >= LDM_SAMPLER_COUNT)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "sampler: unknown kind %d", (int)c->kind);
  if (c->steps < 1 || c->steps > 10000)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "sampler: steps %d out of range 1..10000",
                    c->steps);
  if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000 ||
      c->steps > c->num_train_timesteps)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "sampler: num_train_timesteps %d invalid for %d steps",
                    c->num_train_timesteps, c->steps);
  if (numel <= 0)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "sampler: numel %lld", (long long)numel);
  if (!(c->beta_start > 0 && c->beta_end > 0 && c->beta_end < 1))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "sampler: betas (%g, %g) invalid",
                    c->beta_start, c->beta_end);
  sched_family fam = family_of(c->kind, c->kdiffusion);
  if (c->kdiffusion && fam != FAM_KSAMPLING)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                    "sampler: no k-diffusion variant of this sampler");
  if (c->rescale_zero_terminal_snr &&
      (c->kind == LDM_SAMPLER_HEUN || c->kind == LDM_SAMPLER_LMS ||
       c->kind == LDM_SAMPLER_PNDM || fam == FAM_KSAMPLING))
    return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                    "sampler: zero-terminal-SNR rescale is not offered by this "
                    "sampler's reference; use euler, euler_a, dpmpp_2m, unipc, ddim or lcm");
  if (c->sigmas != LDM_SIGMAS_DEFAULT && fam == FAM_DDPM)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                    "sampler: DDIM/PNDM/LCM use default sigmas only");
  if (c->kind == LDM_SAMPLER_EULER_A && fam == FAM_KDIFF &&
      c->sigmas != LDM_SIGMAS_DEFAULT && c->sigmas != LDM_SIGMAS_SGM_UNIFORM)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "sampler: euler_a takes default sigmas only");

  ldm_sampler *s = calloc(1, sizeof *s);
  if (!s) return ldm_fail(err, LDM_ERR_NOMEM, "sampler: out of memory");
  s->c = *c;
  s->fam = fam;
  s->n = numel;
  s->T = c->num_train_timesteps;
  size_t nbytes;
  int cap = 2 * c->steps + 4;
  bool ok = ldm_mul_size((size_t)numel, sizeof(float), &nbytes);
  s->acp = malloc((size_t)s->T * sizeof(float));
  s->log_sigmas = malloc((size_t)s->T * sizeof(float));
  s->ts = calloc((size_t)cap, sizeof(float));
  s->sig = calloc((size_t)cap, sizeof(float));
  s->tmp = calloc((size_t)(2 * s->T + 3 * (c->steps + 2)), sizeof(double));
  ok = ok && s->acp && s->log_sigmas && s->ts && s->sig && s->tmp;
  for (int i = 0; ok && i < SAMPLER_BUFS; i++) ok = (s->buf[i] = malloc(nbytes)) != NULL;
  if (!ok) {
    ldm_sampler_free(s);
    return ldm_fail(err, LDM_ERR_NOMEM, "sampler: cannot allocate buffers for %lld floats",
                    (long long)numel);
  }
  ldm_status st = ldm_schedule_build(s, err);
  free(s->tmp);
  s->tmp = NULL;
  if (st != LDM_OK) {
    ldm_sampler_free(s);
    return st;
  }
  if (s->nt < 1) {
    ldm_sampler_free(s);
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "sampler: empty schedule for %d steps",
                    c->steps);
  }
  *out = s;
  return LDM_OK;
}

int ldm_sampler_timestep_count(const ldm_sampler *s) { return s->nt; }
const float *ldm_sampler_timesteps(const ldm_sampler *s) { return s->ts; }
int ldm_sampler_sigma_count(const ldm_sampler *s) { return s->ns; }
const float *ldm_sampler_sigmas(const ldm_sampler *s) { return s->sig; }
const float *ldm_sampler_alphas_cumprod(const ldm_sampler *s) { return s->acp; }
float ldm_sampler_init_noise_sigma(const ldm_sampler *s) { return s->init_sigma; }
int ldm_sampler_begin(const ldm_sampler *s) { return s->begin; }

void ldm_sampler_set_strength(ldm_sampler *s, float strength) {
  int steps = s->c.steps;
  /* the user's decimal value, as Python's float would hold it */
  double st = nearbyint((double)strength * 1e6) / 1e6;
  if (st < 0) st = 0;
  if (s->fam == FAM_KSAMPLING) {
    /* A1111 setup_img2img_steps (img2img_fix_steps off) */
    if (st >= 1.0) {
      s->begin = 0;
      return;
    }
    int t_enc = (int)((st < 0.999 ? st : 0.999) * steps);
    int b = steps - t_enc - 1;
    s->begin = b < 0 ? 0 : b > s->nt ? s->nt : b;
    return;
  }
  int init = (int)(steps * st);
  if (init > steps) init = steps;
  int t_start = steps - init > 0 ? steps - init : 0;
  int order = s->c.kind == LDM_SAMPLER_HEUN ? 2 : 1;
  s->begin = t_start * order;
  if (s->begin > s->nt) s->begin = s->nt;
}

void ldm_sampler_noise_coeffs(const ldm_sampler *s, int idx, double *a,
                              double *b) {
  *a = 1.0;
  *b = 0.0;
  if (idx < 0 || idx >= s->nt) return;
  switch (s->fam) {
    case FAM_KDIFF:
    case FAM_KSAMPLING: *b = s->sig[idx]; break;
    case FAM_DPM: {
      float sg = s->sig[idx];
      float al = 1.0f / sqrtf(sg * sg + 1.0f);
      *a = al;
      *b = sg * al;
      break;
    }
    case FAM_DDPM: {
      float acp = s->acp[(int)s->ts[idx]];
      *a = sqrtf(acp);
      *b = sqrtf(1.0f - acp);
      break;
    }
  }
}

void ldm_sampler_add_noise(const ldm_sampler *s, int idx, const float *x0,
                           const float *noise, float *out) {
  double a, b;
  ldm_sampler_noise_coeffs(s, idx, &a, &b);
  float af = (float)a, bf = (float)b;
  for (int64_t i = 0; i < s->n; i++) out[i] = af * x0[i] + noise[i] * bf;
}

/* ---- loop plumbing ------------------------------------------------------------ */

typedef struct run_ctx {
  ldm_sampler *s;
  ldm_denoise_fn model;
  void *model_user;
  ldm_rng_state *rngs;
  int n_rngs;
  ldm_step_hook hook;
  void *hook_user;
  ldm_error *err;
} run_ctx;

/* One draw of step noise per image generator, as randn_tensor does. */
static void draw_noise(run_ctx *r, float *out) {
  int64_t part = r->s->n / r->n_rngs;
  for (int b = 0; b < r->n_rngs; b++) ldm_rng_randn(&r->rngs[b], out + b * part, part);
}

/* The UNet call with scale_model_input: x / sqrt(sigma^2 + 1) (sigma > 0)
 * or x unchanged (sigma < 0). */
static ldm_status call_model(run_ctx *r, const float *x, float sigma, float t,
                             float *xin_buf, float *out) {
  const float *xin = x;
  if (sigma >= 0) {
    float d = sqrtf(sigma * sigma + 1.0f);
    for (int64_t i = 0; i < r->s->n; i++) xin_buf[i] = x[i] / d;
    xin = xin_buf;
  }
  return r->model(r->model_user, xin, t, out, r->err);
}

static ldm_status after_step(run_ctx *r, int i, float *x) {
  if (!r->hook) return LDM_OK;
  return r->hook(r->hook_user, i - r->s->begin, r->s->nt - r->s->begin, x, r->err);
}

/* pred_original_sample of the VE (k-diffusion style) schedulers */
static void ve_x0(ldm_pred p, const float *x, const float *m, float sigma,
                  float *x0, int64_t n) {
  if (p == LDM_PRED_EPS) {
    for (int64_t i = 0; i < n; i++) x0[i] = x[i] - sigma * m[i];
  } else if (p == LDM_PRED_VPRED) {
    float c_out = -sigma / sqrtf(sigma * sigma + 1.0f);
    float c_skip = 1.0f / (sigma * sigma + 1.0f);
    for (int64_t i = 0; i < n; i++) x0[i] = m[i] * c_out + x[i] * c_skip;
  } else {
    memcpy(x0, m, (size_t)n * sizeof(float));
  }
}

/* ---- Euler / Euler a (EulerDiscreteScheduler, EulerAncestralDiscrete) ---------- */

static ldm_status run_euler(run_ctx *r, float *x, bool ancestral) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *xin = s->buf[1], *x0 = s->buf[2], *noise = s->buf[3];
  for (int i = s->begin; i < s->nt; i++) {
    float sigma = s->sig[i], sn = s->sig[i + 1];
    LDM_TRY(call_model(r, x, sigma, s->ts[i], xin, m));
    ve_x0(s->c.prediction, x, m, sigma, x0, n);
    if (!ancestral) {
      float dt = sn - sigma;
      for (int64_t k = 0; k < n; k++) x[k] = x[k] + (x[k] - x0[k]) / sigma * dt;
    } else {
      double sf = sigma, st = sn;
      float up = (float)sqrt(st * st * (sf * sf - st * st) / (sf * sf));
      float down = (float)sqrt(st * st - (double)up * up);
      float dt = down - sigma;
      draw_noise(r, noise);
      for (int64_t k = 0; k < n; k++)
        x[k] = x[k] + (x[k] - x0[k]) / sigma * dt + noise[k] * up;
    }
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- Heun (HeunDiscreteScheduler: interleaved timesteps) ------------------------ */

static ldm_status run_heun(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *xin = s->buf[1], *x0 = s->buf[2], *d1 = s->buf[3],
        *xs = s->buf[4];
  bool first = true;
  float dt = 0;
  for (int i = s->begin; i < s->nt; i++) {
    LDM_TRY(call_model(r, x, s->sig[i], s->ts[i], xin, m));
    if (first) {
      float sigma = s->sig[i], sn = s->sig[i + 1];
      ve_x0(s->c.prediction, x, m, sigma, x0, n);
      dt = sn - sigma;
      for (int64_t k = 0; k < n; k++) {
        d1[k] = (x[k] - x0[k]) / sigma;
        xs[k] = x[k];
        x[k] = x[k] + d1[k] * dt;
      }
      first = false;
    } else {
      float sn = s->sig[i];
      ve_x0(s->c.prediction, x, m, sn, x0, n);
      for (int64_t k = 0; k < n; k++) {
        float d2 = (x[k] - x0[k]) / sn;
        float d = (d1[k] + d2) / 2;
        x[k] = xs[k] + d * dt;
      }
      first = true;
    }
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- LMS (LMSDiscreteScheduler, order 4) ----------------------------------------- */

/* integral over [sig[t], sig[t+1]] of the Lagrange basis polynomial of
 * node t - cur among nodes t, t-1, .., t-order+1 (degree <= 3, so the
 * 4-point Gauss-Legendre rule is exact, as scipy's quad is to rounding) */
static double lms_coeff(const float *sig, int order, int t, int cur) {
  static const double gx[4] = {-0.8611363115940526, -0.3399810435848563,
                               0.3399810435848563, 0.8611363115940526};
  static const double gw[4] = {0.3478548451374538, 0.6521451548625461,
                               0.6521451548625461, 0.3478548451374538};
  double a = sig[t], b = sig[t + 1];
  double sum = 0;
  for (int q = 0; q < 4; q++) {
    double tau = (a + b) / 2 + (b - a) / 2 * gx[q];
    double prod = 1.0;
    for (int k = 0; k < order; k++) {
      if (k == cur) continue;
      prod *= (tau - sig[t - k]) / ((double)sig[t - cur] - sig[t - k]);
    }
    sum += gw[q] * prod;
  }
  return sum * (b - a) / 2;
}

static ldm_status run_lms(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *xin = s->buf[1];
  float *ring[4] = {s->buf[2], s->buf[3], s->buf[4], s->buf[5]};
  int nd = 0, head = 0; /* derivatives held; ring[head - 1] newest */
  for (int i = s->begin; i < s->nt; i++) {
    float sigma = s->sig[i];
    LDM_TRY(call_model(r, x, sigma, s->ts[i], xin, m));
    float *d = ring[head];
    ve_x0(s->c.prediction, x, m, sigma, d, n);
    for (int64_t k = 0; k < n; k++) d[k] = (x[k] - d[k]) / sigma;
    head = (head + 1) % 4;
    if (nd < 4) nd++;
    int order = i + 1 < 4 ? i + 1 : 4;
    int terms = order < nd ? order : nd;
    for (int j = 0; j < terms; j++) {
      float cf = (float)lms_coeff(s->sig, order, i, j);
      const float *dj = ring[(head - 1 - j + 8) % 4];
      for (int64_t k = 0; k < n; k++) x[k] += cf * dj[k];
    }
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- DDPM-family helpers ----------------------------------------------------------- */

static double acp_at(const ldm_sampler *s, int t) {
  return t >= 0 ? (double)s->acp[t] : s->final_acp;
}

/* x0 and epsilon from a model output on the VP sample (DDIM/LCM style) */
static void vp_x0_eps(ldm_pred p, const float *x, const float *m, double a_t,
                      float *x0, float *eps, int64_t n) {
  float sa = (float)sqrt(a_t), sb = (float)sqrt(1 - a_t);
  for (int64_t i = 0; i < n; i++) {
    float xo, e;
    if (p == LDM_PRED_EPS) {
      xo = (x[i] - sb * m[i]) / sa;
      e = m[i];
    } else if (p == LDM_PRED_X0) {
      xo = m[i];
      e = (x[i] - sa * xo) / sb;
    } else {
      xo = sa * x[i] - sb * m[i];
      e = sa * m[i] + sb * x[i];
    }
    x0[i] = xo;
    if (eps) eps[i] = e;
  }
}

/* ---- DDIM ------------------------------------------------------------------------ */

static ldm_status run_ddim(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *x0 = s->buf[1], *eps = s->buf[2], *noise = s->buf[3];
  int ratio = s->T / s->c.steps;
  for (int i = s->begin; i < s->nt; i++) {
    int t = (int)s->ts[i], tp = t - ratio;
    LDM_TRY(call_model(r, x, -1, (float)t, NULL, m));
    double a_t = acp_at(s, t), a_p = acp_at(s, tp);
    vp_x0_eps(s->c.prediction, x, m, a_t, x0, eps, n);
    double var = ((1 - a_p) / (1 - a_t)) * (1 - a_t / a_p);
    double std = s->c.eta * sqrt(var);
    float cd = (float)sqrt(1 - a_p - std * std), cx = (float)sqrt(a_p);
    for (int64_t k = 0; k < n; k++) x[k] = cx * x0[k] + cd * eps[k];
    if (s->c.eta > 0) {
      draw_noise(r, noise);
      float sd = (float)std;
      for (int64_t k = 0; k < n; k++) x[k] += sd * noise[k];
    }
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- PNDM (PLMS, skip_prk_steps) --------------------------------------------------- */

static ldm_status run_pndm(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *cur = s->buf[1];
  float *ring[4] = {s->buf[2], s->buf[3], s->buf[4], s->buf[5]};
  int nets = 0, head = 0, counter = 0;
  int ratio = s->T / s->c.steps;
  float *mo = m; /* combined model output, written in place over m */
  for (int i = s->begin; i < s->nt; i++) {
    int t = (int)s->ts[i];
    LDM_TRY(call_model(r, x, -1, (float)t, NULL, m));
    int tp = t - ratio;
    if (counter != 1) {
      memcpy(ring[head], m, (size_t)n * sizeof(float));
      head = (head + 1) % 4;
      if (nets < 4) nets++;
    } else {
      tp = t;
      t = t + ratio;
    }
#define ET(j) ring[(head - (j) + 8) % 4] /* ets[-j] */
    const float *sample = x;
    if (nets == 1 && counter == 0) {
      memcpy(cur, x, (size_t)n * sizeof(float));
    } else if (nets == 1 && counter == 1) {
      for (int64_t k = 0; k < n; k++) mo[k] = (m[k] + ET(1)[k]) / 2;
      sample = cur;
    } else if (nets == 2) {
      for (int64_t k = 0; k < n; k++) mo[k] = (3 * ET(1)[k] - ET(2)[k]) / 2;
    } else if (nets == 3) {
      for (int64_t k = 0; k < n; k++)
        mo[k] = (23 * ET(1)[k] - 16 * ET(2)[k] + 5 * ET(3)[k]) / 12;
    } else {
      for (int64_t k = 0; k < n; k++)
        mo[k] = (1.0f / 24) *
                (55 * ET(1)[k] - 59 * ET(2)[k] + 37 * ET(3)[k] - 9 * ET(4)[k]);
    }
#undef ET
    double a_t = acp_at(s, t), a_p = acp_at(s, tp);
    double b_t = 1 - a_t, b_p = 1 - a_p;
    if (s->c.prediction == LDM_PRED_VPRED) {
      float ca = (float)sqrt(a_t), cb = (float)sqrt(b_t);
      for (int64_t k = 0; k < n; k++) mo[k] = ca * mo[k] + cb * sample[k];
    }
    float sc = (float)sqrt(a_p / a_t);
    float md = (float)((a_p - a_t) / (a_t * sqrt(b_p) + sqrt(a_t * b_t * a_p)));
    for (int64_t k = 0; k < n; k++) x[k] = sc * sample[k] - md * mo[k];
    counter++;
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- LCM --------------------------------------------------------------------------- */

static ldm_status run_lcm(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *x0 = s->buf[1], *noise = s->buf[2];
  for (int i = s->begin; i < s->nt; i++) {
    int t = (int)s->ts[i];
    int tp = i + 1 < s->nt ? (int)s->ts[i + 1] : t;
    LDM_TRY(call_model(r, x, -1, (float)t, NULL, m));
    double a_t = acp_at(s, t), a_p = acp_at(s, tp);
    double st = (double)t * s->c.timestep_scaling;
    float c_skip = (float)(0.25 / (st * st + 0.25));
    float c_out = (float)(st / sqrt(st * st + 0.25));
    vp_x0_eps(s->c.prediction, x, m, a_t, x0, NULL, n);
    for (int64_t k = 0; k < n; k++) x0[k] = c_out * x0[k] + c_skip * x[k];
    if (i != s->c.steps - 1) {
      draw_noise(r, noise);
      float ca = (float)sqrt(a_p), cb = (float)sqrt(1 - a_p);
      for (int64_t k = 0; k < n; k++) x[k] = ca * x0[k] + cb * noise[k];
    } else {
      memcpy(x, x0, (size_t)n * sizeof(float));
    }
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- DPM-Solver++ 2M (+SDE) and UniPC on VP samples ------------------------------- */

static void vp_of_sigma(double sigma, double *alpha, double *sig_t, double *lambda) {
  double a = 1.0 / sqrt(sigma * sigma + 1.0);
  *alpha = a;
  *sig_t = sigma * a;
  *lambda = log(a) - log(sigma * a);
}

/* convert_model_output for the data-prediction (x0) solvers */
static void dpm_x0(ldm_pred p, const float *x, const float *m, double sigma,
                   float *x0, int64_t n) {
  double al, st, lam;
  vp_of_sigma(sigma, &al, &st, &lam);
  float a = (float)al, sg = (float)st;
  for (int64_t i = 0; i < n; i++) {
    if (p == LDM_PRED_EPS) x0[i] = (x[i] - sg * m[i]) / a;
    else if (p == LDM_PRED_VPRED) x0[i] = a * x[i] - sg * m[i];
    else x0[i] = m[i];
  }
}

static ldm_status run_dpmpp_2m(run_ctx *r, float *x, bool sde) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *m0 = s->buf[1], *m1 = s->buf[2], *noise = s->buf[3];
  int lower = 0;
  int nt = s->nt;
  for (int i = s->begin; i < nt; i++) {
    LDM_TRY(call_model(r, x, -1, s->ts[i], NULL, m));
    bool low_final = i == nt - 1; /* final_sigmas_type "zero" */
    /* model_outputs shift: m1 <- m0, m0 <- x0(m) */
    float *t = m1;
    m1 = m0;
    m0 = t;
    dpm_x0(s->c.prediction, x, m, s->sig[i], m0, n);
    if (sde) draw_noise(r, noise);
    double at, st, lt, as0, ss0, ls0;
    vp_of_sigma(s->sig[i + 1], &at, &st, &lt);
    vp_of_sigma(s->sig[i], &as0, &ss0, &ls0);
    double h = lt - ls0;
    if (lower < 1 || low_final) {
      if (!sde) {
        float cx = (float)(st / ss0), cd = (float)(at * (exp(-h) - 1.0));
        for (int64_t k = 0; k < n; k++) x[k] = cx * x[k] - cd * m0[k];
      } else {
        float cx = (float)(st / ss0 * exp(-h)), cd = (float)(at * (1 - exp(-2.0 * h)));
        float cn = (float)(st * sqrt(1.0 - exp(-2.0 * h)));
        for (int64_t k = 0; k < n; k++) x[k] = cx * x[k] + cd * m0[k] + cn * noise[k];
      }
    } else {
      double as1, ss1, ls1;
      vp_of_sigma(s->sig[i - 1], &as1, &ss1, &ls1);
      double h0 = ls0 - ls1, r0 = h0 / h;
      float inv_r0 = (float)(1.0 / r0);
      if (!sde) {
        float cx = (float)(st / ss0), cd = (float)(at * (exp(-h) - 1.0));
        float c1 = 0.5f * cd;
        for (int64_t k = 0; k < n; k++) {
          float d1 = inv_r0 * (m0[k] - m1[k]);
          x[k] = cx * x[k] - cd * m0[k] - c1 * d1;
        }
      } else {
        float cx = (float)(st / ss0 * exp(-h)), cd = (float)(at * (1 - exp(-2.0 * h)));
        float c1 = 0.5f * cd, cn = (float)(st * sqrt(1.0 - exp(-2.0 * h)));
        for (int64_t k = 0; k < n; k++) {
          float d1 = inv_r0 * (m0[k] - m1[k]);
          x[k] = cx * x[k] + cd * m0[k] + c1 * d1 + cn * noise[k];
        }
      }
    }
    if (lower < 2) lower++;
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* UniPC B(h) = expm1(hh) coefficient vector b_1..b_p (predict_x0) */
static void unipc_b(double hh, int p, double *b) {
  double h_phi_1 = expm1(hh), h_phi_k = h_phi_1 / hh - 1, fact = 1, bh = expm1(hh);
  for (int i = 1; i <= p; i++) {
    b[i - 1] = h_phi_k * fact / bh;
    fact *= i + 1;
    h_phi_k = h_phi_k / hh - 1 / fact;
  }
}

static ldm_status run_unipc(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *mlast = s->buf[1], *mprev = s->buf[2], *last = s->buf[3],
        *mc = s->buf[4];
  int lower = 0, this_order = 1, nt = s->nt;
  bool have_last = false;
  for (int i = s->begin; i < nt; i++) {
    LDM_TRY(call_model(r, x, -1, s->ts[i], NULL, m));
    dpm_x0(s->c.prediction, x, m, s->sig[i], mc, n);
    if (i > 0 && have_last) {
      /* UniC: correct x (predicted at the last step from `last`) */
      double at, st, lt, as0, ss0, ls0;
      vp_of_sigma(s->sig[i], &at, &st, &lt);
      vp_of_sigma(s->sig[i - 1], &as0, &ss0, &ls0);
      double h = lt - ls0, hh = -h;
      double h_phi_1 = expm1(hh), bh = expm1(hh);
      float cx = (float)(st / ss0), cm = (float)(at * h_phi_1), cb = (float)(at * bh);
      if (this_order == 1) {
        for (int64_t k = 0; k < n; k++)
          x[k] = (cx * last[k] - cm * mlast[k]) - cb * (0.5f * (mc[k] - mlast[k]));
      } else {
        double a1, s1, l1, b[2];
        vp_of_sigma(s->sig[i - 2], &a1, &s1, &l1);
        double rk = (l1 - ls0) / h;
        unipc_b(hh, 2, b);
        /* solve [[1, 1], [rk, 1]] rho = b */
        double rho0 = (b[0] - b[1]) / (1 - rk), rho1 = b[0] - rho0;
        float fr0 = (float)rho0, fr1 = (float)rho1, frk = (float)rk;
        for (int64_t k = 0; k < n; k++) {
          float d1 = (mprev[k] - mlast[k]) / frk;
          float corr = fr0 * d1;
          x[k] = (cx * last[k] - cm * mlast[k]) - cb * (corr + fr1 * (mc[k] - mlast[k]));
        }
      }
    }
    /* model_outputs shift */
    float *t = mprev;
    mprev = mlast;
    mlast = mc;
    mc = t;
    int order = 2 < nt - i ? 2 : nt - i; /* lower_order_final */
    this_order = order < lower + 1 ? order : lower + 1;
    memcpy(last, x, (size_t)n * sizeof(float));
    have_last = true;
    /* UniP */
    double at, st, lt, as0, ss0, ls0;
    vp_of_sigma(s->sig[i + 1], &at, &st, &lt);
    vp_of_sigma(s->sig[i], &as0, &ss0, &ls0);
    double h = lt - ls0, hh = -h;
    double h_phi_1 = expm1(hh), bh = expm1(hh);
    float cx = (float)(st / ss0), cm = (float)(at * h_phi_1), cb = (float)(at * bh);
    if (this_order == 1) {
      for (int64_t k = 0; k < n; k++) x[k] = cx * x[k] - cm * mlast[k];
    } else {
      double a1, s1, l1;
      vp_of_sigma(s->sig[i - 1], &a1, &s1, &l1);
      float frk = (float)((l1 - ls0) / h);
      for (int64_t k = 0; k < n; k++) {
        float d1 = (mprev[k] - mlast[k]) / frk;
        x[k] = (cx * x[k] - cm * mlast[k]) - cb * (0.5f * d1);
      }
    }
    if (lower < 2) lower++;
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- DPM-Solver++ 2S ancestral (k-diffusion) ------------------------------------------ */

/* DiscreteEpsDDPMDenoiser / DiscreteVDDPMDenoiser forward -> denoised */
static ldm_status k_denoise(run_ctx *r, const float *x, double sigma, float *xin,
                            float *m, float *den) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float sg = (float)sigma;
  float c_in = 1.0f / sqrtf(sg * sg + 1.0f);
  for (int64_t i = 0; i < n; i++) xin[i] = x[i] * c_in;
  float t = (float)ldm_schedule_sigma_to_t(s, sg);
  LDM_TRY(r->model(r->model_user, xin, t, m, r->err));
  if (s->c.prediction == LDM_PRED_EPS) {
    for (int64_t i = 0; i < n; i++) den[i] = x[i] + m[i] * -sg;
  } else if (s->c.prediction == LDM_PRED_VPRED) {
    float c_skip = 1.0f / (sg * sg + 1.0f), c_out = -sg * c_in;
    for (int64_t i = 0; i < n; i++) den[i] = m[i] * c_out + x[i] * c_skip;
  } else {
    memcpy(den, m, (size_t)n * sizeof(float));
  }
  return LDM_OK;
}

static ldm_status run_dpmpp_2s_a(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *xin = s->buf[1], *den = s->buf[2], *x2 = s->buf[3],
        *noise = s->buf[4];
  double eta = s->c.eta;
  for (int i = s->begin; i < s->nt; i++) {
    double sf = s->sig[i], st = s->sig[i + 1];
    LDM_TRY(k_denoise(r, x, sf, xin, m, den));
    double up = 0, down = st;
    if (eta != 0) {
      up = eta * sqrt(st * st * (sf * sf - st * st) / (sf * sf));
      if (up > st) up = st;
      down = sqrt(st * st - up * up);
    }
    if (down == 0) {
      float dt = (float)(down - sf), fs = (float)sf;
      for (int64_t k = 0; k < n; k++) x[k] = x[k] + (x[k] - den[k]) / fs * dt;
    } else {
      double t = -log(sf), tn = -log(down), h = tn - t, sm = t + 0.5 * h;
      float c1 = (float)(exp(-sm) / exp(-t)), c2 = (float)expm1(-h * 0.5);
      for (int64_t k = 0; k < n; k++) x2[k] = c1 * x[k] - c2 * den[k];
      LDM_TRY(k_denoise(r, x2, exp(-sm), xin, m, den));
      float c3 = (float)(exp(-tn) / exp(-t)), c4 = (float)expm1(-h);
      for (int64_t k = 0; k < n; k++) x[k] = c3 * x[k] - c4 * den[k];
    }
    if (st > 0) {
      draw_noise(r, noise);
      float fu = (float)up;
      for (int64_t k = 0; k < n; k++) x[k] = x[k] + noise[k] * fu;
    }
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

/* ---- k-diffusion sample_euler / _euler_ancestral / _heun / _lms / _dpmpp_2m ---------- */

/* sample_euler(_ancestral) and sample_heun also draw randn_like(x) for
 * s_churn every step; with s_churn = 0 that draw never reaches x, and it
 * comes from torch's global generator, not A1111's, so it is not made. */
static ldm_status run_k(run_ctx *r, float *x) {
  ldm_sampler *s = r->s;
  int64_t n = s->n;
  float *m = s->buf[0], *xin = s->buf[1], *den = s->buf[2], *x2 = s->buf[3],
        *aux = s->buf[4], *noise = s->buf[5];
  ldm_sampler_kind kind = s->c.kind;
  float *ring[4] = {s->buf[2], s->buf[3], s->buf[4], s->buf[5]};
  int nd = 0, head = 0;
  bool have_old = false;
  for (int i = s->begin; i < s->nt; i++) {
    float si = s->sig[i], sn = s->sig[i + 1];
    if (kind == LDM_SAMPLER_LMS) {
      int rel = i - s->begin; /* k-diffusion sees the sliced sigmas */
      float *d = ring[head];
      LDM_TRY(k_denoise(r, x, si, xin, m, d));
      for (int64_t k = 0; k < n; k++) d[k] = (x[k] - d[k]) / si;
      head = (head + 1) % 4;
      if (nd < 4) nd++;
      int order = rel + 1 < 4 ? rel + 1 : 4;
      for (int j = 0; j < order; j++) {
        float cf = (float)lms_coeff(s->sig + s->begin, order, rel, j);
        const float *dj = ring[(head - 1 - j + 8) % 4];
        for (int64_t k = 0; k < n; k++) x[k] += cf * dj[k];
      }
      LDM_TRY(after_step(r, i, x));
      continue;
    }
    LDM_TRY(k_denoise(r, x, si, xin, m, den));
    if (kind == LDM_SAMPLER_EULER) {
      float dt = sn - si;
      for (int64_t k = 0; k < n; k++) x[k] = x[k] + (x[k] - den[k]) / si * dt;
    } else if (kind == LDM_SAMPLER_EULER_A) {
      double sf = si, st = sn;
      double up = sqrt(st * st * (sf * sf - st * st) / (sf * sf));
      if (up > st) up = st;
      double down = sqrt(st * st - up * up);
      float dt = (float)(down - sf), fu = (float)up;
      for (int64_t k = 0; k < n; k++) x[k] = x[k] + (x[k] - den[k]) / si * dt;
      if (sn > 0) {
        draw_noise(r, noise);
        for (int64_t k = 0; k < n; k++) x[k] = x[k] + noise[k] * fu;
      }
    } else if (kind == LDM_SAMPLER_HEUN) {
      float dt = sn - si;
      if (sn == 0) {
        for (int64_t k = 0; k < n; k++) x[k] = x[k] + (x[k] - den[k]) / si * dt;
      } else {
        float *d = aux;
        for (int64_t k = 0; k < n; k++) {
          d[k] = (x[k] - den[k]) / si;
          x2[k] = x[k] + d[k] * dt;
        }
        LDM_TRY(k_denoise(r, x2, sn, xin, m, den));
        for (int64_t k = 0; k < n; k++) {
          float d2 = (x2[k] - den[k]) / sn;
          x[k] = x[k] + (d[k] + d2) / 2 * dt;
        }
      }
    } else { /* DPM++ 2M */
      float *old = aux;
      double t = -log((double)si), tn = -log((double)sn), h = tn - t;
      float cx = (float)(exp(-tn) / exp(-t)), cd = (float)expm1(-h);
      if (!have_old || sn == 0) {
        for (int64_t k = 0; k < n; k++) x[k] = cx * x[k] - cd * den[k];
      } else {
        double h_last = t - -log((double)s->sig[i - 1]);
        double rr = h_last / h;
        float a = (float)(1 + 1 / (2 * rr)), b = (float)(1 / (2 * rr));
        for (int64_t k = 0; k < n; k++) {
          float dd = a * den[k] - b * old[k];
          x[k] = cx * x[k] - cd * dd;
        }
      }
      memcpy(old, den, (size_t)n * sizeof(float));
      have_old = true;
    }
    LDM_TRY(after_step(r, i, x));
  }
  return LDM_OK;
}

ldm_status ldm_sampler_run(ldm_sampler *s, float *x, ldm_denoise_fn model,
                           void *model_user, ldm_rng_state *rngs, int n_rngs,
                           ldm_step_hook hook, void *hook_user, ldm_error *err) {
  if (!model) return ldm_fail(err, LDM_ERR_INVALID_ARG, "sampler: no model callback");
  if (n_rngs < 1 || !rngs || s->n % n_rngs != 0)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "sampler: %d generators do not split %lld latent values", n_rngs,
                    (long long)s->n);
  run_ctx r = {s, model, model_user, rngs, n_rngs, hook, hook_user, err};
  if (s->fam == FAM_KSAMPLING && s->c.kind != LDM_SAMPLER_DPMPP_2S_A) return run_k(&r, x);
  switch (s->c.kind) {
    case LDM_SAMPLER_EULER: return run_euler(&r, x, false);
    case LDM_SAMPLER_EULER_A: return run_euler(&r, x, true);
    case LDM_SAMPLER_HEUN: return run_heun(&r, x);
    case LDM_SAMPLER_LMS: return run_lms(&r, x);
    case LDM_SAMPLER_PNDM: return run_pndm(&r, x);
    case LDM_SAMPLER_DPMPP_2M: return run_dpmpp_2m(&r, x, false);
    case LDM_SAMPLER_DPMPP_2M_SDE: return run_dpmpp_2m(&r, x, true);
    case LDM_SAMPLER_DPMPP_2S_A: return run_dpmpp_2s_a(&r, x);
    case LDM_SAMPLER_DDIM: return run_ddim(&r, x);
    case LDM_SAMPLER_LCM: return run_lcm(&r, x);
    case LDM_SAMPLER_UNIPC: return run_unipc(&r, x);
    default: break;
  }
  return ldm_fail(err, LDM_ERR_INTERNAL, "sampler: kind %d has no loop", (int)s->c.kind);
}
