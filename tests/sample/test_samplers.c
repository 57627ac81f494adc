/* Every sampler against its reference (goldens: tests/reference/make_sample.py
 * with diffusers 0.31.0 / k-diffusion 0.1.1.post1): the same committed
 * initial noise, the same closed-form stand-in denoiser
 *   out = x_in * a(t) + w * b(t),  a(t) = 0.6 + 0.3 cos(t / 170),
 *   b(t) = 0.2 sin(t / 90 + 0.5)   (a, b rounded to float32)
 * and steps in {1, 4, 20}; step noise from our torch-compatible generator
 * seeded as the reference's. Tolerances: final latent max abs <= 1e-4;
 * schedule timesteps <= 2e-3 abs, sigmas <= 1e-5 relative. Also img2img
 * strength, inpaint blending, per-image generators and CFG (+rescale). */
#include "ldm_test.h"
#include "sample/sample.h"

/* The reference rounds every multiply and add separately (torch's elementwise
 * kernels); contraction into FMA would move ill-conditioned cases (sigma 4096
 * with zero-terminal SNR) past the golden tolerance, so it is off here
 * whatever the build's -std or -march. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define TOL_LATENT 1e-4

typedef struct standin {
  const float *w;
  int64_t n;
} standin;

static ldm_status standin_fn(void *user, const float *x_in, float t, float *out,
                             ldm_error *err) {
  (void)err;
  const standin *m = user;
  float a = (float)(0.6 + 0.3 * cos((double)t / 170.0));
  float b = (float)(0.2 * sin((double)t / 90.0 + 0.5));
  for (int64_t i = 0; i < m->n; i++) {
    float p = x_in[i] * a;
    float q = m->w[i] * b;
    out[i] = p + q;
  }
  return LDM_OK;
}

typedef struct sampler_case {
  const char *name;       /* golden key */
  const char *preset;     /* ldm_sampler_config_preset name */
  int pred;               /* -1 keep */
  int spacing;            /* -1 keep */
  int zsnr;
  int sigmas;             /* -1 keep */
  float eta;              /* < 0 keep */
  int betas;              /* -1 keep; LINEAR uses 0.0001..0.02 */
} sampler_case;

#define K -1
static const sampler_case k_cases[] = {
  {"euler", "euler", K, K, 0, K, -1, K},
  {"euler_a", "euler_a", K, K, 0, K, -1, K},
  {"heun", "heun", K, K, 0, K, -1, K},
  {"lms", "lms", K, K, 0, K, -1, K},
  {"lms_karras", "lms_karras", K, K, 0, K, -1, K},
  {"pndm", "pndm", K, K, 0, K, -1, K},
  {"dpmpp_2m", "dpmpp_2m", K, K, 0, K, -1, K},
  {"dpmpp_2m_karras", "dpmpp_2m_karras", K, K, 0, K, -1, K},
  {"dpmpp_2m_sde", "dpmpp_2m_sde", K, K, 0, K, -1, K},
  {"dpmpp_2m_sde_karras", "dpmpp_2m_sde_karras", K, K, 0, K, -1, K},
  {"dpmpp_2s_a", "dpmpp_2s_a", K, K, 0, K, -1, K},
  {"dpmpp_2s_a_karras", "dpmpp_2s_a_karras", K, K, 0, K, -1, K},
  {"dpmpp_2s_a_sgm_uniform", "dpmpp_2s_a", K, K, 0, LDM_SIGMAS_SGM_UNIFORM, -1, K},
  {"ddim", "ddim", K, K, 0, K, -1, K},
  {"ddim_eta05", "ddim", K, K, 0, K, 0.5f, K},
  {"lcm", "lcm", K, K, 0, K, -1, K},
  {"unipc", "unipc", K, K, 0, K, -1, K},
  {"k_euler", "k_euler", K, K, 0, K, -1, K},
  {"k_euler_a", "k_euler_a", K, K, 0, K, -1, K},
  {"k_heun", "k_heun", K, K, 0, K, -1, K},
  {"k_lms", "k_lms", K, K, 0, K, -1, K},
  {"k_lms_karras", "k_lms_karras", K, K, 0, K, -1, K},
  {"k_dpmpp_2m", "k_dpmpp_2m", K, K, 0, K, -1, K},
  {"k_dpmpp_2m_karras", "k_dpmpp_2m_karras", K, K, 0, K, -1, K},
  {"k_euler_a_v", "k_euler_a", LDM_PRED_VPRED, K, 0, K, -1, K},
  {"dpmpp_2s_a_v", "dpmpp_2s_a", LDM_PRED_VPRED, K, 0, K, -1, K},
  {"euler_v_zsnr", "euler", LDM_PRED_VPRED, LDM_SPACING_TRAILING, 1, K, -1, K},
  {"euler_a_v_zsnr", "euler_a", LDM_PRED_VPRED, LDM_SPACING_TRAILING, 1, K, -1, K},
  {"dpmpp_2m_v", "dpmpp_2m", LDM_PRED_VPRED, K, 0, K, -1, K},
  {"unipc_v_zsnr", "unipc", LDM_PRED_VPRED, LDM_SPACING_TRAILING, 1, K, -1, K},
  {"ddim_v_zsnr", "ddim", LDM_PRED_VPRED, LDM_SPACING_TRAILING, 1, K, -1, K},
  {"lcm_v", "lcm", LDM_PRED_VPRED, K, 0, K, -1, K},
  {"euler_x0_leading", "euler", LDM_PRED_X0, LDM_SPACING_LEADING, 0, K, -1, K},
  {"euler_karras", "euler", K, K, 0, LDM_SIGMAS_KARRAS, -1, K},
  {"euler_exponential", "euler", K, K, 0, LDM_SIGMAS_EXPONENTIAL, -1, K},
  {"euler_sgm_uniform", "euler", K, K, 0, LDM_SIGMAS_SGM_UNIFORM, -1, K},
  {"heun_leading", "heun", K, LDM_SPACING_LEADING, 0, K, -1, K},
  {"euler_leading", "euler", K, LDM_SPACING_LEADING, 0, K, -1, K},
  {"euler_a_leading", "euler_a", K, LDM_SPACING_LEADING, 0, K, -1, K},
  {"unipc_leading", "unipc", K, LDM_SPACING_LEADING, 0, K, -1, K},
  {"dpmpp_2m_trailing", "dpmpp_2m", K, LDM_SPACING_TRAILING, 0, K, -1, K},
  {"dpmpp_2m_leading", "dpmpp_2m", K, LDM_SPACING_LEADING, 0, K, -1, K},
  {"ddim_linear_betas", "ddim", K, K, 0, K, -1, LDM_BETAS_LINEAR},
  {"ddim_cosine_v", "ddim", LDM_PRED_VPRED, LDM_SPACING_LINSPACE, 0, K, -1,
   LDM_BETAS_SQUAREDCOS_CAP_V2},
  {"pndm_linspace", "pndm", K, LDM_SPACING_LINSPACE, 0, K, -1, K},
};
#undef K

static const sampler_case *case_named(const char *name) {
  for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++)
    if (strcmp(k_cases[i].name, name) == 0) return &k_cases[i];
  return NULL;
}

static ldm_sampler *make(const sampler_case *sc, int steps, int64_t n) {
  ldm_sampler_config c;
  ldm_error err = {0};
  if (ldm_sampler_config_preset(&c, sc->preset, &err) != LDM_OK) {
    fprintf(stderr, "FAIL preset %s: %s\n", sc->preset, err.msg);
    exit(1);
  }
  c.steps = steps;
  if (sc->pred >= 0) c.prediction = (ldm_pred)sc->pred;
  if (sc->spacing >= 0) c.spacing = (ldm_spacing)sc->spacing;
  if (sc->sigmas >= 0) c.sigmas = (ldm_sigma_schedule)sc->sigmas;
  if (sc->eta >= 0) c.eta = sc->eta;
  c.rescale_zero_terminal_snr = sc->zsnr;
  if (sc->betas >= 0) {
    c.beta_schedule = (ldm_beta_schedule)sc->betas;
    if (sc->betas == LDM_BETAS_LINEAR) {
      c.beta_start = 0.0001;
      c.beta_end = 0.02;
    }
  }
  ldm_sampler *s = NULL;
  if (ldm_sampler_new(&s, &c, n, &err) != LDM_OK) {
    fprintf(stderr, "FAIL sampler %s/%d: %s\n", sc->name, steps, err.msg);
    exit(1);
  }
  return s;
}

typedef struct blend_ctx {
  const ldm_sampler *s;
  const float *x0, *noise, *mask;
} blend_ctx;

static ldm_status blend_hook(void *user, int i, int total, float *x, ldm_error *err) {
  (void)total;
  (void)err;
  blend_ctx *b = user;
  ldm_inpaint_blend(b->s, ldm_sampler_begin(b->s) + i, x, b->x0, b->noise, b->mask);
  return LDM_OK;
}

static void run_case(ldm_st_file *f, const sampler_case *sc, int steps,
                     const float *noise, const float *w) {
  const int64_t n = 256;
  char key[160];
  ldm_sampler *s = make(sc, steps, n);
  /* schedule */
  snprintf(key, sizeof key, "%s/%d/timesteps", sc->name, steps);
  ldm_tensor tt;
  float *ref_ts = ldm_test_tensor_f32(f, key, &tt);
  int nt = ldm_sampler_timestep_count(s);
  CHECK(ldm_tensor_numel(&tt) == nt, "%s: %d timesteps, reference has %lld", key, nt,
        (long long)ldm_tensor_numel(&tt));
  if (ldm_tensor_numel(&tt) == nt)
    ldm_test_close(key, ldm_sampler_timesteps(s), ref_ts, nt, 2e-3, 0);
  free(ref_ts);
  snprintf(key, sizeof key, "%s/%d/sigmas", sc->name, steps);
  float *ref_sg = ldm_test_tensor_f32(f, key, &tt);
  if (ldm_tensor_numel(&tt) > 0) {
    int ns = ldm_sampler_sigma_count(s);
    CHECK(ldm_tensor_numel(&tt) == ns, "%s: %d sigmas, reference has %lld", key, ns,
          (long long)ldm_tensor_numel(&tt));
    if (ldm_tensor_numel(&tt) == ns)
      ldm_test_close(key, ldm_sampler_sigmas(s), ref_sg, ns, 1e-6, 1e-5);
  }
  free(ref_sg);
  /* the loop */
  float x[256];
  float sig0 = ldm_sampler_init_noise_sigma(s);
  for (int64_t i = 0; i < n; i++) x[i] = noise[i] * sig0;
  standin m = {w, n};
  ldm_rng_state rng;
  ldm_rng_seed(&rng, LDM_RNG_CPU, 1234);
  ldm_error err = {0};
  ldm_status st = ldm_sampler_run(s, x, standin_fn, &m, &rng, 1, NULL, NULL, &err);
  CHECK(st == LDM_OK, "%s/%d run: %s", sc->name, steps, err.msg);
  snprintf(key, sizeof key, "%s/%d", sc->name, steps);
  float *ref = ldm_test_tensor_f32(f, key, NULL);
  ldm_test_close(key, x, ref, n, TOL_LATENT, 0);
  free(ref);
  ldm_sampler_free(s);
}

static void run_img2img(ldm_st_file *f, const char *name, float strength,
                        const char *label, const float *noise, const float *w,
                        const float *x0, const float *mask) {
  const int64_t n = 256;
  const sampler_case *sc = case_named(name);
  ldm_sampler *s = make(sc, 20, n);
  float x[256];
  if (strength >= 1.0f) {
    float sig0 = ldm_sampler_init_noise_sigma(s);
    for (int64_t i = 0; i < n; i++) x[i] = noise[i] * sig0;
  } else {
    ldm_sampler_set_strength(s, strength);
    ldm_sampler_add_noise(s, ldm_sampler_begin(s), x0, noise, x);
  }
  standin m = {w, n};
  ldm_rng_state rng;
  ldm_rng_seed(&rng, LDM_RNG_CPU, 1234);
  ldm_error err = {0};
  blend_ctx b = {s, x0, noise, mask};
  ldm_status st = ldm_sampler_run(s, x, standin_fn, &m, &rng, 1,
                                  mask ? blend_hook : NULL, &b, &err);
  CHECK(st == LDM_OK, "%s run: %s", label, err.msg);
  float *ref = ldm_test_tensor_f32(f, label, NULL);
  ldm_test_close(label, x, ref, n, TOL_LATENT, 0);
  free(ref);
  ldm_sampler_free(s);
}

int main(void) {
  ldm_st_file *f = ldm_test_open_golden("sample/samplers.safetensors");
  float *noise = ldm_test_tensor_f32(f, "noise", NULL);
  float *w = ldm_test_tensor_f32(f, "w", NULL);
  float *x0 = ldm_test_tensor_f32(f, "x0", NULL);
  float *mask = ldm_test_tensor_f32(f, "mask", NULL);
  float *noise2 = ldm_test_tensor_f32(f, "noise2", NULL);
  static const int steps[3] = {1, 4, 20};
  for (size_t c = 0; c < sizeof k_cases / sizeof k_cases[0]; c++)
    for (int k = 0; k < 3; k++) run_case(f, &k_cases[c], steps[k], noise, w);

  static const char *i2i[] = {"euler", "ddim", "dpmpp_2m", "heun", "unipc",
                              "lms", "pndm", "euler_a", "lcm"};
  static const char *i2i_k[] = {"k_euler", "k_euler_a", "k_heun", "k_lms",
                                "k_dpmpp_2m", "k_dpmpp_2m_karras", "dpmpp_2s_a"};
  for (size_t c = 0; c < sizeof i2i_k / sizeof i2i_k[0]; c++) {
    char label[96];
    snprintf(label, sizeof label, "img2img/%s/0.6", i2i_k[c]);
    run_img2img(f, i2i_k[c], 0.6f, label, noise, w, x0, NULL);
    snprintf(label, sizeof label, "img2img/%s/0.35", i2i_k[c]);
    run_img2img(f, i2i_k[c], 0.35f, label, noise, w, x0, NULL);
  }
  for (size_t c = 0; c < sizeof i2i / sizeof i2i[0]; c++) {
    char label[96];
    snprintf(label, sizeof label, "img2img/%s/0.6", i2i[c]);
    run_img2img(f, i2i[c], 0.6f, label, noise, w, x0, NULL);
    snprintf(label, sizeof label, "img2img/%s/0.35", i2i[c]);
    run_img2img(f, i2i[c], 0.35f, label, noise, w, x0, NULL);
    snprintf(label, sizeof label, "inpaint/%s", i2i[c]);
    run_img2img(f, i2i[c], 1.0f, label, noise, w, x0, mask);
    snprintf(label, sizeof label, "inpaint/%s/0.6", i2i[c]);
    run_img2img(f, i2i[c], 0.6f, label, noise, w, x0, mask);
  }

  /* batch of two, generator per image (seeds 1234, 1235) */
  static const char *b2[] = {"euler_a", "dpmpp_2m_sde", "ddim_eta05"};
  float w2[512];
  for (int i = 0; i < 256; i++) {
    w2[i] = w[i];
    w2[256 + i] = w[i] * -0.7f;
  }
  for (size_t c = 0; c < sizeof b2 / sizeof b2[0]; c++) {
    ldm_sampler *s = make(case_named(b2[c]), 4, 512);
    float x[512];
    float sig0 = ldm_sampler_init_noise_sigma(s);
    for (int i = 0; i < 512; i++) x[i] = noise2[i] * sig0;
    standin m = {w2, 512};
    ldm_rng_state rngs[2];
    ldm_rng_seed(&rngs[0], LDM_RNG_CPU, 1234);
    ldm_rng_seed(&rngs[1], LDM_RNG_CPU, 1235);
    ldm_error err = {0};
    CHECK(ldm_sampler_run(s, x, standin_fn, &m, rngs, 2, NULL, NULL, &err) == LDM_OK,
          "batch2 %s: %s", b2[c], err.msg);
    char label[64];
    snprintf(label, sizeof label, "batch2/%s", b2[c]);
    float *ref = ldm_test_tensor_f32(f, label, NULL);
    ldm_test_close(label, x, ref, 512, TOL_LATENT, 0);
    free(ref);
    ldm_sampler_free(s);
  }

  /* seeds end to end (txt2img): the initial latents and then every step's
   * noise come from one generator per image, seeds 42 (+ 1) */
  static const char *sf[] = {"euler_a", "dpmpp_2m_sde", "lcm"};
  for (size_t c = 0; c < sizeof sf / sizeof sf[0]; c++) {
    for (int batch = 1; batch <= 2; batch++) {
      int64_t n = 256 * batch;
      ldm_sampler *s = make(case_named(sf[c]), 8, n);
      float x[512];
      ldm_rng_state rngs[2];
      for (int b = 0; b < batch; b++) {
        ldm_rng_seed(&rngs[b], LDM_RNG_CPU, 42 + (uint64_t)b);
        ldm_rng_randn(&rngs[b], x + 256 * b, 256);
      }
      float sig0 = ldm_sampler_init_noise_sigma(s);
      for (int64_t i = 0; i < n; i++) x[i] *= sig0;
      standin m = {batch == 1 ? w : w2, n};
      ldm_error err = {0};
      CHECK(ldm_sampler_run(s, x, standin_fn, &m, rngs, batch, NULL, NULL, &err) ==
                LDM_OK, "seedflow %s: %s", sf[c], err.msg);
      char label[64];
      snprintf(label, sizeof label, "%s/%s", batch == 1 ? "seedflow" : "seedflow2", sf[c]);
      float *ref = ldm_test_tensor_f32(f, label, NULL);
      ldm_test_close(label, x, ref, n, TOL_LATENT, 0);
      free(ref);
      ldm_sampler_free(s);
    }
  }

  /* classifier-free guidance (+ rescale_noise_cfg), tolerance 1e-5 */
  {
    float *u = ldm_test_tensor_f32(f, "cfg/uncond", NULL);
    float *c = ldm_test_tensor_f32(f, "cfg/cond", NULL);
    static const float sc[3][2] = {{7.5f, 0.0f}, {7.5f, 0.7f}, {3.0f, 1.0f}};
    for (int k = 0; k < 3; k++) {
      float out[512];
      ldm_cfg_combine(out, u, c, 512, 2, sc[k][0], sc[k][1]);
      char label[64];
      snprintf(label, sizeof label, "cfg/%.1f/%.1f", sc[k][0], sc[k][1]);
      float *ref = ldm_test_tensor_f32(f, label, NULL);
      ldm_test_close(label, out, ref, 512, 1e-5, 1e-6);
      free(ref);
    }
    CHECK(ldm_cfg_needs_uncond(7.5f) && !ldm_cfg_needs_uncond(1.0f),
          "cfg_needs_uncond");
    free(u);
    free(c);
  }

  free(noise);
  free(w);
  free(x0);
  free(mask);
  free(noise2);
  ldm_st_close(f);
  return ldm_test_finish("sample-samplers");
}
