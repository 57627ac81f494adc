/* The AMX bf16 path (gemm_amx.c) where the CPU and the OS let the process
 * use AMX-BF16; elsewhere it prints why not and checks that nothing claims
 * AMX. Prints the path LDM_PRECISION_BF16 runs on either way.
 * 1. ldm_gemm (B packed per call): sizes across every blocking edge (M < 16,
 *    M > MC = 256 rows, N not a multiple of 32, K < 32, K > KC = 512 and
 *    odd), both thread splits (rows; columns for few rows), alpha/beta,
 *    beta = 0 with NaN in C (never read), B stored either way, against a
 *    double-precision product of the bf16-rounded operands (ldm_f32_to_bf16,
 *    torch's rounding). Tolerance |c - r| <= 2e-3 + 1e-4 |r| (f32 sums of up
 *    to 1100 products of magnitude <= 4, in another order). It must also
 *    differ from the unrounded product by more than that somewhere.
 * 2. ldm_linear and ldm_conv2d in bf16 (weights as cached panels, bias in
 *    the store): conv 3x3 with Cin a multiple of 32 (rows gathered from the
 *    image), Cin = 4 (im2col), 1x1, stride 2; against the naive op on the
 *    same bf16-rounded input and weight, same tolerance; the second call
 *    takes the panels from the weight cache and gives the same result.
 * 3. Fused attention on AMX (Q, K, probabilities and V rounded to bf16, f32
 *    sums and softmax) against the bf16 emulation of attention_fused.c (the
 *    same roundings, chunks and softmax, another order of sums): |a - e| <=
 *    1e-4; and different from the f32 kernel somewhere (> 1e-4). Shapes:
 *    cross-attention (77 keys), several key chunks (600 > 256), head sizes
 *    40 (padded to 64), 64 and 24, query rows not a multiple of 32. */
#include "ldm_test.h"

#include <math.h>

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

static float r16(float x) { return ldm_bf16_to_f32(ldm_f32_to_bf16(x)); }

static void gemm_case(ldm_ctx *ctx, int M, int N, int K, bool tb, float beta, unsigned *seed) {
  const int pad = 3;
  int64_t lda = K + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  size_t na = (size_t)M * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
  float *A = rand_buf(na, seed), *B = rand_buf(nb, seed), *C0 = rand_buf(nc, seed);
  float *C = malloc(nc * 4), *R = malloc(nc * 4), *F = malloc(nc * 4);
  CHECK(A && B && C0 && C && R && F, "out of memory");
  if (!(A && B && C0 && C && R && F)) goto done;
  const float alpha = 0.7f;
  if (beta == 0.0f)
    for (size_t i = 0; i < nc; i++) C0[i] = NAN;
  memcpy(C, C0, nc * 4);
  double worst_f32 = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0, f = 0;
      for (int p = 0; p < K; p++) {
        float a = A[i * lda + p], b = tb ? B[j * ldb + p] : B[p * ldb + j];
        s += (double)r16(a) * r16(b);
        f += (double)a * b;
      }
      double c0 = beta == 0.0f ? 0.0 : (double)beta * C0[i * ldc + j];
      R[i * N + j] = (float)(alpha * s + c0);
      F[i * N + j] = (float)(alpha * f + c0);
    }
  size_t in_use = ldm_arena_in_use(ctx->scratch);
  ldm_status st = ldm_gemm(ctx, false, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  CHECK(st == LDM_OK, "ldm_gemm: %s", ctx->err->msg);
  CHECK(ldm_arena_in_use(ctx->scratch) == in_use, "amx gemm kept scratch");
  for (int i = 0; i < M; i++) memmove(C + (size_t)i * N, C + i * ldc, (size_t)N * 4);
  for (int i = 0; i < M * N; i++) worst_f32 = fmax(worst_f32, fabs((double)C[i] - F[i]));
  char name[128];
  snprintf(name, sizeof name, "amx gemm %dx%dx%d tb=%d beta=%g threads=%d", M, N, K, tb, beta,
           ctx->pool ? ldm_pool_size(ctx->pool) : 1);
  ldm_test_close(name, C, R, (long long)M * N, 2e-3, 1e-4);
  if (K >= 16) {
    CHECK(worst_f32 > 2e-3, "%s: equals the f32 product (max diff %g): operands not rounded?", name, worst_f32);
    printf("%s: max |bf16 - f32 product| = %.3g\n", name, worst_f32);
  }
done:
  free(A), free(B), free(C0), free(C), free(R), free(F);
}

/* conv (or linear when H == 0) in bf16 on AMX against the naive op on the
 * rounded operands; twice, the second from the cached panels. */
static void op_case(ldm_ctx *ctx, int B, int H, int W, int Cin, int Cout, int k, int stride, unsigned *seed) {
  bool lin = H == 0;
  int pad = k / 2, Ho = lin ? 0 : ldm_conv_out(H, k, stride, pad), Wo = lin ? 0 : ldm_conv_out(W, k, stride, pad);
  int64_t rows = lin ? B : (int64_t)B * Ho * Wo, in_rows = lin ? B : (int64_t)B * H * W;
  size_t nw = (size_t)Cout * Cin * (lin ? 1 : k * k);
  float *x = rand_buf((size_t)in_rows * Cin, seed), *w = rand_buf(nw, seed), *b = rand_buf((size_t)Cout, seed);
  float *y = malloc((size_t)rows * Cout * 4), *y2 = malloc((size_t)rows * Cout * 4),
        *r = malloc((size_t)rows * Cout * 4);
  float *xr = malloc((size_t)in_rows * Cin * 4), *wr = malloc(nw * 4);
  CHECK(x && w && b && y && y2 && r && xr && wr, "out of memory");
  if (!(x && w && b && y && y2 && r && xr && wr)) goto done;
  for (int64_t i = 0; i < in_rows * Cin; i++) xr[i] = r16(x[i]);
  for (size_t i = 0; i < nw; i++) wr[i] = r16(w[i]);
  ldm_tensor wt = {LDM_DTYPE_F32, lin ? 2 : 4, {Cout, Cin, k, k}, w, "w"};
  ldm_tensor wrt = {LDM_DTYPE_F32, lin ? 2 : 4, {Cout, Cin, k, k}, wr, "w rounded"};
  ldm_tensor bt = {LDM_DTYPE_F32, 1, {Cout}, b, "b"};
  ldm_ctx f32 = *ctx;
  f32.precision = LDM_PRECISION_F32;
  f32.wcache = NULL;
  ldm_status st = lin ? ldm_linear_naive(&f32, r, xr, B, &wrt, &bt)
                      : ldm_conv2d_naive(&f32, r, xr, B, H, W, Cin, &wrt, &bt, stride, pad);
  CHECK(st == LDM_OK, "naive op: %s", ctx->err->msg);
  size_t cached = ldm_wcache_bytes(ctx->wcache);
  st = lin ? ldm_linear(ctx, y, x, B, &wt, &bt) : ldm_conv2d(ctx, y, x, B, H, W, Cin, &wt, &bt, stride, pad);
  CHECK(st == LDM_OK, "amx op: %s", ctx->err->msg);
  CHECK(ldm_wcache_bytes(ctx->wcache) > cached, "the bf16 panels did not go to the weight cache");
  cached = ldm_wcache_bytes(ctx->wcache);
  st = lin ? ldm_linear(ctx, y2, x, B, &wt, &bt) : ldm_conv2d(ctx, y2, x, B, H, W, Cin, &wt, &bt, stride, pad);
  CHECK(st == LDM_OK && ldm_wcache_bytes(ctx->wcache) == cached, "second call: %s, cache %zu -> %zu B", ctx->err->msg,
        cached, ldm_wcache_bytes(ctx->wcache));
  CHECK(memcmp(y, y2, (size_t)rows * Cout * 4) == 0, "second call (cached panels) differs");
  char name[160];
  if (lin)
    snprintf(name, sizeof name, "amx linear %dx%d -> %d", B, Cin, Cout);
  else
    snprintf(name, sizeof name, "amx conv B=%d %dx%d %d->%d k=%d stride=%d", B, H, W, Cin, Cout, k, stride);
  ldm_test_close(name, y, r, rows * Cout, 2e-3, 1e-4);
done:
  free(x), free(w), free(b), free(y), free(y2), free(r), free(xr), free(wr);
}

static void attn_case(ldm_ctx *ctx, int B, int Tq, int Tk, int heads, int dh, unsigned *seed) {
  int64_t D = (int64_t)heads * dh;
  float *q = rand_buf((size_t)B * Tq * D, seed), *k = rand_buf((size_t)B * Tk * D, seed);
  float *v = rand_buf((size_t)B * Tk * D, seed);
  float *o = malloc((size_t)B * Tq * D * 4), *e = malloc((size_t)B * Tq * D * 4), *f = malloc((size_t)B * Tq * D * 4);
  CHECK(q && k && v && o && e && f, "out of memory");
  if (!(q && k && v && o && e && f)) goto done;
  for (int64_t i = 0; i < (int64_t)B * Tq * D; i++) q[i] *= 0.5f;
  ldm_ctx c = *ctx;
  c.precision = LDM_PRECISION_BF16_EMULATED;
  CHECK(ldm_attention(&c, e, D, q, D, k, D, v, D, B, Tq, Tk, heads, dh, false) == LDM_OK, "emulated: %s", c.err->msg);
  c.precision = LDM_PRECISION_F32;
  CHECK(ldm_attention(&c, f, D, q, D, k, D, v, D, B, Tq, Tk, heads, dh, false) == LDM_OK, "f32: %s", c.err->msg);
  size_t in_use = ldm_arena_in_use(ctx->scratch);
  CHECK(ldm_attention(ctx, o, D, q, D, k, D, v, D, B, Tq, Tk, heads, dh, false) == LDM_OK, "amx: %s", ctx->err->msg);
  CHECK(ldm_arena_in_use(ctx->scratch) == in_use, "amx attention kept scratch");
  char name[128];
  snprintf(name, sizeof name, "amx attention B=%d Tq=%d Tk=%d heads=%d dh=%d vs bf16-emulated", B, Tq, Tk, heads, dh);
  ldm_test_close(name, o, e, (long long)B * Tq * D, 1e-4, 0);
  double worst = 0;
  for (int64_t i = 0; i < (int64_t)B * Tq * D; i++) worst = fmax(worst, fabs((double)o[i] - f[i]));
  CHECK(worst > 1e-4, "%s: equals the f32 kernel (max diff %g)", name, worst);
  printf("%s: max |amx - f32 kernel| = %.3g\n", name, worst);
done:
  free(q), free(k), free(v), free(o), free(e), free(f);
}

int main(void) {
  printf("bf16 products run on: %s\n", ldm_bf16_path());
  if (!ldm_cpu_has_amx_bf16() || !ops_amx_built()) {
    printf("AMX path not run: %s\n", ldm_amx_note());
    CHECK(strstr(ldm_bf16_path(), "AMX") == NULL, "bf16 path claims AMX without it");
    ldm_ctx c = {.precision = LDM_PRECISION_BF16};
    CHECK(!ops_amx_active(&c), "AMX active without AMX");
    return ldm_test_finish("gemm-amx");
  }
  ldm_error err = {0};
  ldm_pool *pool = ldm_pool_new(2);
  ldm_wcache *wc = ldm_wcache_new(SIZE_MAX);
  ldm_ctx ctx = {.pool = NULL, .threads = 1, .scratch = ldm_arena_new(0), .err = &err, .precision = LDM_PRECISION_BF16};
  unsigned seed = 7;
  static const int sizes[][3] = {{1, 1, 1},      {15, 17, 31},    {16, 32, 32}, {33, 50, 33},
                                 {300, 70, 600}, {20, 700, 1100}, {64, 96, 64}, {257, 33, 513}};
  for (int t = 1; t <= 2; t++) {
    ctx.pool = t == 2 ? pool : NULL;
    ctx.threads = t;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
      for (int tb = 0; tb < 2; tb++)
        gemm_case(&ctx, sizes[i][0], sizes[i][1], sizes[i][2], tb, i % 2 ? 0.3f : 0.0f, &seed);
  }
  ctx.pool = pool, ctx.threads = 2, ctx.wcache = wc;
  CHECK(ops_amx_active(&ctx), "bf16 on an AMX CPU does not take AMX");
  op_case(&ctx, 40, 0, 0, 77, 45, 1, 1, &seed); /* linear */
  op_case(&ctx, 2, 9, 7, 64, 40, 3, 1, &seed);  /* implicit im2col */
  op_case(&ctx, 1, 8, 8, 4, 33, 3, 1, &seed);   /* im2col, Cin = 4 */
  op_case(&ctx, 2, 6, 5, 32, 64, 1, 1, &seed);  /* 1x1 */
  op_case(&ctx, 1, 9, 9, 96, 48, 3, 2, &seed);  /* stride 2 */
  attn_case(&ctx, 2, 100, 77, 3, 40, &seed);
  attn_case(&ctx, 1, 70, 600, 2, 40, &seed);
  attn_case(&ctx, 1, 30, 300, 2, 64, &seed);
  attn_case(&ctx, 2, 13, 40, 2, 24, &seed);
  ldm_wcache_free(wc);
  ldm_pool_free(pool);
  ldm_arena_free(ctx.scratch);
  return ldm_test_finish("gemm-amx");
}
