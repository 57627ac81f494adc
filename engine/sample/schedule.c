/* Noise schedules as diffusers' schedulers compute them in __init__ and
 * set_timesteps (betas, alphas_cumprod, timestep spacing, interpolated /
 * Karras / exponential sigmas, zero-terminal-SNR rescale) and as
 * k-diffusion's DiscreteSchedule does (get_sigmas, get_sigmas_karras,
 * sigma_to_t). Values the reference keeps in float32 are rounded to float
 * here too; numpy's float64 steps stay in double; rounding is numpy's
 * half-to-even (nearbyint). */
#include <math.h>
#include <stdlib.h>

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

/* torch.linspace(start, end, n) in float32 (ATen's two-sided formula). */
static void linspace_f32(float *out, float start, float end, int n) {
  if (n == 1) {
    out[0] = start;
    return;
  }
  float step = (end - start) / (float)(n - 1);
  int half = n / 2;
  for (int i = 0; i < n; i++)
    out[i] = i < half ? start + step * (float)i
                      : end - step * (float)(n - i - 1);
}

/* np.linspace(start, stop, n)[i] (float64, endpoint included). */
static double np_linspace(double start, double stop, int n, int i) {
  if (n == 1) return start;
  if (i == n - 1) return stop;
  double step = (stop - start) / (double)(n - 1);
  return (double)i * step + start;
}

/* np.arange(start, stop, step) for float step: length and i-th value. */
static int np_arange_len(double start, double stop, double step) {
  double len = ceil((stop - start) / step);
  return len > 0 ? (int)len : 0;
}
static double np_arange_at(double start, double step, int i) {
  double delta = (start + step) - start;
  return start + (double)i * delta;
}

static double np_round(double x) { return nearbyint(x); }

/* np.interp(x, arange(T), fp) */
static double interp_sigma(const ldm_sampler *s, const float *sig_full,
                           double x) {
  int T = s->T;
  if (!(x > 0)) return sig_full[0];
  if (x >= T - 1) return sig_full[T - 1];
  int j = (int)floor(x);
  double fj = sig_full[j], fj1 = sig_full[j + 1];
  if (x == (double)j) return fj;
  return (fj1 - fj) * (x - (double)j) + fj;
}

double ldm_schedule_sigma_to_t(const ldm_sampler *s, double sigma) {
  const float *ls = s->log_sigmas;
  int T = s->T;
  double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
  /* low_idx: last index with log_sigmas[j] <= log_sigma (0 when none),
   * clipped to T - 2; log_sigmas increases with j */
  int low = 0;
  for (int j = 0; j < T; j++)
    if (log_sigma - (double)ls[j] >= 0) low = j;
  if (low > T - 2) low = T - 2;
  double lo = ls[low], hi = ls[low + 1];
  double w = (lo - log_sigma) / (lo - hi);
  if (w < 0) w = 0;
  if (w > 1) w = 1;
  return (1 - w) * low + w * (low + 1);
}

/* k-diffusion DiscreteSchedule.t_to_sigma in float32. */
static float t_to_sigma(const ldm_sampler *s, float t) {
  float lo = floorf(t), hi = ceilf(t);
  float w = t - lo;
  float ls = (1.0f - w) * s->log_sigmas[(int)lo] + w * s->log_sigmas[(int)hi];
  return expf(ls);
}

static void karras(double *out, int n, double smin, double smax) {
  const double rho = 7.0;
  double min_inv = pow(smin, 1 / rho), max_inv = pow(smax, 1 / rho);
  for (int i = 0; i < n; i++) {
    double ramp = np_linspace(0, 1, n, i);
    out[i] = pow(max_inv + ramp * (min_inv - max_inv), rho);
  }
}

static ldm_status build_alphas(ldm_sampler *s, ldm_error *err) {
  const ldm_sampler_config *c = &s->c;
  int T = s->T;
  float *betas = (float *)s->tmp;
  switch (c->beta_schedule) {
    case LDM_BETAS_SCALED_LINEAR:
      linspace_f32(betas, (float)sqrt(c->beta_start), (float)sqrt(c->beta_end),
                   T);
      for (int i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
      break;
    case LDM_BETAS_LINEAR:
      linspace_f32(betas, (float)c->beta_start, (float)c->beta_end, T);
      break;
    case LDM_BETAS_SQUAREDCOS_CAP_V2:
      for (int i = 0; i < T; i++) {
        double t1 = (double)i / T, t2 = (double)(i + 1) / T;
        double a1 = cos((t1 + 0.008) / 1.008 * M_PI / 2);
        double a2 = cos((t2 + 0.008) / 1.008 * M_PI / 2);
        double b = 1 - (a2 * a2) / (a1 * a1);
        betas[i] = (float)(b < 0.999 ? b : 0.999);
      }
      break;
    default:
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "sampler: unknown beta schedule %d",
                      (int)c->beta_schedule);
  }
  if (c->rescale_zero_terminal_snr) {
    /* Lin et al. 2023, Algorithm 1, in float32 as diffusers runs it */
    double cum = 1.0;
    float *sq = s->acp;
    for (int i = 0; i < T; i++) {
      cum *= (double)(1.0f - betas[i]);
      sq[i] = sqrtf((float)cum);
    }
    float a0 = sq[0], aT = sq[T - 1];
    float scale = a0 / (a0 - aT);
    for (int i = 0; i < T; i++) sq[i] = (sq[i] - aT) * scale;
    for (int i = 0; i < T; i++) sq[i] = sq[i] * sq[i];
    for (int i = T - 1; i >= 1; i--) betas[i] = 1.0f - sq[i] / sq[i - 1];
    betas[0] = 1.0f - sq[0];
  }
  double cum = 1.0; /* torch.cumprod accumulates float in double on the CPU */
  for (int i = 0; i < T; i++) {
    cum *= (double)(1.0f - betas[i]);
    s->acp[i] = (float)cum;
  }
  if (c->rescale_zero_terminal_snr && s->fam != FAM_DDPM)
    s->acp[T - 1] = 0x1p-24f;
  for (int i = 0; i < T; i++) {
    float a = s->acp[i];
    s->log_sigmas[i] = logf(sqrtf((1.0f - a) / a));
  }
  s->final_acp = c->set_alpha_to_one ? 1.0 : (double)s->acp[0];
  return LDM_OK;
}

/* Timesteps and sigmas of Euler / Euler a / Heun / LMS set_timesteps. */
static ldm_status build_kdiff(ldm_sampler *s, ldm_error *err) {
  const ldm_sampler_config *c = &s->c;
  int n = c->steps, T = s->T;
  float *sig_full = (float *)(s->tmp + T);
  for (int i = 0; i < T; i++) {
    float a = s->acp[i];
    sig_full[i] = sqrtf((1.0f - a) / a);
  }
  double *ts = s->tmp + 2 * T;
  double *sg = ts + (n + 2);
  int m = n;
  if (c->sigmas == LDM_SIGMAS_SGM_UNIFORM) {
    /* ComfyUI sgm_uniform: t = linspace(T-1, 0, n + 1)[:-1] on the
     * log-linear DiscreteSchedule, sigma(t) as k-diffusion's t_to_sigma */
    for (int i = 0; i < n; i++) {
      float t = (float)np_linspace(T - 1, 0, n + 1, i);
      float sgm = t_to_sigma(s, t);
      sg[i] = sgm;
      ts[i] = ldm_schedule_sigma_to_t(s, (double)sgm);
    }
  } else {
    if (c->spacing == LDM_SPACING_LINSPACE) {
      for (int i = 0; i < n; i++)
        ts[i] = (float)np_linspace(0, T - 1, n, n - 1 - i);
    } else if (c->spacing == LDM_SPACING_LEADING) {
      int ratio = T / n;
      for (int i = 0; i < n; i++)
        ts[i] = (float)(np_round((double)(n - 1 - i) * ratio) + c->steps_offset);
    } else {
      double ratio = (double)T / n;
      m = np_arange_len(T, 0, -ratio);
      for (int i = 0; i < m; i++)
        ts[i] = (float)(np_round(np_arange_at(T, -ratio, i)) - 1);
    }
    for (int i = 0; i < m; i++) sg[i] = interp_sigma(s, sig_full, ts[i]);
    if (c->sigmas == LDM_SIGMAS_KARRAS || c->sigmas == LDM_SIGMAS_EXPONENTIAL) {
      double smin = (float)sg[m - 1], smax = (float)sg[0];
      if (c->sigmas == LDM_SIGMAS_KARRAS) {
        karras(sg, m, smin, smax);
      } else {
        float *l = (float *)(sg + (n + 2));
        linspace_f32(l, (float)log(smax), (float)log(smin), m);
        for (int i = 0; i < m; i++) sg[i] = expf(l[i]);
      }
      for (int i = 0; i < m; i++)
        ts[i] = ldm_schedule_sigma_to_t(s, sg[i]);
    }
  }
  if (c->kind == LDM_SAMPLER_HEUN) {
    /* [t0, t1, t1, ..., tn-1, tn-1] and [s0, s1, s1, ..., sn-1, sn-1, 0] */
    s->nt = 2 * m - 1;
    s->ns = 2 * m;
    s->ts[0] = (float)ts[0];
    s->sig[0] = (float)sg[0];
    for (int i = 1; i < m; i++) {
      s->ts[2 * i - 1] = s->ts[2 * i] = (float)ts[i];
      s->sig[2 * i - 1] = s->sig[2 * i] = (float)sg[i];
    }
    s->sig[2 * m - 1] = 0.0f;
  } else {
    s->nt = m;
    s->ns = m + 1;
    for (int i = 0; i < m; i++) {
      s->ts[i] = (float)ts[i];
      s->sig[i] = (float)sg[i];
    }
    s->sig[m] = 0.0f;
  }
  float smax = 0;
  for (int i = 0; i < s->ns; i++)
    if (s->sig[i] > smax) smax = s->sig[i];
  bool plain = c->spacing == LDM_SPACING_LINSPACE ||
               c->spacing == LDM_SPACING_TRAILING ||
               c->sigmas == LDM_SIGMAS_SGM_UNIFORM;
  s->init_sigma = plain ? smax : sqrtf(smax * smax + 1.0f);
  (void)err;
  return LDM_OK;
}

/* DPMSolverMultistep / UniPC set_timesteps (n + 1 point spacing). */
static ldm_status build_dpm(ldm_sampler *s, ldm_error *err) {
  const ldm_sampler_config *c = &s->c;
  int n = c->steps, T = s->T;
  int m = n;
  double *ts = s->tmp + 2 * T;
  if (c->spacing == LDM_SPACING_LINSPACE) {
    for (int i = 0; i < n; i++) ts[i] = np_round(np_linspace(0, T - 1, n + 1, n - i));
  } else if (c->spacing == LDM_SPACING_LEADING) {
    int ratio = T / (n + 1);
    for (int i = 0; i < n; i++)
      ts[i] = np_round((double)(n - i) * ratio) + c->steps_offset;
  } else {
    double ratio = (double)T / n;
    m = np_arange_len(T, 0, -ratio);
    for (int i = 0; i < m; i++) ts[i] = np_round(np_arange_at(T, -ratio, i)) - 1;
  }
  double *sg = ts + (n + 2);
  if (c->sigmas == LDM_SIGMAS_KARRAS) {
    float a0 = s->acp[0], aT = s->acp[T - 1];
    double smin = sqrtf((1.0f - a0) / a0), smax = sqrtf((1.0f - aT) / aT);
    karras(sg, m, smin, smax);
    for (int i = 0; i < m; i++) ts[i] = np_round(ldm_schedule_sigma_to_t(s, sg[i]));
  } else if (c->sigmas == LDM_SIGMAS_DEFAULT) {
    for (int i = 0; i < m; i++) {
      int t = (int)ts[i];
      if (t < 0) t = 0;
      if (t > T - 1) t = T - 1;
      float a = s->acp[t];
      sg[i] = sqrtf((1.0f - a) / a);
    }
  } else {
    return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                    "sampler: this sampler takes default or Karras sigmas only");
  }
  s->nt = m;
  s->ns = m + 1;
  for (int i = 0; i < m; i++) {
    s->ts[i] = (float)ts[i];
    s->sig[i] = (float)sg[i];
  }
  s->sig[m] = 0.0f;
  s->init_sigma = 1.0f;
  return LDM_OK;
}

/* DDIM / PNDM (PLMS) / LCM integer timesteps. */
static ldm_status build_ddpm(ldm_sampler *s, ldm_error *err) {
  const ldm_sampler_config *c = &s->c;
  int n = c->steps, T = s->T;
  double *asc = s->tmp + 2 * T; /* ascending "_timesteps" */
  int m = n;
  if (c->kind == LDM_SAMPLER_LCM) {
    int orig = c->original_inference_steps;
    if (orig <= 0 || orig > T || n > orig)
      return ldm_fail(err, LDM_ERR_INVALID_ARG,
                      "sampler: lcm needs 1 <= steps (%d) <= original_inference_steps (%d) <= %d",
                      n, orig, T);
    int k = T / orig;
    for (int i = 0; i < n; i++) {
      int idx = (int)floor(np_linspace(0, orig, n + 1, i)); /* endpoint=False */
      int j = orig - 1 - idx;  /* index into the ascending origin list */
      s->ts[i] = (float)((j + 1) * k - 1);
    }
    s->nt = n;
  } else {
    if (c->spacing == LDM_SPACING_LINSPACE) {
      for (int i = 0; i < n; i++) asc[i] = np_round(np_linspace(0, T - 1, n, i));
    } else if (c->spacing == LDM_SPACING_LEADING) {
      int ratio = T / n;
      for (int i = 0; i < n; i++) asc[i] = np_round((double)i * ratio) + c->steps_offset;
    } else {
      double ratio = (double)T / n;
      m = np_arange_len(T, 0, -ratio);
      for (int i = 0; i < m; i++)
        asc[m - 1 - i] = np_round(np_arange_at(T, -ratio, i)) - 1;
    }
    if (c->kind == LDM_SAMPLER_PNDM) {
      /* plms: concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1] */
      int k = 0;
      s->ts[k++] = (float)asc[m - 1];
      if (m >= 2) s->ts[k++] = (float)asc[m - 2];
      for (int i = m - 2; i >= 0; i--) s->ts[k++] = (float)asc[i];
      s->nt = k;
    } else {
      for (int i = 0; i < m; i++) s->ts[i] = (float)asc[m - 1 - i];
      s->nt = m;
    }
  }
  for (int i = 0; i < s->nt; i++)
    if (s->ts[i] < 0 || s->ts[i] > T - 1)
      return ldm_fail(err, LDM_ERR_INVALID_ARG,
                      "sampler: timestep %g out of range with %d steps", s->ts[i], n);
  s->ns = 0;
  s->init_sigma = 1.0f;
  return LDM_OK;
}

/* k-diffusion DiscreteEpsDDPMDenoiser.get_sigmas(n) / get_sigmas_karras. */
static ldm_status build_ksampling(ldm_sampler *s, ldm_error *err) {
  const ldm_sampler_config *c = &s->c;
  int n = c->steps, T = s->T;
  float smin = sqrtf((1.0f - s->acp[0]) / s->acp[0]);
  float smax = sqrtf((1.0f - s->acp[T - 1]) / s->acp[T - 1]);
  if (c->sigmas == LDM_SIGMAS_DEFAULT) {
    float *t = (float *)(s->tmp + 2 * T);
    linspace_f32(t, (float)(T - 1), 0.0f, n);
    for (int i = 0; i < n; i++) s->sig[i] = t_to_sigma(s, t[i]);
  } else if (c->sigmas == LDM_SIGMAS_KARRAS) {
    float *ramp = (float *)(s->tmp + 2 * T);
    linspace_f32(ramp, 0.0f, 1.0f, n);
    double min_inv = pow(smin, 1 / 7.0), max_inv = pow(smax, 1 / 7.0);
    for (int i = 0; i < n; i++) {
      float base = (float)max_inv + ramp[i] * ((float)min_inv - (float)max_inv);
      s->sig[i] = powf(base, 7.0f);
    }
  } else if (c->sigmas == LDM_SIGMAS_SGM_UNIFORM) {
    for (int i = 0; i < n; i++)
      s->sig[i] = t_to_sigma(s, (float)np_linspace(T - 1, 0, n + 1, i));
  } else {
    return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                    "sampler: dpmpp_2s_a takes default, Karras or sgm_uniform sigmas");
  }
  s->sig[n] = 0.0f;
  s->ns = n + 1;
  s->nt = n;
  for (int i = 0; i < n; i++) s->ts[i] = (float)ldm_schedule_sigma_to_t(s, s->sig[i]);
  s->init_sigma = s->sig[0];
  return LDM_OK;
}

ldm_status ldm_schedule_build(ldm_sampler *s, ldm_error *err) {
  LDM_TRY(build_alphas(s, err));
  switch (s->fam) {
    case FAM_KDIFF: return build_kdiff(s, err);
    case FAM_DPM: return build_dpm(s, err);
    case FAM_DDPM: return build_ddpm(s, err);
    case FAM_KSAMPLING: return build_ksampling(s, err);
  }
  return ldm_fail(err, LDM_ERR_INTERNAL, "sampler: bad family");
}
