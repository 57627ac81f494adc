/* The bf16 GEMM path of ldm_gemm, exercised where the system OpenBLAS lacks
 * cblas_sbgemm: this program exports its own reference cblas_sbgemm
 * (linked with -rdynamic), so the run-time dlsym lookup must find it and
 * ldm_gemm must route bf16 requests (and only those) through it, with A and
 * B rounded to bf16 exactly as ldm_f32_to_bf16 does.
 * AMX comes before cblas_sbgemm (ldm_gemm's order: AMX, sbgemm, the own
 * VDPBF16PS kernel), so AMX is hidden here (LDM_CPU_NO_AMX) to reach it.
 * Tolerance: |a - r| <= 1e-5 + 1e-4 * |r| against a double-precision product
 * of the bf16-rounded operands. */
#include "ldm_test.h"

#include <cblas.h>

#include "core/arena.h"
#include "core/half.h"
#include "core/threads.h"
#include "ops/ops.h"

static int sbgemm_calls;

/* Reference sbgemm (row-major only, as ldm_gemm calls it). */
void cblas_sbgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                  const enum CBLAS_TRANSPOSE tb, const blasint M,
                  const blasint N, const blasint K, const float alpha,
                  const bfloat16 *A, const blasint lda, const bfloat16 *B,
                  const blasint ldb, const float beta, float *C,
                  const blasint ldc) {
  sbgemm_calls++;
  if (order != CblasRowMajor) return;
  for (blasint i = 0; i < M; i++)
    for (blasint j = 0; j < N; j++) {
      double s = 0;
      for (blasint p = 0; p < K; p++) {
        float a = ldm_bf16_to_f32(ta == CblasTrans ? A[p * lda + i] : A[i * lda + p]);
        float b = ldm_bf16_to_f32(tb == CblasTrans ? B[j * ldb + p] : B[p * ldb + j]);
        s += (double)a * b;
      }
      C[i * ldc + j] = (float)(alpha * s + (beta == 0.0f ? 0.0 : beta * C[i * ldc + j]));
    }
}

int main(void) {
  setenv("LDM_CPU_NO_AMX", "1", 1); /* before the first probe */
  ldm_error err = {0};
  ldm_ctx ctx = {.pool = NULL, .threads = 1, .scratch = ldm_arena_new(0), .err = &err};
  CHECK(ldm_gemm_bf16_available(), "cblas_sbgemm exported by the test not found");
  const int M = 19, N = 23, K = 31, pad = 2;
  float *A = malloc(sizeof(float) * (M + pad) * (K + pad));
  float *B = malloc(sizeof(float) * (N + pad) * (K + pad));
  float *C = malloc(sizeof(float) * M * (N + pad)), *R = malloc(sizeof(float) * M * (N + pad));
  unsigned s = 3;
  for (int i = 0; i < (M + pad) * (K + pad); i++)
    A[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
  for (int i = 0; i < (N + pad) * (K + pad); i++)
    B[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      for (int i = 0; i < M * (N + pad); i++) C[i] = R[i] = 0.5f;
      /* reference on bf16-rounded operands */
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double acc = 0;
          for (int p = 0; p < K; p++) {
            float a = ldm_bf16_to_f32(ldm_f32_to_bf16(ta ? A[p * lda + i] : A[i * lda + p]));
            float b = ldm_bf16_to_f32(ldm_f32_to_bf16(tb ? B[j * ldb + p] : B[p * ldb + j]));
            acc += (double)a * b;
          }
          R[i * ldc + j] = (float)(1.5 * acc + 0.25 * 0.5);
        }
      size_t in_use = ldm_arena_in_use(ctx.scratch);
      int before = sbgemm_calls;
      ctx.precision = LDM_PRECISION_BF16;
      ldm_status st = ldm_gemm(&ctx, ta, tb, M, N, K, 1.5f, A, lda, B, ldb, 0.25f, C, ldc);
      CHECK(st == LDM_OK, "ldm_gemm bf16: %s", err.msg);
      CHECK(sbgemm_calls == before + 1, "bf16 request did not reach cblas_sbgemm");
      CHECK(ldm_arena_in_use(ctx.scratch) == in_use, "bf16 path kept scratch");
      char name[64];
      snprintf(name, sizeof name, "gemm-bf16 ta=%d tb=%d", ta, tb);
      ldm_test_close(name, C, R, (long long)M * (N + pad), 1e-5, 1e-4);
      /* without the request: sgemm, sbgemm untouched */
      ctx.precision = LDM_PRECISION_F32;
      before = sbgemm_calls;
      st = ldm_gemm(&ctx, ta, tb, M, N, K, 1.5f, A, lda, B, ldb, 0.25f, C, ldc);
      CHECK(st == LDM_OK && sbgemm_calls == before, "f32 request went to sbgemm");
    }
  free(A), free(B), free(C), free(R);
  ldm_arena_free(ctx.scratch);
  return ldm_test_finish("gemm-bf16");
}
