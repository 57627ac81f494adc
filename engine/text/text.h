/* Text conditioning for the pipeline: a model's tokenizer(s) and CLIP text
 * encoder(s), AUTOMATIC1111 prompt emphasis and 75-token chunking
 * (modules/sd_hijack_clip.py), clip_skip, and SDXL's two encoders with the
 * pooled projection. Mirrors what A1111 feeds the UNet; with no emphasis and
 * one chunk it equals diffusers' encode_prompt. */
#ifndef LDM_TEXT_TEXT_H
#define LDM_TEXT_TEXT_H

#include <stdint.h>
#include "core/threads.h"
#include "io/source.h"
#include "text/clip_text.h"
#include "text/tokenizer.h"

#define LDM_TEXT_CHUNK 75              /* tokens per chunk between start and end */
#define LDM_TEXT_COMMA_BACKTRACK 20    /* A1111's comma_padding_backtrack default */

typedef enum ldm_text_kind {
  LDM_TEXT_SD1 = 0,   /* CLIP-L, last layer (clip_skip counts back), final norm: [T, 768] */
  LDM_TEXT_SD2,       /* OpenCLIP-H, penultimate layer + final norm: [T, 1024] */
  LDM_TEXT_SDXL       /* CLIP-L ++ OpenCLIP-bigG penultimate, no norm: [T, 2048] + pooled 1280 */
} ldm_text_kind;

/* ---- chunking (A1111 tokenize_line) ---------------------------------------- */
typedef struct ldm_text_chunks {
  int n;              /* number of chunks (>= 1) */
  int32_t *ids;       /* [n, 77]: start, 75 tokens (end-padded), end; after the
                         first end token the ids are pad_id */
  float *mult;        /* [n, 77]: emphasis per token (1 at start/end/padding) */
} ldm_text_chunks;

/* Parses the emphasis syntax, tokenizes each piece, splits at BREAK and every
 * 75 tokens (moving the tail after a comma seen within the last
 * comma_backtrack tokens to the next chunk; 0 = off). */
ldm_status ldm_text_chunk(const ldm_tokenizer *tok, const char *prompt, int pad_id,
                          int comma_backtrack, ldm_text_chunks *out, ldm_error *err);
void ldm_text_chunks_free(ldm_text_chunks *c);

/* A1111 "Original" emphasis on z [T, D] of one chunk: z *= mult[t]; then
 * z *= mean(z before) / mean(z after). */
void ldm_text_emphasis(float *z, const float *mult, int T, int D);

/* ---- textual-inversion embeddings ---------------------------------------------
 * AUTOMATIC1111 .safetensors embeddings: emb_params [n, D] or string_to_param
 * (converted) for SD1 (768) / SD2 (1024); clip_l [n, 768] + clip_g [n, 1280]
 * for SDXL; a single tensor (diffusers' learned_embeds) also works. A name
 * in a prompt (matched on tokens, as A1111's EmbeddingDatabase) or
 * embedding:NAME (ComfyUI) becomes the n vectors, each counted as a token. */
typedef struct ldm_text_cond ldm_text_cond;

typedef struct ldm_text_embed {
  char *name;          /* as prompts use it: the file stem */
  int n_vec;
  float *vec[2];       /* [n_vec, d] for encoder 0 (and 1: SDXL's clip_g) */
} ldm_text_embed;

/* Loads path for tc's encoder(s). LDM_ERR_SHAPE when its widths are another
 * family's (the message names both), LDM_ERR_UNSUPPORTED for pickles. */
ldm_status ldm_text_embed_load(const ldm_text_cond *tc, const char *path, const char *name, ldm_text_embed *out,
                               ldm_error *err);
void ldm_text_embed_deinit(ldm_text_embed *e);

/* ---- conditioning ------------------------------------------------------------ */

/* Loads the tokenizer(s) (the folder's tokenizer/, tokenizer_2/ files, else
 * the embedded vocabulary with the family's padding) and text encoder(s) of
 * a model. heads > 0 overrides the head count (tiny single-file models). */
ldm_status ldm_text_cond_load(ldm_text_cond **out, const ldm_source *src, int heads,
                              ldm_error *err);
void ldm_text_cond_free(ldm_text_cond *tc);
/* Drops the text encoders' mapped weights from resident memory until they
 * are next read (ldm_clip_text_release). */
void ldm_text_cond_release(const ldm_text_cond *tc);
ldm_text_kind ldm_text_cond_kind(const ldm_text_cond *tc);
int ldm_text_cond_dim(const ldm_text_cond *tc);         /* D: 768 / 1024 / 2048 */
int ldm_text_cond_pooled_dim(const ldm_text_cond *tc);  /* 1280 for SDXL, else 0 */
const ldm_tokenizer *ldm_text_cond_tokenizer(const ldm_text_cond *tc);
/* Text encoder i (0, or 1 for SDXL's second), NULL when absent. */
ldm_clip_text *ldm_text_cond_encoder(const ldm_text_cond *tc, int i);

/* The embeddings later calls recognise in prompts (borrowed until the next
 * call; NULL, 0 = none). */
ldm_status ldm_text_cond_set_embeds(ldm_text_cond *tc, const ldm_text_embed *e, int n, ldm_error *err);

/* Chunks a prompt needs (>= 1): cond and uncond must have the same count. */
ldm_status ldm_text_cond_count_chunks(const ldm_text_cond *tc, const char *prompt, int *n,
                                      ldm_error *err);

/* Encodes a prompt: *cond [1, 77 * n, D] (malloc'd, caller frees) with
 * n = max(chunks, min_chunks); chunks beyond the prompt's own are the empty
 * prompt's encoding, as A1111 pads the shorter of cond / uncond.
 * clip_skip: 1 = the family's default layer, 2 = one layer earlier, ...
 * (A1111's "Clip skip"; 0 is taken as 1). *pooled [1, P] (malloc'd) for
 * SDXL from the first chunk, else NULL. */
ldm_status ldm_text_cond_encode(ldm_text_cond *tc, ldm_ctx *ctx, const char *prompt,
                                int clip_skip, int min_chunks, float **cond, int *n_tokens,
                                float **pooled);

#endif
