/* Group norm where random inputs never go (tests/reference/make_ops_edges.py,
 * torch's F.group_norm in float64): flat groups, whose variance is 0, must
 * give 0 (or silu(beta)) and never NaN, and groups whose variance is as small
 * as epsilon, where epsilon moves the result (x10 moves it by 0.6 to 1.3, so
 * a wrong or ignored epsilon fails here and not only in the model goldens).
 * Both the one-call op and the pooled sums + apply path, serial and on a
 * pool of 2. Tolerance (STYLE.md, ops): |a - r| <= 1e-5 + 1e-4 * |r|. */
#include "ldm_test.h"

#include <stdint.h>

#include "core/arena.h"
#include "core/threads.h"
#include "ops/ops.h"

#define ATOL 1e-5
#define RTOL 1e-4

static ldm_st_file *gf;
static ldm_ctx ctx;
static ldm_error err;

static const ldm_tensor *find(const char *c, const char *what) {
  char n[128];
  snprintf(n, sizeof n, "%s.%s", c, what);
  return ldm_st_find(gf, n);
}

static float *f32(const char *c, const char *what) {
  char n[128];
  snprintf(n, sizeof n, "%s.%s", c, what);
  return ldm_test_tensor_f32(gf, n, NULL);
}

static void check_case(const char *c, const char *tag) {
  int64_t p[6];
  const ldm_tensor *pt = find(c, "params");
  CHECK(pt && ldm_tensor_read_i64(pt, 0, 6, p, &err) == LDM_OK, "%s: params", c);
  int B = (int)p[0], C = (int)p[1], G = (int)p[4];
  bool silu = p[5] != 0;
  int64_t HW = p[2] * p[3], n = (int64_t)B * C * HW;
  float *eps = f32(c, "eps"), *xc = f32(c, "x"), *ref = f32(c, "y");
  const ldm_tensor *g = find(c, "gamma"), *b = find(c, "beta");
  float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n),
        *yc = malloc(sizeof(float) * (size_t)n);
  float *mean = malloc(sizeof(float) * (size_t)(B * G)), *rstd = malloc(sizeof(float) * (size_t)(B * G));
  double *sum = calloc((size_t)(B * G), sizeof(double)), *sq = calloc((size_t)(B * G), sizeof(double));
  if (!x || !y || !yc || !mean || !rstd || !sum || !sq) exit(1);
  ldm_nchw_to_nhwc(x, xc, B, C, HW);
  char name[160];

  ldm_status s = ldm_group_norm(&ctx, y, x, B, HW, C, G, eps[0], g, b, silu);
  CHECK(s == LDM_OK, "%s %s: group_norm -> %s (%s)", tag, c, ldm_status_str(s), err.msg);
  ldm_nhwc_to_nchw(yc, y, B, C, HW);
  snprintf(name, sizeof name, "%s group_norm %s", tag, c);
  ldm_test_close(name, yc, ref, n, ATOL, RTOL);

  /* statistics from two pieces of each image, then the apply pass */
  int64_t h1 = HW / 3;
  for (int bb = 0; bb < B; bb++) {
    const float *xb = x + (int64_t)bb * HW * C;
    s = ldm_group_norm_sums(&ctx, sum + bb * G, sq + bb * G, xb, 1, h1, C, G);
    if (s == LDM_OK) s = ldm_group_norm_sums(&ctx, sum + bb * G, sq + bb * G, xb + h1 * C, 1, HW - h1, C, G);
    CHECK(s == LDM_OK, "%s %s: group_norm_sums -> %s", tag, c, ldm_status_str(s));
  }
  double cnt = (double)HW * (C / G);
  for (int i = 0; i < B * G; i++) {
    double m = sum[i] / cnt, v = sq[i] / cnt - m * m;
    mean[i] = (float)m;
    rstd[i] = (float)(1.0 / sqrt((v > 0 ? v : 0) + eps[0]));
  }
  s = ldm_group_norm_apply(&ctx, y, x, B, HW, C, G, mean, rstd, g, b, silu);
  CHECK(s == LDM_OK, "%s %s: group_norm_apply -> %s", tag, c, ldm_status_str(s));
  ldm_nhwc_to_nchw(yc, y, B, C, HW);
  snprintf(name, sizeof name, "%s group_norm sums+apply %s", tag, c);
  ldm_test_close(name, yc, ref, n, ATOL, RTOL);

  /* in place, as the VAE runs it */
  s = ldm_group_norm(&ctx, x, x, B, HW, C, G, eps[0], g, b, silu);
  CHECK(s == LDM_OK, "%s %s: in-place group_norm -> %s", tag, c, ldm_status_str(s));
  ldm_nhwc_to_nchw(yc, x, B, C, HW);
  snprintf(name, sizeof name, "%s group_norm in-place %s", tag, c);
  ldm_test_close(name, yc, ref, n, ATOL, RTOL);
  free(eps), free(xc), free(ref), free(x), free(y), free(yc), free(mean), free(rstd), free(sum), free(sq);
}

int main(void) {
  gf = ldm_test_open_golden("ops/gn_edges.safetensors");
  ctx.scratch = ldm_arena_new(0);
  ctx.err = &err;
  for (int threads = 1; threads <= 2; threads++) {
    char tag[8];
    snprintf(tag, sizeof tag, "t%d", threads);
    ctx.threads = threads;
    ctx.pool = threads > 1 ? ldm_pool_new(threads) : NULL;
    check_case("gn_flat", tag);
    check_case("gn_flat_affine_silu", tag);
    ldm_pool_free(ctx.pool);
  }
  ldm_arena_free(ctx.scratch);
  ldm_st_close(gf);
  return ldm_test_finish("ops-norm-edges");
}
