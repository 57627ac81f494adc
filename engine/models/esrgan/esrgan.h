/* Feed-forward super-resolution nets of the ESRGAN family, as spandrel
 * (the loader of chaiNNer and ComfyUI) reads them from a state dict:
 *  - RRDBNet (ESRGAN, Real-ESRGAN, BSRGAN): spandrel's ESRGAN arch, with the
 *    original "old ESRGAN" keys (model.0, model.1.sub.N.RDBr.convk.0, ...),
 *    the Real-ESRGAN / basicsr keys (conv_first, body.N.rdbr.convk, conv_body,
 *    conv_upK, conv_hr, conv_last) and the BSRGAN ones (RRDB_trunk.N.RDBr,
 *    trunk_conv, upconvK, HRconv); any block count; x4 / x2 / x1 by the
 *    upsampling convs and Real-ESRGAN's pixel-unshuffle of the input;
 *  - SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3): spandrel's
 *    Compact arch, body.{2i} convs with PReLU body.{2i+1}, pixel shuffle, plus
 *    the nearest-upsampled input.
 * Hyper-parameters and scale come from the tensors' names and shapes. */
#ifndef LDM_MODELS_ESRGAN_ESRGAN_H
#define LDM_MODELS_ESRGAN_ESRGAN_H

#include <stdbool.h>
#include "core/tensor.h"
#include "core/threads.h"
#include "io/source.h"
#include "core/eval_options.h"

typedef enum ldm_sr_arch {
  LDM_SR_NONE = 0,
  LDM_SR_RRDB,              /* RRDBNet: ESRGAN / Real-ESRGAN / BSRGAN */
  LDM_SR_COMPACT            /* SRVGGNetCompact */
} ldm_sr_arch;

typedef enum ldm_sr_keys {
  LDM_SR_KEYS_OLD = 0,      /* model.0.weight, model.1.sub.0.RDB1.conv1.0.weight */
  LDM_SR_KEYS_REALESRGAN,   /* conv_first.weight, body.0.rdb1.conv1.weight */
  LDM_SR_KEYS_BSRGAN,       /* conv_first.weight, RRDB_trunk.0.RDB1.conv1.weight */
  LDM_SR_KEYS_COMPACT       /* body.0.weight, body.1.weight (PReLU) */
} ldm_sr_keys;

typedef struct ldm_sr_config {  /* values for RealESRGAN_x4plus / realesr-general-x4v3 */
  ldm_sr_arch arch;
  ldm_sr_keys keys;
  int in_nc;                /* 3 (12 / 48 with a pixel-unshuffled input) */
  int out_nc;               /* 3 */
  int nf;                   /* 64 feature channels */
  int gc;                   /* 32 growth channels (RRDB) */
  int n_blocks;             /* 23 RRDBs / 32 body convs (Compact) */
  int n_up;                 /* RRDB: 2 nearest-x2 + conv stages; Compact: 0 */
  int shuffle;              /* 1, or 2 / 4: the input is pixel-unshuffled */
  int scale;                /* 4: output pixels per input pixel per side */
  int64_t n_params;
} ldm_sr_config;

typedef struct ldm_sr ldm_sr;

/* Reads the architecture from the tensors of a single-file source.
 * c->arch = LDM_SR_NONE (and LDM_OK) when the file holds no such net;
 * LDM_ERR_UNSUPPORTED / LDM_ERR_SHAPE naming the tensor when it looks like
 * one but cannot be run (ESRGAN+, odd shapes). */
ldm_status ldm_sr_probe(const ldm_source *src, ldm_sr_config *c, ldm_error *err);
/* Short description: "RRDBNet (Real-ESRGAN keys), 23 blocks, 64 features, x4". */
void ldm_sr_describe(const ldm_sr_config *c, char *buf, size_t n);

ldm_status ldm_sr_load(ldm_sr **out, const ldm_source *src, ldm_error *err);
void ldm_sr_free(ldm_sr *sr);
const ldm_sr_config *ldm_sr_get_config(const ldm_sr *sr);

/* One image through the net, channels-last: x [H*W, 3] (0..1, RGB) ->
 * y [(H*s)*(W*s), 3], s = config scale; unclamped, as the torch module. */
ldm_status ldm_sr_forward(ldm_ctx *ctx, const ldm_sr *sr, float *y, const float *x, int H, int W);

/* Called after each tile; non-zero cancels (LDM_ERR_CANCELLED). */
typedef int (*ldm_sr_tile_fn)(void *user, int done, int total);

/* Input pixels per side a tile has when the caller gives none (tile <= 0),
 * the overlap of neighbouring tiles (input pixels), and the largest image
 * upscaled in one piece (input pixels, width x height). */
enum { LDM_SR_TILE = 192, LDM_SR_OVERLAP = 32, LDM_SR_WHOLE_PX = 256 * 256 };

/* The number of tiles ldm_sr_upscale runs for these arguments. */
int ldm_sr_tile_count(int H, int W, int tile, int overlap);
/* A tile pixel's blend weight (x in 0..t-1, tile origin o, image size n;
 * the origins come from ldm_tile_origins in ops.h). */
float ldm_sr_tile_weight(int x, int t, int o, int n, int ov);

/* x [H*W, 3] -> y [(H*s)*(W*s), 3] as ldm_sr_forward, in overlapping tiles
 * of tile x tile input pixels (overlap `overlap`; <= 0: the defaults, the
 * overlap a quarter of a given tile, 4 .. LDM_SR_OVERLAP; an
 * image within LDM_SR_WHOLE_PX and tile <= 0: one piece). Each tile's
 * outer quarter of the overlap is dropped (its receptive field reaches past
 * the tile), the middle half cross-faded linearly. Scratch: the tile's
 * activations only. */
ldm_status ldm_sr_upscale(ldm_ctx *ctx, const ldm_sr *sr, float *y, const float *x, int H, int W, int tile,
                          int overlap, ldm_sr_tile_fn fn, void *user);

/* `ldm eval esrgan` (esrgan_eval.c): the runner behind ldm_eval_run. */
ldm_status ldm_eval_esrgan(const ldm_eval_params *p, int threads, ldm_error *err);

#endif
