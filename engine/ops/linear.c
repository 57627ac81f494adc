/* torch.nn.Linear on channels-last rows: y[M, N] = x[M, K] W[N, K]^T + b.
 * f32 weights are used in place; f16/bf16 weights without a weight cache
 * are packed per call from their stored width (ops_gemm_wide, up to
 * LDM_GEMM_WIDE_MAX_ROWS rows where the CPU has the panel tiles), else
 * widened into scratch for the duration of the call, or, for at most
 * ops_gemm_stream_max_rows rows, chunk by chunk inside the product. With bf16
 * on AMX: bf16 panels from LDM_AMX_MIN_ROWS rows on; fewer rows (the time
 * and class embeddings) stream their weight in f32, which reads the same
 * bytes as the panels and keeps those products exact. */
#include "ops/ops.h"
#include "ops/ops_util.h"

typedef struct bias_job {
  float *y;
  const float *bias;
  int64_t rows, rows_per_task;
  int C;
} bias_job;

static void bias_task(void *user, int64_t t) {
  bias_job *j = user;
  int64_t r0 = t * j->rows_per_task;
  int64_t r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
  for (int64_t r = r0; r < r1; r++) {
    float *row = j->y + r * j->C;
    for (int c = 0; c < j->C; c++) row[c] += j->bias[c];
  }
}

/* y[r, :] += bias for rows x C (f32 bias), parallel over rows. */
void ops_add_bias_f32(ldm_ctx *ctx, float *y, int64_t rows, int C,
                      const float *bias) {
  int64_t per = 16384 / (C > 0 ? C : 1);
  if (per < 1) per = 1;
  bias_job j = {y, bias, rows, per, C};
  ldm_pool_for(ctx->pool, ops_tasks(rows, per), bias_task, &j);
}

ldm_status ldm_add_bias(ldm_ctx *ctx, float *y, int64_t rows, int C,
                        const ldm_tensor *bias) {
  LDM_TRY(ops_check_float(ctx, bias, C, "add_bias", "bias"));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  const float *b = ops_weight_f32(ctx, bias, C);
  if (!b) return ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
  ops_add_bias_f32(ctx, y, rows, C, b);
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

static ldm_status linear_check(ldm_ctx *ctx, const ldm_tensor *w,
                               const ldm_tensor *b, int64_t *N, int64_t *K) {
  if (!w || w->ndim != 2)
    return ldm_fail(ctx->err, LDM_ERR_SHAPE,
                    "linear: weight '%s' must be 2-D [out, in]",
                    w && w->name ? w->name : "?");
  *N = w->shape[0];
  *K = w->shape[1];
  LDM_TRY(ops_check_float(ctx, w, *N * *K, "linear", "weight"));
  if (b) LDM_TRY(ops_check_float(ctx, b, *N, "linear", "bias"));
  return LDM_OK;
}

/* Checks w/b and converts them to f32 in the scratch (caller resets it). */
static ldm_status linear_weights(ldm_ctx *ctx, const ldm_tensor *w, const ldm_tensor *b, int64_t *N,
                                 int64_t *K, const float **wf, const float **bf) {
  LDM_TRY(linear_check(ctx, w, b, N, K));
  *wf = ops_weight_f32(ctx, w, *N * *K);
  *bf = *wf && b ? ops_weight_f32(ctx, b, *N) : NULL;
  if (!*wf || (b && !*bf)) return ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
  return LDM_OK;
}

ldm_status ldm_linear(ldm_ctx *ctx, float *y, const float *x, int64_t M,
                      const ldm_tensor *w, const ldm_tensor *b) {
  int64_t N = 0, K = 0;
  const float *wf = NULL, *bf = NULL;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status s = LDM_OK;
  if (ops_amx_active(ctx) && M >= LDM_AMX_MIN_ROWS) {
    /* bf16 panels (kept in the weight cache where there is one), bias added
     * as the tiles are stored */
    ops_amx_panels P;
    if ((s = linear_check(ctx, w, b, &N, &K)) != LDM_OK) goto done;
    if (b && !(bf = ops_weight_f32(ctx, b, N))) {
      s = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
      goto done;
    }
    if ((s = ops_amx_weight(ctx, w, N, K, 1, &P)) == LDM_OK) s = ops_amx_gemm(ctx, M, 1.0f, x, K, &P, 0.0f, y, N, bf);
    goto done;
  }
  const float *P = NULL;
  bool wide = !ctx->wcache && ops_gemm_wide_usable(ctx) && M <= LDM_GEMM_WIDE_MAX_ROWS;
  if (ops_panels_usable(ctx, M) && (s = linear_check(ctx, w, b, &N, &K)) == LDM_OK &&
      (P = ops_weight_panels(ctx, w, N, K))) {
    /* few rows, weight cache: the weight's f32 panels */
    if (b && !(bf = ops_weight_f32(ctx, b, N)))
      s = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
    else
      ops_gemm_panels(ctx, M, N, K, x, K, P, w->dtype, y, N);
  } else if (s != LDM_OK) {
    goto done;
  } else if (w && w->dtype != LDM_DTYPE_F32 &&
             (wide || ((!ctx->wcache || ops_amx_active(ctx)) && M >= 1 && M <= ops_gemm_stream_max_rows(ctx)))) {
    /* no cached weight: packed per call from its stored width into the
     * panel tiles, or (where those are not usable) widened chunk by chunk
     * inside OpenBLAS products */
    ldm_tensor w_copy;
    const ldm_tensor *wa = NULL;
    if ((s = linear_check(ctx, w, b, &N, &K)) != LDM_OK) goto done;
    if (!(wa = ops_aligned(ctx, w, &w_copy)) || (b && !(bf = ops_weight_f32(ctx, b, N)))) {
      s = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
      goto done;
    }
    s = wide ? ops_gemm_wide(ctx, M, N, K, x, K, wa, y, N) : ops_gemm_stream(ctx, M, N, K, x, K, wa, y, N);
  } else {
    if ((s = linear_weights(ctx, w, b, &N, &K, &wf, &bf)) != LDM_OK) goto done;
    // x [M, K] * W^T [K, N] -> y [M, N]
    s = ldm_gemm(ctx, false, true, M, N, K, 1.0f, x, K, wf, K, 0.0f, y, N);
  }
  if (s != LDM_OK) goto done;
  // + b -> y [M, N]
  if (bf) ops_add_bias_f32(ctx, y, M, (int)N, bf);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return s;
}

ldm_status ldm_linear_naive(ldm_ctx *ctx, float *y, const float *x, int64_t M,
                            const ldm_tensor *w, const ldm_tensor *b) {
  int64_t N = 0, K = 0;
  const float *wf = NULL, *bf = NULL;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status s = linear_weights(ctx, w, b, &N, &K, &wf, &bf);
  if (s != LDM_OK) goto done;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double acc = bf ? bf[n] : 0.0;
      for (int64_t k = 0; k < K; k++)
        acc += (double)x[m * K + k] * wf[n * K + k];
      y[m * N + n] = (float)acc;
    }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return s;
}
