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

/* Number of pool tasks for n elements of about `grain` each. */
static inline int64_t ops_tasks(int64_t n, int64_t grain) {
  int64_t t = (n + grain - 1) / grain;
  return t < 1 ? 1 : t;
}

/* y[r, :] += bias[:] over rows x C (f32 bias), parallel over rows. */
void ops_add_bias_f32(ldm_ctx *ctx, float *y, int64_t rows, int C,
                      const float *bias);

/* Softmax of one row of n values (y may alias x); an all -inf row gives
 * zeros. */
void ops_softmax_row(float *y, const float *x, int64_t n);

#endif
