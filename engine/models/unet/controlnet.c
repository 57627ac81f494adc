/* ControlNet: loading (diffusers names, or the original ones with or without
 * the control_model. prefix; the pairs mirror diffusers'
 * convert_controlnet_checkpoint) and the forward pass, step for step as
 * diffusers' ControlNetModel.forward: the control image's embedding added
 * to conv_in's output, the UNet's down and middle blocks, a 1x1 conv per
 * skip and for the middle output, times the conditioning scale. */
#include "models/unet/controlnet.h"
#include "core/arena.h"
#include "core/status.h"
#include "ops/ops.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cn_loader {
  const ldm_source *src;
  bool diffusers;
  const char *prefix; /* original layout: "control_model." or "" */
  ldm_error *err;
  ldm_status st;
} cn_loader;

static const ldm_tensor *cn_find(const cn_loader *L, const char *lname, const char *dname) {
  char buf[300];
  if (L->diffusers) return ldm_source_find(L->src, "unet", dname);
  snprintf(buf, sizeof buf, "%s%s", L->prefix, lname);
  return ldm_source_find(L->src, "unet", buf);
}

/* A required tensor of the given shape (a [o, i, 1, 1] conv asked for as
 * 2-d is viewed as [o, i]); the first problem is kept in L->st. */
static void cn_req(cn_loader *L, ldm_tensor *dst, const char *lname, const char *dname, int nd, int64_t s0, int64_t s1,
                   int64_t s2, int64_t s3) {
  memset(dst, 0, sizeof *dst);
  if (L->st != LDM_OK) return;
  const ldm_tensor *t = cn_find(L, lname, dname);
  const char *shown = L->diffusers ? dname : lname;
  if (!t) {
    L->st = ldm_fail(L->err, LDM_ERR_MISSING, "%s: ControlNet tensor '%s%s' is missing", ldm_source_path(L->src),
                     L->diffusers ? "" : L->prefix, shown);
    return;
  }
  *dst = *t;
  if (nd == 2 && t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1) dst->ndim = 2;
  const int64_t want[4] = {s0, s1, s2, s3};
  bool ok = dst->ndim == nd;
  for (int i = 0; ok && i < nd; i++) ok = want[i] < 0 || dst->shape[i] == want[i];
  if (!ok) {
    char got[64];
    L->st = ldm_fail(L->err, LDM_ERR_SHAPE,
                     "%s: ControlNet tensor '%s' has shape %s, expected a %d-d tensor of "
                     "[%lld, %lld%s]",
                     ldm_source_path(L->src), t->name ? t->name : shown, ldm_shape_str(t, got, sizeof got), nd,
                     (long long)s0, (long long)s1, nd > 2 ? ", 3, 3" : "");
  } else if (!(t->dtype == LDM_DTYPE_F32 || t->dtype == LDM_DTYPE_F16 || t->dtype == LDM_DTYPE_BF16)) {
    L->st = ldm_fail(L->err, LDM_ERR_SHAPE, "%s: ControlNet tensor '%s' has dtype %s, expected F32, F16 or BF16",
                     ldm_source_path(L->src), t->name ? t->name : shown, ldm_dtype_name(t->dtype));
  }
}

static ldm_status read_config(cn_loader *L, ldm_controlnet *cn) {
  const char *text = ldm_source_config(L->src, "unet");
  if (!text) return LDM_OK;
  json_t *root = json_loads(text, 0, NULL);
  if (!root) return LDM_OK; /* the UNet's reader already named a broken config.json */
  const char *order = json_string_value(json_object_get(root, "controlnet_conditioning_channel_order"));
  json_t *pool = json_object_get(root, "global_pool_conditions");
  ldm_status st = LDM_OK;
  if (order && strcmp(order, "rgb") && strcmp(order, "bgr"))
    st = ldm_fail(L->err, LDM_ERR_FORMAT,
                  "%s: config.json controlnet_conditioning_channel_order '%s', expected "
                  "rgb or bgr",
                  ldm_source_path(L->src), order);
  else if (pool && json_is_true(pool))
    st = ldm_fail(L->err, LDM_ERR_UNSUPPORTED,
                  "%s: global_pool_conditions (shuffle-type ControlNets) is not "
                  "supported",
                  ldm_source_path(L->src));
  cn->bgr = order && !strcmp(order, "bgr");
  json_decref(root);
  return st;
}

void ldm_controlnet_free(ldm_controlnet *cn) {
  if (!cn) return;
  ldm_unet_free(cn->u);
  free(cn->zero_w);
  free(cn->zero_b);
  free(cn);
}

void ldm_controlnet_overrides_for(const ldm_unet *u, ldm_unet_overrides *ov) {
  const ldm_unet_config *c = &u->cfg;
  memset(ov, 0, sizeof *ov);
  ov->groups = c->groups;
  bool same_heads = true, same_dim = true;
  for (int l = 1; l < c->n_levels; l++) {
    same_heads = same_heads && c->heads[l] == c->heads[0];
    same_dim =
        same_dim && c->heads[l] > 0 && c->heads[0] > 0 && c->channels[l] / c->heads[l] == c->channels[0] / c->heads[0];
  }
  if (c->heads[0] > 0 && same_heads)
    ov->num_heads = c->heads[0];
  else if (c->heads[0] > 0 && same_dim)
    ov->head_dim = c->channels[0] / c->heads[0];
}

ldm_status ldm_controlnet_load(ldm_controlnet **out, const ldm_source *src, const ldm_unet_overrides *ov,
                               ldm_error *err) {
  *out = NULL;
  ldm_controlnet *cn = calloc(1, sizeof *cn);
  if (!cn) return ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  /* a diffusers folder's config.json says heads and groups itself */
  ldm_unet_overrides none = {0};
  ldm_status st = ldm_unet_load_ex(&cn->u, src, ldm_source_config(src, "unet") ? &none : ov, true, err);
  if (st != LDM_OK) {
    free(cn);
    return st;
  }
  const ldm_unet_config *c = &cn->u->cfg;
  cn->family = ldm_unet_guess_family(c);
  cn_loader L = {.src = src,
                 .diffusers = c->layout == LDM_UNET_LAYOUT_DIFFUSERS,
                 .prefix = c->layout == LDM_UNET_LAYOUT_CONTROL ? "control_model." : "",
                 .err = err};
  st = read_config(&L, cn);
  const char *path = ldm_source_path(src);
  const ldm_tensor *e0 = cn_find(&L, "input_hint_block.0.weight", "controlnet_cond_embedding.conv_in.weight");
  if (st == LDM_OK && c->in_channels != 4)
    st =
        ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: a ControlNet of %d latent channels (4 expected)", path, c->in_channels);
  if (st == LDM_OK && (!e0 || e0->ndim != 4 || e0->shape[1] < 1 || e0->shape[1] > 16))
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: the control image embedding's first conv is not [*, 1..16, 3, 3]", path);
  if (st != LDM_OK) {
    ldm_controlnet_free(cn);
    return st;
  }
  cn->hint_channels = (int)e0->shape[1];
  int width = (int)e0->shape[0];
  cn_req(&L, &cn->emb_in_w, "input_hint_block.0.weight", "controlnet_cond_embedding.conv_in.weight", 4, width,
         cn->hint_channels, 3, 3);
  cn_req(&L, &cn->emb_in_b, "input_hint_block.0.bias", "controlnet_cond_embedding.conv_in.bias", 1, width, 0, 0, 0);
  /* the convs between: original input_hint_block.2, 4, ...; diffusers blocks.0, 1, ... */
  for (;;) {
    int k = cn->n_emb;
    char lw[64], dw[80];
    snprintf(lw, sizeof lw, "input_hint_block.%d.weight", 2 * (k + 1));
    snprintf(dw, sizeof dw, "controlnet_cond_embedding.blocks.%d.weight", k);
    const ldm_tensor *t = cn_find(&L, lw, dw);
    /* the original names number conv_out like the blocks: it is the last */
    if (!t ||
        (!L.diffusers && !cn_find(&L, (snprintf(lw, sizeof lw, "input_hint_block.%d.weight", 2 * (k + 2)), lw), "")))
      break;
    if (k >= LDM_CN_MAX_EMB || t->ndim != 4) {
      ldm_controlnet_free(cn);
      return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: the control image embedding has more than %d convs", path,
                      LDM_CN_MAX_EMB);
    }
    char lb[64], db[80];
    snprintf(lw, sizeof lw, "input_hint_block.%d.weight", 2 * (k + 1));
    snprintf(lb, sizeof lb, "input_hint_block.%d.bias", 2 * (k + 1));
    snprintf(db, sizeof db, "controlnet_cond_embedding.blocks.%d.bias", k);
    int cout = (int)t->shape[0];
    cn_req(&L, &cn->emb_w[k], lw, dw, 4, cout, width, 3, 3);
    cn_req(&L, &cn->emb_b[k], lb, db, 1, cout, 0, 0, 0);
    cn->emb_stride[k] = k % 2 ? 2 : 1;
    width = cout;
    cn->n_emb++;
  }
  int C0 = c->channels[0];
  {
    char lw[64], lb[64];
    snprintf(lw, sizeof lw, "input_hint_block.%d.weight", 2 * (cn->n_emb + 1));
    snprintf(lb, sizeof lb, "input_hint_block.%d.bias", 2 * (cn->n_emb + 1));
    cn_req(&L, &cn->emb_out_w, lw, "controlnet_cond_embedding.conv_out.weight", 4, C0, width, 3, 3);
    cn_req(&L, &cn->emb_out_b, lb, "controlnet_cond_embedding.conv_out.bias", 1, C0, 0, 0, 0);
  }
  /* zero convs: one per skip, as wide as it */
  const ldm_unet_weights *w = &cn->u->w;
  cn->n_zero = w->n_input;
  cn->zero_w = calloc((size_t)cn->n_zero, sizeof *cn->zero_w);
  cn->zero_b = calloc((size_t)cn->n_zero, sizeof *cn->zero_b);
  if (!cn->zero_w || !cn->zero_b) {
    ldm_controlnet_free(cn);
    return ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  }
  int ch = C0;
  for (int i = 0; i < cn->n_zero; i++) {
    if (i > 0 && w->input[i].has_res) ch = w->input[i].res.cout;
    char lw[64], lb[64], dw[64], db[64];
    snprintf(lw, sizeof lw, "zero_convs.%d.0.weight", i);
    snprintf(lb, sizeof lb, "zero_convs.%d.0.bias", i);
    snprintf(dw, sizeof dw, "controlnet_down_blocks.%d.weight", i);
    snprintf(db, sizeof db, "controlnet_down_blocks.%d.bias", i);
    cn_req(&L, &cn->zero_w[i], lw, dw, 2, ch, ch, 0, 0);
    cn_req(&L, &cn->zero_b[i], lb, db, 1, ch, 0, 0, 0);
  }
  cn_req(&L, &cn->mid_w, "middle_block_out.0.weight", "controlnet_mid_block.weight", 2, ch, ch, 0, 0);
  cn_req(&L, &cn->mid_b, "middle_block_out.0.bias", "controlnet_mid_block.bias", 1, ch, 0, 0, 0);
  if (L.st == LDM_OK && cn->n_emb % 2)
    L.st = ldm_fail(err, LDM_ERR_FORMAT,
                    "%s: the control image embedding has %d convs between its first and last "
                    "(pairs expected)",
                    path, cn->n_emb);
  if (L.st != LDM_OK) {
    ldm_controlnet_free(cn);
    return L.st;
  }
  *out = cn;
  return LDM_OK;
}

ldm_status ldm_controlnet_check_fit(const ldm_controlnet *cn, const char *cn_path, const ldm_unet *u,
                                    const char *unet_path, ldm_error *err) {
  const ldm_unet_config *a = &cn->u->cfg, *b = &u->cfg;
  bool ok = a->n_levels == b->n_levels && a->layers_per_block == b->layers_per_block &&
            a->context_dim == b->context_dim && a->adm_in_channels == b->adm_in_channels && cn->n_zero == u->w.n_input;
  for (int l = 0; ok && l < a->n_levels; l++) ok = a->channels[l] == b->channels[l];
  if (ok) return LDM_OK;
  return ldm_fail(err, LDM_ERR_INVALID_ARG,
                  "%s: this ControlNet (%d levels of %d..%d channels, %d blocks each, context %d) does not fit the "
                  "UNet of %s (%d levels of %d..%d channels, %d blocks each, context %d)",
                  cn_path, a->n_levels, a->channels[0], a->channels[a->n_levels - 1], a->layers_per_block,
                  a->context_dim, unet_path, b->n_levels, b->channels[0], b->channels[b->n_levels - 1],
                  b->layers_per_block, b->context_dim);
}

#define RUN_CN(expr)                        \
  do {                                      \
    if ((st = (expr)) != LDM_OK) goto done; \
  } while (0)
#define ALLOC(p, n)                                                                                          \
  do {                                                                                                       \
    if (!((p) = ldm_arena_floats(ctx->scratch, (size_t)(n)))) {                                              \
      st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "controlnet: out of scratch memory (%zu floats)", (size_t)(n)); \
      goto done;                                                                                             \
    }                                                                                                        \
  } while (0)

ldm_status ldm_controlnet_embed(ldm_ctx *ctx, const ldm_controlnet *cn, float *out, const float *image, int B, int Hi,
                                int Wi, int *h, int *w) {
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  int C = cn->hint_channels, H = Hi, W = Wi;
  int64_t hw = (int64_t)H * W;
  float *a, *b;
  int64_t big = 0;
  /* the widest activation: conv_in's and every block's output at its size */
  {
    int hh = H, ww = W, ch = (int)cn->emb_in_w.shape[0];
    big = (int64_t)hh * ww * (ch > C ? ch : C);
    for (int k = 0; k < cn->n_emb; k++) {
      hh = ldm_conv_out(hh, 3, cn->emb_stride[k], 1);
      ww = ldm_conv_out(ww, 3, cn->emb_stride[k], 1);
      int64_t n = (int64_t)hh * ww * cn->emb_w[k].shape[0];
      if (n > big) big = n;
    }
  }
  ALLOC(a, (int64_t)B * big);
  ALLOC(b, (int64_t)B * big);
  // NCHW image -> [B, HW, C] (bgr: channels reversed, as torch.flip(dims=[1]))
  for (int n = 0; n < B; n++)
    for (int c = 0; c < C; c++)
      for (int64_t i = 0; i < hw; i++)
        a[((int64_t)n * hw + i) * C + (cn->bgr ? C - 1 - c : c)] = image[((int64_t)n * C + c) * hw + i];
  // conv_in + SiLU
  RUN_CN(ldm_conv2d(ctx, b, a, B, H, W, C, &cn->emb_in_w, &cn->emb_in_b, 1, 1));
  C = (int)cn->emb_in_w.shape[0];
  ldm_silu(ctx, b, b, (int64_t)B * H * W * C);
  // blocks: conv (stride 1 / 2) + SiLU
  for (int k = 0; k < cn->n_emb; k++) {
    int s = cn->emb_stride[k], Ho = ldm_conv_out(H, 3, s, 1), Wo = ldm_conv_out(W, 3, s, 1);
    RUN_CN(ldm_conv2d(ctx, a, b, B, H, W, C, &cn->emb_w[k], &cn->emb_b[k], s, 1));
    H = Ho;
    W = Wo;
    C = (int)cn->emb_w[k].shape[0];
    ldm_silu(ctx, a, a, (int64_t)B * H * W * C);
    float *t = a;
    a = b;
    b = t;
  }
  // conv_out -> [B, hw, C0]
  RUN_CN(ldm_conv2d(ctx, out, b, B, H, W, C, &cn->emb_out_w, &cn->emb_out_b, 1, 1));
  *h = H;
  *w = W;
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

typedef struct tap_state {
  ldm_ctx *ctx;
  const ldm_controlnet *cn;
  float scale;
  ldm_controlnet_res *res;
} tap_state;

/* zero conv of skip i (or the middle output, i == n_zero) -> + scale x it */
static ldm_status tap(void *user, int i, const float *h, int B, int H, int W, int C) {
  tap_state *t = user;
  ldm_ctx *ctx = t->ctx;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  const ldm_controlnet *cn = t->cn;
  ldm_controlnet_res *r = t->res;
  int64_t M = (int64_t)B * H * W, n = M * C;
  bool mid = i == cn->n_zero;
  float **dst = mid ? &r->mid : &r->down[i];
  int64_t *size = mid ? &r->mid_size : &r->size[i];
  if (i > cn->n_zero || i >= LDM_CN_MAX_SKIPS)
    return ldm_fail(ctx->err, LDM_ERR_INTERNAL, "controlnet: skip %d of %d", i, cn->n_zero);
  if (*dst && *size != n) {
    free(*dst);
    *dst = NULL;
  }
  if (!*dst) {
    if (!(*dst = calloc((size_t)n, sizeof(float))))
      return ldm_fail(ctx->err, LDM_ERR_NOMEM, "controlnet: out of memory for a residual of %lld floats", (long long)n);
    *size = n;
  }
  if (!mid && i + 1 > r->n) r->n = i + 1;
  float *y;
  ALLOC(y, n);
  RUN_CN(ldm_linear(ctx, y, h, M, mid ? &cn->mid_w : &cn->zero_w[i], mid ? &cn->mid_b : &cn->zero_b[i]));
  float *d = *dst, s = t->scale;
  for (int64_t k = 0; k < n; k++) d[k] += s * y[k];
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

ldm_status ldm_controlnet_forward(ldm_ctx *ctx, const ldm_controlnet *cn, const float *sample, int B, int h, int w,
                                  const float *timesteps, const ldm_unet_cond *cond, const float *emb, float scale,
                                  ldm_controlnet_res *res) {
  tap_state t = {ctx, cn, scale, res};
  ldm_unet_extra x = {.hint = emb, .tap = tap, .tap_user = &t};
  return ldm_unet_forward_ex(ctx, cn->u, NULL, sample, B, h, w, timesteps, cond, &x);
}

void ldm_controlnet_res_zero(ldm_controlnet_res *res) {
  for (int i = 0; i < res->n; i++)
    if (res->down[i]) memset(res->down[i], 0, (size_t)res->size[i] * sizeof(float));
  if (res->mid) memset(res->mid, 0, (size_t)res->mid_size * sizeof(float));
}

void ldm_controlnet_res_free(ldm_controlnet_res *res) {
  for (int i = 0; i < LDM_CN_MAX_SKIPS; i++) free(res->down[i]);
  free(res->mid);
  memset(res, 0, sizeof *res);
}
