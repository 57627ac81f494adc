/* AutoencoderKL (the SD VAE) encode and decode of whole images, with
 * reflection padding for sizes that are not multiples of the factor, and
 * their tiled variants (GroupNorm statistics shared across tiles). */
#include "models/vae/vae_impl.h"
#include "core/arena.h"
#include "core/status.h"
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reflection index (as torch 'reflect', continued periodically so any pad
 * size works): maps i in [0, n + pad) into [0, n). */
static int reflect_index(int i, int n) {
  if (n == 1) return 0;
  int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

/* Copies the region [y0, y0+th) x [x0, x0+tw) of channel-first image planes
 * (C planes of H x W, row stride W) into channels-last dst [th*tw, C], rows
 * and columns outside the image reflected. */
static void gather_nhwc(float *dst, const float *img, int C, int H, int W, int y0, int x0, int th, int tw) {
  for (int y = 0; y < th; y++) {
    int sy = reflect_index(y0 + y, H);
    for (int x = 0; x < tw; x++) {
      int sx = reflect_index(x0 + x, W);
      float *d = dst + ((size_t)y * tw + x) * C;
      for (int ch = 0; ch < C; ch++) d[ch] = img[((size_t)ch * H + sy) * W + sx];
    }
  }
}

/* Copies rows [y0, y0+th) x cols [x0, x0+tw) of a channels-last [H*W, C]
 * buffer to or from a tile buffer [th*tw, C]. */
static void copy_rect(float *dst, int dst_w, int dx, int dy, const float *src, int src_w, int sx, int sy, int th,
                      int tw, int C) {
  for (int y = 0; y < th; y++)
    memcpy(dst + ((size_t)(dy + y) * dst_w + dx) * C, src + ((size_t)(sy + y) * src_w + sx) * C,
           (size_t)tw * C * sizeof(float));
}

/* The VAE has the half (part: "encoder" or "decoder") and the sizes are in
 * range; what names the call in messages. */
static ldm_status check_call(ldm_ctx *ctx, const ldm_vae *vae, bool has, const char *part, const char *what, int B,
                             int H, int W) {
  if (!has)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED,
                    "%s: this VAE has no %s (no tensor '%s.conv_in.weight' or '%s.conv_out.weight')", vae->path, part,
                    part, part);
  if (B < 1 || H < 1 || W < 1 || H > 65536 || W > 65536)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: size %d x %d x %d out of range", what, B, H, W);
  return LDM_OK;
}

ldm_status ldm_vae_encode(ldm_ctx *ctx, const ldm_vae *vae, float *mean, float *logvar, const float *image, int B,
                          int H, int W) {
  return ldm_vae_encode_tiled(ctx, vae, mean, logvar, image, B, H, W, -1, 0);
}

ldm_status ldm_vae_decode(ldm_ctx *ctx, const ldm_vae *vae, float *image, const float *latent, int B, int h, int w,
                          int H, int W) {
  return ldm_vae_decode_tiled(ctx, vae, image, latent, B, h, w, H, W, -1, 0);
}

/* ---- tiling -----------------------------------------------------------------
 * Tiles of t latent pixels advance by t - overlap; the last one is moved back
 * to end at the border, so every tile has the full size. Each tile owns a
 * core: the part of its span closer to its own centre than to a neighbour's
 * (cores partition the image). Decoded pixels are the weighted mean of the
 * tiles covering them, a tile's weight ramping linearly across the parts it
 * shares with its neighbours (separable in y and x, so the normaliser is a
 * product of two 1-D sums); encoded features are taken from the cores. */

#define TILE_MAX 1024

typedef struct tile_axis {
  int n;               /* tiles */
  int start[TILE_MAX]; /* latent offsets */
  int size;            /* latent pixels per tile */
} tile_axis;

static void tile_axis_plan(tile_axis *a, int len, int tile, int overlap) {
  a->n = 0;
  if (tile >= len) {
    a->start[a->n++] = 0;
    a->size = len;
    return;
  }
  int stride = tile - overlap;
  a->size = tile;
  for (int s = 0; a->n < TILE_MAX - 1; s += stride) {
    if (s + tile >= len) break;
    a->start[a->n++] = s;
  }
  a->start[a->n++] = len - tile;
}

/* Core of tile k: [c0, c1) in latent pixels of the whole image. */
static void tile_core(const tile_axis *a, int len, int k, int *c0, int *c1) {
  *c0 = k == 0 ? 0 : (a->start[k - 1] + a->size + a->start[k]) / 2;
  *c1 = k == a->n - 1 ? len : (a->start[k] + a->size + a->start[k + 1]) / 2;
}

/* Weight of tile k of axis a at output position p (output units: latent
 * pixels times `scale`). */
static float tile_weight(const tile_axis *a, int k, int p, int scale) {
  const float b0 = (float)a->start[k] * scale, b1 = (float)(a->start[k] + a->size) * scale;
  float wgt = 1.0f, q = (float)p + 0.5f;
  if (k > 0) {
    float prev_end = (float)(a->start[k - 1] + a->size) * scale;
    if (q < prev_end) wgt *= (q - b0) / (prev_end - b0);
  }
  if (k + 1 < a->n) {
    float next_start = (float)a->start[k + 1] * scale;
    if (q > next_start) wgt *= (b1 - q) / (b1 - next_start);
  }
  return wgt;
}

static ldm_status tile_plan(ldm_ctx *ctx, tile_axis *ay, tile_axis *ax, int h, int w, int tile, int overlap) {
  if (tile < 0) { /* untiled */
    tile_axis_plan(ay, h, h, 0);
    tile_axis_plan(ax, w, w, 0);
    return LDM_OK;
  }
  if (tile == 0) tile = 64;
  if (overlap <= 0) overlap = tile / 4;
  if (tile < 4 || overlap >= tile)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "vae tiling: tile %d with overlap %d (need tile >= 4, overlap < tile)", tile, overlap);
  if ((h > tile && (h - tile) / (tile - overlap) > TILE_MAX - 4) ||
      (w > tile && (w - tile) / (tile - overlap) > TILE_MAX - 4))
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "vae tiling: too many tiles for %d x %d at tile %d", h, w, tile);
  tile_axis_plan(ay, h, tile, overlap);
  tile_axis_plan(ax, w, tile, overlap);
  return LDM_OK;
}

static float *axis_norm(const tile_axis *a, int len, int scale) {
  float *s = calloc((size_t)len, sizeof(float));
  if (!s) return NULL;
  for (int k = 0; k < a->n; k++) {
    int p0 = a->start[k] * scale, p1 = (a->start[k] + a->size) * scale;
    for (int p = p0; p < p1 && p < len; p++) s[p] += tile_weight(a, k, p, scale);
  }
  return s;
}

typedef struct tiling {
  tile_axis ay, ax;
  gn_global g;
  float *ny, *nx;
} tiling;

static void tiling_free(tiling *t) {
  if (!t) return;
  free(t->ny);
  free(t->nx);
  free(t);
}

/* A tile's latent origin and its core (the part of the image it owns). */
typedef struct tile_pos {
  int ty, tx, y0, x0, cy0, cy1, cx0, cx1;
} tile_pos;

/* Which passes collect and apply the shared GroupNorm statistics. */
static void tiling_pass(tiling *T, int pass, int gn_passes) {
  T->g.collect = pass < gn_passes;
  T->g.apply = pass > 0;
}

/* Tile k (row-major) of an h x w latent: its position, its core set as the
 * shared statistics' region (tile coordinates) and their layer count reset. */
static tile_pos tile_enter(tiling *T, int h, int w, int k) {
  int ty = k / T->ax.n, tx = k % T->ax.n;
  tile_pos t = {.ty = ty, .tx = tx, .y0 = T->ay.start[ty], .x0 = T->ax.start[tx]};
  tile_core(&T->ay, h, ty, &t.cy0, &t.cy1);
  tile_core(&T->ax, w, tx, &t.cx0, &t.cx1);
  T->g.cy0 = t.cy0 - t.y0, T->g.cy1 = t.cy1 - t.y0, T->g.cx0 = t.cx0 - t.x0, T->g.cx1 = t.cx1 - t.x0;
  T->g.layer = 0;
  return t;
}

/* The tiles of an h x w latent and the GroupNorm statistics passes (none
 * for a single tile); *out is set (for tiling_free) whatever happens. */
static ldm_status tiling_new(ldm_ctx *ctx, const ldm_vae_config *c, int h, int w, int tile, int overlap, int *gn_passes,
                             const char *what, tiling **out) {
  tiling *T = *out = calloc(1, sizeof *T);
  if (!T) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory", what);
  LDM_TRY(tile_plan(ctx, &T->ay, &T->ax, h, w, tile, overlap));
  if (*gn_passes < 0) *gn_passes = 1;
  if (T->ay.n == 1 && T->ax.n == 1) *gn_passes = 0;
  T->g.groups = c->groups;
  T->g.th = T->ay.size;
  return LDM_OK;
}

ldm_status ldm_vae_encode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *mean, float *logvar, const float *image, int B,
                                int H, int W, int tile, int overlap) {
  return ldm_vae_encode_tiled_ex(ctx, vae, mean, logvar, image, B, H, W, tile, overlap, -1);
}

ldm_status ldm_vae_encode_tiled_ex(ldm_ctx *ctx, const ldm_vae *vae, float *mean, float *logvar, const float *image,
                                   int B, int H, int W, int tile, int overlap, int gn_passes) {
  const ldm_vae_config *c = &vae->cfg;
  LDM_TRY(check_call(ctx, vae, c->has_encoder, "encoder", "vae encode", B, H, W));
  const int f = ldm_vae_factor(vae), Cl = c->latent_channels, Ci = c->image_channels;
  const int CL = c->ch[c->levels - 1];
  int h, w;
  ldm_vae_latent_size(vae, H, W, &h, &w);
  tiling *T;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = tiling_new(ctx, c, h, w, tile, overlap, &gn_passes, "vae encode", &T);
  if (st != LDM_OK) goto done;
  bool single = T->ay.n == 1 && T->ax.n == 1;
  /* down-path features of the whole image [h*w, chL], then tile buffers */
  size_t n_feat = (size_t)h * w * CL;
  float *feat = ldm_arena_floats(ctx->scratch, n_feat);
  if (!feat) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae encode: out of memory for %zu floats", n_feat);
    goto done;
  }
  ldm_arena_mark tiles_mark = ldm_arena_get_mark(ctx->scratch);
  const size_t plane = (size_t)h * w;
  for (int b = 0; b < B && st == LDM_OK; b++) {
    const float *img = image + (size_t)b * Ci * H * W;
    vae_bufs s;
    st = vae_alloc_bufs(ctx, &s, vae_enc_down_cap(c, T->ay.size * f, T->ax.size * f));
    for (int pass = 0; pass <= gn_passes && st == LDM_OK; pass++) {
      tiling_pass(T, pass, gn_passes);
      for (int k = 0; k < T->ay.n * T->ax.n && st == LDM_OK; k++) {
        tile_pos t = tile_enter(T, h, w, k);
        int y0 = t.y0, x0 = t.x0, th = T->ay.size, tw = T->ax.size, cy0 = t.cy0, cy1 = t.cy1, cx0 = t.cx0, cx1 = t.cx1;
        // image tile, reflected past the borders -> [th*f * tw*f, 3]
        gather_nhwc(s.x, img, Ci, H, W, y0 * f, x0 * f, th * f, tw * f);
        // conv_in + down path -> [th*tw, chL]
        st = vae_encoder_down(ctx, vae, &s, th * f, tw * f, single ? NULL : &T->g);
        if (st == LDM_OK && pass == gn_passes)
          copy_rect(feat, w, cx0, cy0, s.x, tw, cx0 - x0, cy0 - y0, cy1 - cy0, cx1 - cx0, CL);
      }
      if (T->g.collect) vae_gn_finish(&T->g);
    }
    ldm_arena_reset(ctx->scratch, tiles_mark);
    // mid, norm_out, conv_out, quant_conv on the whole latent -> [h*w, 2*Cl]
    if (st == LDM_OK) st = vae_alloc_bufs(ctx, &s, vae_mid_cap(c, h, w));
    if (st == LDM_OK) {
      memcpy(s.x, feat, n_feat * sizeof(float));
      st = vae_encoder_mid(ctx, vae, &s, h, w);
    }
    // moments -> mean, logvar clamped to [-30, 20] (NCHW)
    for (size_t p = 0; st == LDM_OK && p < plane; p++)
      for (int ch = 0; ch < Cl; ch++) {
        mean[((size_t)b * Cl + ch) * plane + p] = s.x[p * 2 * Cl + ch];
        if (logvar) logvar[((size_t)b * Cl + ch) * plane + p] = fminf(fmaxf(s.x[p * 2 * Cl + Cl + ch], -30.0f), 20.0f);
      }
    ldm_arena_reset(ctx->scratch, tiles_mark);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  tiling_free(T);
  return st;
}

ldm_status ldm_vae_decode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *image, const float *latent, int B, int h,
                                int w, int H, int W, int tile, int overlap) {
  return ldm_vae_decode_tiled_ex(ctx, vae, image, latent, B, h, w, H, W, tile, overlap, -1);
}

ldm_status ldm_vae_decode_tiled_ex(ldm_ctx *ctx, const ldm_vae *vae, float *image, const float *latent, int B, int h,
                                   int w, int H, int W, int tile, int overlap, int gn_passes) {
  const ldm_vae_config *c = &vae->cfg;
  LDM_TRY(check_call(ctx, vae, c->has_decoder, "decoder", "vae decode", B, h, w));
  const int f = ldm_vae_factor(vae), Cl = c->latent_channels, Ci = c->image_channels;
  const int CL = c->ch[c->levels - 1];
  if (H == 0 && W == 0) {
    H = h * f;
    W = w * f;
  }
  if (H < 1 || W < 1 || H > h * f || W > w * f)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "vae decode: output %d x %d does not fit the %d x %d decode of a %d x %d latent", H, W, h * f,
                    w * f, h, w);
  tiling *T;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = tiling_new(ctx, c, h, w, tile, overlap, &gn_passes, "vae decode", &T);
  if (st != LDM_OK) goto done;
  bool single = T->ay.n == 1 && T->ax.n == 1;
  T->ny = axis_norm(&T->ay, h * f, f);
  T->nx = axis_norm(&T->ax, w * f, f);
  size_t n_feat = (size_t)h * w * CL;
  float *feat = ldm_arena_floats(ctx->scratch, n_feat);
  if (!T->ny || !T->nx || !feat) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae decode: out of memory");
    goto done;
  }
  ldm_arena_mark tiles_mark = ldm_arena_get_mark(ctx->scratch);
  const size_t plane = (size_t)H * W;
  if (!single) memset(image, 0, (size_t)B * Ci * plane * sizeof(float));
  for (int b = 0; b < B && st == LDM_OK; b++) {
    vae_bufs s;
    // post_quant_conv, conv_in, mid on the whole latent -> [h*w, chL]
    st = vae_alloc_bufs(ctx, &s, vae_mid_cap(c, h, w));
    if (st != LDM_OK) break;
    ldm_nchw_to_nhwc(s.x, latent + (size_t)b * Cl * h * w, 1, Cl, (int64_t)h * w);
    st = vae_decoder_mid(ctx, vae, &s, h, w);
    if (st != LDM_OK) break;
    memcpy(feat, s.x, n_feat * sizeof(float));
    ldm_arena_reset(ctx->scratch, tiles_mark);
    st = vae_alloc_bufs(ctx, &s, vae_dec_up_cap(c, T->ay.size, T->ax.size));
    float *ib = image + (size_t)b * Ci * plane;
    for (int pass = 0; pass <= gn_passes && st == LDM_OK; pass++) {
      tiling_pass(T, pass, gn_passes);
      for (int k = 0; k < T->ay.n * T->ax.n && st == LDM_OK; k++) {
        tile_pos t = tile_enter(T, h, w, k);
        int y0 = t.y0, x0 = t.x0, th = T->ay.size, tw = T->ax.size, ty = t.ty, tx = t.tx;
        int Y0 = y0 * f, X0 = x0 * f, TH = th * f, TW = tw * f;
        if (pass == gn_passes && (Y0 >= H || X0 >= W)) continue; /* cropped away */
        // mid features of the tile -> up path -> [TH*TW, 3]
        copy_rect(s.x, tw, 0, 0, feat, w, x0, y0, th, tw, CL);
        st = vae_decoder_up(ctx, vae, &s, th, tw, single ? NULL : &T->g);
        if (st != LDM_OK || pass < gn_passes) continue;
        // blend into the image (NCHW), cropped to H x W
        for (int y = 0; y < TH && Y0 + y < H; y++) {
          float wy = single ? 1.0f : tile_weight(&T->ay, ty, Y0 + y, f) / T->ny[Y0 + y];
          for (int x = 0; x < TW && X0 + x < W; x++) {
            const float *p = s.x + ((size_t)y * TW + x) * Ci;
            size_t o = (size_t)(Y0 + y) * W + (X0 + x);
            if (single) {
              for (int ch = 0; ch < Ci; ch++) ib[ch * plane + o] = p[ch];
            } else {
              float wgt = wy * tile_weight(&T->ax, tx, X0 + x, f) / T->nx[X0 + x];
              for (int ch = 0; ch < Ci; ch++) ib[ch * plane + o] += wgt * p[ch];
            }
          }
        }
      }
      if (T->g.collect) vae_gn_finish(&T->g);
    }
    ldm_arena_reset(ctx->scratch, tiles_mark);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  tiling_free(T);
  return st;
}
