/* The engine's own bf16 GEMM (gemm_bf16.c) through ldm_gemm.
 * 1. LDM_PRECISION_BF16_EMULATED (any CPU) against a double-precision product
 *    of the bf16-rounded operands (ldm_f32_to_bf16, torch's rounding), all
 *    four transpose cases, sizes across every blocking edge (M > MC = 144,
 *    N > NC = 1024, K > KC = 512 and odd, partial 12 x 32 tiles), split by
 *    rows and by columns over two threads, alpha/beta, beta = 0 with NaN in
 *    C (never read). Tolerance: |c - r| <= 2e-3 + 1e-4 |r| (f32 sums of up to
 *    1030 products of magnitude <= 4). It must also differ from the f32
 *    product by more than that somewhere: proof that the operands were
 *    rounded.
 * 2. Where the CPU has AVX512-BF16, LDM_PRECISION_BF16 (the VDPBF16PS kernel)
 *    against the emulation: the same rounded operands, so |n - e| <= 1e-4 +
 *    1e-5 |e|. Without AVX512-BF16 this part prints that it did not run and
 *    checks that LDM_PRECISION_BF16 gave the f32 result (sgemm).
 * 3. Fused attention in bf16 (attention_fused.c: Q, K, probabilities and V
 *    rounded, f32 sums and softmax): bf16-emulated against attention in
 *    double on the unrounded inputs, |o - r| <= 1e-2 max|v| (the
 *    probabilities' and values' rounding, 2^-9 relative), and different from
 *    the f32 kernel somewhere (> 1e-5); native against emulated, |n - e| <=
 *    1e-5. Shapes: cross-attention (77 keys, odd), more keys than one chunk
 *    (300 > 256), head sizes 40 (32 + 8 columns), 64 and 24. */
#include "ldm_test.h"

#include "core/arena.h"
#include "core/half.h"
#include "core/threads.h"
#include "ops/ops.h"

static float *rand_buf(size_t n, unsigned *s) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; p && i < n; i++)
    p[i] = (float)((*s = *s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
  return p;
}

static float elem(const float *x, bool trans, int64_t ld, int64_t r, int64_t c) {
  return trans ? x[c * ld + r] : x[r * ld + c];
}

/* ref = alpha * op(A) op(B) + beta * C0 in double, operands rounded to bf16
 * when `round`. */
static void reference(float *ref, const float *C0, bool ta, bool tb, int M, int N, int K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta, int64_t ldc,
                      bool round) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int p = 0; p < K; p++) {
        float a = elem(A, ta, lda, i, p), b = elem(B, tb, ldb, p, j);
        if (round) {
          a = ldm_bf16_to_f32(ldm_f32_to_bf16(a));
          b = ldm_bf16_to_f32(ldm_f32_to_bf16(b));
        }
        s += (double)a * b;
      }
      ref[i * ldc + j] = (float)(alpha * s + (beta == 0.0f ? 0.0 : beta * C0[i * ldc + j]));
    }
}

/* ldm_test_close over the M x N product region of two row-major matrices
 * with leading dimension ldc (the padding columns may hold NaN). Returns the
 * region's max abs difference. */
static double close_region(const char *name, const float *X, const float *Y, int M, int N, int64_t ldc,
                           double atol, double rtol) {
  float *x = malloc(sizeof(float) * (size_t)M * (size_t)N), *y = malloc(sizeof(float) * (size_t)M * (size_t)N);
  double worst = 0;
  CHECK(x && y, "out of memory");
  if (x && y) {
    for (int i = 0; i < M; i++) {
      memcpy(x + (size_t)i * N, X + i * ldc, sizeof(float) * (size_t)N);
      memcpy(y + (size_t)i * N, Y + i * ldc, sizeof(float) * (size_t)N);
    }
    for (size_t i = 0; i < (size_t)M * (size_t)N; i++) worst = fmax(worst, fabs((double)x[i] - y[i]));
    if (name) ldm_test_close(name, x, y, (long long)M * N, atol, rtol);
  }
  free(x), free(y);
  return worst;
}

static void run_case(ldm_ctx *ctx, int M, int N, int K, bool ta, bool tb, float beta, unsigned *seed) {
  const int pad = 3;
  int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  size_t na = (size_t)(ta ? K : M) * lda + 1, nb = (size_t)(tb ? N : K) * ldb + 1, nc = (size_t)M * ldc;
  float *A = rand_buf(na, seed), *B = rand_buf(nb, seed), *C0 = rand_buf(nc, seed);
  float *C = malloc(nc * sizeof(float)), *R = malloc(nc * sizeof(float)), *F = malloc(nc * sizeof(float));
  CHECK(A && B && C0 && C && R && F, "out of memory");
  if (!(A && B && C0 && C && R && F)) goto done;
  const float alpha = 0.7f;
  char name[128];
  snprintf(name, sizeof name, "bf16-emulated %dx%dx%d ta=%d tb=%d beta=%g threads=%d", M, N, K, ta, tb, beta,
           ctx->pool ? ldm_pool_size(ctx->pool) : 1);
  if (beta == 0.0f)
    for (size_t i = 0; i < nc; i++) C0[i] = NAN;
  memcpy(C, C0, nc * sizeof(float));
  memcpy(R, C0, nc * sizeof(float));
  memcpy(F, C0, nc * sizeof(float));
  reference(R, C0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, ldc, true);
  reference(F, C0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, ldc, false);
  size_t in_use = ldm_arena_in_use(ctx->scratch);
  ctx->precision = LDM_PRECISION_BF16_EMULATED;
  ldm_status st = ldm_gemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  CHECK(st == LDM_OK, "%s: %s", name, ctx->err->msg);
  CHECK(ldm_arena_in_use(ctx->scratch) == in_use, "%s: scratch not given back", name);
  /* padding columns untouched */
  for (int i = 0; i < M; i++)
    for (int j = N; j < ldc; j++) {
      float c = C[i * ldc + j], c0 = C0[i * ldc + j];
      CHECK(memcmp(&c, &c0, sizeof c) == 0, "%s: C[%d][%d] outside the product was written", name, i, j);
    }
  /* the product region (padding checked above) */
  close_region(name, C, R, M, N, ldc, 2e-3, 1e-4);
  double worst_f32 = close_region(NULL, C, F, M, N, ldc, 0, 0);
  printf("%s: max |bf16 - f32 product| = %.3g\n", name, worst_f32);
  if (K >= 16) CHECK(worst_f32 > 2e-2, "%s: result equals the f32 product (%.3g): operands not rounded", name, worst_f32);

  /* native kernel (or sgemm where there is none) */
  float *G = malloc(nc * sizeof(float));
  CHECK(G != NULL, "out of memory");
  if (G) {
    memcpy(G, C0, nc * sizeof(float));
    ctx->precision = LDM_PRECISION_BF16;
    st = ldm_gemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, G, ldc);
    CHECK(st == LDM_OK, "%s (bf16): %s", name, ctx->err->msg);
    char n2[160];
    if (ldm_bf16_native()) {
      snprintf(n2, sizeof n2, "bf16 native vs emulated %dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
      close_region(n2, G, C, M, N, ldc, 1e-4, 1e-5);
    } else {
      snprintf(n2, sizeof n2, "bf16 request without AVX512-BF16 = f32 %dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
      close_region(n2, G, F, M, N, ldc, 1e-3, 1e-4);
    }
    free(G);
  }
  ctx->precision = LDM_PRECISION_F32;
done:
  free(A), free(B), free(C0), free(C), free(R), free(F);
}

static void attention_ref(float *o, const float *q, const float *k, const float *v, int B, int Tq, int Tk,
                          int heads, int dh) {
  int D = heads * dh;
  double *w = malloc(sizeof(double) * (size_t)Tk);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < heads; h++)
      for (int i = 0; i < Tq; i++) {
        const float *qi = q + ((int64_t)b * Tq + i) * D + h * dh;
        double mx = -1e300, sum = 0;
        for (int t = 0; t < Tk; t++) {
          const float *kt = k + ((int64_t)b * Tk + t) * D + h * dh;
          double s = 0;
          for (int d = 0; d < dh; d++) s += (double)qi[d] * kt[d];
          w[t] = s / sqrt((double)dh);
          if (w[t] > mx) mx = w[t];
        }
        for (int t = 0; t < Tk; t++) sum += (w[t] = exp(w[t] - mx));
        for (int d = 0; d < dh; d++) {
          double acc = 0;
          for (int t = 0; t < Tk; t++) acc += w[t] * v[((int64_t)b * Tk + t) * D + h * dh + d];
          o[((int64_t)b * Tq + i) * D + h * dh + d] = (float)(acc / sum);
        }
      }
  free(w);
}

static void attention_case(ldm_ctx *ctx, int B, int Tq, int Tk, int heads, int dh, unsigned *seed) {
  int D = heads * dh;
  size_t nq = (size_t)B * Tq * D, nk = (size_t)B * Tk * D;
  float *q = rand_buf(nq, seed), *k = rand_buf(nk, seed), *v = rand_buf(nk, seed);
  float *r = malloc(nq * 4), *e = malloc(nq * 4), *f = malloc(nq * 4), *n = malloc(nq * 4);
  CHECK(q && k && v && r && e && f && n, "out of memory");
  if (!(q && k && v && r && e && f && n)) goto done;
  attention_ref(r, q, k, v, B, Tq, Tk, heads, dh);
  char name[128];
  snprintf(name, sizeof name, "attention bf16-emulated B=%d Tq=%d Tk=%d heads=%d dh=%d", B, Tq, Tk, heads, dh);
  ctx->precision = LDM_PRECISION_BF16_EMULATED;
  CHECK(ldm_attention(ctx, e, D, q, D, k, D, v, D, B, Tq, Tk, heads, dh, false) == LDM_OK, "%s: %s", name,
        ctx->err->msg);
  ldm_test_close(name, e, r, (long long)nq, 2e-2, 0); /* max|v| = 2 */
  ctx->precision = LDM_PRECISION_F32;
  CHECK(ldm_attention(ctx, f, D, q, D, k, D, v, D, B, Tq, Tk, heads, dh, false) == LDM_OK, "%s: %s", name,
        ctx->err->msg);
  double diff = 0;
  for (size_t i = 0; i < nq; i++) diff = fmax(diff, fabs((double)e[i] - f[i]));
  printf("%s: max |bf16 - f32 kernel| = %.3g\n", name, diff);
  CHECK(diff > 1e-5, "%s: bf16 attention equals the f32 kernel (%.3g): not rounded", name, diff);
  if (ops_gemm_bf16_native()) {
    ctx->precision = LDM_PRECISION_BF16;
    CHECK(ldm_attention(ctx, n, D, q, D, k, D, v, D, B, Tq, Tk, heads, dh, false) == LDM_OK, "%s: %s", name,
          ctx->err->msg);
    snprintf(name, sizeof name, "attention bf16 native vs emulated B=%d Tq=%d Tk=%d dh=%d", B, Tq, Tk, dh);
    ldm_test_close(name, n, e, (long long)nq, 1e-5, 0);
  }
  ctx->precision = LDM_PRECISION_F32;
done:
  free(q), free(k), free(v), free(r), free(e), free(f), free(n);
}

int main(void) {
  ldm_error err = {0};
  printf("cpu features: %s; AVX512-BF16 kernel %s\n", ldm_cpu_features(),
         ops_gemm_bf16_native() ? "runs here" : "not run here (this CPU lacks AVX512-BF16)");
  unsigned seed = 11;
  ldm_pool *pool = ldm_pool_new(2);
  ldm_arena *arena = ldm_arena_new(0);
  CHECK(pool && arena, "out of memory");
  ldm_ctx serial = {.threads = 1, .scratch = arena, .err = &err};
  ldm_ctx two = {.pool = pool, .threads = 2, .scratch = arena, .err = &err};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) run_case(&two, 150, 1100, 1030, ta, tb, 0.3f, &seed);
  run_case(&two, 20, 530, 70, false, true, 0.0f, &seed);  /* split by columns */
  run_case(&serial, 13, 33, 17, false, true, 0.0f, &seed); /* partial tiles, odd K */
  run_case(&serial, 1, 1, 1, true, false, 1.0f, &seed);
  run_case(&serial, 5, 7, 0, false, true, 0.3f, &seed);    /* K = 0: beta * C */
  attention_case(&two, 2, 100, 77, 3, 40, &seed);
  attention_case(&two, 1, 30, 300, 2, 64, &seed);
  attention_case(&serial, 2, 13, 40, 2, 24, &seed);
  ldm_arena_free(arena);
  ldm_pool_free(pool);
  return ldm_test_finish("gemm-bf16-own");
}
