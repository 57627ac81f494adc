/* engine/sample API behaviour that needs no golden: the name table (ours and
 * A1111's labels), argument errors with actionable messages, img2img start
 * steps as diffusers' get_timesteps, and errors from the model callback.
 * Tolerance: exact. */
#include "core/status.h"
#include "ldm_test.h"
#include "sample/sample.h"

static ldm_status zero_model(void *user, const float *x_in, float t, float *out,
                             ldm_error *err) {
  (void)user; (void)x_in; (void)t; (void)err;
  for (int i = 0; i < 16; i++) out[i] = 0.0f;
  return LDM_OK;
}

static ldm_status fail_model(void *user, const float *x_in, float t, float *out,
                             ldm_error *err) {
  (void)user; (void)x_in; (void)t; (void)out;
  return ldm_fail(err, LDM_ERR_CANCELLED, "stop at t=%g", t);
}

int main(void) {
  static const char *issue_names[] = {"euler", "euler_a", "heun", "lms", "pndm",
                                      "dpmpp_2m", "dpmpp_2m_karras", "dpmpp_2m_sde",
                                      "dpmpp_2s_a", "ddim", "lcm", "unipc"};
  const char *const *names = ldm_sampler_names();
  int count = 0;
  while (names[count]) count++;
  CHECK(count >= 12, "only %d samplers listed", count);
  for (int i = 0; i < count; i++) {
    CHECK(ldm_sampler_reference(names[i]) != NULL, "listed '%s' has no row", names[i]);
    CHECK(ldm_sampler_config_preset(&(ldm_sampler_config){0}, names[i], NULL) == LDM_OK,
          "listed '%s' has no preset", names[i]);
    for (int j = 0; j < i; j++)
      CHECK(strcmp(names[i], names[j]) != 0, "'%s' listed twice", names[i]);
  }
  for (size_t i = 0; i < sizeof issue_names / sizeof issue_names[0]; i++) {
    const char *ref = ldm_sampler_reference(issue_names[i]);
    CHECK(ref && (strstr(ref, "diffusers") || strstr(ref, "k-diffusion")),
          "%s has no reference", issue_names[i]);
    CHECK(ldm_sampler_kind_from_name(issue_names[i]) >= 0, "%s unknown", issue_names[i]);
  }
  CHECK(ldm_sampler_reference("nope") == NULL, "unknown name has a reference");

  ldm_sampler_config c;
  ldm_error err = {0};
  CHECK(ldm_sampler_config_preset(&c, "DPM++ 2M Karras", &err) == LDM_OK &&
            c.kind == LDM_SAMPLER_DPMPP_2M && c.sigmas == LDM_SIGMAS_KARRAS &&
            c.kdiffusion,
        "A1111 label should resolve to the k-diffusion variant A1111 runs");
  CHECK(ldm_sampler_config_preset(&c, "dpmpp_2m_karras", &err) == LDM_OK && !c.kdiffusion,
        "our name keeps the diffusers scheduler");
  CHECK(ldm_sampler_config_preset(&c, "euler A", &err) == LDM_OK &&
            c.kind == LDM_SAMPLER_EULER_A, "A1111 name case-insensitive");
  CHECK(strcmp(ldm_sampler_a1111_name("dpmpp_2s_a"), "DPM++ 2S a") == 0, "a1111 label");
  CHECK(ldm_sampler_config_preset(&c, "fast", &err) == LDM_ERR_INVALID_ARG &&
            strstr(err.msg, "'fast'"), "unknown name: %s", err.msg);

  ldm_sampler *s = NULL;
  ldm_sampler_config_preset(&c, "euler", NULL);
  c.steps = 0;
  CHECK(ldm_sampler_new(&s, &c, 16, &err) == LDM_ERR_INVALID_ARG && !s &&
            strstr(err.msg, "steps"), "steps 0: %s", err.msg);
  ldm_sampler_config_preset(&c, "heun", NULL);
  c.rescale_zero_terminal_snr = true;
  CHECK(ldm_sampler_new(&s, &c, 16, &err) == LDM_ERR_UNSUPPORTED && !s,
        "heun + zsnr should be unsupported");
  ldm_sampler_config_preset(&c, "ddim", NULL);
  c.sigmas = LDM_SIGMAS_KARRAS;
  CHECK(ldm_sampler_new(&s, &c, 16, &err) == LDM_ERR_UNSUPPORTED, "ddim karras");
  ldm_sampler_config_preset(&c, "ddim", NULL);
  c.kdiffusion = true;
  CHECK(ldm_sampler_new(&s, &c, 16, &err) == LDM_ERR_UNSUPPORTED, "k-diffusion ddim");

  /* get_timesteps: t_start = steps - int(steps * strength), times order */
  struct { const char *name; int steps; float strength; int begin; } st[] = {
    {"euler", 10, 0.7f, 3}, {"euler", 20, 0.6f, 8}, {"euler", 10, 1.0f, 0},
    {"heun", 10, 0.7f, 6}, {"ddim", 50, 0.75f, 13}, {"euler", 10, 0.0f, 10},
    {"dpmpp_2m", 7, 0.3f, 5},
    /* k-diffusion rows: A1111's t_enc = int(min(s, 0.999) * steps) */
    {"k_euler", 20, 0.6f, 7}, {"k_euler", 20, 1.0f, 0}, {"dpmpp_2s_a", 10, 0.5f, 4},
  };
  for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
    ldm_sampler_config_preset(&c, st[i].name, NULL);
    c.steps = st[i].steps;
    CHECK(ldm_sampler_new(&s, &c, 16, &err) == LDM_OK, "%s", err.msg);
    ldm_sampler_set_strength(s, st[i].strength);
    CHECK(ldm_sampler_begin(s) == st[i].begin, "%s %d steps strength %g: begin %d, want %d",
          st[i].name, st[i].steps, st[i].strength, ldm_sampler_begin(s), st[i].begin);
    double a, b;
    ldm_sampler_noise_coeffs(s, ldm_sampler_timestep_count(s), &a, &b);
    CHECK(a == 1.0 && b == 0.0, "fully denoised coefficients");
    ldm_sampler_free(s);
  }

  /* a model error stops the run and keeps its message */
  ldm_sampler_config_preset(&c, "dpmpp_2m", NULL);
  c.steps = 3;
  CHECK(ldm_sampler_new(&s, &c, 16, &err) == LDM_OK, "%s", err.msg);
  float x[16] = {0};
  ldm_rng_state rng;
  ldm_rng_seed(&rng, LDM_RNG_CPU, 1);
  CHECK(ldm_sampler_run(s, x, fail_model, NULL, &rng, 1, NULL, NULL, &err) ==
            LDM_ERR_CANCELLED && strstr(err.msg, "stop at"), "model error: %s", err.msg);
  CHECK(ldm_sampler_run(s, x, zero_model, NULL, &rng, 3, NULL, NULL, &err) ==
            LDM_ERR_INVALID_ARG, "16 values cannot split over 3 generators");
  ldm_sampler_free(s);
  ldm_sampler_free(NULL);
  return ldm_test_finish("sample-unit");
}
