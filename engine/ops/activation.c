/* Element-wise activations and row softmax, as torch.nn.functional: silu,
 * gelu (exact erf form and approximate='tanh'), quick_gelu (CLIP),
 * diffusers GEGLU (hidden * gelu(gate)), softmax over the last dim, and the
 * super-resolution nets' leaky_relu, prelu and scaled residual adds.
 * Parallel over chunks; the per-row kernels live in vmath.c. */
#include "ops/ops.h"
#include "ops/ops_util.h"

enum { ACT_GRAIN = 16384 };

typedef struct act_job {
  float *y;
  const float *x;
  int64_t n;
  ops_act kind;
} act_job;

static void act_task(void *user, int64_t t) {
  act_job *j = user;
  int64_t i0 = t * ACT_GRAIN;
  int64_t i1 = i0 + ACT_GRAIN < j->n ? i0 + ACT_GRAIN : j->n;
  ops_act_row(j->kind, j->y + i0, j->x + i0, i1 - i0);
}

static void act_run(ldm_ctx *ctx, float *y, const float *x, int64_t n,
                    ops_act kind) {
  act_job j = {y, x, n, kind};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(n, ACT_GRAIN), act_task, &j);
}

void ldm_silu(ldm_ctx *ctx, float *y, const float *x, int64_t n) {
  act_run(ctx, y, x, n, OPS_ACT_SILU);
}

void ldm_gelu(ldm_ctx *ctx, float *y, const float *x, int64_t n,
              bool tanh_approx) {
  act_run(ctx, y, x, n, tanh_approx ? OPS_ACT_GELU_TANH : OPS_ACT_GELU);
}

void ldm_quick_gelu(ldm_ctx *ctx, float *y, const float *x, int64_t n) {
  act_run(ctx, y, x, n, OPS_ACT_QUICK_GELU);
}

typedef struct rows_job {
  float *y;
  const float *x;
  int64_t rows, n, per;
} rows_job;

static void geglu_task(void *user, int64_t t) {
  rows_job *j = user;
  int64_t r0 = t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  int64_t C = j->n;
  for (int64_t r = r0; r < r1; r++) {
    const float *h = j->x + r * 2 * C;
    ops_geglu_row(j->y + r * C, h, h + C, C);
  }
}

void ldm_geglu(ldm_ctx *ctx, float *y, const float *x, int64_t rows, int C) {
  int64_t per = ACT_GRAIN / (C > 0 ? C : 1);
  if (per < 1) per = 1;
  rows_job j = {y, x, rows, C, per};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(rows, per), geglu_task, &j);
}

static void softmax_task(void *user, int64_t t) {
  rows_job *j = user;
  int64_t r0 = t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  for (int64_t r = r0; r < r1; r++)
    ops_softmax_row(j->y + r * j->n, j->x + r * j->n, j->n);
}

void ldm_softmax(ldm_ctx *ctx, float *y, const float *x, int64_t rows,
                 int64_t n) {
  int64_t per = ACT_GRAIN / (n > 0 ? n : 1);
  if (per < 1) per = 1;
  rows_job j = {y, x, rows, n, per};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(rows, per), softmax_task, &j);
}

/* ---- leaky_relu, prelu, y = s * a + b (ESRGAN / SRVGGNetCompact) ------- */

typedef struct lrelu_job {
  float *y;
  const float *x, *b, *slope;
  float s;
  int64_t n;
  int C;
} lrelu_job;

static void lrelu_task(void *user, int64_t t) {
  const lrelu_job *j = user;
  int64_t i0 = t * ACT_GRAIN, i1 = i0 + ACT_GRAIN < j->n ? i0 + ACT_GRAIN : j->n;
  float *y = j->y;
  const float *x = j->x, s = j->s;
  for (int64_t i = i0; i < i1; i++) y[i] = x[i] >= 0.0f ? x[i] : x[i] * s;
}

void ldm_leaky_relu(ldm_ctx *ctx, float *y, const float *x, int64_t n, float slope) {
  lrelu_job j = {.y = y, .x = x, .s = slope, .n = n};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(n, ACT_GRAIN), lrelu_task, &j);
}

static void prelu_task(void *user, int64_t t) {
  const lrelu_job *j = user;
  int64_t per = ACT_GRAIN / j->C > 0 ? ACT_GRAIN / j->C : 1;
  int64_t r0 = t * per, r1 = r0 + per < j->n ? r0 + per : j->n;
  for (int64_t r = r0; r < r1; r++) {
    float *y = j->y + r * j->C;
    const float *x = j->x + r * j->C;
    for (int c = 0; c < j->C; c++) y[c] = x[c] >= 0.0f ? x[c] : x[c] * j->slope[c];
  }
}

void ldm_prelu(ldm_ctx *ctx, float *y, const float *x, int64_t rows, int C, const float *slope) {
  lrelu_job j = {.y = y, .x = x, .slope = slope, .n = rows, .C = C};
  int64_t per = ACT_GRAIN / C > 0 ? ACT_GRAIN / C : 1;
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(rows, per), prelu_task, &j);
}

static void scale_add_task(void *user, int64_t t) {
  const lrelu_job *j = user;
  int64_t i0 = t * ACT_GRAIN, i1 = i0 + ACT_GRAIN < j->n ? i0 + ACT_GRAIN : j->n;
  float *y = j->y, s = j->s;
  const float *a = j->x, *b = j->b;
  for (int64_t i = i0; i < i1; i++) y[i] = a[i] * s + b[i];
}

void ldm_scale_add(ldm_ctx *ctx, float *y, const float *a, float s, const float *b, int64_t n) {
  lrelu_job j = {.y = y, .x = a, .b = b, .s = s, .n = n};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(n, ACT_GRAIN), scale_add_task, &j);
}
