/* The prepared-weight cache (core/wcache.c) through the ops that use it:
 * conv2d (Winograd, im2col, 1x1) with f16 weights gives the same bits with
 * and without the cache, on the call that fills it and on the one that
 * reuses it; linear with few rows (13) takes the cached panels on AVX-512
 * CPUs (gemm_panels.c: another order of sums than the streamed product
 * without a cache), so there within 1e-5 |y| + 1e-6, and a wrong entry is
 * far off; a view of the first rows of a weight (same address,
 * fewer elements) is its own entry; a cache too small for a weight holds
 * nothing and changes nothing; two threads filling one entry keep one. */
#include "ldm_test.h"
#include "core/arena.h"
#include "core/half.h"
#include "core/threads.h"
#include "core/wcache.h"
#include "ops/ops.h"
#include "ops/ops_util.h"

#include <math.h>
#include <pthread.h>

static unsigned seed = 12345;
static float rnd(void) {
  seed = seed * 1103515245u + 12345u;
  return (float)((seed >> 16) & 0x7fff) / 16384.0f - 1.0f;
}

static ldm_tensor f16_tensor(uint16_t *buf, int64_t n, int ndim, const int64_t *shape, const char *name) {
  for (int64_t i = 0; i < n; i++) buf[i] = ldm_f32_to_f16(0.2f * rnd());
  ldm_tensor t = {.dtype = LDM_DTYPE_F16, .ndim = ndim, .data = buf, .name = name};
  for (int d = 0; d < ndim; d++) t.shape[d] = shape[d];
  return t;
}

/* Weights outlive the cache that is keyed by their addresses (as a model's
 * mapped file does): freed only after it. */
static void *kept[16];
static int n_kept;
static void keep(void *p) { kept[n_kept++] = p; }
static void free_kept(void) {
  while (n_kept) free(kept[--n_kept]);
}

static int same(const float *a, const float *b, int64_t n) {
  return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

/* a == b up to rounding: |a - b| <= 1e-5 |b| + 1e-6 */
static int close(const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!(fabsf(a[i] - b[i]) <= 1e-5f * fabsf(b[i]) + 1e-6f)) return 0;
  return 1;
}

typedef struct conv_case {
  const char *name;
  int Cin, Cout, k, pad;
  ldm_conv_algo algo;
} conv_case;

static void test_conv(ldm_ctx *ctx, ldm_wcache *wc, const conv_case *c) {
  const int B = 2, H = 17, W = 19;
  int64_t wn = (int64_t)c->Cout * c->Cin * c->k * c->k, xn = (int64_t)B * H * W * c->Cin;
  int64_t yn = (int64_t)B * H * W * c->Cout;
  uint16_t *wb = malloc((size_t)wn * 2), *bb = malloc((size_t)c->Cout * 2);
  int64_t wshape[4] = {c->Cout, c->Cin, c->k, c->k}, bshape[1] = {c->Cout};
  ldm_tensor w = f16_tensor(wb, wn, 4, wshape, "w"), b = f16_tensor(bb, c->Cout, 1, bshape, "b");
  float *x = malloc((size_t)xn * sizeof(float));
  float *y0 = malloc((size_t)yn * sizeof(float)), *y1 = malloc((size_t)yn * sizeof(float));
  float *y2 = malloc((size_t)yn * sizeof(float));
  for (int64_t i = 0; i < xn; i++) x[i] = rnd();
  ctx->wcache = NULL;
  CHECK(ldm_conv2d_algo(ctx, y0, x, B, H, W, c->Cin, &w, &b, 1, c->pad, c->algo, 1 << 20) == LDM_OK, "%s: plain",
        c->name);
  ctx->wcache = wc;
  size_t before = ldm_wcache_bytes(wc);
  CHECK(ldm_conv2d_algo(ctx, y1, x, B, H, W, c->Cin, &w, &b, 1, c->pad, c->algo, 1 << 20) == LDM_OK, "%s: fill",
        c->name);
  size_t after = ldm_wcache_bytes(wc);
  CHECK(ldm_conv2d_algo(ctx, y2, x, B, H, W, c->Cin, &w, &b, 1, c->pad, c->algo, 1 << 20) == LDM_OK, "%s: reuse",
        c->name);
  CHECK(after > before, "%s: the cache took the weight (%zu -> %zu bytes)", c->name, before, after);
  CHECK(ldm_wcache_bytes(wc) == after, "%s: the second call added nothing", c->name);
  CHECK(same(y0, y1, yn) && same(y0, y2, yn), "%s: cached results differ from the plain ones", c->name);
  printf("wcache %s: %zu bytes cached, results bit-identical: %s\n", c->name, after - before,
         same(y0, y1, yn) && same(y0, y2, yn) ? "yes" : "NO");
  ctx->wcache = NULL;
  keep(wb), keep(bb);
  free(x), free(y0), free(y1), free(y2);
}

/* With a weight cache, Winograd takes F(4x4) from 64 tiles of 4x4 on (a 32x32
 * latent at batch 1), without one from 256: the cache holds the F(4x4)
 * weights (36 per weight's 9) and the result equals the uncached F(2x2)'s
 * within rounding. With more channels (the transformed kernel past the own
 * fused kernel's size) and at most LDM_PANEL_MAX_ROWS tiles, the cache holds
 * it as f32 panels per point for ops_gemm_panels (16 or 36 points). */
static void test_wino_cached(ldm_ctx *ctx, ldm_wcache *wc, int H, int Cin, int Cout, int m, bool panels) {
  const int W = H;
  int64_t wn = (int64_t)Cout * Cin * 9, xn = (int64_t)H * W * Cin, yn = (int64_t)H * W * Cout;
  uint16_t *wb = malloc((size_t)wn * 2);
  int64_t wshape[4] = {Cout, Cin, 3, 3};
  ldm_tensor w = f16_tensor(wb, wn, 4, wshape, "w4");
  float *x = malloc((size_t)xn * sizeof(float)), *y0 = malloc((size_t)yn * sizeof(float));
  float *y1 = malloc((size_t)yn * sizeof(float));
  for (int64_t i = 0; i < xn; i++) x[i] = rnd();
  ctx->wcache = NULL;
  CHECK(ldm_conv2d(ctx, y0, x, 1, H, W, Cin, &w, NULL, 1, 1) == LDM_OK, "%dx%d plain", H, W);
  ctx->wcache = wc;
  size_t before = ldm_wcache_bytes(wc);
  CHECK(ldm_conv2d(ctx, y1, x, 1, H, W, Cin, &w, NULL, 1, 1) == LDM_OK, "%dx%d cached", H, W);
  size_t grew = ldm_wcache_bytes(wc) - before;
  size_t want = (panels ? ops_winograd_panels_floats(Cin, Cout, m)
                        : (size_t)(m + 2) * (size_t)(m + 2) * (size_t)Cout * (size_t)Cin) *
                sizeof(float);
  CHECK(grew == want, "%dx%d %d->%d cached: the cache grew by %zu bytes, F(%dx%d) %s are %zu", H, W, Cin, Cout, grew, m,
        m, panels ? "panels" : "weights", want);
  CHECK(ops_panels_usable(ctx, 64) || !panels, "panels expected without AVX-512");
  char name[128];
  snprintf(name, sizeof name, "wcache %dx%d %d->%d: F(%dx%d) cached%s vs uncached", H, W, Cin, Cout, m, m,
           panels ? " as panels" : "");
  ldm_test_close(name, y1, y0, yn, 1e-4, 1e-4);
  ctx->wcache = NULL;
  keep(wb);
  free(x), free(y0), free(y1);
}

static void test_linear(ldm_ctx *ctx, ldm_wcache *wc) {
  const int64_t M = 13, N = 48, K = 40;
  uint16_t *wb = malloc((size_t)(N * K) * 2);
  int64_t shape[2] = {N, K};
  ldm_tensor w = f16_tensor(wb, N * K, 2, shape, "lin.w");
  ldm_tensor half = w; /* its first N/2 rows: same address, fewer elements */
  half.shape[0] = N / 2;
  float *x = malloc((size_t)(M * K) * sizeof(float));
  float *y0 = malloc((size_t)(M * N) * sizeof(float)), *y1 = malloc((size_t)(M * N) * sizeof(float));
  for (int64_t i = 0; i < M * K; i++) x[i] = rnd();
  ctx->wcache = NULL;
  CHECK(ldm_linear(ctx, y0, x, M, &half, NULL) == LDM_OK, "linear half plain");
  ctx->wcache = wc;
  CHECK(ldm_linear(ctx, y1, x, M, &half, NULL) == LDM_OK, "linear half cached");
  CHECK(close(y0, y1, M * N / 2), "linear half: cached result differs");
  ctx->wcache = NULL;
  CHECK(ldm_linear(ctx, y0, x, M, &w, NULL) == LDM_OK, "linear plain");
  ctx->wcache = wc;
  CHECK(ldm_linear(ctx, y1, x, M, &w, NULL) == LDM_OK, "linear full cached after the half view");
  CHECK(close(y0, y1, M * N), "linear: the half view's entry was used for the whole weight");
  ctx->wcache = NULL;
  keep(wb);
  free(x), free(y0), free(y1);
}

typedef struct race {
  ldm_wcache *wc;
  const void *key;
  const float *got;
} race;

static void *racer(void *arg) {
  race *r = arg;
  float *buf = ldm_wcache_reserve(r->wc, 64);
  if (buf) {
    for (int i = 0; i < 64; i++) buf[i] = (float)i;
    r->got = ldm_wcache_add(r->wc, r->key, LDM_WCACHE_F32, buf, 64);
  }
  return NULL;
}

int main(void) {
  ldm_error err = {0};
  ldm_ctx ctx = {.pool = ldm_pool_new(2), .threads = 2, .scratch = ldm_arena_new(0), .err = &err};
  ldm_wcache *wc = ldm_wcache_new((size_t)256 << 20);
  const conv_case cases[] = {
      {"conv3x3 winograd", 32, 48, 3, 1, LDM_CONV_WINOGRAD}, /* the own fused kernel: U */
      {"conv3x3 im2col", 24, 16, 3, 1, LDM_CONV_IM2COL},
      {"conv1x1", 24, 40, 1, 0, LDM_CONV_AUTO},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_conv(&ctx, wc, &cases[i]);
  test_linear(&ctx, wc);
  test_wino_cached(&ctx, wc, 32, 32, 48, 4, false);
  /* past the own kernel's 10 MiB of transformed weights: panels where the
   * CPU has AVX-512 (ops_panels_usable), else as U */
  bool avx512 = ops_panels_usable(&(ldm_ctx){.wcache = wc}, 64);
  test_wino_cached(&ctx, wc, 32, 320, 320, 4, avx512); /* 64 tiles, 36 points */
  test_wino_cached(&ctx, wc, 16, 424, 440, 2, avx512); /* 64 tiles, 16 points, 440 = 13.75 panels */
  ldm_wcache_free(wc);
  free_kept();

  /* a cache too small for any weight: nothing held, same results */
  ldm_wcache *tiny = ldm_wcache_new(1024);
  const conv_case big = {"conv3x3 winograd, cache of 1 KiB", 32, 40, 3, 1, LDM_CONV_WINOGRAD};
  uint16_t *wb = malloc(32 * 40 * 9 * 2);
  int64_t shape[4] = {40, 32, 3, 3};
  ldm_tensor w = f16_tensor(wb, 40 * 32 * 9, 4, shape, "w");
  float *x = calloc(17 * 19 * 32, sizeof(float)), *y0 = malloc(17 * 19 * 40 * sizeof(float)),
        *y1 = malloc(17 * 19 * 40 * sizeof(float));
  for (int i = 0; i < 17 * 19 * 32; i++) x[i] = rnd();
  CHECK(ldm_conv2d_algo(&ctx, y0, x, 1, 17, 19, 32, &w, NULL, 1, 1, big.algo, 1 << 20) == LDM_OK, "tiny plain");
  ctx.wcache = tiny;
  CHECK(ldm_conv2d_algo(&ctx, y1, x, 1, 17, 19, 32, &w, NULL, 1, 1, big.algo, 1 << 20) == LDM_OK, "tiny cached");
  ctx.wcache = NULL;
  CHECK(ldm_wcache_bytes(tiny) == 0 && same(y0, y1, 17 * 19 * 40), "%s: holds %zu bytes", big.name,
        ldm_wcache_bytes(tiny));
  ldm_wcache_free(tiny);
  free(wb), free(x), free(y0), free(y1);

  /* two threads publishing the same entry: one wins, both see it */
  ldm_wcache *rc = ldm_wcache_new(1 << 20);
  static const char key[1];
  race r[2] = {{rc, key, NULL}, {rc, key, NULL}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, racer, &r[i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  CHECK(r[0].got && r[0].got == r[1].got && ldm_wcache_bytes(rc) == 64 * sizeof(float),
        "race: %p %p, %zu bytes", (const void *)r[0].got, (const void *)r[1].got, ldm_wcache_bytes(rc));
  ldm_wcache_free(rc);

  ldm_arena_free(ctx.scratch);
  ldm_pool_free(ctx.pool);
  return ldm_test_finish("wcache");
}
