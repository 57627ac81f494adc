/* AutoencoderKL (the SD VAE) networks: encoder and decoder. Mirrors
 * diffusers models/autoencoders/vae.py Encoder/Decoder with
 * DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D and ResnetBlock2D
 * (eps 1e-6, no temb), which in turn mirror ldm.modules.diffusionmodules.model.
 * Whole-image and tiled runs over these: vae_tiling.c. */
#include "models/vae/vae_impl.h"
#include "core/arena.h"
#include "core/status.h"
#include "ops/ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The VAE's convolutions with a 32 MiB bound on their temporaries (im2col
 * bands, Winograd tiles) instead of ldm_conv2d's 64: the decoder's
 * activations are large, and at 512x512 its peak memory is those plus the
 * conv temporaries. With the banded upsample below: txt2img 512x512 peak RSS
 * file + 748 -> + 552 MiB, the 512x512 decode ~10 % slower (measured here). */
#define VAE_CONV_SCRATCH ((size_t)32 << 20)

static ldm_status vconv(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin, const ldm_tensor *w,
                        const ldm_tensor *b, int stride, int pad) {
  return ldm_conv2d_ex(ctx, y, x, B, H, W, Cin, w, b, stride, pad, VAE_CONV_SCRATCH);
}

static ldm_status check_cancel(ldm_ctx *ctx) {
  if (ctx->cancel && atomic_load(ctx->cancel))
    return ldm_fail(ctx->err, LDM_ERR_CANCELLED, "vae: cancelled");
  return LDM_OK;
}

static void swap_xa(vae_bufs *s) {
  float *t = s->x;
  s->x = s->a;
  s->a = t;
}

/* torch.nn.GroupNorm (+ SiLU) on [H*W, C], through the shared statistics
 * when g is given. */
static ldm_status gn(ldm_ctx *ctx, gn_global *g, float *y, const float *x, int H, int W, int C,
                     int groups, const ldm_tensor *gamma, const ldm_tensor *beta, bool silu) {
  if (!g) return ldm_group_norm(ctx, y, x, 1, (int64_t)H * W, C, groups, VAE_EPS, gamma, beta, silu);
  int k = g->layer++;
  if (k >= GN_MAX_LAYERS || groups > 32)
    return ldm_fail(ctx->err, LDM_ERR_INTERNAL, "vae: norm layer %d / %d groups beyond the tiling table", k, groups);
  if (g->collect) { /* the rows of the core region, one contiguous span each */
    int res = H / g->th;
    int y0 = g->cy0 * res, y1 = g->cy1 * res, x0 = g->cx0 * res, x1 = g->cx1 * res;
    if (y1 > H) y1 = H;
    if (x1 > W) x1 = W;
    for (int yy = y0; yy < y1; yy++)
      LDM_TRY(ldm_group_norm_sums(ctx, g->sum[k], g->sq[k], x + ((size_t)yy * W + x0) * C, 1, x1 - x0, C, groups));
    g->cnt[k] += (double)(y1 - y0) * (x1 - x0) * (C / groups);
  }
  if (!g->apply) return ldm_group_norm(ctx, y, x, 1, (int64_t)H * W, C, groups, VAE_EPS, gamma, beta, silu);
  return ldm_group_norm_apply(ctx, y, x, 1, (int64_t)H * W, C, groups, g->mean[k], g->rstd[k], gamma, beta, silu);
}

/* Turns the sums of a statistics pass into means and 1/std; clears sums. */
void vae_gn_finish(gn_global *g) {
  for (int k = 0; k < g->layer && k < GN_MAX_LAYERS; k++) {
    for (int i = 0; i < g->groups; i++) {
      double n = g->cnt[k] > 0 ? g->cnt[k] : 1;
      double m = g->sum[k][i] / n, var = g->sq[k][i] / n - m * m;
      g->mean[k][i] = (float)m;
      g->rstd[k][i] = (float)(1.0 / sqrt((var > 0 ? var : 0) + VAE_EPS));
      g->sum[k][i] = g->sq[k][i] = 0;
    }
    g->cnt[k] = 0;
  }
}

/* ResnetBlock2D: x [HW, Cin] -> x [HW, Cout] */
static ldm_status resnet_forward(ldm_ctx *ctx, const vae_resnet *r, vae_bufs *s, int groups,
                                 int H, int W, gn_global *g) {
  const int64_t HW = (int64_t)H * W;
  if (r->nin_w.data) {
    /* channels change: the 1x1 shortcut first, then x is free to be
     * normalised in place and a, b only ever hold Cout channels (with the
     * banded upsample below this keeps the 512x512 decode's buffers at
     * 256 + 128 + 128 channels instead of 256 + 256 + 128) */
    // nin_shortcut -> b [HW, Cout]; norm1 + SiLU in place -> x [HW, Cin]
    LDM_TRY(vconv(ctx, s->b, s->x, 1, H, W, r->cin, &r->nin_w, &r->nin_b, 1, 0));
    LDM_TRY(gn(ctx, g, s->x, s->x, H, W, r->cin, groups, &r->norm1_w, &r->norm1_b, true));
    // conv1 -> a, norm2 + SiLU in place, conv2 -> x [HW, Cout]; + shortcut
    LDM_TRY(vconv(ctx, s->a, s->x, 1, H, W, r->cin, &r->conv1_w, &r->conv1_b, 1, 1));
    LDM_TRY(gn(ctx, g, s->a, s->a, H, W, r->cout, groups, &r->norm2_w, &r->norm2_b, true));
    LDM_TRY(vconv(ctx, s->x, s->a, 1, H, W, r->cout, &r->conv2_w, &r->conv2_b, 1, 1));
    ldm_add(ctx, s->x, s->x, s->b, HW * r->cout);
    return check_cancel(ctx);
  }
  // norm1 + SiLU -> a [HW, Cin]
  LDM_TRY(gn(ctx, g, s->a, s->x, H, W, r->cin, groups, &r->norm1_w, &r->norm1_b, true));
  // conv1 -> b [HW, Cout]
  LDM_TRY(vconv(ctx, s->b, s->a, 1, H, W, r->cin, &r->conv1_w, &r->conv1_b, 1, 1));
  // norm2 + SiLU (dropout is identity at inference) -> b [HW, Cout]
  LDM_TRY(gn(ctx, g, s->b, s->b, H, W, r->cout, groups, &r->norm2_w, &r->norm2_b, true));
  // conv2 -> a [HW, Cout]
  LDM_TRY(vconv(ctx, s->a, s->b, 1, H, W, r->cout, &r->conv2_w, &r->conv2_b, 1, 1));
  // + residual -> a
  ldm_add(ctx, s->a, s->a, s->x, HW * r->cout);
  swap_xa(s);
  return check_cancel(ctx);
}

/* AttnBlock (one head of C channels): x [T, C] -> x [T, C] */
static ldm_status attn_forward(ldm_ctx *ctx, const vae_attn *at, vae_bufs *s, int groups,
                               int64_t T, int C) {
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  size_t n;
  float *k = NULL, *v = NULL;
  if (ldm_mul_size((size_t)T, (size_t)C, &n)) {
    k = ldm_arena_floats(ctx->scratch, n);
    v = ldm_arena_floats(ctx->scratch, n);
  }
  if (!k || !v) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae attention: out of memory for %lld x %d",
                  (long long)T, C);
    goto done;
  }
  // group_norm -> a [T, C]
  st = ldm_group_norm(ctx, s->a, s->x, 1, T, C, groups, VAE_EPS, &at->norm_w, &at->norm_b, false);
  // q -> b, k, v [T, C]
  if (st == LDM_OK) st = ldm_linear(ctx, s->b, s->a, T, &at->q_w, &at->q_b);
  if (st == LDM_OK) st = ldm_linear(ctx, k, s->a, T, &at->k_w, &at->k_b);
  if (st == LDM_OK) st = ldm_linear(ctx, v, s->a, T, &at->v_w, &at->v_b);
  // softmax(q k^T / sqrt(C)) v -> a [T, C]
  if (st == LDM_OK) st = ldm_attention(ctx, s->a, C, s->b, C, k, C, v, C, 1, T, T, 1, C, false);
  // proj_out -> b; residual -> x
  if (st == LDM_OK) st = ldm_linear(ctx, s->b, s->a, T, &at->proj_w, &at->proj_b);
  if (st == LDM_OK) ldm_add(ctx, s->x, s->x, s->b, T * C);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

static ldm_status mid_forward(ldm_ctx *ctx, const vae_mid *m, const ldm_vae_config *c,
                              vae_bufs *s, int H, int W) {
  int C = c->ch[c->levels - 1];
  LDM_TRY(resnet_forward(ctx, &m->block_1, s, c->groups, H, W, NULL));
  if (c->mid_attention) LDM_TRY(attn_forward(ctx, &m->attn_1, s, c->groups, (int64_t)H * W, C));
  return resnet_forward(ctx, &m->block_2, s, c->groups, H, W, NULL);
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Largest activation (floats) of the encoder's down path on H x W. */
size_t vae_enc_down_cap(const ldm_vae_config *c, int H, int W) {
  size_t cap = (size_t)H * W * (size_t)(c->ch[0] > c->image_channels ? c->ch[0] : c->image_channels);
  for (int i = 0; i < c->levels; i++) {
    size_t Hi = (size_t)(H >> i), Wi = (size_t)(W >> i);
    int cin = i ? c->ch[i - 1] : c->ch[0];
    cap = max_sz(cap, Hi * Wi * (size_t)(cin > c->ch[i] ? cin : c->ch[i]));
    if (i < c->levels - 1) cap = max_sz(cap, (Hi + 1) * (Wi + 1) * (size_t)c->ch[i]);
  }
  return cap;
}

/* Largest activation (floats) at latent size h x w (mid-blocks, convs). */
size_t vae_mid_cap(const ldm_vae_config *c, int h, int w) {
  int m = c->ch[c->levels - 1];
  if (2 * c->latent_channels > m) m = 2 * c->latent_channels;
  return (size_t)h * w * (size_t)m;
}

/* Largest activation (floats) of the decoder's up path from h x w. */
size_t vae_dec_up_cap(const ldm_vae_config *c, int h, int w) {
  int L = c->levels;
  size_t cap = vae_mid_cap(c, h, w);
  for (int i = L - 1; i >= 0; i--) {
    size_t Hi = (size_t)h << (L - 1 - i), Wi = (size_t)w << (L - 1 - i);
    int cin = i == L - 1 ? c->ch[L - 1] : c->ch[i + 1];
    cap = max_sz(cap, Hi * Wi * (size_t)(cin > c->ch[i] ? cin : c->ch[i]));
    if (i > 0) cap = max_sz(cap, 4 * Hi * Wi * (size_t)c->ch[i]);
  }
  return max_sz(cap, ((size_t)h << (L - 1)) * ((size_t)w << (L - 1)) * (size_t)c->image_channels);
}

ldm_status vae_alloc_bufs(ldm_ctx *ctx, vae_bufs *s, size_t cap) {
  s->cap = cap;
  s->x = ldm_arena_floats(ctx->scratch, cap);
  s->a = ldm_arena_floats(ctx->scratch, cap);
  s->b = ldm_arena_floats(ctx->scratch, cap);
  if (!s->x || !s->a || !s->b)
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae: out of memory for 3 x %zu activation floats",
                    cap);
  return LDM_OK;
}

/* Encoder conv_in and down path: s->x holds the image [H*W, 3] (H, W
 * multiples of the factor); leaves [h*w, chL] in s->x. */
ldm_status vae_encoder_down(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int H, int W, gn_global *g) {
  const ldm_vae_config *c = &v->cfg;
  const vae_encoder_weights *e = &v->enc;
  // conv_in -> [H*W, ch0]
  LDM_TRY(vconv(ctx, s->a, s->x, 1, H, W, c->image_channels, &e->conv_in_w, &e->conv_in_b, 1, 1));
  swap_xa(s);
  for (int i = 0; i < c->levels; i++) {
    // down[i].block[j] -> [H*W, ch_i]
    for (int j = 0; j < c->layers; j++)
      LDM_TRY(resnet_forward(ctx, &e->block[i][j], s, c->groups, H, W, g));
    if (i == c->levels - 1) break;
    // downsample: zero pad right/bottom by one, conv 3x3 stride 2 -> [H/2*W/2, ch_i]
    int C = c->ch[i], Wp = W + 1;
    for (int y = 0; y <= H; y++) {
      float *dst = s->a + (size_t)y * Wp * C;
      if (y < H) {
        memcpy(dst, s->x + (size_t)y * W * C, (size_t)W * C * sizeof(float));
        memset(dst + (size_t)W * C, 0, (size_t)C * sizeof(float));
      } else {
        memset(dst, 0, (size_t)Wp * C * sizeof(float));
      }
    }
    LDM_TRY(vconv(ctx, s->x, s->a, 1, H + 1, W + 1, C, &e->down_w[i], &e->down_b[i], 2, 0));
    H = ldm_conv_out(H + 1, 3, 2, 0);
    W = ldm_conv_out(W + 1, 3, 2, 0);
  }
  return LDM_OK;
}

/* Encoder mid, norm_out, conv_out and quant_conv at latent size:
 * s->x [h*w, chL] -> moments [h*w, 2*Cl] in s->x. */
ldm_status vae_encoder_mid(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int H, int W) {
  const ldm_vae_config *c = &v->cfg;
  const vae_encoder_weights *e = &v->enc;
  // mid: resnet, attention, resnet -> [h*w, chL]
  LDM_TRY(mid_forward(ctx, &e->mid, c, s, H, W));
  int CL = c->ch[c->levels - 1];
  // norm_out + SiLU, conv_out -> [h*w, 2*Cl]
  LDM_TRY(ldm_group_norm(ctx, s->a, s->x, 1, (int64_t)H * W, CL, c->groups, VAE_EPS,
                         &e->norm_out_w, &e->norm_out_b, true));
  LDM_TRY(vconv(ctx, s->x, s->a, 1, H, W, CL, &e->conv_out_w, &e->conv_out_b, 1, 1));
  // quant_conv (1x1) -> [h*w, 2*Cl]
  if (c->quant_conv) {
    LDM_TRY(vconv(ctx, s->a, s->x, 1, H, W, 2 * c->latent_channels, &e->quant_w, &e->quant_b, 1, 0));
    swap_xa(s);
  }
  return LDM_OK;
}

/* post_quant_conv, decoder conv_in and mid at latent size:
 * s->x [h*w, Cl] -> [h*w, chL] in s->x. */
ldm_status vae_decoder_mid(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int h, int w) {
  const ldm_vae_config *c = &v->cfg;
  const vae_decoder_weights *d = &v->dec;
  const int Cl = c->latent_channels;
  // post_quant_conv (1x1) -> [h*w, Cl]
  if (c->post_quant_conv) {
    LDM_TRY(vconv(ctx, s->a, s->x, 1, h, w, Cl, &d->post_quant_w, &d->post_quant_b, 1, 0));
    swap_xa(s);
  }
  // conv_in -> [h*w, chL]
  LDM_TRY(vconv(ctx, s->a, s->x, 1, h, w, Cl, &d->conv_in_w, &d->conv_in_b, 1, 1));
  swap_xa(s);
  // mid -> [h*w, chL]
  return mid_forward(ctx, &d->mid, c, s, h, w);
}

/* Nearest 2x upsample and 3x3 conv of x [H*W, C] -> x [2H*2W, C], in place,
 * in bands of output rows from the bottom up, so the upsampled picture is
 * never held whole (at 512x512 with 256 channels it is 268 MB): a band
 * writes rows [r0, r1) at 2*r0*W*C floats and later bands read low-res rows
 * below r0 / 2 + 1 only. Each band's conv sees its rows plus one halo row on
 * each side (zero at the picture's edges) and keeps the inner rows. */
enum { UPCONV_BAND_BYTES = 16 << 20 };

static ldm_status upsample_conv_banded(ldm_ctx *ctx, vae_bufs *s, int H, int W, int C, const ldm_tensor *w,
                                       const ldm_tensor *b) {
  float *x = s->x, *in = s->a, *out = s->b; /* a and b are free here: the bands live in them */
  int H2 = 2 * H, W2 = 2 * W;
  size_t row = (size_t)W2 * (size_t)C;
  int band = (int)(UPCONV_BAND_BYTES / (row * sizeof(float)));
  if (band < 1) band = 1;
  if (band > H2) band = H2;
  if ((size_t)(band + 2) * row > s->cap) /* the caller checked cap >= 3 rows */
    band = (int)(s->cap / row) - 2;
  ldm_status st = LDM_OK;
  for (int r1 = H2; r1 > 0 && st == LDM_OK; r1 -= band) {
    int r0 = r1 - band > 0 ? r1 - band : 0, n = r1 - r0;
    for (int i = 0; i < n + 2; i++) { /* upsampled rows r0 - 1 .. r1 */
      int ur = r0 - 1 + i;
      float *dst = in + (size_t)i * row;
      if (ur < 0 || ur >= H2) {
        memset(dst, 0, row * sizeof(float));
        continue;
      }
      const float *src = x + (size_t)(ur / 2) * (size_t)W * (size_t)C;
      for (int xx = 0; xx < W2; xx++) memcpy(dst + (size_t)xx * C, src + (size_t)(xx / 2) * C, (size_t)C * sizeof(float));
    }
    st = vconv(ctx, out, in, 1, n + 2, W2, C, w, b, 1, 1);
    if (st == LDM_OK) memcpy(x + (size_t)r0 * row, out + row, (size_t)n * row * sizeof(float));
  }
  return st;
}

/* Decoder up path, norm_out and conv_out: s->x [h*w, chL] -> the image
 * [(f*h)*(f*w), 3] in s->x. */
ldm_status vae_decoder_up(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int h, int w, gn_global *g) {
  const ldm_vae_config *c = &v->cfg;
  const vae_decoder_weights *d = &v->dec;
  int H = h, W = w;
  for (int i = c->levels - 1; i >= 0; i--) {
    // up[i].block[j] -> [H*W, ch_i]
    for (int j = 0; j <= c->layers; j++)
      LDM_TRY(resnet_forward(ctx, &d->block[i][j], s, c->groups, H, W, g));
    if (i == 0) break;
    // upsample: nearest x2, conv 3x3 -> [2H*2W, ch_i] (in bands where the picture is large)
    if ((size_t)4 * H * W * (size_t)c->ch[i] * sizeof(float) > (size_t)2 * UPCONV_BAND_BYTES &&
        s->cap / ((size_t)2 * W * (size_t)c->ch[i]) >= 3) { /* a band and its halo rows fit a, b */
      LDM_TRY(upsample_conv_banded(ctx, s, H, W, c->ch[i], &d->up_w[i], &d->up_b[i]));
      H *= 2;
      W *= 2;
      continue;
    }
    ldm_upsample_nearest2x(ctx, s->a, s->x, 1, H, W, c->ch[i]);
    H *= 2;
    W *= 2;
    LDM_TRY(vconv(ctx, s->x, s->a, 1, H, W, c->ch[i], &d->up_w[i], &d->up_b[i], 1, 1));
  }
  // norm_out + SiLU, conv_out -> [H*W, 3]
  LDM_TRY(gn(ctx, g, s->a, s->x, H, W, c->ch[0], c->groups, &d->norm_out_w, &d->norm_out_b, true));
  LDM_TRY(vconv(ctx, s->x, s->a, 1, H, W, c->ch[0], &d->conv_out_w, &d->conv_out_b, 1, 1));
  return LDM_OK;
}
