/* Few-row products against weights kept as panels in the weight cache
 * (gemm_panels.c), on CPUs with AVX-512 or AVX2+FMA+F16C (elsewhere: prints
 * why not and checks that nothing takes the path); meson runs it a second
 * time with LDM_CPU_NO_AVX512=1 (ops-gemm-panels-avx2) for the AVX2 tiles.
 * 1. ops_gemm_panels for f32, f16 and bf16 panels over every blocking edge
 *    (M not a multiple of the 8-row AVX-512 or 6-row AVX2 tile, N not a
 *    multiple of the 32-column panel nor of its 16-column halves, K across
 *    the 256-long blocks), one and two threads, against a
 *    double-precision product of the same (rounded) weight. Tolerance |c - r|
 *    <= 1e-4 + 1e-5 |r| (f32 sums of up to 1100 products of magnitude <= 4).
 *    The same products through ops_gemm_wide (the weight in its stored
 *    width, packed per call), with sizes across its 96-row blocks, its
 *    8-panel chunks and its K ranges of 1024; nothing written outside C.
 * 2. ldm_linear and ldm_conv2d (3x3, 1x1, stride 2) with an f16 weight, a
 *    weight cache and at most LDM_PANEL_MAX_ROWS output rows: against the
 *    naive op, same tolerance; the first call puts the panels (half the
 *    bytes of f32 for an f16 weight) into the cache, the second takes them
 *    from there and gives the same bits; more rows do not take the path.
 *    ldm_linear without a cache (f16 and bf16 weights, rows on both sides of
 *    LDM_GEMM_WIDE_MAX_ROWS): against the naive op, same tolerance.
 * 3. Prints the rate of a UNet-sized product (1280 x 11520, f16) at 16, 64, 256
 *    rows through the panels and through ldm_gemm (OpenBLAS) with the f32
 *    weight: a figure, not a check. */
#include "ldm_test.h"

#include <math.h>
#include <time.h>

#include "core/arena.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/threads.h"
#include "core/wcache.h"
#include "ops/ops.h"
#include "ops/ops_util.h"

static float *rand_buf(size_t n, unsigned *s) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; p && i < n; i++) p[i] = (float)((*s = *s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
  return p;
}

static float round_to(ldm_dtype t, float x) {
  if (t == LDM_DTYPE_F16) return ldm_f16_to_f32(ldm_f32_to_f16(x));
  if (t == LDM_DTYPE_BF16) return ldm_bf16_to_f32(ldm_f32_to_bf16(x));
  return x;
}

static const char *tname(ldm_dtype t) { return t == LDM_DTYPE_F16 ? "f16" : t == LDM_DTYPE_BF16 ? "bf16" : "f32"; }

static void gemm_case(ldm_ctx *ctx, ldm_dtype t, int M, int N, int K, unsigned *seed) {
  int64_t lda = K + 3, ldc = N + 5;
  float *A = rand_buf((size_t)M * lda, seed), *W = rand_buf((size_t)N * K, seed);
  float *C = malloc((size_t)M * ldc * 4), *R = malloc((size_t)M * ldc * 4);
  float *P = malloc(ops_panels_floats(t, N, K) * 4);
  CHECK(A && W && C && R && P, "out of memory");
  if (!(A && W && C && R && P)) goto done;
  for (size_t i = 0; i < (size_t)N * K; i++) W[i] = round_to(t, W[i]);
  for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = R[i] = NAN; /* never read; the gaps stay NaN */
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int p = 0; p < K; p++) s += (double)A[i * lda + p] * W[(size_t)j * K + p];
      R[i * ldc + j] = (float)s;
    }
  ops_panels_build(ctx, P, t, W, N, K);
  ops_gemm_panels(ctx, M, N, K, A, lda, P, t, C, ldc);
  char name[128];
  snprintf(name, sizeof name, "panels %s M=%d N=%d K=%d threads=%d", tname(t), M, N, K, ctx->threads);
  int gaps = 0;
  for (int i = 0; i < M; i++)
    for (int64_t j = N; j < ldc; j++) gaps += !isnan(C[i * ldc + j]);
  CHECK(gaps == 0, "%s: wrote %d entries outside C", name, gaps);
  for (int i = 0; i < M; i++) /* compare the rows only */
    for (int64_t j = N; j < ldc; j++) C[i * ldc + j] = R[i * ldc + j] = 0.0f;
  ldm_test_close(name, C, R, (long long)M * ldc, 1e-4, 1e-5);
  if (ops_gemm_wide_usable(ctx)) { /* the same product with the weight packed per call, from its stored width */
    uint16_t *h = t == LDM_DTYPE_F32 ? NULL : malloc((size_t)N * K * 2);
    CHECK(t == LDM_DTYPE_F32 || h, "out of memory");
    if (t != LDM_DTYPE_F32 && !h) goto done;
    for (size_t i = 0; h && i < (size_t)N * K; i++)
      h[i] = t == LDM_DTYPE_F16 ? ldm_f32_to_f16(W[i]) : ldm_f32_to_bf16(W[i]);
    ldm_tensor wt = {t, 2, {N, K}, h ? (void *)h : (void *)W, "w"};
    for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = NAN;
    ldm_status st = ops_gemm_wide(ctx, M, N, K, A, lda, &wt, C, ldc);
    snprintf(name, sizeof name, "packed per call %s M=%d N=%d K=%d threads=%d", tname(t), M, N, K, ctx->threads);
    CHECK(st == LDM_OK, "%s: %s", name, ctx->err->msg);
    gaps = 0;
    for (int i = 0; i < M; i++)
      for (int64_t j = N; j < ldc; j++) gaps += !isnan(C[i * ldc + j]), C[i * ldc + j] = 0.0f;
    CHECK(gaps == 0, "%s: wrote %d entries outside C", name, gaps);
    ldm_test_close(name, C, R, (long long)M * ldc, 1e-4, 1e-5);
    free(h);
  }
done:
  free(A), free(W), free(C), free(R), free(P);
}

static void op_case(ldm_ctx *ctx, int B, int H, int W, int Cin, int Cout, int k, int stride, bool expect_panels,
                    unsigned *seed) {
  bool lin = H == 0;
  int pad = k / 2, Ho = lin ? 1 : (H + 2 * pad - k) / stride + 1, Wo = lin ? 1 : (W + 2 * pad - k) / stride + 1;
  int64_t rows = lin ? B : (int64_t)B * Ho * Wo, in_rows = lin ? B : (int64_t)B * H * W;
  size_t nw = (size_t)Cout * Cin * k * k;
  float *x = rand_buf((size_t)in_rows * Cin, seed), *wf = rand_buf(nw, seed), *b = rand_buf((size_t)Cout, seed);
  uint16_t *wh = malloc(nw * 2);
  float *y = malloc((size_t)rows * Cout * 4), *y2 = malloc((size_t)rows * Cout * 4),
        *r = malloc((size_t)rows * Cout * 4);
  CHECK(x && wf && b && wh && y && y2 && r, "out of memory");
  if (!(x && wf && b && wh && y && y2 && r)) goto done;
  for (size_t i = 0; i < nw; i++) wh[i] = ldm_f32_to_f16(wf[i]), wf[i] = ldm_f16_to_f32(wh[i]);
  ldm_tensor wt = {LDM_DTYPE_F16, lin ? 2 : 4, {Cout, Cin, k, k}, wh, "w"};
  ldm_tensor wft = {LDM_DTYPE_F32, lin ? 2 : 4, {Cout, Cin, k, k}, wf, "w as f32"};
  ldm_tensor bt = {LDM_DTYPE_F32, 1, {Cout}, b, "b"};
  ldm_ctx plain = *ctx;
  plain.wcache = NULL;
  ldm_wcache_free(ctx->wcache); /* keyed by address: a fresh cache for this case's weight */
  ctx->wcache = ldm_wcache_new(SIZE_MAX);
  ldm_status st = lin ? ldm_linear_naive(&plain, r, x, B, &wft, &bt)
                      : ldm_conv2d_naive(&plain, r, x, B, H, W, Cin, &wft, &bt, stride, pad);
  CHECK(st == LDM_OK, "naive op: %s", ctx->err->msg);
  char name[160];
  if (lin)
    snprintf(name, sizeof name, "linear %dx%d -> %d (f16 weight, cache)", B, Cin, Cout);
  else
    snprintf(name, sizeof name, "conv B=%d %dx%d %d->%d k=%d stride=%d (f16 weight, cache)", B, H, W, Cin, Cout, k,
             stride);
  size_t cached = ldm_wcache_bytes(ctx->wcache);
  st = lin ? ldm_linear(ctx, y, x, B, &wt, &bt) : ldm_conv2d(ctx, y, x, B, H, W, Cin, &wt, &bt, stride, pad);
  CHECK(st == LDM_OK, "%s: %s", name, ctx->err->msg);
  size_t grew = ldm_wcache_bytes(ctx->wcache) - cached,
         panel_bytes = ops_panels_floats(LDM_DTYPE_F16, Cout, nw / Cout) * 4;
  if (expect_panels)
    CHECK(grew == panel_bytes, "%s: the cache grew by %zu B, the f16 panels are %zu B", name, grew, panel_bytes);
  else
    CHECK(grew != panel_bytes, "%s: %lld rows took the panels", name, (long long)rows);
  cached = ldm_wcache_bytes(ctx->wcache);
  st = lin ? ldm_linear(ctx, y2, x, B, &wt, &bt) : ldm_conv2d(ctx, y2, x, B, H, W, Cin, &wt, &bt, stride, pad);
  CHECK(st == LDM_OK && ldm_wcache_bytes(ctx->wcache) == cached, "%s, second call: cache %zu -> %zu B", name, cached,
        ldm_wcache_bytes(ctx->wcache));
  CHECK(memcmp(y, y2, (size_t)rows * Cout * 4) == 0, "%s: the second call (cached) differs", name);
  ldm_test_close(name, y, r, rows * Cout, 1e-4, 1e-5);
done:
  free(x), free(wf), free(b), free(wh), free(y), free(y2), free(r);
}

/* ldm_linear without a weight cache, more rows than the panels take (the
 * weight packed per call where ops_gemm_wide_usable): against the naive op */
static void linear_nocache_case(ldm_ctx *ctx, ldm_dtype t, int rows, int Cin, int Cout, unsigned *seed) {
  size_t nw = (size_t)Cout * Cin;
  float *x = rand_buf((size_t)rows * Cin, seed), *wf = rand_buf(nw, seed), *b = rand_buf((size_t)Cout, seed);
  uint16_t *wh = malloc(nw * 2);
  float *y = malloc((size_t)rows * Cout * 4), *r = malloc((size_t)rows * Cout * 4);
  CHECK(x && wf && b && wh && y && r, "out of memory");
  if (!(x && wf && b && wh && y && r)) goto done;
  for (size_t i = 0; i < nw; i++) {
    wh[i] = t == LDM_DTYPE_F16 ? ldm_f32_to_f16(wf[i]) : ldm_f32_to_bf16(wf[i]);
    wf[i] = round_to(t, wf[i]);
  }
  ldm_tensor wt = {t, 2, {Cout, Cin}, wh, "w"}, wft = {LDM_DTYPE_F32, 2, {Cout, Cin}, wf, "w as f32"};
  ldm_tensor bt = {LDM_DTYPE_F32, 1, {Cout}, b, "b"};
  ldm_ctx plain = *ctx;
  plain.wcache = NULL;
  char name[128];
  snprintf(name, sizeof name, "linear %dx%d -> %d (%s weight, no cache)", rows, Cin, Cout, tname(t));
  ldm_status st = ldm_linear_naive(&plain, r, x, rows, &wft, &bt);
  CHECK(st == LDM_OK, "%s, naive: %s", name, ctx->err->msg);
  st = ldm_linear(&plain, y, x, rows, &wt, &bt);
  CHECK(st == LDM_OK, "%s: %s", name, ctx->err->msg);
  ldm_test_close(name, y, r, (long long)rows * Cout, 1e-4, 1e-5);
done:
  free(x), free(wf), free(b), free(wh), free(y), free(r);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void rate(ldm_ctx *ctx, int M, unsigned *seed) {
  const int N = 1280, K = 11520;
  float *A = rand_buf((size_t)M * K, seed), *W = rand_buf((size_t)N * K, seed), *C = malloc((size_t)M * N * 4);
  float *P = malloc(ops_panels_floats(LDM_DTYPE_F16, N, K) * 4);
  if (!(A && W && C && P)) goto done;
  for (size_t i = 0; i < (size_t)N * K; i++) W[i] = round_to(LDM_DTYPE_F16, W[i]);
  ops_panels_build(ctx, P, LDM_DTYPE_F16, W, N, K);
  double best_p = 1e9, best_g = 1e9;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now();
    ops_gemm_panels(ctx, M, N, K, A, K, P, LDM_DTYPE_F16, C, N);
    double t1 = now();
    ldm_gemm(ctx, false, true, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
    double t2 = now();
    best_p = fmin(best_p, t1 - t0), best_g = fmin(best_g, t2 - t1);
  }
  double gf = 2.0 * M * N * K * 1e-9;
  printf("rate M=%d N=%d K=%d, %d threads: f16 panels %.1f GFLOP/s, ldm_gemm (f32 weight) %.1f GFLOP/s (%.2fx)\n", M, N,
         K, ctx->threads, gf / best_p, gf / best_g, best_g / best_p);
done:
  free(A), free(W), free(C), free(P);
}

int main(void) {
  ldm_error err = {0};
  ldm_pool *pool = ldm_pool_new(2);
  ldm_wcache *wc = ldm_wcache_new(SIZE_MAX);
  ldm_ctx ctx = {.pool = NULL, .threads = 1, .scratch = ldm_arena_new(0), .err = &err, .wcache = wc};
  if (!ldm_cpu_has_avx512() && !(ldm_cpu_has_avx2() && ldm_cpu_has_fma() && ldm_cpu_has_f16c())) {
    printf("panel path not run: this CPU has neither AVX-512 nor AVX2+FMA+F16C\n");
    CHECK(!ops_panels_usable(&ctx, 16), "panels usable without AVX-512 or AVX2");
    return ldm_test_finish("gemm-panels");
  }
  printf("panel tiles: %s\n", ldm_cpu_has_avx512() ? "AVX-512 (8 x 32)" : "AVX2 (6 x 16)");
  ldm_ctx nocache = ctx;
  nocache.wcache = NULL;
  CHECK(ops_panels_usable(&ctx, 1) && ops_panels_usable(&ctx, LDM_PANEL_MAX_ROWS), "panels not usable");
  CHECK(!ops_panels_usable(&ctx, LDM_PANEL_MAX_ROWS + 1) && !ops_panels_usable(&nocache, 16),
        "panels usable for many rows or without a cache");
  unsigned seed = 11;
  static const int sizes[][3] = {{1, 1, 1},     {7, 31, 255},     {8, 32, 256},   {9, 33, 257},  {64, 96, 600},
                                 {77, 320, 64}, {128, 65, 513},   {3, 1280, 40},  {13, 20, 300}, {6, 8, 17},
                                 {12, 52, 270}, {200, 290, 1100}, {97, 257, 1031}};
  static const ldm_dtype types[] = {LDM_DTYPE_F32, LDM_DTYPE_F16, LDM_DTYPE_BF16};
  for (int t = 1; t <= 2; t++) {
    ctx.pool = t == 2 ? pool : NULL;
    ctx.threads = t;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
      gemm_case(&ctx, types[i % 3], sizes[i][0], sizes[i][1], sizes[i][2], &seed);
  }
  ctx.pool = pool, ctx.threads = 2;
  op_case(&ctx, 40, 0, 0, 77, 45, 1, 1, true, &seed);   /* linear */
  op_case(&ctx, 1, 8, 8, 40, 70, 3, 1, true, &seed);    /* conv 3x3, 64 pixels */
  op_case(&ctx, 2, 4, 4, 64, 33, 1, 1, true, &seed);    /* conv 1x1, 32 pixels */
  op_case(&ctx, 1, 16, 16, 24, 40, 3, 2, true, &seed);  /* stride 2: 64 pixels */
  op_case(&ctx, 1, 16, 16, 24, 40, 3, 1, true, &seed);  /* 256 pixels */
  op_case(&ctx, 1, 16, 17, 24, 40, 3, 1, false, &seed); /* 272 pixels: not panels */
  linear_nocache_case(&ctx, LDM_DTYPE_F16, 300, 200, 70, &seed);
  linear_nocache_case(&ctx, LDM_DTYPE_BF16, 5, 64, 33, &seed);
  linear_nocache_case(&ctx, LDM_DTYPE_F16, LDM_GEMM_WIDE_MAX_ROWS + 1, 40, 24, &seed);
  rate(&ctx, 16, &seed);
  rate(&ctx, 64, &seed);
  rate(&ctx, 256, &seed);
  ldm_pool_free(pool);
  ldm_wcache_free(ctx.wcache);
  ldm_arena_free(ctx.scratch);
  return ldm_test_finish("gemm-panels");
}
