/* torch.nn.GroupNorm (optionally followed by SiLU, as every diffusers
 * ResnetBlock2D does) and torch.nn.LayerNorm on channels-last rows.
 * Statistics are two-pass (mean, then centred variance) in double, summed
 * per pixel chunk in parallel and reduced in a fixed order, so results do
 * not depend on the thread count. */
#include "ops/ops.h"
#include "ops/ops_util.h"

#include <math.h>

enum { GN_ROWS_PER_TASK = 256 };

typedef struct gn_job {
  const float *x;
  float *y;
  int64_t HW, chunks; /* pixel chunks per image */
  int C, G, cpg;
  double *part;       /* [B, chunks, C] per-channel partial sums */
  const double *mean; /* [B, C] group mean of each channel (second pass) */
  const float *scale, *shift; /* [B, C] (apply pass) */
  bool silu;
  bool squares;       /* first pass sums x^2 instead of x */
} gn_job;

/* Per-channel sums over a chunk of rows (contiguous, vectorizable); the
 * group reduction happens once afterwards on [chunks, C]. */
static void gn_sum_task(void *user, int64_t t) {
  gn_job *j = user;
  int64_t b = t / j->chunks, c = t % j->chunks;
  int64_t r0 = c * GN_ROWS_PER_TASK;
  int64_t r1 = r0 + GN_ROWS_PER_TASK < j->HW ? r0 + GN_ROWS_PER_TASK : j->HW;
  double *restrict acc = j->part + t * j->C;
  const int C = j->C;
  for (int i = 0; i < C; i++) acc[i] = 0;
  if (j->mean) {
    const double *restrict m = j->mean + b * C;
    for (int64_t r = r0; r < r1; r++) {
      const float *restrict row = j->x + (b * j->HW + r) * C;
      for (int i = 0; i < C; i++) {
        double d = row[i] - m[i];
        acc[i] += d * d;
      }
    }
  } else if (j->squares) {
    for (int64_t r = r0; r < r1; r++) {
      const float *restrict row = j->x + (b * j->HW + r) * C;
      for (int i = 0; i < C; i++) acc[i] += (double)row[i] * row[i];
    }
  } else {
    for (int64_t r = r0; r < r1; r++) {
      const float *restrict row = j->x + (b * j->HW + r) * C;
      for (int i = 0; i < C; i++) acc[i] += row[i];
    }
  }
}

/* Sums part [B, chunks, C] into per-(b, g) totals [B, G]. */
static void gn_reduce(const gn_job *j, int B, double *out) {
  for (int b = 0; b < B; b++)
    for (int g = 0; g < j->G; g++) {
      double s = 0;
      for (int64_t c = 0; c < j->chunks; c++) {
        const double *p = j->part + ((int64_t)b * j->chunks + c) * j->C + g * j->cpg;
        for (int i = 0; i < j->cpg; i++) s += p[i];
      }
      out[b * j->G + g] = s;
    }
}

static void gn_apply_task(void *user, int64_t t) {
  gn_job *j = user;
  int64_t b = t / j->chunks, c = t % j->chunks;
  int64_t r0 = c * GN_ROWS_PER_TASK;
  int64_t r1 = r0 + GN_ROWS_PER_TASK < j->HW ? r0 + GN_ROWS_PER_TASK : j->HW;
  const float *sc = j->scale + b * j->C, *sh = j->shift + b * j->C;
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = j->x + (b * j->HW + r) * j->C;
    float *yr = j->y + (b * j->HW + r) * j->C;
    for (int i = 0; i < j->C; i++) yr[i] = xr[i] * sc[i] + sh[i];
    if (j->silu) ops_act_row(OPS_ACT_SILU, yr, yr, j->C);
  }
}

ldm_status ldm_group_norm(ldm_ctx *ctx, float *y, const float *x, int B,
                          int64_t HW, int C, int groups, float eps,
                          const ldm_tensor *gamma, const ldm_tensor *beta,
                          bool silu) {
  if (B < 1 || HW < 1 || C < 1 || groups < 1 || C % groups != 0)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "group_norm: invalid sizes B=%d HW=%lld C=%d groups=%d "
                    "(C must be a multiple of groups)",
                    B, (long long)HW, C, groups);
  if (gamma) LDM_TRY(ops_check_float(ctx, gamma, C, "group_norm", "weight"));
  if (beta) LDM_TRY(ops_check_float(ctx, beta, C, "group_norm", "bias"));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  int G = groups, cpg = C / groups;
  int64_t chunks = (HW + GN_ROWS_PER_TASK - 1) / GN_ROWS_PER_TASK;
  size_t n_part;
  double *part = NULL;
  if (ldm_mul_size((size_t)(B * chunks), (size_t)C * sizeof(double), &n_part))
    part = ldm_arena_alloc(ctx->scratch, n_part);
  double *sums = ldm_arena_alloc(ctx->scratch, (size_t)(B * G) * sizeof(double));
  double *cmean = ldm_arena_alloc(ctx->scratch, (size_t)B * (size_t)C * sizeof(double));
  float *scale = ldm_arena_floats(ctx->scratch, (size_t)B * (size_t)C);
  float *shift = ldm_arena_floats(ctx->scratch, (size_t)B * (size_t)C);
  const float *gf = NULL, *bf = NULL;
  bool ok = part && sums && cmean && scale && shift;
  if (ok) {
    gf = gamma ? ops_weight_f32(ctx, gamma, C) : NULL;
    bf = beta ? ops_weight_f32(ctx, beta, C) : NULL;
  }
  if (!ok || (gamma && !gf) || (beta && !bf)) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "group_norm: no scratch");
    goto done;
  }
  gn_job j = {x, y, HW, chunks, C, G, cpg, part, NULL, scale, shift, silu, false};
  double count = (double)HW * cpg;
  // mean per (b, g), spread to its channels
  ldm_pool_for(ctx->pool, B * chunks, gn_sum_task, &j);
  gn_reduce(&j, B, sums);
  for (int b = 0; b < B; b++)
    for (int ch = 0; ch < C; ch++)
      cmean[(int64_t)b * C + ch] = sums[b * G + ch / cpg] / count;
  // biased variance per (b, g) -> per-channel scale and shift
  j.mean = cmean;
  ldm_pool_for(ctx->pool, B * chunks, gn_sum_task, &j);
  gn_reduce(&j, B, sums);
  for (int b = 0; b < B; b++)
    for (int ch = 0; ch < C; ch++) {
      int g = ch / cpg;
      double rstd = 1.0 / sqrt(sums[b * G + g] / count + (double)eps);
      double m = cmean[(int64_t)b * C + ch];
      double a = rstd * (gf ? gf[ch] : 1.0);
      scale[(int64_t)b * C + ch] = (float)a;
      shift[(int64_t)b * C + ch] = (float)((bf ? bf[ch] : 0.0) - m * a);
    }
  // y = x * scale + shift (then SiLU) -> [B, HW, C]
  ldm_pool_for(ctx->pool, B * chunks, gn_apply_task, &j);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

static ldm_status gn_check(ldm_ctx *ctx, const char *op, int B, int64_t HW,
                           int C, int groups, const ldm_tensor *gamma,
                           const ldm_tensor *beta) {
  if (B < 1 || HW < 1 || C < 1 || groups < 1 || C % groups != 0)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "%s: invalid sizes B=%d HW=%lld C=%d groups=%d "
                    "(C must be a multiple of groups)",
                    op, B, (long long)HW, C, groups);
  if (gamma) LDM_TRY(ops_check_float(ctx, gamma, C, op, "weight"));
  if (beta) LDM_TRY(ops_check_float(ctx, beta, C, op, "bias"));
  return LDM_OK;
}

ldm_status ldm_group_norm_sums(ldm_ctx *ctx, double *sum, double *sumsq,
                               const float *x, int B, int64_t HW, int C,
                               int groups) {
  LDM_TRY(gn_check(ctx, "group_norm_sums", B, HW, C, groups, NULL, NULL));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  int G = groups;
  int64_t chunks = (HW + GN_ROWS_PER_TASK - 1) / GN_ROWS_PER_TASK;
  size_t n_part;
  double *part = NULL, *tot = NULL;
  if (ldm_mul_size((size_t)(B * chunks), (size_t)C * sizeof(double), &n_part))
    part = ldm_arena_alloc(ctx->scratch, n_part);
  if (part) tot = ldm_arena_alloc(ctx->scratch, (size_t)(B * G) * sizeof(double));
  if (!part || !tot) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "group_norm_sums: no scratch");
    goto done;
  }
  gn_job j = {x, NULL, HW, chunks, C, G, C / G, part, NULL, NULL, NULL, false, false};
  // sum of x per (b, g), added to sum
  ldm_pool_for(ctx->pool, B * chunks, gn_sum_task, &j);
  gn_reduce(&j, B, tot);
  for (int i = 0; i < B * G; i++) sum[i] += tot[i];
  // sum of x^2 per (b, g), added to sumsq
  j.squares = true;
  ldm_pool_for(ctx->pool, B * chunks, gn_sum_task, &j);
  gn_reduce(&j, B, tot);
  for (int i = 0; i < B * G; i++) sumsq[i] += tot[i];
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

ldm_status ldm_group_norm_apply(ldm_ctx *ctx, float *y, const float *x, int B,
                                int64_t HW, int C, int groups,
                                const float *mean, const float *rstd,
                                const ldm_tensor *gamma,
                                const ldm_tensor *beta, bool silu) {
  LDM_TRY(gn_check(ctx, "group_norm_apply", B, HW, C, groups, gamma, beta));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  int G = groups, cpg = C / groups;
  int64_t chunks = (HW + GN_ROWS_PER_TASK - 1) / GN_ROWS_PER_TASK;
  float *scale = ldm_arena_floats(ctx->scratch, (size_t)B * (size_t)C);
  float *shift = ldm_arena_floats(ctx->scratch, (size_t)B * (size_t)C);
  const float *gf = NULL, *bf = NULL;
  bool ok = scale && shift;
  if (ok) {
    gf = gamma ? ops_weight_f32(ctx, gamma, C) : NULL;
    bf = beta ? ops_weight_f32(ctx, beta, C) : NULL;
  }
  if (!ok || (gamma && !gf) || (beta && !bf)) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "group_norm_apply: no scratch");
    goto done;
  }
  // (x - mean) * rstd * gamma + beta = x * scale + shift per channel
  for (int b = 0; b < B; b++)
    for (int ch = 0; ch < C; ch++) {
      int g = b * G + ch / cpg;
      float a = rstd[g] * (gf ? gf[ch] : 1.0f);
      scale[(int64_t)b * C + ch] = a;
      shift[(int64_t)b * C + ch] = (bf ? bf[ch] : 0.0f) - mean[g] * a;
    }
  gn_job j = {x, y, HW, chunks, C, G, cpg, NULL, NULL, scale, shift, silu, false};
  ldm_pool_for(ctx->pool, B * chunks, gn_apply_task, &j);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

typedef struct ln_job {
  float *y;
  const float *x;
  int64_t rows;
  int C;
  float eps;
  const float *g, *b;
} ln_job;

enum { LN_ROWS_PER_TASK = 16 };

static void ln_task(void *user, int64_t t) {
  ln_job *j = user;
  int64_t r0 = t * LN_ROWS_PER_TASK;
  int64_t r1 = r0 + LN_ROWS_PER_TASK < j->rows ? r0 + LN_ROWS_PER_TASK : j->rows;
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = j->x + r * j->C;
    float *yr = j->y + r * j->C;
    double s, v, unused;
    ops_row_moments(xr, j->C, 0.0, &s, &unused);
    double m = s / j->C;
    ops_row_moments(xr, j->C, m, &unused, &v);
    float mf = (float)m, rstd = (float)(1.0 / sqrt(v / j->C + (double)j->eps));
    const float *g = j->g, *b = j->b;
    if (g && b) {
      for (int i = 0; i < j->C; i++) yr[i] = (xr[i] - mf) * rstd * g[i] + b[i];
    } else {
      for (int i = 0; i < j->C; i++) {
        float o = (xr[i] - mf) * rstd;
        if (g) o *= g[i];
        if (b) o += b[i];
        yr[i] = o;
      }
    }
  }
}

ldm_status ldm_layer_norm(ldm_ctx *ctx, float *y, const float *x, int64_t rows,
                          int C, float eps, const ldm_tensor *gamma,
                          const ldm_tensor *beta) {
  if (rows < 0 || C < 1)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "layer_norm: invalid sizes rows=%lld C=%d", (long long)rows,
                    C);
  if (gamma) LDM_TRY(ops_check_float(ctx, gamma, C, "layer_norm", "weight"));
  if (beta) LDM_TRY(ops_check_float(ctx, beta, C, "layer_norm", "bias"));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  const float *gf = gamma ? ops_weight_f32(ctx, gamma, C) : NULL;
  const float *bf = beta ? ops_weight_f32(ctx, beta, C) : NULL;
  if ((gamma && !gf) || (beta && !bf)) {
    st = ctx->err ? ctx->err->status : LDM_ERR_NOMEM;
    goto done;
  }
  // (x - mean) / sqrt(var + eps) * gamma + beta -> [rows, C]
  ln_job j = {y, x, rows, C, eps, gf, bf};
  ldm_pool_for(ctx->pool, ops_tasks(rows, LN_ROWS_PER_TASK), ln_task, &j);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}
