/* TAESD, the tiny autoencoder for previews and quick decodes: mirrors
 * diffusers AutoencoderTiny (EncoderTiny / DecoderTiny, AutoencoderTinyBlock)
 * and madebyollin/taesd's taesd.py. Both are an nn.Sequential of 3x3 convs,
 * residual blocks (conv-ReLU-conv-ReLU-conv + skip, ReLU), ReLU and nearest
 * x2 upsampling; the layer list is read from the tensor names present. */
#include "models/vae/vae.h"
#include "core/arena.h"
#include "core/status.h"
#include "ops/conv_fused.h"
#include "ops/ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAESD_MAX_LAYERS 64

typedef enum taesd_kind { TL_CONV, TL_BLOCK, TL_RELU, TL_UPSAMPLE } taesd_kind;

typedef struct taesd_layer {
  taesd_kind kind;
  int cin, cout, stride;
  ldm_tensor w, b;              /* conv: [Cout, Cin, 3, 3], [Cout] or absent */
  ldm_tensor cw[3], cb[3];      /* block: conv.0/2/4 [C, C, 3, 3], [C] */
  ldm_tensor skip;              /* block: [Cout, Cin, 1, 1] when Cin != Cout */
} taesd_layer;

typedef struct taesd_net {
  int n;
  taesd_layer l[TAESD_MAX_LAYERS];
  int in_channels, out_channels, factor;
} taesd_net;

struct ldm_taesd {
  taesd_net enc, dec;
  bool has_enc, has_dec;
};

typedef struct taesd_names {
  const ldm_source *src;
  const char *part;
  const char *prefix;   /* "encoder.layers.", "decoder.layers." or "" */
  int index_shift;      /* original decoder files count its Clamp as layer 0 */
} taesd_names;

static const ldm_tensor *tn_find(const taesd_names *N, int i, const char *suffix) {
  char buf[160];
  snprintf(buf, sizeof buf, "%s%d.%s", N->prefix, i + N->index_shift, suffix);
  return ldm_source_find(N->src, N->part, buf);
}

static ldm_status take_conv(const taesd_names *N, ldm_tensor *dst, const ldm_tensor *t, int i,
                            const char *sfx, int k, ldm_error *err) {
  char sb[64];
  if (!t || t->ndim != 4 || t->shape[2] != k || t->shape[3] != k || t->shape[0] < 1 ||
      t->shape[1] < 1 || t->shape[0] > 4096 || t->shape[1] > 4096 ||
      (t->dtype != LDM_DTYPE_F32 && t->dtype != LDM_DTYPE_F16 && t->dtype != LDM_DTYPE_BF16))
    return ldm_fail(err, LDM_ERR_SHAPE, "%s: TAESD tensor '%s%d.%s' has shape %s, expected a %dx%d conv weight",
                    ldm_source_path(N->src), N->prefix, i + N->index_shift, sfx,
                    t ? ldm_shape_str(t, sb, sizeof sb) : "(missing)", k, k);
  *dst = *t;
  return LDM_OK;
}

static ldm_status take_bias(const taesd_names *N, ldm_tensor *dst, const ldm_tensor *t, int i,
                            const char *sfx, int64_t c, ldm_error *err) {
  memset(dst, 0, sizeof *dst);
  if (!t) return LDM_OK;
  char sb[64];
  if (!ldm_tensor_has_shape(t, 1, &c))
    return ldm_fail(err, LDM_ERR_SHAPE, "%s: TAESD tensor '%s%d.%s' has shape %s, expected [%lld]",
                    ldm_source_path(N->src), N->prefix, i + N->index_shift, sfx,
                    ldm_shape_str(t, sb, sizeof sb), (long long)c);
  *dst = *t;
  return LDM_OK;
}

/* Reads the Sequential: convs, blocks, and parameter-free layers between
 * them (ReLU right after the decoder's first conv, nearest x2 elsewhere). */
static ldm_status parse_net(taesd_net *net, const taesd_names *N, bool decoder, ldm_error *err) {
  memset(net, 0, sizeof *net);
  int misses = 0;
  int C = -1;
  for (int i = 0; misses < 2; i++) {
    taesd_layer cur;
    memset(&cur, 0, sizeof cur);
    const ldm_tensor *w = tn_find(N, i, "weight");
    const ldm_tensor *bw = tn_find(N, i, "conv.0.weight");
    if (w) {
      cur.kind = TL_CONV;
      LDM_TRY(take_conv(N, &cur.w, w, i, "weight", 3, err));
      cur.cout = (int)w->shape[0];
      cur.cin = (int)w->shape[1];
      LDM_TRY(take_bias(N, &cur.b, tn_find(N, i, "bias"), i, "bias", cur.cout, err));
      cur.stride = 1;
    } else if (bw) {
      static const char *const ws[3] = {"conv.0.weight", "conv.2.weight", "conv.4.weight"};
      static const char *const bs[3] = {"conv.0.bias", "conv.2.bias", "conv.4.bias"};
      cur.kind = TL_BLOCK;
      for (int j = 0; j < 3; j++) {
        LDM_TRY(take_conv(N, &cur.cw[j], tn_find(N, i, ws[j]), i, ws[j], 3, err));
        LDM_TRY(take_bias(N, &cur.cb[j], tn_find(N, i, bs[j]), i, bs[j], cur.cw[j].shape[0], err));
      }
      cur.cin = (int)cur.cw[0].shape[1];
      cur.cout = (int)cur.cw[2].shape[0];
      const ldm_tensor *sk = tn_find(N, i, "skip.weight");
      if (sk) LDM_TRY(take_conv(N, &cur.skip, sk, i, "skip.weight", 1, err));
      if (cur.cw[0].shape[0] != cur.cout || cur.cw[1].shape[0] != cur.cout ||
          cur.cw[1].shape[1] != cur.cout || cur.cw[2].shape[1] != cur.cout ||
          (cur.cin != cur.cout && !sk) || (sk && (sk->shape[0] != cur.cout || sk->shape[1] != cur.cin)))
        return ldm_fail(err, LDM_ERR_SHAPE, "%s: TAESD block '%s%d' has inconsistent channels",
                        ldm_source_path(N->src), N->prefix, i + N->index_shift);
    } else {
      misses++;
      continue;
    }
    if (net->n + 2 > TAESD_MAX_LAYERS)
      return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: TAESD has more than %d layers",
                      ldm_source_path(N->src), TAESD_MAX_LAYERS);
    if (misses == 1) { /* a parameter-free layer sat at index i - 1 */
      taesd_layer *P = &net->l[net->n++];
      bool after_first = net->n == 2 && net->l[0].kind == TL_CONV;
      P->kind = decoder && !after_first ? TL_UPSAMPLE : TL_RELU;
      P->cin = P->cout = C;
    }
    misses = 0;
    if (C >= 0 && cur.cin != C)
      return ldm_fail(err, LDM_ERR_SHAPE, "%s: TAESD layer '%s%d' takes %d channels, the previous gives %d",
                      ldm_source_path(N->src), N->prefix, i + N->index_shift, cur.cin, C);
    C = cur.cout;
    net->l[net->n++] = cur;
  }
  if (net->n < 2 || net->l[0].kind != TL_CONV || net->l[net->n - 1].kind != TL_CONV)
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: TAESD %s: expected convs first and last (found %d layers)",
                    ldm_source_path(N->src), decoder ? "decoder" : "encoder", net->n);
  net->in_channels = net->l[0].cin;
  net->out_channels = net->l[net->n - 1].cout;
  net->factor = 1;
  for (int k = 0; k < net->n; k++) {
    taesd_layer *L = &net->l[k];
    /* encoder: every conv between the first and the last has stride 2 */
    if (!decoder && L->kind == TL_CONV && k > 0 && k < net->n - 1) L->stride = 2;
    if (L->stride == 2 || L->kind == TL_UPSAMPLE) net->factor *= 2;
  }
  return LDM_OK;
}

/* Finds the encoder or decoder half in one source. */
static ldm_status find_half(ldm_taesd *t, const ldm_source *src, ldm_error *err) {
  taesd_names N = {.src = src, .part = "vae"};
  bool any = false;
  N.prefix = "encoder.layers.";
  if (!t->has_enc && tn_find(&N, 0, "weight")) {
    LDM_TRY(parse_net(&t->enc, &N, false, err));
    t->has_enc = any = true;
  }
  N.prefix = "decoder.layers.";
  if (!t->has_dec && tn_find(&N, 0, "weight")) {
    LDM_TRY(parse_net(&t->dec, &N, true, err));
    t->has_dec = any = true;
  }
  if (any) return LDM_OK;
  /* Original files: the encoder starts with "0.weight" [C, 3, 3, 3]; the
   * decoder with its Clamp at 0, so its first conv is "1.weight". */
  N.prefix = "";
  const ldm_tensor *w0 = tn_find(&N, 0, "weight");
  if (w0 && !t->has_enc) {
    LDM_TRY(parse_net(&t->enc, &N, false, err));
    t->has_enc = true;
    return LDM_OK;
  }
  N.index_shift = 1;
  if (!w0 && tn_find(&N, 0, "weight") && !t->has_dec) {
    LDM_TRY(parse_net(&t->dec, &N, true, err));
    t->has_dec = true;
    return LDM_OK;
  }
  return ldm_fail(err, LDM_ERR_MISSING, "%s: no TAESD encoder or decoder found (expected "
                  "'encoder.layers.*'/'decoder.layers.*' or taesd_encoder/taesd_decoder keys)",
                  ldm_source_path(src));
}

ldm_status ldm_taesd_load(ldm_taesd **out, const ldm_source *src, const ldm_source *src2,
                          ldm_error *err) {
  *out = NULL;
  ldm_taesd *t = calloc(1, sizeof *t);
  if (!t) return ldm_fail(err, LDM_ERR_NOMEM, "taesd: out of memory");
  ldm_status st = find_half(t, src, err);
  if (st == LDM_OK && src2) st = find_half(t, src2, err);
  if (st == LDM_OK && t->has_enc && t->has_dec &&
      (t->enc.out_channels != t->dec.in_channels || t->enc.factor != t->dec.factor))
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: TAESD encoder (%d channels, x%d) and decoder (%d channels, x%d) do not match",
                  ldm_source_path(src), t->enc.out_channels, t->enc.factor, t->dec.in_channels,
                  t->dec.factor);
  if (st != LDM_OK) {
    free(t);
    return st;
  }
  *out = t;
  return LDM_OK;
}

void ldm_taesd_free(ldm_taesd *t) { free(t); }
bool ldm_taesd_has_encoder(const ldm_taesd *t) { return t->has_enc; }
bool ldm_taesd_has_decoder(const ldm_taesd *t) { return t->has_dec; }
int ldm_taesd_factor(const ldm_taesd *t) { return t->has_dec ? t->dec.factor : t->enc.factor; }
int ldm_taesd_latent_channels(const ldm_taesd *t) {
  return t->has_dec ? t->dec.in_channels : t->enc.out_channels;
}

/* ---- forward ------------------------------------------------------------- */

static void relu(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static const ldm_tensor *opt(const ldm_tensor *t) { return t->data ? t : NULL; }

/* Largest activation (floats) over the network on an H x W input. */
static size_t net_cap(const taesd_net *net, int H, int W) {
  size_t cap = (size_t)H * W * (size_t)net->in_channels;
  for (int k = 0; k < net->n; k++) {
    const taesd_layer *L = &net->l[k];
    if (L->kind == TL_UPSAMPLE) H *= 2, W *= 2;
    if (L->stride == 2) H = ldm_conv_out(H, 3, 2, 1), W = ldm_conv_out(W, 3, 2, 1);
    size_t m = (size_t)H * W * (size_t)(L->cout > L->cin ? L->cout : L->cin);
    if (m > cap) cap = m;
  }
  return cap;
}

/* x [H*W, Cin] -> the network's output [H'*W', Cout], in *x. */
static ldm_status net_forward(ldm_ctx *ctx, const taesd_net *net, float **x, float **a, float **b,
                              int *H, int *W) {
  for (int k = 0; k < net->n; k++) {
    const taesd_layer *L = &net->l[k];
    int64_t HW = (int64_t)*H * *W;
    float *t;
    switch (L->kind) {
      case TL_CONV: {
        // Conv2d 3x3 (stride 1 or 2) -> [H'*W', Cout], with the ReLU after it
        bool relu_next = k + 1 < net->n && net->l[k + 1].kind == TL_RELU;
        LDM_TRY(ldm_conv2d_fused(ctx, *a, *x, 1, *H, *W, L->cin, &L->w, opt(&L->b), L->stride, 1, NULL, relu_next));
        if (relu_next) k++;
        *H = ldm_conv_out(*H, 3, L->stride, 1);
        *W = ldm_conv_out(*W, 3, L->stride, 1);
        break;
      }
      case TL_BLOCK: {
        // AutoencoderTinyBlock: relu(conv(relu(conv(relu(conv(x))))) + skip(x)),
        // each ReLU and the skip add in the conv before it
        LDM_TRY(ldm_conv2d_fused(ctx, *a, *x, 1, *H, *W, L->cin, &L->cw[0], opt(&L->cb[0]), 1, 1, NULL, true));
        LDM_TRY(ldm_conv2d_fused(ctx, *b, *a, 1, *H, *W, L->cout, &L->cw[1], opt(&L->cb[1]), 1, 1, NULL, true));
        const float *skip = *x;
        if (L->skip.data) { // 1x1 skip conv -> [H*W, Cout] in *a, free again
          LDM_TRY(ldm_conv2d(ctx, *a, *x, 1, *H, *W, L->cin, &L->skip, NULL, 1, 0));
          skip = *a;
          t = *x; /* x is no longer needed: it takes the block's output */
          *x = *a;
          *a = t;
        }
        LDM_TRY(ldm_conv2d_fused(ctx, *a, *b, 1, *H, *W, L->cout, &L->cw[2], opt(&L->cb[2]), 1, 1, skip, true));
        break;
      }
      case TL_RELU:
        relu(*x, (size_t)HW * L->cout);
        continue;
      case TL_UPSAMPLE:
        // nearest x2 -> [2H*2W, C]
        ldm_upsample_nearest2x(ctx, *a, *x, 1, *H, *W, L->cout);
        *H *= 2;
        *W *= 2;
        break;
    }
    t = *x;
    *x = *a;
    *a = t;
    if (ctx->cancel && atomic_load(ctx->cancel))
      return ldm_fail(ctx->err, LDM_ERR_CANCELLED, "taesd: cancelled");
  }
  return LDM_OK;
}

static ldm_status run_net(ldm_ctx *ctx, const taesd_net *net, float *out, const float *in, int B,
                          int H, int W, bool decoder) {
  if (B < 1 || H < 1 || W < 1 || H > 65536 || W > 65536)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "taesd: size %d x %d x %d out of range", B, H, W);
  if (!decoder && (H % net->factor || W % net->factor))
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "taesd encode: image %d x %d is not a multiple of %d",
                    H, W, net->factor);
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  size_t cap = net_cap(net, H, W);
  float *x = ldm_arena_floats(ctx->scratch, cap), *a = ldm_arena_floats(ctx->scratch, cap),
        *b = ldm_arena_floats(ctx->scratch, cap);
  ldm_status st = LDM_OK;
  if (!x || !a || !b) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "taesd: out of memory for 3 x %zu floats", cap);
    goto done;
  }
  const int Ci = net->in_channels, Co = net->out_channels;
  const size_t hw_in = (size_t)H * W;
  int Ho = H, Wo = W;
  for (int i = 0; i < B && st == LDM_OK; i++) {
    ldm_nchw_to_nhwc(x, in + (size_t)i * Ci * hw_in, 1, Ci, (int64_t)hw_in);
    if (decoder) /* DecoderTiny: soft clamp tanh(x / 3) * 3 */
      for (size_t k = 0; k < hw_in * Ci; k++) x[k] = tanhf(x[k] / 3.0f) * 3.0f;
    else /* EncoderTiny: [-1, 1] -> [0, 1] */
      for (size_t k = 0; k < hw_in * Ci; k++) x[k] = (x[k] + 1.0f) * 0.5f;
    Ho = H;
    Wo = W;
    st = net_forward(ctx, net, &x, &a, &b, &Ho, &Wo);
    if (st != LDM_OK) break;
    size_t hw_out = (size_t)Ho * Wo;
    if (decoder) /* [0, 1] -> [-1, 1] */
      for (size_t k = 0; k < hw_out * Co; k++) x[k] = x[k] * 2.0f - 1.0f;
    ldm_nhwc_to_nchw(out + (size_t)i * Co * hw_out, x, 1, Co, (int64_t)hw_out);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

ldm_status ldm_taesd_encode(ldm_ctx *ctx, const ldm_taesd *t, float *latent, const float *image,
                            int B, int H, int W) {
  if (!t->has_enc) return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "taesd: no encoder loaded");
  return run_net(ctx, &t->enc, latent, image, B, H, W, false);
}

ldm_status ldm_taesd_decode(ldm_ctx *ctx, const ldm_taesd *t, float *image, const float *latent,
                            int B, int h, int w) {
  if (!t->has_dec) return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "taesd: no decoder loaded");
  return run_net(ctx, &t->dec, image, latent, B, h, w, true);
}
