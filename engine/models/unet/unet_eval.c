/* `ldm eval unet`: one UNet evaluation on tensors from a safetensors file, as
 * diffusers' UNet2DConditionModel(sample, timestep, encoder_hidden_states,
 * added_cond_kwargs={text_embeds, time_ids}, class_labels, timestep_cond).
 * Inputs NCHW / [B, T, D]; writes `out` [B, C, H, W] f32. Options:
 * heads=N, head_dim=N, groups=N (what an original checkpoint's yaml says),
 * precision=f32|bf16|bf16-emulated (the matrix products' arithmetic). */
#include "models/unet/unet.h"
#include "core/arena.h"
#include "core/status.h"
#include "core/wcache.h"
#include "ops/ops.h"
#include "ops/ops_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Any float or integer tensor -> malloc'd f32 (n elements). */
static ldm_status read_any(const char *path, const ldm_tensor *t, float **out, ldm_error *err) {
  int64_t n = ldm_tensor_numel(t);
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  if (!p) return ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  ldm_status st = LDM_OK;
  /* safetensors data need not be aligned: integers are read with memcpy */
  if (t->dtype == LDM_DTYPE_I64)
    for (int64_t i = 0; i < n; i++) {
      int64_t v;
      memcpy(&v, (const char *)t->data + 8 * i, 8);
      p[i] = (float)v;
    }
  else if (t->dtype == LDM_DTYPE_I32)
    for (int64_t i = 0; i < n; i++) {
      int32_t v;
      memcpy(&v, (const char *)t->data + 4 * i, 4);
      p[i] = (float)v;
    }
  else
    st = ldm_tensor_read_f32(t, 0, n, p, err);
  if (st != LDM_OK) {
    free(p);
    ldm_error_prefix(err, "%s", path);
    return st;
  }
  *out = p;
  return LDM_OK;
}

static ldm_status shape_fail(ldm_error *err, const char *path, const ldm_tensor *t, const char *want) {
  char got[64];
  return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", path, t->name,
                  ldm_shape_str(t, got, sizeof got), want);
}

ldm_status ldm_eval_unet(const ldm_eval_params *p, int threads, ldm_error *err) {
  ldm_source *src = NULL;
  ldm_unet *u = NULL;
  ldm_st_file *in = NULL;
  ldm_pool *pool = NULL;
  ldm_arena *arena = NULL;
  ldm_wcache *wcache = NULL;
  float *sample = NULL, *ts = NULL, *ctxt = NULL, *temb = NULL, *tids = NULL, *cls = NULL, *tcond = NULL;
  float *x = NULL, *y = NULL, *o = NULL;
  ldm_status st;
  ldm_unet_overrides ov = {0};
  int repeat = 0;
  ldm_precision prec;
  if ((st = ldm_eval_check_options(p, "heads, head_dim, groups, repeat, precision, lora", err)) != LDM_OK ||
      (st = ldm_eval_int_option(p, "heads", 0, 4096, 0, &ov.num_heads, err)) != LDM_OK ||
      (st = ldm_eval_int_option(p, "head_dim", 0, 4096, 0, &ov.head_dim, err)) != LDM_OK ||
      (st = ldm_eval_int_option(p, "groups", 0, 4096, 0, &ov.groups, err)) != LDM_OK ||
      (st = ldm_eval_int_option(p, "repeat", 0, 100, 0, &repeat, err)) != LDM_OK)
    goto done;
  if ((st = ldm_eval_precision(p, &prec, err)) != LDM_OK) goto done;
  if ((st = ldm_source_open(&src, p->model_path, err)) != LDM_OK) goto done;
  {
    /* what --options leaves unset: the file's own settings, as the jobs read them */
    const char *meta = ldm_source_metadata(src, "ldm.options");
    char where[4200];
    snprintf(where, sizeof where, "%s: metadata ldm.options", p->model_path);
    if (!ov.num_heads && !ov.head_dim &&
        ((st = ldm_kv_int(meta, "unet.heads", 1, 4096, 0, &ov.num_heads, where, err)) != LDM_OK ||
         (st = ldm_kv_int(meta, "unet.head_dim", 1, 4096, 0, &ov.head_dim, where, err)) != LDM_OK))
      goto done;
    if (!ov.groups && (st = ldm_kv_int(meta, "unet.groups", 1, 4096, 0, &ov.groups, where, err)) != LDM_OK) goto done;
  }
  if ((st = ldm_unet_load(&u, src, &ov, err)) != LDM_OK) goto done;
  if ((st = ldm_eval_apply_loras(p, &u->lora, 1, ldm_family_name(ldm_unet_guess_family(&u->cfg)), err)) != LDM_OK)
    goto done;
  if ((st = ldm_st_open(&in, p->in_path, err)) != LDM_OK) goto done;
  const ldm_unet_config *c = &u->cfg;
  const char *ip = p->in_path;
  const ldm_tensor *ts_t, *s_t, *e_t, *t;
  if ((st = ldm_st_require(in, "sample", &s_t, err)) != LDM_OK) goto done;
  if ((st = ldm_st_require(in, "timestep", &ts_t, err)) != LDM_OK) goto done;
  if ((st = ldm_st_require(in, "encoder_hidden_states", &e_t, err)) != LDM_OK) goto done;
  char want[96];
  snprintf(want, sizeof want, "[B, %d, H, W]", c->in_channels);
  if (s_t->ndim != 4 || s_t->shape[1] != c->in_channels) {
    st = shape_fail(err, ip, s_t, want);
    goto done;
  }
  if (s_t->shape[0] < 1 || s_t->shape[0] > 4096 || s_t->shape[2] < 1 || s_t->shape[2] > 16384 ||
      s_t->shape[3] < 1 || s_t->shape[3] > 16384) {
    snprintf(want, sizeof want, "[1..4096, %d, 1..16384, 1..16384]", c->in_channels);
    st = shape_fail(err, ip, s_t, want);
    goto done;
  }
  int B = (int)s_t->shape[0], H = (int)s_t->shape[2], W = (int)s_t->shape[3];
  int64_t HW = (int64_t)H * W;
  snprintf(want, sizeof want, "[%d, T, %d]", B, c->context_dim);
  if (e_t->ndim != 3 || e_t->shape[0] != B || e_t->shape[1] < 1 || e_t->shape[1] > 65536 ||
      e_t->shape[2] != c->context_dim) {
    st = shape_fail(err, ip, e_t, want);
    goto done;
  }
  int64_t nts = ldm_tensor_numel(ts_t);
  if (nts != 1 && nts != B) {
    st = shape_fail(err, ip, ts_t, "[B] or [1]");
    goto done;
  }
  if ((st = read_any(ip, s_t, &sample, err)) != LDM_OK || (st = read_any(ip, ts_t, &ts, err)) != LDM_OK ||
      (st = read_any(ip, e_t, &ctxt, err)) != LDM_OK)
    goto done;
  if (nts == 1) { /* broadcast a scalar timestep, as diffusers */
    float *t2 = realloc(ts, (size_t)B * sizeof(float));
    if (!t2) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    ts = t2;
    for (int b = 1; b < B; b++) ts[b] = ts[0];
  }
  ldm_unet_cond cond = {.context = ctxt, .n_tokens = (int)e_t->shape[1]};
  if ((t = ldm_st_find(in, "text_embeds"))) {
    if (t->ndim != 2 || t->shape[0] != B) {
      st = shape_fail(err, ip, t, "[B, n]");
      goto done;
    }
    if ((st = read_any(ip, t, &temb, err)) != LDM_OK) goto done;
    cond.text_embeds = temb;
    cond.n_text = (int)t->shape[1];
  }
  if ((t = ldm_st_find(in, "time_ids"))) {
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != 6) {
      st = shape_fail(err, ip, t, "[B, 6]");
      goto done;
    }
    if ((st = read_any(ip, t, &tids, err)) != LDM_OK) goto done;
    cond.time_ids = tids;
  }
  if ((t = ldm_st_find(in, "class_labels"))) {
    if (ldm_tensor_numel(t) != B) {
      st = shape_fail(err, ip, t, "[B]");
      goto done;
    }
    if ((st = read_any(ip, t, &cls, err)) != LDM_OK) goto done;
    cond.class_labels = cls;
  }
  if ((t = ldm_st_find(in, "timestep_cond"))) {
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != c->time_cond_proj_dim) {
      snprintf(want, sizeof want, "[B, %d]", c->time_cond_proj_dim);
      st = shape_fail(err, ip, t, want);
      goto done;
    }
    if ((st = read_any(ip, t, &tcond, err)) != LDM_OK) goto done;
    cond.timestep_cond = tcond;
  }
  size_t n_in = (size_t)B * HW * c->in_channels, n_out = (size_t)B * HW * c->out_channels;
  x = malloc(n_in * sizeof(float));
  y = malloc(n_out * sizeof(float));
  o = malloc(n_out * sizeof(float));
  pool = ldm_pool_new(threads);
  arena = ldm_arena_new(0);
  if (!x || !y || !o || !pool || !arena) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    goto done;
  }
  ldm_ctx ctx = {.pool = pool, .threads = threads, .scratch = arena, .err = err, .precision = prec};
  /* bf16 on AMX: the weights' bf16 panels are made once, on the first
   * forward, as a job with a weight cache makes them (ldm_model_params) */
  if (ops_amx_active(&ctx) && !(ctx.wcache = wcache = ldm_wcache_new(SIZE_MAX))) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    goto done;
  }
  /* repeat=N: N more forward passes on the same inputs (warm: scratch grown,
   * weights paged in), for timing; the seconds of each go to the output's
   * metadata as forward_seconds. */
  // NCHW -> [B, HW, C]; forward; back to NCHW
  ldm_nchw_to_nhwc(x, sample, B, c->in_channels, HW);
  char secs[1024] = "";
  for (int r = 0; r <= repeat; r++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = ldm_unet_forward(&ctx, u, y, x, B, H, W, ts, &cond)) != LDM_OK) goto done;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t len = strlen(secs);
    snprintf(secs + len, sizeof secs - len, "%s%.4f", r ? "," : "",
             (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
  }
  ldm_nhwc_to_nchw(o, y, B, c->out_channels, HW);
  ldm_tensor ot = {.dtype = LDM_DTYPE_F32, .ndim = 4, .shape = {B, c->out_channels, H, W}, .data = o, .name = "out"};
  char ign[32], layout[32];
  snprintf(ign, sizeof ign, "%lld", (long long)c->n_ignored);
  snprintf(layout, sizeof layout, "%s",
           c->layout == LDM_UNET_LAYOUT_DIFFUSERS ? "diffusers"
           : c->layout == LDM_UNET_LAYOUT_LDM     ? "original"
                                                  : "original-unprefixed");
  const char *meta[] = {"unet_layout", layout, "unet_ignored_tensors", ign, "forward_seconds", secs, NULL};
  st = ldm_st_write(p->out_path, &ot, 1, meta, err);
done:
  free(sample);
  free(ts);
  free(ctxt);
  free(temb);
  free(tids);
  free(cls);
  free(tcond);
  free(x);
  free(y);
  free(o);
  ldm_arena_free(arena);
  ldm_wcache_free(wcache);
  ldm_pool_free(pool);
  ldm_st_close(in);
  ldm_unet_free(u);
  ldm_source_close(src);
  return st;
}
