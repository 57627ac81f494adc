/* Weight access helpers for the ops: dtype checks and f32 views. */
#include "ops/ops_util.h"
#include "core/wcache.h"

#include <stdint.h>
#include <string.h>

const ldm_tensor *ops_aligned(ldm_ctx *ctx, const ldm_tensor *t,
                              ldm_tensor *copy) {
  size_t es = ldm_dtype_size(t->dtype);
  if (es <= 1 || ((uintptr_t)t->data & (es - 1)) == 0) return t;
  size_t bytes = (size_t)ldm_tensor_numel(t) * es;
  void *p = ldm_arena_alloc(ctx->scratch, bytes);
  if (!p) {
    ldm_fail(ctx->err, LDM_ERR_NOMEM, "tensor '%s': no scratch for %zu bytes",
             t->name ? t->name : "?", bytes);
    return NULL;
  }
  memcpy(p, t->data, bytes);
  *copy = *t;
  copy->data = p;
  return copy;
}

/* f16/bf16 -> f32 of a whole weight, in parallel (it runs for every weight
 * of every evaluation unless the weight cache holds it). */
enum { CONVERT_GRAIN = 1 << 16 };

typedef struct convert_job {
  const ldm_tensor *t;
  float *dst;
  int64_t n;
} convert_job;

static void convert_task(void *user, int64_t i) {
  const convert_job *j = user;
  int64_t off = i * CONVERT_GRAIN, len = j->n - off < CONVERT_GRAIN ? j->n - off : CONVERT_GRAIN;
  ldm_tensor_read_f32(j->t, off, len, j->dst + off, NULL); /* range checked by the caller */
}

static ldm_status read_f32(ldm_ctx *ctx, const ldm_tensor *t, int64_t n, float *dst) {
  if (n < 2 * CONVERT_GRAIN || !ctx->pool || n > ldm_tensor_numel(t) ||
      (t->dtype != LDM_DTYPE_F16 && t->dtype != LDM_DTYPE_BF16))
    return ldm_tensor_read_f32(t, 0, n, dst, ctx->err);
  convert_job j = {t, dst, n};
  ldm_pool_for(ctx->pool, ops_tasks(n, CONVERT_GRAIN), convert_task, &j);
  return LDM_OK;
}

/* ops_weight_f32 without the cache: into scratch unless usable as stored. */
static const float *ops_weight_f32_scratch(ldm_ctx *ctx, const ldm_tensor *t, int64_t n) {
  ldm_tensor tmp;
  const ldm_tensor *a = ops_aligned(ctx, t, &tmp);
  if (!a) return NULL;
  if (a->dtype == LDM_DTYPE_F32) return (const float *)a->data;
  float *dst = ldm_arena_floats(ctx->scratch, (size_t)n);
  if (!dst) {
    ldm_fail(ctx->err, LDM_ERR_NOMEM, "tensor '%s': no scratch for %lld floats",
             t->name ? t->name : "?", (long long)n);
    return NULL;
  }
  if (read_f32(ctx, a, n, dst) != LDM_OK) return NULL;
  return dst;
}

const float *ops_prepared(ldm_ctx *ctx, const ldm_tensor *w, ldm_wcache_kind kind, size_t n, ops_prep_fn prep,
                          const void *user, bool cache_only) {
  const float *P = ldm_wcache_get(ctx->wcache, w->data, kind, n);
  if (P) return P;
  float *buf = ldm_wcache_reserve(ctx->wcache, n);
  if (!buf && cache_only) return NULL;
  float *dst = buf ? buf : ldm_arena_floats(ctx->scratch, n);
  if (!dst) {
    ldm_fail(ctx->err, LDM_ERR_NOMEM, "weight '%s': no scratch to prepare it (%zu floats)", w->name ? w->name : "?", n);
    return NULL;
  }
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch); /* dst (in scratch) lies before it */
  ldm_tensor w_copy;
  const ldm_tensor *wa = ops_aligned(ctx, w, &w_copy);
  bool ok = wa != NULL && prep(ctx, dst, wa, user);
  ldm_arena_reset(ctx->scratch, mark); /* the aligned copy */
  if (!buf) return ok ? dst : NULL;
  if (!ok) {
    ldm_wcache_drop(ctx->wcache, buf, n);
    return NULL;
  }
  P = ldm_wcache_add(ctx->wcache, w->data, kind, buf, n);
  if (P || cache_only) return P;
  ldm_ctx plain = *ctx; /* the cache's table is full: prepare in scratch */
  plain.wcache = NULL;
  return ops_prepared(&plain, w, kind, n, prep, user, false);
}

static bool prep_f32(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *n) {
  return read_f32(ctx, wa, *(const int64_t *)n, dst) == LDM_OK;
}

const float *ops_weight_f32(ldm_ctx *ctx, const ldm_tensor *t, int64_t n) {
  if (!ctx->wcache || t->dtype == LDM_DTYPE_F32) return ops_weight_f32_scratch(ctx, t, n);
  return ops_prepared(ctx, t, LDM_WCACHE_F32, (size_t)n, prep_f32, &n, false);
}

ldm_status ops_check_float(ldm_ctx *ctx, const ldm_tensor *t, int64_t n,
                           const char *op, const char *what) {
  if (!t || !t->data)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: %s tensor missing", op,
                    what);
  if (t->dtype != LDM_DTYPE_F32 && t->dtype != LDM_DTYPE_F16 &&
      t->dtype != LDM_DTYPE_BF16)
    return ldm_fail(ctx->err, LDM_ERR_SHAPE,
                    "%s: %s tensor '%s' has dtype %s, expected F32, F16 or BF16",
                    op, what, t->name ? t->name : "?", ldm_dtype_name(t->dtype));
  if (ldm_tensor_numel(t) != n) {
    char buf[96];
    return ldm_fail(ctx->err, LDM_ERR_SHAPE,
                    "%s: %s tensor '%s' has shape %s (%lld elements), expected "
                    "%lld elements",
                    op, what, t->name ? t->name : "?",
                    ldm_shape_str(t, buf, sizeof buf),
                    (long long)ldm_tensor_numel(t), (long long)n);
  }
  return LDM_OK;
}
