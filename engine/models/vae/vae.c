/* AutoencoderKL (the SD VAE): loading from either layout, encoder, decoder,
 * reflection padding for odd sizes and tiled variants. Mirrors diffusers
 * models/autoencoders/vae.py Encoder/Decoder with DownEncoderBlock2D,
 * UpDecoderBlock2D, UNetMidBlock2D and ResnetBlock2D (eps 1e-6, no temb),
 * which in turn mirror ldm.modules.diffusionmodules.model. */
#include "models/vae/vae.h"
#include "core/arena.h"
#include "core/status.h"
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
};

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

static ldm_status read_config(const ldm_source *src, const char *part, int *groups,
                              double *scale, double *shift, ldm_error *err) {
  const char *text = ldm_source_config(src, part);
  if (!text) return LDM_OK;
  json_error_t je;
  json_t *root = json_loads(text, 0, &je);
  if (!root || !json_is_object(root)) {
    json_decref(root);
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: %s/config.json: %s (line %d)", ldm_source_path(src),
                    part, root ? "not an object" : je.text, je.line);
  }
  json_t *v = json_object_get(root, "norm_num_groups");
  if (json_is_integer(v)) *groups = (int)json_integer_value(v);
  v = json_object_get(root, "scaling_factor");
  if (json_is_number(v)) *scale = json_number_value(v);
  v = json_object_get(root, "shift_factor");
  if (json_is_number(v)) *shift = json_number_value(v);
  json_decref(root);
  return LDM_OK;
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
 * ping-pong buffers x (current), a, b of `cap` floats each. */

typedef struct vae_bufs {
  float *x, *a, *b;
} vae_bufs;

static void swap_xa(vae_bufs *s) {
  float *t = s->x;
  s->x = s->a;
  s->a = t;
}

/* ResnetBlock2D: x [HW, Cin] -> x [HW, Cout] */
static ldm_status resnet_forward(ldm_ctx *ctx, const vae_resnet *r, vae_bufs *s, int groups,
                                 int H, int W) {
  const int64_t HW = (int64_t)H * W;
  // norm1 + SiLU -> a [HW, Cin]
  LDM_TRY(ldm_group_norm(ctx, s->a, s->x, 1, HW, r->cin, groups, VAE_EPS, &r->norm1_w,
                         &r->norm1_b, true));
  // conv1 -> b [HW, Cout]
  LDM_TRY(ldm_conv2d(ctx, s->b, s->a, 1, H, W, r->cin, &r->conv1_w, &r->conv1_b, 1, 1));
  // norm2 + SiLU (dropout is identity at inference) -> b [HW, Cout]
  LDM_TRY(ldm_group_norm(ctx, s->b, s->b, 1, HW, r->cout, groups, VAE_EPS, &r->norm2_w,
                         &r->norm2_b, true));
  // conv2 -> a [HW, Cout]
  LDM_TRY(ldm_conv2d(ctx, s->a, s->b, 1, H, W, r->cout, &r->conv2_w, &r->conv2_b, 1, 1));
  // shortcut (1x1 nin_shortcut when channels change) + residual -> a
  if (r->nin_w.data) {
    LDM_TRY(ldm_conv2d(ctx, s->b, s->x, 1, H, W, r->cin, &r->nin_w, &r->nin_b, 1, 0));
    ldm_add(ctx, s->a, s->a, s->b, HW * r->cout);
  } else {
    ldm_add(ctx, s->a, s->a, s->x, HW * r->cout);
  }
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
  LDM_TRY(resnet_forward(ctx, &m->block_1, s, c->groups, H, W));
  if (c->mid_attention) LDM_TRY(attn_forward(ctx, &m->attn_1, s, c->groups, (int64_t)H * W, C));
  return resnet_forward(ctx, &m->block_2, s, c->groups, H, W);
}

/* Largest activation (floats) of the encoder on an H x W input. */
static size_t enc_cap(const ldm_vae_config *c, int H, int W) {
  size_t cap = (size_t)H * W * (size_t)(c->ch[0] > 3 ? c->ch[0] : 3);
  for (int i = 0; i < c->levels; i++) {
    size_t Hi = (size_t)(H >> i), Wi = (size_t)(W >> i);
    int cin = i ? c->ch[i - 1] : c->ch[0];
    size_t m = Hi * Wi * (size_t)(cin > c->ch[i] ? cin : c->ch[i]);
    if (m > cap) cap = m;
    if (i < c->levels - 1 && (Hi + 1) * (Wi + 1) * (size_t)c->ch[i] > cap)
      cap = (Hi + 1) * (Wi + 1) * (size_t)c->ch[i];
  }
  size_t lo = (size_t)(H >> (c->levels - 1)) * (size_t)(W >> (c->levels - 1)) * 2 *
              (size_t)c->latent_channels;
  return lo > cap ? lo : cap;
}

/* Largest activation (floats) of the decoder on an h x w latent. */
static size_t dec_cap(const ldm_vae_config *c, int h, int w) {
  int L = c->levels, top = c->ch[L - 1];
  size_t cap = (size_t)h * w * (size_t)(top > c->latent_channels ? top : c->latent_channels);
  for (int i = L - 1; i >= 0; i--) {
    size_t Hi = (size_t)h << (L - 1 - i), Wi = (size_t)w << (L - 1 - i);
    int cin = i == L - 1 ? top : c->ch[i + 1];
    size_t m = Hi * Wi * (size_t)(cin > c->ch[i] ? cin : c->ch[i]);
    if (m > cap) cap = m;
    if (i > 0 && 4 * Hi * Wi * (size_t)c->ch[i] > cap) cap = 4 * Hi * Wi * (size_t)c->ch[i];
  }
  size_t img = ((size_t)h << (L - 1)) * ((size_t)w << (L - 1)) * (size_t)c->image_channels;
  return img > cap ? img : cap;
}

static ldm_status alloc_bufs(ldm_ctx *ctx, vae_bufs *s, size_t cap) {
  s->x = ldm_arena_floats(ctx->scratch, cap);
  s->a = ldm_arena_floats(ctx->scratch, cap);
  s->b = ldm_arena_floats(ctx->scratch, cap);
  if (!s->x || !s->a || !s->b)
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae: out of memory for 3 x %zu activation floats",
                    cap);
  return LDM_OK;
}

/* Encoder + quant_conv: s->x holds the image [H*W, 3] (H, W multiples of the
 * factor); leaves moments [h*w, 2*Cl] in s->x. */
static ldm_status encoder_forward(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int H, int W) {
  const ldm_vae_config *c = &v->cfg;
  const vae_encoder_weights *e = &v->enc;
  // conv_in -> [H*W, ch0]
  LDM_TRY(ldm_conv2d(ctx, s->a, s->x, 1, H, W, c->image_channels, &e->conv_in_w, &e->conv_in_b, 1, 1));
  swap_xa(s);
  for (int i = 0; i < c->levels; i++) {
    // down[i].block[j] -> [H*W, ch_i]
    for (int j = 0; j < c->layers; j++) LDM_TRY(resnet_forward(ctx, &e->block[i][j], s, c->groups, H, W));
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
    LDM_TRY(ldm_conv2d(ctx, s->x, s->a, 1, H + 1, W + 1, C, &e->down_w[i], &e->down_b[i], 2, 0));
    H = ldm_conv_out(H + 1, 3, 2, 0);
    W = ldm_conv_out(W + 1, 3, 2, 0);
  }
  // mid: resnet, attention, resnet -> [h*w, chL]
  LDM_TRY(mid_forward(ctx, &e->mid, c, s, H, W));
  int CL = c->ch[c->levels - 1];
  // norm_out + SiLU, conv_out -> [h*w, 2*Cl]
  LDM_TRY(ldm_group_norm(ctx, s->a, s->x, 1, (int64_t)H * W, CL, c->groups, VAE_EPS,
                         &e->norm_out_w, &e->norm_out_b, true));
  LDM_TRY(ldm_conv2d(ctx, s->x, s->a, 1, H, W, CL, &e->conv_out_w, &e->conv_out_b, 1, 1));
  // quant_conv (1x1) -> [h*w, 2*Cl]
  if (c->quant_conv) {
    LDM_TRY(ldm_conv2d(ctx, s->a, s->x, 1, H, W, 2 * c->latent_channels, &e->quant_w, &e->quant_b, 1, 0));
    swap_xa(s);
  }
  return LDM_OK;
}

/* post_quant_conv + decoder: s->x holds the latent [h*w, Cl]; leaves the
 * image [(f*h)*(f*w), 3] in s->x. */
static ldm_status decoder_forward(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, int h, int w) {
  const ldm_vae_config *c = &v->cfg;
  const vae_decoder_weights *d = &v->dec;
  const int L = c->levels, Cl = c->latent_channels;
  int H = h, W = w;
  // post_quant_conv (1x1) -> [h*w, Cl]
  if (c->post_quant_conv) {
    LDM_TRY(ldm_conv2d(ctx, s->a, s->x, 1, H, W, Cl, &d->post_quant_w, &d->post_quant_b, 1, 0));
    swap_xa(s);
  }
  // conv_in -> [h*w, chL]
  LDM_TRY(ldm_conv2d(ctx, s->a, s->x, 1, H, W, Cl, &d->conv_in_w, &d->conv_in_b, 1, 1));
  swap_xa(s);
  // mid -> [h*w, chL]
  LDM_TRY(mid_forward(ctx, &d->mid, c, s, H, W));
  for (int i = L - 1; i >= 0; i--) {
    // up[i].block[j] -> [H*W, ch_i]
    for (int j = 0; j <= c->layers; j++) LDM_TRY(resnet_forward(ctx, &d->block[i][j], s, c->groups, H, W));
    if (i == 0) break;
    // upsample: nearest x2, conv 3x3 -> [2H*2W, ch_i]
    ldm_upsample_nearest2x(ctx, s->a, s->x, 1, H, W, c->ch[i]);
    H *= 2;
    W *= 2;
    LDM_TRY(ldm_conv2d(ctx, s->x, s->a, 1, H, W, c->ch[i], &d->up_w[i], &d->up_b[i], 1, 1));
  }
  // norm_out + SiLU, conv_out -> [H*W, 3]
  LDM_TRY(ldm_group_norm(ctx, s->a, s->x, 1, (int64_t)H * W, c->ch[0], c->groups, VAE_EPS,
                         &d->norm_out_w, &d->norm_out_b, true));
  LDM_TRY(ldm_conv2d(ctx, s->x, s->a, 1, H, W, c->ch[0], &d->conv_out_w, &d->conv_out_b, 1, 1));
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

static ldm_status check_dims(ldm_ctx *ctx, const char *what, int B, int H, int W) {
  if (B < 1 || H < 1 || W < 1 || H > 65536 || W > 65536)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: size %d x %d x %d out of range", what, B, H, W);
  return LDM_OK;
}

/* Encodes the region of image b starting at (y0, x0) of th x tw latent
 * pixels; moments [th*tw, 2*Cl] left in s->x. */
static ldm_status encode_region(ldm_ctx *ctx, const ldm_vae *v, vae_bufs *s, const float *img,
                                int H, int W, int y0, int x0, int th, int tw) {
  const int f = ldm_vae_factor(v);
  gather_nhwc(s->x, img, v->cfg.image_channels, H, W, y0 * f, x0 * f, th * f, tw * f);
  return encoder_forward(ctx, v, s, th * f, tw * f);
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
 * to end at the border, so every tile has the full size. Each output pixel
 * is the weighted mean of the tiles covering it; a tile's weight ramps
 * linearly across the parts it shares with its neighbours (separable in y and
 * x, so the normaliser is a product of two 1-D sums). */

typedef struct tile_axis {
  int n;           /* tiles */
  int start[1024]; /* latent offsets */
  int size;        /* latent pixels per tile */
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
  for (int s = 0; a->n < 1023; s += stride) {
    if (s + tile >= len) break;
    a->start[a->n++] = s;
  }
  a->start[a->n++] = len - tile;
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
  if (tile < 0) tile = h > w ? h : w; /* untiled */
  if (tile == 0) tile = 64;
  if (overlap <= 0) overlap = tile / 4;
  if (tile < 2 || overlap >= tile)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "vae tiling: tile %d with overlap %d (need tile >= 2, overlap < tile)",
                    tile, overlap);
  if ((h > tile && (h - tile) / (tile - overlap) > 1000) || (w > tile && (w - tile) / (tile - overlap) > 1000))
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

ldm_status ldm_vae_encode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *mean, float *logvar,
                                const float *image, int B, int H, int W, int tile, int overlap) {
  const ldm_vae_config *c = &vae->cfg;
  if (!c->has_encoder)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "vae: this VAE file has no encoder");
  LDM_TRY(check_dims(ctx, "vae encode", B, H, W));
  int h, w;
  ldm_vae_latent_size(vae, H, W, &h, &w);
  tile_axis *ay = malloc(sizeof *ay), *ax = malloc(sizeof *ax);
  float *ny = NULL, *nx = NULL;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  if (!ay || !ax) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae encode: out of memory");
    goto done;
  }
  st = tile_plan(ctx, ay, ax, h, w, tile, overlap);
  if (st != LDM_OK) goto done;
  ny = axis_norm(ay, h, 1);
  nx = axis_norm(ax, w, 1);
  vae_bufs s;
  if (!ny || !nx) st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae encode: out of memory");
  else st = alloc_bufs(ctx, &s, enc_cap(c, ay->size * ldm_vae_factor(vae), ax->size * ldm_vae_factor(vae)));
  if (st != LDM_OK) goto done;
  const int Cl = c->latent_channels, Ci = c->image_channels;
  const size_t plane = (size_t)h * w;
  bool single = ay->n == 1 && ax->n == 1;
  if (!single) {
    memset(mean, 0, (size_t)B * Cl * plane * sizeof(float));
    if (logvar) memset(logvar, 0, (size_t)B * Cl * plane * sizeof(float));
  }
  for (int b = 0; b < B && st == LDM_OK; b++) {
    const float *img = image + (size_t)b * Ci * H * W;
    float *mb = mean + (size_t)b * Cl * plane, *lb = logvar ? logvar + (size_t)b * Cl * plane : NULL;
    for (int ty = 0; ty < ay->n && st == LDM_OK; ty++)
      for (int tx = 0; tx < ax->n && st == LDM_OK; tx++) {
        int y0 = ay->start[ty], x0 = ax->start[tx], th = ay->size, tw = ax->size;
        st = encode_region(ctx, vae, &s, img, H, W, y0, x0, th, tw);
        if (st != LDM_OK) break;
        // moments [th*tw, 2*Cl] -> mean, logvar (clamped to [-30, 20]), NCHW
        for (int y = 0; y < th; y++) {
          float wy = single ? 1.0f : tile_weight(ay, ty, y0 + y, 1) / ny[y0 + y];
          for (int x = 0; x < tw; x++) {
            float wgt = single ? 1.0f : wy * tile_weight(ax, tx, x0 + x, 1) / nx[x0 + x];
            const float *m = s.x + ((size_t)y * tw + x) * 2 * Cl;
            size_t o = (size_t)(y0 + y) * w + (x0 + x);
            for (int ch = 0; ch < Cl; ch++) {
              float lv = fminf(fmaxf(m[Cl + ch], -30.0f), 20.0f);
              if (single) {
                mb[ch * plane + o] = m[ch];
                if (lb) lb[ch * plane + o] = lv;
              } else {
                mb[ch * plane + o] += wgt * m[ch];
                if (lb) lb[ch * plane + o] += wgt * lv;
              }
            }
          }
        }
      }
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  free(ay);
  free(ax);
  free(ny);
  free(nx);
  return st;
}

ldm_status ldm_vae_decode_tiled(ldm_ctx *ctx, const ldm_vae *vae, float *image, const float *latent,
                                int B, int h, int w, int H, int W, int tile, int overlap) {
  const ldm_vae_config *c = &vae->cfg;
  if (!c->has_decoder)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "vae: this VAE file has no decoder");
  LDM_TRY(check_dims(ctx, "vae decode", B, h, w));
  const int f = ldm_vae_factor(vae);
  if (H == 0 && W == 0) {
    H = h * f;
    W = w * f;
  }
  if (H < 1 || W < 1 || H > h * f || W > w * f)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "vae decode: output %d x %d does not fit the %d x %d decode of a %d x %d latent",
                    H, W, h * f, w * f, h, w);
  tile_axis *ay = malloc(sizeof *ay), *ax = malloc(sizeof *ax);
  float *ny = NULL, *nx = NULL;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  if (!ay || !ax) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae decode: out of memory");
    goto done;
  }
  st = tile_plan(ctx, ay, ax, h, w, tile, overlap);
  if (st != LDM_OK) goto done;
  ny = axis_norm(ay, h * f, f);
  nx = axis_norm(ax, w * f, f);
  vae_bufs s;
  if (!ny || !nx) st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "vae decode: out of memory");
  else st = alloc_bufs(ctx, &s, dec_cap(c, ay->size, ax->size));
  if (st != LDM_OK) goto done;
  const int Cl = c->latent_channels, Ci = c->image_channels;
  const size_t plane = (size_t)H * W;
  bool single = ay->n == 1 && ax->n == 1;
  if (!single) memset(image, 0, (size_t)B * Ci * plane * sizeof(float));
  for (int b = 0; b < B && st == LDM_OK; b++) {
    const float *lat = latent + (size_t)b * Cl * h * w;
    float *ib = image + (size_t)b * Ci * plane;
    for (int ty = 0; ty < ay->n && st == LDM_OK; ty++)
      for (int tx = 0; tx < ax->n && st == LDM_OK; tx++) {
        int y0 = ay->start[ty], x0 = ax->start[tx], th = ay->size, tw = ax->size;
        if (y0 * f >= H || x0 * f >= W) continue; /* cropped away entirely */
        gather_nhwc(s.x, lat, Cl, h, w, y0, x0, th, tw);
        st = decoder_forward(ctx, vae, &s, th, tw);
        if (st != LDM_OK) break;
        // tile [f*th * f*tw, 3] -> image NCHW, weighted, cropped to H x W
        int Y0 = y0 * f, X0 = x0 * f, TH = th * f, TW = tw * f;
        for (int y = 0; y < TH && Y0 + y < H; y++) {
          float wy = single ? 1.0f : tile_weight(ay, ty, Y0 + y, f) / ny[Y0 + y];
          for (int x = 0; x < TW && X0 + x < W; x++) {
            const float *p = s.x + ((size_t)y * TW + x) * Ci;
            size_t o = (size_t)(Y0 + y) * W + (X0 + x);
            if (single) {
              for (int ch = 0; ch < Ci; ch++) ib[ch * plane + o] = p[ch];
            } else {
              float wgt = wy * tile_weight(ax, tx, X0 + x, f) / nx[X0 + x];
              for (int ch = 0; ch < Ci; ch++) ib[ch * plane + o] += wgt * p[ch];
            }
          }
        }
      }
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  free(ay);
  free(ax);
  free(ny);
  free(nx);
  return st;
}
