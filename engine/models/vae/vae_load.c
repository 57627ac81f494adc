/* AutoencoderKL (the SD VAE) loading from either layout (original LDM names
 * or diffusers'), its config.json and the latent scaling. Mirrors diffusers
 * models/autoencoders/vae.py Encoder/Decoder weights, which in turn mirror
 * ldm.modules.diffusionmodules.model. */
#include "models/vae/vae_impl.h"
#include "core/config_keys.h"
#include "core/status.h"
#include "core/value.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vae_loader {
  const ldm_source *src;
  const char *part;
  const char *prefix; /* "first_stage_model.", "vae." or "" */
  bool diffusers;     /* diffusers names (else original) */
  int levels;
  ldm_error *err;
} vae_loader;

static const ldm_tensor *ld_raw(const vae_loader *L, const char *name) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s%s", L->prefix, name);
  return ldm_source_find(L->src, L->part, buf);
}

/* The name a weight has in the file, for messages. */
static const char *ld_shown(const vae_loader *L, const char *canon, const char *diff, char *buf, size_t n) {
  snprintf(buf, n, "%s%s", L->prefix, L->diffusers ? diff : canon);
  return buf;
}

/* Looks up canon (original layout) or diff / diff_old (diffusers layout,
 * current and pre-0.15 attention names) and checks the shape: n dims given
 * in `shape`. 2-D weights also accept [N, K, 1, 1] (1x1 convs stored by the
 * original code for attention projections) and are viewed as [N, K]. */
static ldm_status ld_get(const vae_loader *L, ldm_tensor *dst, const char *canon, const char *diff,
                         const char *diff_old, int n, const int64_t *shape, bool optional) {
  const ldm_tensor *t = L->diffusers ? ld_raw(L, diff) : ld_raw(L, canon);
  if (!t && L->diffusers && diff_old) t = ld_raw(L, diff_old);
  char shown[256], sb[64], eb[64];
  memset(dst, 0, sizeof *dst);
  if (!t) {
    if (optional) return LDM_OK;
    return ldm_fail(L->err, LDM_ERR_MISSING, "%s: VAE tensor '%s' is missing", ldm_source_path(L->src),
                    ld_shown(L, canon, diff, shown, sizeof shown));
  }
  if (t->dtype != LDM_DTYPE_F32 && t->dtype != LDM_DTYPE_F16 && t->dtype != LDM_DTYPE_BF16)
    return ldm_fail(L->err, LDM_ERR_SHAPE, "%s: VAE tensor '%s' has dtype %s, expected F32, F16 or BF16",
                    ldm_source_path(L->src), ld_shown(L, canon, diff, shown, sizeof shown), ldm_dtype_name(t->dtype));
  ldm_tensor v = *t;
  if (n == 2 && v.ndim == 4 && v.shape[2] == 1 && v.shape[3] == 1) v.ndim = 2;
  if (!ldm_tensor_has_shape(&v, n, shape)) {
    ldm_tensor e = {.dtype = t->dtype, .ndim = n};
    for (int i = 0; i < n; i++) e.shape[i] = shape[i];
    return ldm_fail(L->err, LDM_ERR_SHAPE, "%s: VAE tensor '%s' has shape %s, expected %s", ldm_source_path(L->src),
                    ld_shown(L, canon, diff, shown, sizeof shown), ldm_shape_str(t, sb, sizeof sb),
                    ldm_shape_str(&e, eb, sizeof eb));
  }
  *dst = v;
  return LDM_OK;
}

/* weight + bias of a conv (k x k) or of a norm (k == 0: [C] each). */
static ldm_status ld_pair(const vae_loader *L, ldm_tensor *w, ldm_tensor *b, const char *canon, const char *diff,
                          int cout, int cin, int k, bool optional) {
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

static ldm_status ld_resnet(const vae_loader *L, vae_resnet *r, const char *canon, const char *diff, int cin,
                            int cout) {
  char c[160], d[160];
  r->cin = cin;
  r->cout = cout;
#define RES_PAIR(field_w, field_b, cname, dname, co, ci, k) \
  snprintf(c, sizeof c, "%s.%s", canon, cname);             \
  snprintf(d, sizeof d, "%s.%s", diff, dname);              \
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
      {"q", "to_q", "query"}, {"k", "to_k", "key"}, {"v", "to_v", "value"}, {"proj_out", "to_out.0", "proj_attn"}};
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
  if (L->diffusers)
    snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d.conv1.weight", i, j);
  else
    snprintf(n, sizeof n, "encoder.down.%d.block.%d.conv1.weight", i, j);
  return ld_raw(L, n);
}
static const ldm_tensor *probe_dec_block(const vae_loader *L, int i, int j) {
  char n[128]; /* i: original level index; diffusers counts the other way */
  if (L->diffusers)
    snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d.conv1.weight", L->levels - 1 - i, j);
  else
    snprintf(n, sizeof n, "decoder.up.%d.block.%d.conv1.weight", i, j);
  return ld_raw(L, n);
}
static int count_dec_levels(const vae_loader *L) {
  char n[128];
  int k = 0;
  for (; k <= LDM_VAE_MAX_LEVELS; k++) {
    if (L->diffusers)
      snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.0.conv1.weight", k);
    else
      snprintf(n, sizeof n, "decoder.up.%d.block.0.conv1.weight", k);
    if (!ld_raw(L, n)) break;
  }
  return k;
}

/* Every argument of diffusers 0.31's AutoencoderKL (its config.json keys),
 * as this engine treats it; tests/unit/test_config_keys.c checks the lists
 * against tests/golden/config/keys.txt. Without effect: force_upcast (fp16
 * pipelines only: the VAE runs in f32 here), sample_size (diffusers' own
 * tile size). latents_mean / latents_std (per-channel latent statistics some
 * pipelines apply) are not implemented. */
static const ldm_config_keys vae_keys = {
    .read = "norm_num_groups scaling_factor shift_factor",
    .shape =
        "block_out_channels in_channels latent_channels layers_per_block mid_block_add_attention out_channels "
        "use_post_quant_conv use_quant_conv",
    .no_effect = "_diffusers_version force_upcast sample_size",
    .only =
        "_class_name=[\"AutoencoderKL\"] act_fn=[\"silu\",\"swish\"] down_block_types=[\"DownEncoderBlock2D\"] "
        "latents_mean=[] latents_std=[] up_block_types=[\"UpDecoderBlock2D\"]",
};

const ldm_config_keys *ldm_vae_config_keys(void) { return &vae_keys; }

ldm_status ldm_vae_config_json(const char *text, const char *file, int *groups, double *scale, double *shift,
                               ldm_error *err) {
  json_t *root;
  LDM_TRY(ldm_json_object(text, file, &root, err));
  ldm_status st = ldm_config_check(root, &vae_keys, file, err);
  if (st == LDM_OK) st = ldm_json_int(root, "norm_num_groups", -1, 1, 4096, groups, file, err);
  /* a scaling factor of 0 would decode every latent to the same grey */
  if (st == LDM_OK) st = ldm_json_double(root, "scaling_factor", 1e-6, 1000.0, scale, file, err);
  if (st == LDM_OK) st = ldm_json_double(root, "shift_factor", -1000.0, 1000.0, shift, file, err);
  json_decref(root);
  return st;
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
    LDM_TRY(ld_pair(L, &e->conv_in_w, &e->conv_in_b, "encoder.conv_in", "encoder.conv_in", c->ch[0], c->image_channels,
                    3, false));
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
    LDM_TRY(ld_pair(L, &e->norm_out_w, &e->norm_out_b, "encoder.norm_out", "encoder.conv_norm_out", c->ch[Lv - 1], 0, 0,
                    false));
    LDM_TRY(ld_pair(L, &e->conv_out_w, &e->conv_out_b, "encoder.conv_out", "encoder.conv_out", 2 * Cl, c->ch[Lv - 1], 3,
                    false));
    LDM_TRY(ld_pair(L, &e->quant_w, &e->quant_b, "quant_conv", "quant_conv", 2 * Cl, 2 * Cl, 1, true));
    c->quant_conv = e->quant_w.data != NULL;
  }
  if (c->has_decoder) {
    vae_decoder_weights *d = &v->dec;
    LDM_TRY(ld_pair(L, &d->post_quant_w, &d->post_quant_b, "post_quant_conv", "post_quant_conv", Cl, Cl, 1, true));
    c->post_quant_conv = d->post_quant_w.data != NULL;
    LDM_TRY(
        ld_pair(L, &d->conv_in_w, &d->conv_in_b, "decoder.conv_in", "decoder.conv_in", c->ch[Lv - 1], Cl, 3, false));
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
    LDM_TRY(
        ld_pair(L, &d->norm_out_w, &d->norm_out_b, "decoder.norm_out", "decoder.conv_norm_out", c->ch[0], 0, 0, false));
    LDM_TRY(ld_pair(L, &d->conv_out_w, &d->conv_out_b, "decoder.conv_out", "decoder.conv_out", c->image_channels,
                    c->ch[0], 3, false));
  }
  return LDM_OK;
}

ldm_status ldm_vae_load(ldm_vae **out, const ldm_source *src, const ldm_vae_load_opts *opts, ldm_error *err) {
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
  L.diffusers =
      ld_raw(&L, "decoder.mid_block.resnets.0.conv1.weight") || ld_raw(&L, "encoder.mid_block.resnets.0.conv1.weight");

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
    st = ldm_fail(err, LDM_ERR_MISSING,
                  "%s: VAE has neither a complete encoder nor decoder "
                  "(conv_in/conv_out missing)",
                  ldm_source_path(src));
    goto done;
  }
  /* levels and channels: from the encoder's down blocks or the decoder's */
  int levels = 0;
  if (c->has_encoder)
    while (levels <= LDM_VAE_MAX_LEVELS && probe_enc_block(&L, levels, 0)) levels++;
  else
    levels = count_dec_levels(&L);
  if (levels < 1 || levels > LDM_VAE_MAX_LEVELS) {
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: VAE has %d levels, expected 1..%d", ldm_source_path(src), levels,
                  LDM_VAE_MAX_LEVELS);
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
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: VAE has %d resnets per level, expected 1..%d", ldm_source_path(src),
                  layers, LDM_VAE_MAX_LAYERS);
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
  if (c->latent_channels < 1 || c->latent_channels > 64 || c->image_channels < 1 || c->image_channels > 16) {
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: VAE has %d latent and %d image channels", ldm_source_path(src),
                  c->latent_channels, c->image_channels);
    goto done;
  }
  {
    char n[96];
    snprintf(n, sizeof n, L.diffusers ? "%s.mid_block.attentions.0.group_norm.weight" : "%s.mid.attn_1.norm.weight",
             c->has_decoder ? "decoder" : "encoder");
    c->mid_attention = ld_raw(&L, n) != NULL;
  }
  int groups = 32;
  double scale = ldm_vae_family_scale(o.family), shift = 0;
  char file[4200];
  const char *text = ldm_source_config_named(src, L.part, file, sizeof file);
  st = text ? ldm_vae_config_json(text, file, &groups, &scale, &shift, err) : LDM_OK;
  if (st != LDM_OK) goto done;
  if (o.groups > 0) groups = o.groups;
  if (o.scale > 0) scale = o.scale;
  c->groups = groups;
  c->scale = (float)scale;
  c->shift = (float)shift;
  for (int i = 0; i < levels; i++)
    if (groups < 1 || c->ch[i] % groups != 0) {
      st = ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "%s: VAE level %d has %d channels, not a multiple of "
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
