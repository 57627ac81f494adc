/* Multi-head scaled dot-product attention as torch's
 * F.scaled_dot_product_attention (scale 1/sqrt(dh), optional causal mask),
 * computed in tiles of (batch, head, query chunk): S = Q_chunk K^T (GEMM),
 * P = exp(S - rowmax), O_chunk = P V / rowsum (GEMM, then a scale of the
 * small output rows). Each pool thread works through tiles with its own
 * score buffer, sized to stay in cache (ATTN_TILE_BYTES) and all together
 * within max_score_bytes, with single-threaded GEMMs (the tiles are the
 * parallelism), so memory stays flat however large Tq x Tk grows. Long
 * non-causal key sequences (where a tile of whole score rows would hold
 * fewer than ATTN_MIN_ROWS query rows) are walked in blocks of keys with an
 * online softmax instead (running max and sum per row, the output rescaled
 * when the max grows), so the GEMMs keep ATTN_BLOCK_ROWS rows: the 4x VAE's
 * mid-block attention at a 256x256 latent (65536 tokens, one head of 512)
 * had tiles of 15 rows, each reading all of K and V (128 MiB each) again.
 * Where it applies and fits the bound, the fused kernel of attention_fused.c
 * runs instead. */
#include "ops/ops.h"
#include "ops/ops_util.h"

#include <math.h>

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

/* Score tile per thread: a few MB, so S written by one GEMM is mostly read
 * back from cache by the softmax and the next GEMM, while the GEMMs stay
 * large enough for OpenBLAS to run near its peak (measured here with CPU
 * time at T = 4096, 8 x 40 heads: 1-32 MB tiles within ~20 %, 4 MB among
 * the best; 256 KB ~1.8x slower). */
#define ATTN_TILE_BYTES ((size_t)4 << 20)
/* Key blocks: taken when whole score rows would leave a tile fewer than
 * ATTN_MIN_ROWS query rows; then tiles of up to ATTN_BLOCK_ROWS rows walk
 * the keys ATTN_KEY_BLOCK at a time (a 1 MiB score block at 256 rows). */
enum { ATTN_MIN_ROWS = 128, ATTN_BLOCK_ROWS = 256, ATTN_KEY_BLOCK = 1024 };

typedef struct attn_job {
  ldm_ctx wctx;           /* per-tile GEMM context: no pool, BLAS threads
                             left as set (1) by the caller */
  float *out;
  const float *q, *k, *v;
  int64_t ldo, ldq, ldk, ldv, Tq, Tk, chunk, n_chunks, n_tiles;
  int64_t kb;             /* keys per block: Tk, or fewer (key blocks) */
  int heads, dh;
  bool causal;
  float scale;
  float *S;               /* [workers, chunk, kb] */
  float *rinv;            /* [workers, chunk]: 1/rowsum, or the running sum */
  float *rmax;            /* [workers, chunk]: key blocks' running max */
  atomic_llong next;      /* next tile to take */
  atomic_int status;      /* first failure, LDM_OK if none */
} attn_job;

static void scale_row(float *o, int64_t n, float a) {
  for (int64_t c = 0; c < n; c++) o[c] *= a;
}

/* Output rows [nq, dh] of one tile over key blocks (non-causal): per block
 * S = scale Q K_blk^T, P = exp(S - m) with m the running row max (earlier
 * output and sum scaled by exp(m_old - m) when it grows), O += P V_blk. */
static ldm_status attn_tile_blocked(attn_job *j, const float *qh, const float *kh, const float *vh, float *oh,
                                    int64_t nq, float *S, float *lsum, float *m) {
  int64_t Tk = j->Tk, dh = j->dh, kb = j->kb;
  for (int64_t k0 = 0; k0 < Tk; k0 += kb) {
    int64_t nk = Tk - k0 < kb ? Tk - k0 : kb;
    LDM_TRY(ldm_gemm(&j->wctx, false, true, nq, nk, dh, j->scale, qh, j->ldq, kh + k0 * j->ldk, j->ldk, 0.0f, S,
                     kb));
    for (int64_t r = 0; r < nq; r++) {
      float *row = S + r * kb, bm = ops_row_max(row, nk);
      if (k0 == 0) {
        m[r] = bm;
        lsum[r] = ops_exp_sum(row, row, nk, bm);
        continue;
      }
      float mn = bm > m[r] ? bm : m[r], a = expf(m[r] - mn);
      lsum[r] = lsum[r] * a + ops_exp_sum(row, row, nk, mn);
      m[r] = mn;
      if (a != 1.0f) scale_row(oh + r * j->ldo, dh, a);
    }
    LDM_TRY(ldm_gemm(&j->wctx, false, false, nq, dh, nk, 1.0f, S, kb, vh + k0 * j->ldv, j->ldv, k0 ? 1.0f : 0.0f,
                     oh, j->ldo));
  }
  for (int64_t r = 0; r < nq; r++) scale_row(oh + r * j->ldo, dh, 1.0f / lsum[r]);
  return LDM_OK;
}

static void attn_tile(attn_job *j, int64_t tile, float *S, float *rinv, float *rmax) {
  int64_t per_b = (int64_t)j->heads * j->n_chunks;
  int b = (int)(tile / per_b);
  int h = (int)(tile % per_b / j->n_chunks);
  int64_t q0 = tile % j->n_chunks * j->chunk;
  int64_t nq = j->Tq - q0 < j->chunk ? j->Tq - q0 : j->chunk;
  int64_t Tk = j->Tk, dh = j->dh;
  const float *qh = j->q + ((int64_t)b * j->Tq + q0) * j->ldq + h * dh;
  const float *kh = j->k + (int64_t)b * Tk * j->ldk + h * dh;
  const float *vh = j->v + (int64_t)b * Tk * j->ldv + h * dh;
  float *oh = j->out + ((int64_t)b * j->Tq + q0) * j->ldo + h * dh;
  /* causal: query q0 + r sees keys [0, q0 + r] only; later keys are never
   * needed by any row of the tile past kmax */
  int64_t kmax = j->causal && q0 + nq < Tk ? q0 + nq : Tk;
  ldm_status st;
  if (j->kb < Tk) {
    st = attn_tile_blocked(j, qh, kh, vh, oh, nq, S, rinv, rmax);
    if (st != LDM_OK) goto fail;
    return;
  }
  // S = scale * Q_chunk [nq, dh] * K_h^T [dh, kmax] -> [nq, kmax] (ld Tk)
  st = ldm_gemm(&j->wctx, false, true, nq, kmax, dh, j->scale, qh, j->ldq, kh,
                j->ldk, 0.0f, S, Tk);
  if (st != LDM_OK) goto fail;
  // P = exp(S - rowmax) (causal: keys <= query), rinv = 1 / rowsum
  for (int64_t r = 0; r < nq; r++) {
    float *row = S + r * Tk;
    int64_t n = kmax;
    if (j->causal && q0 + r + 1 < n) {
      for (int64_t c = q0 + r + 1; c < n; c++) row[c] = 0.0f;
      n = q0 + r + 1;
    }
    rinv[r] = 1.0f / ops_exp_sum(row, row, n, ops_row_max(row, n));
  }
  // O_chunk = P [nq, kmax] * V_h [kmax, dh] / rowsum -> out rows [nq, dh]
  st = ldm_gemm(&j->wctx, false, false, nq, dh, kmax, 1.0f, S, Tk, vh,
                j->ldv, 0.0f, oh, j->ldo);
  if (st != LDM_OK) goto fail;
  for (int64_t r = 0; r < nq; r++) scale_row(oh + r * j->ldo, dh, rinv[r]);
  return;
fail:;
  int expected = LDM_OK;
  atomic_compare_exchange_strong(&j->status, &expected, (int)st);
}

static void attn_worker(void *user, int64_t w) {
  attn_job *j = user;
  float *S = j->S + w * j->chunk * j->kb;
  float *rinv = j->rinv + w * j->chunk, *rmax = j->rmax + w * j->chunk;
  for (;;) {
    if (atomic_load(&j->status) != LDM_OK) return;
    if (j->wctx.cancel && atomic_load(j->wctx.cancel)) {
      int expected = LDM_OK;
      atomic_compare_exchange_strong(&j->status, &expected, LDM_ERR_CANCELLED);
      return;
    }
    int64_t tile = atomic_fetch_add(&j->next, 1);
    if (tile >= j->n_tiles) return;
    attn_tile(j, tile, S, rinv, rmax);
  }
}

ldm_status ldm_attention_ex(ldm_ctx *ctx, float *out, int64_t ldo,
                            const float *q, int64_t ldq, const float *k,
                            int64_t ldk, const float *v, int64_t ldv, int B,
                            int64_t Tq, int64_t Tk, int heads, int dh,
                            bool causal, size_t max_score_bytes) {
  LDM_TRY(attn_check(ctx, ldo, ldq, ldk, ldv, B, Tq, Tk, heads, dh));
  size_t fused = ops_attention_fused_bytes(ctx, B, Tk, heads, dh, causal);
  if (fused && fused <= max_score_bytes)
    return ops_attention_fused(ctx, out, ldo, q, ldq, k, ldk, v, ldv, B, Tq, Tk, heads, dh);
  /* tiles run in parallel on the pool, each with single-threaded GEMMs */
  int workers = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  /* per query row and worker: Tk scores + its 1/rowsum */
  size_t row_bytes = ((size_t)Tk + 1) * sizeof(float);
  size_t per_worker = max_score_bytes / (size_t)workers;
  if (per_worker > ATTN_TILE_BYTES) per_worker = ATTN_TILE_BYTES;
  int64_t chunk = (int64_t)(per_worker / row_bytes), kb = Tk;
  if (!causal && chunk < ATTN_MIN_ROWS && Tk > ATTN_KEY_BLOCK) {
    /* key blocks: score block, running sum and max per row */
    kb = ATTN_KEY_BLOCK;
    chunk = (int64_t)(per_worker / (((size_t)kb + 2) * sizeof(float)));
    if (chunk > ATTN_BLOCK_ROWS) chunk = ATTN_BLOCK_ROWS;
    if (chunk < ATTN_MIN_ROWS / 4) { /* a tight bound: smaller blocks, still a few rows */
      chunk = ATTN_MIN_ROWS / 4;
      kb = (int64_t)(per_worker / ((size_t)chunk * sizeof(float))) - 2;
      if (kb < 16) kb = 16;
    }
    row_bytes = ((size_t)kb + 2) * sizeof(float);
    if ((size_t)chunk * row_bytes > per_worker) chunk = (int64_t)(per_worker / row_bytes);
  }
  if (chunk < 1) { /* a single row per worker still exceeds the bound */
    chunk = 1;
    size_t fit = max_score_bytes / row_bytes;
    if ((size_t)workers > fit) workers = fit > 1 ? (int)fit : 1;
  }
  if (chunk > Tq) chunk = Tq;
  /* enough tiles to keep every worker busy (cross-attention with few heads
   * would otherwise give one tile per head) */
  int64_t bh = (int64_t)B * heads, want = 4 * (int64_t)workers;
  if (workers > 1 && bh < want) {
    int64_t splits = (want + bh - 1) / bh;
    int64_t c2 = (Tq + splits - 1) / splits;
    if (c2 < chunk) chunk = c2;
  }
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  attn_job *j = ldm_arena_alloc(ctx->scratch, sizeof *j);
  float *S = ldm_arena_floats(ctx->scratch,
                              (size_t)workers * (size_t)chunk * (size_t)kb);
  float *rinv = ldm_arena_floats(ctx->scratch, (size_t)workers * (size_t)chunk);
  float *rmax = kb < Tk ? ldm_arena_floats(ctx->scratch, (size_t)workers * (size_t)chunk) : rinv;
  if (!j || !S || !rinv || !rmax) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM,
                  "attention: no scratch for %d x %lld x %lld scores", workers,
                  (long long)chunk, (long long)Tk);
    goto done;
  }
  j->n_chunks = (Tq + chunk - 1) / chunk;
  j->n_tiles = (int64_t)B * heads * j->n_chunks;
  if (workers > j->n_tiles) workers = (int)j->n_tiles;
  j->wctx = *ctx;
  j->wctx.pool = NULL;
  j->wctx.threads = 1;
  j->wctx.precision = LDM_PRECISION_F32; /* bf16 paths pack into the shared arena */
  j->out = out, j->q = q, j->k = k, j->v = v;
  j->ldo = ldo, j->ldq = ldq, j->ldk = ldk, j->ldv = ldv;
  j->Tq = Tq, j->Tk = Tk, j->chunk = chunk;
  j->heads = heads, j->dh = dh, j->causal = causal;
  j->scale = 1.0f / sqrtf((float)dh);
  j->S = S, j->rinv = rinv, j->rmax = rmax, j->kb = kb;
  atomic_init(&j->next, 0);
  atomic_init(&j->status, LDM_OK);
  /* tiles in parallel, each GEMM on the worker's own thread */
  ldm_pool_for(workers > 1 ? ctx->pool : NULL, workers, attn_worker, j);
  st = (ldm_status)atomic_load(&j->status);
  if (st == LDM_ERR_CANCELLED)
    ldm_fail(ctx->err, st, "attention: cancelled");
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
