/* AutoencoderKL (the SD VAE): loading from either layout, encoder, decoder,
 * reflection padding for odd sizes and tiled variants. Mirrors diffusers
 * models/autoencoders/vae.py Encoder/Decoder with DownEncoderBlock2D,
 * UpDecoderBlock2D, UNetMidBlock2D and ResnetBlock2D (eps 1e-6, no temb),
 * which in turn mirror ldm.modules.diffusionmodules.model. */
#include "models/vae/vae.h"
#include "core/arena.h"
#include "core/status.h"
#include "core/value.h"
#include "ops/ops.h"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_EPS 1e-6f

typedef struct vae_resnet {
  int cin, cout;
  ldm_tensor norm1_w, norm1_b;  /* [Cin] */
  ldm_tensor conv1_w, conv1_b;  /* [Cout, Cin, 3, 3], [Cout] */
  ldm_tensor norm2_w, norm2_b;  /* [Cout] */
  ldm_tensor conv2_w, conv2_b;  /* [Cout, Cout, 3, 3], [Cout] */
  ldm_tensor nin_w, nin_b;      /* [Cout, Cin, 1, 1] only when Cin != Cout */
} vae_resnet;

typedef struct vae_attn {
  ldm_tensor norm_w, norm_b;    /* [C] */
  ldm_tensor q_w, q_b;          /* [C, C] (stored [C, C, 1, 1] originally), [C] */
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
  ldm_tensor conv_in_w, conv_in_b;                   /* [ch0, 3, 3, 3] */
  vae_resnet block[LDM_VAE_MAX_LEVELS][LDM_VAE_MAX_LAYERS];
  ldm_tensor down_w[LDM_VAE_MAX_LEVELS];             /* [ch_i, ch_i, 3, 3] */
  ldm_tensor down_b[LDM_VAE_MAX_LEVELS];
  vae_mid mid;
  ldm_tensor norm_out_w, norm_out_b;                 /* [chL] */
  ldm_tensor conv_out_w, conv_out_b;                 /* [2*Cl, chL, 3, 3] */
  ldm_tensor quant_w, quant_b;                       /* [2*Cl, 2*Cl, 1, 1] */
} vae_encoder_weights;

typedef struct vae_decoder_weights {
  ldm_tensor post_quant_w, post_quant_b;             /* [Cl, Cl, 1, 1] */
  ldm_tensor conv_in_w, conv_in_b;                   /* [chL, Cl, 3, 3] */
  vae_mid mid;
  /* up.i (level i, as in the original files; diffusers up_blocks[L-1-i]) */
  vae_resnet block[LDM_VAE_MAX_LEVELS][LDM_VAE_MAX_LAYERS + 1];
  ldm_tensor up_w[LDM_VAE_MAX_LEVELS];               /* [ch_i, ch_i, 3, 3] */
  ldm_tensor up_b[LDM_VAE_MAX_LEVELS];
  ldm_tensor norm_out_w, norm_out_b;                 /* [ch0] */
  ldm_tensor conv_out_w, conv_out_b;                 /* [3, ch0, 3, 3] */
} vae_decoder_weights;

struct ldm_vae {
  ldm_vae_config cfg;
  vae_encoder_weights enc;
  vae_decoder_weights dec;
  char path[1024];          /* the file, for messages */
};

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

/* ---- loading ------------------------------------------------------------- */

typedef struct vae_loader {
  const ldm_source *src;
  const char *part;
  const char *prefix;   /* "first_stage_model.", "vae." or "" */
  bool diffusers;       /* diffusers names (else original) */
  int levels;
  ldm_error *err;
} vae_loader;

static const ldm_tensor *ld_raw(const vae_loader *L, const char *name) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s%s", L->prefix, name);
  return ldm_source_find(L->src, L->part, buf);
}

/* The name a weight has in the file, for messages. */
static const char *ld_shown(const vae_loader *L, const char *canon, const char *diff,
                            char *buf, size_t n) {
  snprintf(buf, n, "%s%s", L->prefix, L->diffusers ? diff : canon);
  return buf;
}

/* Looks up canon (original layout) or diff / diff_old (diffusers layout,
 * current and pre-0.15 attention names) and checks the shape: n dims given
 * in `shape`. 2-D weights also accept [N, K, 1, 1] (1x1 convs stored by the
 * original code for attention projections) and are viewed as [N, K]. */
static ldm_status ld_get(const vae_loader *L, ldm_tensor *dst, const char *canon,
                         const char *diff, const char *diff_old, int n,
                         const int64_t *shape, bool optional) {
  const ldm_tensor *t = L->diffusers ? ld_raw(L, diff) : ld_raw(L, canon);
  if (!t && L->diffusers && diff_old) t = ld_raw(L, diff_old);
  char shown[256], sb[64], eb[64];
  memset(dst, 0, sizeof *dst);
  if (!t) {
    if (optional) return LDM_OK;
    return ldm_fail(L->err, LDM_ERR_MISSING, "%s: VAE tensor '%s' is missing",
                    ldm_source_path(L->src), ld_shown(L, canon, diff, shown, sizeof shown));
  }
  if (t->dtype != LDM_DTYPE_F32 && t->dtype != LDM_DTYPE_F16 && t->dtype != LDM_DTYPE_BF16)
    return ldm_fail(L->err, LDM_ERR_SHAPE, "%s: VAE tensor '%s' has dtype %s, expected F32, F16 or BF16",
                    ldm_source_path(L->src), ld_shown(L, canon, diff, shown, sizeof shown),
                    ldm_dtype_name(t->dtype));
  ldm_tensor v = *t;
  if (n == 2 && v.ndim == 4 && v.shape[2] == 1 && v.shape[3] == 1) v.ndim = 2;
  if (!ldm_tensor_has_shape(&v, n, shape)) {
    ldm_tensor e = {.dtype = t->dtype, .ndim = n};
    for (int i = 0; i < n; i++) e.shape[i] = shape[i];
    return ldm_fail(L->err, LDM_ERR_SHAPE, "%s: VAE tensor '%s' has shape %s, expected %s",
                    ldm_source_path(L->src), ld_shown(L, canon, diff, shown, sizeof shown),
                    ldm_shape_str(t, sb, sizeof sb), ldm_shape_str(&e, eb, sizeof eb));
  }
  *dst = v;
  return LDM_OK;
}

/* weight + bias of a conv (k x k) or of a norm (k == 0: [C] each). */
static ldm_status ld_pair(const vae_loader *L, ldm_tensor *w, ldm_tensor *b, const char *canon,
                          const char *diff, int cout, int cin, int k, bool optional) {
  char cw[192], cb[192], dw[192], db[192];
  snprintf(cw, sizeof cw, "%s.weight", canon);
  snprintf(cb, sizeof cb, "%s.bias", canon);
  snprintf(dw, sizeof dw, "%s.weight", diff);
  snprintf(db, sizeof db, "%s.bias", diff);
  int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
  LDM_TRY(ld_get(L, w, cw, dw, NULL, k ? 4 : 1, ws, optional));
  if (optional && !w->data) return LDM_OK;
  return ld_get(L, b, cb, db, NULL, 1, bs, false);
}

static ldm_status ld_resnet(const vae_loader *L, vae_resnet *r, const char *canon,
                            const char *diff, int cin, int cout) {
  char c[160], d[160];
  r->cin = cin;
  r->cout = cout;
#define RES_PAIR(field_w, field_b, cname, dname, co, ci, k)                  \
  snprintf(c, sizeof c, "%s.%s", canon, cname);                                \
  snprintf(d, sizeof d, "%s.%s", diff, dname);                                 \
  LDM_TRY(ld_pair(L, &r->field_w, &r->field_b, c, d, co, ci, k, false))
  RES_PAIR(norm1_w, norm1_b, "norm1", "norm1", cin, 0, 0);
  RES_PAIR(conv1_w, conv1_b, "conv1", "conv1", cout, cin, 3);
  RES_PAIR(norm2_w, norm2_b, "norm2", "norm2", cout, 0, 0);
  RES_PAIR(conv2_w, conv2_b, "conv2", "conv2", cout, cout, 3);
  if (cin != cout) {
    RES_PAIR(nin_w, nin_b, "nin_shortcut", "conv_shortcut", cout, cin, 1);
  }
#undef RES_PAIR
  return LDM_OK;
}

static ldm_status ld_attn(const vae_loader *L, vae_attn *a, const char *side, int C) {
  static const char *const names[4][3] = {
      {"q", "to_q", "query"}, {"k", "to_k", "key"}, {"v", "to_v", "value"},
      {"proj_out", "to_out.0", "proj_attn"}};
  ldm_tensor *w[4] = {&a->q_w, &a->k_w, &a->v_w, &a->proj_w};
  ldm_tensor *b[4] = {&a->q_b, &a->k_b, &a->v_b, &a->proj_b};
  char c[160], d[160], o[160];
  snprintf(c, sizeof c, "%s.mid.attn_1.norm", side);
  snprintf(d, sizeof d, "%s.mid_block.attentions.0.group_norm", side);
  LDM_TRY(ld_pair(L, &a->norm_w, &a->norm_b, c, d, C, 0, 0, false));
  int64_t ws[2] = {C, C}, bs[1] = {C};
  for (int i = 0; i < 4; i++) {
    const char *sfx[2] = {"weight", "bias"};
    for (int j = 0; j < 2; j++) {
      snprintf(c, sizeof c, "%s.mid.attn_1.%s.%s", side, names[i][0], sfx[j]);
      snprintf(d, sizeof d, "%s.mid_block.attentions.0.%s.%s", side, names[i][1], sfx[j]);
      snprintf(o, sizeof o, "%s.mid_block.attentions.0.%s.%s", side, names[i][2], sfx[j]);
      LDM_TRY(ld_get(L, j ? b[i] : w[i], c, d, o, j ? 1 : 2, j ? bs : ws, false));
    }
  }
  return LDM_OK;
}

static ldm_status ld_mid(const vae_loader *L, vae_mid *m, const char *side, int C, bool attn) {
  char c[128], d[128];
  snprintf(c, sizeof c, "%s.mid.block_1", side);
  snprintf(d, sizeof d, "%s.mid_block.resnets.0", side);
  LDM_TRY(ld_resnet(L, &m->block_1, c, d, C, C));
  if (attn) LDM_TRY(ld_attn(L, &m->attn_1, side, C));
  snprintf(c, sizeof c, "%s.mid.block_2", side);
  snprintf(d, sizeof d, "%s.mid_block.resnets.1", side);
  return ld_resnet(L, &m->block_2, c, d, C, C);
}

/* Shape probes used to read the hyper-parameters. */
static const ldm_tensor *probe_enc_block(const vae_loader *L, int i, int j) {
  char n[128];
  if (L->diffusers) snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d.conv1.weight", i, j);
  else snprintf(n, sizeof n, "encoder.down.%d.block.%d.conv1.weight", i, j);
  return ld_raw(L, n);
}
static const ldm_tensor *probe_dec_block(const vae_loader *L, int i, int j) {
  char n[128]; /* i: original level index; diffusers counts the other way */
  if (L->diffusers) snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d.conv1.weight", L->levels - 1 - i, j);
  else snprintf(n, sizeof n, "decoder.up.%d.block.%d.conv1.weight", i, j);
  return ld_raw(L, n);
}
static int count_dec_levels(const vae_loader *L) {
  char n[128];
  int k = 0;
  for (; k <= LDM_VAE_MAX_LEVELS; k++) {
    if (L->diffusers) snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.0.conv1.weight", k);
    else snprintf(n, sizeof n, "decoder.up.%d.block.0.conv1.weight", k);
    if (!ld_raw(L, n)) break;
  }
  return k;
}

ldm_status ldm_vae_config_json(const char *text, const char *file, int *groups, double *scale, double *shift,
                               ldm_error *err) {
  json_error_t je;
  json_t *root = json_loads(text, 0, &je);
  if (!root || !json_is_object(root)) {
    json_decref(root);
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: %s (line %d)", file, root ? "not an object" : je.text, je.line);
  }
  ldm_status st = ldm_json_int(root, "norm_num_groups", -1, 1, 4096, groups, file, err);
  /* a scaling factor of 0 would decode every latent to the same grey */
  if (st == LDM_OK) st = ldm_json_double(root, "scaling_factor", 1e-6, 1000.0, scale, file, err);
  if (st == LDM_OK) st = ldm_json_double(root, "shift_factor", -1000.0, 1000.0, shift, file, err);
  json_decref(root);
  return st;
}

static ldm_status read_config(const ldm_source *src, const char *part, int *groups,
                              double *scale, double *shift, ldm_error *err) {
  const char *text = ldm_source_config(src, part);
  if (!text) return LDM_OK;
  char file[4200];
  snprintf(file, sizeof file, "%s: %s/config.json", ldm_source_path(src), part);
  return ldm_vae_config_json(text, file, groups, scale, shift, err);
}

float ldm_vae_family_scale(ldm_family f) {
  switch (f) {
    case LDM_FAMILY_SDXL:
    case LDM_FAMILY_SDXL_INPAINT: return 0.13025f;
    case LDM_FAMILY_X4_UPSCALER: return 0.08333f;
    default: return 0.18215f;
  }
}

static ldm_status vae_load_weights(ldm_vae *v, const vae_loader *L) {
  ldm_vae_config *c = &v->cfg;
  const int Lv = c->levels, Cl = c->latent_channels;
  char cn[128], dn[128];
  if (c->has_encoder) {
    vae_encoder_weights *e = &v->enc;
    LDM_TRY(ld_pair(L, &e->conv_in_w, &e->conv_in_b, "encoder.conv_in", "encoder.conv_in",
                    c->ch[0], c->image_channels, 3, false));
    for (int i = 0; i < Lv; i++) {
      for (int j = 0; j < c->layers; j++) {
        int cin = j ? c->ch[i] : (i ? c->ch[i - 1] : c->ch[0]);
        snprintf(cn, sizeof cn, "encoder.down.%d.block.%d", i, j);
        snprintf(dn, sizeof dn, "encoder.down_blocks.%d.resnets.%d", i, j);
        LDM_TRY(ld_resnet(L, &e->block[i][j], cn, dn, cin, c->ch[i]));
      }
      if (i < Lv - 1) {
        snprintf(cn, sizeof cn, "encoder.down.%d.downsample.conv", i);
        snprintf(dn, sizeof dn, "encoder.down_blocks.%d.downsamplers.0.conv", i);
        LDM_TRY(ld_pair(L, &e->down_w[i], &e->down_b[i], cn, dn, c->ch[i], c->ch[i], 3, false));
      }
    }
    LDM_TRY(ld_mid(L, &e->mid, "encoder", c->ch[Lv - 1], c->mid_attention));
    LDM_TRY(ld_pair(L, &e->norm_out_w, &e->norm_out_b, "encoder.norm_out", "encoder.conv_norm_out",
                    c->ch[Lv - 1], 0, 0, false));
    LDM_TRY(ld_pair(L, &e->conv_out_w, &e->conv_out_b, "encoder.conv_out", "encoder.conv_out",
                    2 * Cl, c->ch[Lv - 1], 3, false));
    LDM_TRY(ld_pair(L, &e->quant_w, &e->quant_b, "quant_conv", "quant_conv", 2 * Cl, 2 * Cl, 1, true));
    c->quant_conv = e->quant_w.data != NULL;
  }
  if (c->has_decoder) {
    vae_decoder_weights *d = &v->dec;
    LDM_TRY(ld_pair(L, &d->post_quant_w, &d->post_quant_b, "post_quant_conv", "post_quant_conv",
                    Cl, Cl, 1, true));
    c->post_quant_conv = d->post_quant_w.data != NULL;
    LDM_TRY(ld_pair(L, &d->conv_in_w, &d->conv_in_b, "decoder.conv_in", "decoder.conv_in",
                    c->ch[Lv - 1], Cl, 3, false));
    LDM_TRY(ld_mid(L, &d->mid, "decoder", c->ch[Lv - 1], c->mid_attention));
    for (int i = Lv - 1; i >= 0; i--) {
      for (int j = 0; j <= c->layers; j++) {
        int cin = j ? c->ch[i] : (i == Lv - 1 ? c->ch[Lv - 1] : c->ch[i + 1]);
        snprintf(cn, sizeof cn, "decoder.up.%d.block.%d", i, j);
        snprintf(dn, sizeof dn, "decoder.up_blocks.%d.resnets.%d", Lv - 1 - i, j);
        LDM_TRY(ld_resnet(L, &d->block[i][j], cn, dn, cin, c->ch[i]));
      }
      if (i > 0) {
        snprintf(cn, sizeof cn, "decoder.up.%d.upsample.conv", i);
        snprintf(dn, sizeof dn, "decoder.up_blocks.%d.upsamplers.0.conv", Lv - 1 - i);
        LDM_TRY(ld_pair(L, &d->up_w[i], &d->up_b[i], cn, dn, c->ch[i], c->ch[i], 3, false));
      }
    }
    LDM_TRY(ld_pair(L, &d->norm_out_w, &d->norm_out_b, "decoder.norm_out", "decoder.conv_norm_out",
                    c->ch[0], 0, 0, false));
    LDM_TRY(ld_pair(L, &d->conv_out_w, &d->conv_out_b, "decoder.conv_out", "decoder.conv_out",
                    c->image_channels, c->ch[0], 3, false));
  }
  return LDM_OK;
}

ldm_status ldm_vae_load(ldm_vae **out, const ldm_source *src, const ldm_vae_load_opts *opts,
                        ldm_error *err) {
  *out = NULL;
  ldm_vae_load_opts o = {0};
  if (opts) o = *opts;
  vae_loader L = {.src = src, .part = o.part ? o.part : "vae", .err = err};
  /* Which prefix and which naming: probe a tensor every layout has. */
  static const char *const prefixes[] = {"first_stage_model.", "vae.", ""};
  bool found = false;
  for (int i = 0; i < 3 && !found; i++) {
    L.prefix = prefixes[i];
    if (ld_raw(&L, "decoder.conv_in.weight") || ld_raw(&L, "encoder.conv_in.weight")) found = true;
  }
  if (!found)
    return ldm_fail(err, LDM_ERR_MISSING,
                    "%s: no VAE found (looked for 'first_stage_model.decoder.conv_in.weight', "
                    "'vae/...decoder.conv_in.weight' and 'decoder.conv_in.weight')",
                    ldm_source_path(src));
  L.diffusers = ld_raw(&L, "decoder.mid_block.resnets.0.conv1.weight") ||
                ld_raw(&L, "encoder.mid_block.resnets.0.conv1.weight");

  ldm_vae *v = calloc(1, sizeof *v);
  if (!v) return ldm_fail(err, LDM_ERR_NOMEM, "vae: out of memory");
  ldm_vae_config *c = &v->cfg;
  ldm_status st = LDM_OK;
  snprintf(v->path, sizeof v->path, "%s", ldm_source_path(src));
  const ldm_tensor *enc_in = ld_raw(&L, "encoder.conv_in.weight");
  const ldm_tensor *dec_in = ld_raw(&L, "decoder.conv_in.weight");
  const ldm_tensor *dec_out = ld_raw(&L, "decoder.conv_out.weight");
  const ldm_tensor *enc_out = ld_raw(&L, "encoder.conv_out.weight");
  c->has_encoder = enc_in && enc_out;
  c->has_decoder = dec_in && dec_out;
  if (!c->has_encoder && !c->has_decoder) {
    st = ldm_fail(err, LDM_ERR_MISSING, "%s: VAE has neither a complete encoder nor decoder "
                  "(conv_in/conv_out missing)", ldm_source_path(src));
    goto done;
  }
  /* levels and channels: from the encoder's down blocks or the decoder's */
  int levels = 0;
  if (c->has_encoder)
    while (levels <= LDM_VAE_MAX_LEVELS && probe_enc_block(&L, levels, 0)) levels++;
  else
    levels = count_dec_levels(&L);
  if (levels < 1 || levels > LDM_VAE_MAX_LEVELS) {
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: VAE has %d levels, expected 1..%d",
                  ldm_source_path(src), levels, LDM_VAE_MAX_LEVELS);
    goto done;
  }
  c->levels = L.levels = levels;
  int layers = 0;
  if (c->has_encoder) {
    while (layers <= LDM_VAE_MAX_LAYERS && probe_enc_block(&L, 0, layers)) layers++;
  } else {
    while (layers <= LDM_VAE_MAX_LAYERS + 1 && probe_dec_block(&L, 0, layers)) layers++;
    layers--;
  }
  if (layers < 1 || layers > LDM_VAE_MAX_LAYERS) {
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: VAE has %d resnets per level, expected 1..%d",
                  ldm_source_path(src), layers, LDM_VAE_MAX_LAYERS);
    goto done;
  }
  c->layers = layers;
  for (int i = 0; i < levels; i++) {
    const ldm_tensor *t = c->has_encoder ? probe_enc_block(&L, i, 0) : probe_dec_block(&L, i, 0);
    if (!t || t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 65536) {
      st = ldm_fail(err, LDM_ERR_SHAPE, "%s: VAE level %d: block 0 conv1 weight missing or not 4-D",
                    ldm_source_path(src), i);
      goto done;
    }
    c->ch[i] = (int)t->shape[0];
  }
  const ldm_tensor *lt = c->has_decoder ? dec_in : enc_out;
  if (lt->ndim != 4) {
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: VAE conv weight '%s' is not 4-D", ldm_source_path(src),
                  lt->name ? lt->name : "?");
    goto done;
  }
  c->latent_channels = (int)(c->has_decoder ? dec_in->shape[1] : enc_out->shape[0] / 2);
  const ldm_tensor *it = c->has_encoder ? enc_in : dec_out;
  c->image_channels = (int)(c->has_encoder ? it->shape[1] : it->shape[0]);
  if (c->latent_channels < 1 || c->latent_channels > 64 || c->image_channels < 1 ||
      c->image_channels > 16) {
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: VAE has %d latent and %d image channels",
                  ldm_source_path(src), c->latent_channels, c->image_channels);
    goto done;
  }
  {
    char n[96];
    snprintf(n, sizeof n, L.diffusers ? "%s.mid_block.attentions.0.group_norm.weight"
                                      : "%s.mid.attn_1.norm.weight",
             c->has_decoder ? "decoder" : "encoder");
    c->mid_attention = ld_raw(&L, n) != NULL;
  }
  int groups = 32;
  double scale = ldm_vae_family_scale(o.family), shift = 0;
  st = read_config(src, L.part, &groups, &scale, &shift, err);
  if (st != LDM_OK) goto done;
  if (o.groups > 0) groups = o.groups;
  if (o.scale > 0) scale = o.scale;
  c->groups = groups;
  c->scale = (float)scale;
  c->shift = (float)shift;
  for (int i = 0; i < levels; i++)
    if (groups < 1 || c->ch[i] % groups != 0) {
      st = ldm_fail(err, LDM_ERR_SHAPE, "%s: VAE level %d has %d channels, not a multiple of "
                    "norm_num_groups = %d (set the group count to match the model)",
                    ldm_source_path(src), i, c->ch[i], groups);
      goto done;
    }
  st = vae_load_weights(v, &L);
done:
  if (st != LDM_OK) {
    free(v);
    return st;
  }
  *out = v;
  return LDM_OK;
}

void ldm_vae_free(ldm_vae *vae) { free(vae); }
const ldm_vae_config *ldm_vae_get_config(const ldm_vae *vae) { return &vae->cfg; }
int ldm_vae_factor(const ldm_vae *vae) { return 1 << (vae->cfg.levels - 1); }

void ldm_vae_latent_size(const ldm_vae *vae, int H, int W, int *h, int *w) {
  int f = ldm_vae_factor(vae);
  *h = (H + f - 1) / f;
  *w = (W + f - 1) / f;
}

void ldm_vae_scale_latent(const ldm_vae *vae, float *z, int64_t n) {
  for (int64_t i = 0; i < n; i++) z[i] = (z[i] - vae->cfg.shift) * vae->cfg.scale;
}
void ldm_vae_unscale_latent(const ldm_vae *vae, float *z, int64_t n) {
  for (int64_t i = 0; i < n; i++) z[i] = z[i] / vae->cfg.scale + vae->cfg.shift;
}

/* ---- forward --------------------------------------------------------------
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

static void swap_xa(vae_bufs *s) {
  float *t = s->x;
  s->x = s->a;
  s->a = t;
}

/* GroupNorm statistics shared by all tiles. A statistics pass runs every
 * tile with `collect` and sums each norm layer's input over the tile's core
 * (the part of the image this tile owns, so each pixel counts once); later
 * passes `apply` those image-wide means and variances instead of the tile's
 * own, as the untiled network would. */
#define GN_MAX_LAYERS (2 * LDM_VAE_MAX_LEVELS * (LDM_VAE_MAX_LAYERS + 1) + 2)
typedef struct gn_global {
  bool collect, apply;
  int layer;                    /* index of the next norm call in this pass */
  int groups;
  double sum[GN_MAX_LAYERS][32], sq[GN_MAX_LAYERS][32], cnt[GN_MAX_LAYERS];
  float mean[GN_MAX_LAYERS][32], rstd[GN_MAX_LAYERS][32];
  int th;                       /* tile height in latent pixels */
  int cy0, cy1, cx0, cx1;       /* core region, tile latent pixels */
} gn_global;

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
static void gn_finish(gn_global *g) {
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
static size_t enc_down_cap(const ldm_vae_config *c, int H, int W) {
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
static size_t mid_cap(const ldm_vae_config *c, int h, int w) {
  int m = c->ch[c->levels - 1];
  if (2 * c->latent_channels > m) m = 2 * c->latent_channels;
  return (size_t)h * w * (size_t)m;
}

/* Largest activation (floats) of the decoder's up path from h x w. */
static size_t dec_up_cap(const ldm_vae_config *c, int h, int w) {
  int L = c->levels;
  size_t cap = mid_cap(c, h, w);
  for (int i = L - 1; i >= 0; i--) {
    size_t Hi = (size_t)h << (L - 1 - i), Wi = (size_t)w << (L - 1 - i);
    int cin = i == L - 1 ? c->ch[L - 1] : c->ch[i + 1];
    cap = max_sz(cap, Hi * Wi * (size_t)(cin > c->ch[i] ? cin : c->ch[i]));
    if (i > 0) cap = max_sz(cap, 4 * Hi * Wi * (size_t)c->ch[i]);
  }
  return max_sz(cap, ((size_t)h << (L - 1)) * ((size_t)w << (L - 1)) * (size_t)c->image_channels);
}

static ldm_status alloc_bufs(ldm_ctx *ctx, vae_bufs *s, size_t cap) {
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
static ldm_status encoder_down(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int H, int W,
                               gn_global *g) {
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
static ldm_status encoder_mid(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int H, int W) {
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
static ldm_status decoder_mid(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int h, int w) {
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
static ldm_status decoder_up(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int h, int w,
                             gn_global *g) {
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
static void gather_nhwc(float *dst, const float *img, int C, int H, int W, int y0, int x0,
                        int th, int tw) {
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
static void copy_rect(float *dst, int dst_w, int dx, int dy, const float *src, int src_w, int sx,
                      int sy, int th, int tw, int C) {
  for (int y = 0; y < th; y++)
    memcpy(dst + ((size_t)(dy + y) * dst_w + dx) * C, src + ((size_t)(sy + y) * src_w + sx) * C,
           (size_t)tw * C * sizeof(float));
}

static ldm_status check_dims(ldm_ctx *ctx, const char *what, int B, int H, int W) {
  if (B < 1 || H < 1 || W < 1 || H > 65536 || W > 65536)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: size %d x %d x %d out of range", what, B, H, W);
  return LDM_OK;
}

ldm_status ldm_vae_encode(ldm_ctx *ctx, const ldm_vae *vae, float *mean, float *logvar,
                          const float *image, int B, int H, int W) {
  return ldm_vae_encode_tiled(ctx, vae, mean, logvar, image, B, H, W, -1, 0);
}

ldm_status ldm_vae_decode(ldm_ctx *ctx, const ldm_vae *vae, float *image, const float *latent,
                          int B, int h, int w, int H, int W) {
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

static ldm_status tile_plan(ldm_ctx *ctx, tile_axis *ay, tile_axis *ax, int h, int w, int tile,
                            int overlap) {
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
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "vae tiling: too many tiles for %d x %d at tile %d",
                    h, w, tile);
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

ldm_status ldm_vae_encode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *mean, float *logvar,
                                const float *image, int B, int H, int W, int tile, int overlap) {
  return ldm_vae_encode_tiled_ex(ctx, vae, mean, logvar, image, B, H, W, tile, overlap, -1);
}

ldm_status ldm_vae_encode_tiled_ex(ldm_ctx *ctx, const ldm_vae *vae, float *mean, float *logvar,
                                   const float *image, int B, int H, int W, int tile, int overlap,
                                   int gn_passes) {
  const ldm_vae_config *c = &vae->cfg;
  if (!c->has_encoder)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "%s: this VAE has no encoder (no tensor 'encoder.conv_in.weight' "
                    "or 'encoder.conv_out.weight')", vae->path);
  LDM_TRY(check_dims(ctx, "vae encode", B, H, W));
  const int f = ldm_vae_factor(vae), Cl = c->latent_channels, Ci = c->image_channels;
  const int CL = c->ch[c->levels - 1];
  int h, w;
  ldm_vae_latent_size(vae, H, W, &h, &w);
  tiling *T = calloc(1, sizeof *T);
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  if (!T) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae encode: out of memory");
  st = tile_plan(ctx, &T->ay, &T->ax, h, w, tile, overlap);
  if (st != LDM_OK) goto done;
  bool single = T->ay.n == 1 && T->ax.n == 1;
  if (gn_passes < 0) gn_passes = 1;
  if (single) gn_passes = 0;
  T->g.groups = c->groups;
  T->g.th = T->ay.size;
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
    st = alloc_bufs(ctx, &s, enc_down_cap(c, T->ay.size * f, T->ax.size * f));
    for (int pass = 0; pass <= gn_passes && st == LDM_OK; pass++) {
      T->g.collect = pass < gn_passes;
      T->g.apply = pass > 0;
      for (int ty = 0; ty < T->ay.n && st == LDM_OK; ty++)
        for (int tx = 0; tx < T->ax.n && st == LDM_OK; tx++) {
          int y0 = T->ay.start[ty], x0 = T->ax.start[tx], th = T->ay.size, tw = T->ax.size;
          int cy0, cy1, cx0, cx1;
          tile_core(&T->ay, h, ty, &cy0, &cy1);
          tile_core(&T->ax, w, tx, &cx0, &cx1);
          T->g.cy0 = cy0 - y0, T->g.cy1 = cy1 - y0, T->g.cx0 = cx0 - x0, T->g.cx1 = cx1 - x0;
          T->g.layer = 0;
          // image tile, reflected past the borders -> [th*f * tw*f, 3]
          gather_nhwc(s.x, img, Ci, H, W, y0 * f, x0 * f, th * f, tw * f);
          // conv_in + down path -> [th*tw, chL]
          st = encoder_down(ctx, vae, &s, th * f, tw * f, single ? NULL : &T->g);
          if (st == LDM_OK && pass == gn_passes)
            copy_rect(feat, w, cx0, cy0, s.x, tw, cx0 - x0, cy0 - y0, cy1 - cy0, cx1 - cx0, CL);
        }
      if (T->g.collect) gn_finish(&T->g);
    }
    ldm_arena_reset(ctx->scratch, tiles_mark);
    // mid, norm_out, conv_out, quant_conv on the whole latent -> [h*w, 2*Cl]
    if (st == LDM_OK) st = alloc_bufs(ctx, &s, mid_cap(c, h, w));
    if (st == LDM_OK) {
      memcpy(s.x, feat, n_feat * sizeof(float));
      st = encoder_mid(ctx, vae, &s, h, w);
    }
    // moments -> mean, logvar clamped to [-30, 20] (NCHW)
    for (size_t p = 0; st == LDM_OK && p < plane; p++)
      for (int ch = 0; ch < Cl; ch++) {
        mean[((size_t)b * Cl + ch) * plane + p] = s.x[p * 2 * Cl + ch];
        if (logvar)
          logvar[((size_t)b * Cl + ch) * plane + p] = fminf(fmaxf(s.x[p * 2 * Cl + Cl + ch], -30.0f), 20.0f);
      }
    ldm_arena_reset(ctx->scratch, tiles_mark);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  tiling_free(T);
  return st;
}

ldm_status ldm_vae_decode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *image, const float *latent,
                                int B, int h, int w, int H, int W, int tile, int overlap) {
  return ldm_vae_decode_tiled_ex(ctx, vae, image, latent, B, h, w, H, W, tile, overlap, -1);
}

ldm_status ldm_vae_decode_tiled_ex(ldm_ctx *ctx, const ldm_vae *vae, float *image,
                                   const float *latent, int B, int h, int w, int H, int W,
                                   int tile, int overlap, int gn_passes) {
  const ldm_vae_config *c = &vae->cfg;
  if (!c->has_decoder)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "%s: this VAE has no decoder (no tensor 'decoder.conv_in.weight' "
                    "or 'decoder.conv_out.weight')", vae->path);
  LDM_TRY(check_dims(ctx, "vae decode", B, h, w));
  const int f = ldm_vae_factor(vae), Cl = c->latent_channels, Ci = c->image_channels;
  const int CL = c->ch[c->levels - 1];
  if (H == 0 && W == 0) {
    H = h * f;
    W = w * f;
  }
  if (H < 1 || W < 1 || H > h * f || W > w * f)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "vae decode: output %d x %d does not fit the %d x %d decode of a %d x %d latent",
                    H, W, h * f, w * f, h, w);
  tiling *T = calloc(1, sizeof *T);
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  if (!T) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae decode: out of memory");
  st = tile_plan(ctx, &T->ay, &T->ax, h, w, tile, overlap);
  if (st != LDM_OK) goto done;
  bool single = T->ay.n == 1 && T->ax.n == 1;
  if (gn_passes < 0) gn_passes = 1;
  if (single) gn_passes = 0;
  T->g.groups = c->groups;
  T->g.th = T->ay.size;
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
    st = alloc_bufs(ctx, &s, mid_cap(c, h, w));
    if (st != LDM_OK) break;
    ldm_nchw_to_nhwc(s.x, latent + (size_t)b * Cl * h * w, 1, Cl, (int64_t)h * w);
    st = decoder_mid(ctx, vae, &s, h, w);
    if (st != LDM_OK) break;
    memcpy(feat, s.x, n_feat * sizeof(float));
    ldm_arena_reset(ctx->scratch, tiles_mark);
    st = alloc_bufs(ctx, &s, dec_up_cap(c, T->ay.size, T->ax.size));
    float *ib = image + (size_t)b * Ci * plane;
    for (int pass = 0; pass <= gn_passes && st == LDM_OK; pass++) {
      T->g.collect = pass < gn_passes;
      T->g.apply = pass > 0;
      for (int ty = 0; ty < T->ay.n && st == LDM_OK; ty++)
        for (int tx = 0; tx < T->ax.n && st == LDM_OK; tx++) {
          int y0 = T->ay.start[ty], x0 = T->ax.start[tx], th = T->ay.size, tw = T->ax.size;
          int cy0, cy1, cx0, cx1;
          tile_core(&T->ay, h, ty, &cy0, &cy1);
          tile_core(&T->ax, w, tx, &cx0, &cx1);
          T->g.cy0 = cy0 - y0, T->g.cy1 = cy1 - y0, T->g.cx0 = cx0 - x0, T->g.cx1 = cx1 - x0;
          T->g.layer = 0;
          int Y0 = y0 * f, X0 = x0 * f, TH = th * f, TW = tw * f;
          if (pass == gn_passes && (Y0 >= H || X0 >= W)) continue; /* cropped away */
          // mid features of the tile -> up path -> [TH*TW, 3]
          copy_rect(s.x, tw, 0, 0, feat, w, x0, y0, th, tw, CL);
          st = decoder_up(ctx, vae, &s, th, tw, single ? NULL : &T->g);
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
      if (T->g.collect) gn_finish(&T->g);
    }
    ldm_arena_reset(ctx->scratch, tiles_mark);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  tiling_free(T);
  return st;
}
