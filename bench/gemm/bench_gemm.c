/* GEMM throughput of ldm_gemm (the engine's one sgemm/sbgemm wrapper) at the
 * SD1.5 UNet's shapes with 1 and 2 threads; ldm_conv2d at a UNet 3x3 conv
 * with im2col and with Winograd, as a fraction of the GEMM figure at the
 * same M, N, K (FLOPs counted as a direct convolution, so Winograd can pass
 * 100 %); ldm_attention at the 64x64-latent self/cross-attention shapes.
 * Each figure is the best of several runs, in wall-clock GFLOP/s and in
 * GFLOP per CPU-second (the latter stays meaningful on a busy machine; with
 * 2 threads it is the per-core rate). Usage: bench_gemm [--quick]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/threads.h"
#include "ops/ops.h"
#include "core/cpu.h"

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_buf(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  if (!p) return NULL;
  unsigned s = 12345u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    p[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
  return p;
}

typedef struct case_args {
  ldm_ctx *ctx;
  int M, N, K;                 /* gemm */
  int H, W, Cin, Cout;         /* conv */
  ldm_conv_algo algo;
  int T, Tk, heads, dh;        /* attention */
  float *a, *b, *c, *d;
  ldm_tensor w, bias;
} case_args;

typedef ldm_status (*case_fn)(case_args *);

static ldm_status run_gemm(case_args *c) {
  return ldm_gemm(c->ctx, false, true, c->M, c->N, c->K, 1.0f, c->a, c->K,
                  c->b, c->K, 0.0f, c->c, c->N);
}

static ldm_status run_conv(case_args *c) {
  return ldm_conv2d_algo(c->ctx, c->c, c->a, 1, c->H, c->W, c->Cin, &c->w,
                         &c->bias, 1, 1, c->algo, LDM_CONV2D_SCRATCH_BYTES);
}

static ldm_status run_attention(case_args *c) {
  int64_t D = (int64_t)c->heads * c->dh;
  return ldm_attention(c->ctx, c->d, D, c->a, D, c->b, D, c->c, D, 1, c->T,
                       c->Tk, c->heads, c->dh, false);
}

typedef struct timing {
  double wall, cpu; /* best seconds per run */
} timing;

static timing time_case(case_fn fn, case_args *c, double min_s) {
  timing best = {1e30, 1e30};
  double total = 0;
  if (fn(c) != LDM_OK) return (timing){0, 0}; /* warm-up */
  for (int reps = 0; reps < 3 || (total < min_s && reps < 50); reps++) {
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (fn(c) != LDM_OK) return (timing){0, 0};
    double dw = clock_s(CLOCK_MONOTONIC) - w0;
    double dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    total += dw;
    if (dw < best.wall) best.wall = dw;
    if (dc < best.cpu) best.cpu = dc;
  }
  return best;
}

static void print_rate(const char *label, double gflop, timing t) {
  if (t.wall <= 0) {
    printf("%-52s failed\n", label);
    return;
  }
  printf("%-52s %7.1f GFLOP/s  (%6.1f per CPU-s, %7.1f ms)\n", label,
         gflop / t.wall, gflop / t.cpu, t.wall * 1e3);
  fflush(stdout);
}

static timing bench_gemm(ldm_ctx *ctx, const char *label, int M, int N, int K,
                         double min_s) {
  case_args c = {.ctx = ctx, .M = M, .N = N, .K = K};
  c.a = rand_buf((size_t)M * K), c.b = rand_buf((size_t)N * K);
  c.c = rand_buf((size_t)M * N);
  timing t = {0, 0};
  if (c.a && c.b && c.c) t = time_case(run_gemm, &c, min_s);
  double gflop = 2.0 * M * N * K * 1e-9;
  print_rate(label, gflop, t);
  free(c.a), free(c.b), free(c.c);
  return t;
}

/* ---- instruction peaks of one core ------------------------------------
 * ldm_cpu_peaks: independent accumulator chains of one multiply-add
 * instruction (what one core can do at best), timed in the thread's CPU
 * time: f32 FMA on the widest vectors, AVX512-BF16's VDPBF16PS and AMX's
 * TDPBF16PS. bf16 can pay only where its best peak is well above the f32
 * one: --precision auto takes bf16 from 1.8x on. */
static void print_peaks(void) {
  ldm_cpu_peak p;
  ldm_cpu_peaks(&p, 5.0);
  if (p.f32 > 0) printf("peak 1 core: f32 FMA                %8.1f GFLOP/s\n", p.f32);
  if (p.bf16_dot > 0)
    printf("peak 1 core: bf16 VDPBF16PS (zmm)   %8.1f GFLOP/s (%.2fx f32)\n", p.bf16_dot,
           p.f32 > 0 ? p.bf16_dot / p.f32 : 0.0);
  else
    printf("peak 1 core: bf16 VDPBF16PS: not on this CPU (no AVX512-BF16)\n");
  if (p.bf16_amx > 0)
    printf("peak 1 core: bf16 AMX TDPBF16PS     %8.1f GFLOP/s (%.2fx f32)\n", p.bf16_amx,
           p.f32 > 0 ? p.bf16_amx / p.f32 : 0.0);
  else
    printf("peak 1 core: bf16 AMX: not available (%s)\n", ldm_amx_note());
  double best = p.bf16_amx > p.bf16_dot ? p.bf16_amx : p.bf16_dot;
  printf("precision auto: %s (best bf16 peak %.2fx the f32 peak; bf16 from %.1fx on)\n",
         p.f32 > 0 && best >= LDM_BF16_AUTO_RATIO * p.f32 ? "bf16" : "f32", p.f32 > 0 ? best / p.f32 : 0.0,
         LDM_BF16_AUTO_RATIO);
}

int main(int argc, char **argv) {
  ldm_blas_tune(argv);
  double min_s = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 0.2 : 1.0;
  static const int shapes[][3] = {
      {4096, 320, 2880}, {1024, 640, 5760}, {4096, 4096, 40}, {4096, 40, 4096}};
  const int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
  ldm_error err = {0};
  ldm_arena *arena = ldm_arena_new(0);
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  printf("bench_gemm: ldm_gemm C = A * B^T (row-major), best of >= 3 runs\n"
         "cpu features: %s; load average %.2f\nblas: %s\n",
         ldm_cpu_features(), load[0], ldm_blas_info());
  print_peaks();
  for (int threads = 1; threads <= 2; threads++) {
    ldm_pool *pool = ldm_pool_new(threads);
    ldm_ctx ctx = {.pool = pool, .threads = threads, .scratch = arena,
                   .err = &err};
    char label[128];
    for (int s = 0; s < n_shapes; s++) {
      snprintf(label, sizeof label, "threads=%d f32  M=%d N=%d K=%d", threads,
               shapes[s][0], shapes[s][1], shapes[s][2]);
      bench_gemm(&ctx, label, shapes[s][0], shapes[s][1], shapes[s][2], min_s);
    }
    if (ldm_bf16_native()) {
      ctx.precision = LDM_PRECISION_BF16;
      if (threads == 1) printf("bf16 products run on: %s\n", ldm_bf16_path());
      for (int s = 0; s < n_shapes; s++) {
        snprintf(label, sizeof label, "threads=%d bf16 M=%d N=%d K=%d",
                 threads, shapes[s][0], shapes[s][1], shapes[s][2]);
        bench_gemm(&ctx, label, shapes[s][0], shapes[s][1], shapes[s][2], min_s);
      }
      ctx.precision = LDM_PRECISION_F32;
    } else {
      printf("threads=%d bf16: not native here (no cblas_sbgemm in this "
             "OpenBLAS, no AVX512-BF16 in this CPU)\n", threads);
    }

    /* UNet 64x64 latent, 320 -> 320, 3x3 = GEMM M=4096 N=320 K=2880 */
    snprintf(label, sizeof label, "threads=%d gemm M=4096 N=320 K=2880 (again)",
             threads);
    timing peak = bench_gemm(&ctx, label, 4096, 320, 2880, min_s);
    case_args c = {.ctx = &ctx, .H = 64, .W = 64, .Cin = 320, .Cout = 320};
    c.a = rand_buf((size_t)64 * 64 * 320), c.c = rand_buf((size_t)64 * 64 * 320);
    float *wd = rand_buf((size_t)320 * 320 * 9), *bd = rand_buf(320);
    c.w = (ldm_tensor){LDM_DTYPE_F32, 4, {320, 320, 3, 3}, wd, "w"};
    c.bias = (ldm_tensor){LDM_DTYPE_F32, 1, {320}, bd, "b"};
    timing t = {0, 0};
    double gflop = 2.0 * 64 * 64 * 320 * 2880 * 1e-9;
    for (int algo = LDM_CONV_IM2COL; algo <= LDM_CONV_WINOGRAD; algo++) {
      c.algo = (ldm_conv_algo)algo;
      t = (timing){0, 0};
      if (c.a && c.c && wd && bd) t = time_case(run_conv, &c, min_s);
      snprintf(label, sizeof label, "threads=%d conv2d 64x64x320->320 3x3 %s",
               threads, algo == LDM_CONV_WINOGRAD ? "winograd" : "im2col");
      print_rate(label, gflop, t);
      if (t.wall > 0 && peak.wall > 0)
        printf("threads=%d conv2d %s = %.0f%% of ldm_gemm at the same M, N, K "
               "(wall), %.0f%% (per CPU-s)%s\n",
               threads, algo == LDM_CONV_WINOGRAD ? "winograd" : "im2col",
               100.0 * peak.wall / t.wall, 100.0 * peak.cpu / t.cpu,
               algo == LDM_CONV_WINOGRAD ? ", direct-conv FLOPs" : "");
    }
    if (ldm_cpu_has_amx_bf16() && ldm_bf16_native()) { /* the implicit-im2col AMX convolution */
      ctx.precision = LDM_PRECISION_BF16;
      c.algo = LDM_CONV_AMX;
      t = (timing){0, 0};
      if (c.a && c.c && wd && bd) t = time_case(run_conv, &c, min_s);
      snprintf(label, sizeof label, "threads=%d conv2d 64x64x320->320 3x3 bf16 amx", threads);
      print_rate(label, gflop, t);
      ctx.precision = LDM_PRECISION_F32;
    }
    free(c.a), free(c.c), free(wd), free(bd);

    /* attention: 8 heads x 40, T = 4096 (64x64 latent), Tk = 4096 / 77 */
    for (int cross = 0; cross < 2; cross++) {
      case_args a = {.ctx = &ctx, .T = 4096, .Tk = cross ? 77 : 4096,
                     .heads = 8, .dh = 40};
      size_t nq = (size_t)a.T * 320, nk = (size_t)a.Tk * 320;
      a.a = rand_buf(nq), a.b = rand_buf(nk), a.c = rand_buf(nk);
      a.d = rand_buf(nq);
      t = (timing){0, 0};
      if (a.a && a.b && a.c && a.d) t = time_case(run_attention, &a, min_s);
      snprintf(label, sizeof label, "threads=%d attention T=4096 Tk=%d 8x40",
               threads, a.Tk);
      print_rate(label, 4.0 * a.T * a.Tk * 320 * 1e-9, t);
      free(a.a), free(a.b), free(a.c), free(a.d);
    }
    ldm_pool_free(pool);
  }
  printf("(attention counts the FLOPs of its two GEMMs only)\n");
  ldm_arena_free(arena);
  return 0;
}
