/* CLIP text transformer (transformers' CLIPTextModel / open_clip's
 * TextTransformer): token + position embeddings, pre-norm causal
 * self-attention blocks, final LayerNorm, optional text projection.
 * One loader for both key namings (original single-file and diffusers). */
#ifndef LDM_TEXT_CLIP_TEXT_H
#define LDM_TEXT_CLIP_TEXT_H

#include <stdbool.h>
#include "core/tensor.h"
#include "core/threads.h"
#include "io/lora.h"
#include "io/source.h"
#include "core/config_keys.h"
#include "core/eval_options.h"

typedef struct ldm_clip_config {
  int n_vocab;          /* 49408 */
  int n_pos;            /* 77 */
  int d;                /* 768 CLIP-L, 1024 OpenCLIP-H, 1280 OpenCLIP-bigG */
  int n_layers;         /* 12 / 24 (23 in diffusers' SD2 folders) / 32 */
  int n_heads;          /* 12 / 16 / 20 (d / 64 when no config says) */
  int d_ff;             /* 3072 / 4096 / 5120 */
  int d_proj;           /* text projection width, 0 = none (SD1, SD2 folder) */
  bool quick_gelu;      /* CLIP-L: x*sigmoid(1.702x); OpenCLIP: exact GELU */
  bool gelu_tanh;       /* false (hidden_act gelu_pytorch_tanh: GELU's tanh approximation) */
  bool openclip_names;  /* weights came with open_clip's (original) names */
  bool proj_is_linear;  /* projection stored as Linear [proj, d] (else [d, proj]) */
  float eps;            /* 1e-5 */
} ldm_clip_config;

typedef struct ldm_clip_layer {
  ldm_tensor ln1_w, ln1_b;   /* [d] */
  ldm_tensor q_w, k_w, v_w;  /* [d, d]: views of in_proj_weight [3d, d] for OpenCLIP */
  ldm_tensor q_b, k_b, v_b;  /* [d] */
  ldm_tensor o_w, o_b;       /* [d, d], [d] */
  ldm_tensor ln2_w, ln2_b;   /* [d] */
  ldm_tensor fc1_w, fc1_b;   /* [d_ff, d], [d_ff] */
  ldm_tensor fc2_w, fc2_b;   /* [d, d_ff], [d] */
} ldm_clip_layer;

typedef struct ldm_clip_weights {
  ldm_tensor tok_emb;        /* [n_vocab, d] */
  ldm_tensor pos_emb;        /* [n_pos, d] */
  ldm_clip_layer *layers;    /* n_layers */
  ldm_tensor lnf_w, lnf_b;   /* [d] */
  ldm_tensor proj;           /* [d_proj, d] (Linear) or [d, d_proj]; data NULL if none */
} ldm_clip_weights;

typedef struct ldm_clip_text {
  ldm_clip_config cfg;
  ldm_clip_weights w;
  char where[160];           /* "file.safetensors: cond_stage_model.model." for messages */
  const ldm_source *src;     /* where the weights are mapped: part and key prefix (ldm_clip_text_release) */
  const char *part, *prefix;
  ldm_lora_table lora;       /* q/k/v/out_proj, fc1, fc2 of every layer, by transformers' names */
  /* textual-inversion vectors [n_extra, d] (borrowed, set around a forward):
   * token id LDM_CLIP_EXTRA_ID + i reads row i instead of the vocabulary */
  const float *extra;
  int n_extra;
} ldm_clip_text;

#define LDM_CLIP_EXTRA_ID (1 << 24)

/* Loads text encoder `index` of a model (0: CLIP-L of SD1/SDXL or OpenCLIP-H
 * of SD2; 1: SDXL's OpenCLIP-bigG) from a single file (original keys
 * cond_stage_model.transformer[.text_model].*, cond_stage_model.model.*,
 * conditioner.embedders.N.*, or a bare text_model.* file) or a diffusers
 * folder (text_encoder/, text_encoder_2/ with config.json). heads > 0
 * overrides the head count (single files carry no config: d / 64). */
/* hidden_act values the encoder implements */
enum { LDM_CLIP_ACT_GELU = 0, LDM_CLIP_ACT_QUICK_GELU = 1, LDM_CLIP_ACT_GELU_TANH = 2 };
/* Every CLIPTextConfig key and how the loader treats it (core/config_keys.h). */
const ldm_config_keys *ldm_clip_config_keys(void);
/* A diffusers text_encoder/config.json: every key checked (a setting the
 * engine does not compute is refused), num_attention_heads, hidden_act
 * (*act = LDM_CLIP_ACT_*) and layer_norm_eps, each checked when present. */
ldm_status ldm_clip_config_json(const char *json, const char *file, int *heads, int *act, float *eps, ldm_error *err);
ldm_status ldm_clip_text_load(ldm_clip_text **out, const ldm_source *src, int index,
                              int heads, ldm_error *err);
void ldm_clip_text_free(ldm_clip_text *m);
/* Drops the encoder's mapped weights from resident memory until they are
 * next read (ldm_source_release); results stay the same. */
void ldm_clip_text_release(const ldm_clip_text *m);
/* True if the source holds text encoder `index` (in any layout). */
bool ldm_clip_text_present(const ldm_source *src, int index);

/* Runs the embeddings and the first n_run layers on ids [B, T] (T <= n_pos):
 * out [B, T, d] = output of layer n_run (no final norm), i.e. transformers'
 * hidden_states[n_run]; prev (NULL ok) [B, T, d] = hidden_states[n_run - 1]
 * (the embeddings when n_run = 1). */
ldm_status ldm_clip_text_forward(ldm_ctx *ctx, const ldm_clip_text *m, const int32_t *ids,
                                 int B, int T, int n_run, float *out, float *prev);
/* The same with capture (NULL ok) = hidden_states[capture_at], 0..n_run. */
ldm_status ldm_clip_text_forward_ex(ldm_ctx *ctx, const ldm_clip_text *m, const int32_t *ids,
                                    int B, int T, int n_run, float *out, int capture_at,
                                    float *capture);
/* final_layer_norm / ln_final over rows x d (in-place allowed). */
ldm_status ldm_clip_text_final_norm(ldm_ctx *ctx, const ldm_clip_text *m, float *y,
                                    const float *x, int64_t rows);
/* pooled [B, d_proj] = normed [B, T, d] at each row's first argmax id (the
 * end-of-text token), times the text projection. */
ldm_status ldm_clip_text_pool(ldm_ctx *ctx, const ldm_clip_text *m, float *pooled,
                              const float *normed, const int32_t *ids, int B, int T);

/* `ldm eval text` (text_eval.c): the runner behind ldm_eval_run. */
ldm_status ldm_eval_text(const ldm_eval_params *p, int threads, ldm_error *err);

#endif
