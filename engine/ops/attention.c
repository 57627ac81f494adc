/* Multi-head scaled dot-product attention as torch's
 * F.scaled_dot_product_attention (scale 1/sqrt(dh), optional causal mask),
 * computed per head in query chunks: S = Q_chunk K^T (GEMM), row softmax,
 * O_chunk = S V (GEMM). The score buffer is the only scratch and is bounded
 * by max_score_bytes however large Tq x Tk grows. */
#include "ops/ops.h"
#include "ops/ops_util.h"

#include <math.h>

typedef struct attn_softmax_job {
  float *S;      /* [nq, Tk] */
  int64_t Tk, q0, per, nq;
  bool causal;
} attn_softmax_job;

static void attn_softmax_task(void *user, int64_t t) {
  attn_softmax_job *j = user;
  int64_t r0 = t * j->per, r1 = r0 + j->per < j->nq ? r0 + j->per : j->nq;
  for (int64_t r = r0; r < r1; r++) {
    float *row = j->S + r * j->Tk;
    int64_t n = j->Tk;
    if (j->causal) { /* keys j <= query i (top-left aligned, as torch) */
      int64_t keep = j->q0 + r + 1;
      if (keep < n) {
        for (int64_t c = keep; c < n; c++) row[c] = 0.0f;
        n = keep;
      }
    }
    ops_softmax_row(row, row, n);
  }
}

static ldm_status attn_check(ldm_ctx *ctx, int64_t ldo, int64_t ldq,
                             int64_t ldk, int64_t ldv, int B, int64_t Tq,
                             int64_t Tk, int heads, int dh) {
  int64_t D = (int64_t)heads * dh;
  if (B < 1 || Tq < 1 || Tk < 1 || heads < 1 || dh < 1 || ldq < D ||
      ldk < D || ldv < D || ldo < D)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "attention: invalid sizes B=%d Tq=%lld Tk=%lld heads=%d "
                    "dh=%d ldq=%lld ldk=%lld ldv=%lld ldo=%lld",
                    B, (long long)Tq, (long long)Tk, heads, dh, (long long)ldq,
                    (long long)ldk, (long long)ldv, (long long)ldo);
  return LDM_OK;
}

ldm_status ldm_attention_ex(ldm_ctx *ctx, float *out, int64_t ldo,
                            const float *q, int64_t ldq, const float *k,
                            int64_t ldk, const float *v, int64_t ldv, int B,
                            int64_t Tq, int64_t Tk, int heads, int dh,
                            bool causal, size_t max_score_bytes) {
  LDM_TRY(attn_check(ctx, ldo, ldq, ldk, ldv, B, Tq, Tk, heads, dh));
  int64_t chunk = (int64_t)(max_score_bytes / ((size_t)Tk * sizeof(float)));
  if (chunk < 1) chunk = 1;
  if (chunk > Tq) chunk = Tq;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  float *S = ldm_arena_floats(ctx->scratch, (size_t)chunk * (size_t)Tk);
  if (!S) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM,
                  "attention: no scratch for %lld x %lld scores",
                  (long long)chunk, (long long)Tk);
    goto done;
  }
  float scale = 1.0f / sqrtf((float)dh);
  int64_t per = 16384 / Tk;
  if (per < 1) per = 1;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < heads; h++) {
      const float *kh = k + (int64_t)b * Tk * ldk + (int64_t)h * dh;
      const float *vh = v + (int64_t)b * Tk * ldv + (int64_t)h * dh;
      for (int64_t q0 = 0; q0 < Tq; q0 += chunk) {
        if (ctx->cancel && atomic_load(ctx->cancel)) {
          st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "attention: cancelled");
          goto done;
        }
        int64_t nq = Tq - q0 < chunk ? Tq - q0 : chunk;
        const float *qh = q + ((int64_t)b * Tq + q0) * ldq + (int64_t)h * dh;
        float *oh = out + ((int64_t)b * Tq + q0) * ldo + (int64_t)h * dh;
        // S = scale * Q_chunk [nq, dh] * K_h^T [dh, Tk] -> [nq, Tk]
        st = ldm_gemm(ctx, false, true, nq, Tk, dh, scale, qh, ldq, kh, ldk,
                      0.0f, S, Tk);
        if (st != LDM_OK) goto done;
        // softmax over keys (causal: keys <= query) -> [nq, Tk]
        attn_softmax_job sj = {S, Tk, q0, per, nq, causal};
        ldm_pool_for(ctx->pool, ops_tasks(nq, per), attn_softmax_task, &sj);
        // O_chunk = S [nq, Tk] * V_h [Tk, dh] -> out rows [nq, dh]
        st = ldm_gemm(ctx, false, false, nq, dh, Tk, 1.0f, S, Tk, vh, ldv,
                      0.0f, oh, ldo);
        if (st != LDM_OK) goto done;
      }
    }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

ldm_status ldm_attention(ldm_ctx *ctx, float *out, int64_t ldo, const float *q,
                         int64_t ldq, const float *k, int64_t ldk,
                         const float *v, int64_t ldv, int B, int64_t Tq,
                         int64_t Tk, int heads, int dh, bool causal) {
  return ldm_attention_ex(ctx, out, ldo, q, ldq, k, ldk, v, ldv, B, Tq, Tk,
                          heads, dh, causal, LDM_ATTN_SCORE_BYTES);
}

ldm_status ldm_attention_naive(ldm_ctx *ctx, float *out, int64_t ldo,
                               const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int B,
                               int64_t Tq, int64_t Tk, int heads, int dh,
                               bool causal) {
  LDM_TRY(attn_check(ctx, ldo, ldq, ldk, ldv, B, Tq, Tk, heads, dh));
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  double *p = ldm_arena_alloc(ctx->scratch, (size_t)Tk * sizeof(double));
  double *o = ldm_arena_alloc(ctx->scratch, (size_t)dh * sizeof(double));
  if (!p || !o) {
    ldm_arena_reset(ctx->scratch, mark);
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "attention_naive: no scratch");
  }
  double scale = 1.0 / sqrt((double)dh);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < heads; h++)
      for (int64_t i = 0; i < Tq; i++) {
        const float *qi = q + ((int64_t)b * Tq + i) * ldq + (int64_t)h * dh;
        int64_t n = causal && i + 1 < Tk ? i + 1 : Tk;
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < n; j++) {
          const float *kj = k + ((int64_t)b * Tk + j) * ldk + (int64_t)h * dh;
          double d = 0;
          for (int c = 0; c < dh; c++) d += (double)qi[c] * kj[c];
          p[j] = d * scale;
          if (p[j] > m) m = p[j];
        }
        for (int64_t j = 0; j < n; j++) s += (p[j] = exp(p[j] - m));
        for (int c = 0; c < dh; c++) o[c] = 0;
        for (int64_t j = 0; j < n; j++) {
          const float *vj = v + ((int64_t)b * Tk + j) * ldv + (int64_t)h * dh;
          for (int c = 0; c < dh; c++) o[c] += p[j] / s * vj[c];
        }
        float *oi = out + ((int64_t)b * Tq + i) * ldo + (int64_t)h * dh;
        for (int c = 0; c < dh; c++) oi[c] = (float)o[c];
      }
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}
