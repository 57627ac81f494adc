/* bf16 matrix products on AMX tiles (Intel AMX-BF16: Sapphire Rapids and
 * later): C[M, N] = A[M, K] W^T with W [N, K] held as packed bf16 panels and
 * the rows of A rounded to bf16 (round to nearest even, as torch's
 * .bfloat16()) while they are packed; TDPBF16PS sums the products in f32.
 *
 * Panels (ops_amx_panels): W's rows in groups of 16 (one tile's columns), K
 * padded with zeros to a multiple of 32 (one tile's depth) and taken in
 * pairs: word [panel][p][i] = (W(16 panel + i, 2p), W(16 panel + i, 2p + 1)),
 * the layout TDPBF16PS wants for its B operand (one 1 KiB tile per 32 K).
 * N is padded to a multiple of 32 with zero rows. Weights are packed once
 * and kept in the weight cache (kind LDM_WCACHE_BF16_PANELS) where the job
 * has one.
 *
 * Blocking: each pool thread takes a range of rows of C (or of columns when
 * there are few rows) and walks it in blocks of MC rows; per block and per
 * KC of K, A is packed into tile order [rows / 16][KC / 32][16][32] bf16
 * (256 KiB at most, in L2) and every pair of panels (32 columns x KC: 32
 * KiB, in L1) meets every 32 rows of it in the micro-kernel: 2 x 2 tiles of
 * 16 x 16 f32 accumulators, 2 A and 2 B tiles, four TDPBF16PS per 32 K.
 * Partial sums between KC blocks stay in a per-thread f32 block [MC][N]; the
 * last block writes C = alpha * sum + beta * C (+ bias) for the valid rows
 * and columns only. Rows of A come from a matrix or, for convolutions
 * (ops_amx_conv), straight from the channels-last image (an implicit
 * im2col: no column buffer). */
#include "ops/ops.h"
#include "ops/ops_util.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/wcache.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11))
#define AMX_X86 1
#include <immintrin.h>
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16")))
#endif

enum {
  AMX_KC = 512,             /* K per packed A block */
  AMX_MC = 256,             /* rows per A block at most */
  AMX_ACC_BYTES = 512 << 10 /* per-thread partial sums [MC][Np] at most */
};

bool ops_amx_built(void) {
#ifdef AMX_X86
  return true;
#else
  return false;
#endif
}

bool ops_amx_active(const ldm_ctx *ctx) {
  return ctx->precision == LDM_PRECISION_BF16 && ops_amx_built() && ldm_cpu_has_amx_bf16();
}

int64_t ops_amx_np(int64_t N) { return (N + 31) / 32 * 32; }
int64_t ops_amx_kp(int64_t K) { return (K + 31) / 32 * 32; }

size_t ops_amx_panels_words(int64_t N, int64_t K) { return (size_t)ops_amx_np(N) * (size_t)ops_amx_kp(K) / 2; }

/* ---- packing W: rows of K floats -> pair words ------------------------- */

/* One row n (K floats) into its panel: word [p][n % 16] of panel n / 16. */
static void panel_row(uint32_t *panels, int64_t Kp, int64_t n, const float *row, int64_t K) {
  uint32_t *d = panels + (n / 16) * (Kp / 2) * 16 + n % 16;
  int64_t p = 0;
  for (; 2 * p + 1 < K; p++) d[p * 16] = ldm_bf16_pair(row[2 * p], row[2 * p + 1]);
  if (2 * p < K) d[p * 16] = ldm_bf16_pair(row[2 * p], 0.0f), p++;
  for (; p < Kp / 2; p++) d[p * 16] = 0;
}

typedef struct wpack_job {
  uint32_t *panels;
  const ldm_tensor *w; /* weight tensor (aligned), or NULL for B */
  const float *B;      /* f32 matrix: rows [N][K] (trans_b) or [K][N] */
  int64_t ldb;
  bool trans_b;
  int64_t N, K, Kp, Np;
  int taps;   /* conv weight [N, K / taps, taps] read as (tap, ci) */
  float *tmp; /* per task: K + Kin floats */
  int tasks;
} wpack_job;

static void wpack_task(void *user, int64_t t) {
  const wpack_job *j = user;
  float *row = j->tmp + t * 2 * j->K, *raw = row + j->K;
  int64_t r0 = j->Np * t / j->tasks, r1 = j->Np * (t + 1) / j->tasks;
  for (int64_t n = r0; n < r1; n++) {
    if (n >= j->N) {
      memset(row, 0, sizeof(float) * (size_t)j->K);
    } else if (j->w && j->taps > 1) {
      int64_t cin = j->K / j->taps;
      ldm_tensor_read_f32(j->w, n * j->K, j->K, raw, NULL);
      for (int64_t ci = 0; ci < cin; ci++)
        for (int tp = 0; tp < j->taps; tp++) row[tp * cin + ci] = raw[ci * j->taps + tp];
    } else if (j->w) {
      ldm_tensor_read_f32(j->w, n * j->K, j->K, row, NULL);
    } else if (j->trans_b) {
      memcpy(row, j->B + n * j->ldb, sizeof(float) * (size_t)j->K);
    } else {
      for (int64_t k = 0; k < j->K; k++) row[k] = j->B[k * j->ldb + n];
    }
    panel_row(j->panels, j->Kp, n, row, j->K);
  }
}

static ldm_status wpack(ldm_ctx *ctx, wpack_job *j) {
  j->Kp = ops_amx_kp(j->K), j->Np = ops_amx_np(j->N);
  int threads = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  j->tasks = threads * 4 < j->Np ? threads * 4 : (int)j->Np;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  j->tmp = ldm_arena_floats(ctx->scratch, (size_t)j->tasks * 2 * (size_t)j->K);
  if (!j->tmp)
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "gemm: no scratch to pack bf16 panels (K = %lld)", (long long)j->K);
  ldm_pool_for(j->tasks > 1 ? ctx->pool : NULL, j->tasks, wpack_task, j);
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

ldm_status ops_amx_pack_matrix(ldm_ctx *ctx, uint32_t *panels, const float *B, int64_t ldb, bool trans_b, int64_t N,
                               int64_t K) {
  wpack_job j = {.panels = panels, .B = B, .ldb = ldb, .trans_b = trans_b, .N = N, .K = K, .taps = 1};
  return wpack(ctx, &j);
}

static bool prep_amx(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *user) {
  wpack_job j = *(const wpack_job *)user;
  j.panels = (uint32_t *)dst, j.w = wa;
  return wpack(ctx, &j) == LDM_OK;
}

ldm_status ops_amx_weight(ldm_ctx *ctx, const ldm_tensor *w, int64_t N, int64_t K, int taps, ops_amx_panels *out) {
  out->N = N, out->K = K, out->Kp = ops_amx_kp(K);
  /* cached: keyed by the weight's data; the size tells a view from the whole */
  wpack_job j = {.N = N, .K = K, .taps = taps};
  const float *P = ops_prepared(ctx, w, LDM_WCACHE_BF16_PANELS, ops_amx_panels_words(N, K), prep_amx, &j, false);
  out->w = (const uint32_t *)P;
  return P ? LDM_OK : (ctx->err ? ctx->err->status : LDM_ERR_NOMEM);
}

#ifdef AMX_X86
/* ---- rows of A ----------------------------------------------------------- */

typedef struct amx_src {
  const float *A; /* matrix rows (conv: the image [B, H*W, Cin]) */
  int64_t lda, K;
  /* convolution (conv != 0): output pixel rows, K = (ky, kx, ci), Cin % 32 == 0 */
  int conv, H, W, Cin, kw, Ho, Wo, stride, pad;
} amx_src;

/* 32 floats (n valid, the rest zero) -> 32 bf16 at d */
AMX_TARGET static inline void put32(uint16_t *d, const float *s, int n) {
  if (n <= 0 || !s) {
    _mm512_store_si512((void *)d, _mm512_setzero_si512());
    return;
  }
  if (n >= 32) {
    __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 16), _mm512_loadu_ps(s));
    _mm512_store_si512((void *)d, w);
    return;
  }
  __mmask16 lo = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1);
  __mmask16 hi = (__mmask16)(n > 16 ? (1u << (n - 16)) - 1 : 0);
  __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + 16), _mm512_maskz_loadu_ps(lo, s));
  _mm512_store_si512((void *)d, w);
}

/* Rows [m0, m0 + rows) of A, K [k0, k0 + kc) (kc a multiple of 32) into tile
 * order: tile (g, s) = rows 16 g .. 16 g + 15, K 32 s .. 32 s + 31, at
 * (g * kc / 32 + s) * 512; rows past `rows` up to mcp (a multiple of 32) zero. */
AMX_TARGET static void pack_a(uint16_t *dst, const amx_src *a, int64_t m0, int rows, int mcp, int64_t k0, int kc) {
  int ks = kc / 32;
  for (int r = 0; r < mcp; r++) {
    uint16_t *d = dst + ((int64_t)(r / 16) * ks) * 512 + (r % 16) * 32;
    if (r >= rows) {
      for (int s = 0; s < ks; s++) put32(d + s * 512, NULL, 0);
      continue;
    }
    int64_t m = m0 + r;
    if (!a->conv) {
      const float *row = a->A + m * a->lda;
      for (int s = 0; s < ks; s++) {
        int64_t k = k0 + 32 * s;
        put32(d + s * 512, row + k, (int)(a->K - k < 32 ? a->K - k : 32));
      }
      continue;
    }
    int ox = (int)(m % a->Wo);
    int64_t rr = m / a->Wo;
    int b = (int)(rr / a->Ho), oy = (int)(rr % a->Ho);
    const float *img = a->A + (int64_t)b * a->H * a->W * a->Cin;
    for (int s = 0; s < ks; s++) {
      int64_t k = k0 + 32 * s;
      if (k >= a->K) {
        put32(d + s * 512, NULL, 0);
        continue;
      }
      int tap = (int)(k / a->Cin), ci = (int)(k % a->Cin);
      int iy = oy * a->stride - a->pad + tap / a->kw, ix = ox * a->stride - a->pad + tap % a->kw;
      const float *src =
          iy < 0 || iy >= a->H || ix < 0 || ix >= a->W ? NULL : img + ((int64_t)iy * a->W + ix) * a->Cin + ci;
      put32(d + s * 512, src, 32);
    }
  }
}

/* ---- the micro-kernel ---------------------------------------------------- */

typedef struct amx_cfg {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_cfg;

/* Palette 1, tiles 0-7 of 16 rows x 64 bytes. A constant in memory: GCC 12
 * dropped the stores into a local one (LDTILECFG's builtin does not tell
 * it the memory is read). */
static const _Alignas(64) amx_cfg tile_cfg = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

/* Tiles 0-3: C (rows 0-15 x cols 0-15, 0-15 x 16-31, 16-31 x 0-15, 16-31 x
 * 16-31); 4, 5: A rows 0-15, 16-31; 6, 7: B columns 0-15, 16-31. acc:
 * partial sums to start from (row stride acc_ld floats) or NULL; out: where
 * the 32 x 32 sums go (stride out_ld floats). */
AMX_TARGET static void kernel32(const uint16_t *a0, const uint16_t *a1, const uint32_t *b0, const uint32_t *b1, int ks,
                                const float *acc, int64_t acc_ld, float *out, int64_t out_ld) {
  if (acc) {
    _tile_loadd(0, acc, acc_ld * 4);
    _tile_loadd(1, acc + 16, acc_ld * 4);
    _tile_loadd(2, acc + 16 * acc_ld, acc_ld * 4);
    _tile_loadd(3, acc + 16 * acc_ld + 16, acc_ld * 4);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  /* Tiles are not renamed: a load into a tile waits for the products
   * reading it, so each one is loaded for the next step as soon as its last
   * product of this step is issued, with products between it and its use. */
  _tile_loadd(4, a0, 64);
  _tile_loadd(6, b0, 64);
  _tile_loadd(7, b1, 64);
  _tile_loadd(5, a1, 64);
  for (int s = 1; s < ks; s++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(4, a0 + s * 512, 64);
    _tile_dpbf16ps(2, 5, 6);
    _tile_loadd(6, b0 + s * 256, 64);
    _tile_dpbf16ps(3, 5, 7);
    _tile_loadd(7, b1 + s * 256, 64);
    _tile_loadd(5, a1 + s * 512, 64);
  }
  _tile_dpbf16ps(0, 4, 6);
  _tile_dpbf16ps(1, 4, 7);
  _tile_dpbf16ps(2, 5, 6);
  _tile_dpbf16ps(3, 5, 7);
  _tile_stored(0, out, out_ld * 4);
  _tile_stored(1, out + 16, out_ld * 4);
  _tile_stored(2, out + 16 * out_ld, out_ld * 4);
  _tile_stored(3, out + 16 * out_ld + 16, out_ld * 4);
}

/* C block (rows x cols valid) = alpha * t + beta * C (+ bias[cols]); beta 0
 * never reads C. */
static void write_c(float *C, int64_t ldc, const float *t, int64_t tld, int rows, int cols, float alpha, float beta,
                    const float *bias) {
  for (int i = 0; i < rows; i++) {
    float *c = C + i * ldc;
    const float *s = t + i * tld;
    if (beta == 0.0f && alpha == 1.0f && !bias)
      memcpy(c, s, sizeof(float) * (size_t)cols);
    else if (beta == 0.0f)
      for (int j = 0; j < cols; j++) c[j] = alpha * s[j] + (bias ? bias[j] : 0.0f);
    else
      for (int j = 0; j < cols; j++) c[j] = alpha * s[j] + beta * c[j] + (bias ? bias[j] : 0.0f);
  }
}

/* c[32][32] (row stride ldc) += bias[32] */
AMX_TARGET static void add_bias32(float *c, int64_t ldc, const float *bias) {
  __m512 b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
  for (int i = 0; i < 32; i++, c += ldc) {
    _mm512_storeu_ps(c, _mm512_add_ps(_mm512_loadu_ps(c), b0));
    _mm512_storeu_ps(c + 16, _mm512_add_ps(_mm512_loadu_ps(c + 16), b1));
  }
}

typedef struct amx_job {
  amx_src a;
  const ops_amx_panels *P;
  int64_t M, N;
  float alpha, beta;
  float *C;
  int64_t ldc;
  const float *bias;
  int pieces, mc;
  bool split_n;
  char *ws; /* per piece: A block, partial sums, one 32 x 32 tile */
  size_t ws_bytes;
} amx_job;

static size_t amx_ws_bytes(int mc, int64_t Np) {
  return (size_t)mc * AMX_KC * 2 + (size_t)mc * (size_t)Np * 4 + 32 * 32 * 4 + 3 * 64;
}

static void *align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

AMX_TARGET static void amx_piece(const amx_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1, void *ws) {
  _tile_loadconfig(&tile_cfg);
  const int64_t Kp = j->P->Kp, Np = ops_amx_np(j->N);
  uint16_t *abuf = align64(ws);
  float *acc = align64(abuf + (size_t)j->mc * AMX_KC);
  float *tile = align64(acc + (size_t)j->mc * (size_t)Np);
  const int64_t pstride = Kp / 2 * 16; /* words per panel */
  for (int64_t ic = m0; ic < m1; ic += j->mc) {
    int rows = (int)(m1 - ic < j->mc ? m1 - ic : j->mc), mcp = (rows + 31) / 32 * 32;
    for (int64_t pc = 0; pc < Kp; pc += AMX_KC) {
      int kc = (int)(Kp - pc < AMX_KC ? Kp - pc : AMX_KC), ks = kc / 32;
      bool first = pc == 0, last = pc + kc >= Kp;
      pack_a(abuf, &j->a, ic, rows, mcp, pc, kc);
      for (int64_t jr = n0; jr < n1; jr += 32) {
        const uint32_t *b0 = j->P->w + (jr / 16) * pstride + pc / 2 * 16, *b1 = b0 + pstride;
        int cols = (int)(n1 - jr < 32 ? n1 - jr : 32);
        for (int ir = 0; ir < mcp; ir += 32) {
          const uint16_t *a0 = abuf + (int64_t)(ir / 16) * ks * 512, *a1 = a0 + (int64_t)ks * 512;
          float *part = acc + (int64_t)ir * Np + jr;
          if (!last) {
            kernel32(a0, a1, b0, b1, ks, first ? NULL : part, Np, part, Np);
            continue;
          }
          int rr = rows - ir < 32 ? rows - ir : 32;
          float *c = j->C + (ic + ir) * j->ldc + jr;
          if (rr == 32 && cols == 32 && j->alpha == 1.0f && j->beta == 0.0f) { /* straight into C */
            kernel32(a0, a1, b0, b1, ks, first ? NULL : part, Np, c, j->ldc);
            if (j->bias) add_bias32(c, j->ldc, j->bias + jr);
            continue;
          }
          kernel32(a0, a1, b0, b1, ks, first ? NULL : part, Np, tile, 32);
          write_c(c, j->ldc, tile, 32, rr, cols, j->alpha, j->beta, j->bias ? j->bias + jr : NULL);
        }
      }
    }
  }
  _tile_release();
}

/* ---- the micro-kernel for other ops (attention_fused.c) ---------------- */

AMX_TARGET void ops_amx_tiles_begin(void) { _tile_loadconfig(&tile_cfg); }

AMX_TARGET void ops_amx_tiles_end(void) { _tile_release(); }

AMX_TARGET void ops_amx_tile32(const uint16_t *a0, const uint16_t *a1, const uint32_t *b0, const uint32_t *b1, int ks,
                               const float *acc, int64_t acc_ld, float *out, int64_t out_ld) {
  kernel32(a0, a1, b0, b1, ks, acc, acc_ld, out, out_ld);
}

AMX_TARGET void ops_amx_round32(uint16_t *dst, const float *src, int n, float scale) {
  if (n <= 0) {
    _mm512_store_si512((void *)dst, _mm512_setzero_si512());
    return;
  }
  __mmask16 lo = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1);
  __mmask16 hi = (__mmask16)(n >= 32 ? 0xffffu : n > 16 ? (1u << (n - 16)) - 1 : 0);
  __m512 sc = _mm512_set1_ps(scale);
  __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(hi, src + 16), sc),
                                           _mm512_mul_ps(_mm512_maskz_loadu_ps(lo, src), sc));
  _mm512_store_si512((void *)dst, w);
}

static int64_t piece_at(int64_t len, int i, int n) {
  if (i >= n) return len;
  int64_t s = len * i / n;
  return s - s % 32;
}

static void amx_task(void *user, int64_t i) {
  const amx_job *j = user;
  int64_t len = j->split_n ? j->N : j->M;
  int64_t lo = piece_at(len, (int)i, j->pieces), hi = piece_at(len, (int)i + 1, j->pieces);
  if (hi <= lo) return;
  void *ws = j->ws + (size_t)i * j->ws_bytes;
  if (j->split_n)
    amx_piece(j, 0, j->M, lo, hi, ws);
  else
    amx_piece(j, lo, hi, 0, j->N, ws);
}

static ldm_status amx_run(ldm_ctx *ctx, amx_job *j) {
  if (!ldm_cpu_has_amx_bf16()) /* also asks for the tile-data permission */
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "gemm: this CPU or system does not let the process use AMX");
  int threads = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  int64_t Np = ops_amx_np(j->N);
  int mc = (int)(AMX_ACC_BYTES / (Np * 4));
  mc = mc / 32 * 32;
  if (mc > AMX_MC) mc = AMX_MC;
  if (mc < 32) mc = 32;
  j->mc = mc;
  j->pieces = 1;
  j->split_n = false;
  if (threads > 1 && (double)j->M * (double)j->N * (double)j->a.K >= (double)(1 << 20)) {
    /* rows while every thread gets two blocks of 32; else columns */
    if (j->M >= (int64_t)threads * 64 || j->N < (int64_t)threads * 32)
      j->pieces = threads;
    else
      j->pieces = threads, j->split_n = true;
  }
  if (j->M < (int64_t)threads * 32 && !j->split_n) j->pieces = 1;
  j->ws_bytes = amx_ws_bytes(mc, Np);
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  if (!(j->ws = ldm_arena_alloc(ctx->scratch, j->ws_bytes * (size_t)j->pieces)))
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "gemm: no scratch for the AMX blocks (%d x %zu B)", j->pieces,
                    j->ws_bytes);
  ldm_pool_for(j->pieces > 1 ? ctx->pool : NULL, j->pieces, amx_task, j);
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

ldm_status ops_amx_gemm(ldm_ctx *ctx, int64_t M, float alpha, const float *A, int64_t lda, const ops_amx_panels *P,
                        float beta, float *C, int64_t ldc, const float *bias) {
  if (M <= 0 || P->N <= 0) return LDM_OK;
  amx_job j = {.a = {.A = A, .lda = lda, .K = P->K},
               .P = P,
               .M = M,
               .N = P->N,
               .alpha = alpha,
               .beta = beta,
               .C = C,
               .ldc = ldc,
               .bias = bias};
  return amx_run(ctx, &j);
}

ldm_status ops_amx_conv(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin, int kh, int kw,
                        int stride, int pad, const ops_amx_panels *P, const float *bias) {
  int Ho = ldm_conv_out(H, kh, stride, pad), Wo = ldm_conv_out(W, kw, stride, pad);
  amx_job j = {.a = {.A = x,
                     .K = P->K,
                     .conv = 1,
                     .H = H,
                     .W = W,
                     .Cin = Cin,
                     .kw = kw,
                     .Ho = Ho,
                     .Wo = Wo,
                     .stride = stride,
                     .pad = pad},
               .P = P,
               .M = (int64_t)B * Ho * Wo,
               .N = P->N,
               .alpha = 1.0f,
               .beta = 0.0f,
               .C = y,
               .ldc = P->N,
               .bias = bias};
  (void)kh;
  return amx_run(ctx, &j);
}

#else /* no AMX in this build */

void ops_amx_tiles_begin(void) {}
void ops_amx_tiles_end(void) {}
void ops_amx_tile32(const uint16_t *a0, const uint16_t *a1, const uint32_t *b0, const uint32_t *b1, int ks,
                    const float *acc, int64_t acc_ld, float *out, int64_t out_ld) {
  (void)a0, (void)a1, (void)b0, (void)b1, (void)ks, (void)acc, (void)acc_ld, (void)out, (void)out_ld;
}
void ops_amx_round32(uint16_t *dst, const float *src, int n, float scale) {
  for (int i = 0; i < 32; i++) dst[i] = i < n ? ldm_f32_to_bf16(src[i] * scale) : 0;
}

ldm_status ops_amx_gemm(ldm_ctx *ctx, int64_t M, float alpha, const float *A, int64_t lda, const ops_amx_panels *P,
                        float beta, float *C, int64_t ldc, const float *bias) {
  (void)M, (void)alpha, (void)A, (void)lda, (void)P, (void)beta, (void)C, (void)ldc, (void)bias;
  return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "gemm: no AMX kernel in this build");
}

ldm_status ops_amx_conv(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin, int kh, int kw,
                        int stride, int pad, const ops_amx_panels *P, const float *bias) {
  (void)y, (void)x, (void)B, (void)H, (void)W, (void)Cin, (void)kh, (void)kw, (void)stride, (void)pad, (void)P,
      (void)bias;
  return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "conv2d: no AMX kernel in this build");
}
#endif
