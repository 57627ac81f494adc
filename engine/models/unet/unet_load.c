/* UNet loading: finds the layout (original single-file names, with or without
 * the model.diffusion_model. prefix, or diffusers names), reads the
 * hyper-parameters from tensor shapes (+ unet/config.json) and binds every
 * weight under its canonical (original) name. The name pairs mirror diffusers'
 * convert_ldm_unet_checkpoint (loaders/single_file_utils.py). */
#include "models/unet/unet.h"
#include "core/config_keys.h"
#include "core/status.h"
#include "core/value.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LDM_PREFIX "model.diffusion_model."
#define CONTROL_PREFIX    "control_model."
#define MAX_MISSING_SHOWN 6

typedef struct mname { /* a module's canonical and diffusers names */
  char l[160];
  char d[160];
} mname;

typedef struct loader {
  const ldm_source *src;
  ldm_unet_layout layout;
  int lpb;
  int64_t n_used;
  int n_missing;
  char missing[600];
  ldm_status st;               /* first shape/format error */
  ldm_error *err;
  ldm_lora_table *lora;        /* where weights are registered for LoRAs */
} loader;

static const ldm_tensor *find_name(const loader *L, const char *lname, const char *dname) {
  char buf[400];
  if (L->layout == LDM_UNET_LAYOUT_DIFFUSERS) return ldm_source_find(L->src, "unet", dname);
  snprintf(buf, sizeof buf, "%s%s",
           L->layout == LDM_UNET_LAYOUT_LDM       ? LDM_PREFIX
           : L->layout == LDM_UNET_LAYOUT_CONTROL ? CONTROL_PREFIX
                                                  : "",
           lname);
  return ldm_source_find(L->src, "unet", buf);
}

static void full_names(const mname *m, const char *ls, const char *ds, char *lb, char *db, size_t n) {
  snprintf(lb, n, "%s%s%s", m->l, m->l[0] ? "." : "", ls);
  snprintf(db, n, "%s%s%s", m->d, m->d[0] ? "." : "", ds);
}

static const ldm_tensor *probe(const loader *L, const mname *m, const char *ls, const char *ds) {
  char lb[340], db[340];
  full_names(m, ls, ds, lb, db, sizeof lb);
  return find_name(L, lb, db);
}

/* Binds a required tensor and checks its shape (-1 = any; nd 0 = no check).
 * A 4-d [o, i, 1, 1] tensor asked for as 2-d is viewed as [o, i]. */
static void req(loader *L, ldm_tensor *dst, const mname *m, const char *ls, const char *ds, int nd,
                int64_t s0, int64_t s1, int64_t s2, int64_t s3) {
  char lb[340], db[340];
  full_names(m, ls, ds, lb, db, sizeof lb);
  const ldm_tensor *t = find_name(L, lb, db);
  memset(dst, 0, sizeof *dst);
  if (!t) {
    if (L->n_missing < MAX_MISSING_SHOWN) {
      size_t used = strlen(L->missing);
      snprintf(L->missing + used, sizeof L->missing - used, "%s'%s'", L->n_missing ? ", " : "",
               L->layout == LDM_UNET_LAYOUT_DIFFUSERS ? db : lb);
    }
    L->n_missing++;
    return;
  }
  L->n_used++;
  *dst = *t;
  if (nd == 2 && t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1) dst->ndim = 2;
  const int64_t want[4] = {s0, s1, s2, s3};
  bool ok = nd == 0 || dst->ndim == nd;
  for (int i = 0; ok && i < nd; i++) ok = want[i] < 0 || dst->shape[i] == want[i];
  if (!ok && L->st == LDM_OK) {
    char got[64], exp[64] = "[";
    for (int i = 0; i < nd; i++) {
      size_t u = strlen(exp);
      if (want[i] < 0) snprintf(exp + u, sizeof exp - u, "%s*", i ? ", " : "");
      else snprintf(exp + u, sizeof exp - u, "%s%lld", i ? ", " : "", (long long)want[i]);
    }
    strncat(exp, "]", sizeof exp - strlen(exp) - 1);
    L->st = ldm_fail(L->err, LDM_ERR_SHAPE, "%s: UNet tensor '%s' has shape %s, expected %s",
                     ldm_source_path(L->src), t->name ? t->name : lb, ldm_shape_str(t, got, sizeof got), exp);
  }
  if (!(t->dtype == LDM_DTYPE_F32 || t->dtype == LDM_DTYPE_F16 || t->dtype == LDM_DTYPE_BF16) &&
      L->st == LDM_OK)
    L->st = ldm_fail(L->err, LDM_ERR_SHAPE, "%s: UNet tensor '%s' has dtype %s, expected F32, F16 or BF16",
                     ldm_source_path(L->src), t->name ? t->name : lb, ldm_dtype_name(t->dtype));
  /* a weight (not a bias or norm) a LoRA may change, under both module paths */
  size_t ll = strlen(lb), dl = strlen(db);
  if (L->lora && nd >= 2 && ll > 7 && dl > 7 && !strcmp(lb + ll - 7, ".weight") && !strcmp(db + dl - 7, ".weight")) {
    lb[ll - 7] = db[dl - 7] = '\0';
    if (ldm_lora_table_add(L->lora, LDM_LORA_UNET, db, lb, dst) != LDM_OK && L->st == LDM_OK)
      L->st = ldm_fail(L->err, LDM_ERR_NOMEM, "out of memory");
  }
}

/* ---- module names (the index arithmetic of convert_ldm_unet_checkpoint) -- */
static mname nm(const char *l, const char *d) {
  mname m;
  snprintf(m.l, sizeof m.l, "%s", l);
  snprintf(m.d, sizeof m.d, "%s", d);
  return m;
}
static mname down_res(int lpb, int lvl, int j) {
  mname m;
  snprintf(m.l, sizeof m.l, "input_blocks.%d.0", 1 + lvl * (lpb + 1) + j);
  snprintf(m.d, sizeof m.d, "down_blocks.%d.resnets.%d", lvl, j);
  return m;
}
static mname down_attn(int lpb, int lvl, int j) {
  mname m;
  snprintf(m.l, sizeof m.l, "input_blocks.%d.1", 1 + lvl * (lpb + 1) + j);
  snprintf(m.d, sizeof m.d, "down_blocks.%d.attentions.%d", lvl, j);
  return m;
}
static mname down_conv(int lpb, int lvl) {
  mname m;
  snprintf(m.l, sizeof m.l, "input_blocks.%d.0.op", 1 + lvl * (lpb + 1) + lpb);
  snprintf(m.d, sizeof m.d, "down_blocks.%d.downsamplers.0.conv", lvl);
  return m;
}
static mname up_res(int lpb, int u, int j) {
  mname m;
  snprintf(m.l, sizeof m.l, "output_blocks.%d.0", u * (lpb + 1) + j);
  snprintf(m.d, sizeof m.d, "up_blocks.%d.resnets.%d", u, j);
  return m;
}
static mname up_attn(int lpb, int u, int j) {
  mname m;
  snprintf(m.l, sizeof m.l, "output_blocks.%d.1", u * (lpb + 1) + j);
  snprintf(m.d, sizeof m.d, "up_blocks.%d.attentions.%d", u, j);
  return m;
}
static mname up_conv(int lpb, int u, bool after_attn) {
  mname m;
  snprintf(m.l, sizeof m.l, "output_blocks.%d.%d.conv", u * (lpb + 1) + lpb, after_attn ? 2 : 1);
  snprintf(m.d, sizeof m.d, "up_blocks.%d.upsamplers.0.conv", u);
  return m;
}

static bool has_res(const loader *L, const mname *m) { return probe(L, m, "in_layers.0.weight", "norm1.weight"); }
static bool has_attn(const loader *L, const mname *m) { return probe(L, m, "norm.weight", "norm.weight"); }
static int attn_depth(const loader *L, const mname *m) {
  int d = 0;
  char s[96];
  for (;; d++) {
    snprintf(s, sizeof s, "transformer_blocks.%d.norm1.weight", d);
    if (!probe(L, m, s, s)) return d;
  }
}

/* ---- config.json ------------------------------------------------------- */
/* Every argument of diffusers 0.31's UNet2DConditionModel (its config.json
 * keys), as this engine treats it; tests/unit/test_config_keys.c checks the
 * lists against tests/golden/config/keys.txt. Without effect:
 * addition_embed_type_num_heads (for addition_embed_type "text" only),
 * dropout (training), mid_block_only_cross_attention (for
 * UNetMidBlock2DSimpleCrossAttn only, which mid_block_type refuses),
 * sample_size (the pipeline's default size), upcast_attention (attention runs
 * in f32 here always). num_class_embeds is the x4 upscaler's noise-level
 * embedding, found from its weights. A ControlNetModel's config.json comes
 * through here too (controlnet.c loads its UNet half with this reader). */
static const ldm_config_keys unet_keys = {
    .read =
        "addition_time_embed_dim attention_head_dim center_input_sample flip_sin_to_cos freq_shift "
        "mid_block_scale_factor norm_eps norm_num_groups num_attention_heads only_cross_attention",
    .shape =
        "block_out_channels cross_attention_dim in_channels layers_per_block num_class_embeds out_channels "
        "projection_class_embeddings_input_dim time_cond_proj_dim time_embedding_dim "
        "transformer_layers_per_block use_linear_projection",
    .no_effect =
        "_diffusers_version addition_embed_type_num_heads dropout mid_block_only_cross_attention "
        "sample_size upcast_attention",
    .only =
        "_class_name=[\"UNet2DConditionModel\",\"ControlNetModel\"] act_fn=[\"silu\",\"swish\"] "
        "addition_embed_type=[\"text_time\"] "
        "attention_type=[\"default\"] class_embed_type=[] class_embeddings_concat=[false] conv_in_kernel=[3] "
        "conv_out_kernel=[3] cross_attention_norm=[] down_block_types=[\"CrossAttnDownBlock2D\",\"DownBlock2D\"] "
        "downsample_padding=[1] dual_cross_attention=[false] encoder_hid_dim=[] encoder_hid_dim_type=[] "
        "mid_block_type=[\"UNetMidBlock2DCrossAttn\"] resnet_out_scale_factor=[1] resnet_skip_time_act=[false] "
        "resnet_time_scale_shift=[\"default\"] reverse_transformer_layers_per_block=[] time_embedding_act_fn=[] "
        "time_embedding_type=[\"positional\"] timestep_post_act=[] "
        "up_block_types=[\"UpBlock2D\",\"CrossAttnUpBlock2D\"]",
};

const ldm_config_keys *ldm_unet_config_keys(void) { return &unet_keys; }

ldm_status ldm_unet_config_json(const char *text, const char *file, ldm_unet_config *c,
                                const ldm_unet_overrides *ov, ldm_error *err) {
  json_t *root;
  LDM_TRY(ldm_json_object(text, file, &root, err));
  ldm_status st = ldm_config_check(root, &unet_keys, file, err);
  json_t *v;
  double eps = c->norm_eps, fs = c->freq_shift, mid = c->mid_scale;
  if (st != LDM_OK || (st = ldm_json_int(root, "norm_num_groups", -1, 1, 4096, &c->groups, file, err)) != LDM_OK ||
      (st = ldm_json_double(root, "mid_block_scale_factor", 1e-6, 1e6, &mid, file, err)) != LDM_OK ||
      (st = ldm_json_double(root, "norm_eps", 1e-12, 0.1, &eps, file, err)) != LDM_OK ||
      (st = ldm_json_double(root, "freq_shift", -16.0, 16.0, &fs, file, err)) != LDM_OK ||
      (st = ldm_json_int(root, "addition_time_embed_dim", -1, 1, 65536, &c->addition_time_embed_dim, file, err)) !=
          LDM_OK) {
    json_decref(root);
    return st;
  }
  c->norm_eps = (float)eps;
  c->freq_shift = (float)fs;
  c->mid_scale = (float)mid;
  if ((v = json_object_get(root, "flip_sin_to_cos")) && json_is_boolean(v)) c->flip_sin_to_cos = json_is_true(v);
  if ((v = json_object_get(root, "center_input_sample")) && json_is_boolean(v)) c->center_input = json_is_true(v);
  if ((v = json_object_get(root, "only_cross_attention"))) {
    for (int l = 0; l < c->n_levels; l++)
      if (json_is_true(v) || (json_is_array(v) && json_is_true(json_array_get(v, (size_t)l))))
        c->only_cross[l] = true;
  }
  const char *hkey = "num_attention_heads";
  json_t *heads = json_object_get(root, hkey);
  if (!heads || json_is_null(heads)) heads = json_object_get(root, hkey = "attention_head_dim");
  if (heads && !json_is_null(heads) && !(ov && (ov->num_heads || ov->head_dim))) {
    for (int l = 0; l < c->n_levels; l++) {
      c->heads[l] = 0;
      if (json_is_array(heads) && (size_t)l >= json_array_size(heads)) continue;
      if ((st = ldm_json_int(root, hkey, l, 1, 4096, &c->heads[l], file, err)) != LDM_OK) {
        json_decref(root);
        return st;
      }
    }
    c->heads_from = 1;
  }
  json_decref(root);
  return st;
}

static ldm_status read_config(const ldm_source *src, ldm_unet_config *c, const ldm_unet_overrides *ov, ldm_error *err) {
  char file[4200];
  const char *text = ldm_source_config_named(src, "unet", file, sizeof file);
  return text ? ldm_unet_config_json(text, file, c, ov, err) : LDM_OK;
}

/* ---- probe -------------------------------------------------------------- */
static ldm_status find_layout(loader *L) {
  const ldm_source *s = L->src;
  if (ldm_source_find(s, "unet", LDM_PREFIX "input_blocks.0.0.weight")) L->layout = LDM_UNET_LAYOUT_LDM;
  else if (ldm_source_find(s, "unet", CONTROL_PREFIX "input_blocks.0.0.weight"))
    L->layout = LDM_UNET_LAYOUT_CONTROL;
  else if (ldm_source_find(s, "unet", "input_blocks.0.0.weight")) L->layout = LDM_UNET_LAYOUT_LDM_BARE;
  else if (ldm_source_find(s, "unet", "conv_in.weight") &&
           ldm_source_find(s, "unet", "down_blocks.0.resnets.0.norm1.weight"))
    L->layout = LDM_UNET_LAYOUT_DIFFUSERS;
  else
    return ldm_fail(L->err, LDM_ERR_UNSUPPORTED,
                    "%s: no UNet found (neither '" LDM_PREFIX "input_blocks.0.0.weight', "
                    "'input_blocks.0.0.weight' nor diffusers 'unet/conv_in.weight')",
                    ldm_source_path(s));
  return LDM_OK;
}

static int64_t dim_of(const ldm_tensor *t, int i) { return t && t->ndim > i ? t->shape[i] : 0; }

ldm_status ldm_unet_probe(const ldm_source *src, const ldm_unet_overrides *ov, ldm_unet_config *c,
                          ldm_error *err) {
  memset(c, 0, sizeof *c);
  loader L = {.src = src, .err = err};
  LDM_TRY(find_layout(&L));
  c->layout = L.layout;
  const char *path = ldm_source_path(src);
  mname top = nm("", "");
  const ldm_tensor *cin = probe(&L, &top, "input_blocks.0.0.weight", "conv_in.weight");
  const ldm_tensor *cout = probe(&L, &top, "out.2.weight", "conv_out.weight");
  const ldm_tensor *t0 = probe(&L, &top, "time_embed.0.weight", "time_embedding.linear_1.weight");
  c->controlnet = probe(&L, &top, "input_hint_block.0.weight", "controlnet_cond_embedding.conv_in.weight") != NULL;
  if (!cin || cin->ndim != 4 || (!c->controlnet && (!cout || cout->ndim != 4)) || !t0 || t0->ndim != 2)
    return ldm_fail(err, LDM_ERR_MISSING, "%s: UNet lacks conv_in, conv_out or time embedding", path);
  c->in_channels = (int)cin->shape[1];
  c->out_channels = c->controlnet ? 0 : (int)cout->shape[0];
  c->time_embed_dim = (int)t0->shape[0];
  int lpb = 0;
  for (;; lpb++) {
    mname m = down_res(0, 0, lpb); /* level 0's indices do not depend on lpb */
    if (lpb >= 64 || !has_res(&L, &m)) break;
  }
  if (lpb < 1) return ldm_fail(err, LDM_ERR_MISSING, "%s: UNet has no resnet in its first level", path);
  c->layers_per_block = L.lpb = lpb;
  for (int l = 0; l < LDM_UNET_MAX_LEVELS; l++) {
    mname m = down_res(lpb, l, 0);
    if (!has_res(&L, &m)) break;
    const ldm_tensor *cv = probe(&L, &m, "out_layers.3.weight", "conv2.weight");
    c->channels[l] = (int)dim_of(cv, 0);
    mname a = down_attn(lpb, l, 0);
    c->attn_depth[l] = attn_depth(&L, &a);
    c->n_levels = l + 1;
  }
  mname mid = nm("middle_block.1", "mid_block.attentions.0");
  c->mid_depth = attn_depth(&L, &mid);
  /* context dim, linear projections, only-cross levels from the first
   * transformer that has them */
  for (int l = -1; l < c->n_levels; l++) {
    mname a = l < 0 ? mid : down_attn(lpb, l, 0);
    if ((l < 0 ? c->mid_depth : c->attn_depth[l]) == 0) continue;
    const ldm_tensor *pi = probe(&L, &a, "proj_in.weight", "proj_in.weight");
    const ldm_tensor *k2 = probe(&L, &a, "transformer_blocks.0.attn2.to_k.weight",
                                 "transformer_blocks.0.attn2.to_k.weight");
    if (pi) c->linear_proj = pi->ndim == 2;
    if (k2 && !c->context_dim) c->context_dim = (int)dim_of(k2, 1);
  }
  for (int l = 0; l < c->n_levels; l++) {
    mname a = down_attn(lpb, l, 0);
    const ldm_tensor *k1 = probe(&L, &a, "transformer_blocks.0.attn1.to_k.weight",
                                 "transformer_blocks.0.attn1.to_k.weight");
    if (k1 && dim_of(k1, 1) != c->channels[l]) c->only_cross[l] = true;
  }
  const ldm_tensor *t;
  if ((t = probe(&L, &top, "label_emb.0.0.weight", "add_embedding.linear_1.weight"))) c->adm_in_channels = (int)dim_of(t, 1);
  if ((t = probe(&L, &top, "label_emb.weight", "class_embedding.weight"))) c->num_classes = (int)dim_of(t, 0);
  if ((t = probe(&L, &top, "time_embed.cond_proj.weight", "time_embedding.cond_proj.weight")))
    c->time_cond_proj_dim = (int)dim_of(t, 1);
  c->groups = 32;
  c->norm_eps = 1e-5f;
  c->flip_sin_to_cos = true;
  c->freq_shift = 0;
  c->mid_scale = 1.0f;
  if (L.layout == LDM_UNET_LAYOUT_DIFFUSERS) LDM_TRY(read_config(src, c, ov, err));
  if (ov && ov->groups > 0) c->groups = ov->groups;
  if (ov && (ov->num_heads > 0 || ov->head_dim > 0)) {
    for (int l = 0; l < c->n_levels; l++)
      c->heads[l] = ov->num_heads > 0 ? ov->num_heads : c->channels[l] / ov->head_dim;
    c->heads_from = 2;
  } else if (c->heads_from == 0) {
    /* original yaml values: SD1.x and the x4 upscaler num_heads 8,
     * SD2.x and SDXL num_head_channels 64 */
    bool fixed_heads = c->num_classes > 0 || !c->linear_proj;
    for (int l = 0; l < c->n_levels; l++) c->heads[l] = fixed_heads ? 8 : c->channels[l] / 64;
  }
  /* tensor and parameter counts of the UNet part */
  int64_t n = ldm_source_count(src, "unet");
  size_t plen = strlen(LDM_PREFIX);
  for (int64_t i = 0; i < n; i++) {
    const ldm_tensor *x = ldm_source_at(src, "unet", i);
    if (!x || !x->name) continue;
    if (strncmp(x->name, "model_ema.", 10) == 0) {
      c->n_ignored++;
      continue;
    }
    if (L.layout == LDM_UNET_LAYOUT_LDM && strncmp(x->name, LDM_PREFIX, plen) != 0) continue;
    if (L.layout == LDM_UNET_LAYOUT_CONTROL && strncmp(x->name, CONTROL_PREFIX, strlen(CONTROL_PREFIX)) != 0) continue;
    c->n_tensors++;
    c->n_params += ldm_tensor_numel(x);
  }
  return LDM_OK;
}

/* ---- weights ------------------------------------------------------------ */
static void load_res(loader *L, ldm_unet_resblock *r, const mname *m, int cin, int cout, int temb) {
  r->cin = cin;
  r->cout = cout;
  req(L, &r->norm1_w, m, "in_layers.0.weight", "norm1.weight", 1, cin, 0, 0, 0);
  req(L, &r->norm1_b, m, "in_layers.0.bias", "norm1.bias", 1, cin, 0, 0, 0);
  req(L, &r->conv1_w, m, "in_layers.2.weight", "conv1.weight", 4, cout, cin, 3, 3);
  req(L, &r->conv1_b, m, "in_layers.2.bias", "conv1.bias", 1, cout, 0, 0, 0);
  req(L, &r->emb_w, m, "emb_layers.1.weight", "time_emb_proj.weight", 2, cout, temb, 0, 0);
  req(L, &r->emb_b, m, "emb_layers.1.bias", "time_emb_proj.bias", 1, cout, 0, 0, 0);
  req(L, &r->norm2_w, m, "out_layers.0.weight", "norm2.weight", 1, cout, 0, 0, 0);
  req(L, &r->norm2_b, m, "out_layers.0.bias", "norm2.bias", 1, cout, 0, 0, 0);
  req(L, &r->conv2_w, m, "out_layers.3.weight", "conv2.weight", 4, cout, cout, 3, 3);
  req(L, &r->conv2_b, m, "out_layers.3.bias", "conv2.bias", 1, cout, 0, 0, 0);
  memset(&r->skip_w, 0, sizeof r->skip_w);
  memset(&r->skip_b, 0, sizeof r->skip_b);
  if (cin != cout) {
    req(L, &r->skip_w, m, "skip_connection.weight", "conv_shortcut.weight", 2, cout, cin, 0, 0);
    req(L, &r->skip_b, m, "skip_connection.bias", "conv_shortcut.bias", 1, cout, 0, 0, 0);
  }
}

static ldm_status load_attn(loader *L, const ldm_unet_config *c, ldm_unet_transformer *a, const mname *m,
                            int ch, int heads, bool only_cross) {
  a->channels = ch;
  a->heads = heads;
  a->depth = attn_depth(L, m);
  if (heads <= 0 || ch % heads != 0)
    return ldm_fail(L->err, LDM_ERR_INVALID_ARG,
                    "%s: %d attention heads do not divide %d channels (%s); set heads or head_dim",
                    ldm_source_path(L->src), heads, ch, m->l);
  a->blocks = calloc((size_t)a->depth, sizeof *a->blocks);
  if (!a->blocks) return ldm_fail(L->err, LDM_ERR_NOMEM, "out of memory");
  int D = c->context_dim;
  req(L, &a->norm_w, m, "norm.weight", "norm.weight", 1, ch, 0, 0, 0);
  req(L, &a->norm_b, m, "norm.bias", "norm.bias", 1, ch, 0, 0, 0);
  req(L, &a->proj_in_w, m, "proj_in.weight", "proj_in.weight", 2, ch, ch, 0, 0);
  req(L, &a->proj_in_b, m, "proj_in.bias", "proj_in.bias", 1, ch, 0, 0, 0);
  req(L, &a->proj_out_w, m, "proj_out.weight", "proj_out.weight", 2, ch, ch, 0, 0);
  req(L, &a->proj_out_b, m, "proj_out.bias", "proj_out.bias", 1, ch, 0, 0, 0);
  for (int d = 0; d < a->depth; d++) {
    ldm_unet_tblock *b = &a->blocks[d];
    mname bm;
    snprintf(bm.l, sizeof bm.l, "%.120s.transformer_blocks.%d", m->l, d);
    snprintf(bm.d, sizeof bm.d, "%.120s.transformer_blocks.%d", m->d, d);
    const ldm_tensor *k1 = probe(L, &bm, "attn1.to_k.weight", "attn1.to_k.weight");
    b->attn1_cross = only_cross || (k1 && dim_of(k1, 1) != ch);
    int D1 = b->attn1_cross ? D : ch;
#define T(f, s, nd, a0, a1) req(L, &b->f, &bm, s, s, nd, a0, a1, 0, 0)
    T(norm1_w, "norm1.weight", 1, ch, 0);
    T(norm1_b, "norm1.bias", 1, ch, 0);
    T(q1, "attn1.to_q.weight", 2, ch, ch);
    T(k1, "attn1.to_k.weight", 2, ch, D1);
    T(v1, "attn1.to_v.weight", 2, ch, D1);
    T(o1_w, "attn1.to_out.0.weight", 2, ch, ch);
    T(o1_b, "attn1.to_out.0.bias", 1, ch, 0);
    T(norm2_w, "norm2.weight", 1, ch, 0);
    T(norm2_b, "norm2.bias", 1, ch, 0);
    T(q2, "attn2.to_q.weight", 2, ch, ch);
    T(k2, "attn2.to_k.weight", 2, ch, D);
    T(v2, "attn2.to_v.weight", 2, ch, D);
    T(o2_w, "attn2.to_out.0.weight", 2, ch, ch);
    T(o2_b, "attn2.to_out.0.bias", 1, ch, 0);
    T(norm3_w, "norm3.weight", 1, ch, 0);
    T(norm3_b, "norm3.bias", 1, ch, 0);
    T(ff1_w, "ff.net.0.proj.weight", 2, 8 * (int64_t)ch, ch);
    T(ff1_b, "ff.net.0.proj.bias", 1, 8 * (int64_t)ch, 0);
    T(ff2_w, "ff.net.2.weight", 2, ch, 4 * (int64_t)ch);
    T(ff2_b, "ff.net.2.bias", 1, ch, 0);
#undef T
  }
  return LDM_OK;
}

static void free_attn(ldm_unet_transformer *a) { free(a->blocks); }

void ldm_unet_free(ldm_unet *u) {
  if (!u) return;
  for (int i = 0; i < u->w.n_input; i++) free_attn(&u->w.input[i].attn);
  for (int i = 0; i < u->w.n_output; i++) free_attn(&u->w.output[i].attn);
  free_attn(&u->w.mid_attn);
  free(u->w.input);
  free(u->w.output);
  ldm_lora_table_deinit(&u->lora);
  free(u);
}

void ldm_unet_release(const ldm_unet *u, const ldm_source *src) {
  if (!u) return;
  /* a UNet-only file or folder part is released whole */
  ldm_unet_layout l = u->cfg.layout;
  ldm_source_release(src, "unet",
                     l == LDM_UNET_LAYOUT_LDM       ? LDM_PREFIX
                     : l == LDM_UNET_LAYOUT_CONTROL ? CONTROL_PREFIX
                                                    : NULL);
}

static ldm_status load_weights(loader *L, ldm_unet *u) {
  const ldm_unet_config *c = &u->cfg;
  ldm_unet_weights *w = &u->w;
  int lpb = c->layers_per_block, nl = c->n_levels, C0 = c->channels[0], te = c->time_embed_dim;
  mname top = nm("", "");
  req(L, &w->time1_w, &top, "time_embed.0.weight", "time_embedding.linear_1.weight", 2, te, C0, 0, 0);
  req(L, &w->time1_b, &top, "time_embed.0.bias", "time_embedding.linear_1.bias", 1, te, 0, 0, 0);
  req(L, &w->time2_w, &top, "time_embed.2.weight", "time_embedding.linear_2.weight", 2, te, te, 0, 0);
  req(L, &w->time2_b, &top, "time_embed.2.bias", "time_embedding.linear_2.bias", 1, te, 0, 0, 0);
  if (c->time_cond_proj_dim)
    req(L, &w->cond_proj_w, &top, "time_embed.cond_proj.weight", "time_embedding.cond_proj.weight", 2, C0,
        c->time_cond_proj_dim, 0, 0);
  if (c->num_classes) req(L, &w->class_emb, &top, "label_emb.weight", "class_embedding.weight", 2, -1, te, 0, 0);
  if (c->adm_in_channels) {
    req(L, &w->add1_w, &top, "label_emb.0.0.weight", "add_embedding.linear_1.weight", 2, te, -1, 0, 0);
    req(L, &w->add1_b, &top, "label_emb.0.0.bias", "add_embedding.linear_1.bias", 1, te, 0, 0, 0);
    req(L, &w->add2_w, &top, "label_emb.0.2.weight", "add_embedding.linear_2.weight", 2, te, te, 0, 0);
    req(L, &w->add2_b, &top, "label_emb.0.2.bias", "add_embedding.linear_2.bias", 1, te, 0, 0, 0);
  }
  req(L, &w->conv_in_w, &top, "input_blocks.0.0.weight", "conv_in.weight", 4, C0, c->in_channels, 3, 3);
  req(L, &w->conv_in_b, &top, "input_blocks.0.0.bias", "conv_in.bias", 1, C0, 0, 0, 0);
  if (!c->controlnet) {
    req(L, &w->norm_out_w, &top, "out.0.weight", "conv_norm_out.weight", 1, C0, 0, 0, 0);
    req(L, &w->norm_out_b, &top, "out.0.bias", "conv_norm_out.bias", 1, C0, 0, 0, 0);
    req(L, &w->conv_out_w, &top, "out.2.weight", "conv_out.weight", 4, c->out_channels, C0, 3, 3);
    req(L, &w->conv_out_b, &top, "out.2.bias", "conv_out.bias", 1, c->out_channels, 0, 0, 0);
  }

  /* down path; skip[] tracks the channels of every pushed skip tensor */
  int skip[1 + LDM_UNET_MAX_LEVELS * 65], n_skip = 0;
  w->n_input = 1 + nl * (lpb + 1) - 1;
  w->n_output = c->controlnet ? 0 : nl * (lpb + 1);
  w->input = calloc((size_t)w->n_input, sizeof *w->input);
  w->output = calloc((size_t)w->n_output + 1, sizeof *w->output);
  if (!w->input || !w->output) return ldm_fail(L->err, LDM_ERR_NOMEM, "out of memory");
  skip[n_skip++] = C0;
  int ch = C0;
  for (int l = 0; l < nl; l++) {
    for (int j = 0; j <= lpb; j++) {
      int idx = 1 + l * (lpb + 1) + j;
      if (idx >= w->n_input) break;
      ldm_unet_block *b = &w->input[idx];
      b->level = l;
      if (j < lpb) {
        mname r = down_res(lpb, l, j), a = down_attn(lpb, l, j);
        b->has_res = true;
        load_res(L, &b->res, &r, ch, c->channels[l], te);
        ch = c->channels[l];
        if (has_attn(L, &a)) {
          b->has_attn = true;
          LDM_TRY(load_attn(L, c, &b->attn, &a, ch, c->heads[l], c->only_cross[l]));
        }
      } else {
        mname d = down_conv(lpb, l);
        b->has_down = true;
        req(L, &b->conv_w, &d, "weight", "weight", 4, ch, ch, 3, 3);
        req(L, &b->conv_b, &d, "bias", "bias", 1, ch, 0, 0, 0);
      }
      skip[n_skip++] = ch;
    }
  }
  /* middle */
  mname m0 = nm("middle_block.0", "mid_block.resnets.0"), m1 = nm("middle_block.1", "mid_block.attentions.0"),
        m2 = nm("middle_block.2", "mid_block.resnets.1");
  load_res(L, &w->mid_res1, &m0, ch, ch, te);
  if (has_attn(L, &m1)) {
    w->mid_has_attn = true;
    LDM_TRY(load_attn(L, c, &w->mid_attn, &m1, ch, c->heads[nl - 1], false));
  }
  load_res(L, &w->mid_res2, &m2, ch, ch, te);
  /* up path (none in a ControlNet) */
  for (int ui = 0; ui < nl && w->n_output > 0; ui++) {
    int l = nl - 1 - ui;
    for (int j = 0; j <= lpb; j++) {
      ldm_unet_block *b = &w->output[ui * (lpb + 1) + j];
      mname r = up_res(lpb, ui, j), a = up_attn(lpb, ui, j);
      b->level = l;
      b->has_res = true;
      int sc = n_skip > 0 ? skip[--n_skip] : 0;
      load_res(L, &b->res, &r, ch + sc, c->channels[l], te);
      ch = c->channels[l];
      if (has_attn(L, &a)) {
        b->has_attn = true;
        LDM_TRY(load_attn(L, c, &b->attn, &a, ch, c->heads[l], c->only_cross[l]));
      }
      if (j == lpb && ui < nl - 1) {
        mname uc = up_conv(lpb, ui, b->has_attn);
        b->has_up = true;
        req(L, &b->conv_w, &uc, "weight", "weight", 4, ch, ch, 3, 3);
        req(L, &b->conv_b, &uc, "bias", "bias", 1, ch, 0, 0, 0);
      }
    }
  }
  if (L->n_missing)
    return ldm_fail(L->err, LDM_ERR_MISSING, "%s: %d UNet tensor%s missing: %s%s", ldm_source_path(L->src),
                    L->n_missing, L->n_missing > 1 ? "s" : "", L->missing,
                    L->n_missing > MAX_MISSING_SHOWN ? ", ..." : "");
  return L->st;
}

ldm_status ldm_unet_load_ex(ldm_unet **out, const ldm_source *src, const ldm_unet_overrides *ov, bool controlnet,
                            ldm_error *err) {
  *out = NULL;
  ldm_unet *u = calloc(1, sizeof *u);
  if (!u) return ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  ldm_status st = ldm_unet_probe(src, ov, &u->cfg, err);
  if (st == LDM_OK && u->cfg.controlnet != controlnet)
    st = controlnet ? ldm_fail(err, LDM_ERR_INVALID_ARG,
                               "%s: not a ControlNet (no 'input_hint_block' or "
                               "'controlnet_cond_embedding' tensors)",
                               ldm_source_path(src))
                    : ldm_fail(err, LDM_ERR_INVALID_ARG,
                               "%s: this is a ControlNet, not a checkpoint (use it as a "
                               "control: --controlnet)",
                               ldm_source_path(src));
  if (st == LDM_OK && u->cfg.n_levels > 0 && u->cfg.layers_per_block > 64)
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: layers_per_block %d", ldm_source_path(src),
                  u->cfg.layers_per_block);
  if (st == LDM_OK && u->cfg.context_dim <= 0)
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: UNet has no cross-attention", ldm_source_path(src));
  if (st == LDM_OK) {
    loader L = {.src = src, .layout = u->cfg.layout, .lpb = u->cfg.layers_per_block, .err = err,
                .lora = &u->lora};
    st = load_weights(&L, u);
    u->cfg.n_ignored += u->cfg.n_tensors - L.n_used;
  }
  if (st == LDM_OK && u->cfg.groups > 0) {
    for (int l = 0; l < u->cfg.n_levels && st == LDM_OK; l++)
      if (u->cfg.channels[l] % u->cfg.groups)
        st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: %d GroupNorm groups do not divide %d channels",
                      ldm_source_path(src), u->cfg.groups, u->cfg.channels[l]);
  }
  if (st != LDM_OK) {
    ldm_unet_free(u);
    return st;
  }
  *out = u;
  return LDM_OK;
}

ldm_status ldm_unet_load(ldm_unet **out, const ldm_source *src, const ldm_unet_overrides *ov, ldm_error *err) {
  return ldm_unet_load_ex(out, src, ov, false, err);
}
