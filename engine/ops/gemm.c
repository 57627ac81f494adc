/* The one GEMM wrapper: row-major C = alpha*op(A)*op(B) + beta*C through
 * OpenBLAS cblas_sgemm, threaded by the job's pool (see below). bf16
 * (ctx->precision): AMX tiles where the CPU and OS allow them (gemm_amx.c,
 * B packed into panels per call; weights take ops_amx_weight's cached
 * panels instead), else cblas_sbgemm where the loaded OpenBLAS exports it
 * (looked up with dlsym because Debian 12's OpenBLAS 0.3.21 does not;
 * threaded by OpenBLAS itself), else the engine's own kernel (gemm_bf16.c)
 * on CPUs with AVX512-BF16 or in its emulation when asked for, else f32. */
#include "ops/ops.h"
#include "ops/ops_util.h"
#include "core/cpu.h"
#include "core/half.h"

#include <cblas.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

typedef void (*sbgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE,
                          enum CBLAS_TRANSPOSE, blasint, blasint, blasint,
                          float, const uint16_t *, blasint, const uint16_t *,
                          blasint, float, float *, blasint);

static sbgemm_fn sbgemm_ptr;
static pthread_once_t sbgemm_once = PTHREAD_ONCE_INIT;

static void sbgemm_lookup(void) {
  void *sym = dlsym(RTLD_DEFAULT, "cblas_sbgemm");
  /* Function pointers from dlsym: the POSIX-sanctioned conversion. */
  *(void **)&sbgemm_ptr = sym;
}

bool ldm_gemm_bf16_available(void) {
  pthread_once(&sbgemm_once, sbgemm_lookup);
  return sbgemm_ptr != NULL;
}

/* AMX products through ldm_gemm: B packed into panels in scratch per call
 * (weights go through ops_amx_weight instead, packed once per job). */
static ldm_status gemm_amx(ldm_ctx *ctx, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  size_t words = ops_amx_panels_words(N, K);
  uint32_t *pw = ldm_arena_alloc(ctx->scratch, words * 4);
  if (!pw)
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "gemm: no scratch for bf16 panels (%lld x %lld)", (long long)N,
                    (long long)K);
  ldm_status st = ops_amx_pack_matrix(ctx, pw, B, ldb, trans_b, N, K);
  ops_amx_panels P = {pw, N, K, ops_amx_kp(K)};
  if (st == LDM_OK) st = ops_amx_gemm(ctx, M, alpha, A, lda, &P, beta, C, ldc, NULL);
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

bool ops_gemm_bf16_active(const ldm_ctx *ctx) {
  return ctx->precision == LDM_PRECISION_BF16_EMULATED ||
         (ctx->precision == LDM_PRECISION_BF16 && ldm_bf16_native());
}

int64_t ops_gemm_stream_max_rows(const ldm_ctx *ctx) {
  if (ops_amx_active(ctx)) return LDM_AMX_MIN_ROWS - 1;
  return ops_gemm_bf16_active(ctx) ? LDM_GEMM_STREAM_MAX_ROWS_BF16 : LDM_GEMM_STREAM_MAX_ROWS;
}

bool ldm_bf16_native(void) {
  return ldm_gemm_bf16_available() || ops_gemm_bf16_native() || (ops_amx_built() && ldm_cpu_has_amx_bf16());
}

const char *ldm_bf16_path(void) {
  if (ops_amx_built() && ldm_cpu_has_amx_bf16()) return "AMX TDPBF16PS (own kernel)";
  if (ldm_gemm_bf16_available()) return "cblas_sbgemm";
  if (ops_gemm_bf16_native()) return "AVX512-BF16 VDPBF16PS (own kernel)";
  return "f32 (no bf16 arithmetic on this machine)";
}

bool ldm_bf16_amx(void) { return ops_amx_built() && ldm_cpu_has_amx_bf16(); }

const char *ldm_amx_note(void) {
  if (!ops_amx_built()) return "this build has no AMX kernel (compiler without AMX)";
  return ldm_cpu_amx_note();
}

const char *ldm_precision_name(ldm_precision p) {
  switch (p) {
  case LDM_PRECISION_F32: return "f32";
  case LDM_PRECISION_BF16: return "bf16";
  case LDM_PRECISION_BF16_EMULATED: return "bf16-emulated";
  }
  return "?";
}

bool ldm_precision_parse(const char *name, ldm_precision *out) {
  static const ldm_precision all[] = {LDM_PRECISION_F32, LDM_PRECISION_BF16, LDM_PRECISION_BF16_EMULATED};
  for (size_t i = 0; name && i < sizeof all / sizeof *all; i++)
    if (strcmp(name, ldm_precision_name(all[i])) == 0) {
      *out = all[i];
      return true;
    }
  return false;
}

/* Rounds a rows x cols block (leading dimension ld) to packed bf16. */
static void pack_bf16(uint16_t *dst, const float *src, int64_t rows,
                      int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; r++)
    ldm_convert_f32_to_bf16(dst + r * cols, src + r * ld, (size_t)cols);
}

static ldm_status gemm_bf16(ldm_ctx *ctx, bool trans_a, bool trans_b, int M,
                            int N, int K, float alpha, const float *A,
                            int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int ldc) {
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  int64_t ar = trans_a ? K : M, ac = trans_a ? M : K;
  int64_t br = trans_b ? N : K, bc = trans_b ? K : N;
  uint16_t *a16 = ldm_arena_alloc(ctx->scratch, (size_t)(ar * ac) * 2);
  uint16_t *b16 = ldm_arena_alloc(ctx->scratch, (size_t)(br * bc) * 2);
  if (!a16 || !b16) {
    ldm_arena_reset(ctx->scratch, mark);
    return ldm_fail(ctx->err, LDM_ERR_NOMEM,
                    "gemm: no scratch for bf16 operands (%d x %d x %d)", M, N,
                    K);
  }
  pack_bf16(a16, A, ar, ac, lda);
  pack_bf16(b16, B, br, bc, ldb);
  sbgemm_ptr(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
             trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, a16,
             (blasint)ac, b16, (blasint)bc, beta, C, ldc);
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

/* Threading: OpenBLAS runs single-threaded and a large product is cut into
 * one block of rows (or, for few rows, of columns) of C per pool thread.
 * OpenBLAS's own worker threads busy-wait (sched_yield) for a while after
 * every call, which took ~12 % of the CPU away from the element-wise ops
 * between GEMMs; the pool's threads sleep instead. */
enum {
  GEMM_SPLIT_MIN_MACS = 1 << 20, /* below this one thread does it all */
  GEMM_SPLIT_MIN_ROWS = 32,      /* rows (or columns) per piece, at least */
  GEMM_SPLIT_ALIGN = 16          /* piece boundaries, in rows or columns */
};

typedef enum gemm_kind { GEMM_SGEMM, GEMM_OWN_BF16, GEMM_OWN_BF16_EMULATED } gemm_kind;

typedef struct gemm_job {
  gemm_kind kind;
  char *ws;       /* own bf16 kernel: one workspace per piece */
  size_t ws_bytes;
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha;
  const float *A;
  int64_t lda;
  const float *B;
  int64_t ldb;
  float beta;
  float *C;
  int64_t ldc;
  int pieces;
  bool split_n;
} gemm_job;

/* Start of piece i of n over [0, len), aligned. */
static int64_t piece_start(int64_t len, int i, int n) {
  if (i >= n) return len;
  int64_t s = len * i / n;
  s -= s % GEMM_SPLIT_ALIGN;
  return s;
}

static void sgemm_rows(const gemm_job *j, int64_t m0, int64_t m1, int64_t n0,
                       int64_t n1) {
  /* Rows of C in blocks that fit a 32-bit BLAS. */
  const int64_t step = (int64_t)INT_MAX / 2;
  for (int64_t r = m0; r < m1; r += step) {
    int m = (int)(m1 - r < step ? m1 - r : step);
    const float *a = j->A + (j->trans_a ? r : r * j->lda);
    const float *b = j->B + (j->trans_b ? n0 * j->ldb : n0);
    cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans,
                j->trans_b ? CblasTrans : CblasNoTrans, m, (int)(n1 - n0),
                (int)j->K, j->alpha, a, (blasint)j->lda, b, (blasint)j->ldb,
                j->beta, j->C + r * j->ldc + n0, (blasint)j->ldc);
  }
}

static void gemm_task(void *user, int64_t i) {
  const gemm_job *j = user;
  int64_t len = j->split_n ? j->N : j->M;
  int64_t lo = piece_start(len, (int)i, j->pieces);
  int64_t hi = piece_start(len, (int)i + 1, j->pieces);
  if (hi <= lo) return;
  int64_t m0 = j->split_n ? 0 : lo, m1 = j->split_n ? j->M : hi;
  int64_t n0 = j->split_n ? lo : 0, n1 = j->split_n ? hi : j->N;
  if (j->kind == GEMM_SGEMM) sgemm_rows(j, m0, m1, n0, n1);
  else
    ops_gemm_bf16_block(j->kind == GEMM_OWN_BF16_EMULATED, j->trans_a, j->trans_b, m0, m1, n0, n1, j->K, j->alpha,
                        j->A, j->lda, j->B, j->ldb, j->beta, j->C, j->ldc, j->ws + (size_t)i * j->ws_bytes);
}

ldm_status ldm_gemm(ldm_ctx *ctx, bool trans_a, bool trans_b, int64_t M,
                    int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta,
                    float *C, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "gemm: negative size M=%lld N=%lld K=%lld", (long long)M,
                    (long long)N, (long long)K);
  if (M == 0 || N == 0) return LDM_OK;
  if (N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
      ldc > INT_MAX)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED,
                    "gemm: size beyond 32-bit BLAS (N=%lld K=%lld lda=%lld "
                    "ldb=%lld ldc=%lld)",
                    (long long)N, (long long)K, (long long)lda, (long long)ldb,
                    (long long)ldc);
  if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "gemm: leading dimension too small (lda=%lld ldb=%lld "
                    "ldc=%lld for M=%lld N=%lld K=%lld)",
                    (long long)lda, (long long)ldb, (long long)ldc,
                    (long long)M, (long long)N, (long long)K);
  if (trans_a && M > INT_MAX)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED,
                    "gemm: transposed A with M=%lld beyond 32-bit BLAS",
                    (long long)M);
  if (!trans_a && K > 0 && ops_amx_active(ctx))
    return gemm_amx(ctx, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_kind kind = GEMM_SGEMM;
  if (ctx->precision == LDM_PRECISION_BF16_EMULATED) kind = GEMM_OWN_BF16_EMULATED;
  else if (ctx->precision == LDM_PRECISION_BF16 && !ldm_gemm_bf16_available() && ops_gemm_bf16_native())
    kind = GEMM_OWN_BF16;
  if (ctx->precision == LDM_PRECISION_BF16 && ldm_gemm_bf16_available()) {
    ldm_blas_set_threads(ctx->threads > 0 ? ctx->threads : 1);
    /* Rows of C in blocks that fit a 32-bit BLAS. */
    const int64_t step = (int64_t)INT_MAX / 2;
    for (int64_t m0 = 0; m0 < M; m0 += step) {
      int m = (int)(M - m0 < step ? M - m0 : step);
      LDM_TRY(gemm_bf16(ctx, trans_a, trans_b, m, (int)N, (int)K, alpha,
                        A + (trans_a ? m0 : m0 * lda), lda, B, ldb, beta,
                        C + m0 * ldc, (int)ldc));
    }
    return LDM_OK;
  }
  gemm_job j = {kind, NULL, 0, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1, false};
  int threads = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  if (threads > 1 && (double)M * (double)N * (double)K >= GEMM_SPLIT_MIN_MACS) {
    /* Each piece packs its share of one operand and all of the other: cut
     * the longer side (B packed whole per thread at M = 128, N = K = 1280
     * cost about as much as the products). */
    if (M >= (int64_t)threads * GEMM_SPLIT_MIN_ROWS && (M >= N || N < (int64_t)threads * GEMM_SPLIT_MIN_ROWS))
      j.pieces = threads;
    else if (N >= (int64_t)threads * GEMM_SPLIT_MIN_ROWS) {
      j.pieces = threads;
      j.split_n = true;
    }
  }
  ldm_arena_mark mark = {0};
  if (kind != GEMM_SGEMM) {
    mark = ldm_arena_get_mark(ctx->scratch);
    j.ws_bytes = ops_gemm_bf16_workspace_bytes();
    if (!(j.ws = ldm_arena_alloc(ctx->scratch, j.ws_bytes * (size_t)j.pieces)))
      return ldm_fail(ctx->err, LDM_ERR_NOMEM, "gemm: no scratch for the bf16 kernel's packed operands (%d x %zu B)",
                      j.pieces, j.ws_bytes);
  }
  ldm_blas_set_threads(1);
  ldm_pool_for(j.pieces > 1 ? ctx->pool : NULL, j.pieces, gemm_task, &j);
  if (kind != GEMM_SGEMM) ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

/* ---- weights streamed through the cache ---------------------------------
 * C [M, N] = A [M, K] W^T for a weight stored as rows [N][K] in f32, f16 or
 * bf16. Each pool thread takes a block of W's rows (C's columns) and walks K
 * in chunks: its rows' chunk is widened into a buffer that stays in cache and
 * accumulated into C by cblas_sgemm. The weight is read once, at its stored
 * width, and never written out whole in f32: at the few rows of low
 * resolutions and batch 1 a product is bound by the weight's memory traffic
 * (widen, write, read back, pack), not by its arithmetic. */
enum {
  STREAM_KC = 256,              /* K per chunk */
  STREAM_CHUNK_FLOATS = 1 << 16 /* widened rows x K chunk: 256 KiB, half an L2 */
};

typedef struct stream_job {
  int64_t M, N, K, lda, ldc, kc, nb;
  const float *A;
  const ldm_tensor *w;
  float *C, *buf;
  int pieces;
} stream_job;

static void stream_task(void *user, int64_t i) {
  const stream_job *j = user;
  int64_t p0 = piece_start(j->N, (int)i, j->pieces);
  int64_t p1 = piece_start(j->N, (int)i + 1, j->pieces);
  float *buf = j->buf + i * j->nb * j->kc;
  for (int64_t n0 = p0; n0 < p1; n0 += j->nb) {
    int64_t nb = p1 - n0 < j->nb ? p1 - n0 : j->nb;
    for (int64_t k0 = 0; k0 < j->K; k0 += j->kc) {
      int64_t kc = j->K - k0 < j->kc ? j->K - k0 : j->kc;
      for (int64_t n = 0; n < nb; n++)
        ldm_tensor_read_f32(j->w, (n0 + n) * j->K + k0, kc, buf + n * kc, NULL);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)nb, (int)kc, 1.0f,
                  j->A + k0, (blasint)j->lda, buf, (blasint)kc, k0 ? 1.0f : 0.0f, j->C + n0,
                  (blasint)j->ldc);
    }
  }
}

ldm_status ops_gemm_stream(ldm_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                           const ldm_tensor *w, float *C, int64_t ldc) {
  if (M < 1 || N < 1 || K < 1 || M > INT_MAX || N > INT_MAX || K > INT_MAX || lda < K || ldc < N ||
      lda > INT_MAX || ldc > INT_MAX || ldm_tensor_numel(w) < N * K)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "gemm: bad streamed product M=%lld N=%lld K=%lld lda=%lld ldc=%lld for weight '%s'",
                    (long long)M, (long long)N, (long long)K, (long long)lda, (long long)ldc,
                    w->name ? w->name : "?");
  int threads = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  int pieces = threads > 1 && N >= (int64_t)threads * GEMM_SPLIT_MIN_ROWS ? threads : 1;
  int64_t kc = K < STREAM_KC ? K : STREAM_KC;
  int64_t nb = STREAM_CHUNK_FLOATS / kc;
  nb -= nb % GEMM_SPLIT_ALIGN;
  if (nb > N) nb = N;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  float *buf = ldm_arena_floats(ctx->scratch, (size_t)(pieces * nb * kc));
  if (!buf)
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "gemm: no scratch to stream weight '%s'",
                    w->name ? w->name : "?");
  stream_job j = {M, N, K, lda, ldc, kc, nb, A, w, C, buf, pieces};
  ldm_blas_set_threads(1);
  ldm_pool_for(pieces > 1 ? ctx->pool : NULL, pieces, stream_task, &j);
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

void ldm_gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N,
                    int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C,
                    int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t p = 0; p < K; p++) {
        double a = trans_a ? A[p * lda + i] : A[i * lda + p];
        double b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
        s += a * b;
      }
      double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j];
      C[i * ldc + j] = (float)(alpha * s + c);
    }
}
