/* Helpers shared by the op files (not part of the op API): weight views in
 * f32 (converting into scratch when stored as f16/bf16) and checks. */
#ifndef LDM_OPS_UTIL_H
#define LDM_OPS_UTIL_H

#include "core/arena.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/threads.h"

/* f32 view of the first n elements of a float tensor: the tensor's own data
 * when it is f32, else a copy converted into ctx->scratch (the caller owns
 * the arena mark). NULL with ctx->err set on error. */
const float *ops_weight_f32(ldm_ctx *ctx, const ldm_tensor *t, int64_t n);

/* t itself when its data is aligned for its dtype, else *copy: the same
 * tensor with its bytes copied into ctx->scratch (file data may be
 * unaligned). NULL with ctx->err set when scratch runs out. */
const ldm_tensor *ops_aligned(ldm_ctx *ctx, const ldm_tensor *t,
                              ldm_tensor *copy);

/* Error unless t holds a float dtype and exactly n elements. */
ldm_status ops_check_float(ldm_ctx *ctx, const ldm_tensor *t, int64_t n,
                           const char *op, const char *what);

/* C [M, N] = A [M, K] (row stride lda) W^T, W the first N*K elements of w
 * (f32/f16/bf16, aligned: ops_aligned) as rows [N][K], widened chunk by chunk
 * inside the product (gemm.c): for products bound by the weight's traffic
 * (few rows of A). */
ldm_status ops_gemm_stream(ldm_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                           const ldm_tensor *w, float *C, int64_t ldc);

/* Fused attention (attention_fused.c): the scratch bytes it needs for these
 * sizes, or 0 where it does not apply (causal, head size not a multiple of 8
 * or above 256, no AVX2+FMA); then the op itself (ldm_attention_ex's
 * arguments, already checked). */
size_t ops_attention_fused_bytes(ldm_ctx *ctx, int B, int64_t Tk, int heads, int dh, bool causal);
ldm_status ops_attention_fused(ldm_ctx *ctx, float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int B, int64_t Tq, int64_t Tk, int heads,
                               int dh);

/* Number of pool tasks for n elements of about `grain` each. */
static inline int64_t ops_tasks(int64_t n, int64_t grain) {
  int64_t t = (n + grain - 1) / grain;
  return t < 1 ? 1 : t;
}

/* y[r, :] += bias[:] over rows x C (f32 bias), parallel over rows. */
void ops_add_bias_f32(ldm_ctx *ctx, float *y, int64_t rows, int C,
                      const float *bias);

/* Row kernels (vmath.c): AVX2+FMA when the CPU has it, libm otherwise.
 * y may alias x. */
typedef enum ops_act {
  OPS_ACT_SILU,
  OPS_ACT_GELU,
  OPS_ACT_GELU_TANH,
  OPS_ACT_QUICK_GELU
} ops_act;
void ops_act_row(ops_act kind, float *y, const float *x, int64_t n);
void ops_act_row_naive(ops_act kind, float *y, const float *x, int64_t n);
/* y = h * gelu(g) (exact gelu) */
void ops_geglu_row(float *y, const float *h, const float *g, int64_t n);
float ops_row_max(const float *x, int64_t n);
/* *sum = sum of x, *ssd = sum of (x - m)^2, in double */
void ops_row_moments(const float *x, int64_t n, double m, double *sum,
                     double *ssd);
/* y = exp(x - m); returns the sum of y */
float ops_exp_sum(float *y, const float *x, int64_t n, float m);
/* Softmax of one row (an all -inf row gives zeros). */
void ops_softmax_row(float *y, const float *x, int64_t n);

/* What a convolution does to its result before it is stored:
 * y = relu?(conv + res), res [B, Ho*Wo, Cout] like y (NULL: none), not
 * overlapping y or the convolution's input. */
typedef struct ops_epilogue {
  const float *res;
  bool relu;
} ops_epilogue;

/* 3x3, stride 1, padding 1 by Winograd F(m x m, 3x3), m = 2 or 4
 * (winograd.c); U is the transformed kernel [(m+2)^2, Cout, Cin]
 * (ops_winograd_weights with the same m), bias f32 [Cout] or NULL; ep NULL
 * or applied in the output transform. */
ldm_status ops_conv3x3_winograd(ldm_ctx *ctx, float *y, const float *x, int B,
                                int H, int W, int Cin, int Cout,
                                const float *U, const float *bias, const ops_epilogue *ep,
                                size_t max_scratch_bytes, int m);
/* w [Cout, Cin, 3, 3] (f32/f16/bf16, aligned: ops_aligned) -> U [(m+2)^2,
 * Cout, Cin] f32, parallel over Cout. */
void ops_winograd_weights(ldm_ctx *ctx, float *U, const ldm_tensor *w, int Cin, int Cout, int m);


#endif
