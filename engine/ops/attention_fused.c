/* Fused attention (AVX2 + FMA, or AVX-512) for head sizes that are
 * multiples of 8, non-causal: the flash-attention order of work. A worker
 * packs the K of its task's (batch, head) into panels of 16 keys [dh][16]
 * (scaled queries meet them in register tiles of 6 rows x 16 keys, x 64 on
 * AVX-512) and its V rows side by side whenever the head changes; a task
 * takes a tile of query rows and walks the keys in chunks (256 keys, 1024
 * on AVX-512), keeping per query row a running maximum, sum and output
 * (online softmax), so no score matrix is ever written out and neither GEMM
 * call overhead nor packing of the probabilities is paid. Scratch: one
 * head's keys and values per worker. At the SD 1.5 shapes (4096 tokens, 8
 * heads of 40) the AVX2 kernel ran ~1.4x the GEMM-per-tile path of
 * attention.c, cross-attention ~2.5x (2 threads); on the AVX-512 Xeon the
 * AVX-512 kernel runs 190-194 GFLOP/s, the AVX2 one 94; at head size 64
 * (SD 2, SDXL) the output's 64 columns in one pass of 24 accumulators took
 * it from 111 to 121 GFLOP per CPU-second on one core of an Emerald Rapids
 * Xeon (4096 tokens, 5 heads; 98 -> 102 at 8 x 40). With bf16 precision
 * (fa_task16) the products take bf16 operands: VDPBF16PS on AVX512-BF16,
 * emulated in C otherwise. */
#include "ops/ops.h"
#include "ops/ops_util.h"
#include "core/cpu.h"
#include "core/half.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

enum {
  FA_R = 6,     /* query rows per register tile */
  FA_KP = 16,   /* keys per panel */
  FA_KC = 1024, /* keys per chunk at most: the score rows' stride (24 KiB for a tile) */
  FA_KC_AVX2 = 256, /* keys per chunk of the AVX2 and bf16 kernels; AVX-512 takes FA_KC
                       (fewer passes of online softmax: 1.1x at 4096 keys, measured here) */
  FA_QB = 48,   /* query rows per task */
  FA_MAX_DH = 256
};

typedef struct fa_job {
  int bf16;    /* 0: f32; 1: bf16 on AVX512-BF16; 2: the same arithmetic emulated in C; 3: on AMX */
  bool avx512; /* f32 products in zmm registers (the same sums in the same order) */
  atomic_int *cancel;
  atomic_int cancelled;
  const float *q, *k, *v;
  float *out;
  float *work; /* per worker: packed K [Tkp / 16][dh][16] (zero past Tk),
                  Q tile, O tile, max, sum, scores */
  int64_t ldq, ldk, ldv, ldo, Tq, Tk, Tkp, n_qt, n_tasks, per_worker;
  int heads, dh;
  float scale;
  atomic_llong next;
} fa_job;

/* K of (batch b, head h) -> panels [Tkp / 16][dh][16], zero past Tk. */
static void fa_pack(const fa_job *j, float *kt, int b, int h) {
  for (int64_t t = 0; t < j->Tkp; t++) {
    float *panel = kt + (t / FA_KP) * j->dh * FA_KP + t % FA_KP;
    if (t >= j->Tk) {
      for (int d = 0; d < j->dh; d++) panel[d * FA_KP] = 0.0f;
      continue;
    }
    const float *src = j->k + ((int64_t)b * j->Tk + t) * j->ldk + (int64_t)h * j->dh;
    for (int d = 0; d < j->dh; d++) panel[d * FA_KP] = src[d];
  }
}

/* S[r][0..16) = Q[r] . K panel, r < 6 */
__attribute__((target("avx2,fma"))) static void fa_scores(float *S, const float *Q, const float *kp, int dh) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
  __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  for (int d = 0; d < dh; d++) {
    __m256 k0 = _mm256_loadu_ps(kp + d * FA_KP), k1 = _mm256_loadu_ps(kp + d * FA_KP + 8);
    __m256 q;
    q = _mm256_broadcast_ss(Q + d), a00 = _mm256_fmadd_ps(q, k0, a00), a01 = _mm256_fmadd_ps(q, k1, a01);
    q = _mm256_broadcast_ss(Q + dh + d), a10 = _mm256_fmadd_ps(q, k0, a10), a11 = _mm256_fmadd_ps(q, k1, a11);
    q = _mm256_broadcast_ss(Q + 2 * dh + d), a20 = _mm256_fmadd_ps(q, k0, a20), a21 = _mm256_fmadd_ps(q, k1, a21);
    q = _mm256_broadcast_ss(Q + 3 * dh + d), a30 = _mm256_fmadd_ps(q, k0, a30), a31 = _mm256_fmadd_ps(q, k1, a31);
    q = _mm256_broadcast_ss(Q + 4 * dh + d), a40 = _mm256_fmadd_ps(q, k0, a40), a41 = _mm256_fmadd_ps(q, k1, a41);
    q = _mm256_broadcast_ss(Q + 5 * dh + d), a50 = _mm256_fmadd_ps(q, k0, a50), a51 = _mm256_fmadd_ps(q, k1, a51);
  }
  _mm256_storeu_ps(S, a00), _mm256_storeu_ps(S + 8, a01);
  _mm256_storeu_ps(S + FA_KC, a10), _mm256_storeu_ps(S + FA_KC + 8, a11);
  _mm256_storeu_ps(S + 2 * FA_KC, a20), _mm256_storeu_ps(S + 2 * FA_KC + 8, a21);
  _mm256_storeu_ps(S + 3 * FA_KC, a30), _mm256_storeu_ps(S + 3 * FA_KC + 8, a31);
  _mm256_storeu_ps(S + 4 * FA_KC, a40), _mm256_storeu_ps(S + 4 * FA_KC + 8, a41);
  _mm256_storeu_ps(S + 5 * FA_KC, a50), _mm256_storeu_ps(S + 5 * FA_KC + 8, a51);
}

/* O[r][c0 .. c0 + 8 nv) += P[r] V[.., c0 ..] over n keys for the 6 rows of a
 * register tile, nv = 1 or 2 vectors of 8 columns: 12 accumulators, each key
 * row of V read once per column block. */
__attribute__((target("avx2,fma"))) static void fa_pv6(float *O, int dh, const float *P, const float *V,
                                                      int64_t ldv, int n, int nv) {
  if (nv == 2) {
    __m256 a0 = _mm256_loadu_ps(O), a1 = _mm256_loadu_ps(O + 8);
    __m256 b0 = _mm256_loadu_ps(O + dh), b1 = _mm256_loadu_ps(O + dh + 8);
    __m256 c0 = _mm256_loadu_ps(O + 2 * dh), c1 = _mm256_loadu_ps(O + 2 * dh + 8);
    __m256 d0 = _mm256_loadu_ps(O + 3 * dh), d1 = _mm256_loadu_ps(O + 3 * dh + 8);
    __m256 e0 = _mm256_loadu_ps(O + 4 * dh), e1 = _mm256_loadu_ps(O + 4 * dh + 8);
    __m256 f0 = _mm256_loadu_ps(O + 5 * dh), f1 = _mm256_loadu_ps(O + 5 * dh + 8);
    for (int k = 0; k < n; k++) {
      const float *vr = V + k * ldv;
      __m256 x0 = _mm256_loadu_ps(vr), x1 = _mm256_loadu_ps(vr + 8), p;
      p = _mm256_broadcast_ss(P + k), a0 = _mm256_fmadd_ps(p, x0, a0), a1 = _mm256_fmadd_ps(p, x1, a1);
      p = _mm256_broadcast_ss(P + FA_KC + k), b0 = _mm256_fmadd_ps(p, x0, b0), b1 = _mm256_fmadd_ps(p, x1, b1);
      p = _mm256_broadcast_ss(P + 2 * FA_KC + k), c0 = _mm256_fmadd_ps(p, x0, c0), c1 = _mm256_fmadd_ps(p, x1, c1);
      p = _mm256_broadcast_ss(P + 3 * FA_KC + k), d0 = _mm256_fmadd_ps(p, x0, d0), d1 = _mm256_fmadd_ps(p, x1, d1);
      p = _mm256_broadcast_ss(P + 4 * FA_KC + k), e0 = _mm256_fmadd_ps(p, x0, e0), e1 = _mm256_fmadd_ps(p, x1, e1);
      p = _mm256_broadcast_ss(P + 5 * FA_KC + k), f0 = _mm256_fmadd_ps(p, x0, f0), f1 = _mm256_fmadd_ps(p, x1, f1);
    }
    _mm256_storeu_ps(O, a0), _mm256_storeu_ps(O + 8, a1);
    _mm256_storeu_ps(O + dh, b0), _mm256_storeu_ps(O + dh + 8, b1);
    _mm256_storeu_ps(O + 2 * dh, c0), _mm256_storeu_ps(O + 2 * dh + 8, c1);
    _mm256_storeu_ps(O + 3 * dh, d0), _mm256_storeu_ps(O + 3 * dh + 8, d1);
    _mm256_storeu_ps(O + 4 * dh, e0), _mm256_storeu_ps(O + 4 * dh + 8, e1);
    _mm256_storeu_ps(O + 5 * dh, f0), _mm256_storeu_ps(O + 5 * dh + 8, f1);
  } else {
    __m256 a0 = _mm256_loadu_ps(O), b0 = _mm256_loadu_ps(O + dh), c0 = _mm256_loadu_ps(O + 2 * dh);
    __m256 d0 = _mm256_loadu_ps(O + 3 * dh), e0 = _mm256_loadu_ps(O + 4 * dh), f0 = _mm256_loadu_ps(O + 5 * dh);
    for (int k = 0; k < n; k++) {
      __m256 x0 = _mm256_loadu_ps(V + k * ldv);
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + k), x0, a0);
      b0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + FA_KC + k), x0, b0);
      c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 2 * FA_KC + k), x0, c0);
      d0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 3 * FA_KC + k), x0, d0);
      e0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 4 * FA_KC + k), x0, e0);
      f0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 5 * FA_KC + k), x0, f0);
    }
    _mm256_storeu_ps(O, a0), _mm256_storeu_ps(O + dh, b0), _mm256_storeu_ps(O + 2 * dh, c0);
    _mm256_storeu_ps(O + 3 * dh, d0), _mm256_storeu_ps(O + 4 * dh, e0), _mm256_storeu_ps(O + 5 * dh, f0);
  }
}

/* AVX-512 (f32): the same products, one 16-key panel per zmm, up to four
 * panels (64 keys) per pass: S[r][0 .. 16 np) for np = 1..4, r < 6, with
 * 6 np accumulators. */
#define FA_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
__attribute__((target("avx512f"))) static void fa_scores512(float *S, const float *Q, const float *kp, int dh,
                                                           int np) {
  const float *k1p = kp + dh * FA_KP, *k2p = kp + 2 * dh * FA_KP, *k3p = kp + 3 * dh * FA_KP;
  __m512 z = _mm512_setzero_ps();
#define FA_DECL(r) __m512 a##r##0 = z, a##r##1 = z, a##r##2 = z, a##r##3 = z;
  FA_ROWS6(FA_DECL)
  if (np == 4) {
    for (int d = 0; d < dh; d++) {
      __m512 k0 = _mm512_loadu_ps(kp + d * FA_KP), k1 = _mm512_loadu_ps(k1p + d * FA_KP);
      __m512 k2 = _mm512_loadu_ps(k2p + d * FA_KP), k3 = _mm512_loadu_ps(k3p + d * FA_KP), q;
#define FA_S4(r)                                                                        \
  q = _mm512_set1_ps(Q[r * dh + d]), a##r##0 = _mm512_fmadd_ps(q, k0, a##r##0),         \
  a##r##1 = _mm512_fmadd_ps(q, k1, a##r##1), a##r##2 = _mm512_fmadd_ps(q, k2, a##r##2), \
  a##r##3 = _mm512_fmadd_ps(q, k3, a##r##3);
      FA_ROWS6(FA_S4)
    }
  } else if (np == 3) {
    for (int d = 0; d < dh; d++) {
      __m512 k0 = _mm512_loadu_ps(kp + d * FA_KP), k1 = _mm512_loadu_ps(k1p + d * FA_KP);
      __m512 k2 = _mm512_loadu_ps(k2p + d * FA_KP), q;
#define FA_S3(r) q = _mm512_set1_ps(Q[r * dh + d]), a##r##0 = _mm512_fmadd_ps(q, k0, a##r##0), \
                 a##r##1 = _mm512_fmadd_ps(q, k1, a##r##1), a##r##2 = _mm512_fmadd_ps(q, k2, a##r##2);
      FA_ROWS6(FA_S3)
    }
  } else if (np == 2) {
    for (int d = 0; d < dh; d++) {
      __m512 k0 = _mm512_loadu_ps(kp + d * FA_KP), k1 = _mm512_loadu_ps(k1p + d * FA_KP), q;
#define FA_S2(r) q = _mm512_set1_ps(Q[r * dh + d]), a##r##0 = _mm512_fmadd_ps(q, k0, a##r##0), \
                 a##r##1 = _mm512_fmadd_ps(q, k1, a##r##1);
      FA_ROWS6(FA_S2)
    }
  } else {
    for (int d = 0; d < dh; d++) {
      __m512 k0 = _mm512_loadu_ps(kp + d * FA_KP);
#define FA_S1(r) a##r##0 = _mm512_fmadd_ps(_mm512_set1_ps(Q[r * dh + d]), k0, a##r##0);
      FA_ROWS6(FA_S1)
    }
  }
#define FA_ST(r)                                             \
  _mm512_storeu_ps(S + r * FA_KC, a##r##0);                  \
  if (np > 1) _mm512_storeu_ps(S + r * FA_KC + 16, a##r##1); \
  if (np > 2) _mm512_storeu_ps(S + r * FA_KC + 32, a##r##2); \
  if (np > 3) _mm512_storeu_ps(S + r * FA_KC + 48, a##r##3);
  FA_ROWS6(FA_ST)
}

/* O[r][0 .. dh) += P[r] V over n keys, r < 6: columns in passes of up to
 * four zmm (64 columns, 24 accumulators, the last vector under a mask), so
 * that each key's probabilities are broadcast once per pass (head size 64
 * in one pass: a pass of 48 and one of 16 ran the second on 6 accumulators,
 * short of the FMA units' latency x width). */
__attribute__((target("avx512f"))) static void fa_pv512(float *O, int dh, const float *P, const float *V,
                                                       int64_t ldv, int n) {
  for (int c0 = 0; c0 < dh; c0 += 64) {
    int w = dh - c0 < 64 ? dh - c0 : 64, nv = (w + 15) / 16;
    const __mmask16 m = w % 16 ? (__mmask16)((1u << (w % 16)) - 1u) : (__mmask16)0xffff;
    const __mmask16 m0 = nv == 1 ? m : 0xffff, m1 = nv == 2 ? m : 0xffff, m2 = nv == 3 ? m : 0xffff, m3 = m;
    float *o = O + c0;
    const float *v = V + c0;
#define FA_LD(r)                                                                              \
  __m512 o##r##0 = _mm512_maskz_loadu_ps(m0, o + r * dh);                                     \
  __m512 o##r##1 = nv > 1 ? _mm512_maskz_loadu_ps(m1, o + r * dh + 16) : _mm512_setzero_ps(); \
  __m512 o##r##2 = nv > 2 ? _mm512_maskz_loadu_ps(m2, o + r * dh + 32) : _mm512_setzero_ps(); \
  __m512 o##r##3 = nv > 3 ? _mm512_maskz_loadu_ps(m3, o + r * dh + 48) : _mm512_setzero_ps();
    FA_ROWS6(FA_LD)
    if (nv == 4) {
      for (int k = 0; k < n; k++) {
        const float *vr = v + k * ldv;
        __m512 x0 = _mm512_loadu_ps(vr), x1 = _mm512_loadu_ps(vr + 16), x2 = _mm512_loadu_ps(vr + 32);
        __m512 x3 = _mm512_maskz_loadu_ps(m3, vr + 48), p;
#define FA_P4(r)                                                                        \
  p = _mm512_set1_ps(P[r * FA_KC + k]), o##r##0 = _mm512_fmadd_ps(p, x0, o##r##0),      \
  o##r##1 = _mm512_fmadd_ps(p, x1, o##r##1), o##r##2 = _mm512_fmadd_ps(p, x2, o##r##2), \
  o##r##3 = _mm512_fmadd_ps(p, x3, o##r##3);
        FA_ROWS6(FA_P4)
      }
    } else if (nv == 3) {
      for (int k = 0; k < n; k++) {
        const float *vr = v + k * ldv;
        __m512 x0 = _mm512_loadu_ps(vr), x1 = _mm512_loadu_ps(vr + 16), x2 = _mm512_maskz_loadu_ps(m2, vr + 32), p;
#define FA_P3(r) p = _mm512_set1_ps(P[r * FA_KC + k]), o##r##0 = _mm512_fmadd_ps(p, x0, o##r##0), \
                 o##r##1 = _mm512_fmadd_ps(p, x1, o##r##1), o##r##2 = _mm512_fmadd_ps(p, x2, o##r##2);
        FA_ROWS6(FA_P3)
      }
    } else if (nv == 2) {
      for (int k = 0; k < n; k++) {
        const float *vr = v + k * ldv;
        __m512 x0 = _mm512_loadu_ps(vr), x1 = _mm512_maskz_loadu_ps(m1, vr + 16), p;
#define FA_P2(r) p = _mm512_set1_ps(P[r * FA_KC + k]), o##r##0 = _mm512_fmadd_ps(p, x0, o##r##0), \
                 o##r##1 = _mm512_fmadd_ps(p, x1, o##r##1);
        FA_ROWS6(FA_P2)
      }
    } else {
      for (int k = 0; k < n; k++) {
        __m512 x0 = _mm512_maskz_loadu_ps(m0, v + k * ldv);
#define FA_P1(r) o##r##0 = _mm512_fmadd_ps(_mm512_set1_ps(P[r * FA_KC + k]), x0, o##r##0);
        FA_ROWS6(FA_P1)
      }
    }
#define FA_SV(r)                                                   \
  _mm512_mask_storeu_ps(o + r * dh, m0, o##r##0);                  \
  if (nv > 1) _mm512_mask_storeu_ps(o + r * dh + 16, m1, o##r##1); \
  if (nv > 2) _mm512_mask_storeu_ps(o + r * dh + 32, m2, o##r##2); \
  if (nv > 3) _mm512_mask_storeu_ps(o + r * dh + 48, m3, o##r##3);
    FA_ROWS6(FA_SV)
  }
}
#undef FA_DECL
#undef FA_S4
#undef FA_S3
#undef FA_S2
#undef FA_S1
#undef FA_ST
#undef FA_LD
#undef FA_P4
#undef FA_P3
#undef FA_P2
#undef FA_P1
#undef FA_SV
#undef FA_ROWS6

/* Online softmax over one chunk of n scores for the 6 rows of a register
 * tile: S rows become exp(s - new max), the running max, sum and output
 * rows are rescaled to the new max. */
static void fa_softmax(float *S, int n, float *mx, float *sum, float *O, int dh) {
  for (int r = 0; r < FA_R; r++) {
    float *row = S + r * FA_KC;
    float m = ops_row_max(row, n);
    float mn = m > mx[r] ? m : mx[r];
    float alpha = expf(mx[r] - mn); /* 0 on the first chunk */
    float s = ops_exp_sum(row, row, n, mn);
    sum[r] = sum[r] * alpha + s;
    mx[r] = mn;
    if (alpha != 1.0f) {
      float *o = O + r * dh;
      for (int d = 0; d < dh; d++) o[d] *= alpha;
    }
  }
}

/* out rows [q0, q0 + nq) of (b, h) = O / sum: the softmax's normalisation */
static void fa_write_out(const fa_job *j, int b, int h, int64_t q0, int nq, const float *O, const float *sum) {
  int dh = j->dh;
  for (int r = 0; r < nq; r++) {
    float *dst = j->out + ((int64_t)b * j->Tq + q0 + r) * j->ldo + (int64_t)h * dh;
    float inv = 1.0f / sum[r];
    for (int d = 0; d < dh; d++) dst[d] = O[r * dh + d] * inv;
  }
}

static void fa_task(const fa_job *j, int64_t task, float *work, int64_t *packed) {
  int dh = j->dh;
  int64_t bh = task / j->n_qt, q0 = task % j->n_qt * FA_QB;
  int b = (int)(bh / j->heads), h = (int)(bh % j->heads);
  int nq = (int)(j->Tq - q0 < FA_QB ? j->Tq - q0 : FA_QB);
  int ntile = (nq + FA_R - 1) / FA_R;
  float *kt = work, *vt = kt + j->Tkp * dh, *Q = vt + j->Tkp * dh, *O = Q + FA_QB * dh, *mx = O + FA_QB * dh;
  float *sum = mx + FA_QB, *S = sum + FA_QB;
  if (*packed != bh) { /* consecutive tasks mostly share the head */
    fa_pack(j, kt, b, h);
    for (int64_t t = 0; t < j->Tk; t++) /* V rows side by side: the chunk's keys in one run */
      memcpy(vt + t * dh, j->v + ((int64_t)b * j->Tk + t) * j->ldv + (int64_t)h * dh, sizeof(float) * (size_t)dh);
    *packed = bh;
  }
  /* scaled queries, zero rows past Tq; running max, sum and output */
  for (int r = 0; r < ntile * FA_R; r++) {
    float *qr = Q + r * dh;
    if (r < nq) {
      const float *src = j->q + ((int64_t)b * j->Tq + q0 + r) * j->ldq + (int64_t)h * dh;
      for (int d = 0; d < dh; d++) qr[d] = src[d] * j->scale;
    } else {
      memset(qr, 0, sizeof(float) * (size_t)dh);
    }
    mx[r] = -INFINITY;
    sum[r] = 0.0f;
    memset(O + r * dh, 0, sizeof(float) * (size_t)dh);
  }
  const int64_t kc = j->avx512 ? FA_KC : FA_KC_AVX2;
  for (int64_t k0 = 0; k0 < j->Tk; k0 += kc) {
    int n = (int)(j->Tk - k0 < kc ? j->Tk - k0 : kc);
    for (int t = 0; t < ntile; t++) {
      int r0 = t * FA_R;
      if (j->avx512) {
        for (int p = 0; p < n;) {
          int np = (n - p + FA_KP - 1) / FA_KP;
          np = np > 4 ? 4 : np;
          fa_scores512(S + p, Q + r0 * dh, kt + (k0 + p) * dh, dh, np);
          p += np * FA_KP;
        }
        fa_softmax(S, n, mx + r0, sum + r0, O + r0 * dh, dh);
        fa_pv512(O + r0 * dh, dh, S, vt + k0 * dh, dh, n);
        continue;
      }
      for (int p = 0; p < n; p += FA_KP) fa_scores(S + p, Q + r0 * dh, kt + (k0 + p) * dh, dh);
      fa_softmax(S, n, mx + r0, sum + r0, O + r0 * dh, dh);
      for (int c0 = 0; c0 < dh; c0 += 16)
        fa_pv6(O + r0 * dh + c0, dh, S, vt + k0 * dh + c0, dh, n, dh - c0 >= 16 ? 2 : 1);
    }
  }
  fa_write_out(j, b, h, q0, nq, O, sum);
}

/* ---- bf16 (ctx->precision bf16 with AVX512-BF16, or bf16-emulated) ------
 * The same order of work with the scaled queries, the keys, the
 * probabilities and the values rounded to bf16 and the products summed in
 * f32 (VDPBF16PS: two products per f32 lane); the softmax stays f32. Keys
 * are packed as pair words along dh [Tkp / 16][dh / 2][16], values as pairs
 * of consecutive keys [Tkp / 2][dh], queries and probabilities as pair words
 * along dh and along keys. The emulation adds each pair's odd product, then
 * its even one, as VDPBF16PS is specified. */
enum { FA_PW = FA_KC_AVX2 / 2 }; /* pair words per probability row */

static void fa_pack16(const fa_job *j, uint32_t *kt, uint32_t *vt, int b, int h) {
  int dp = j->dh / 2;
  for (int64_t t = 0; t < j->Tkp; t++) {
    uint32_t *panel = kt + (t / FA_KP) * dp * FA_KP + t % FA_KP;
    const float *src = t < j->Tk ? j->k + ((int64_t)b * j->Tk + t) * j->ldk + (int64_t)h * j->dh : NULL;
    for (int d = 0; d < dp; d++) panel[d * FA_KP] = src ? ldm_bf16_pair(src[2 * d], src[2 * d + 1]) : 0;
  }
  for (int64_t t = 0; t < j->Tkp; t += 2) {
    uint32_t *row = vt + (t / 2) * j->dh;
    const float *v0 = t < j->Tk ? j->v + ((int64_t)b * j->Tk + t) * j->ldv + (int64_t)h * j->dh : NULL;
    const float *v1 = t + 1 < j->Tk ? v0 + j->ldv : NULL;
    for (int c = 0; c < j->dh; c++) row[c] = ldm_bf16_pair(v0 ? v0[c] : 0.0f, v1 ? v1[c] : 0.0f);
  }
}

/* S[r][0 .. 16 np) = Q[r] . K panels (np = 1 or 2 panels of 16 keys), r < 6 */
static void fa_scores16_c(float *S, const uint32_t *Q, const uint32_t *kp, int dp, int np) {
  for (int r = 0; r < FA_R; r++)
    for (int c = 0; c < FA_KP * np; c++) {
      const uint32_t *k = kp + (c / FA_KP) * dp * FA_KP + c % FA_KP;
      float acc = 0.0f;
      for (int d = 0; d < dp; d++) {
        uint32_t q = Q[r * dp + d], kw = k[d * FA_KP];
        acc = fmaf(ldm_bf16_pair_hi(q), ldm_bf16_pair_hi(kw), acc);
        acc = fmaf(ldm_bf16_pair_lo(q), ldm_bf16_pair_lo(kw), acc);
      }
      S[r * FA_KC + c] = acc;
    }
}

/* O[r][0 .. dh) += P[r] . V over np key pairs, r < 6 */
static void fa_pv16_c(float *O, int dh, const uint32_t *P, const uint32_t *V, int np) {
  for (int r = 0; r < FA_R; r++)
    for (int c = 0; c < dh; c++) {
      float acc = O[r * dh + c];
      for (int k = 0; k < np; k++) {
        uint32_t pw = P[r * FA_PW + k], vw = V[(int64_t)k * dh + c];
        acc = fmaf(ldm_bf16_pair_hi(pw), ldm_bf16_pair_hi(vw), acc);
        acc = fmaf(ldm_bf16_pair_lo(pw), ldm_bf16_pair_lo(vw), acc);
      }
      O[r * dh + c] = acc;
    }
}

/* P[r][0 .. (n + 1) / 2) = S[r][0 .. n) as pair words, zero past n, r < 6 */
static void fa_round_c(uint32_t *P, const float *S, int n) {
  for (int r = 0; r < FA_R; r++)
    for (int k = 0; k < (n + 1) / 2; k++)
      P[r * FA_PW + k] = ldm_bf16_pair(S[r * FA_KC + 2 * k], 2 * k + 1 < n ? S[r * FA_KC + 2 * k + 1] : 0.0f);
}

__attribute__((target("avx512f,avx512bf16"))) static void fa_scores16_avx512(float *S, const uint32_t *Q,
                                                                            const uint32_t *kp, int dp, int np) {
  const uint32_t *kq = kp + dp * FA_KP;
  __m512 a[FA_R], c[FA_R];
  for (int r = 0; r < FA_R; r++) a[r] = c[r] = _mm512_setzero_ps();
  if (np == 2) {
    for (int d = 0; d < dp; d++) {
      __m512bh k0 = (__m512bh)_mm512_loadu_si512((const void *)(kp + d * FA_KP));
      __m512bh k1 = (__m512bh)_mm512_loadu_si512((const void *)(kq + d * FA_KP));
      for (int r = 0; r < FA_R; r++) {
        __m512bh q = (__m512bh)_mm512_set1_epi32((int)Q[r * dp + d]);
        a[r] = _mm512_dpbf16_ps(a[r], q, k0);
        c[r] = _mm512_dpbf16_ps(c[r], q, k1);
      }
    }
  } else {
    for (int d = 0; d < dp; d++) {
      __m512bh k0 = (__m512bh)_mm512_loadu_si512((const void *)(kp + d * FA_KP));
      for (int r = 0; r < FA_R; r++) a[r] = _mm512_dpbf16_ps(a[r], (__m512bh)_mm512_set1_epi32((int)Q[r * dp + d]), k0);
    }
  }
  for (int r = 0; r < FA_R; r++) {
    _mm512_storeu_ps(S + r * FA_KC, a[r]);
    if (np == 2) _mm512_storeu_ps(S + r * FA_KC + FA_KP, c[r]);
  }
}

__attribute__((target("avx512f,avx512bf16"))) static void fa_pv16_avx512(float *O, int dh, const uint32_t *P,
                                                                        const uint32_t *V, int np) {
  int c0 = 0;
  for (; c0 + 32 <= dh; c0 += 32) {
    __m512 a[FA_R], b[FA_R];
    for (int r = 0; r < FA_R; r++) a[r] = _mm512_loadu_ps(O + r * dh + c0), b[r] = _mm512_loadu_ps(O + r * dh + c0 + 16);
    for (int k = 0; k < np; k++) {
      __m512bh v0 = (__m512bh)_mm512_loadu_si512((const void *)(V + (int64_t)k * dh + c0));
      __m512bh v1 = (__m512bh)_mm512_loadu_si512((const void *)(V + (int64_t)k * dh + c0 + 16));
      for (int r = 0; r < FA_R; r++) {
        __m512bh p = (__m512bh)_mm512_set1_epi32((int)P[r * FA_PW + k]);
        a[r] = _mm512_dpbf16_ps(a[r], p, v0);
        b[r] = _mm512_dpbf16_ps(b[r], p, v1);
      }
    }
    for (int r = 0; r < FA_R; r++) _mm512_storeu_ps(O + r * dh + c0, a[r]), _mm512_storeu_ps(O + r * dh + c0 + 16, b[r]);
  }
  for (; c0 < dh; c0 += 16) { /* 8 .. 24 columns left: 16 at a time, masked */
    __mmask16 m = (__mmask16)(dh - c0 >= 16 ? 0xffffu : (1u << (dh - c0)) - 1);
    __m512 a[FA_R];
    for (int r = 0; r < FA_R; r++) a[r] = _mm512_maskz_loadu_ps(m, O + r * dh + c0);
    for (int k = 0; k < np; k++) {
      __m512bh v0 = (__m512bh)_mm512_maskz_loadu_epi32(m, V + (int64_t)k * dh + c0);
      for (int r = 0; r < FA_R; r++) a[r] = _mm512_dpbf16_ps(a[r], (__m512bh)_mm512_set1_epi32((int)P[r * FA_PW + k]), v0);
    }
    for (int r = 0; r < FA_R; r++) _mm512_mask_storeu_ps(O + r * dh + c0, m, a[r]);
  }
}

__attribute__((target("avx512f,avx512bf16"))) static void fa_round_avx512(uint32_t *P, const float *S, int n) {
  for (int r = 0; r < FA_R; r++)
    for (int k = 0; k < n; k += 32) {
      int left = n - k;
      __mmask16 lo = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1);
      __mmask16 hi = (__mmask16)(left >= 32 ? 0xffffu : left > 16 ? (1u << (left - 16)) - 1 : 0);
      __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, S + r * FA_KC + k + 16),
                                               _mm512_maskz_loadu_ps(lo, S + r * FA_KC + k));
      _mm512_storeu_si512((void *)(P + r * FA_PW + k / 2), w);
    }
}

/* The three bf16 micro-kernels, native or emulated. */
typedef struct fa16_kernels {
  void (*scores)(float *S, const uint32_t *Q, const uint32_t *kp, int dp, int np);
  void (*round)(uint32_t *P, const float *S, int n);
  void (*pv)(float *O, int dh, const uint32_t *P, const uint32_t *V, int np);
} fa16_kernels;

static const fa16_kernels fa16_native = {fa_scores16_avx512, fa_round_avx512, fa_pv16_avx512};
static const fa16_kernels fa16_emulated = {fa_scores16_c, fa_round_c, fa_pv16_c};

static void fa_task16(const fa_job *j, int64_t task, float *work, int64_t *packed) {
  int dh = j->dh, dp = dh / 2;
  const fa16_kernels *kn = j->bf16 == 1 ? &fa16_native : &fa16_emulated;
  int64_t bh = task / j->n_qt, q0 = task % j->n_qt * FA_QB;
  int b = (int)(bh / j->heads), h = (int)(bh % j->heads);
  int nq = (int)(j->Tq - q0 < FA_QB ? j->Tq - q0 : FA_QB);
  int ntile = (nq + FA_R - 1) / FA_R;
  uint32_t *kt = (uint32_t *)work, *vt = kt + j->Tkp * dp, *Q = vt + j->Tkp * dp;
  float *O = (float *)(Q + FA_QB * dp), *mx = O + FA_QB * dh, *sum = mx + FA_QB, *S = sum + FA_QB;
  uint32_t *P = (uint32_t *)(S + FA_R * FA_KC);
  if (*packed != bh) {
    fa_pack16(j, kt, vt, b, h);
    *packed = bh;
  }
  for (int r = 0; r < ntile * FA_R; r++) {
    const float *src = r < nq ? j->q + ((int64_t)b * j->Tq + q0 + r) * j->ldq + (int64_t)h * dh : NULL;
    for (int d = 0; d < dp; d++)
      Q[r * dp + d] = src ? ldm_bf16_pair(src[2 * d] * j->scale, src[2 * d + 1] * j->scale) : 0;
    mx[r] = -INFINITY;
    sum[r] = 0.0f;
    memset(O + r * dh, 0, sizeof(float) * (size_t)dh);
  }
  for (int64_t k0 = 0; k0 < j->Tk; k0 += FA_KC_AVX2) {
    int n = (int)(j->Tk - k0 < FA_KC_AVX2 ? j->Tk - k0 : FA_KC_AVX2);
    for (int t = 0; t < ntile; t++) {
      int r0 = t * FA_R;
      for (int p = 0; p < n; p += 2 * FA_KP) {
        kn->scores(S + p, Q + r0 * dp, kt + (k0 + p) * dp, dp, n - p > FA_KP ? 2 : 1);
      }
      fa_softmax(S, n, mx + r0, sum + r0, O + r0 * dh, dh);
      kn->round(P, S, n);
      kn->pv(O + r0 * dh, dh, P, vt + (k0 / 2) * dh, (n + 1) / 2);
    }
  }
  fa_write_out(j, b, h, q0, nq, O, sum);
}

/* ---- bf16 on AMX tiles (mode 3) ------------------------------------------
 * The same order of work in tiles: 32 query rows per task (two A tiles of
 * the scaled queries, dh padded to 32), keys in chunks of FA_AC: S = Q K^T
 * into an f32 block (K as bf16 panels of 16 keys, pairs along dh), online
 * softmax in f32 as above, the probabilities rounded into A tiles, and O
 * (f32, dh padded to 32) += P V through the tiles (V as panels of 16
 * columns, pairs of consecutive keys). The products are exact bf16 x bf16
 * sums in f32 as on VDPBF16PS; the exponentials and the rounding now take
 * most of the time. */
enum { FA_AC = 256, FA_AQ = 32 };

static int64_t round32(int64_t n) { return (n + 31) / 32 * 32; }

static void *fa_align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

static void fa_pack_amx(const fa_job *j, uint32_t *kp, uint32_t *vp, int b, int h, int64_t Tk32, int dhp) {
  int dh = j->dh;
  for (int64_t t = 0; t < Tk32; t++) { /* K: panels of 16 keys [dhp / 2][16] */
    uint32_t *d = kp + (t / 16) * (dhp / 2) * 16 + t % 16;
    const float *src = t < j->Tk ? j->k + ((int64_t)b * j->Tk + t) * j->ldk + (int64_t)h * dh : NULL;
    for (int p = 0; p < dhp / 2; p++)
      d[p * 16] = src && 2 * p < dh ? ldm_bf16_pair(src[2 * p], 2 * p + 1 < dh ? src[2 * p + 1] : 0.0f) : 0;
  }
  for (int c = 0; c < dhp; c++) { /* V: panels of 16 columns [Tk32 / 2][16] */
    uint32_t *d = vp + (int64_t)(c / 16) * (Tk32 / 2) * 16 + c % 16;
    for (int64_t p = 0; p < Tk32 / 2; p++) {
      int64_t t0 = 2 * p, t1 = 2 * p + 1;
      float v0 = c < dh && t0 < j->Tk ? j->v[((int64_t)b * j->Tk + t0) * j->ldv + (int64_t)h * dh + c] : 0.0f;
      float v1 = c < dh && t1 < j->Tk ? j->v[((int64_t)b * j->Tk + t1) * j->ldv + (int64_t)h * dh + c] : 0.0f;
      d[p * 16] = ldm_bf16_pair(v0, v1);
    }
  }
}

static void fa_task_amx(const fa_job *j, int64_t task, float *work, int64_t *packed) {
  int dh = j->dh, dhp = (int)round32(dh), qks = dhp / 32;
  int64_t Tk32 = round32(j->Tk);
  int64_t bh = task / j->n_qt, q0 = task % j->n_qt * FA_AQ;
  int b = (int)(bh / j->heads), h = (int)(bh % j->heads);
  int nq = (int)(j->Tq - q0 < FA_AQ ? j->Tq - q0 : FA_AQ);
  uint32_t *kp = fa_align64(work), *vp = kp + Tk32 * dhp / 2;
  uint16_t *qt = (uint16_t *)(vp + Tk32 * dhp / 2), *pt = qt + FA_AQ * dhp;
  float *S = (float *)(pt + FA_AQ * FA_AC), *O = S + FA_AQ * FA_AC, *mx = O + FA_AQ * dhp, *sum = mx + FA_AQ;
  const int64_t kstride = (int64_t)dhp / 2 * 16, vstride = Tk32 / 2 * 16; /* words per panel */
  if (*packed != bh) {
    fa_pack_amx(j, kp, vp, b, h, Tk32, dhp);
    *packed = bh;
  }
  for (int r = 0; r < FA_AQ; r++) {
    const float *src = r < nq ? j->q + ((int64_t)b * j->Tq + q0 + r) * j->ldq + (int64_t)h * dh : NULL;
    for (int st = 0; st < qks; st++)
      ops_amx_round32(qt + ((r / 16) * qks + st) * 512 + (r % 16) * 32, src ? src + 32 * st : NULL,
                      src ? (dh - 32 * st < 32 ? dh - 32 * st : 32) : 0, j->scale);
    mx[r] = -INFINITY;
    sum[r] = 0.0f;
  }
  memset(O, 0, sizeof(float) * FA_AQ * (size_t)dhp);
  for (int64_t k0 = 0; k0 < j->Tk; k0 += FA_AC) {
    int n = (int)(j->Tk - k0 < FA_AC ? j->Tk - k0 : FA_AC), ncp = (int)round32(n), pks = ncp / 32;
    for (int c = 0; c < ncp; c += 32) {
      const uint32_t *b0 = kp + (k0 + c) / 16 * kstride;
      ops_amx_tile32(qt, qt + qks * 512, b0, b0 + kstride, qks, NULL, 0, S + c, FA_AC);
    }
    for (int r = 0; r < nq; r++) {
      float *row = S + r * FA_AC;
      float m = ops_row_max(row, n), mn = m > mx[r] ? m : mx[r];
      float alpha = expf(mx[r] - mn); /* 0 on the first chunk */
      sum[r] = sum[r] * alpha + ops_exp_sum(row, row, n, mn);
      mx[r] = mn;
      if (alpha != 1.0f)
        for (int d = 0; d < dh; d++) O[r * dhp + d] *= alpha;
    }
    for (int r = 0; r < FA_AQ; r++)
      for (int st = 0; st < pks; st++)
        ops_amx_round32(pt + ((r / 16) * pks + st) * 512 + (r % 16) * 32, S + r * FA_AC + 32 * st,
                        r < nq ? (n - 32 * st < 32 ? n - 32 * st : 32) : 0, 1.0f);
    for (int c = 0; c < dhp; c += 32) {
      const uint32_t *b0 = vp + (c / 16) * vstride + k0 / 2 * 16;
      ops_amx_tile32(pt, pt + pks * 512, b0, b0 + vstride, pks, O + c, dhp, O + c, dhp);
    }
  }
  for (int r = 0; r < nq; r++) {
    float *dst = j->out + ((int64_t)b * j->Tq + q0 + r) * j->ldo + (int64_t)h * dh;
    float inv = 1.0f / sum[r];
    for (int d = 0; d < dh; d++) dst[d] = O[r * dhp + d] * inv;
  }
}

static void fa_worker(void *user, int64_t w) {
  fa_job *j = user;
  float *work = j->work + w * j->per_worker;
  int64_t packed = -1; /* the (batch, head) whose K is in this worker's buffer */
  if (j->bf16 == 3) ops_amx_tiles_begin();
  for (;;) {
    if (j->cancel && atomic_load(j->cancel)) {
      atomic_store(&j->cancelled, 1);
      break;
    }
    int64_t task = atomic_fetch_add(&j->next, 1);
    if (task >= j->n_tasks) break;
    if (j->bf16 == 3)
      fa_task_amx(j, task, work, &packed);
    else if (j->bf16)
      fa_task16(j, task, work, &packed);
    else fa_task(j, task, work, &packed);
  }
  if (j->bf16 == 3) ops_amx_tiles_end();
}

/* 0 f32, 1 native bf16, 2 emulated bf16, 3 bf16 on AMX (see fa_job.bf16).
 * On CPUs with AMX the VDPBF16PS kernel is never taken: they (Sapphire
 * Rapids and later) issue it at half their f32 FMA rate. */
static int fa_mode(const ldm_ctx *ctx) {
  if (ctx->precision == LDM_PRECISION_BF16_EMULATED) return 2;
  if (ops_amx_active(ctx)) return 3;
  return ctx->precision == LDM_PRECISION_BF16 && ldm_cpu_has_avx512bf16() ? 1 : 0;
}

/* Floats (or pair words) per worker: packed K (and V), query and output
 * tiles, max and sum, scores (and probabilities). */
static int64_t fa_per_worker(int mode, int64_t Tkp, int dh) {
  if (mode == 3) {
    int64_t Tk32 = round32(Tkp), dhp = round32(dh);
    return Tk32 * dhp + FA_AQ * dhp / 2 + FA_AQ * FA_AC / 2 + FA_AQ * FA_AC + FA_AQ * dhp + 2 * FA_AQ + 32;
  }
  if (mode == 0) return 2 * Tkp * dh + 2 * FA_QB * dh + 2 * FA_QB + FA_R * FA_KC;
  return Tkp * dh + FA_QB * dh / 2 + FA_QB * dh + 2 * FA_QB + FA_R * FA_KC + FA_R * FA_PW;
}

size_t ops_attention_fused_bytes(ldm_ctx *ctx, int B, int64_t Tk, int heads, int dh, bool causal) {
  if (causal || dh % 8 != 0 || dh > FA_MAX_DH || !ldm_cpu_has_avx2() || !ldm_cpu_has_fma()) return 0;
  (void)B, (void)heads;
  int workers = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  int64_t Tkp = (Tk + FA_KP - 1) / FA_KP * FA_KP;
  size_t per_worker = (size_t)fa_per_worker(fa_mode(ctx), Tkp, dh);
  return (size_t)workers * per_worker * sizeof(float) + sizeof(fa_job) + 256;
}

ldm_status ops_attention_fused(ldm_ctx *ctx, float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int B, int64_t Tq, int64_t Tk, int heads,
                               int dh) {
  int workers = ctx->pool ? ldm_pool_size(ctx->pool) : 1;
  int64_t Tkp = (Tk + FA_KP - 1) / FA_KP * FA_KP;
  int mode = fa_mode(ctx);
  int64_t per_worker = fa_per_worker(mode, Tkp, dh);
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  fa_job *j = ldm_arena_alloc(ctx->scratch, sizeof *j);
  float *work = ldm_arena_floats(ctx->scratch, (size_t)workers * (size_t)per_worker);
  if (!j || !work) {
    ldm_arena_reset(ctx->scratch, mark);
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "attention: no scratch for %d workers' packed keys (%lld x %d)",
                    workers, (long long)Tkp, dh);
  }
  j->bf16 = mode;
  j->avx512 = ldm_cpu_has_avx512();
  j->q = q, j->k = k, j->v = v, j->out = out, j->work = work;
  j->ldq = ldq, j->ldk = ldk, j->ldv = ldv, j->ldo = ldo, j->Tq = Tq, j->Tk = Tk, j->Tkp = Tkp;
  j->n_qt = mode == 3 ? (Tq + FA_AQ - 1) / FA_AQ : (Tq + FA_QB - 1) / FA_QB;
  j->n_tasks = (int64_t)B * heads * j->n_qt;
  j->per_worker = per_worker;
  j->heads = heads, j->dh = dh;
  j->scale = 1.0f / sqrtf((float)dh);
  j->cancel = ctx->cancel;
  atomic_init(&j->cancelled, 0);
  atomic_init(&j->next, 0);
  if (workers > j->n_tasks) workers = (int)j->n_tasks;
  ldm_pool_for(workers > 1 ? ctx->pool : NULL, workers, fa_worker, j);
  bool cancelled = atomic_load(&j->cancelled);
  ldm_arena_reset(ctx->scratch, mark);
  return cancelled ? ldm_fail(ctx->err, LDM_ERR_CANCELLED, "attention: cancelled") : LDM_OK;
}

#else /* no x86: the GEMM path of attention.c only */

size_t ops_attention_fused_bytes(ldm_ctx *ctx, int B, int64_t Tk, int heads, int dh, bool causal) {
  (void)ctx, (void)B, (void)Tk, (void)heads, (void)dh, (void)causal;
  return 0;
}

ldm_status ops_attention_fused(ldm_ctx *ctx, float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int B, int64_t Tq, int64_t Tk, int heads,
                               int dh) {
  (void)out, (void)ldo, (void)q, (void)ldq, (void)k, (void)ldk, (void)v, (void)ldv, (void)B, (void)Tq, (void)Tk,
      (void)heads, (void)dh;
  return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "attention: no fused kernel for this CPU");
}
#endif
