/* Prompt -> UNet conditioning as AUTOMATIC1111 builds it
 * (modules/sd_hijack_clip.py: tokenize_line, process_tokens, the "Original"
 * emphasis) on top of the CLIP text encoders; layer choice per family as
 * A1111 / diffusers (SD1: hidden_states[-clip_skip] + final norm; SD2:
 * penultimate + final norm; SDXL: hidden_states[-(clip_skip + 1)] of both
 * encoders, concatenated, and the second encoder's pooled projection). */
#include "text/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "text/prompt.h"

/* ---- chunking ------------------------------------------------------------ */
typedef struct chunk_builder {
  int32_t cur[LDM_TEXT_CHUNK];
  float cur_mult[LDM_TEXT_CHUNK];
  int len, last_comma;
  int32_t bos, eos, pad;
  ldm_text_chunks *out;
  int cap;
  bool oom;
} chunk_builder;

/* next_chunk(): pad to 75 with end-of-text, wrap in start/end, then every id
 * after the first end-of-text becomes the pad id. */
static void next_chunk(chunk_builder *b) {
  if (b->oom) return;
  ldm_text_chunks *c = b->out;
  if (c->n == b->cap) {
    int cap = b->cap ? b->cap * 2 : 4;
    int32_t *ids = realloc(c->ids, (size_t)cap * LDM_CLIP_N_CTX * sizeof *ids);
    if (ids) c->ids = ids;
    float *mult = realloc(c->mult, (size_t)cap * LDM_CLIP_N_CTX * sizeof *mult);
    if (mult) c->mult = mult;
    if (!ids || !mult) {
      b->oom = true;
      return;
    }
    b->cap = cap;
  }
  int32_t *ids = c->ids + (size_t)c->n * LDM_CLIP_N_CTX;
  float *mult = c->mult + (size_t)c->n * LDM_CLIP_N_CTX;
  ids[0] = b->bos;
  mult[0] = 1.0f;
  for (int i = 0; i < LDM_TEXT_CHUNK; i++) {
    ids[1 + i] = i < b->len ? b->cur[i] : b->eos;
    mult[1 + i] = i < b->len ? b->cur_mult[i] : 1.0f;
  }
  ids[LDM_CLIP_N_CTX - 1] = b->eos;
  mult[LDM_CLIP_N_CTX - 1] = 1.0f;
  int first_end = 0;
  while (ids[first_end] != b->eos) first_end++;
  for (int i = first_end + 1; i < LDM_CLIP_N_CTX; i++) ids[i] = b->pad;
  c->n++;
  b->len = 0;
  b->last_comma = -1;
}

/* Embedding names as this tokenizer splits them, longest first. */
typedef struct emb_tokens {
  int32_t *ids;
  int64_t n;
  int index;          /* into the embedding list */
  int32_t first_id;   /* LDM_CLIP_EXTRA_ID + the embedding's first row */
  int n_vec;
} emb_tokens;

/* embedding:NAME (ComfyUI) -> NAME, when NAME is a loaded embedding. */
static ldm_status strip_embedding_prefix(const char *text, const ldm_text_embed *emb, int n_emb, char **out,
                                         ldm_error *err) {
  *out = NULL;
  if (!strstr(text, "embedding:")) return LDM_OK;
  size_t n = strlen(text), o = 0;
  char *r = malloc(n + 1);
  if (!r) return ldm_fail(err, LDM_ERR_NOMEM, "prompt: out of memory");
  for (size_t i = 0; i < n;) {
    if (!strncmp(text + i, "embedding:", 10)) {
      const char *nm = text + i + 10;
      int best = -1;
      size_t bl = 0;
      for (int k = 0; k < n_emb; k++) {
        size_t l = strlen(emb[k].name);
        if (l > bl && !strncmp(nm, emb[k].name, l)) best = k, bl = l;
      }
      if (best < 0) {
        size_t w = strcspn(nm, " ,()[]:\t\n");
        ldm_status st = ldm_fail(err, LDM_ERR_MISSING, "prompt: embedding:%.*s: no such embedding in the model folders",
                                 (int)w, nm);
        free(r);
        return st;
      }
      i += 10; /* the name itself is copied below and matched on tokens */
      continue;
    }
    r[o++] = text[i++];
  }
  r[o] = '\0';
  *out = r;
  return LDM_OK;
}

static int cmp_emb_len(const void *a, const void *b) {
  int64_t x = ((const emb_tokens *)a)->n, y = ((const emb_tokens *)b)->n;
  return x < y ? 1 : x > y ? -1 : 0;
}

static ldm_status chunk_ex(const ldm_tokenizer *tok, const char *prompt, int pad_id, int comma_backtrack,
                           const ldm_text_embed *emb, int n_emb, ldm_text_chunks *out, ldm_error *err);

ldm_status ldm_text_chunk(const ldm_tokenizer *tok, const char *prompt, int pad_id,
                          int comma_backtrack, ldm_text_chunks *out, ldm_error *err) {
  return chunk_ex(tok, prompt, pad_id, comma_backtrack, NULL, 0, out, err);
}

static ldm_status chunk_ex(const ldm_tokenizer *tok, const char *prompt, int pad_id, int comma_backtrack,
                           const ldm_text_embed *emb, int n_emb, ldm_text_chunks *out, ldm_error *err) {
  memset(out, 0, sizeof *out);
  ldm_prompt_piece *pieces = NULL;
  int n_pieces = 0;
  emb_tokens *et = NULL;
  char *stripped = NULL;
  LDM_TRY(ldm_prompt_parse(prompt, &pieces, &n_pieces, err));
  if (n_emb > 0 && !(et = calloc((size_t)n_emb, sizeof *et))) {
    ldm_prompt_pieces_free(pieces, n_pieces);
    return ldm_fail(err, LDM_ERR_NOMEM, "prompt: out of memory");
  }
  chunk_builder b = {.len = 0, .last_comma = -1, .bos = ldm_tokenizer_bos(tok),
                     .eos = ldm_tokenizer_eos(tok),
                     .pad = pad_id < 0 ? ldm_tokenizer_pad(tok) : pad_id, .out = out};
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0;
  ldm_status st = LDM_OK;
  /* the comma token: "," alone */
  int32_t comma = -1;
  if ((st = ldm_tokenizer_tokenize(tok, ",", 1, &ids, &n, &cap, err)) != LDM_OK) goto done;
  if (n == 1) comma = ids[0];
  for (int k = 0, row = 0; k < n_emb; row += emb[k].n_vec, k++) {
    int64_t ecap = 0;
    et[k].index = k;
    et[k].first_id = LDM_CLIP_EXTRA_ID + row;
    et[k].n_vec = emb[k].n_vec;
    if ((st = ldm_tokenizer_tokenize(tok, emb[k].name, strlen(emb[k].name), &et[k].ids, &et[k].n, &ecap, err)) !=
        LDM_OK)
      goto done;
  }
  if (n_emb > 1) qsort(et, (size_t)n_emb, sizeof *et, cmp_emb_len);
  for (int p = 0; p < n_pieces && !b.oom; p++) {
    if (pieces[p].weight == -1.0 && strcmp(pieces[p].text, "BREAK") == 0) {
      next_chunk(&b);
      continue;
    }
    n = 0;
    const char *text = pieces[p].text;
    free(stripped);
    stripped = NULL;
    if (n_emb > 0) {
      if ((st = strip_embedding_prefix(text, emb, n_emb, &stripped, err)) != LDM_OK) goto done;
      if (stripped) text = stripped;
    }
    if ((st = ldm_tokenizer_tokenize(tok, text, strlen(text), &ids, &n, &cap, err)) != LDM_OK)
      goto done;
    float w = (float)pieces[p].weight;
    for (int64_t i = 0; i < n && !b.oom; i++) {
      int32_t t = ids[i];
      if (t == comma) {
        b.last_comma = b.len;
      } else if (comma_backtrack != 0 && b.len == LDM_TEXT_CHUNK && b.last_comma != -1 &&
                 b.len - b.last_comma <= comma_backtrack) {
        /* move the words after the last comma to the next chunk */
        int brk = b.last_comma + 1, nrel = b.len - brk;
        int32_t rel[LDM_TEXT_CHUNK];
        float relm[LDM_TEXT_CHUNK];
        memcpy(rel, b.cur + brk, (size_t)nrel * sizeof *rel);
        memcpy(relm, b.cur_mult + brk, (size_t)nrel * sizeof *relm);
        b.len = brk;
        next_chunk(&b);
        memcpy(b.cur, rel, (size_t)nrel * sizeof *rel);
        memcpy(b.cur_mult, relm, (size_t)nrel * sizeof *relm);
        b.len = nrel;
      }
      if (b.len == LDM_TEXT_CHUNK) next_chunk(&b);
      /* an embedding's name here: its vectors, kept within one chunk
       * (A1111's find_embedding_at_position, longest name first) */
      const emb_tokens *hit = NULL;
      for (int k = 0; k < n_emb && !hit; k++)
        if (et[k].n > 0 && et[k].n <= n - i && !memcmp(ids + i, et[k].ids, (size_t)et[k].n * sizeof *ids))
          hit = &et[k];
      if (hit) {
        if (hit->n_vec > LDM_TEXT_CHUNK) {
          st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "prompt: embedding '%s' has %d vectors, more than a chunk's %d",
                        emb[hit->index].name, hit->n_vec, LDM_TEXT_CHUNK);
          goto done;
        }
        if (b.len + hit->n_vec > LDM_TEXT_CHUNK) next_chunk(&b);
        for (int v = 0; v < hit->n_vec && !b.oom; v++) {
          b.cur[b.len] = hit->first_id + v;
          b.cur_mult[b.len] = w;
          b.len++;
        }
        i += hit->n - 1;
        continue;
      }
      b.cur[b.len] = t;
      b.cur_mult[b.len] = w;
      b.len++;
    }
  }
  if (b.len > 0 || out->n == 0) next_chunk(&b);
  if (b.oom) st = ldm_fail(err, LDM_ERR_NOMEM, "prompt: out of memory");
done:
  free(ids);
  free(stripped);
  for (int k = 0; et && k < n_emb; k++) free(et[k].ids);
  free(et);
  ldm_prompt_pieces_free(pieces, n_pieces);
  if (st != LDM_OK) ldm_text_chunks_free(out);
  return st;
}

void ldm_text_chunks_free(ldm_text_chunks *c) {
  if (!c) return;
  free(c->ids);
  free(c->mult);
  memset(c, 0, sizeof *c);
}

void ldm_text_emphasis(float *z, const float *mult, int T, int D) {
  size_t n = (size_t)T * D;
  double before = 0, after = 0;
  for (size_t i = 0; i < n; i++) before += z[i];
  for (int t = 0; t < T; t++)
    for (int i = 0; i < D; i++) z[(size_t)t * D + i] *= mult[t];
  for (size_t i = 0; i < n; i++) after += z[i];
  if (after == 0) return;
  float r = (float)(before / after);
  for (size_t i = 0; i < n; i++) z[i] *= r;
}

/* ---- conditioning ---------------------------------------------------------- */
struct ldm_text_cond {
  ldm_text_kind kind;
  ldm_clip_text *enc[2];
  ldm_tokenizer *tok[2];
  bool drop_last;           /* SD2 single file: the last of OpenCLIP's layers is unused */
  int D, P;
  const ldm_text_embed *emb; /* borrowed (ldm_text_cond_set_embeds) */
  int n_emb;
  float *extra[2];          /* the embeddings' vectors per encoder, concatenated */
  char src_path[1024];      /* the model, for messages */
};

ldm_status ldm_text_cond_load(ldm_text_cond **out, const ldm_source *src, int heads,
                              ldm_error *err) {
  *out = NULL;
  ldm_text_cond *tc = calloc(1, sizeof *tc);
  if (!tc) return ldm_fail(err, LDM_ERR_NOMEM, "text: out of memory");
  snprintf(tc->src_path, sizeof tc->src_path, "%s", ldm_source_path(src));
  ldm_status st;
  if ((st = ldm_clip_text_load(&tc->enc[0], src, 0, heads, err)) != LDM_OK) goto fail;
  if (ldm_clip_text_present(src, 1)) {
    if ((st = ldm_clip_text_load(&tc->enc[1], src, 1, heads, err)) != LDM_OK) goto fail;
    if (!tc->enc[1]->cfg.d_proj) {
      st = ldm_fail(err, LDM_ERR_MISSING, "%s: SDXL's second text encoder has no text_projection",
                    tc->enc[1]->where);
      goto fail;
    }
    tc->kind = LDM_TEXT_SDXL;
    tc->D = tc->enc[0]->cfg.d + tc->enc[1]->cfg.d;
    tc->P = tc->enc[1]->cfg.d_proj;
    if ((st = ldm_tokenizer_from_source(&tc->tok[0], src, "tokenizer", -1, err)) != LDM_OK ||
        (st = ldm_tokenizer_from_source(&tc->tok[1], src, "tokenizer_2", 0, err)) != LDM_OK)
      goto fail;
  } else {
    tc->kind = tc->enc[0]->cfg.quick_gelu ? LDM_TEXT_SD1 : LDM_TEXT_SD2;
    tc->drop_last = tc->kind == LDM_TEXT_SD2 && tc->enc[0]->cfg.openclip_names &&
                    tc->enc[0]->cfg.n_layers > 1;
    tc->D = tc->enc[0]->cfg.d;
    if ((st = ldm_tokenizer_from_source(&tc->tok[0], src, "tokenizer",
                                        tc->kind == LDM_TEXT_SD2 ? 0 : -1, err)) != LDM_OK)
      goto fail;
  }
  for (int i = 0; i < 2; i++)
    if (tc->enc[i] && tc->enc[i]->cfg.n_pos < LDM_CLIP_N_CTX) {
      st = ldm_fail(err, LDM_ERR_SHAPE, "%s: %d positions, expected at least %d",
                    tc->enc[i]->where, tc->enc[i]->cfg.n_pos, LDM_CLIP_N_CTX);
      goto fail;
    }
  *out = tc;
  return LDM_OK;
fail:
  ldm_text_cond_free(tc);
  return st;
}

void ldm_text_cond_free(ldm_text_cond *tc) {
  if (!tc) return;
  for (int i = 0; i < 2; i++) {
    ldm_clip_text_free(tc->enc[i]);
    ldm_tokenizer_free(tc->tok[i]);
    free(tc->extra[i]);
  }
  free(tc);
}

void ldm_text_cond_release(const ldm_text_cond *tc) {
  for (int i = 0; tc && i < 2; i++) ldm_clip_text_release(tc->enc[i]);
}

ldm_text_kind ldm_text_cond_kind(const ldm_text_cond *tc) { return tc->kind; }
int ldm_text_cond_dim(const ldm_text_cond *tc) { return tc->D; }
int ldm_text_cond_pooled_dim(const ldm_text_cond *tc) { return tc->P; }
const ldm_tokenizer *ldm_text_cond_tokenizer(const ldm_text_cond *tc) { return tc->tok[0]; }
ldm_clip_text *ldm_text_cond_encoder(const ldm_text_cond *tc, int i) { return i >= 0 && i < 2 ? tc->enc[i] : NULL; }

ldm_status ldm_text_cond_count_chunks(const ldm_text_cond *tc, const char *prompt, int *n,
                                      ldm_error *err) {
  *n = 1;
  for (int e = 0; e < 2 && tc->tok[e]; e++) {
    ldm_text_chunks c;
    LDM_TRY(chunk_ex(tc->tok[e], prompt, -1, LDM_TEXT_COMMA_BACKTRACK, tc->emb, tc->n_emb, &c, err));
    if (c.n > *n) *n = c.n;
    ldm_text_chunks_free(&c);
  }
  return LDM_OK;
}

static int ldm_text_cond_extra_rows(const ldm_text_cond *tc) {
  int n = 0;
  for (int k = 0; k < tc->n_emb; k++) n += tc->emb[k].n_vec;
  return n;
}

ldm_status ldm_text_cond_set_embeds(ldm_text_cond *tc, const ldm_text_embed *e, int n, ldm_error *err) {
  for (int i = 0; i < 2; i++) {
    free(tc->extra[i]);
    tc->extra[i] = NULL;
    if (tc->enc[i]) tc->enc[i]->extra = NULL, tc->enc[i]->n_extra = 0;
  }
  tc->emb = n > 0 ? e : NULL;
  tc->n_emb = n > 0 ? n : 0;
  int rows = ldm_text_cond_extra_rows(tc);
  for (int i = 0; i < 2 && rows > 0; i++) {
    if (!tc->enc[i]) continue;
    const int d = tc->enc[i]->cfg.d;
    if (!(tc->extra[i] = malloc((size_t)rows * d * sizeof(float)))) {
      tc->emb = NULL, tc->n_emb = 0;
      return ldm_fail(err, LDM_ERR_NOMEM, "text: out of memory for embeddings");
    }
    for (int k = 0, r = 0; k < n; r += e[k].n_vec, k++)
      memcpy(tc->extra[i] + (size_t)r * d, e[k].vec[i], (size_t)e[k].n_vec * d * sizeof(float));
  }
  return LDM_OK;
}

/* Layers to run for encoder e (hidden_states index), clip_skip >= 1. */
static int layers_to_run(const ldm_text_cond *tc, int e, int clip_skip) {
  int L = tc->enc[e]->cfg.n_layers, n;
  if (tc->kind == LDM_TEXT_SDXL)
    n = L - clip_skip;                         /* hidden_states[-(clip_skip + 1)] */
  else
    n = L - (tc->drop_last ? 1 : 0) - (clip_skip - 1); /* hidden_states[-clip_skip] */
  return n < 1 ? 1 : n;
}

/* One chunk through encoder e: h [77, d] (the family's layer, emphasis
 * applied) and, when asked, pooled [P] from the full stack. */
static ldm_status encode_chunk(ldm_text_cond *tc, ldm_ctx *ctx, int e, const int32_t *ids,
                               const float *mult, int clip_skip, float *h, float *pooled) {
  const int T = LDM_CLIP_N_CTX;
  const ldm_clip_text *m = tc->enc[e];
  const int d = m->cfg.d;
  const int n_run = layers_to_run(tc, e, clip_skip);
  ldm_status st;
  tc->enc[e]->extra = tc->extra[e];
  tc->enc[e]->n_extra = tc->extra[e] ? ldm_text_cond_extra_rows(tc) : 0;
  for (int i = 0; i < T; i++) /* the tokenizer's ids index the encoder's embedding rows */
    if (ids[i] < 0 || (ids[i] >= m->cfg.n_vocab &&
                       !(ids[i] >= LDM_CLIP_EXTRA_ID && ids[i] - LDM_CLIP_EXTRA_ID < m->n_extra)))
      return ldm_fail(ctx->err, LDM_ERR_FORMAT, "%s: the %s gave token id %d, past the %d embeddings of the text "
                      "encoder %s (a %s/vocab.json that does not belong to this model?)", tc->src_path,
                      e ? "tokenizer_2" : "tokenizer", (int)ids[i], m->cfg.n_vocab, m->where,
                      e ? "tokenizer_2" : "tokenizer");
  if (pooled) {
    // all layers + final norm for the pooled output; hidden_states[n_run] kept
    ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
    float *full = ldm_arena_floats(ctx->scratch, (size_t)T * d);
    if (!full) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "text: no scratch for [%d, %d]", T, d);
    st = ldm_clip_text_forward_ex(ctx, m, ids, 1, T, m->cfg.n_layers, full, n_run, h);
    if (st == LDM_OK) st = ldm_clip_text_final_norm(ctx, m, full, full, T);
    if (st == LDM_OK) st = ldm_clip_text_pool(ctx, m, pooled, full, ids, 1, T);
    ldm_arena_reset(ctx->scratch, mark);
  } else {
    st = ldm_clip_text_forward(ctx, m, ids, 1, T, n_run, h, NULL);
  }
  if (st != LDM_OK) return st;
  // SD1 / SD2: final_layer_norm on the chosen layer -> [77, d]
  if (tc->kind != LDM_TEXT_SDXL) LDM_TRY(ldm_clip_text_final_norm(ctx, m, h, h, T));
  // A1111 emphasis on this encoder's [77, d]
  ldm_text_emphasis(h, mult, T, d);
  return LDM_OK;
}

ldm_status ldm_text_cond_encode(ldm_text_cond *tc, ldm_ctx *ctx, const char *prompt,
                                int clip_skip, int min_chunks, float **cond, int *n_tokens,
                                float **pooled) {
  *cond = NULL;
  *n_tokens = 0;
  if (pooled) *pooled = NULL;
  if (clip_skip < 1) clip_skip = 1;
  const int T = LDM_CLIP_N_CTX;
  const int n_enc = tc->enc[1] ? 2 : 1;
  /* each encoder tokenizes with its own tokenizer, as A1111's embedders and
   * diffusers' two tokenizers do (they differ only where a folder's
   * tokenizer_2 splits on its pad token "!") */
  ldm_text_chunks c[2] = {{0}}, empty[2] = {{0}};
  ldm_status st = LDM_OK;
  float *z = NULL, *pool = NULL, *h = NULL;
  int n = min_chunks > 1 ? min_chunks : 1;
  for (int e = 0; e < n_enc; e++) {
    if ((st = chunk_ex(tc->tok[e], prompt, -1, LDM_TEXT_COMMA_BACKTRACK, tc->emb, tc->n_emb, &c[e], ctx->err)) !=
            LDM_OK ||
        (st = ldm_text_chunk(tc->tok[e], "", -1, LDM_TEXT_COMMA_BACKTRACK, &empty[e], ctx->err)) !=
            LDM_OK)
      goto done;
    if (c[e].n > n) n = c[e].n;
  }
  const size_t per = (size_t)T * tc->D;
  int dmax = tc->enc[0]->cfg.d;
  if (n_enc == 2 && tc->enc[1]->cfg.d > dmax) dmax = tc->enc[1]->cfg.d;
  z = malloc((size_t)n * per * sizeof *z);
  h = malloc((size_t)T * dmax * sizeof *h);
  pool = tc->P ? malloc((size_t)tc->P * sizeof *pool) : NULL;
  if (!z || !h || (tc->P && !pool)) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "text: out of memory for %d chunks", n);
    goto done;
  }
  int off = 0;
  for (int e = 0; e < n_enc; e++) {
    const int d = tc->enc[e]->cfg.d;
    for (int i = 0; i < n; i++) {
      /* chunks past this prompt's own are the empty prompt's (A1111 pad_cond) */
      const ldm_text_chunks *src = i < c[e].n ? &c[e] : &empty[e];
      const int k = i < c[e].n ? i : 0;
      if (i > c[e].n) { /* same as the previous padding chunk */
        for (int t = 0; t < T; t++)
          memcpy(z + (size_t)i * per + (size_t)t * tc->D + off,
                 z + (size_t)(i - 1) * per + (size_t)t * tc->D + off, (size_t)d * sizeof *z);
        continue;
      }
      // chunk i of encoder e -> z[0, 77*i : 77*(i+1), off : off+d]
      st = encode_chunk(tc, ctx, e, src->ids + (size_t)k * T, src->mult + (size_t)k * T, clip_skip,
                        h, (e == 1 && i == 0) ? pool : NULL);
      if (st != LDM_OK) goto done;
      for (int t = 0; t < T; t++)
        memcpy(z + (size_t)i * per + (size_t)t * tc->D + off, h + (size_t)t * d,
               (size_t)d * sizeof *z);
    }
    off += d;
  }
done:
  for (int e = 0; e < 2; e++) {
    ldm_text_chunks_free(&c[e]);
    ldm_text_chunks_free(&empty[e]);
  }
  free(h);
  if (st != LDM_OK) {
    free(z);
    free(pool);
    return st;
  }
  *cond = z;
  *n_tokens = n * T;
  if (pooled) *pooled = pool;
  else free(pool);
  return LDM_OK;
}

/* ---- embeddings ------------------------------------------------------------------ */
static ldm_status read_vectors(const ldm_tensor *t, int d, const char *path, const char *what, float **out, int *n,
                               ldm_error *err) {
  int64_t rows = t->ndim == 1 ? 1 : t->ndim == 2 ? t->shape[0] : -1;
  int64_t width = t->ndim >= 1 ? t->shape[t->ndim - 1] : 0;
  char b[64];
  if (rows < 1 || rows > 1000 || width != d)
    return ldm_fail(err, LDM_ERR_SHAPE, "%s: embedding tensor '%s' is %s, expected [n, %d] for this model's %s", path,
                    t->name, ldm_shape_str(t, b, sizeof b), d, what);
  if (*n && *n != rows)
    return ldm_fail(err, LDM_ERR_SHAPE, "%s: clip_l and clip_g hold different numbers of vectors", path);
  *out = malloc((size_t)(rows * d) * sizeof **out);
  if (!*out) return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
  *n = (int)rows;
  return ldm_tensor_read_f32(t, 0, rows * d, *out, err);
}

ldm_status ldm_text_embed_load(const ldm_text_cond *tc, const char *path, const char *name, ldm_text_embed *out,
                               ldm_error *err) {
  memset(out, 0, sizeof *out);
  size_t pl = strlen(path);
  if ((pl > 3 && !strcmp(path + pl - 3, ".pt")) || (pl > 4 && !strcmp(path + pl - 4, ".bin")) ||
      (pl > 5 && !strcmp(path + pl - 5, ".ckpt")))
    return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                    "%s: a pickled PyTorch embedding: not read (loading a pickle can run code); convert it to "
                    ".safetensors (emb_params, or clip_l + clip_g for SDXL)",
                    path);
  ldm_st_file *f = NULL;
  LDM_TRY(ldm_st_open(&f, path, err));
  ldm_status st = LDM_OK;
  const ldm_tensor *l = ldm_st_find(f, "clip_l"), *g = ldm_st_find(f, "clip_g"), *t = ldm_st_find(f, "emb_params");
  for (int64_t i = 0; !t && i < ldm_st_count(f); i++)
    if (!strncmp(ldm_st_at(f, i)->name, "string_to_param", 15)) t = ldm_st_at(f, i);
  if (!t && !l && ldm_st_count(f) == 1) t = ldm_st_at(f, 0);
  if (l || g) {
    if (tc->kind != LDM_TEXT_SDXL || !l || !g)
      st = ldm_fail(err, LDM_ERR_SHAPE, "%s: an SDXL embedding (clip_l, clip_g) for a %s model", path,
                    tc->kind == LDM_TEXT_SD2 ? "SD2" : tc->kind == LDM_TEXT_SD1 ? "SD1" : "SDXL model lacking one; this");
    else if ((st = read_vectors(l, tc->enc[0]->cfg.d, path, "CLIP-L", &out->vec[0], &out->n_vec, err)) == LDM_OK)
      st = read_vectors(g, tc->enc[1]->cfg.d, path, "OpenCLIP-bigG", &out->vec[1], &out->n_vec, err);
  } else if (!t) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: no embedding here (emb_params, string_to_param.*, clip_l / clip_g)", path);
  } else if (tc->kind == LDM_TEXT_SDXL) {
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: an SD1/SD2 embedding ('%s') for an SDXL model (needs clip_l and clip_g)",
                  path, t->name);
  } else {
    st = read_vectors(t, tc->enc[0]->cfg.d, path, tc->kind == LDM_TEXT_SD2 ? "OpenCLIP-H" : "CLIP-L", &out->vec[0],
                      &out->n_vec, err);
  }
  ldm_st_close(f);
  if (st == LDM_OK && !(out->name = strdup(name))) st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
  if (st != LDM_OK) ldm_text_embed_deinit(out);
  return st;
}

void ldm_text_embed_deinit(ldm_text_embed *e) {
  if (!e) return;
  free(e->name);
  free(e->vec[0]);
  free(e->vec[1]);
  memset(e, 0, sizeof *e);
}
