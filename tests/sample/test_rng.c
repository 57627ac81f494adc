/* torch.randn reproduction (goldens: tests/reference/make_sample.py, made
 * with torch 2.5.1 on the CPU). Tolerance: 0, bit-exact for every value
 * (the issue asks max abs <= 1e-6; we hold the stricter bar). Also checks
 * several draws from one generator and diffusers' per-image generators
 * (seed + i) for a batch. */
#include "ldm_test.h"
#include "sample/rng.h"

static void check_values(const char *name, const float *got, const float *ref,
                         int64_t n) {
  int64_t diff_bits = 0;
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&got[i], &ref[i], 4) != 0) diff_bits++;
  ldm_test_close(name, got, ref, n, 0.0, 0.0);
  CHECK(diff_bits == 0, "%s: %lld of %lld values differ in bits", name,
        (long long)diff_bits, (long long)n);
}

int main(void) {
  ldm_st_file *f = ldm_test_open_golden("sample/randn.safetensors");
  ldm_tensor ct;
  float *unused = NULL;
  const ldm_tensor *cases = ldm_st_find(f, "cases");
  CHECK(cases && cases->dtype == LDM_DTYPE_I64 && cases->ndim == 2,
        "golden 'cases' missing or not i64 [N,2]");
  if (!cases) return ldm_test_finish("sample-rng");
  (void)ct;
  (void)unused;
  const int64_t *meta = cases->data;
  int64_t ncases = cases->shape[0];
  CHECK(ncases >= 20, "only %lld cases", (long long)ncases);
  for (int64_t c = 0; c < ncases; c++) {
    uint64_t seed = (uint64_t)meta[2 * c];
    int64_t n = meta[2 * c + 1];
    char name[64];
    snprintf(name, sizeof name, "randn_%lld", (long long)c);
    ldm_tensor t;
    float *ref = ldm_test_tensor_f32(f, name, &t);
    CHECK(ldm_tensor_numel(&t) == n, "%s: numel mismatch", name);
    float *got = malloc((size_t)n * sizeof(float));
    ldm_rng_state r;
    ldm_rng_seed(&r, LDM_RNG_CPU, seed);
    ldm_rng_randn(&r, got, n);
    char label[96];
    snprintf(label, sizeof label, "randn seed=%llu numel=%lld",
             (unsigned long long)seed, (long long)n);
    check_values(label, got, ref, n);
    free(got);
    free(ref);
  }

  /* one generator, several draws (the scalar path caches a value) */
  {
    const ldm_tensor *nt = ldm_st_find(f, "sequence_numels");
    CHECK(nt != NULL, "no sequence_numels");
    ldm_tensor t;
    float *ref = ldm_test_tensor_f32(f, "sequence", &t);
    int64_t total = ldm_tensor_numel(&t);
    float *got = malloc((size_t)total * sizeof(float));
    ldm_torch_rng g;
    ldm_torch_rng_seed(&g, 11);
    int64_t off = 0;
    for (int64_t i = 0; nt && i < nt->shape[0]; i++) {
      int64_t n = ((const int64_t *)nt->data)[i];
      ldm_torch_rng_randn(&g, got + off, n);
      off += n;
    }
    CHECK(off == total, "sequence length %lld vs %lld", (long long)off,
          (long long)total);
    check_values("randn sequence seed=11", got, ref, total);
    free(got);
    free(ref);
  }

  /* diffusers randn_tensor with generators seeded 1000 + i */
  {
    ldm_tensor t;
    float *ref = ldm_test_tensor_f32(f, "batch_seed1000_3x4x8x8", &t);
    float got[3 * 256];
    for (int b = 0; b < 3; b++) {
      ldm_rng_state r;
      ldm_rng_seed(&r, LDM_RNG_CPU, 1000 + (uint64_t)b);
      ldm_rng_randn(&r, got + 256 * b, 256);
    }
    check_values("randn_tensor batch seeds 1000+i", got, ref, 3 * 256);
    free(ref);
  }
  ldm_st_close(f);
  return ldm_test_finish("sample-rng");
}
