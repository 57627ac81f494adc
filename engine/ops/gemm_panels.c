/* Products with few rows against a weight kept as panels: C [M, N] = A [M,
 * K] W^T for W [N, K], W stored in the weight cache as panels of 32 of its
 * rows, k-major: P [ceil(N/32)][K][32] (rows past N zero), in the weight's
 * own width (f16 and bf16 weights as 16-bit panels, widened in the kernel:
 * at these sizes the product waits on the weight's bytes).
 *
 * At batch 1 and low resolution (8x8 and 4x4 latents: 64 and 16 rows) an
 * OpenBLAS call packs the whole weight again at every call, which cost as
 * much as the products (measured: 64 rows at 0.7x, 16 rows at 0.35x of the
 * rate of 256 rows and more). The panels are packed once per model and read
 * as they lie: a tile of 8 rows x 32 columns in 16 AVX-512 accumulators
 * (AVX2: 6 rows x 16 columns in 12), K in blocks of 256 so that a panel's
 * block stays in L1 across the rows.
 * Each piece walks its panels in chunks of 32 (1024 columns of C), and in
 * a chunk K block by K block, all panels per block: the rows' block of A
 * (at most 256 x 256 floats) stays in L2 across the panels instead of
 * coming from L3 once per panel (one core of an Emerald Rapids Xeon: 256 x
 * 1280 x 5120 f16 119 -> 146 GFLOP/s, 64 x 1280 x 11520 108 -> 125; the
 * chunks keep C in L2 too: 256 x 10240 x 1280 140 where K-blocks over all
 * panels gave 134). The same sums in the same order. */
#include "ops/ops.h"
#include "ops/ops_util.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/wcache.h"

#include <immintrin.h>
#include <string.h>

enum {
  PANEL_W = 32,   /* columns of C (rows of W) per panel */
  PANEL_KC = 256, /* K per block */
  PANEL_MR = 8,   /* rows of C per tile */
  PANEL_NCH = 32  /* panels per chunk of C */
};

/* 16-bit panels for f16/bf16 weights, else f32 */
static int elem_bytes(ldm_dtype t) { return t == LDM_DTYPE_F16 || t == LDM_DTYPE_BF16 ? 2 : 4; }

size_t ops_panels_floats(ldm_dtype t, int64_t N, int64_t K) {
  size_t elems = (size_t)((N + PANEL_W - 1) / PANEL_W) * (size_t)K * PANEL_W;
  return elem_bytes(t) == 2 ? (elems + 1) / 2 : elems;
}

bool ops_panels_usable(const ldm_ctx *ctx, int64_t M) {
  return M >= 1 && M <= LDM_PANEL_MAX_ROWS && ctx->wcache && !ops_amx_active(ctx) && !ops_gemm_bf16_active(ctx) &&
         (ldm_cpu_has_avx512() || (ldm_cpu_has_avx2() && ldm_cpu_has_fma() && ldm_cpu_has_f16c()));
}

typedef struct build_job {
  void *P;
  const float *W;
  int64_t N, K;
  ldm_dtype t;
} build_job;

static void build_task(void *user, int64_t p) {
  const build_job *j = user;
  size_t at = (size_t)(p * j->K * PANEL_W);
  float *d32 = (float *)j->P + at;
  uint16_t *d16 = (uint16_t *)j->P + at;
  for (int c = 0; c < PANEL_W; c++) {
    int64_t n = p * PANEL_W + c;
    const float *row = n < j->N ? j->W + n * j->K : NULL;
    for (int64_t k = 0; k < j->K; k++) {
      float v = row ? row[k] : 0.0f;
      if (j->t == LDM_DTYPE_F16)
        d16[k * PANEL_W + c] = ldm_f32_to_f16(v);
      else if (j->t == LDM_DTYPE_BF16)
        d16[k * PANEL_W + c] = ldm_f32_to_bf16(v);
      else
        d32[k * PANEL_W + c] = v;
    }
  }
}

void ops_panels_build(ldm_ctx *ctx, float *P, ldm_dtype t, const float *W, int64_t N, int64_t K) {
  build_job j = {P, W, N, K, t};
  ldm_pool_for(ctx->pool, (N + PANEL_W - 1) / PANEL_W, build_task, &j);
}

typedef struct panel_job panel_job;
/* One K block of one panel against every row: C [M, n0 + cols) (+)= A [M,
 * k0 + kc) P-block [kc, 32]; wide: room for the block widened to f32 */
typedef void (*block_fn)(const panel_job *j, int64_t kc, int64_t k0, const void *pk, int64_t n0, int64_t cols,
                         float *wide);
struct panel_job {
  int64_t M, N, K, lda, ldc;
  const float *A;
  const void *P;
  float *C;
  int64_t panels;
  int pieces, eb;
  block_fn block;
};

/* ---- AVX-512: tiles of 8 rows x 32 columns in 16 accumulators ---------- */

/* 16 panel entries from P (elements of eb bytes; 2 with bf = bf16) at index i */
__attribute__((target("avx512f,f16c"), always_inline)) static inline __m512 load16(const void *P, int64_t i, int eb,
                                                                                   bool bf) {
  if (eb == 4) return _mm512_loadu_ps((const float *)P + i);
  __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)P + i));
  if (!bf) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* C tile [mr, 32 masked by m0/m1] (+)= A [mr, kc] P [kc, 32] */
__attribute__((target("avx512f,f16c"), always_inline)) static inline void tile(int mr, int eb, bool bf, int64_t kc,
                                                                               const float *A, int64_t lda,
                                                                               const void *P, float *C, int64_t ldc,
                                                                               __mmask16 m0, __mmask16 m1, bool acc) {
  __m512 c0[PANEL_MR], c1[PANEL_MR];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++) {
    c0[i] = acc ? _mm512_maskz_loadu_ps(m0, C + i * ldc) : _mm512_setzero_ps();
    c1[i] = acc ? _mm512_maskz_loadu_ps(m1, C + i * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; k++) {
    __m512 b0 = load16(P, k * PANEL_W, eb, bf), b1 = load16(P, k * PANEL_W + 16, eb, bf);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
      __m512 a = _mm512_set1_ps(A[i * lda + k]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++) {
    _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);
  }
}

#define TILE_CASE(R) \
  case R: tile(R, EB, BF, kc, a, j->lda, pk, c, j->ldc, m0, m1, k0 > 0); break

/* Every tile of rows for one block of one panel */
__attribute__((target("avx512f,f16c"), always_inline)) static inline void block512(const panel_job *j, int64_t kc,
                                                                                   int64_t k0, const void *pk,
                                                                                   int64_t n0, int64_t cols,
                                                                                   const int EB, const bool BF) {
  __mmask16 m0 = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1);
  __mmask16 m1 = (__mmask16)(cols >= 32 ? 0xFFFF : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
  for (int64_t r = 0; r < j->M; r += PANEL_MR) {
    const float *a = j->A + r * j->lda + k0;
    float *c = j->C + r * j->ldc + n0;
    switch (j->M - r < PANEL_MR ? (int)(j->M - r) : PANEL_MR) {
      TILE_CASE(1);
      TILE_CASE(2);
      TILE_CASE(3);
      TILE_CASE(4);
      TILE_CASE(5);
      TILE_CASE(6);
      TILE_CASE(7);
      TILE_CASE(8);
    }
  }
}

/* 16-bit panels with more rows than a tile are widened once for all tiles */
#define BLOCK512(NAME, EB, BF)                                                                                         \
  __attribute__((target("avx512f,f16c"))) static void NAME(const panel_job *j, int64_t kc, int64_t k0, const void *pk, \
                                                           int64_t n0, int64_t cols, float *wide) {                    \
    if (EB == 2 && j->M > PANEL_MR) {                                                                                  \
      for (int64_t k = 0; k < kc * PANEL_W; k += 16) _mm512_storeu_ps(wide + k, load16(pk, k, 2, BF));                 \
      block512(j, kc, k0, wide, n0, cols, 4, false);                                                                   \
    } else {                                                                                                           \
      block512(j, kc, k0, pk, n0, cols, EB, BF);                                                                       \
    }                                                                                                                  \
  }
BLOCK512(block512_f32, 4, false)
BLOCK512(block512_f16, 2, false)
BLOCK512(block512_bf16, 2, true)

/* ---- AVX2: tiles of 6 rows x 16 columns (half a panel) in 12 accumulators
 * (16 registers: 12 + two of P + the broadcast of A); the same sums in the
 * same order as the AVX-512 tiles. */
enum { PANEL_MR2 = 6 };

/* 8 panel entries from P at index i */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256 load8(const void *P, int64_t i, int eb,
                                                                                   bool bf) {
  if (eb == 4) return _mm256_loadu_ps((const float *)P + i);
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)P + i));
  if (!bf) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* C tile [mr, 16 columns, the first `cols` of them kept] (+)= A [mr, kc]
 * P [kc, 16 of a panel's 32] */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void tile2(int mr, int eb, bool bf, int64_t kc,
                                                                                 const float *A, int64_t lda,
                                                                                 const void *P, float *C, int64_t ldc,
                                                                                 int64_t cols, bool acc) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cols), lane);
  const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cols - 8), lane);
  const bool full = cols >= 16;
  __m256 c0[PANEL_MR2], c1[PANEL_MR2];
#pragma GCC unroll 6
  for (int i = 0; i < mr; i++) {
    if (!acc) {
      c0[i] = c1[i] = _mm256_setzero_ps();
    } else if (full) {
      c0[i] = _mm256_loadu_ps(C + i * ldc);
      c1[i] = _mm256_loadu_ps(C + i * ldc + 8);
    } else {
      c0[i] = _mm256_maskload_ps(C + i * ldc, k0);
      c1[i] = _mm256_maskload_ps(C + i * ldc + 8, k1);
    }
  }
  /* k unrolled 4 times: less loop overhead per 12 FMAs (one Zen 3 core, 96 x
   * 1024 x 256 in L2: 89.4-90.5 -> 90.8-91.0 GFLOP/s of 101.5) */
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = load8(P, k * PANEL_W, eb, bf), b1 = load8(P, k * PANEL_W + 8, eb, bf);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
      __m256 a = _mm256_broadcast_ss(A + i * lda + k);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < mr; i++) {
    if (full) {
      _mm256_storeu_ps(C + i * ldc, c0[i]);
      _mm256_storeu_ps(C + i * ldc + 8, c1[i]);
    } else {
      _mm256_maskstore_ps(C + i * ldc, k0, c0[i]);
      _mm256_maskstore_ps(C + i * ldc + 8, k1, c1[i]);
    }
  }
}

#define TILE2_CASE(R) \
  case R: tile2(R, EB, BF, kc, a, j->lda, ph, c, j->ldc, hc, k0 > 0); break

__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void block2(const panel_job *j, int64_t kc,
                                                                                  int64_t k0, const void *pk,
                                                                                  int64_t n0, int64_t cols,
                                                                                  const int EB, const bool BF) {
  for (int h = 0; h < PANEL_W && h < cols; h += 16) { /* the panel's two halves */
    const void *ph = (const char *)pk + (size_t)h * (size_t)EB;
    int64_t hc = cols - h;
    for (int64_t r = 0; r < j->M; r += PANEL_MR2) {
      const float *a = j->A + r * j->lda + k0;
      float *c = j->C + r * j->ldc + n0 + h;
      switch (j->M - r < PANEL_MR2 ? (int)(j->M - r) : PANEL_MR2) {
        TILE2_CASE(1);
        TILE2_CASE(2);
        TILE2_CASE(3);
        TILE2_CASE(4);
        TILE2_CASE(5);
        TILE2_CASE(6);
      }
    }
  }
}

#define BLOCK2(NAME, EB, BF)                                                                                         \
  __attribute__((target("avx2,fma,f16c"))) static void NAME(const panel_job *j, int64_t kc, int64_t k0,              \
                                                            const void *pk, int64_t n0, int64_t cols, float *wide) { \
    if (EB == 2 && j->M > PANEL_MR2) {                                                                               \
      for (int64_t k = 0; k < kc * PANEL_W; k += 8) _mm256_storeu_ps(wide + k, load8(pk, k, 2, BF));                 \
      block2(j, kc, k0, wide, n0, cols, 4, false);                                                                   \
    } else {                                                                                                         \
      block2(j, kc, k0, pk, n0, cols, EB, BF);                                                                       \
    }                                                                                                                \
  }
BLOCK2(block2_f32, 4, false)
BLOCK2(block2_f16, 2, false)
BLOCK2(block2_bf16, 2, true)

/* ---- the pieces' walk, the same on both ------------------------------- */

static void panel_task(void *user, int64_t i) {
  const panel_job *j = user;
  float wide[PANEL_KC * PANEL_W] __attribute__((aligned(64)));
  int64_t p0 = j->panels * i / j->pieces, p1 = j->panels * (i + 1) / j->pieces;
  for (int64_t q0 = p0; q0 < p1; q0 += PANEL_NCH) {
    int64_t q1 = p1 - q0 < PANEL_NCH ? p1 : q0 + PANEL_NCH;
    for (int64_t k0 = 0; k0 < j->K; k0 += PANEL_KC) {
      int64_t kc = j->K - k0 < PANEL_KC ? j->K - k0 : PANEL_KC;
      for (int64_t p = q0; p < q1; p++) {
        int64_t n0 = p * PANEL_W, cols = j->N - n0 < PANEL_W ? j->N - n0 : PANEL_W;
        const char *pk = (const char *)j->P + (size_t)((p * j->K + k0) * PANEL_W) * (size_t)j->eb;
        j->block(j, kc, k0, pk, n0, cols, wide);
      }
    }
  }
}

void ops_gemm_panels(ldm_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P,
                     ldm_dtype t, float *C, int64_t ldc) {
  int64_t panels = (N + PANEL_W - 1) / PANEL_W;
  int threads = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  int pieces = panels < threads ? (int)panels : threads;
  if ((double)M * (double)N * (double)K < (double)(1 << 18)) pieces = 1;
  bool z = ldm_cpu_has_avx512();
  block_fn fn = t == LDM_DTYPE_F16    ? (z ? block512_f16 : block2_f16)
                : t == LDM_DTYPE_BF16 ? (z ? block512_bf16 : block2_bf16)
                                      : (z ? block512_f32 : block2_f32);
  panel_job j = {M, N, K, lda, ldc, A, P, C, panels, pieces, elem_bytes(t), fn};
  ldm_pool_for(pieces > 1 ? ctx->pool : NULL, pieces, panel_task, &j);
}

/* ---- the weight packed per call ---------------------------------------
 * C [M, N] = A [M, K] W^T for W [N, K] as stored (f32/f16/bf16), for
 * products whose weight is not kept as panels (no weight cache: txt2img
 * keeps none, to stay within the file's size in memory). There a 16-bit
 * weight was widened to f32 (whole, or chunk by chunk inside OpenBLAS
 * calls: ops_gemm_stream) and OpenBLAS packed it again. Here each piece (a
 * share of C's columns, one per thread) packs its panels 8 at a time over a
 * range of K (1 MiB of f32), widened straight from the stored rows by 8 x 8
 * transposes, and runs the tiles above over the rows in blocks of WIDE_MC:
 * per block, K block by K block over the chunk's panels, so that A's block
 * (96 x 256) and C's (96 x 256) stay in L2 while a panel's K block comes
 * from L1. Rates (Zen 3, 2 threads, f16 weight; OpenBLAS through
 * ops_gemm_stream in the same runs): 16 x 1280 x 1280 55-85 against
 * 40-51 GFLOP/s, 64 rows 79-152 / 68-120, 256 rows 174-178 / 162-166,
 * 512 rows 166-178 / 155-170, 1024 rows 173-180 / 162-173; from ~2048 rows
 * on OpenBLAS on the widened weight is as fast (LDM_GEMM_WIDE_MAX_ROWS). */
enum {
  WIDE_CHUNK_FLOATS = 1 << 18, /* a packed chunk: 1 MiB of f32 ... */
  WIDE_NCH = 8,                /* ... 8 panels over (up to) 1024 of K */
  WIDE_MC = 96                 /* rows per block: A's block 96 x 256 floats, C's 96 x 256 */
};

typedef struct wide_job {
  panel_job pj; /* A, C, M, N, K, lda, ldc, block (f32 panels) */
  const ldm_tensor *w;
  float *buf;
  int64_t pieces, kr;
} wide_job;

/* 8 widened k-values of row `row` (NULL: past N, zeros) at k */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256 wide_row8(const void *row, ldm_dtype t,
                                                                                       int64_t k) {
  if (!row) return _mm256_setzero_ps();
  if (t == LDM_DTYPE_F32) return _mm256_loadu_ps((const float *)row + k);
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
  if (t == LDM_DTYPE_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Panel p's block [k0, k0 + kc) into dst [kc][32] (f32), rows past N zero */
__attribute__((target("avx2,fma,f16c"))) static void wide_pack(const wide_job *j, int64_t p, int64_t k0, int64_t kc,
                                                               float *dst) {
  const ldm_tensor *w = j->w;
  size_t eb = w->dtype == LDM_DTYPE_F32 ? 4 : 2;
  int64_t kv = kc - kc % 8;
  for (int g = 0; g < PANEL_W; g += 8) {
    const void *rows[8];
    for (int r = 0; r < 8; r++) {
      int64_t n = p * PANEL_W + g + r;
      rows[r] = n < j->pj.N ? (const char *)w->data + (size_t)(n * j->pj.K + k0) * eb : NULL;
    }
    for (int64_t k = 0; k < kv; k += 8) {
      __m256 r0 = wide_row8(rows[0], w->dtype, k), r1 = wide_row8(rows[1], w->dtype, k);
      __m256 r2 = wide_row8(rows[2], w->dtype, k), r3 = wide_row8(rows[3], w->dtype, k);
      __m256 r4 = wide_row8(rows[4], w->dtype, k), r5 = wide_row8(rows[5], w->dtype, k);
      __m256 r6 = wide_row8(rows[6], w->dtype, k), r7 = wide_row8(rows[7], w->dtype, k);
      /* 8 x 8 transpose: row r, k-value i -> dst[(k + i) * 32 + g + r] */
      __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float *d = dst + k * PANEL_W + g;
      _mm256_storeu_ps(d + 0 * PANEL_W, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(d + 1 * PANEL_W, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(d + 2 * PANEL_W, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(d + 3 * PANEL_W, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(d + 4 * PANEL_W, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(d + 5 * PANEL_W, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(d + 6 * PANEL_W, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(d + 7 * PANEL_W, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (int r = 0; r < 8; r++) /* the last K % 8 */
      for (int64_t k = kv; k < kc; k++) {
        float v = 0.0f;
        if (rows[r] && w->dtype == LDM_DTYPE_F32)
          v = ((const float *)rows[r])[k];
        else if (rows[r])
          v = w->dtype == LDM_DTYPE_F16 ? ldm_f16_to_f32(((const uint16_t *)rows[r])[k])
                                        : ldm_bf16_to_f32(((const uint16_t *)rows[r])[k]);
        dst[k * PANEL_W + g + r] = v;
      }
  }
}

static void wide_task(void *user, int64_t i) {
  const wide_job *j = user;
  const panel_job *pj = &j->pj;
  int64_t p0 = pj->panels * i / j->pieces, p1 = pj->panels * (i + 1) / j->pieces;
  float *buf = j->buf + (size_t)i * (size_t)(WIDE_NCH * j->kr * PANEL_W);
  for (int64_t q0 = p0; q0 < p1; q0 += WIDE_NCH) {
    int64_t q1 = p1 - q0 < WIDE_NCH ? p1 : q0 + WIDE_NCH;
    for (int64_t r0 = 0; r0 < pj->K; r0 += j->kr) {
      int64_t kr = pj->K - r0 < j->kr ? pj->K - r0 : j->kr;
      /* the chunk's panels over [r0, r0 + kr), each as K blocks of [kc][32] */
      for (int64_t p = q0; p < q1; p++)
        for (int64_t k0 = 0; k0 < kr; k0 += PANEL_KC)
          wide_pack(j, p, r0 + k0, kr - k0 < PANEL_KC ? kr - k0 : PANEL_KC, buf + ((p - q0) * kr + k0) * PANEL_W);
      for (int64_t m0 = 0; m0 < pj->M; m0 += WIDE_MC) {
        panel_job rows = *pj;
        rows.M = pj->M - m0 < WIDE_MC ? pj->M - m0 : WIDE_MC;
        rows.A = pj->A + m0 * pj->lda;
        rows.C = pj->C + m0 * pj->ldc;
        for (int64_t k0 = 0; k0 < kr; k0 += PANEL_KC) {
          int64_t kc = kr - k0 < PANEL_KC ? kr - k0 : PANEL_KC;
          for (int64_t p = q0; p < q1; p++) {
            int64_t n0 = p * PANEL_W, cols = pj->N - n0 < PANEL_W ? pj->N - n0 : PANEL_W;
            pj->block(&rows, kc, r0 + k0, buf + ((p - q0) * kr + k0) * PANEL_W, n0, cols, NULL);
          }
        }
      }
    }
  }
}

bool ops_gemm_wide_usable(const ldm_ctx *ctx) {
  return !ops_amx_active(ctx) && !ops_gemm_bf16_active(ctx) &&
         (ldm_cpu_has_avx512() || (ldm_cpu_has_avx2() && ldm_cpu_has_fma() && ldm_cpu_has_f16c()));
}

ldm_status ops_gemm_wide(ldm_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const ldm_tensor *w, float *C, int64_t ldc) {
  if (M < 1 || N < 1 || K < 1 || lda < K || ldc < N || ldm_tensor_numel(w) < N * K ||
      (w->dtype != LDM_DTYPE_F32 && w->dtype != LDM_DTYPE_F16 && w->dtype != LDM_DTYPE_BF16))
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "gemm: bad packed product M=%lld N=%lld K=%lld lda=%lld ldc=%lld for weight '%s'", (long long)M,
                    (long long)N, (long long)K, (long long)lda, (long long)ldc, w->name ? w->name : "?");
  int64_t panels = (N + PANEL_W - 1) / PANEL_W;
  int threads = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  int pieces = panels < threads ? (int)panels : threads;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  /* K in ranges of kr: a chunk of WIDE_NCH panels over kr, 1 MiB packed */
  int64_t kr = WIDE_CHUNK_FLOATS / (WIDE_NCH * PANEL_W);
  kr = K < kr ? K : kr;
  float *buf = ldm_arena_floats(ctx->scratch, (size_t)(pieces * WIDE_NCH * kr * PANEL_W));
  if (!buf) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "gemm: no scratch to pack weight '%s'", w->name ? w->name : "?");
  wide_job j = {{M, N, K, lda, ldc, A, NULL, C, panels, pieces, 4, ldm_cpu_has_avx512() ? block512_f32 : block2_f32},
                w,
                buf,
                pieces,
                kr};
  ldm_pool_for(pieces > 1 ? ctx->pool : NULL, pieces, wide_task, &j);
  ldm_arena_reset(ctx->scratch, mark);
  return LDM_OK;
}

/* The weight's panels (in w's width) from the cache, made there on first use;
 * NULL (no error) when the cache cannot take them: the caller goes the usual
 * way. */
typedef struct panels_shape {
  int64_t N, K;
} panels_shape;

static bool prep_panels(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *user) {
  const panels_shape *ps = user;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_ctx plain = *ctx; /* the f32 rows in scratch, not in the cache */
  plain.wcache = NULL;
  const float *W = ops_weight_f32(&plain, wa, ps->N * ps->K);
  if (W) ops_panels_build(ctx, dst, wa->dtype, W, ps->N, ps->K);
  ldm_arena_reset(ctx->scratch, mark);
  return W != NULL;
}

const float *ops_weight_panels(ldm_ctx *ctx, const ldm_tensor *w, int64_t N, int64_t K) {
  panels_shape ps = {N, K};
  return ops_prepared(ctx, w, LDM_WCACHE_PANELS, ops_panels_floats(w->dtype, N, K), prep_panels, &ps, true);
}
