/* Helpers shared by the op files (not part of the op API): weight views in
 * f32 (converting into scratch when stored as f16/bf16) and checks. */
#ifndef LDM_OPS_UTIL_H
#define LDM_OPS_UTIL_H

#include "core/arena.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "core/wcache.h"

/* f32 view of the first n elements of a float tensor: the tensor's own data
 * when it is f32, else a copy converted into ctx->scratch (the caller owns
 * the arena mark). NULL with ctx->err set on error. */
const float *ops_weight_f32(ldm_ctx *ctx, const ldm_tensor *t, int64_t n);

/* t itself when its data is aligned for its dtype, else *copy: the same
 * tensor with its bytes copied into ctx->scratch (file data may be
 * unaligned). NULL with ctx->err set when scratch runs out. */
const ldm_tensor *ops_aligned(ldm_ctx *ctx, const ldm_tensor *t,
                              ldm_tensor *copy);

/* A weight's prepared form (n floats: converted, packed, transformed) from
 * ctx's weight cache, made there by prep on first use. prep(ctx, dst, wa,
 * user) fills dst from wa (w, aligned: ops_aligned) and returns false with
 * ctx->err set when it fails. Without a cache, over its limit or with its
 * table full the form is made in ctx->scratch (the caller owns the arena
 * mark), unless cache_only: then NULL without an error (forms that pay only
 * when kept: the caller takes another way). NULL with ctx->err set on
 * error. */
typedef bool (*ops_prep_fn)(ldm_ctx *ctx, float *dst, const ldm_tensor *wa, const void *user);
const float *ops_prepared(ldm_ctx *ctx, const ldm_tensor *w, ldm_wcache_kind kind, size_t n, ops_prep_fn prep,
                          const void *user, bool cache_only);

/* Error unless t holds a float dtype and exactly n elements. */
ldm_status ops_check_float(ldm_ctx *ctx, const ldm_tensor *t, int64_t n,
                           const char *op, const char *what);

/* C [M, N] = A [M, K] (row stride lda) W^T, W the first N*K elements of w
 * (f32/f16/bf16, aligned: ops_aligned) as rows [N][K], widened chunk by chunk
 * inside the product (gemm.c): for products bound by the weight's traffic
 * (few rows of A). */
ldm_status ops_gemm_stream(ldm_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                           const ldm_tensor *w, float *C, int64_t ldc);

/* Few-row products against weights kept as panels in the weight cache
 * (gemm_panels.c), in the weight's width (t: f16 and bf16 as 16-bit panels,
 * others f32): usable when ctx has a cache, its products run in f32, M <=
 * LDM_PANEL_MAX_ROWS and the CPU has AVX-512 or AVX2+FMA+F16C. ops_weight_panels: w's panels
 * (rows [N][K]) from the cache, made there on first use; NULL (no error)
 * when the cache cannot take them. ops_gemm_panels: C [M, N] = A [M, K] W^T.
 * ops_panels_build: panels of W [N][K] (f32, values of type t) into P
 * (ops_panels_floats floats). */
#define LDM_PANEL_MAX_ROWS 256
bool ops_panels_usable(const ldm_ctx *ctx, int64_t M);
size_t ops_panels_floats(ldm_dtype t, int64_t N, int64_t K);
void ops_panels_build(ldm_ctx *ctx, float *P, ldm_dtype t, const float *W, int64_t N, int64_t K);
const float *ops_weight_panels(ldm_ctx *ctx, const ldm_tensor *w, int64_t N, int64_t K);
void ops_gemm_panels(ldm_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P,
                     ldm_dtype t, float *C, int64_t ldc);

/* Products against a weight that is not kept as panels (gemm_panels.c;
 * linear layers use it up to LDM_GEMM_WIDE_MAX_ROWS rows, OpenBLAS on the
 * widened weight is as fast from ~2048 on): C [M, N] = A [M, K] W^T, W the
 * first N*K elements of w
 * (f32/f16/bf16, aligned: ops_aligned) as rows [N][K], packed into f32
 * panels per call, a chunk at a time, and multiplied by the panel tiles.
 * Usable where ops_gemm_panels' tiles are and the products run in f32. */
#define LDM_GEMM_WIDE_MAX_ROWS 1536
bool ops_gemm_wide_usable(const ldm_ctx *ctx);
ldm_status ops_gemm_wide(ldm_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const ldm_tensor *w, float *C, int64_t ldc);

/* Fused attention (attention_fused.c): the scratch bytes it needs for these
 * sizes, or 0 where it does not apply (causal, head size not a multiple of 8
 * or above 256, no AVX2+FMA); then the op itself (ldm_attention_ex's
 * arguments, already checked). */
size_t ops_attention_fused_bytes(ldm_ctx *ctx, int B, int64_t Tk, int heads, int dh, bool causal);
ldm_status ops_attention_fused(ldm_ctx *ctx, float *out, int64_t ldo, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int B, int64_t Tq, int64_t Tk, int heads,
                               int dh);

/* ---- AMX bf16 products (gemm_amx.c) ------------------------------------
 * Weights as packed bf16 panels for TDPBF16PS: rows [N][K] of W in groups
 * of 16, K padded to a multiple of 32 (Kp) and taken in pairs, N padded to
 * a multiple of 32; ops_amx_panels_words(N, K) 32-bit words. */
typedef struct ops_amx_panels {
  const uint32_t *w;
  int64_t N, K, Kp;
} ops_amx_panels;
/* True when this build has the AMX kernel (x86-64 with a compiler that
 * knows AMX); ops_amx_active: and ctx's precision is bf16 and the CPU and
 * OS let this process use AMX (ldm_cpu_has_amx_bf16). */
bool ops_amx_built(void);
bool ops_amx_active(const ldm_ctx *ctx);
int64_t ops_amx_np(int64_t N);
int64_t ops_amx_kp(int64_t K);
size_t ops_amx_panels_words(int64_t N, int64_t K);
/* Panels of an f32 matrix B (rows [N][K] when trans_b, else [K][N]) into
 * panels (ops_amx_panels_words(N, K) words), in parallel. */
ldm_status ops_amx_pack_matrix(ldm_ctx *ctx, uint32_t *panels, const float *B, int64_t ldb, bool trans_b, int64_t N,
                               int64_t K);
/* Panels of a weight tensor (f32/f16/bf16) read as rows [N][K]; taps > 1:
 * a conv weight [N, K / taps, kh, kw] whose rows are taken in (tap, ci)
 * order, as the channels-last image's columns. From ctx->wcache when it has
 * (or can take) them, else made in ctx->scratch (the caller resets). */
ldm_status ops_amx_weight(ldm_ctx *ctx, const ldm_tensor *w, int64_t N, int64_t K, int taps, ops_amx_panels *out);
/* C [M, N] = alpha * A [M, K] W^T + beta * C (+ bias [N], f32, or NULL);
 * beta 0 never reads C. Threaded over ctx->pool. */
ldm_status ops_amx_gemm(ldm_ctx *ctx, int64_t M, float alpha, const float *A, int64_t lda, const ops_amx_panels *P,
                        float beta, float *C, int64_t ldc, const float *bias);
/* Convolution on channels-last x [B, H*W, Cin] with Cin % 32 == 0: the rows
 * of A gathered from x per output pixel (no im2col buffer), P the weight's
 * panels (taps = kh * kw); y [B, Ho*Wo, N] (+ bias). */
ldm_status ops_amx_conv(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin, int kh, int kw,
                        int stride, int pad, const ops_amx_panels *P, const float *bias);

/* The AMX micro-kernel for ops that pack their own tiles (attention): a
 * thread calls ops_amx_tiles_begin (8 tiles of 16 rows x 64 bytes) before,
 * ops_amx_tiles_end after. ops_amx_tile32: out[32][32] (row stride out_ld
 * floats) = acc (or 0 when NULL) + A B over ks steps of 32 K: A rows 0-15 at
 * a0, 16-31 at a1, step s at + 512 bf16 ([16][32] each); B columns 0-15 at
 * b0, 16-31 at b1, step s at + 256 pair words ([16 pairs][16]).
 * ops_amx_round32: 32 bf16 = n floats (the rest 0) times scale; dst 64-byte
 * aligned. Only where ops_amx_active. */
void ops_amx_tiles_begin(void);
void ops_amx_tiles_end(void);
void ops_amx_tile32(const uint16_t *a0, const uint16_t *a1, const uint32_t *b0, const uint32_t *b1, int ks,
                    const float *acc, int64_t acc_ld, float *out, int64_t out_ld);
void ops_amx_round32(uint16_t *dst, const float *src, int n, float scale);

/* Number of pool tasks for n elements of about `grain` each. */
static inline int64_t ops_tasks(int64_t n, int64_t grain) {
  int64_t t = (n + grain - 1) / grain;
  return t < 1 ? 1 : t;
}

/* y[r, :] += bias[:] over rows x C (f32 bias), parallel over rows. */
void ops_add_bias_f32(ldm_ctx *ctx, float *y, int64_t rows, int C,
                      const float *bias);

/* Row kernels (vmath.c): AVX2+FMA when the CPU has it, libm otherwise.
 * y may alias x. */
typedef enum ops_act {
  OPS_ACT_SILU,
  OPS_ACT_GELU,
  OPS_ACT_GELU_TANH,
  OPS_ACT_QUICK_GELU
} ops_act;
void ops_act_row(ops_act kind, float *y, const float *x, int64_t n);
void ops_act_row_naive(ops_act kind, float *y, const float *x, int64_t n);
/* y = h * gelu(g) (exact gelu) */
void ops_geglu_row(float *y, const float *h, const float *g, int64_t n);
float ops_row_max(const float *x, int64_t n);
/* *sum = sum of x, *ssd = sum of (x - m)^2, in double */
void ops_row_moments(const float *x, int64_t n, double m, double *sum,
                     double *ssd);
/* y = exp(x - m); returns the sum of y */
float ops_exp_sum(float *y, const float *x, int64_t n, float m);
/* Softmax of one row (an all -inf row gives zeros). */
void ops_softmax_row(float *y, const float *x, int64_t n);

/* What a convolution does to its result before it is stored:
 * y = relu?(conv + res), res [B, Ho*Wo, Cout] like y (NULL: none), not
 * overlapping y or the convolution's input. */
typedef struct ops_epilogue {
  const float *res;
  bool relu;
} ops_epilogue;

/* 3x3, stride 1, padding 1 by Winograd F(m x m, 3x3), m = 2 or 4
 * (winograd.c); U is the transformed kernel [(m+2)^2, Cout, Cin]
 * (ops_winograd_weights with the same m) or, with panels, the same as f32
 * panels per point (ops_winograd_panels: for ops_panels_usable(ctx, tiles)
 * where ops_winograd_own_kernel is false); bias f32 [Cout] or NULL; ep NULL
 * or applied in the output transform. */
ldm_status ops_conv3x3_winograd(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin, int Cout,
                                const float *U, bool panels, const float *bias, const ops_epilogue *ep,
                                size_t max_scratch_bytes, int m);
/* w [Cout, Cin, 3, 3] (f32/f16/bf16, aligned: ops_aligned) -> U [(m+2)^2,
 * Cout, Cin] f32, parallel over Cout. */
void ops_winograd_weights(ldm_ctx *ctx, float *U, const ldm_tensor *w, int Cin, int Cout, int m);
/* True when F(m x m) at these channels runs on the fused own kernel (its
 * transformed weights fit in cache), which takes U, never panels. */
bool ops_winograd_own_kernel(int Cin, int Cout, int m);
/* Floats of ops_winograd_panels' output; its U in f32 panels per point,
 * [(m+2)^2][ops_panels_floats(F32, Cout, Cin)]; false when the scratch
 * cannot hold U meanwhile (ctx->err says so). */
size_t ops_winograd_panels_floats(int Cin, int Cout, int m);
bool ops_winograd_panels(ldm_ctx *ctx, float *P, const ldm_tensor *w, int Cin, int Cout, int m);

#endif
