/* Shared helpers for C tests: tolerance checks that always print what they
 * saw, golden loading from tests/golden, and a failure counter.
 * Op tolerance (STYLE.md): |a - r| <= atol + rtol * |r|. */
#ifndef LDM_TEST_H
#define LDM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "io/safetensors.h"

static int ldm_test_failures = 0;
static int ldm_test_checks = 0;

#define CHECK(cond, ...)                                        \
  do {                                                          \
    ldm_test_checks++;                                          \
    if (!(cond)) {                                              \
      ldm_test_failures++;                                      \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
      fprintf(stderr, __VA_ARGS__);                             \
      fprintf(stderr, "\n");                                    \
    }                                                           \
  } while (0)

/* Compares n floats; prints "name: max_abs=... max_rel=... (tol atol+rtol*|r|)".
 * Returns 1 on pass. */
static inline int ldm_test_close(const char *name, const float *got,
                                 const float *ref, long long n, double atol,
                                 double rtol) {
  double max_abs = 0, max_ref = 0;
  long long bad = 0, first_bad = -1;
  for (long long i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)ref[i]);
    if (!(d == d) || isinf(got[i]) != isinf(ref[i])) d = INFINITY;
    if (d > max_abs) max_abs = d;
    if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    if (!(d <= atol + rtol * fabs((double)ref[i]))) {
      if (first_bad < 0) first_bad = i;
      bad++;
    }
  }
  ldm_test_checks++;
  printf("%s: n=%lld max_abs=%.3g (max|ref|=%.3g, tol %.1g+%.1g*|r|)%s\n", name,
         n, max_abs, max_ref, atol, rtol, bad ? " FAIL" : "");
  if (bad) {
    ldm_test_failures++;
    fprintf(stderr, "FAIL %s: %lld of %lld elements out of tolerance\n", name,
            bad, n);
    for (long long i = first_bad, shown = 0; i < n && shown < 5; i++) {
      double d = fabs((double)got[i] - (double)ref[i]);
      if (!(d <= atol + rtol * fabs((double)ref[i]))) {
        fprintf(stderr, "  [%lld] got %.7g ref %.7g\n", i, got[i], ref[i]);
        shown++;
      }
    }
  }
  return bad == 0;
}

/* Path of a golden file: $LDM_GOLDEN_DIR (set by meson) / name. */
static inline const char *ldm_test_golden(const char *name, char *buf, size_t n) {
  const char *dir = getenv("LDM_GOLDEN_DIR");
  snprintf(buf, n, "%s/%s", dir ? dir : "tests/golden", name);
  return buf;
}

/* Opens a golden file or fails the test loudly (never skips). */
static inline ldm_st_file *ldm_test_open_golden(const char *name) {
  char path[4096];
  ldm_error err = {0};
  ldm_st_file *f = NULL;
  if (ldm_st_open(&f, ldm_test_golden(name, path, sizeof path), &err) != LDM_OK) {
    fprintf(stderr, "FAIL: cannot open golden %s: %s\n", path, err.msg);
    exit(1);
  }
  return f;
}

/* A golden tensor converted to a malloc'd f32 array (caller frees). */
static inline float *ldm_test_tensor_f32(ldm_st_file *f, const char *name,
                                         ldm_tensor *shape_out) {
  const ldm_tensor *t = ldm_st_find(f, name);
  if (!t) {
    fprintf(stderr, "FAIL: golden %s has no tensor '%s'\n", ldm_st_path(f), name);
    exit(1);
  }
  int64_t n = ldm_tensor_numel(t);
  float *out = malloc((size_t)(n ? n : 1) * sizeof(float));
  ldm_error err = {0};
  if (!out || ldm_tensor_read_f32(t, 0, n, out, &err) != LDM_OK) {
    fprintf(stderr, "FAIL: golden tensor '%s': %s\n", name, err.msg);
    exit(1);
  }
  if (shape_out) *shape_out = *t;
  return out;
}

static inline int ldm_test_finish(const char *suite) {
  printf("%s: %d checks, %d failed\n", suite, ldm_test_checks, ldm_test_failures);
  return ldm_test_failures ? 1 : 0;
}

#endif
