/* Internal view of the SD VAE (AutoencoderKL) shared by its three files:
 * vae_load.c (weights from either layout), vae.c (the encoder and decoder
 * networks) and vae_tiling.c (whole-image and tiled encode/decode). */
#ifndef LDM_MODELS_VAE_VAE_IMPL_H
#define LDM_MODELS_VAE_VAE_IMPL_H

#include "models/vae/vae.h"

#include <stdbool.h>
#include <stddef.h>

#define VAE_EPS 1e-6f

typedef struct vae_resnet {
  int cin, cout;
  ldm_tensor norm1_w, norm1_b; /* [Cin] */
  ldm_tensor conv1_w, conv1_b; /* [Cout, Cin, 3, 3], [Cout] */
  ldm_tensor norm2_w, norm2_b; /* [Cout] */
  ldm_tensor conv2_w, conv2_b; /* [Cout, Cout, 3, 3], [Cout] */
  ldm_tensor nin_w, nin_b;     /* [Cout, Cin, 1, 1] only when Cin != Cout */
} vae_resnet;

typedef struct vae_attn {
  ldm_tensor norm_w, norm_b; /* [C] */
  ldm_tensor q_w, q_b;       /* [C, C] (stored [C, C, 1, 1] originally), [C] */
  ldm_tensor k_w, k_b;
  ldm_tensor v_w, v_b;
  ldm_tensor proj_w, proj_b;
} vae_attn;

typedef struct vae_mid {
  vae_resnet block_1;
  vae_attn attn_1;
  vae_resnet block_2;
} vae_mid;

typedef struct vae_encoder_weights {
  ldm_tensor conv_in_w, conv_in_b; /* [ch0, 3, 3, 3] */
  vae_resnet block[LDM_VAE_MAX_LEVELS][LDM_VAE_MAX_LAYERS];
  ldm_tensor down_w[LDM_VAE_MAX_LEVELS]; /* [ch_i, ch_i, 3, 3] */
  ldm_tensor down_b[LDM_VAE_MAX_LEVELS];
  vae_mid mid;
  ldm_tensor norm_out_w, norm_out_b; /* [chL] */
  ldm_tensor conv_out_w, conv_out_b; /* [2*Cl, chL, 3, 3] */
  ldm_tensor quant_w, quant_b;       /* [2*Cl, 2*Cl, 1, 1] */
} vae_encoder_weights;

typedef struct vae_decoder_weights {
  ldm_tensor post_quant_w, post_quant_b; /* [Cl, Cl, 1, 1] */
  ldm_tensor conv_in_w, conv_in_b;       /* [chL, Cl, 3, 3] */
  vae_mid mid;
  /* up.i (level i, as in the original files; diffusers up_blocks[L-1-i]) */
  vae_resnet block[LDM_VAE_MAX_LEVELS][LDM_VAE_MAX_LAYERS + 1];
  ldm_tensor up_w[LDM_VAE_MAX_LEVELS]; /* [ch_i, ch_i, 3, 3] */
  ldm_tensor up_b[LDM_VAE_MAX_LEVELS];
  ldm_tensor norm_out_w, norm_out_b; /* [ch0] */
  ldm_tensor conv_out_w, conv_out_b; /* [3, ch0, 3, 3] */
} vae_decoder_weights;

struct ldm_vae {
  ldm_vae_config cfg;
  vae_encoder_weights enc;
  vae_decoder_weights dec;
  char path[1024]; /* the file, for messages */
};

/* Forward state (vae.c).
 * One image at a time (B = 1 inside); activations [H*W, C] in three
 * ping-pong buffers x (current), a, b of `cap` floats each.
 * The networks are split where the resolution is the latent's: the encoder's
 * down path and the decoder's up path run per tile; the middle (mid-block
 * with its global self-attention, and the 1x1/3x3 convs at latent size) always
 * runs on the whole latent, so tiling never cuts the attention. */

typedef struct vae_bufs {
  float *x, *a, *b;
  size_t cap; /* floats in each */
} vae_bufs;

/* GroupNorm statistics shared by all tiles. A statistics pass runs every
 * tile with `collect` and sums each norm layer's input over the tile's core
 * (the part of the image this tile owns, so each pixel counts once); later
 * passes `apply` those image-wide means and variances instead of the tile's
 * own, as the untiled network would. */
#define GN_MAX_LAYERS (2 * LDM_VAE_MAX_LEVELS * (LDM_VAE_MAX_LAYERS + 1) + 2)
typedef struct gn_global {
  bool collect, apply;
  int layer; /* index of the next norm call in this pass */
  int groups;
  double sum[GN_MAX_LAYERS][32], sq[GN_MAX_LAYERS][32], cnt[GN_MAX_LAYERS];
  float mean[GN_MAX_LAYERS][32], rstd[GN_MAX_LAYERS][32];
  int th;                 /* tile height in latent pixels */
  int cy0, cy1, cx0, cx1; /* core region, tile latent pixels */
} gn_global;

/* Largest activation (floats) of the encoder's down path on H x W, at
 * latent size h x w (mid-blocks, convs), of the decoder's up path. */
size_t vae_enc_down_cap(const ldm_vae_config *c, int H, int W);
size_t vae_mid_cap(const ldm_vae_config *c, int h, int w);
size_t vae_dec_up_cap(const ldm_vae_config *c, int h, int w);
/* Three ping-pong buffers of cap floats from ctx->scratch. */
ldm_status vae_alloc_bufs(ldm_ctx *ctx, vae_bufs *s, size_t cap);
/* Turns the sums of a statistics pass into means and 1/std; clears sums. */
void vae_gn_finish(gn_global *g);
/* Encoder conv_in and down path: s->x holds the image [H*W, 3]; leaves
 * [h*w, chL] in s->x (g: the shared GroupNorm statistics, or NULL). */
ldm_status vae_encoder_down(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int H, int W, gn_global *g);
/* Encoder mid-block, norm_out, conv_out and quant_conv at latent size. */
ldm_status vae_encoder_mid(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int H, int W);
/* Decoder post_quant_conv, conv_in and mid-block at latent size. */
ldm_status vae_decoder_mid(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int h, int w);
/* Decoder up path, norm_out and conv_out: [h*w, chL] in s->x -> the image
 * [H*W, 3] in s->x. */
ldm_status vae_decoder_up(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int h, int w, gn_global *g);

#endif
