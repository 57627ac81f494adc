/* GEMM throughput of ldm_gemm (the engine's one sgemm/sbgemm wrapper) at the
 * SD1.5 UNet's shapes with 1 and 2 threads, and ldm_conv2d's achieved
 * GFLOP/s at a UNet 3x3 conv as a fraction of the GEMM figure at the same
 * M, N, K; also ldm_attention at the 64x64-latent self/cross shapes.
 * Usage: bench_gemm [--quick]  (prints figures; never a test). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/threads.h"
#include "ops/ops.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_buf(size_t n) {
  float *p = malloc(n * sizeof(float));
  if (!p) return NULL;
  unsigned s = 12345u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    p[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
  return p;
}

/* Best-of-reps GFLOP/s of C[M,N] = A[M,K] B[N,K]^T (the linear/conv form). */
static double bench_gemm(ldm_ctx *ctx, int M, int N, int K, double min_s) {
  float *A = rand_buf((size_t)M * K), *B = rand_buf((size_t)N * K);
  float *C = rand_buf((size_t)M * N);
  double best = 1e30, total = 0;
  int reps = 0;
  if (!A || !B || !C) goto done;
  ldm_gemm(ctx, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N); /* warm */
  while (reps < 3 || (total < min_s && reps < 50)) {
    double t0 = now_s();
    if (ldm_gemm(ctx, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N) !=
        LDM_OK)
      break;
    double dt = now_s() - t0;
    total += dt;
    if (dt < best) best = dt;
    reps++;
  }
done:
  free(A), free(B), free(C);
  return reps ? 2.0 * M * N * K / best * 1e-9 : 0.0;
}

static double bench_conv(ldm_ctx *ctx, int H, int W, int Cin, int Cout,
                         double min_s) {
  float *x = rand_buf((size_t)H * W * Cin), *y = malloc((size_t)H * W * Cout * 4);
  float *wd = rand_buf((size_t)Cout * Cin * 9), *bd = rand_buf((size_t)Cout);
  ldm_tensor w = {LDM_DTYPE_F32, 4, {Cout, Cin, 3, 3}, wd, "w"};
  ldm_tensor b = {LDM_DTYPE_F32, 1, {Cout}, bd, "b"};
  double best = 1e30, total = 0;
  int reps = 0;
  if (!x || !y || !wd || !bd) goto done;
  ldm_conv2d(ctx, y, x, 1, H, W, Cin, &w, &b, 1, 1);
  while (reps < 3 || (total < min_s && reps < 50)) {
    double t0 = now_s();
    if (ldm_conv2d(ctx, y, x, 1, H, W, Cin, &w, &b, 1, 1) != LDM_OK) break;
    double dt = now_s() - t0;
    total += dt;
    if (dt < best) best = dt;
    reps++;
  }
done:
  free(x), free(y), free(wd), free(bd);
  return reps ? 2.0 * H * W * Cout * (9.0 * Cin) / best * 1e-9 : 0.0;
}

/* SD1.5 64x64-latent self-attention: B=1, T=4096, 8 heads of 40. */
static double bench_attention(ldm_ctx *ctx, int T, int Tk, int heads, int dh,
                              double min_s, double *ms) {
  int64_t D = (int64_t)heads * dh;
  float *q = rand_buf((size_t)(T * D)), *k = rand_buf((size_t)(Tk * D));
  float *v = rand_buf((size_t)(Tk * D)), *o = malloc((size_t)(T * D) * 4);
  double best = 1e30, total = 0;
  int reps = 0;
  if (!q || !k || !v || !o) goto done;
  while (reps < 2 || (total < min_s && reps < 20)) {
    double t0 = now_s();
    if (ldm_attention(ctx, o, D, q, D, k, D, v, D, 1, T, Tk, heads, dh,
                      false) != LDM_OK)
      break;
    double dt = now_s() - t0;
    total += dt;
    if (dt < best) best = dt;
    reps++;
  }
done:
  free(q), free(k), free(v), free(o);
  *ms = reps ? best * 1e3 : 0.0;
  return reps ? 4.0 * T * Tk * (double)D / best * 1e-9 : 0.0;
}

int main(int argc, char **argv) {
  double min_s = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 0.2 : 1.0;
  static const int shapes[][3] = {
      {4096, 320, 2880}, {1024, 640, 5760}, {4096, 4096, 40}, {4096, 40, 4096}};
  const int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
  ldm_error err = {0};
  ldm_arena *arena = ldm_arena_new(0);
  printf("ldm_gemm (row-major C = A * B^T), best of >= 3 runs; cpu: %s\n",
         ldm_cpu_features());
  for (int threads = 1; threads <= 2; threads++) {
    ldm_pool *pool = ldm_pool_new(threads);
    ldm_ctx ctx = {.pool = pool, .threads = threads, .scratch = arena,
                   .err = &err};
    for (int s = 0; s < n_shapes; s++) {
      int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      printf("threads=%d  f32   M=%-5d N=%-5d K=%-5d  %7.1f GFLOP/s\n",
             threads, M, N, K, bench_gemm(&ctx, M, N, K, min_s));
      fflush(stdout);
    }
    if (ldm_gemm_bf16_available()) {
      ctx.gemm_bf16 = true;
      for (int s = 0; s < n_shapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        printf("threads=%d  bf16  M=%-5d N=%-5d K=%-5d  %7.1f GFLOP/s\n",
               threads, M, N, K, bench_gemm(&ctx, M, N, K, min_s));
      }
      ctx.gemm_bf16 = false;
    } else {
      printf("threads=%d  bf16: not available in this OpenBLAS "
             "(no cblas_sbgemm)\n", threads);
    }
    /* UNet 64x64 latent, 320 -> 320, 3x3: GEMM M=4096 N=320 K=2880 */
    double peak = bench_gemm(&ctx, 4096, 320, 2880, min_s);
    double conv = bench_conv(&ctx, 64, 64, 320, 320, min_s);
    printf("threads=%d  conv2d 64x64x320->320 3x3: %7.1f GFLOP/s = %.0f%% of "
           "ldm_gemm at M=4096 N=320 K=2880 (%.1f GFLOP/s)\n",
           threads, conv, peak > 0 ? 100.0 * conv / peak : 0.0, peak);
    double ms;
    double ag = bench_attention(&ctx, 4096, 4096, 8, 40, min_s, &ms);
    printf("threads=%d  attention T=4096 Tk=4096 8x40: %7.1f GFLOP/s (%.0f ms, "
           "GEMM part of the FLOPs only)\n", threads, ag, ms);
    ag = bench_attention(&ctx, 4096, 77, 8, 40, min_s, &ms);
    printf("threads=%d  attention T=4096 Tk=77   8x40: %7.1f GFLOP/s (%.0f ms)\n",
           threads, ag, ms);
    fflush(stdout);
    ldm_pool_free(pool);
  }
  ldm_arena_free(arena);
  return 0;
}
