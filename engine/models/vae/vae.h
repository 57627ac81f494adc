/* Image <-> latent: the AutoencoderKL of SD1.x/SD2.x/SDXL (diffusers
 * AutoencoderKL; ldm.models.autoencoder.AutoencoderKL in the original code),
 * TAESD (diffusers AutoencoderTiny) and the zero-weight linear latent preview.
 * Tensors at this interface are NCHW f32 as in PyTorch; images in [-1, 1];
 * latents "unscaled" (what the VAE produces) unless a name says otherwise. */
#ifndef LDM_MODELS_VAE_H
#define LDM_MODELS_VAE_H

#include <stdbool.h>
#include <stdint.h>
#include "core/tensor.h"
#include "core/threads.h"
#include "io/source.h"
#include "models/family.h"
#include "core/config_keys.h"
#include "core/eval_options.h"

#define LDM_VAE_MAX_LEVELS 6
#define LDM_VAE_MAX_LAYERS 4

/* ---- AutoencoderKL ------------------------------------------------------ */

typedef struct ldm_vae_config {
  int levels;                      /* len(block_out_channels): 4 */
  int ch[LDM_VAE_MAX_LEVELS];      /* block_out_channels: 128, 256, 512, 512 */
  int layers;                      /* layers_per_block (encoder): 2 */
  int groups;                      /* norm_num_groups: 32 */
  int latent_channels;             /* 4 */
  int image_channels;              /* 3 */
  bool has_encoder, has_decoder;   /* a decode-only file has no encoder */
  bool quant_conv, post_quant_conv;/* 1x1 convs around the latent: true */
  bool mid_attention;              /* mid-block self-attention: true */
  float scale;                     /* scaling_factor: 0.18215 (SDXL 0.13025) */
  float shift;                     /* shift_factor: 0 */
} ldm_vae_config;

typedef struct ldm_vae ldm_vae;

typedef struct ldm_vae_load_opts {
  const char *part;     /* diffusers subfolder, NULL = "vae" */
  int groups;           /* 0 = config.json's norm_num_groups, else 32 */
  float scale;          /* 0 = config.json's scaling_factor, else by family */
  ldm_family family;    /* used for the scale when no config says */
} ldm_vae_load_opts;

/* Every AutoencoderKL config key and how the loader treats it (core/config_keys.h). */
const ldm_config_keys *ldm_vae_config_keys(void);
/* A diffusers vae/config.json: every key checked (a setting the engine does
 * not compute is refused), norm_num_groups, scaling_factor and shift_factor
 * (when present, each checked against its range). */
ldm_status ldm_vae_config_json(const char *text, const char *file, int *groups, double *scale, double *shift,
                               ldm_error *err);
/* Finds the VAE in src: a checkpoint's `first_stage_model.*` (or `vae.*`)
 * tensors, a diffusers `vae/` folder, or a standalone VAE file with
 * prefixless original or diffusers names. Hyper-parameters come from the
 * tensor shapes. The VAE borrows src's mapping: keep src open while the VAE
 * lives. opts may be NULL. */
ldm_status ldm_vae_load(ldm_vae **out, const ldm_source *src,
                        const ldm_vae_load_opts *opts, ldm_error *err);
void ldm_vae_free(ldm_vae *vae);
const ldm_vae_config *ldm_vae_get_config(const ldm_vae *vae);
/* Pixels per latent pixel: 2^(levels-1), 8 for SD. */
int ldm_vae_factor(const ldm_vae *vae);
/* Latent size for an image of H x W: ceil(H / factor) x ceil(W / factor). */
void ldm_vae_latent_size(const ldm_vae *vae, int H, int W, int *h, int *w);

/* image [B, 3, H, W] in [-1, 1], any H, W >= 1 -> mean, logvar
 * [B, Cl, h, w] (h, w from ldm_vae_latent_size). Sides that are not a
 * multiple of the factor are padded by reflection at the bottom/right first.
 * logvar may be NULL; it is clamped to [-30, 20] as diffusers does. */
ldm_status ldm_vae_encode(ldm_ctx *ctx, const ldm_vae *vae, float *mean,
                          float *logvar, const float *image, int B, int H,
                          int W);
/* latent [B, Cl, h, w] unscaled -> image [B, 3, H, W] (about [-1, 1], not
 * clamped), the top-left H x W of the factor*h x factor*w decode; H = W = 0
 * means the full size. */
ldm_status ldm_vae_decode(ldm_ctx *ctx, const ldm_vae *vae, float *image,
                          const float *latent, int B, int h, int w, int H,
                          int W);

/* Tiled variants: the latent (decode) or image (encode) is cut into
 * overlapping tiles of `tile` latent pixels (0 = 64, i.e. 512 image pixels)
 * with `overlap` latent pixels shared by neighbours (0 = tile / 4); tile < 0
 * means untiled. Only the full-resolution parts run per tile: the mid-block
 * (with its global self-attention) always sees the whole latent, so tiling
 * never cuts the attention. GroupNorm layers of the tiled parts use
 * image-wide statistics gathered by a first pass over all tiles (diffusers'
 * tiled VAE uses each tile's own, which shifts colours between tiles);
 * decoded tiles are cross-faded with linear weights over the overlaps.
 * Scratch memory: the tile's activations plus a few latent-sized buffers
 * (the mid-block's), never the full-resolution activations of the image.
 * Cost: (1 + gn_passes) times the per-tile work of the full-resolution parts. */
ldm_status ldm_vae_decode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *image,
                                const float *latent, int B, int h, int w,
                                int H, int W, int tile, int overlap);
ldm_status ldm_vae_encode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *mean,
                                float *logvar, const float *image, int B,
                                int H, int W, int tile, int overlap);
/* As above with the number of statistics passes: 0 = each tile normalises
 * with its own statistics (as diffusers), -1 = default (1). */
ldm_status ldm_vae_decode_tiled_ex(ldm_ctx *ctx, const ldm_vae *vae,
                                   float *image, const float *latent, int B,
                                   int h, int w, int H, int W, int tile,
                                   int overlap, int gn_passes);
ldm_status ldm_vae_encode_tiled_ex(ldm_ctx *ctx, const ldm_vae *vae,
                                   float *mean, float *logvar,
                                   const float *image, int B, int H, int W,
                                   int tile, int overlap, int gn_passes);

/* Latent space <-> the space the UNet works in:
 * scaled = (z - shift) * scale; unscaled = scaled / scale + shift. */
void ldm_vae_scale_latent(const ldm_vae *vae, float *z, int64_t n);
void ldm_vae_unscale_latent(const ldm_vae *vae, float *z, int64_t n);
/* Default scaling factor of a family (0.18215 SD1/2, 0.13025 SDXL,
 * 0.08333 x4 upscaler). */
float ldm_vae_family_scale(ldm_family f);

/* ---- TAESD (AutoencoderTiny) -------------------------------------------- */

typedef struct ldm_taesd ldm_taesd;

/* Loads TAESD from a diffusers AutoencoderTiny (folder with vae/ or a file
 * with encoder.layers.* / decoder.layers.*) or from the original
 * taesd_encoder / taesd_decoder files (nn.Sequential indices). `src2` is an
 * optional second source (the decoder file when src is the encoder file, or
 * the other way round); either half may be absent. */
ldm_status ldm_taesd_load(ldm_taesd **out, const ldm_source *src,
                          const ldm_source *src2, ldm_error *err);
void ldm_taesd_free(ldm_taesd *t);
bool ldm_taesd_has_encoder(const ldm_taesd *t);
bool ldm_taesd_has_decoder(const ldm_taesd *t);
int ldm_taesd_factor(const ldm_taesd *t);
int ldm_taesd_latent_channels(const ldm_taesd *t);
/* image [B, 3, H, W] in [-1, 1], H and W multiples of the factor ->
 * latent [B, Cl, H/f, W/f] in the UNet's (scaled) latent space. */
ldm_status ldm_taesd_encode(ldm_ctx *ctx, const ldm_taesd *t, float *latent,
                            const float *image, int B, int H, int W);
/* scaled latent [B, Cl, h, w] -> image [B, 3, h*f, w*f] in about [-1, 1]. */
ldm_status ldm_taesd_decode(ldm_ctx *ctx, const ldm_taesd *t, float *image,
                            const float *latent, int B, int h, int w);

/* ---- zero-weight preview ------------------------------------------------ */

/* Linear latent -> RGB approximation (4x3 factors per family, as the
 * previewers of AUTOMATIC1111/ComfyUI): latent [4, h, w] in the scaled (UNet)
 * space of one image -> rgb [h, w, 3] u8, one pixel per latent pixel.
 * Returns LDM_ERR_UNSUPPORTED for a family without factors. */
ldm_status ldm_latent_preview(ldm_family f, uint8_t *rgb, const float *latent,
                              int h, int w, ldm_error *err);

/* `ldm eval vae-encode|vae-decode|taesd-encode|taesd-decode` (vae_eval.c):
 * the runners behind ldm_eval_run. */
ldm_status ldm_eval_vae_encode(const ldm_eval_params *p, int threads, ldm_error *err);
ldm_status ldm_eval_vae_decode(const ldm_eval_params *p, int threads, ldm_error *err);
ldm_status ldm_eval_taesd_encode(const ldm_eval_params *p, int threads, ldm_error *err);
ldm_status ldm_eval_taesd_decode(const ldm_eval_params *p, int threads, ldm_error *err);

#endif
