/* Neural-network ops on f32 activations, channels-last: an image batch is
 * [B, H*W, C] (row = pixel), a token batch is [B, T, D]. Weights are
 * ldm_tensors in their stored dtype (f32/f16/bf16) and PyTorch layout; ops
 * convert/pack them into ctx->scratch as needed and give the scratch back.
 * Output-first signatures: op(ctx, out, in, weights..., sizes...).
 * Each op returns LDM_OK or an error written to ctx->err. */
#ifndef LDM_OPS_OPS_H
#define LDM_OPS_OPS_H

/* Rules for callers (all ops):
 *  - Scratch: an op takes its temporaries from ctx->scratch and resets the
 *    arena to the mark it found, so the caller's earlier allocations stay
 *    valid and ldm_arena_in_use() is the same after the call (errors too).
 *    Worst cases: conv2d's im2col band or Winograd tiles (<=
 *    LDM_CONV2D_SCRATCH_BYTES, at least one row) plus its f32 weight (x16/9
 *    for Winograd F(2x2), x36/9 for F(4x4), twice when its own kernel
 *    repacks it); attention's score tiles or the fused kernel's packed keys
 *    (<= LDM_ATTN_SCORE_BYTES); f32 copies of f16/bf16 weights (not for
 *    streamed products: one chunk per thread); bf16 copies of A and B
 *    (cblas_sbgemm) or the own bf16 kernel's packed blocks (~1.2 MiB per
 *    thread) in the bf16 precisions.
 *  - Aliasing: y == x is allowed for group_norm, layer_norm, silu, gelu,
 *    quick_gelu, softmax and add (y may alias a or b); add_bias is in place.
 *    Outputs must not overlap inputs for linear, conv2d, attention, geglu,
 *    upsample, concat and the layout conversions.
 *  - Threads: loops run on ctx->pool (NULL = serial). OpenBLAS itself
 *    runs single-threaded: ldm_gemm cuts a large product into one piece
 *    per pool thread, and attention runs its tiles' GEMMs inside its pool
 *    tasks. Jobs may run at the same time, each on its own pool.
 *  - Weights: f32/f16/bf16, PyTorch layout, possibly unaligned file data.
 *  - Cancel: conv2d (per band or block of tiles) and attention (per tile)
 *    poll ctx->cancel and return LDM_ERR_CANCELLED. void ops cannot fail. */

#include <stdbool.h>
#include <stdint.h>
#include "core/tensor.h"
#include "core/threads.h"

/* ---- GEMM ---------------------------------------------------------------
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, the one
 * wrapper every matrix product goes through (cblas_sgemm underneath; a bf16
 * path behind the same call when selected and available). */
ldm_status ldm_gemm(ldm_ctx *ctx, bool trans_a, bool trans_b, int64_t M,
                    int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta,
                    float *C, int64_t ldc);

/* torch.nn.Linear: y[M, N] = x[M, K] * W[N, K]^T + b[N]. W/b any float dtype;
 * b may be NULL. */
ldm_status ldm_linear(ldm_ctx *ctx, float *y, const float *x, int64_t M,
                      const ldm_tensor *w, const ldm_tensor *b);

/* torch.nn.Conv2d (groups=1, dilation=1), channels-last:
 * x [B, H*W, Cin], w [Cout, Cin, kh, kw] (kh == kw in {1, 3} or any odd k),
 * b [Cout] or NULL, y [B, Ho*Wo, Cout] with Ho = (H + 2*pad - kh)/stride + 1.
 * Zero padding as PyTorch. */
ldm_status ldm_conv2d(ldm_ctx *ctx, float *y, const float *x, int B, int H,
                      int W, int Cin, const ldm_tensor *w, const ldm_tensor *b,
                      int stride, int pad);
static inline int ldm_conv_out(int in, int k, int stride, int pad) {
  return (in + 2 * pad - k) / stride + 1;
}

/* torch.nn.GroupNorm on [B, HW, C], optionally followed by SiLU (fused).
 * gamma/beta [C] (NULL = affine off). In-place allowed (y == x). */
ldm_status ldm_group_norm(ldm_ctx *ctx, float *y, const float *x, int B,
                          int64_t HW, int C, int groups, float eps,
                          const ldm_tensor *gamma, const ldm_tensor *beta,
                          bool silu);

/* GroupNorm in two halves, for callers that pool statistics over several
 * pieces of one image (tiled VAE decoding). ldm_group_norm_sums adds, per
 * (b, g), the sum and the sum of squares of x [B, HW, C] to sum / sumsq
 * [B, groups] (caller-zeroed, double). From them, with n = HW * C / groups
 * over all pieces: mean = sum / n, rstd = 1 / sqrt(sumsq / n - mean^2 +
 * eps). ldm_group_norm_apply then normalizes with those [B, groups] values
 * as ldm_group_norm does (affine, optional SiLU; in-place allowed). */
ldm_status ldm_group_norm_sums(ldm_ctx *ctx, double *sum, double *sumsq,
                               const float *x, int B, int64_t HW, int C,
                               int groups);
ldm_status ldm_group_norm_apply(ldm_ctx *ctx, float *y, const float *x, int B,
                                int64_t HW, int C, int groups,
                                const float *mean, const float *rstd,
                                const ldm_tensor *gamma,
                                const ldm_tensor *beta, bool silu);

/* torch.nn.LayerNorm over the last dim of [rows, C]. In-place allowed. */
ldm_status ldm_layer_norm(ldm_ctx *ctx, float *y, const float *x, int64_t rows,
                          int C, float eps, const ldm_tensor *gamma,
                          const ldm_tensor *beta);

/* Element-wise activations, in-place allowed. */
void ldm_silu(ldm_ctx *ctx, float *y, const float *x, int64_t n);
void ldm_gelu(ldm_ctx *ctx, float *y, const float *x, int64_t n, bool tanh_approx);
void ldm_quick_gelu(ldm_ctx *ctx, float *y, const float *x, int64_t n); /* x*sigmoid(1.702x) */
/* diffusers GEGLU after its projection: x [rows, 2C] = [hidden | gate],
 * y [rows, C] = hidden * gelu(gate) (exact gelu). */
void ldm_geglu(ldm_ctx *ctx, float *y, const float *x, int64_t rows, int C);
/* Row-wise softmax over [rows, n], in-place allowed. */
void ldm_softmax(ldm_ctx *ctx, float *y, const float *x, int64_t rows, int64_t n);

/* torch.nn.LeakyReLU(slope) over n elements; torch.nn.PReLU with one
 * slope per channel over rows x C; y = s * a + b over n elements (the
 * residual-in-residual adds of ESRGAN). In-place allowed (y == x, y == a
 * or y == b). */
void ldm_leaky_relu(ldm_ctx *ctx, float *y, const float *x, int64_t n, float slope);
void ldm_prelu(ldm_ctx *ctx, float *y, const float *x, int64_t rows, int C, const float *slope);
void ldm_scale_add(ldm_ctx *ctx, float *y, const float *a, float s, const float *b, int64_t n);

/* Multi-head scaled-dot-product attention (torch SDPA, scale 1/sqrt(dh)):
 * q [B, Tq, heads*dh] (row stride ldq floats), k/v [B, Tk, heads*dh]
 * (strides ldk, ldv), out [B, Tq, heads*dh] (stride ldo). causal masks key j
 * > query i (CLIP text). Memory bounded: works in query chunks, never a full
 * Tq x Tk matrix per head for all heads at once. */
ldm_status ldm_attention(ldm_ctx *ctx, float *out, int64_t ldo, const float *q,
                         int64_t ldq, const float *k, int64_t ldk,
                         const float *v, int64_t ldv, int B, int64_t Tq,
                         int64_t Tk, int heads, int dh, bool causal);

/* Nearest-neighbour x2 upsample: x [B, H*W, C] -> y [B, 2H*2W, C]. */
void ldm_upsample_nearest2x(ldm_ctx *ctx, float *y, const float *x, int B,
                            int H, int W, int C);

/* torch.nn.PixelShuffle(r) and F.pixel_unshuffle(r), one image,
 * channels-last: unshuffle x [H*W, C] (H, W multiples of r) -> y
 * [(H/r)*(W/r), C*r*r]; shuffle x [h*w, C*r*r] -> y [(h*r)*(w*r), C]. */
/* Origins of tiles of t pixels covering n pixels, neighbours overlapping by
 * at least ov, spread evenly (at most max; returns the count): the VAE's and
 * the upscalers' tiling. */
int ldm_tile_origins(int n, int t, int ov, int *org, int max);
void ldm_pixel_unshuffle(ldm_ctx *ctx, float *y, const float *x, int H, int W, int C, int r);
void ldm_pixel_shuffle(ldm_ctx *ctx, float *y, const float *x, int h, int w, int C, int r);

/* Channel concat: y [B, HW, C1+C2] = cat(a [B, HW, C1], b [B, HW, C2]). */
void ldm_concat_channels(ldm_ctx *ctx, float *y, const float *a, int C1,
                         const float *b, int C2, int B, int64_t HW);

/* y = a + b over n elements (y may alias a or b). */
void ldm_add(ldm_ctx *ctx, float *y, const float *a, const float *b, int64_t n);
/* y[r, c] += bias[c] for rows x C; bias any float dtype. */
ldm_status ldm_add_bias(ldm_ctx *ctx, float *y, int64_t rows, int C,
                        const ldm_tensor *bias);

/* diffusers get_timestep_embedding: t [B] -> y [B, dim]. */
void ldm_timestep_embedding(float *y, const float *t, int B, int dim,
                            bool flip_sin_to_cos, float downscale_freq_shift,
                            float scale, float max_period);

/* Layout conversion at the API edge: [B, C, H*W] <-> [B, H*W, C]. */
void ldm_nchw_to_nhwc(float *y, const float *x, int B, int C, int64_t HW);
void ldm_nhwc_to_nchw(float *y, const float *x, int B, int C, int64_t HW);

/* ---- additions: options, internal variants, naive references ----------- */

/* True when the loaded OpenBLAS exports cblas_sbgemm (looked up at run time,
 * never linked). ctx->precision LDM_PRECISION_BF16 routes ldm_gemm to the
 * AMX kernel (gemm_amx.c) where the CPU and OS allow AMX (A not
 * transposed), else through cblas_sbgemm, rounding A and B to bf16 in
 * ctx->scratch, else to the own kernel where the CPU has AVX512-BF16, else
 * to sgemm; LDM_PRECISION_BF16_EMULATED always takes the own kernel. */
bool ldm_gemm_bf16_available(void);

/* The own bf16 kernel (gemm_bf16.c), behind ldm_gemm: true when the CPU has
 * AVX512-BF16; the workspace one piece of C needs; one piece, rows [m0, m1)
 * x columns [n0, n1) of ldm_gemm's product (emulate: f32 FMAs on the
 * bf16-rounded operands, any CPU). */
bool ops_gemm_bf16_native(void);
size_t ops_gemm_bf16_workspace_bytes(void);
void ops_gemm_bf16_block(bool emulate, bool trans_a, bool trans_b, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                         int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc, void *ws);

/* ldm_conv2d with an explicit bound on the im2col scratch (bytes): output
 * rows are processed in bands of at most that size (at least one row).
 * ldm_conv2d uses LDM_CONV2D_SCRATCH_BYTES. */
#define LDM_CONV2D_SCRATCH_BYTES ((size_t)64 << 20)
ldm_status ldm_conv2d_ex(ldm_ctx *ctx, float *y, const float *x, int B, int H,
                         int W, int Cin, const ldm_tensor *w,
                         const ldm_tensor *b, int stride, int pad,
                         size_t max_scratch_bytes);

/* Convolution algorithm. AUTO, without a weight cache (ctx->wcache), picks
 * STREAM for at most LDM_CONV_STREAM_MAX_PIXELS output pixels (1x1 stride-1
 * convs: ops_gemm_stream_max_rows): im2col in the weight's stored order with
 * the weight widened chunk by chunk inside the GEMM (ops_gemm_stream), as
 * there the weight's memory traffic is the cost (8x8 and 16x16 latents at
 * batch 1: 1.1-1.8x, measured here). Otherwise Winograd F(2x2,3x3) for 3x3
 * stride-1 pad-1 convs with Cin and Cout >= LDM_CONV_WINOGRAD_MIN_CH and
 * B*H*W >= LDM_CONV_WINOGRAD_MIN_PIXELS, else im2col (1x1 stride 1: a plain
 * GEMM). WINOGRAD on another shape is LDM_ERR_UNSUPPORTED. ldm_conv2d and
 * ldm_conv2d_ex use AUTO; the bound applies to the transformed tiles. With
 * a weight cache, im2col and 1x1 products of at most LDM_PANEL_MAX_ROWS
 * pixels (f32 products, AVX-512) read the weight as cached panels in its own
 * width (gemm_panels.c) instead of OpenBLAS packing it at every call. */
typedef enum ldm_conv_algo {
  LDM_CONV_AUTO = 0,
  LDM_CONV_IM2COL,
  LDM_CONV_WINOGRAD, /* F(4x4) or F(2x2) by LDM_CONV_WINOGRAD4_MIN_TILES */
  LDM_CONV_STREAM,
  LDM_CONV_WINOGRAD2,     /* F(2x2, 3x3) */
  LDM_CONV_WINOGRAD4,     /* F(4x4, 3x3) */
  LDM_CONV_FEW_COUT_TAPS, /* per-tap GEMM + shifted sums, Cout <= LDM_CONV_FEW_COUT */
  LDM_CONV_AMX            /* bf16 on AMX tiles (precision bf16, AMX-BF16 CPUs): AUTO's choice there */
} ldm_conv_algo;
#define LDM_CONV_WINOGRAD_MIN_CH 32
#define LDM_CONV_WINOGRAD_MIN_PIXELS 256
#define LDM_CONV_STREAM_MAX_PIXELS 256
#define LDM_GEMM_STREAM_MAX_ROWS 1024
/* With bf16 products the own kernel's doubled rate beats the weight traffic
 * from this many rows on: fewer rows stream (in f32). */
#define LDM_GEMM_STREAM_MAX_ROWS_BF16 255
/* With bf16 on AMX, products with fewer rows than this (a tile's 16) stream
 * their weights in f32: the same bytes read, no padding to 16 rows. */
#define LDM_AMX_MIN_ROWS 16
/* The bound on streamed rows for ctx's precision (ops_gemm_bf16_active). */
int64_t ops_gemm_stream_max_rows(const ldm_ctx *ctx);
/* True when ctx's ldm_gemm calls run in bf16 (native, sbgemm or emulated). */
bool ops_gemm_bf16_active(const ldm_ctx *ctx);
#define LDM_CONV_WINOGRAD4_MIN_TILES 256
/* With a weight cache the F(4x4) weights are transformed once, not per
 * call: F(4x4) pays from this many 4x4 tiles (a 32x32 latent at batch 1;
 * measured on one Emerald Rapids core, cached weights: 640 -> 640 at 32x32
 * 25.0 ms against F(2x2)'s 30.6, 1280 -> 640 45.2 against 57.2; at 16x16,
 * 16 tiles, F(2x2) stays faster: 37.6 against 44.8 ms at 1280 channels) */
#define LDM_CONV_WINOGRAD4_MIN_TILES_CACHED 64
#define LDM_CONV_FEW_COUT 8
ldm_status ldm_conv2d_algo(ldm_ctx *ctx, float *y, const float *x, int B,
                           int H, int W, int Cin, const ldm_tensor *w,
                           const ldm_tensor *b, int stride, int pad,
                           ldm_conv_algo algo, size_t max_scratch_bytes);

/* Conv weights packed once (e.g. at model load) instead of on every call:
 * ldm_conv2d repacks [Cout, Cin, kh, kw] (any float dtype) into f32
 * [Cout, kh, kw, Cin] for its GEMM each time: ~10 % of a 1280-channel 3x3
 * conv at 8x8 with batch 2, ~30 % at batch 1 (measured here, 1 thread),
 * negligible at 32x32 and above. ldm_conv2d_pack writes that layout into dst
 * (ldm_conv2d_packed_size(w) floats, caller-owned); ldm_conv2d_packed then
 * runs the im2col convolution from it. Worth it where AUTO would not pick
 * Winograd (small images, strided or non-3x3 convs). */
int64_t ldm_conv2d_packed_size(const ldm_tensor *w);
ldm_status ldm_conv2d_pack(ldm_ctx *ctx, float *dst, const ldm_tensor *w);
ldm_status ldm_conv2d_packed(ldm_ctx *ctx, float *y, const float *x, int B,
                             int H, int W, int Cin, const float *wp, int Cout,
                             int kh, int kw, const ldm_tensor *b, int stride,
                             int pad);

/* ldm_attention with an explicit bound on its scratch (bytes): each pool
 * thread holds one tile of query rows x Tk scores (+ 1/rowsum per row), or
 * for long non-causal key sequences query rows x a block of keys (+ running
 * max and sum), min(4 MiB, bound / threads) each, at least one row; all tiles together
 * stay within the bound (fewer threads are used if one row per thread
 * would not fit). ldm_attention uses LDM_ATTN_SCORE_BYTES. */
#define LDM_ATTN_SCORE_BYTES ((size_t)32 << 20)
ldm_status ldm_attention_ex(ldm_ctx *ctx, float *out, int64_t ldo,
                            const float *q, int64_t ldq, const float *k,
                            int64_t ldk, const float *v, int64_t ldv, int B,
                            int64_t Tq, int64_t Tk, int heads, int dh,
                            bool causal, size_t max_score_bytes);

/* Naive references (direct loops, double accumulation, no BLAS, no
 * threads) kept beside the optimized ops as a second check in tests. */
void ldm_gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N,
                    int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C,
                    int64_t ldc);
ldm_status ldm_linear_naive(ldm_ctx *ctx, float *y, const float *x, int64_t M,
                            const ldm_tensor *w, const ldm_tensor *b);
ldm_status ldm_conv2d_naive(ldm_ctx *ctx, float *y, const float *x, int B,
                            int H, int W, int Cin, const ldm_tensor *w,
                            const ldm_tensor *b, int stride, int pad);
ldm_status ldm_attention_naive(ldm_ctx *ctx, float *out, int64_t ldo,
                               const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int B,
                               int64_t Tq, int64_t Tk, int heads, int dh,
                               bool causal);

#endif
