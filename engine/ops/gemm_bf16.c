/* The engine's own bf16 matrix product: both operands rounded to bf16 (round
 * to nearest even, as torch's .bfloat16()), products summed in f32, as
 * PyTorch's bf16 autocast and oneDNN compute. Packing and cache blocking
 * follow BLIS (Goto & van de Geijn, "Anatomy of high-performance matrix
 * multiplication"): B in NR-column micro-panels, A in MR-row micro-panels,
 * K taken in pairs so that one 32-bit word holds the two bf16 values that
 * AVX512-BF16's VDPBF16PS multiplies and adds per f32 lane (twice the f32
 * FMA rate). Where the CPU lacks AVX512-BF16 the same packed operands go
 * through f32 FMAs (AVX2 or portable C): the same rounding on any CPU, for
 * tests, at f32 speed or below. ldm_gemm (gemm.c) cuts C into pieces per
 * pool thread and calls ops_gemm_bf16_block for each. */
#include "ops/ops.h"
#include "ops/ops_util.h"
#include "core/cpu.h"
#include "core/half.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BF16_X86 1
#endif

enum {
  MR = 12,  /* rows of C per micro-kernel: 12 x 2 zmm accumulators */
  NR = 32,  /* columns of C per micro-kernel: two zmm of 16 f32 lanes */
  KC = 512, /* K per packed block (256 pairs): a B micro-panel is 32 KiB */
  MC = 144, /* rows of A packed at once: 144 KiB, stays in L2 */
  NC = 1024 /* columns of B packed at once (1 MiB): A is packed once per 1024 columns */
};

/* Workspace of one piece: packed B block, packed A block, one C tile. */
size_t ops_gemm_bf16_workspace_bytes(void) {
  return (size_t)NC * KC * 2 + (size_t)MC * KC * 2 + (size_t)MR * NR * 4 + 3 * 64;
}

/* One row of K values (x[k * ks], k < kc) as pair words at stride P:
 * d[p * P] = (x(2p), x(2p + 1)), the odd K's missing partner zero. */
typedef void (*pack_row_fn)(uint32_t *d, const float *row, int64_t ks, int64_t kc, int P);

static void pack_row_c(uint32_t *d, const float *row, int64_t ks, int64_t kc, int P) {
  int64_t pairs = kc / 2;
  for (int64_t p = 0; p < pairs; p++) d[p * P] = ldm_bf16_pair(row[2 * p * ks], row[(2 * p + 1) * ks]);
  if (kc & 1) d[pairs * P] = ldm_f32_to_bf16(row[(kc - 1) * ks]);
}

#ifdef BF16_X86
/* pack_row_c for ks = 1 with VCVTNE2PS2BF16 (the same round to nearest
 * even) and a scatter of 16 pair words at stride P. */
__attribute__((target("avx512f,avx512bf16"))) static void pack_row_avx512(uint32_t *d, const float *row, int64_t ks,
                                                                         int64_t kc, int P) {
  (void)ks;
  const __m512i at = _mm512_mullo_epi32(
      _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(P));
  int64_t k = 0;
  for (; k + 32 <= kc; k += 32, d += 16 * P) {
    __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + k + 16), _mm512_loadu_ps(row + k));
    _mm512_i32scatter_epi32(d, at, w, 4);
  }
  if (k < kc) {
    int rem = (int)(kc - k); /* 1..31 floats, (rem + 1) / 2 words */
    __mmask16 lo = (__mmask16)(rem >= 16 ? 0xffffu : (1u << rem) - 1);
    __mmask16 hi = (__mmask16)(rem > 16 ? (1u << (rem - 16)) - 1 : 0);
    __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, row + k + 16),
                                             _mm512_maskz_loadu_ps(lo, row + k));
    _mm512_mask_i32scatter_epi32(d, (__mmask16)((1u << ((rem + 1) / 2)) - 1), at, w, 4);
  }
}
#endif

/* Rows [0, rows) of a matrix read through strides (rs, ks), K [0, kc), into
 * micro-panels of P rows: word [panel][p][i] = (x(i, 2p), x(i, 2p + 1));
 * rows past `rows` are zero. */
static void pack_panels(uint32_t *dst, const float *x, int64_t rs, int64_t ks, int64_t rows, int64_t kc, int P,
                        pack_row_fn pack_row) {
  int64_t kp = (kc + 1) / 2;
  for (int64_t r0 = 0; r0 < rows; r0 += P) {
    uint32_t *panel = dst + r0 * kp;
    for (int i = 0; i < P; i++) {
      if (r0 + i < rows) pack_row(panel + i, x + (r0 + i) * rs, ks, kc, P);
      else
        for (int64_t p = 0; p < kp; p++) panel[i + p * P] = 0;
    }
  }
}

/* Micro-kernels: tile[MR][NR] = sum over kp pairs of a-panel x b-panel.
 * The emulations add the odd product first, then the even one, in the order
 * VDPBF16PS is specified with (each bf16 x bf16 product is exact in f32). */
static void kernel_portable(int64_t kp, const uint32_t *a, const uint32_t *b, float *tile) {
  for (int i = 0; i < MR * NR; i++) tile[i] = 0.0f;
  for (int64_t p = 0; p < kp; p++, a += MR, b += NR)
    for (int i = 0; i < MR; i++) {
      float ae = ldm_bf16_pair_lo(a[i]), ao = ldm_bf16_pair_hi(a[i]);
      for (int j = 0; j < NR; j++) {
        float t = tile[i * NR + j];
        t = fmaf(ao, ldm_bf16_pair_hi(b[j]), t);
        tile[i * NR + j] = fmaf(ae, ldm_bf16_pair_lo(b[j]), t);
      }
    }
}

#ifdef BF16_X86
__attribute__((target("avx2,fma"))) static void kernel_avx2(int64_t kp, const uint32_t *a, const uint32_t *b,
                                                            float *tile) {
  const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
  for (int c = 0; c < NR; c += 8) {
    __m256 acc[MR];
    for (int i = 0; i < MR; i++) acc[i] = _mm256_setzero_ps();
    const uint32_t *ap = a, *bp = b + c;
    for (int64_t p = 0; p < kp; p++, ap += MR, bp += NR) {
      __m256i w = _mm256_loadu_si256((const __m256i *)bp);
      __m256 be = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
      __m256 bo = _mm256_castsi256_ps(_mm256_and_si256(w, hi));
      for (int i = 0; i < MR; i++) {
        acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ldm_bf16_pair_hi(ap[i])), bo, acc[i]);
        acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ldm_bf16_pair_lo(ap[i])), be, acc[i]);
      }
    }
    for (int i = 0; i < MR; i++) _mm256_storeu_ps(tile + i * NR + c, acc[i]);
  }
}

__attribute__((target("avx512f,avx512bf16"))) static void kernel_avx512bf16(int64_t kp, const uint32_t *a,
                                                                           const uint32_t *b, float *tile) {
  __m512 c0[MR], c1[MR];
  for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; p++, a += MR, b += NR) {
    __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)b);
    __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + 16));
    for (int i = 0; i < MR; i++) {
      __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
      c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
    }
  }
  for (int i = 0; i < MR; i++) {
    _mm512_storeu_ps(tile + i * NR, c0[i]);
    _mm512_storeu_ps(tile + i * NR + 16, c1[i]);
  }
}
#endif

typedef void (*kernel_fn)(int64_t kp, const uint32_t *a, const uint32_t *b, float *tile);

static kernel_fn pick_kernel(bool emulate) {
#ifdef BF16_X86
  if (!emulate && ldm_cpu_has_avx512bf16()) return kernel_avx512bf16;
  if (ldm_cpu_has_avx2() && ldm_cpu_has_fma()) return kernel_avx2;
#else
  (void)emulate;
#endif
  return kernel_portable;
}

bool ops_gemm_bf16_native(void) {
#ifdef BF16_X86
  return ldm_cpu_has_avx512bf16();
#else
  return false;
#endif
}

/* C tile (rows x cols valid) = alpha * tile + beta * C; beta 0 never reads C. */
static void store_tile(float *C, int64_t ldc, const float *tile, int rows, int cols, float alpha, float beta) {
  for (int i = 0; i < rows; i++) {
    float *c = C + i * ldc;
    const float *t = tile + i * NR;
    if (beta == 0.0f)
      for (int j = 0; j < cols; j++) c[j] = alpha * t[j];
    else if (beta == 1.0f)
      for (int j = 0; j < cols; j++) c[j] += alpha * t[j];
    else
      for (int j = 0; j < cols; j++) c[j] = alpha * t[j] + beta * c[j];
  }
}

static void *align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

void ops_gemm_bf16_block(bool emulate, bool trans_a, bool trans_b, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                         int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc, void *ws) {
  kernel_fn kern = pick_kernel(emulate);
  pack_row_fn fast_row = pack_row_c; /* rows with K contiguous */
#ifdef BF16_X86
  if (!emulate && ldm_cpu_has_avx512bf16()) fast_row = pack_row_avx512;
#endif
  uint32_t *bp = align64(ws);
  uint32_t *ap = align64(bp + (size_t)NC * KC / 2);
  float *tile = align64(ap + (size_t)MC * KC / 2);
  /* A (m, k) = A[m * ars + k * aks]; B as rows n: B(k, n) = B[n * brs + k * bks] */
  int64_t ars = trans_a ? 1 : lda, aks = trans_a ? lda : 1;
  int64_t brs = trans_b ? ldb : 1, bks = trans_b ? 1 : ldb;
  if (K == 0) {
    for (int64_t m = m0; m < m1; m++)
      for (int64_t n = n0; n < n1; n++) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
    return;
  }
  for (int64_t jc = n0; jc < n1; jc += NC) {
    int64_t nc = n1 - jc < NC ? n1 - jc : NC;
    for (int64_t pc = 0; pc < K; pc += KC) {
      int64_t kc = K - pc < KC ? K - pc : KC, kp = (kc + 1) / 2;
      float be = pc == 0 ? beta : 1.0f;
      pack_panels(bp, B + jc * brs + pc * bks, brs, bks, nc, kc, NR, bks == 1 ? fast_row : pack_row_c);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        int64_t mc = m1 - ic < MC ? m1 - ic : MC;
        pack_panels(ap, A + ic * ars + pc * aks, ars, aks, mc, kc, MR, aks == 1 ? fast_row : pack_row_c);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          int cols = (int)(nc - jr < NR ? nc - jr : NR);
          for (int64_t ir = 0; ir < mc; ir += MR) {
            int rows = (int)(mc - ir < MR ? mc - ir : MR);
            kern(kp, ap + ir * kp, bp + jr * kp, tile);
            store_tile(C + (ic + ir) * ldc + jc + jr, ldc, tile, rows, cols, alpha, be);
          }
        }
      }
    }
  }
}
