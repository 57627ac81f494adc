/* The denoising UNet of the Stable Diffusion family: diffusers'
 * UNet2DConditionModel (= the original ldm openaimodel.UNetModel) covering
 * SD1.x, SD2.x, SDXL, 9-channel inpainting, the x4 upscaler and LCM's guidance
 * embedding. Weights keep the original single-file names inside the engine;
 * diffusers names are mapped onto them at load. */
#ifndef LDM_MODELS_UNET_H
#define LDM_MODELS_UNET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "core/threads.h"
#include "io/lora.h"
#include "io/source.h"
#include "models/family.h"
#include "core/config_keys.h"
#include "core/eval_options.h"

#define LDM_UNET_MAX_LEVELS 6

typedef enum ldm_unet_layout {
  LDM_UNET_LAYOUT_LDM = 0,   /* model.diffusion_model.input_blocks... */
  LDM_UNET_LAYOUT_LDM_BARE,  /* input_blocks... (UNet-only file) */
  LDM_UNET_LAYOUT_DIFFUSERS, /* down_blocks... (unet/ folder or file) */
  LDM_UNET_LAYOUT_CONTROL    /* control_model.input_blocks... (original ControlNet) */
} ldm_unet_layout;

/* Hyper-parameters, read from tensor shapes (and unet/config.json when the
 * source is a diffusers folder). Values in comments are SD1.5's. */
typedef struct ldm_unet_config {
  int in_channels;              /* 4 (inpainting 9, x4 upscaler 7) */
  int out_channels;             /* 4 */
  int n_levels;                 /* 4 (SDXL 3) */
  int channels[LDM_UNET_MAX_LEVELS];   /* 320 640 1280 1280 */
  int attn_depth[LDM_UNET_MAX_LEVELS]; /* transformer blocks at each level: 1 1 1 0 (SDXL 0 2 10) */
  int heads[LDM_UNET_MAX_LEVELS];      /* 8 8 8 8 (SD2 5 10 20 20: head dim 64) */
  int mid_depth;                /* 1 (SDXL 10); 0 = middle block without attention */
  int layers_per_block;         /* 2 */
  int time_embed_dim;           /* 1280 = 4 * channels[0] */
  int context_dim;              /* 768 (SD2 1024, SDXL 2048) */
  int groups;                   /* 32 GroupNorm groups */
  float norm_eps;               /* 1e-5 (transformers' GroupNorm: 1e-6) */
  bool linear_proj;             /* false: 1x1 conv proj_in/out (SD2/SDXL: linear) */
  bool only_cross[LDM_UNET_MAX_LEVELS]; /* x4: attn1 attends to the context at levels 0-2 */
  int adm_in_channels;          /* 0 (SDXL 2816 = 1280 text_embeds + 6 x 256 time ids) */
  int addition_time_embed_dim;  /* 0 (SDXL 256; 0 = derive from text_embeds' width) */
  int num_classes;              /* 0 (x4 upscaler 1000 noise levels) */
  int time_cond_proj_dim;       /* 0 (LCM 256) */
  bool flip_sin_to_cos;         /* true */
  float freq_shift;             /* 0 */
  bool center_input;            /* false (center_input_sample: the sample goes in as 2 x - 1) */
  float mid_scale;              /* 1 (mid_block_scale_factor: the middle resnets' output divisor) */
  /* what was found in the source */
  ldm_unet_layout layout;
  bool controlnet;              /* a ControlNet: input blocks and middle block only (controlnet.h) */
  int64_t n_tensors;            /* tensors of the UNet in the source */
  int64_t n_params;             /* their elements */
  int64_t n_ignored;            /* UNet-prefixed tensors not used, + model_ema.* */
  int heads_from;               /* 0 family default, 1 config.json, 2 override */
} ldm_unet_config;

/* Settings the weights cannot tell (original checkpoints take them from a
 * yaml config). 0 = from config.json, else the family's value (SD1.x and x4:
 * 8 heads; SD2.x/SDXL: head dim 64; 32 groups). */
typedef struct ldm_unet_overrides {
  int num_heads;
  int head_dim;
  int groups;
} ldm_unet_overrides;

/* ---- weights (views of the mapped file, stored dtype) ------------------- */
typedef struct ldm_unet_resblock {   /* ResBlock / ResnetBlock2D */
  int cin, cout;
  ldm_tensor norm1_w, norm1_b;       /* in_layers.0     [cin] */
  ldm_tensor conv1_w, conv1_b;       /* in_layers.2     [cout, cin, 3, 3] */
  ldm_tensor emb_w, emb_b;           /* emb_layers.1    [cout, temb] */
  ldm_tensor norm2_w, norm2_b;       /* out_layers.0    [cout] */
  ldm_tensor conv2_w, conv2_b;       /* out_layers.3    [cout, cout, 3, 3] */
  ldm_tensor skip_w, skip_b;         /* skip_connection [cout, cin] (1x1); data NULL if cin == cout */
} ldm_unet_resblock;

typedef struct ldm_unet_tblock {     /* BasicTransformerBlock */
  bool attn1_cross;                  /* attn1 reads the context (x4's only_cross_attention) */
  ldm_tensor norm1_w, norm1_b;       /* [C] */
  ldm_tensor q1, k1, v1;             /* attn1.to_q [C, C], to_k/to_v [C, C or D] */
  ldm_tensor o1_w, o1_b;             /* attn1.to_out.0 [C, C] */
  ldm_tensor norm2_w, norm2_b;
  ldm_tensor q2, k2, v2;             /* attn2.to_q [C, C], to_k/to_v [C, D] */
  ldm_tensor o2_w, o2_b;
  ldm_tensor norm3_w, norm3_b;
  ldm_tensor ff1_w, ff1_b;           /* ff.net.0.proj [8C, C] (GEGLU) */
  ldm_tensor ff2_w, ff2_b;           /* ff.net.2      [C, 4C] */
} ldm_unet_tblock;

typedef struct ldm_unet_transformer { /* SpatialTransformer / Transformer2DModel */
  int channels, heads, depth;
  ldm_tensor norm_w, norm_b;         /* GroupNorm(groups, C, eps 1e-6) */
  ldm_tensor proj_in_w, proj_in_b;   /* [C, C] (1x1 conv viewed as linear) */
  ldm_unet_tblock *blocks;           /* [depth] */
  ldm_tensor proj_out_w, proj_out_b; /* [C, C] */
} ldm_unet_transformer;

typedef struct ldm_unet_block {      /* one input_blocks.N / output_blocks.N */
  bool has_res, has_attn, has_down, has_up;
  int level;
  ldm_unet_resblock res;
  ldm_unet_transformer attn;
  ldm_tensor conv_w, conv_b;         /* Downsample.op (stride 2) / Upsample.conv */
} ldm_unet_block;

typedef struct ldm_unet_weights {
  ldm_tensor time1_w, time1_b;       /* time_embed.0 [temb, C0] */
  ldm_tensor time2_w, time2_b;       /* time_embed.2 [temb, temb] */
  ldm_tensor cond_proj_w;            /* time_embed.cond_proj [C0, tcond] (LCM), no bias */
  ldm_tensor class_emb;              /* label_emb.weight [classes, temb] (x4) */
  ldm_tensor add1_w, add1_b;         /* label_emb.0.0 [temb, adm] (SDXL) */
  ldm_tensor add2_w, add2_b;         /* label_emb.0.2 [temb, temb] */
  ldm_tensor conv_in_w, conv_in_b;   /* input_blocks.0.0 [C0, in, 3, 3] */
  ldm_unet_block *input;             /* input_blocks[1..n_input-1] ([0] = conv_in) */
  int n_input;
  ldm_unet_resblock mid_res1, mid_res2;   /* middle_block.0 / .2 */
  ldm_unet_transformer mid_attn;          /* middle_block.1 */
  bool mid_has_attn;
  ldm_unet_block *output;            /* output_blocks[0..n_output-1] */
  int n_output;
  ldm_tensor norm_out_w, norm_out_b; /* out.0 [C0] */
  ldm_tensor conv_out_w, conv_out_b; /* out.2 [out, C0, 3, 3] */
} ldm_unet_weights;

typedef struct ldm_unet {
  ldm_unet_config cfg;
  ldm_unet_weights w;
  ldm_lora_table lora;   /* every bound weight by its diffusers and original module path */
} ldm_unet;

/* Added conditions (NULL when the model has none). */
typedef struct ldm_unet_cond {
  const float *context;         /* encoder_hidden_states [B, T, context_dim] */
  int n_tokens;                 /* T (77; any >= 1) */
  const float *text_embeds;     /* SDXL pooled text embedding [B, n_text] */
  int n_text;                   /* 1280 */
  const float *time_ids;        /* SDXL [B, 6]: orig h, w, crop top, left, target h, w */
  const float *class_labels;    /* x4 noise level [B] (integer values) */
  const float *timestep_cond;   /* LCM guidance embedding [B, time_cond_proj_dim] */
} ldm_unet_cond;

/* Every UNet2DConditionModel config key and how the loader treats it
 * (core/config_keys.h). */
const ldm_config_keys *ldm_unet_config_keys(void);
/* A diffusers unet/config.json's settings into c (the keys present, each
 * checked against its range); `file` names it in messages. */
ldm_status ldm_unet_config_json(const char *text, const char *file, ldm_unet_config *c,
                                const ldm_unet_overrides *ov, ldm_error *err);
/* Reads the hyper-parameters (and the layout) without building weights. */
ldm_status ldm_unet_probe(const ldm_source *src, const ldm_unet_overrides *ov,
                          ldm_unet_config *cfg, ldm_error *err);
/* Loads the UNet of src (single file with or without the
 * model.diffusion_model. prefix, diffusers folder, or diffusers unet file).
 * Weights are views of src's mapping: src must outlive the UNet. Missing
 * tensors are an error that names them; unused ones are counted in
 * cfg.n_ignored. ov may be NULL. */
ldm_status ldm_unet_load(ldm_unet **out, const ldm_source *src,
                         const ldm_unet_overrides *ov, ldm_error *err);
void ldm_unet_free(ldm_unet *u);
/* Drops the UNet's mapped weights (those of src, which it was loaded from)
 * from resident memory until they are next read (ldm_source_release). */
void ldm_unet_release(const ldm_unet *u, const ldm_source *src);

/* One evaluation (e.g. the conditional and unconditional halves of a CFG step
 * as B = 2): sample [B, H*W, in_channels] channels-last, timesteps [B],
 * out [B, H*W, out_channels] (caller-owned, not in ctx->scratch). Any H, W
 * >= 1 (odd sizes as diffusers: each upsample matches its skip's size).
 * Activations come from ctx->scratch, reset on return: from the second call
 * at the same size on, no allocation. Polls ctx->cancel between blocks and
 * returns LDM_ERR_CANCELLED when set. */
ldm_status ldm_unet_forward(ldm_ctx *ctx, const ldm_unet *u, float *out,
                            const float *sample, int B, int H, int W,
                            const float *timesteps, const ldm_unet_cond *cond);

/* What a ControlNet adds to a forward pass (NULL members: nothing). */
typedef ldm_status (*ldm_unet_tap_fn)(void *user, int i, const float *h, int B, int H, int W, int C);
typedef struct ldm_unet_extra {
  /* [B, H*W, C0]: added to conv_in's output (the ControlNet's embedded
   * control image) */
  const float *hint;
  /* Encoder mode (a ControlNet): tap is called with every skip tensor
   * h [B, H*W, C] (i = 0 .. n_input - 1, conv_in's output first) and then
   * the middle block's output (i = n_input); the pass ends there. */
  ldm_unet_tap_fn tap;
  void *tap_user;
  /* ControlNet residuals: down_res[i] [B, H_i*W_i, C_i] added to skip i
   * after the down path, mid_res to the middle block's output
   * (UNet2DConditionModel's down/mid_block_additional_residual(s)). */
  float *const *down_res;
  const float *mid_res;
} ldm_unet_extra;

/* ldm_unet_forward with ControlNet inputs or outputs (x may be NULL). */
ldm_status ldm_unet_forward_ex(ldm_ctx *ctx, const ldm_unet *u, float *out, const float *sample, int B, int H, int W,
                               const float *timesteps, const ldm_unet_cond *cond, const ldm_unet_extra *x);
/* ldm_unet_load of a ControlNet's UNet part (controlnet = true: a source
 * without one is an error; false: a ControlNet is refused). */
ldm_status ldm_unet_load_ex(ldm_unet **out, const ldm_source *src, const ldm_unet_overrides *ov, bool controlnet,
                            ldm_error *err);

/* Family from the hyper-parameters alone (family.c). */
ldm_family ldm_unet_guess_family(const ldm_unet_config *cfg);

/* `ldm eval unet` (unet_eval.c): the runner behind ldm_eval_run. */
ldm_status ldm_eval_unet(const ldm_eval_params *p, int threads, ldm_error *err);

#endif
