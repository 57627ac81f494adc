/* CLIP text transformer forward, mirroring transformers' CLIPTextTransformer
 * (CLIPEncoderLayer: x += attn(ln1(x)); x += mlp(ln2(x))) and open_clip's
 * TextTransformer (same math; fused in_proj, [d, proj] text_projection).
 * Hyper-parameters come from tensor shapes; heads and activation from the
 * diffusers config.json when there is one. */
#include "text/clip_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/config_keys.h"
#include "core/status.h"
#include "core/value.h"
#include "ops/ops.h"

/* ---- loading --------------------------------------------------------------- */
typedef struct loader {
  const ldm_source *src;
  const char *part;          /* diffusers subfolder or NULL */
  const char *prefix;        /* key prefix */
  const char *where;         /* for messages */
} loader;

static bool is_float(ldm_dtype t) {
  return t == LDM_DTYPE_F32 || t == LDM_DTYPE_F16 || t == LDM_DTYPE_BF16;
}

static const ldm_tensor *find(const loader *L, const char *name) {
  char key[256];
  snprintf(key, sizeof key, "%s%s", L->prefix, name);
  return ldm_source_find(L->src, L->part, key);
}

/* Looks up prefix+name, checks dtype (f32/f16/bf16) and shape (n dims). */
static ldm_status get(const loader *L, const char *name, int n, const int64_t *shape,
                      ldm_tensor *out, ldm_error *err) {
  const ldm_tensor *t = find(L, name);
  if (!t) {
    ldm_tensor want = {.ndim = n};
    for (int i = 0; i < n; i++) want.shape[i] = shape[i];
    char b[96];
    return ldm_fail(err, LDM_ERR_MISSING, "%s: missing tensor '%s%s' (expected shape %s)",
                    L->where, L->prefix, name, ldm_shape_str(&want, b, sizeof b));
  }
  if (!is_float(t->dtype))
    return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s%s' has dtype %s, expected F32, F16 or BF16",
                    L->where, L->prefix, name, ldm_dtype_name(t->dtype));
  if (ldm_tensor_expect(t, n, shape, err) != LDM_OK) {
    ldm_error_prefix(err, "%s", L->where);
    return LDM_ERR_SHAPE;
  }
  *out = *t;
  return LDM_OK;
}

/* Rows [r0, r0 + rows) of a 2-D tensor (or elements of a 1-D one). */
static ldm_tensor view_rows(const ldm_tensor *t, int64_t r0, int64_t rows) {
  ldm_tensor v = *t;
  int64_t inner = t->ndim == 2 ? t->shape[1] : 1;
  v.shape[0] = rows;
  v.data = (char *)t->data + (size_t)(r0 * inner) * ldm_dtype_size(t->dtype);
  return v;
}

/* Every key of transformers 4.46's CLIPTextConfig (its own arguments and
 * the PretrainedConfig ones a config.json carries), as this engine treats
 * it; tests/unit/test_config_keys.c checks the lists against
 * tests/golden/config/keys.txt. The generation, training, export and
 * task-head settings of PretrainedConfig change nothing a CLIPTextModel
 * computes; so do the token ids the tokenizer uses (bos, pad: the encoder
 * is given ids), the attention implementation (the same numbers), the
 * architectures (the projection is found from the weights) and torch_dtype
 * (the stored dtype is read from the weights). eos_token_id: pooled takes
 * the row of the highest id, transformers' choice when eos_token_id is 2
 * (its legacy argmax) and the first end-of-text token when that is the
 * vocabulary's last id (CLIP's 49407); another id is refused below. */
static const ldm_config_keys text_keys = {
    .read = "eos_token_id layer_norm_eps num_attention_heads",
    .shape = "hidden_size intermediate_size max_position_embeddings num_hidden_layers projection_dim vocab_size",
    .no_effect =
        "_attn_implementation _attn_implementation_autoset _name_or_path add_cross_attention architectures "
        "attention_dropout bad_words_ids begin_suppress_tokens bos_token_id chunk_size_feed_forward "
        "cross_attention_hidden_size decoder_start_token_id diversity_penalty do_sample early_stopping "
        "encoder_no_repeat_ngram_size exponential_decay_length_penalty finetuning_task forced_bos_token_id "
        "forced_eos_token_id id2label initializer_factor initializer_range is_decoder is_encoder_decoder "
        "label2id length_penalty max_length min_length model_type no_repeat_ngram_size num_beam_groups "
        "num_beams num_return_sequences output_attentions output_hidden_states output_scores pad_token_id "
        "prefix problem_type remove_invalid_values repetition_penalty return_dict return_dict_in_generate "
        "sep_token_id suppress_tokens task_specific_params temperature tf_legacy_loss tie_encoder_decoder "
        "tie_word_embeddings tokenizer_class top_k top_p torch_dtype torchscript transformers_version "
        "typical_p use_bfloat16",
    .only = "hidden_act=[\"quick_gelu\",\"gelu\",\"gelu_pytorch_tanh\"] pruned_heads=[{}]",
};

const ldm_config_keys *ldm_clip_config_keys(void) { return &text_keys; }

ldm_status ldm_clip_config_json(const char *json, const char *file, int *heads, int *act, float *eps, ldm_error *err) {
  json_t *j;
  LDM_TRY(ldm_json_object(json, file, &j, err));
  double e = *eps;
  ldm_status st = ldm_config_check(j, &text_keys, file, err);
  if (st == LDM_OK) st = ldm_json_int(j, "num_attention_heads", -1, 1, 4096, heads, file, err);
  if (st == LDM_OK) st = ldm_json_double(j, "layer_norm_eps", 1e-12, 0.1, &e, file, err);
  *eps = (float)e;
  json_t *eos = json_object_get(j, "eos_token_id"), *vocab = json_object_get(j, "vocab_size");
  if (st == LDM_OK && json_is_integer(eos) && json_integer_value(eos) != 2 &&
      !(json_is_integer(vocab) && json_integer_value(eos) == json_integer_value(vocab) - 1))
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED,
                  "%s: eos_token_id = %lld is not supported (supported: 2, or the last id of the vocabulary, %lld)",
                  file, (long long)json_integer_value(eos),
                  json_is_integer(vocab) ? (long long)json_integer_value(vocab) - 1 : 49407LL);
  const char *a = json_string_value(json_object_get(j, "hidden_act"));
  if (st == LDM_OK && a)
    *act = !strcmp(a, "quick_gelu")          ? LDM_CLIP_ACT_QUICK_GELU
           : !strcmp(a, "gelu_pytorch_tanh") ? LDM_CLIP_ACT_GELU_TANH
                                             : LDM_CLIP_ACT_GELU;
  json_decref(j);
  return st;
}

static ldm_status load_hf_layer(const loader *L, const ldm_clip_config *c, int i,
                                ldm_clip_layer *l, ldm_error *err) {
  char n[128];
  const int64_t dd[2] = {c->d, c->d}, d1[1] = {c->d}, f1[1] = {c->d_ff};
  const int64_t fd[2] = {c->d_ff, c->d}, df[2] = {c->d, c->d_ff};
#define G(field, suffix, nd, shape)                                   \
  snprintf(n, sizeof n, "encoder.layers.%d.%s", i, suffix);            \
  LDM_TRY(get(L, n, nd, shape, &l->field, err));
  G(ln1_w, "layer_norm1.weight", 1, d1) G(ln1_b, "layer_norm1.bias", 1, d1)
  G(q_w, "self_attn.q_proj.weight", 2, dd) G(q_b, "self_attn.q_proj.bias", 1, d1)
  G(k_w, "self_attn.k_proj.weight", 2, dd) G(k_b, "self_attn.k_proj.bias", 1, d1)
  G(v_w, "self_attn.v_proj.weight", 2, dd) G(v_b, "self_attn.v_proj.bias", 1, d1)
  G(o_w, "self_attn.out_proj.weight", 2, dd) G(o_b, "self_attn.out_proj.bias", 1, d1)
  G(ln2_w, "layer_norm2.weight", 1, d1) G(ln2_b, "layer_norm2.bias", 1, d1)
  G(fc1_w, "mlp.fc1.weight", 2, fd) G(fc1_b, "mlp.fc1.bias", 1, f1)
  G(fc2_w, "mlp.fc2.weight", 2, df) G(fc2_b, "mlp.fc2.bias", 1, d1)
#undef G
  return LDM_OK;
}

static ldm_status load_oc_layer(const loader *L, const ldm_clip_config *c, int i,
                                ldm_clip_layer *l, ldm_error *err) {
  char n[128];
  const int64_t dd[2] = {c->d, c->d}, d1[1] = {c->d}, f1[1] = {c->d_ff};
  const int64_t fd[2] = {c->d_ff, c->d}, df[2] = {c->d, c->d_ff};
  const int64_t qkv[2] = {3 * (int64_t)c->d, c->d}, qkv1[1] = {3 * (int64_t)c->d};
  ldm_tensor in_w, in_b;
#define G(field, suffix, nd, shape)                                   \
  snprintf(n, sizeof n, "transformer.resblocks.%d.%s", i, suffix);     \
  LDM_TRY(get(L, n, nd, shape, &field, err));
  G(l->ln1_w, "ln_1.weight", 1, d1) G(l->ln1_b, "ln_1.bias", 1, d1)
  G(in_w, "attn.in_proj_weight", 2, qkv) G(in_b, "attn.in_proj_bias", 1, qkv1)
  G(l->o_w, "attn.out_proj.weight", 2, dd) G(l->o_b, "attn.out_proj.bias", 1, d1)
  G(l->ln2_w, "ln_2.weight", 1, d1) G(l->ln2_b, "ln_2.bias", 1, d1)
  G(l->fc1_w, "mlp.c_fc.weight", 2, fd) G(l->fc1_b, "mlp.c_fc.bias", 1, f1)
  G(l->fc2_w, "mlp.c_proj.weight", 2, df) G(l->fc2_b, "mlp.c_proj.bias", 1, d1)
#undef G
  /* nn.MultiheadAttention packs q, k, v row-wise */
  l->q_w = view_rows(&in_w, 0, c->d);
  l->k_w = view_rows(&in_w, c->d, c->d);
  l->v_w = view_rows(&in_w, 2 * (int64_t)c->d, c->d);
  l->q_b = view_rows(&in_b, 0, c->d);
  l->k_b = view_rows(&in_b, c->d, c->d);
  l->v_b = view_rows(&in_b, 2 * (int64_t)c->d, c->d);
  return LDM_OK;
}

/* Finds where text encoder `index` lives: a diffusers part or one of the
 * original single-file prefixes, in the order checkpoints use them. */
static bool find_layout(const ldm_source *src, int index, loader *L, bool *oc) {
  const char *part = index == 0 ? "text_encoder" : "text_encoder_2";
  L->src = src;
  L->part = NULL;
  L->prefix = NULL;
  *oc = false;
  if (ldm_source_is_folder(src) &&
      ldm_source_find(src, part, "text_model.embeddings.token_embedding.weight")) {
    L->part = part;
    L->prefix = "text_model.";
    return true;
  }
  static const struct { int index; const char *prefix; bool oc; } layouts[] = {
      {0, "cond_stage_model.transformer.text_model.", false},
      {0, "cond_stage_model.transformer.", false},
      {0, "conditioner.embedders.0.transformer.text_model.", false},
      {0, "cond_stage_model.model.", true},
      {0, "text_model.", false},
      {0, "", true},
      {1, "conditioner.embedders.1.model.", true},
  };
  for (size_t i = 0; i < sizeof layouts / sizeof *layouts; i++) {
    if (layouts[i].index != index) continue;
    char key[256];
    snprintf(key, sizeof key, "%s%s", layouts[i].prefix,
             layouts[i].oc ? "token_embedding.weight" : "embeddings.token_embedding.weight");
    if (ldm_source_find(src, NULL, key)) {
      L->prefix = layouts[i].prefix;
      *oc = layouts[i].oc;
      return true;
    }
  }
  return false;
}

bool ldm_clip_text_present(const ldm_source *src, int index) {
  loader L;
  bool oc;
  return index >= 0 && index <= 1 && find_layout(src, index, &L, &oc);
}

ldm_status ldm_clip_text_load(ldm_clip_text **out, const ldm_source *src, int index, int heads,
                              ldm_error *err) {
  *out = NULL;
  if (index < 0 || index > 1)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "text encoder index %d, expected 0 or 1", index);
  loader L;
  bool oc;
  if (!find_layout(src, index, &L, &oc))
    return ldm_fail(err, LDM_ERR_MISSING,
                    "%s: no %s text encoder (looked for %s and a diffusers %s/ folder)",
                    ldm_source_path(src), index == 0 ? "first" : "second (SDXL)",
                    index == 0 ? "cond_stage_model.*, conditioner.embedders.0.*"
                               : "conditioner.embedders.1.model.*",
                    index == 0 ? "text_encoder" : "text_encoder_2");
  ldm_clip_text *m = calloc(1, sizeof *m);
  if (!m) return ldm_fail(err, LDM_ERR_NOMEM, "text encoder: out of memory");
  snprintf(m->where, sizeof m->where, "%s%s%s", ldm_source_path(src), L.part ? "/" : "",
           L.part ? L.part : "");
  L.where = m->where;
  m->src = src;
  m->part = L.part;
  m->prefix = L.prefix;
  ldm_clip_config *c = &m->cfg;
  ldm_clip_weights *w = &m->w;
  c->openclip_names = oc;
  c->quick_gelu = !oc; /* CLIP-L uses quick_gelu, OpenCLIP exact GELU */
  c->eps = 1e-5f;
  ldm_status st;
  const ldm_tensor *te = find(&L, oc ? "token_embedding.weight" : "embeddings.token_embedding.weight");
  const ldm_tensor *pe = find(&L, oc ? "positional_embedding" : "embeddings.position_embedding.weight");
  if (!te || te->ndim != 2 || !pe || pe->ndim != 2) {
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: token/position embeddings under '%s' are missing or not 2-D",
                  m->where, L.prefix);
    goto fail;
  }
  c->n_vocab = (int)te->shape[0];
  c->d = (int)te->shape[1];
  c->n_pos = (int)pe->shape[0];
  if (c->d <= 0 || c->n_vocab <= 0 || c->n_pos <= 0 || c->d > 65536 || c->n_pos > 4096) {
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: implausible text encoder dims (vocab %d, d %d, pos %d)",
                  m->where, c->n_vocab, c->d, c->n_pos);
    goto fail;
  }
  {
    const int64_t vd[2] = {c->n_vocab, c->d}, pd[2] = {c->n_pos, c->d}, d1[1] = {c->d};
    if ((st = get(&L, oc ? "token_embedding.weight" : "embeddings.token_embedding.weight", 2, vd,
                  &w->tok_emb, err)) != LDM_OK ||
        (st = get(&L, oc ? "positional_embedding" : "embeddings.position_embedding.weight", 2, pd,
                  &w->pos_emb, err)) != LDM_OK ||
        (st = get(&L, oc ? "ln_final.weight" : "final_layer_norm.weight", 1, d1, &w->lnf_w, err)) !=
            LDM_OK ||
        (st = get(&L, oc ? "ln_final.bias" : "final_layer_norm.bias", 1, d1, &w->lnf_b, err)) != LDM_OK)
      goto fail;
  }
  /* layer count and MLP width from the keys present */
  for (;;) {
    char n[128];
    snprintf(n, sizeof n, oc ? "transformer.resblocks.%d.ln_1.weight" : "encoder.layers.%d.layer_norm1.weight",
             c->n_layers);
    if (!find(&L, n)) break;
    if (++c->n_layers > 1000) break;
  }
  {
    const ldm_tensor *fc = find(&L, oc ? "transformer.resblocks.0.mlp.c_fc.weight"
                                       : "encoder.layers.0.mlp.fc1.weight");
    if (c->n_layers == 0 || !fc || fc->ndim != 2) {
      st = ldm_fail(err, LDM_ERR_MISSING, "%s: no transformer layers under '%s'", m->where, L.prefix);
      goto fail;
    }
    c->d_ff = (int)fc->shape[0];
  }
  /* projection: original [d, proj] parameter, or diffusers Linear [proj, d] */
  if (oc) {
    const ldm_tensor *p = find(&L, "text_projection");
    if (p && p->ndim == 2 && p->shape[0] == c->d) {
      c->d_proj = (int)p->shape[1];
      c->proj_is_linear = false;
      const int64_t s[2] = {c->d, c->d_proj};
      if ((st = get(&L, "text_projection", 2, s, &w->proj, err)) != LDM_OK) goto fail;
    } else if (p) {
      char b[96];
      st = ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%stext_projection' has shape %s, expected [%d, P]",
                    m->where, L.prefix, ldm_shape_str(p, b, sizeof b), c->d);
      goto fail;
    }
  } else {
    /* CLIPTextModelWithProjection keeps text_projection beside text_model */
    char base[256];
    snprintf(base, sizeof base, "%s", L.prefix);
    size_t bl = strlen(base);
    if (bl >= 11 && strcmp(base + bl - 11, "text_model.") == 0) base[bl - 11] = 0;
    loader L2 = L;
    L2.prefix = base;
    const ldm_tensor *p = find(&L2, "text_projection.weight");
    if (p && p->ndim == 2 && p->shape[1] == c->d) {
      c->d_proj = (int)p->shape[0];
      c->proj_is_linear = true;
      const int64_t s[2] = {c->d_proj, c->d};
      if ((st = get(&L2, "text_projection.weight", 2, s, &w->proj, err)) != LDM_OK) goto fail;
    }
  }
  c->n_heads = c->d % 64 == 0 ? c->d / 64 : 1;
  if (L.part) {
    int act = c->quick_gelu ? LDM_CLIP_ACT_QUICK_GELU : LDM_CLIP_ACT_GELU;
    char file[4200];
    const char *json = ldm_source_config_named(src, L.part, file, sizeof file);
    st = json ? ldm_clip_config_json(json, file, &c->n_heads, &act, &c->eps, err) : LDM_OK;
    c->quick_gelu = act == LDM_CLIP_ACT_QUICK_GELU;
    c->gelu_tanh = act == LDM_CLIP_ACT_GELU_TANH;
    if (st != LDM_OK) goto fail;
  }
  if (heads > 0) c->n_heads = heads;
  if (c->n_heads <= 0 || c->d % c->n_heads != 0) {
    st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: %d heads do not divide width %d", m->where,
                  c->n_heads, c->d);
    goto fail;
  }
  w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
  if (!w->layers) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "text encoder: out of memory");
    goto fail;
  }
  for (int i = 0; i < c->n_layers; i++) {
    st = oc ? load_oc_layer(&L, c, i, &w->layers[i], err) : load_hf_layer(&L, c, i, &w->layers[i], err);
    if (st != LDM_OK) goto fail;
  }
  /* LoRAs name text encoder weights by transformers' module paths in both
   * layouts (kohya converts open_clip's too) */
  for (int i = 0; i < c->n_layers; i++) {
    ldm_clip_layer *l = &w->layers[i];
    static const char *const mods[6] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.out_proj", "mlp.fc1", "mlp.fc2"};
    ldm_tensor *ts[6] = {&l->q_w, &l->k_w, &l->v_w, &l->o_w, &l->fc1_w, &l->fc2_w};
    for (int k = 0; k < 6; k++) {
      char n[128];
      snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s", i, mods[k]);
      if (ldm_lora_table_add(&m->lora, index == 0 ? LDM_LORA_TE1 : LDM_LORA_TE2, n, NULL, ts[k]) != LDM_OK) {
        st = ldm_fail(err, LDM_ERR_NOMEM, "text encoder: out of memory");
        goto fail;
      }
    }
  }
  *out = m;
  return LDM_OK;
fail:
  ldm_clip_text_free(m);
  return st;
}

void ldm_clip_text_free(ldm_clip_text *m) {
  if (!m) return;
  ldm_lora_table_deinit(&m->lora);
  free(m->w.layers);
  free(m);
}

void ldm_clip_text_release(const ldm_clip_text *m) {
  if (m) ldm_source_release(m->src, m->part, m->prefix);
}

/* ---- forward ------------------------------------------------------------- */
#define TRY_GOTO(expr)            \
  do {                            \
    st = (expr);                  \
    if (st != LDM_OK) goto done;  \
  } while (0)

ldm_status ldm_clip_text_forward(ldm_ctx *ctx, const ldm_clip_text *m, const int32_t *ids, int B,
                                 int T, int n_run, float *out, float *prev) {
  return ldm_clip_text_forward_ex(ctx, m, ids, B, T, n_run, out, n_run - 1, prev);
}

ldm_status ldm_clip_text_forward_ex(ldm_ctx *ctx, const ldm_clip_text *m, const int32_t *ids,
                                    int B, int T, int n_run, float *out, int capture_at,
                                    float *capture) {
  const ldm_clip_config *c = &m->cfg;
  const ldm_clip_weights *w = &m->w;
  if (B <= 0 || T <= 0 || T > c->n_pos || n_run < 1 || n_run > c->n_layers ||
      (capture && (capture_at < 0 || capture_at > n_run)))
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG,
                    "%s: input [%d, %d] with %d layers run (model: %d positions, %d layers)",
                    m->where, B, T, n_run, c->n_pos, c->n_layers);
  const int d = c->d, dh = d / c->n_heads;
  const int64_t rows = (int64_t)B * T;
  size_t nd, nf;
  if (!ldm_mul_size((size_t)rows, (size_t)d, &nd) || !ldm_mul_size((size_t)rows, (size_t)c->d_ff, &nf))
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: activation size overflows", m->where);
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  float *x = out;
  float *h = ldm_arena_floats(ctx->scratch, nd);
  float *q = ldm_arena_floats(ctx->scratch, nd);
  float *k = ldm_arena_floats(ctx->scratch, nd);
  float *v = ldm_arena_floats(ctx->scratch, nd);
  float *f = ldm_arena_floats(ctx->scratch, nf);
  float *pos = ldm_arena_floats(ctx->scratch, (size_t)T * d);
  if (!h || !q || !k || !v || !f || !pos) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: no scratch for activations [%d, %d, %d]", m->where, B,
                  T, d);
    goto done;
  }
  // embeddings: token_embedding(ids) + position_embedding[:T] -> [B, T, d]
  TRY_GOTO(ldm_tensor_read_f32(&w->pos_emb, 0, (int64_t)T * d, pos, ctx->err));
  for (int64_t r = 0; r < rows; r++) {
    int32_t id = ids[r];
    if (id >= LDM_CLIP_EXTRA_ID && id - LDM_CLIP_EXTRA_ID < m->n_extra) {
      /* an embedding's vector replaces the token embedding (A1111's
       * EmbeddingsWithFixes); the position embedding is added as usual */
      memcpy(x + r * d, m->extra + (size_t)(id - LDM_CLIP_EXTRA_ID) * d, (size_t)d * sizeof *x);
      const float *p = pos + (r % T) * d;
      for (int i = 0; i < d; i++) x[r * d + i] += p[i];
      continue;
    }
    if (id < 0 || id >= c->n_vocab) {
      st = ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: token id %d at [%lld, %lld] out of range [0, %d)",
                    m->where, id, (long long)(r / T), (long long)(r % T), c->n_vocab);
      goto done;
    }
    TRY_GOTO(ldm_tensor_read_f32(&w->tok_emb, (int64_t)id * d, d, x + r * d, ctx->err));
    const float *p = pos + (r % T) * d;
    for (int i = 0; i < d; i++) x[r * d + i] += p[i];
  }
  for (int li = 0; li < n_run; li++) {
    const ldm_clip_layer *l = &w->layers[li];
    if (capture && li == capture_at) memcpy(capture, x, nd * sizeof *x);
    if (ctx->cancel && atomic_load(ctx->cancel)) {
      st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "cancelled");
      goto done;
    }
    // self-attention block: x += out_proj(attn(ln1(x))) -> [B, T, d]
    TRY_GOTO(ldm_layer_norm(ctx, h, x, rows, d, c->eps, &l->ln1_w, &l->ln1_b));
    TRY_GOTO(ldm_linear(ctx, q, h, rows, &l->q_w, &l->q_b));
    TRY_GOTO(ldm_linear(ctx, k, h, rows, &l->k_w, &l->k_b));
    TRY_GOTO(ldm_linear(ctx, v, h, rows, &l->v_w, &l->v_b));
    TRY_GOTO(ldm_attention(ctx, h, d, q, d, k, d, v, d, B, T, T, c->n_heads, dh, true));
    TRY_GOTO(ldm_linear(ctx, q, h, rows, &l->o_w, &l->o_b));
    ldm_add(ctx, x, x, q, (int64_t)nd);
    // MLP block: x += fc2(act(fc1(ln2(x)))) -> [B, T, d]
    TRY_GOTO(ldm_layer_norm(ctx, h, x, rows, d, c->eps, &l->ln2_w, &l->ln2_b));
    TRY_GOTO(ldm_linear(ctx, f, h, rows, &l->fc1_w, &l->fc1_b));
    if (c->quick_gelu)
      ldm_quick_gelu(ctx, f, f, (int64_t)nf);
    else
      ldm_gelu(ctx, f, f, (int64_t)nf, c->gelu_tanh);
    TRY_GOTO(ldm_linear(ctx, h, f, rows, &l->fc2_w, &l->fc2_b));
    ldm_add(ctx, x, x, h, (int64_t)nd);
  }
  if (capture && capture_at == n_run) memcpy(capture, x, nd * sizeof *x);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

ldm_status ldm_clip_text_final_norm(ldm_ctx *ctx, const ldm_clip_text *m, float *y, const float *x,
                                    int64_t rows) {
  return ldm_layer_norm(ctx, y, x, rows, m->cfg.d, m->cfg.eps, &m->w.lnf_w, &m->w.lnf_b);
}

ldm_status ldm_clip_text_pool(ldm_ctx *ctx, const ldm_clip_text *m, float *pooled,
                              const float *normed, const int32_t *ids, int B, int T) {
  const ldm_clip_config *c = &m->cfg;
  if (!c->d_proj)
    return ldm_fail(ctx->err, LDM_ERR_UNSUPPORTED, "%s: no text projection", m->where);
  const int d = c->d, P = c->d_proj;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = LDM_OK;
  float *pw = ldm_arena_floats(ctx->scratch, (size_t)d * P);
  float *sel = ldm_arena_floats(ctx->scratch, (size_t)B * d);
  if (!pw || !sel) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: no scratch for the projection", m->where);
    goto done;
  }
  TRY_GOTO(ldm_tensor_read_f32(&m->w.proj, 0, (int64_t)d * P, pw, ctx->err));
  // pooled = normed[b, argmax(ids[b])] -> [B, d]
  for (int b = 0; b < B; b++) {
    int best = 0;
    /* an embedding's positions count as id 0, as A1111 feeds them */
    for (int t = 1; t < T; t++) {
      int32_t it = ids[(int64_t)b * T + t], ib = ids[(int64_t)b * T + best];
      if ((it >= LDM_CLIP_EXTRA_ID ? 0 : it) > (ib >= LDM_CLIP_EXTRA_ID ? 0 : ib)) best = t;
    }
    memcpy(sel + (size_t)b * d, normed + ((int64_t)b * T + best) * d, (size_t)d * sizeof *sel);
  }
  // text_projection: sel [B, d] x P -> [B, P] (Linear weight [P, d] is used transposed)
  TRY_GOTO(ldm_gemm(ctx, false, c->proj_is_linear, B, P, d, 1.0f, sel, d, pw,
                    c->proj_is_linear ? d : P, 0.0f, pooled, P));
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}
