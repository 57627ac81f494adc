/* `ldm eval controlnet`: one ControlNet evaluation on tensors from a
 * safetensors file, as diffusers' ControlNetModel(sample, timestep,
 * encoder_hidden_states, controlnet_cond, conditioning_scale,
 * added_cond_kwargs={text_embeds, time_ids}). Inputs NCHW / [B, T, D],
 * controlnet_cond [B, hint, 8h, 8w], conditioning_scale [1] (default 1);
 * writes down_0 .. down_N and mid, NCHW f32. Options heads=N, head_dim=N,
 * groups=N (what the original layout cannot say), precision=..., repeat=N (N
 * more passes on the same inputs, the seconds of each written to the
 * output's metadata as forward_seconds). */
#include "models/unet/controlnet.h"
#include "core/arena.h"
#include "core/status.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ldm_status read_f32(const char *path, const ldm_tensor *t, float **out, ldm_error *err) {
  int64_t n = ldm_tensor_numel(t);
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  if (!p) return ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  ldm_status st = ldm_tensor_read_f32(t, 0, n, p, err);
  if (st != LDM_OK) {
    free(p);
    ldm_error_prefix(err, "%s", path);
    return st;
  }
  *out = p;
  return LDM_OK;
}

static ldm_status bad_shape(ldm_error *err, const char *path, const ldm_tensor *t, const char *want) {
  char got[64];
  return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", path, t->name,
                  ldm_shape_str(t, got, sizeof got), want);
}

ldm_status ldm_eval_controlnet(const ldm_eval_params *p, int threads, ldm_error *err) {
  ldm_source *src = NULL;
  ldm_controlnet *cn = NULL;
  ldm_st_file *in = NULL;
  ldm_pool *pool = NULL;
  ldm_arena *arena = NULL;
  float *sample = NULL, *ts = NULL, *ctxt = NULL, *hint = NULL, *temb = NULL, *tids = NULL, *scl = NULL;
  float *x = NULL, *emb = NULL, *o = NULL;
  ldm_controlnet_res res = {0};
  ldm_tensor *outs = NULL;
  char(*names)[16] = NULL;
  ldm_status st;
  ldm_precision prec;
  ldm_unet_overrides ov = {0};
  int repeat = 0;
  if ((st = ldm_eval_check_options(p, "heads, head_dim, groups, precision, repeat", err)) != LDM_OK ||
      (st = ldm_eval_int_option(p, "repeat", 0, 100, 0, &repeat, err)) != LDM_OK)
    goto done;
  if ((st = ldm_eval_int_option(p, "heads", 0, 4096, 0, &ov.num_heads, err)) != LDM_OK ||
      (st = ldm_eval_int_option(p, "head_dim", 0, 4096, 0, &ov.head_dim, err)) != LDM_OK ||
      (st = ldm_eval_int_option(p, "groups", 0, 4096, 0, &ov.groups, err)) != LDM_OK)
    goto done;
  if ((st = ldm_eval_precision(p, &prec, err)) != LDM_OK) goto done;
  if ((st = ldm_source_open(&src, p->model_path, err)) != LDM_OK) goto done;
  if ((st = ldm_controlnet_load(&cn, src, &ov, err)) != LDM_OK) goto done;
  if ((st = ldm_st_open(&in, p->in_path, err)) != LDM_OK) goto done;
  const ldm_unet_config *c = &cn->u->cfg;
  const char *ip = p->in_path;
  const ldm_tensor *s_t, *ts_t, *e_t, *h_t, *t;
  if ((st = ldm_st_require(in, "sample", &s_t, err)) != LDM_OK ||
      (st = ldm_st_require(in, "timestep", &ts_t, err)) != LDM_OK ||
      (st = ldm_st_require(in, "encoder_hidden_states", &e_t, err)) != LDM_OK ||
      (st = ldm_st_require(in, "controlnet_cond", &h_t, err)) != LDM_OK)
    goto done;
  if (s_t->ndim != 4 || s_t->shape[1] != 4 || s_t->shape[0] < 1 || s_t->shape[0] > 64 || s_t->shape[2] < 1 ||
      s_t->shape[2] > 2048 || s_t->shape[3] < 1 || s_t->shape[3] > 2048) {
    st = bad_shape(err, ip, s_t, "[1..64, 4, 1..2048, 1..2048]");
    goto done;
  }
  int B = (int)s_t->shape[0], h = (int)s_t->shape[2], w = (int)s_t->shape[3];
  char want[96];
  snprintf(want, sizeof want, "[%d, T, %d]", B, c->context_dim);
  if (e_t->ndim != 3 || e_t->shape[0] != B || e_t->shape[1] < 1 || e_t->shape[1] > 4096 ||
      e_t->shape[2] != c->context_dim) {
    st = bad_shape(err, ip, e_t, want);
    goto done;
  }
  if (ldm_tensor_numel(ts_t) != B) {
    st = bad_shape(err, ip, ts_t, "[B]");
    goto done;
  }
  snprintf(want, sizeof want, "[%d, %d, 1..16384, 1..16384]", B, cn->hint_channels);
  if (h_t->ndim != 4 || h_t->shape[0] != B || h_t->shape[1] != cn->hint_channels || h_t->shape[2] < 1 ||
      h_t->shape[2] > 16384 || h_t->shape[3] < 1 || h_t->shape[3] > 16384) {
    st = bad_shape(err, ip, h_t, want);
    goto done;
  }
  if ((st = read_f32(ip, s_t, &sample, err)) != LDM_OK || (st = read_f32(ip, ts_t, &ts, err)) != LDM_OK ||
      (st = read_f32(ip, e_t, &ctxt, err)) != LDM_OK || (st = read_f32(ip, h_t, &hint, err)) != LDM_OK)
    goto done;
  float scale = 1.0f;
  if ((t = ldm_st_find(in, "conditioning_scale"))) {
    if (ldm_tensor_numel(t) != 1) {
      st = bad_shape(err, ip, t, "[1]");
      goto done;
    }
    if ((st = read_f32(ip, t, &scl, err)) != LDM_OK) goto done;
    scale = scl[0];
  }
  ldm_unet_cond cond = {.context = ctxt, .n_tokens = (int)e_t->shape[1]};
  if ((t = ldm_st_find(in, "text_embeds"))) {
    if (t->ndim != 2 || t->shape[0] != B) {
      st = bad_shape(err, ip, t, "[B, n]");
      goto done;
    }
    if ((st = read_f32(ip, t, &temb, err)) != LDM_OK) goto done;
    cond.text_embeds = temb;
    cond.n_text = (int)t->shape[1];
  }
  if ((t = ldm_st_find(in, "time_ids"))) {
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != 6) {
      st = bad_shape(err, ip, t, "[B, 6]");
      goto done;
    }
    if ((st = read_f32(ip, t, &tids, err)) != LDM_OK) goto done;
    cond.time_ids = tids;
  }
  int64_t hw = (int64_t)h * w;
  x = malloc((size_t)B * hw * 4 * sizeof(float));
  emb = malloc((size_t)B * hw * c->channels[0] * sizeof(float));
  pool = ldm_pool_new(threads);
  arena = ldm_arena_new(0);
  if (!x || !emb || !pool || !arena) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    goto done;
  }
  ldm_ctx ctx = {.pool = pool, .threads = threads, .scratch = arena, .err = err, .precision = prec};
  int eh, ew;
  if ((st = ldm_controlnet_embed(&ctx, cn, emb, hint, B, (int)h_t->shape[2], (int)h_t->shape[3], &eh, &ew)) != LDM_OK)
    goto done;
  if (eh != h || ew != w) {
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: controlnet_cond %lldx%lld embeds to %dx%d, but the sample is %dx%d", ip,
                  (long long)h_t->shape[3], (long long)h_t->shape[2], ew, eh, w, h);
    goto done;
  }
  ldm_nchw_to_nhwc(x, sample, B, 4, hw);
  char secs[1024] = "";
  for (int r = 0; r <= repeat; r++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ldm_controlnet_res_zero(&res);
    if ((st = ldm_controlnet_forward(&ctx, cn, x, B, h, w, ts, &cond, emb, scale, &res)) != LDM_OK) goto done;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t len = strlen(secs);
    snprintf(secs + len, sizeof secs - len, "%s%.4f", r ? "," : "",
             (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
  }
  /* outputs NCHW: each skip's size follows from its element count and width */
  int n = res.n + 1;
  outs = calloc((size_t)n, sizeof *outs);
  names = calloc((size_t)n, sizeof *names);
  if (!outs || !names) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    goto done;
  }
  int H = h, W = w;
  for (int i = 0; i < n && st == LDM_OK; i++) {
    bool mid = i == n - 1;
    int C = (int)(mid ? cn->mid_w.shape[0] : cn->zero_w[i].shape[0]);
    int64_t size = mid ? res.mid_size : res.size[i];
    if (size != (int64_t)B * H * W * C) { /* a downsample came before this skip */
      H = ldm_conv_out(H, 3, 2, 1);
      W = ldm_conv_out(W, 3, 2, 1);
    }
    if (size != (int64_t)B * H * W * C) {
      st = ldm_fail(err, LDM_ERR_INTERNAL, "controlnet: residual %d has %lld values", i, (long long)size);
      break;
    }
    float *nchw = malloc((size_t)size * sizeof(float));
    if (!nchw) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      break;
    }
    ldm_nhwc_to_nchw(nchw, mid ? res.mid : res.down[i], B, C, (int64_t)H * W);
    if (mid)
      snprintf(names[i], sizeof names[i], "mid");
    else
      snprintf(names[i], sizeof names[i], "down_%d", i);
    outs[i] = (ldm_tensor){.dtype = LDM_DTYPE_F32, .ndim = 4, .shape = {B, C, H, W}, .data = nchw, .name = names[i]};
  }
  if (st == LDM_OK) {
    const char *meta[] = {"controlnet_layout",
                          c->layout == LDM_UNET_LAYOUT_DIFFUSERS ? "diffusers" : "original",
                          "controlnet_family",
                          ldm_family_name(cn->family),
                          "forward_seconds",
                          secs,
                          NULL};
    st = ldm_st_write(p->out_path, outs, n, meta, err);
  }
done:
  for (int i = 0; outs && i < res.n + 1; i++) free(outs[i].data);
  free(outs);
  free(names);
  ldm_controlnet_res_free(&res);
  free(sample);
  free(ts);
  free(ctxt);
  free(hint);
  free(temb);
  free(tids);
  free(scl);
  free(x);
  free(emb);
  free(o);
  ldm_arena_free(arena);
  ldm_pool_free(pool);
  ldm_st_close(in);
  ldm_controlnet_free(cn);
  ldm_source_close(src);
  return st;
}
