/* A1111 "NV" seeds: Philox 4x32-10 draws as torch.randn(device='cuda').
 * No GPU is available to this project's CI, so the goldens come from
 * AUTOMATIC1111/stable-diffusion-webui's own CPU implementation of that
 * generator (modules/rng_philox.py, commit ef1698fd), run at development
 * time by tests/reference/make_sample.py (LDM_A1111_RNG_PHILOX=<copy>).
 * Tolerance: max abs 1e-6 (the reference computes in double and rounds to
 * float; we do the same, so equality is expected). Also checks that the
 * generator's second draw uses offset 1. */
#include "ldm_test.h"
#include "sample/rng.h"

int main(void) {
  ldm_st_file *f = ldm_test_open_golden("sample/philox.safetensors");
  const ldm_tensor *cases = ldm_st_find(f, "cases");
  CHECK(cases && cases->dtype == LDM_DTYPE_I64, "no cases tensor");
  if (!cases) return ldm_test_finish("sample-philox");
  const int64_t *meta = cases->data;
  for (int64_t c = 0; c < cases->shape[0]; c++) {
    uint64_t seed = (uint64_t)meta[2 * c];
    int64_t n = meta[2 * c + 1];
    char name[64], label[96];
    ldm_tensor t;
    snprintf(name, sizeof name, "philox_%lld", (long long)c);
    float *ref = ldm_test_tensor_f32(f, name, &t);
    CHECK(ldm_tensor_numel(&t) == n, "%s numel", name);
    float *got = malloc((size_t)n * sizeof(float));
    ldm_rng_state r;
    ldm_rng_seed(&r, LDM_RNG_CUDA, seed);
    ldm_rng_randn(&r, got, n);
    snprintf(label, sizeof label, "philox seed=%llu numel=%lld",
             (unsigned long long)seed, (long long)n);
    ldm_test_close(label, got, ref, n, 1e-6, 0.0);
    free(ref);
    snprintf(name, sizeof name, "philox_%lld_next", (long long)c);
    ref = ldm_test_tensor_f32(f, name, &t);
    ldm_rng_randn(&r, got, 5);
    snprintf(label, sizeof label, "philox seed=%llu second draw",
             (unsigned long long)seed);
    ldm_test_close(label, got, ref, 5, 1e-6, 0.0);
    free(ref);
    free(got);
  }
  ldm_st_close(f);
  return ldm_test_finish("sample-philox");
}
