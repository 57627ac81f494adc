/* ControlNet (diffusers' ControlNetModel = the original cldm ControlNet): the
 * UNet's time embedding, conv_in, down blocks and middle block (the UNet's
 * own code, in encoder mode), plus the control image's embedding
 * (input_hint_block / controlnet_cond_embedding), whose output is added to
 * conv_in's, and one 1x1 "zero conv" per skip and for the middle block
 * (zero_convs / controlnet_down_blocks, middle_block_out /
 * controlnet_mid_block) that make the residuals the UNet adds. */
#ifndef LDM_MODELS_UNET_CONTROLNET_H
#define LDM_MODELS_UNET_CONTROLNET_H

#include "models/unet/unet.h"

#define LDM_CN_MAX_EMB   16
#define LDM_CN_MAX_SKIPS (1 + LDM_UNET_MAX_LEVELS * 66)

typedef struct ldm_controlnet {
  ldm_unet *u;                                             /* encoder part: cfg.controlnet is true */
  ldm_family family;                                       /* sd1 / sd2 / sdxl (from the UNet part's shapes) */
  bool bgr;                                                /* config.json controlnet_conditioning_channel_order "bgr" */
  int hint_channels;                                       /* 3 */
  int n_emb;                                               /* convs between conv_in and conv_out (6) */
  ldm_tensor emb_in_w, emb_in_b;                           /* input_hint_block.0 [e0, hint, 3, 3] */
  ldm_tensor emb_w[LDM_CN_MAX_EMB], emb_b[LDM_CN_MAX_EMB]; /* input_hint_block.2, 4, ... */
  int emb_stride[LDM_CN_MAX_EMB];                          /* 1, 2, 1, 2, ... */
  ldm_tensor emb_out_w, emb_out_b;                         /* input_hint_block.(2 n_emb + 2) [C0, e_last, 3, 3] */
  int n_zero;                                              /* = u->w.n_input */
  ldm_tensor *zero_w, *zero_b;                             /* zero_convs.i.0 [C_i, C_i] (1x1) */
  ldm_tensor mid_w, mid_b;                                 /* middle_block_out.0 [C, C] */
} ldm_controlnet;

/* Residuals of one or more ControlNets for one UNet evaluation, summed:
 * down[i] [B, H_i*W_i, C_i] (one per UNet skip) and mid. Buffers are made
 * on the first ldm_controlnet_forward and reused while the sizes stay. */
typedef struct ldm_controlnet_res {
  int n;
  float *down[LDM_CN_MAX_SKIPS];
  int64_t size[LDM_CN_MAX_SKIPS];
  float *mid;
  int64_t mid_size;
} ldm_controlnet_res;

/* ov: what the weights cannot tell (heads, groups) for an original-layout
 * file; NULL = the family's values. ldm_controlnet_overrides_for gives the
 * ones of the UNet it is to steer. */
ldm_status ldm_controlnet_load(ldm_controlnet **out, const ldm_source *src, const ldm_unet_overrides *ov,
                               ldm_error *err);
void ldm_controlnet_overrides_for(const ldm_unet *u, ldm_unet_overrides *ov);
void ldm_controlnet_free(ldm_controlnet *cn);
/* Whether the ControlNet's down path has the UNet's skip layout (levels,
 * widths, blocks per level); else an error naming both files. */
ldm_status ldm_controlnet_check_fit(const ldm_controlnet *cn, const char *cn_path, const ldm_unet *u,
                                    const char *unet_path, ldm_error *err);

/* The control image [B, hint_channels, 8h, 8w] planar (0..1, the inpaint
 * convention's -1 kept) -> the embedding added after conv_in, [B, h*w, C0]
 * channels-last (caller-owned). The image is NCHW per batch item. */
ldm_status ldm_controlnet_embed(ldm_ctx *ctx, const ldm_controlnet *cn, float *out, const float *image, int B, int Hi,
                                int Wi, int *h, int *w);

/* One evaluation: sample [B, h*w, 4] channels-last, timesteps [B], the
 * conditioning as for the UNet, emb from ldm_controlnet_embed; adds
 * scale x the residuals to res (zero them before the first net). */
ldm_status ldm_controlnet_forward(ldm_ctx *ctx, const ldm_controlnet *cn, const float *sample, int B, int h, int w,
                                  const float *timesteps, const ldm_unet_cond *cond, const float *emb, float scale,
                                  ldm_controlnet_res *res);
void ldm_controlnet_res_zero(ldm_controlnet_res *res);
void ldm_controlnet_res_free(ldm_controlnet_res *res);

/* `ldm eval controlnet` (controlnet_eval.c): the runner behind ldm_eval_run. */
ldm_status ldm_eval_controlnet(const ldm_eval_params *p, int threads, ldm_error *err);

#endif
