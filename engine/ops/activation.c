/* Element-wise activations and row softmax, as torch.nn.functional: silu,
 * gelu (exact erf form and approximate='tanh'), quick_gelu (CLIP),
 * diffusers GEGLU (hidden * gelu(gate)) and softmax over the last dim. */
#include "ops/ops.h"
#include "ops/ops_util.h"

#include <math.h>

enum { ACT_GRAIN = 16384 };

typedef enum act_kind { ACT_SILU, ACT_GELU, ACT_GELU_TANH, ACT_QUICK_GELU } act_kind;

typedef struct act_job {
  float *y;
  const float *x;
  int64_t n;
  act_kind kind;
} act_job;

static inline float gelu_exact(float v) {
  return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

static inline float gelu_tanh(float v) {
  const float k = 0.79788456080286536f; /* sqrt(2/pi) */
  return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}

static void act_task(void *user, int64_t t) {
  act_job *j = user;
  int64_t i0 = t * ACT_GRAIN;
  int64_t i1 = i0 + ACT_GRAIN < j->n ? i0 + ACT_GRAIN : j->n;
  float *y = j->y;
  const float *x = j->x;
  switch (j->kind) {
    case ACT_SILU:
      for (int64_t i = i0; i < i1; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
      break;
    case ACT_GELU:
      for (int64_t i = i0; i < i1; i++) y[i] = gelu_exact(x[i]);
      break;
    case ACT_GELU_TANH:
      for (int64_t i = i0; i < i1; i++) y[i] = gelu_tanh(x[i]);
      break;
    case ACT_QUICK_GELU:
      for (int64_t i = i0; i < i1; i++)
        y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
      break;
  }
}

static void act_run(ldm_ctx *ctx, float *y, const float *x, int64_t n,
                    act_kind kind) {
  act_job j = {y, x, n, kind};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(n, ACT_GRAIN), act_task, &j);
}

void ldm_silu(ldm_ctx *ctx, float *y, const float *x, int64_t n) {
  act_run(ctx, y, x, n, ACT_SILU);
}

void ldm_gelu(ldm_ctx *ctx, float *y, const float *x, int64_t n,
              bool tanh_approx) {
  act_run(ctx, y, x, n, tanh_approx ? ACT_GELU_TANH : ACT_GELU);
}

void ldm_quick_gelu(ldm_ctx *ctx, float *y, const float *x, int64_t n) {
  act_run(ctx, y, x, n, ACT_QUICK_GELU);
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
    const float *h = j->x + r * 2 * C, *g = h + C;
    float *yr = j->y + r * C;
    for (int64_t i = 0; i < C; i++) yr[i] = h[i] * gelu_exact(g[i]);
  }
}

void ldm_geglu(ldm_ctx *ctx, float *y, const float *x, int64_t rows, int C) {
  int64_t per = ACT_GRAIN / (C > 0 ? C : 1);
  if (per < 1) per = 1;
  rows_job j = {y, x, rows, C, per};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(rows, per), geglu_task, &j);
}

/* One softmax row; y may alias x. Also used by attention. */
void ops_softmax_row(float *y, const float *x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  if (m == -INFINITY) { /* fully masked row: torch gives NaN; keep zeros */
    for (int64_t i = 0; i < n; i++) y[i] = 0.0f;
    return;
  }
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    float e = expf(x[i] - m);
    y[i] = e;
    s += e;
  }
  float inv = (float)(1.0 / s);
  for (int64_t i = 0; i < n; i++) y[i] *= inv;
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
