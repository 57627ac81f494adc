/* `ldm eval text`: runs a CLIP text encoder on input_ids [B, T] (i32/i64)
 * and writes last_hidden_state (final norm applied), penultimate_hidden_state
 * (hidden_states[-2]: output of the second-to-last layer, no final norm) and,
 * when the encoder has a text projection, pooled [B, P], all f32.
 * Options: encoder=1|2 (SDXL's second), heads=N (single files: d/64; else
 * the file's ldm.options text.heads), lora=PATH[:MULT][;...]. */
#include "text/clip_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "io/source.h"

ldm_status ldm_eval_text(const ldm_eval_params *p, int threads, ldm_error *err) {
  ldm_source *src = NULL;
  ldm_st_file *in = NULL;
  ldm_clip_text *m = NULL;
  ldm_ctx ctx = {.threads = threads, .err = err};
  int32_t *ids = NULL;
  int64_t *tmp = NULL;
  float *last = NULL, *pen = NULL, *pooled = NULL;
  ldm_status st;
  int encoder, heads;
  LDM_TRY(ldm_eval_check_options(p, "encoder, heads, lora", err));
  LDM_TRY(ldm_eval_int_option(p, "encoder", 1, 2, 1, &encoder, err));
  LDM_TRY(ldm_eval_int_option(p, "heads", 0, 4096, 0, &heads, err));
  if ((st = ldm_source_open(&src, p->model_path, err)) != LDM_OK) goto done;
  if (!heads) { /* else the file's own setting, as the jobs read it */
    char where[4200];
    snprintf(where, sizeof where, "%s: metadata ldm.options", p->model_path);
    if ((st = ldm_kv_int(ldm_source_metadata(src, "ldm.options"), "text.heads", 1, 4096, 0, &heads, where, err)) !=
        LDM_OK)
      goto done;
  }
  if ((st = ldm_clip_text_load(&m, src, encoder - 1, heads, err)) != LDM_OK) goto done;
  if ((st = ldm_eval_apply_loras(p, &m->lora, 1, "text encoder", err)) != LDM_OK) goto done;
  if ((st = ldm_st_open(&in, p->in_path, err)) != LDM_OK) goto done;
  const ldm_tensor *t;
  if ((st = ldm_st_require(in, "input_ids", &t, err)) != LDM_OK) goto done;
  if (t->ndim != 2 || (t->dtype != LDM_DTYPE_I32 && t->dtype != LDM_DTYPE_I64) || t->shape[0] < 1 ||
      t->shape[0] > 4096 || t->shape[1] < 1 || t->shape[1] > m->cfg.n_pos) {
    char b[96];
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor 'input_ids' is %s %s, expected I32/I64 [B, T<=%d]",
                  p->in_path, ldm_dtype_name(t->dtype), ldm_shape_str(t, b, sizeof b), m->cfg.n_pos);
    goto done;
  }
  const int B = (int)t->shape[0], T = (int)t->shape[1], d = m->cfg.d, P = m->cfg.d_proj;
  const int64_t n = (int64_t)B * T;
  ids = malloc((size_t)n * sizeof *ids);
  tmp = malloc((size_t)n * sizeof *tmp);
  last = malloc((size_t)n * d * sizeof *last);
  pen = malloc((size_t)n * d * sizeof *pen);
  pooled = malloc((size_t)(P ? B * P : 1) * sizeof *pooled);
  ctx.pool = ldm_pool_new(threads);
  ctx.scratch = ldm_arena_new(0);
  if (!ids || !tmp || !last || !pen || !pooled || !ctx.pool || !ctx.scratch) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "eval text: out of memory");
    goto done;
  }
  if ((st = ldm_tensor_read_i64(t, 0, n, tmp, err)) != LDM_OK) goto done;
  for (int64_t i = 0; i < n; i++) {
    if (tmp[i] < 0 || tmp[i] >= m->cfg.n_vocab) {
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: input_ids[%lld, %lld] = %lld, outside [0, %d)",
                    p->in_path, (long long)(i / T), (long long)(i % T), (long long)tmp[i],
                    m->cfg.n_vocab);
      goto done;
    }
    ids[i] = (int32_t)tmp[i];
  }
  // transformer -> last layer output [B, T, d], previous layer's [B, T, d]
  if ((st = ldm_clip_text_forward(&ctx, m, ids, B, T, m->cfg.n_layers, last, pen)) != LDM_OK) goto done;
  // final_layer_norm -> last_hidden_state [B, T, d]
  if ((st = ldm_clip_text_final_norm(&ctx, m, last, last, n)) != LDM_OK) goto done;
  // text_projection of the end-of-text row -> pooled [B, P]
  if (P && (st = ldm_clip_text_pool(&ctx, m, pooled, last, ids, B, T)) != LDM_OK) goto done;
  ldm_tensor outs[3] = {
      {.dtype = LDM_DTYPE_F32, .ndim = 3, .shape = {B, T, d}, .data = last, .name = "last_hidden_state"},
      {.dtype = LDM_DTYPE_F32, .ndim = 3, .shape = {B, T, d}, .data = pen,
       .name = "penultimate_hidden_state"},
      {.dtype = LDM_DTYPE_F32, .ndim = 2, .shape = {B, P}, .data = pooled, .name = "pooled"},
  };
  st = ldm_st_write(p->out_path, outs, P ? 3 : 2, NULL, err);
done:
  ldm_pool_free(ctx.pool);
  ldm_arena_free(ctx.scratch);
  ldm_clip_text_free(m);
  ldm_st_close(in);
  ldm_source_close(src);
  free(ids);
  free(tmp);
  free(last);
  free(pen);
  free(pooled);
  return st;
}
