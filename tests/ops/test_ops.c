/* Every op in engine/ops against torch goldens (tests/reference/make_ops.py):
 * linear, conv2d (1x1/3x3, stride 1/2, f32/f16/bf16 weights), group norm
 * (+SiLU), layer norm, activations, GEGLU, softmax, attention (incl. strided,
 * chunked, causal, memory bound), upsample, concat, add, timestep embedding,
 * f16/bf16 conversions; optimized ops also against their naive versions.
 * Tolerance (STYLE.md, ops): |a - r| <= 1e-5 + 1e-4 * |r| for every f32 case
 * except the timestep embedding (1e-4 absolute, see test_timestep);
 * conversions bit-exact. Every op must leave ctx->scratch as it found it.
 * Run once serially (no pool) and once with a 2-thread pool. */
#include "ldm_test.h"

#include <stdint.h>

#include "core/arena.h"
#include "core/half.h"
#include "core/threads.h"
#include "ops/ops.h"
#include "ops/ops_util.h"

#define ATOL 1e-5
#define RTOL 1e-4

static ldm_st_file *gf;
static ldm_ctx ctx;
static ldm_error err;
static char tag[64]; /* "t1" / "t2": thread configuration in case names */

static const ldm_tensor *G(const char *name) {
  const ldm_tensor *t = ldm_st_find(gf, name);
  if (!t) {
    fprintf(stderr, "FAIL: golden has no tensor '%s'\n", name);
    exit(1);
  }
  return t;
}

static bool has(const char *name) { return ldm_st_find(gf, name) != NULL; }

static float *F32(const char *name, int64_t *n) {
  const ldm_tensor *t = G(name);
  if (n) *n = ldm_tensor_numel(t);
  return ldm_test_tensor_f32(gf, name, NULL);
}

static void P(const char *name, int64_t *v, int n) {
  const ldm_tensor *t = G(name);
  ldm_error e = {0};
  if (ldm_tensor_numel(t) != n || ldm_tensor_read_i64(t, 0, n, v, &e) != LDM_OK) {
    fprintf(stderr, "FAIL: params '%s' unreadable %s\n", name, e.msg);
    exit(1);
  }
}

static float *alloc_f(int64_t n) {
  float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
  if (!p) exit(1);
  return p;
}

static float *to_nhwc(const float *x, int B, int C, int64_t HW) {
  float *y = alloc_f((int64_t)B * C * HW);
  ldm_nchw_to_nhwc(y, x, B, C, HW);
  return y;
}

static float *to_nchw(const float *x, int B, int C, int64_t HW) {
  float *y = alloc_f((int64_t)B * C * HW);
  ldm_nhwc_to_nchw(y, x, B, C, HW);
  return y;
}

static void close_(const char *what, const char *name, const float *got,
                   const float *ref, int64_t n) {
  char buf[320];
  snprintf(buf, sizeof buf, "%s %s %s", tag, what, name);
  ldm_test_close(buf, got, ref, n, ATOL, RTOL);
}

/* Runs an op, checks its status and that scratch is given back. */
#define OP(expr)                                                              \
  do {                                                                        \
    size_t in_use_ = ldm_arena_in_use(ctx.scratch);                           \
    ldm_status s_ = (expr);                                                   \
    CHECK(s_ == LDM_OK, "%s: %s -> %s (%s)", tag, #expr, ldm_status_str(s_),  \
          err.msg);                                                           \
    CHECK(ldm_arena_in_use(ctx.scratch) == in_use_,                           \
          "%s: %s left %zu scratch bytes in use (before %zu)", tag, #expr,    \
          ldm_arena_in_use(ctx.scratch), in_use_);                            \
  } while (0)

static ldm_status ok(void) { return LDM_OK; }
#define VOP(stmt) OP((stmt, ok()))

/* ---------------------------------------------------------------- GEMM */
/* Small (one piece), many rows (split by rows on a pool of 2) and few rows
 * (split by columns). */
static void test_gemm_shape(int M, int N, int K) {
  const int pad = 3;
  float *A = alloc_f((int64_t)(M + pad) * (K + pad));
  float *B = alloc_f((int64_t)(N + pad) * (K + pad));
  float *C0 = alloc_f((int64_t)M * (N + pad));
  float *C1 = alloc_f((int64_t)M * (N + pad)), *C2 = alloc_f((int64_t)M * (N + pad));
  unsigned s = 7;
  for (int i = 0; i < (M + pad) * (K + pad); i++)
    A[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
  for (int i = 0; i < (N + pad) * (K + pad); i++)
    B[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
  for (int i = 0; i < M * (N + pad); i++) C0[i] = (float)(i % 7) - 3.0f;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      memcpy(C1, C0, sizeof(float) * (size_t)(M * (N + pad)));
      memcpy(C2, C0, sizeof(float) * (size_t)(M * (N + pad)));
      OP(ldm_gemm(&ctx, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C1, ldc));
      ldm_gemm_naive(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C2, ldc);
      char name[64];
      snprintf(name, sizeof name, "%dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
      close_("gemm-vs-naive", name, C1, C2, (int64_t)M * (N + pad));
    }
  if (M != 37) {
    free(A), free(B), free(C0), free(C1), free(C2);
    return;
  }
  /* bf16 request: bf16 where the BLAS or the CPU has it (bf16 tolerance),
   * else the same sgemm result. */
  bool avail = ldm_bf16_native();
  printf("%s gemm: cblas_sbgemm %s, AVX512-BF16 %s\n", tag,
         ldm_gemm_bf16_available() ? "available" : "not available",
         ops_gemm_bf16_native() ? "available" : "not available");
  ctx.precision = LDM_PRECISION_BF16;
  memcpy(C1, C0, sizeof(float) * (size_t)(M * (N + pad)));
  memcpy(C2, C0, sizeof(float) * (size_t)(M * (N + pad)));
  OP(ldm_gemm(&ctx, false, true, M, N, K, 1.0f, A, K + pad, B, K + pad, 0.0f,
              C1, N + pad));
  ldm_gemm_naive(false, true, M, N, K, 1.0f, A, K + pad, B, K + pad, 0.0f, C2,
                 N + pad);
  ctx.precision = LDM_PRECISION_F32;
  char buf[96];
  snprintf(buf, sizeof buf, "%s gemm-bf16-request", tag);
  ldm_test_close(buf, C1, C2, (int64_t)M * (N + pad), avail ? 0.1 : ATOL,
                 avail ? 2e-2 : RTOL);
  free(A), free(B), free(C0), free(C1), free(C2);
}

/* ops_gemm_stream: C = A W^T with W stored f32/f16/bf16, against the naive
 * GEMM on the widened weight. 37x600x600: K in chunks 256+256+88, each of
 * two threads' 300 rows of W in blocks 256+44; 5x20x7: one piece, one chunk. */
static void test_gemm_stream_shape(int M, int N, int K, ldm_dtype dt) {
  const int pad = 5;
  int64_t lda = K + pad, ldc = N + pad;
  float *A = alloc_f((int64_t)M * lda), *Wf = alloc_f((int64_t)N * K);
  float *C1 = alloc_f((int64_t)M * ldc), *C2 = alloc_f((int64_t)M * ldc);
  uint16_t *W16 = calloc((size_t)N * (size_t)K, 2);
  unsigned s = 11;
  for (int64_t i = 0; i < (int64_t)M * lda; i++)
    A[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
  for (int64_t i = 0; i < (int64_t)N * K; i++) {
    float v = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
    if (dt == LDM_DTYPE_F16) v = ldm_f16_to_f32(W16[i] = ldm_f32_to_f16(v));
    if (dt == LDM_DTYPE_BF16) v = ldm_bf16_to_f32(W16[i] = ldm_f32_to_bf16(v));
    Wf[i] = v;
  }
  for (int64_t i = 0; i < (int64_t)M * ldc; i++) C1[i] = C2[i] = 9.0f; /* padding must stay */
  ldm_tensor w = {.dtype = dt, .ndim = 2, .shape = {N, K},
                  .data = dt == LDM_DTYPE_F32 ? (void *)Wf : (void *)W16, .name = "w"};
  OP(ops_gemm_stream(&ctx, M, N, K, A, lda, &w, C1, ldc));
  ldm_gemm_naive(false, true, M, N, K, 1.0f, A, lda, Wf, K, 0.0f, C2, ldc);
  char name[64];
  snprintf(name, sizeof name, "%dx%dx%d %s", M, N, K, ldm_dtype_name(dt));
  close_("gemm-stream-vs-naive", name, C1, C2, (int64_t)M * ldc);
  free(A), free(Wf), free(C1), free(C2), free(W16);
}

/* Small (one piece), many rows (split by rows on a pool of 2) and few rows
 * (split by columns); the streamed-weight product. */
static void test_gemm(void) {
  test_gemm_shape(37, 29, 53);
  test_gemm_shape(203, 40, 160);
  test_gemm_shape(40, 211, 150);
  ldm_dtype dts[3] = {LDM_DTYPE_F32, LDM_DTYPE_F16, LDM_DTYPE_BF16};
  for (int i = 0; i < 3; i++) test_gemm_stream_shape(37, 600, 600, dts[i]);
  test_gemm_stream_shape(5, 20, 7, LDM_DTYPE_F16);
}

/* -------------------------------------------------------------- linear */
static void test_linear(void) {
  const char *cases[] = {"linear_f32", "linear_f16", "linear_bf16",
                         "linear_f16_nobias"};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    char n[128];
    int64_t p[3];
    snprintf(n, sizeof n, "%s.params", cases[c]);
    P(n, p, 3);
    int64_t M = p[0], N = p[2];
    snprintf(n, sizeof n, "%s.x", cases[c]);
    float *x = F32(n, NULL);
    snprintf(n, sizeof n, "%s.y", cases[c]);
    float *ref = F32(n, NULL);
    snprintf(n, sizeof n, "%s.w", cases[c]);
    const ldm_tensor *w = G(n);
    snprintf(n, sizeof n, "%s.b", cases[c]);
    const ldm_tensor *b = has(n) ? G(n) : NULL;
    float *y = alloc_f(M * N);
    OP(ldm_linear(&ctx, y, x, M, w, b));
    close_("linear", cases[c], y, ref, M * N);
    OP(ldm_linear_naive(&ctx, y, x, M, w, b));
    close_("linear-naive", cases[c], y, ref, M * N);
    free(x), free(ref), free(y);
  }
}

/* -------------------------------------------------------------- conv2d */
static void test_conv(void) {
  const char *cases[] = {"conv_3x3_s1",    "conv_3x3_s2_f16",  "conv_1x1_bf16",
                         "conv_in_nobias", "conv_3x3_s2_even", "conv_1x1_b2",
                         "conv_3x3_wide",  "conv_3x3_c40",     "conv_out_rgb",
                         "conv_out_s2",    "conv_3x3_tiles"};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    char n[128];
    int64_t p[8];
    snprintf(n, sizeof n, "%s.params", cases[c]);
    P(n, p, 8);
    int B = (int)p[0], Cin = (int)p[1], H = (int)p[2], W = (int)p[3];
    int Cout = (int)p[4], k = (int)p[5], st = (int)p[6], pad = (int)p[7];
    int Ho = ldm_conv_out(H, k, st, pad), Wo = ldm_conv_out(W, k, st, pad);
    int64_t ny = (int64_t)B * Cout * Ho * Wo;
    snprintf(n, sizeof n, "%s.x", cases[c]);
    float *xc = F32(n, NULL), *x = to_nhwc(xc, B, Cin, (int64_t)H * W);
    snprintf(n, sizeof n, "%s.y", cases[c]);
    float *ref = F32(n, NULL);
    snprintf(n, sizeof n, "%s.w", cases[c]);
    const ldm_tensor *w = G(n);
    snprintf(n, sizeof n, "%s.b", cases[c]);
    const ldm_tensor *b = has(n) ? G(n) : NULL;
    float *y = alloc_f(ny), *yc;
    OP(ldm_conv2d(&ctx, y, x, B, H, W, Cin, w, b, st, pad));
    yc = to_nchw(y, B, Cout, (int64_t)Ho * Wo);
    close_("conv2d", cases[c], yc, ref, ny);
    free(yc);
    /* bands of one output row, then of 3 rows */
    size_t row = (size_t)Wo * k * k * Cin * sizeof(float);
    for (int rows = 1; rows <= 3; rows += 2) {
      memset(y, 0, sizeof(float) * (size_t)ny);
      OP(ldm_conv2d_ex(&ctx, y, x, B, H, W, Cin, w, b, st, pad, rows * row));
      yc = to_nchw(y, B, Cout, (int64_t)Ho * Wo);
      snprintf(n, sizeof n, "%s bands=%d", cases[c], rows);
      close_("conv2d", n, yc, ref, ny);
      free(yc);
    }
    /* each algorithm explicitly, also in bands of one row (Winograd: tile row) */
    static const char *algo_names[] = {"auto",      "im2col",    "winograd", "stream",
                                       "winograd2", "winograd4", "few-cout-taps"};
    for (int algo = LDM_CONV_IM2COL; algo <= LDM_CONV_FEW_COUT_TAPS; algo++) {
      if (algo == LDM_CONV_FEW_COUT_TAPS && Cout > LDM_CONV_FEW_COUT) {
        CHECK(ldm_conv2d_algo(&ctx, y, x, B, H, W, Cin, w, b, st, pad, LDM_CONV_FEW_COUT_TAPS,
                              LDM_CONV2D_SCRATCH_BYTES) == LDM_ERR_UNSUPPORTED,
              "%s: tap products accepted %d output channels (%s)", tag, Cout, cases[c]);
        continue;
      }
      bool fits = k == 3 && st == 1 && pad == 1;
      bool wino = algo == LDM_CONV_WINOGRAD || algo == LDM_CONV_WINOGRAD2 || algo == LDM_CONV_WINOGRAD4;
      size_t bounds[2] = {LDM_CONV2D_SCRATCH_BYTES, 1};
      for (int bi = 0; bi < 2; bi++) {
        if (wino && !fits) {
          ldm_status s_ = ldm_conv2d_algo(&ctx, y, x, B, H, W, Cin, w, b, st, pad,
                                          (ldm_conv_algo)algo, bounds[bi]);
          CHECK(s_ == LDM_ERR_UNSUPPORTED, "%s: %s accepted %s", tag, algo_names[algo], cases[c]);
          continue;
        }
        memset(y, 0, sizeof(float) * (size_t)ny);
        OP(ldm_conv2d_algo(&ctx, y, x, B, H, W, Cin, w, b, st, pad,
                           (ldm_conv_algo)algo, bounds[bi]));
        yc = to_nchw(y, B, Cout, (int64_t)Ho * Wo);
        snprintf(n, sizeof n, "%s %s%s", cases[c], algo_names[algo], bi ? " min-bands" : "");
        close_("conv2d", n, yc, ref, ny);
        free(yc);
      }
    }
    /* packed once, then run from the packed weight */
    float *wp = alloc_f(ldm_conv2d_packed_size(w));
    OP(ldm_conv2d_pack(&ctx, wp, w));
    memset(y, 0, sizeof(float) * (size_t)ny);
    OP(ldm_conv2d_packed(&ctx, y, x, B, H, W, Cin, wp, Cout, k, k, b, st, pad));
    yc = to_nchw(y, B, Cout, (int64_t)Ho * Wo);
    close_("conv2d-packed", cases[c], yc, ref, ny);
    free(yc), free(wp);
    OP(ldm_conv2d_naive(&ctx, y, x, B, H, W, Cin, w, b, st, pad));
    yc = to_nchw(y, B, Cout, (int64_t)Ho * Wo);
    close_("conv2d-naive", cases[c], yc, ref, ny);
    free(yc), free(xc), free(x), free(ref), free(y);
  }
}

/* --------------------------------------------------------------- norms */
static void test_norms(void) {
  const char *gn[] = {"gn_f32", "gn_f16_silu", "gn_noaffine_offset",
                      "gn_bf16_silu"};
  for (size_t c = 0; c < sizeof gn / sizeof *gn; c++) {
    char n[128];
    int64_t p[6];
    snprintf(n, sizeof n, "%s.params", gn[c]);
    P(n, p, 6);
    int B = (int)p[0], C = (int)p[1], G_ = (int)p[4];
    int64_t HW = p[2] * p[3], nel = B * C * HW;
    snprintf(n, sizeof n, "%s.eps", gn[c]);
    float *eps = F32(n, NULL);
    snprintf(n, sizeof n, "%s.x", gn[c]);
    float *xc = F32(n, NULL), *x = to_nhwc(xc, B, C, HW);
    snprintf(n, sizeof n, "%s.y", gn[c]);
    float *ref = F32(n, NULL);
    snprintf(n, sizeof n, "%s.gamma", gn[c]);
    const ldm_tensor *g = has(n) ? G(n) : NULL;
    snprintf(n, sizeof n, "%s.beta", gn[c]);
    const ldm_tensor *b = has(n) ? G(n) : NULL;
    float *y = alloc_f(nel), *yc;
    OP(ldm_group_norm(&ctx, y, x, B, HW, C, G_, eps[0], g, b, p[5] != 0));
    yc = to_nchw(y, B, C, HW);
    close_("group_norm", gn[c], yc, ref, nel);
    free(yc);
    /* the same from statistics pooled over two pieces of the image */
    {
      double *sum = calloc((size_t)(B * G_), sizeof(double));
      double *sq = calloc((size_t)(B * G_), sizeof(double));
      float *mean = alloc_f(B * G_), *rstd = alloc_f(B * G_);
      int64_t h1 = HW / 3;
      for (int bb = 0; bb < B; bb++) {
        const float *xb = x + (int64_t)bb * HW * C;
        OP(ldm_group_norm_sums(&ctx, sum + bb * G_, sq + bb * G_, xb, 1, h1, C, G_));
        OP(ldm_group_norm_sums(&ctx, sum + bb * G_, sq + bb * G_, xb + h1 * C, 1,
                               HW - h1, C, G_));
      }
      double cnt = (double)HW * (C / G_);
      for (int i = 0; i < B * G_; i++) {
        double m = sum[i] / cnt;
        mean[i] = (float)m;
        rstd[i] = (float)(1.0 / sqrt(sq[i] / cnt - m * m + eps[0]));
      }
      memset(y, 0, sizeof(float) * (size_t)nel);
      OP(ldm_group_norm_apply(&ctx, y, x, B, HW, C, G_, mean, rstd, g, b, p[5] != 0));
      yc = to_nchw(y, B, C, HW);
      snprintf(n, sizeof n, "%s sums+apply", gn[c]);
      close_("group_norm", n, yc, ref, nel);
      free(yc), free(sum), free(sq), free(mean), free(rstd);
    }
    OP(ldm_group_norm(&ctx, x, x, B, HW, C, G_, eps[0], g, b, p[5] != 0));
    yc = to_nchw(x, B, C, HW);
    snprintf(n, sizeof n, "%s in-place", gn[c]);
    close_("group_norm", n, yc, ref, nel);
    free(yc), free(eps), free(xc), free(x), free(ref), free(y);
  }
  const char *ln[] = {"ln_f32", "ln_bf16", "ln_f16_offset"};
  for (size_t c = 0; c < sizeof ln / sizeof *ln; c++) {
    char n[128];
    int64_t p[2];
    snprintf(n, sizeof n, "%s.params", ln[c]);
    P(n, p, 2);
    snprintf(n, sizeof n, "%s.eps", ln[c]);
    float *eps = F32(n, NULL);
    snprintf(n, sizeof n, "%s.x", ln[c]);
    float *x = F32(n, NULL);
    snprintf(n, sizeof n, "%s.y", ln[c]);
    float *ref = F32(n, NULL);
    snprintf(n, sizeof n, "%s.gamma", ln[c]);
    const ldm_tensor *g = G(n);
    snprintf(n, sizeof n, "%s.beta", ln[c]);
    const ldm_tensor *b = G(n);
    float *y = alloc_f(p[0] * p[1]);
    OP(ldm_layer_norm(&ctx, y, x, p[0], (int)p[1], eps[0], g, b));
    close_("layer_norm", ln[c], y, ref, p[0] * p[1]);
    OP(ldm_layer_norm(&ctx, x, x, p[0], (int)p[1], eps[0], g, b));
    snprintf(n, sizeof n, "%s in-place", ln[c]);
    close_("layer_norm", n, x, ref, p[0] * p[1]);
    free(eps), free(x), free(ref), free(y);
  }
}

/* --------------------------------------------------------- activations */
static void test_activations(void) {
  int64_t n;
  float *x = F32("act.x", &n), *y = alloc_f(n);
  float *r;
  VOP(ldm_silu(&ctx, y, x, n));
  close_("silu", "act", y, r = F32("act.silu", NULL), n), free(r);
  VOP(ldm_gelu(&ctx, y, x, n, false));
  close_("gelu", "act", y, r = F32("act.gelu", NULL), n), free(r);
  VOP(ldm_gelu(&ctx, y, x, n, true));
  close_("gelu_tanh", "act", y, r = F32("act.gelu_tanh", NULL), n), free(r);
  VOP(ldm_quick_gelu(&ctx, y, x, n));
  close_("quick_gelu", "act", y, r = F32("act.quick_gelu", NULL), n), free(r);
  memcpy(y, x, sizeof(float) * (size_t)n);
  VOP(ldm_silu(&ctx, y, y, n));
  close_("silu", "act in-place", y, r = F32("act.silu", NULL), n), free(r);
  free(x), free(y);

  int64_t p[3];
  P("geglu.params", p, 3);
  float *xg = F32("geglu.x", NULL), *proj = alloc_f(p[0] * 2 * p[2]);
  float *out = alloc_f(p[0] * p[2]);
  OP(ldm_linear(&ctx, proj, xg, p[0], G("geglu.w"), G("geglu.b")));
  close_("linear", "geglu.proj", proj, r = F32("geglu.proj", NULL), p[0] * 2 * p[2]);
  free(r);
  VOP(ldm_geglu(&ctx, out, proj, p[0], (int)p[2]));
  close_("geglu", "diffusers GEGLU", out, r = F32("geglu.y", NULL), p[0] * p[2]);
  free(r), free(xg), free(proj), free(out);

  const char *sm[] = {"softmax_a", "softmax_b"};
  for (int c = 0; c < 2; c++) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s.x", sm[c]);
    const ldm_tensor *t = G(nm);
    float *xs = F32(nm, &n), *ys = alloc_f(n);
    snprintf(nm, sizeof nm, "%s.y", sm[c]);
    VOP(ldm_softmax(&ctx, ys, xs, t->shape[0], t->shape[1]));
    close_("softmax", sm[c], ys, r = F32(nm, NULL), n);
    VOP(ldm_softmax(&ctx, xs, xs, t->shape[0], t->shape[1]));
    close_("softmax", "in-place", xs, r, n);
    free(r), free(xs), free(ys);
  }
}

/* Vector row kernels (AVX2 where present) against the libm loops over a
 * dense sweep of [-40, 40], beyond what the torch golden samples. */
static void test_row_kernels(void) {
  const int64_t n = 160001;
  float *x = alloc_f(n), *a = alloc_f(n), *b = alloc_f(n);
  for (int64_t i = 0; i < n; i++) x[i] = -40.0f + 80.0f * (float)i / (float)(n - 1);
  const char *names[] = {"silu", "gelu", "gelu_tanh", "quick_gelu"};
  for (int k = 0; k < 4; k++) {
    ops_act_row((ops_act)k, a, x, n);
    ops_act_row_naive((ops_act)k, b, x, n);
    close_("row-kernel-vs-libm", names[k], a, b, n);
  }
  /* exp(x - m) over [-90, 0] and its sum */
  for (int64_t i = 0; i < n; i++) x[i] = -90.0f * (float)i / (float)(n - 1);
  float s = ops_exp_sum(a, x, n, 0.0f);
  double ref_sum = 0;
  for (int64_t i = 0; i < n; i++) ref_sum += (b[i] = expf(x[i]));
  close_("row-kernel-vs-libm", "exp", a, b, n);
  float fs = (float)ref_sum;
  close_("row-kernel-vs-libm", "exp sum", &s, &fs, 1);
  free(x), free(a), free(b);
}

/* ----------------------------------------------------------- attention */
static void test_attention(void) {
  const char *cases[] = {"attn_self", "attn_cross", "attn_causal", "attn_long",
                         "attn_dh40", "attn_keyblocks"};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    char n[128];
    int64_t p[6];
    snprintf(n, sizeof n, "%s.params", cases[c]);
    P(n, p, 6);
    int B = (int)p[0], h = (int)p[1], dh = (int)p[2];
    int64_t Tq = p[3], Tk = p[4], D = (int64_t)h * dh;
    bool causal = p[5] != 0;
    float *q, *k, *v, *ref;
    snprintf(n, sizeof n, "%s.q", cases[c]), q = F32(n, NULL);
    snprintf(n, sizeof n, "%s.k", cases[c]), k = F32(n, NULL);
    snprintf(n, sizeof n, "%s.v", cases[c]), v = F32(n, NULL);
    snprintf(n, sizeof n, "%s.out", cases[c]), ref = F32(n, NULL);
    float *o = alloc_f(B * Tq * D);
    OP(ldm_attention(&ctx, o, D, q, D, k, D, v, D, B, Tq, Tk, h, dh, causal));
    close_("attention", cases[c], o, ref, B * Tq * D);
    OP(ldm_attention_naive(&ctx, o, D, q, D, k, D, v, D, B, Tq, Tk, h, dh, causal));
    close_("attention-naive", cases[c], o, ref, B * Tq * D);
    /* ctx->threads = 0: same result */
    int saved_threads = ctx.threads;
    ctx.threads = 0;
    memset(o, 0, sizeof(float) * (size_t)(B * Tq * D));
    OP(ldm_attention(&ctx, o, D, q, D, k, D, v, D, B, Tq, Tk, h, dh, causal));
    ctx.threads = saved_threads;
    snprintf(n, sizeof n, "%s threads=0", cases[c]);
    close_("attention", n, o, ref, B * Tq * D);
    /* chunks of 7 query rows */
    OP(ldm_attention_ex(&ctx, o, D, q, D, k, D, v, D, B, Tq, Tk, h, dh, causal,
                        7 * ((size_t)Tk + 1) * sizeof(float)));
    snprintf(n, sizeof n, "%s chunk=7", cases[c]);
    close_("attention", n, o, ref, B * Tq * D);
    /* a 64 KiB bound: attn_keyblocks (2100 keys) walks them in key blocks
       of a few hundred (online softmax) */
    OP(ldm_attention_ex(&ctx, o, D, q, D, k, D, v, D, B, Tq, Tk, h, dh, causal, (size_t)64 << 10));
    snprintf(n, sizeof n, "%s bound=64K", cases[c]);
    close_("attention", n, o, ref, B * Tq * D);
    /* strided rows: q/k/v/out inside wider buffers (as fused qkv projections) */
    int64_t lq = D + 5, lk = D + 3, lv = 2 * D, lo = D + 1;
    float *q2 = alloc_f(B * Tq * lq), *k2 = alloc_f(B * Tk * lk);
    float *v2 = alloc_f(B * Tk * lv), *o2 = alloc_f(B * Tq * lo), *o3 = alloc_f(B * Tq * D);
    for (int64_t r = 0; r < B * Tq; r++) memcpy(q2 + r * lq, q + r * D, sizeof(float) * (size_t)D);
    for (int64_t r = 0; r < B * Tk; r++) {
      memcpy(k2 + r * lk, k + r * D, sizeof(float) * (size_t)D);
      memcpy(v2 + r * lv + D, v + r * D, sizeof(float) * (size_t)D);
    }
    OP(ldm_attention(&ctx, o2, lo, q2, lq, k2, lk, v2 + D, lv, B, Tq, Tk, h, dh, causal));
    for (int64_t r = 0; r < B * Tq; r++) memcpy(o3 + r * D, o2 + r * lo, sizeof(float) * (size_t)D);
    snprintf(n, sizeof n, "%s strided", cases[c]);
    close_("attention", n, o3, ref, B * Tq * D);
    free(q2), free(k2), free(v2), free(o2), free(o3);
    free(q), free(k), free(v), free(ref), free(o);
  }
}

/* The fused kernel (head sizes that are multiples of 8) at awkward sizes
 * against the naive version: 50 query rows (a 48-row task and a 2-row one,
 * padded register tiles), 300 keys (chunks of 256 + 44, a padded panel), 77
 * keys (cross-attention), 1100 keys (chunks of 1024 + 76 on AVX-512), head
 * sizes 24 (column blocks 16 + 8), 40, 160 (64 + 64 + 32), 64 (one block of
 * four vectors), 56 (four, the last under a mask);
 * strided rows; and the GEMM path (scratch bound too small for the fused
 * kernel) on the same inputs. */
static void test_attention_fused(void) {
  const int shapes[][5] = {{2, 3, 24, 50, 300}, {1, 2, 40, 50, 77},  {2, 1, 160, 13, 40},
                           {1, 1, 40, 7, 1100}, {1, 2, 64, 50, 300}, {2, 1, 56, 13, 77}};
  for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
    int B = shapes[c][0], h = shapes[c][1], dh = shapes[c][2];
    int64_t Tq = shapes[c][3], Tk = shapes[c][4], D = (int64_t)h * dh, lq = D + 3, lkv = 2 * D + 1;
    float *q = alloc_f(B * Tq * lq), *kv = alloc_f(B * Tk * lkv);
    float *o = alloc_f(B * Tq * D), *o2 = alloc_f(B * Tq * D), *ref = alloc_f(B * Tq * D);
    unsigned s = 5 + (unsigned)c;
    for (int64_t i = 0; i < B * Tq * lq; i++)
      q[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
    for (int64_t i = 0; i < B * Tk * lkv; i++)
      kv[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
    OP(ldm_attention(&ctx, o, D, q, lq, kv, lkv, kv + D, lkv, B, Tq, Tk, h, dh, false));
    OP(ldm_attention_naive(&ctx, ref, D, q, lq, kv, lkv, kv + D, lkv, B, Tq, Tk, h, dh, false));
    char name[96];
    snprintf(name, sizeof name, "B%d h%d dh%d Tq%lld Tk%lld", B, h, dh, (long long)Tq, (long long)Tk);
    close_("attention-fused-vs-naive", name, o, ref, B * Tq * D);
    OP(ldm_attention_ex(&ctx, o2, D, q, lq, kv, lkv, kv + D, lkv, B, Tq, Tk, h, dh, false,
                        7 * ((size_t)Tk + 1) * sizeof(float)));
    close_("attention-gemm-vs-naive", name, o2, ref, B * Tq * D);
    free(q), free(kv), free(o), free(o2), free(ref);
  }
}

/* Attention at Tq = Tk = 4096 (a 64x64 latent), 2 heads: the full score
 * matrices would take 128 MiB; the op must stay within its chunk bound. */
static void test_attention_memory(void) {
  const int B = 1, h = 2, dh = 8;
  const int64_t T = 4096, D = h * dh;
  float *q = alloc_f(T * D), *k = alloc_f(T * D), *v = alloc_f(T * D);
  float *o = alloc_f(T * D), *r = alloc_f(3 * D);
  unsigned s = 99;
  for (int64_t i = 0; i < T * D; i++) {
    q[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
    k[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
    v[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
  }
  ldm_arena *saved = ctx.scratch;
  ctx.scratch = ldm_arena_new(0);
  OP(ldm_attention(&ctx, o, D, q, D, k, D, v, D, B, T, T, h, dh, false));
  size_t peak = ldm_arena_peak(ctx.scratch);
  size_t full = (size_t)h * T * T * sizeof(float);
  printf("%s attention-memory T=%lld heads=%d: scratch peak %zu bytes (bound "
         "%zu, full scores %zu)%s\n",
         tag, (long long)T, h, peak, (size_t)LDM_ATTN_SCORE_BYTES, full,
         peak <= LDM_ATTN_SCORE_BYTES + 4096 ? "" : " FAIL");
  CHECK(peak <= LDM_ATTN_SCORE_BYTES + 4096, "attention scratch peak %zu", peak);
  ldm_arena_free(ctx.scratch);
  /* a tighter bound (1 MiB) is honoured as well, with the same result */
  ctx.scratch = ldm_arena_new(0);
  float *o2 = alloc_f(T * D);
  const size_t small = (size_t)1 << 20;
  OP(ldm_attention_ex(&ctx, o2, D, q, D, k, D, v, D, B, T, T, h, dh, false, small));
  peak = ldm_arena_peak(ctx.scratch);
  printf("%s attention-memory T=%lld bound %zu: scratch peak %zu bytes%s\n", tag,
         (long long)T, small, peak, peak <= small + 4096 ? "" : " FAIL");
  CHECK(peak <= small + 4096, "attention scratch peak %zu with bound %zu", peak, small);
  close_("attention", "T=4096 1 MiB bound vs default", o2, o, T * D);
  free(o2);
  ldm_arena_free(ctx.scratch);
  ctx.scratch = saved;
  /* first 3 query rows and last row against the naive version */
  OP(ldm_attention_naive(&ctx, r, D, q, D, k, D, v, D, B, 3, T, h, dh, false));
  close_("attention", "T=4096 rows 0-2 vs naive", o, r, 3 * D);
  OP(ldm_attention_naive(&ctx, r, D, q + (T - 1) * D, D, k, D, v, D, B, 1, T, h, dh, false));
  close_("attention", "T=4096 last row vs naive", o + (T - 1) * D, r, D);
  free(q), free(k), free(v), free(o), free(r);
}

/* ---------------------------------------------------- data movement */
static void test_misc(void) {
  int64_t p[5];
  float *r;
  P("upsample.params", p, 4);
  {
    int B = (int)p[0], C = (int)p[1], H = (int)p[2], W = (int)p[3];
    float *xc = F32("upsample.x", NULL), *x = to_nhwc(xc, B, C, (int64_t)H * W);
    float *y = alloc_f((int64_t)B * C * 4 * H * W);
    VOP(ldm_upsample_nearest2x(&ctx, y, x, B, H, W, C));
    float *yc = to_nchw(y, B, C, 4 * (int64_t)H * W);
    close_("upsample_nearest2x", "2x20x5x7", yc, r = F32("upsample.y", NULL),
           (int64_t)B * C * 4 * H * W);
    /* layout round trip is exact */
    float *back = to_nchw(x, B, C, (int64_t)H * W);
    CHECK(memcmp(back, xc, sizeof(float) * (size_t)(B * C * H * W)) == 0,
          "nchw -> nhwc -> nchw not exact");
    free(r), free(xc), free(x), free(y), free(yc), free(back);
  }
  P("concat.params", p, 5);
  {
    int B = (int)p[0], C1 = (int)p[1], C2 = (int)p[2];
    int64_t HW = p[3] * p[4];
    float *ac = F32("concat.a", NULL), *bc = F32("concat.b", NULL);
    float *a = to_nhwc(ac, B, C1, HW), *b = to_nhwc(bc, B, C2, HW);
    float *y = alloc_f(B * (C1 + C2) * HW);
    VOP(ldm_concat_channels(&ctx, y, a, C1, b, C2, B, HW));
    float *yc = to_nchw(y, B, C1 + C2, HW);
    close_("concat_channels", "20+12", yc, r = F32("concat.y", NULL), B * (C1 + C2) * HW);
    free(r), free(ac), free(bc), free(a), free(b), free(y), free(yc);
  }
  {
    int64_t n;
    float *a = F32("add.a", &n), *b = F32("add.b", NULL), *y = alloc_f(n);
    VOP(ldm_add(&ctx, y, a, b, n));
    close_("add", "3x37", y, r = F32("add.y", NULL), n), free(r);
    VOP(ldm_add(&ctx, a, a, b, n));
    close_("add", "3x37 aliased", a, r = F32("add.y", NULL), n), free(r);
    free(a);
    a = F32("add.a", NULL);
    OP(ldm_add_bias(&ctx, a, 3, 37, G("add_bias.bias")));
    close_("add_bias", "f16 bias", a, r = F32("add_bias.y", NULL), n), free(r);
    free(a), free(b), free(y);
  }
}

static void test_timestep(void) {
  int64_t nt;
  float *t = F32("temb.t", &nt);
  const char *cases[] = {"temb_sd", "temb_shift1", "temb_odd"};
  for (int c = 0; c < 3; c++) {
    char n[64];
    snprintf(n, sizeof n, "%s.params", cases[c]);
    float *p = F32(n, NULL);
    int dim = (int)p[0];
    float *y = alloc_f(nt * dim), *r;
    ldm_timestep_embedding(y, t, (int)nt, dim, p[1] != 0, p[2], p[3], p[4]);
    snprintf(n, sizeof n, "%s.y", cases[c]);
    /* Tolerance 1e-4 absolute = 1e-4 x the output scale (|y| <= 1): torch.exp
     * is not correctly rounded (MKL VML), and a one-ulp difference in a
     * frequency moves sin(t * f) at t ~ 1000 by up to 6e-5. */
    char buf[96];
    snprintf(buf, sizeof buf, "%s timestep_embedding %s", tag, cases[c]);
    ldm_test_close(buf, y, r = F32(n, NULL), nt * dim, 1e-4, 0.0);
    free(r), free(p), free(y);
  }
  free(t);
}

/* ------------------------------------------------- half conversions */
static void test_half(void) {
  int64_t n;
  float *x = F32("half.x", &n);
  const ldm_tensor *h16 = G("half.f16"), *hb = G("half.bf16");
  const ldm_tensor *h16f = G("half.f16_to_f32"), *hbf = G("half.bf16_to_f32");
  uint16_t *ref16 = malloc((size_t)n * 2), *refb = malloc((size_t)n * 2);
  uint16_t *got = malloc((size_t)n * 2);
  float *reff = malloc((size_t)n * 4), *gotf = malloc((size_t)n * 4);
  memcpy(ref16, h16->data, (size_t)n * 2);
  memcpy(refb, hb->data, (size_t)n * 2);
  struct { const char *name; int bad; } r[8] = {
      {"f32->f16 scalar", 0}, {"f32->f16 bulk", 0}, {"f32->bf16 scalar", 0},
      {"f32->bf16 bulk", 0},  {"f16->f32 scalar", 0}, {"f16->f32 bulk", 0},
      {"bf16->f32 scalar", 0}, {"bf16->f32 bulk", 0}};
  /* NaN: any NaN matches (torch's own scalar and vector paths give
   * different NaN bit patterns); everything else bit for bit. */
#define DIFF16(a, b, nan_mask) \
  (((a) & 0x7fff) > (nan_mask) && ((b) & 0x7fff) > (nan_mask) ? 0 : (a) != (b))
  for (int64_t i = 0; i < n; i++)
    r[0].bad += DIFF16(ldm_f32_to_f16(x[i]), ref16[i], 0x7c00);
  ldm_convert_f32_to_f16(got, x, (size_t)n);
  for (int64_t i = 0; i < n; i++) r[1].bad += DIFF16(got[i], ref16[i], 0x7c00);
  for (int64_t i = 0; i < n; i++)
    r[2].bad += DIFF16(ldm_f32_to_bf16(x[i]), refb[i], 0x7f80);
  ldm_convert_f32_to_bf16(got, x, (size_t)n);
  for (int64_t i = 0; i < n; i++) r[3].bad += DIFF16(got[i], refb[i], 0x7f80);
  for (int pass = 0; pass < 2; pass++) {
    const uint16_t *src = pass ? refb : ref16;
    memcpy(reff, (pass ? hbf : h16f)->data, (size_t)n * 4);
    if (pass) ldm_convert_bf16_to_f32(gotf, src, (size_t)n);
    else ldm_convert_f16_to_f32(gotf, src, (size_t)n);
    for (int64_t i = 0; i < n; i++) {
      float s = pass ? ldm_bf16_to_f32(src[i]) : ldm_f16_to_f32(src[i]);
      bool nan = reff[i] != reff[i];
      r[4 + 2 * pass].bad += nan ? s == s : memcmp(&s, &reff[i], 4) != 0;
      r[5 + 2 * pass].bad += nan ? gotf[i] == gotf[i] : memcmp(&gotf[i], &reff[i], 4) != 0;
    }
  }
  for (int i = 0; i < 8; i++) {
    printf("%s half %s: %d of %lld differ from torch (tol: bit-exact)%s\n", tag,
           r[i].name, r[i].bad, (long long)n, r[i].bad ? " FAIL" : "");
    CHECK(r[i].bad == 0, "half %s", r[i].name);
  }
  free(x), free(ref16), free(refb), free(got), free(reff), free(gotf);
}

/* --------------------------------------------------------- error paths */
static void test_errors(void) {
  float x[64] = {0}, y[64];
  float wd[4 * 3 * 9] = {0};
  ldm_tensor w = {LDM_DTYPE_F32, 4, {4, 3, 3, 3}, wd, "conv.weight"};
  size_t in_use = ldm_arena_in_use(ctx.scratch);
  ldm_status s = ldm_conv2d(&ctx, y, x, 1, 2, 2, 5, &w, NULL, 1, 1);
  CHECK(s == LDM_ERR_SHAPE && strstr(err.msg, "conv.weight"),
        "conv2d Cin mismatch: %s (%s)", ldm_status_str(s), err.msg);
  printf("%s error: %s\n", tag, err.msg);
  int64_t id[4] = {0};
  ldm_tensor wi = {LDM_DTYPE_I64, 2, {2, 2}, id, "lin.weight"};
  s = ldm_linear(&ctx, y, x, 1, &wi, NULL);
  CHECK(s == LDM_ERR_SHAPE && strstr(err.msg, "I64"), "linear i64: %s (%s)",
        ldm_status_str(s), err.msg);
  printf("%s error: %s\n", tag, err.msg);
  s = ldm_group_norm(&ctx, y, x, 1, 4, 6, 4, 1e-5f, NULL, NULL, false);
  CHECK(s == LDM_ERR_INVALID_ARG, "group_norm C %% groups: %s", ldm_status_str(s));
  printf("%s error: %s\n", tag, err.msg);
  /* a raised cancel flag stops conv2d and attention with LDM_ERR_CANCELLED */
  atomic_int cancel = 1;
  ctx.cancel = &cancel;
  float wd3[2 * 2 * 9] = {0}, big[2 * 16 * 16] = {0}, out[2 * 16 * 16];
  ldm_tensor w3 = {LDM_DTYPE_F32, 4, {2, 2, 3, 3}, wd3, "w"};
  s = ldm_conv2d(&ctx, out, big, 1, 16, 16, 2, &w3, NULL, 1, 1);
  CHECK(s == LDM_ERR_CANCELLED, "conv2d ignored cancel: %s", ldm_status_str(s));
  s = ldm_attention(&ctx, out, 2, big, 2, big, 2, big, 2, 1, 64, 64, 1, 2, false);
  CHECK(s == LDM_ERR_CANCELLED, "attention ignored cancel: %s", ldm_status_str(s));
  s = ldm_attention(&ctx, out, 8, big, 8, big, 8, big, 8, 1, 32, 32, 1, 8, false); /* fused kernel */
  CHECK(s == LDM_ERR_CANCELLED, "fused attention ignored cancel: %s", ldm_status_str(s));
  printf("%s cancel: %s\n", tag, err.msg);
  ctx.cancel = NULL;
  CHECK(ldm_arena_in_use(ctx.scratch) == in_use, "scratch not given back on error");
}

int main(void) {
  printf("cpu features the kernels dispatch on: %s\n", ldm_cpu_features());
  gf = ldm_test_open_golden("ops/ops.safetensors");
  ctx.scratch = ldm_arena_new(0);
  ctx.err = &err;
  for (int threads = 1; threads <= 2; threads++) {
    snprintf(tag, sizeof tag, "t%d", threads);
    ctx.threads = threads;
    ctx.pool = threads > 1 ? ldm_pool_new(threads) : NULL;
    /* a non-zero mark, so "given back" means back to the caller's mark */
    void *outer = ldm_arena_alloc(ctx.scratch, 100);
    (void)outer;
    test_gemm();
    test_linear();
    test_conv();
    test_norms();
    test_activations();
    test_row_kernels();
    test_attention();
    test_attention_fused();
    if (threads == 2) test_attention_memory();
    test_misc();
    test_timestep();
    test_half();
    test_errors();
    ldm_pool_free(ctx.pool);
  }
  ldm_arena_free(ctx.scratch);
  ldm_st_close(gf);
  return ldm_test_finish("ops");
}
