/* UNet forward pass, step for step as diffusers' UNet2DConditionModel.forward
 * (unets/unet_2d_condition.py) with ResnetBlock2D, Transformer2DModel and
 * BasicTransformerBlock; activations f32 channels-last [B, H*W, C] from the
 * scratch arena: skips are kept, block temporaries are given back after each
 * block, and the up path ping-pongs between three buffers. */
#include "models/unet/unet.h"
#include "core/arena.h"
#include "core/status.h"
#include "ops/ops.h"

#include <string.h>

typedef struct fwd {
  ldm_ctx *ctx;
  const ldm_unet_config *cfg;
  int B;
  const float *emb_act;         /* silu(emb) [B, temb] */
  const float *context;         /* [B, T, D] */
  int T;
} fwd;

#define ALLOC(p, n)                                                                     \
  do {                                                                                  \
    if (!((p) = ldm_arena_floats(ctx->scratch, (size_t)(n)))) {                         \
      st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "unet: out of scratch memory (%zu floats)", \
                    (size_t)(n));                                                       \
      goto done;                                                                        \
    }                                                                                   \
  } while (0)
#define RUN(expr)                  \
  do {                             \
    if ((st = (expr)) != LDM_OK) goto done; \
  } while (0)

static const ldm_tensor *opt_t(const ldm_tensor *t) { return t->data ? t : NULL; }

static bool cancelled(const ldm_ctx *ctx) { return ctx->cancel && atomic_load(ctx->cancel) != 0; }

/* ResnetBlock2D: out [B, HW, cout] = skip(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + emb_proj))) */
static ldm_status resblock(const fwd *f, float *out, const float *x, int H, int W, const ldm_unet_resblock *r) {
  ldm_ctx *ctx = f->ctx;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  int B = f->B, G = f->cfg->groups;
  int64_t HW = (int64_t)H * W, M = B * HW;
  float eps = f->cfg->norm_eps;
  float *t, *h, *e;
  ALLOC(t, M * r->cin);
  ALLOC(h, M * r->cout);
  ALLOC(e, (int64_t)B * r->cout);
  // norm1 + SiLU -> [B, HW, cin]
  RUN(ldm_group_norm(ctx, t, x, B, HW, r->cin, G, eps, &r->norm1_w, &r->norm1_b, true));
  // conv1 -> [B, HW, cout]
  RUN(ldm_conv2d(ctx, h, t, B, H, W, r->cin, &r->conv1_w, &r->conv1_b, 1, 1));
  // time_emb_proj(silu(emb)) -> [B, cout], broadcast over HW
  RUN(ldm_linear(ctx, e, f->emb_act, B, &r->emb_w, &r->emb_b));
  for (int b = 0; b < B; b++) {
    float *hb = h + b * HW * r->cout;
    const float *eb = e + (int64_t)b * r->cout;
    for (int64_t p = 0; p < HW; p++)
      for (int c = 0; c < r->cout; c++) hb[p * r->cout + c] += eb[c];
  }
  // norm2 + SiLU (dropout is identity) -> conv2 -> [B, HW, cout]
  RUN(ldm_group_norm(ctx, h, h, B, HW, r->cout, G, eps, &r->norm2_w, &r->norm2_b, true));
  RUN(ldm_conv2d(ctx, out, h, B, H, W, r->cout, &r->conv2_w, &r->conv2_b, 1, 1));
  // + conv_shortcut(x) (1x1) or x
  if (r->skip_w.data) {
    RUN(ldm_linear(ctx, h, x, M, &r->skip_w, opt_t(&r->skip_b)));
    ldm_add(ctx, out, out, h, M * r->cout);
  } else {
    ldm_add(ctx, out, out, x, M * r->cout);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* ResnetBlock2D's output_scale_factor: (shortcut + hidden) / s, as diffusers
 * divides (not a multiply by 1 / s, which rounds differently). */
static void mid_rescale(float *x, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) x[i] /= s;
}

/* Attention (diffusers Attention with AttnProcessor2_0): h += to_out(sdpa(q(n), k(kv), v(kv))). */
static ldm_status attention(const fwd *f, float *h, const float *n, const float *kv, int64_t HW, int64_t Tk,
                            int C, int heads, const ldm_tensor *wq, const ldm_tensor *wk,
                            const ldm_tensor *wv, const ldm_tensor *wo, const ldm_tensor *bo) {
  ldm_ctx *ctx = f->ctx;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  int B = f->B;
  int64_t M = B * HW, Mk = B * Tk;
  float *q, *k, *v, *a;
  ALLOC(q, M * C);
  ALLOC(a, M * C);
  ALLOC(k, Mk * C);
  ALLOC(v, Mk * C);
  // q [B, HW, C], k/v [B, Tk, C] (no biases)
  RUN(ldm_linear(ctx, q, n, M, wq, NULL));
  RUN(ldm_linear(ctx, k, kv, Mk, wk, NULL));
  RUN(ldm_linear(ctx, v, kv, Mk, wv, NULL));
  // softmax(q k^T / sqrt(dh)) v per head -> [B, HW, C]
  RUN(ldm_attention(ctx, a, C, q, C, k, C, v, C, B, HW, Tk, heads, C / heads, false));
  // to_out.0 -> [B, HW, C]; residual
  RUN(ldm_linear(ctx, q, a, M, wo, bo));
  ldm_add(ctx, h, h, q, M * C);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* Transformer2DModel: out = x + proj_out(blocks(proj_in(norm(x)))). */
static ldm_status transformer(const fwd *f, float *out, const float *x, int H, int W,
                              const ldm_unet_transformer *a) {
  ldm_ctx *ctx = f->ctx;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  int B = f->B, C = a->channels;
  int64_t HW = (int64_t)H * W, M = B * HW;
  /* the feed-forward runs over row chunks so its [rows, 8C] stays bounded */
  int64_t ff_rows = M < 4096 ? M : 4096;
  float *h, *n, *ff, *gg;
  ALLOC(h, M * C);
  ALLOC(n, M * C);
  ALLOC(ff, ff_rows * 8 * C);
  ALLOC(gg, ff_rows * 4 * C);
  // GroupNorm (eps 1e-6) -> proj_in (1x1 conv or linear) -> [B, HW, C]
  RUN(ldm_group_norm(ctx, n, x, B, HW, C, f->cfg->groups, 1e-6f, &a->norm_w, &a->norm_b, false));
  RUN(ldm_linear(ctx, h, n, M, &a->proj_in_w, &a->proj_in_b));
  for (int d = 0; d < a->depth; d++) {
    const ldm_unet_tblock *b = &a->blocks[d];
    // attn1: self-attention (x4: over the context) -> h += [B, HW, C]
    RUN(ldm_layer_norm(ctx, n, h, M, C, 1e-5f, &b->norm1_w, &b->norm1_b));
    RUN(attention(f, h, n, b->attn1_cross ? f->context : n, HW, b->attn1_cross ? f->T : HW, C, a->heads,
                  &b->q1, &b->k1, &b->v1, &b->o1_w, &b->o1_b));
    // attn2: cross-attention over the context [B, T, D] -> h += [B, HW, C]
    RUN(ldm_layer_norm(ctx, n, h, M, C, 1e-5f, &b->norm2_w, &b->norm2_b));
    RUN(attention(f, h, n, f->context, HW, f->T, C, a->heads, &b->q2, &b->k2, &b->v2, &b->o2_w, &b->o2_b));
    // ff: GEGLU(C -> 4C) -> linear(4C -> C) -> h += [B, HW, C]
    RUN(ldm_layer_norm(ctx, n, h, M, C, 1e-5f, &b->norm3_w, &b->norm3_b));
    for (int64_t r0 = 0; r0 < M; r0 += ff_rows) {
      int64_t rows = M - r0 < ff_rows ? M - r0 : ff_rows;
      RUN(ldm_linear(ctx, ff, n + r0 * C, rows, &b->ff1_w, &b->ff1_b));
      ldm_geglu(ctx, gg, ff, rows, 4 * C);
      RUN(ldm_linear(ctx, ff, gg, rows, &b->ff2_w, &b->ff2_b));
      ldm_add(ctx, h + r0 * C, h + r0 * C, ff, rows * C);
    }
  }
  // proj_out -> [B, HW, C]; + x
  RUN(ldm_linear(ctx, n, h, M, &a->proj_out_w, &a->proj_out_b));
  ldm_add(ctx, out, n, x, M * C);
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* Upsample2D: nearest to (Ht, Wt) (2x, cropped by one where the skip was odd,
 * which is what F.interpolate(size=...) picks) then a 3x3 conv. */
static ldm_status upsample(const fwd *f, float *out, float *tmp2x, float *tmpcrop, const float *x, int H, int W,
                           int C, int Ht, int Wt, const ldm_unet_block *blk) {
  ldm_ctx *ctx = f->ctx;
  int B = f->B;
  // nearest 2x -> [B, 2H*2W, C]
  ldm_upsample_nearest2x(ctx, tmp2x, x, B, H, W, C);
  const float *src = tmp2x;
  if (Ht != 2 * H || Wt != 2 * W) {
    // crop to the skip's size -> [B, Ht*Wt, C]
    for (int b = 0; b < B; b++)
      for (int y = 0; y < Ht; y++)
        memcpy(tmpcrop + (((int64_t)b * Ht + y) * Wt) * C, tmp2x + (((int64_t)b * 2 * H + y) * 2 * W) * C,
               (size_t)Wt * C * sizeof(float));
    src = tmpcrop;
  }
  // conv -> [B, Ht*Wt, C]
  return ldm_conv2d(ctx, out, src, B, Ht, Wt, C, &blk->conv_w, &blk->conv_b, 1, 1);
}

typedef struct skip_entry {
  float *p;
  int H, W, C;
} skip_entry;

/* Time embedding with the added conditions -> emb [B, temb]. */
static ldm_status embed(const fwd *f, const ldm_unet *u, float *emb, const float *timesteps,
                        const ldm_unet_cond *cond) {
  ldm_ctx *ctx = f->ctx;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  const ldm_unet_config *c = &u->cfg;
  const ldm_unet_weights *w = &u->w;
  int B = f->B, C0 = c->channels[0], te = c->time_embed_dim;
  float *t0, *t1;
  ALLOC(t0, (int64_t)B * C0);
  ALLOC(t1, (int64_t)B * te);
  // sinusoidal embedding of t -> [B, C0]
  ldm_timestep_embedding(t0, timesteps, B, C0, c->flip_sin_to_cos, c->freq_shift, 1.0f, 10000.0f);
  if (c->time_cond_proj_dim) {
    // LCM: + cond_proj(timestep_cond) -> [B, C0]
    float *tc;
    ALLOC(tc, (int64_t)B * C0);
    RUN(ldm_linear(ctx, tc, cond->timestep_cond, B, &w->cond_proj_w, NULL));
    ldm_add(ctx, t0, t0, tc, (int64_t)B * C0);
  }
  // linear_1 -> SiLU -> linear_2 -> [B, temb]
  RUN(ldm_linear(ctx, t1, t0, B, &w->time1_w, &w->time1_b));
  ldm_silu(ctx, t1, t1, (int64_t)B * te);
  RUN(ldm_linear(ctx, emb, t1, B, &w->time2_w, &w->time2_b));
  if (c->num_classes) {
    // x4: + class_embedding(noise_level) -> [B, temb]
    for (int b = 0; b < B; b++) {
      float lv = cond->class_labels[b];
      int64_t label = (int64_t)lv;
      if (!(lv >= 0) || label >= c->num_classes || (float)label != lv) {
        st = ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "unet: class label %g out of range [0, %d)", (double)lv,
                      c->num_classes);
        goto done;
      }
      RUN(ldm_tensor_read_f32(&w->class_emb, label * te, te, t1, ctx->err));
      ldm_add(ctx, emb + (int64_t)b * te, emb + (int64_t)b * te, t1, te);
    }
  }
  if (c->adm_in_channels) {
    // SDXL: add_embedding(cat(text_embeds, time_proj(time_ids))) -> + [B, temb]
    int adm = c->adm_in_channels, nt = cond->n_text;
    int atd = c->addition_time_embed_dim ? c->addition_time_embed_dim : (adm - nt) / 6;
    if (nt <= 0 || atd <= 0 || nt + 6 * atd != adm) {
      st = ldm_fail(ctx->err, LDM_ERR_SHAPE,
                    "unet: text_embeds width %d + 6 time ids x %d does not give the add embedding's %d inputs",
                    nt, atd, adm);
      goto done;
    }
    float *tid, *in, *a1;
    ALLOC(tid, (int64_t)B * 6 * atd);
    ALLOC(in, (int64_t)B * adm);
    ALLOC(a1, (int64_t)B * te);
    ldm_timestep_embedding(tid, cond->time_ids, B * 6, atd, c->flip_sin_to_cos, c->freq_shift, 1.0f, 10000.0f);
    for (int b = 0; b < B; b++) {
      memcpy(in + (int64_t)b * adm, cond->text_embeds + (int64_t)b * nt, (size_t)nt * sizeof(float));
      memcpy(in + (int64_t)b * adm + nt, tid + (int64_t)b * 6 * atd, (size_t)6 * atd * sizeof(float));
    }
    RUN(ldm_linear(ctx, a1, in, B, &w->add1_w, &w->add1_b));
    ldm_silu(ctx, a1, a1, (int64_t)B * te);
    RUN(ldm_linear(ctx, t1, a1, B, &w->add2_w, &w->add2_b));
    ldm_add(ctx, emb, emb, t1, (int64_t)B * te);
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

static ldm_status check_inputs(const ldm_unet *u, int B, int H, int W, const ldm_unet_cond *cond, ldm_error *err) {
  const ldm_unet_config *c = &u->cfg;
  if (B < 1 || H < 1 || W < 1)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "unet: batch %d, size %dx%d: all must be >= 1", B, H, W);
  if (!cond || !cond->context || cond->n_tokens < 1)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "unet: encoder_hidden_states [B, T, %d] are required",
                    c->context_dim);
  if (c->adm_in_channels && (!cond->text_embeds || !cond->time_ids))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "unet: this model (SDXL) needs text_embeds and time_ids");
  if (c->num_classes && !cond->class_labels)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "unet: this model (x4 upscaler) needs class_labels (noise level)");
  if (c->time_cond_proj_dim && !cond->timestep_cond)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "unet: this model needs timestep_cond [B, %d] (LCM guidance embedding)",
                    c->time_cond_proj_dim);
  return LDM_OK;
}

ldm_status ldm_unet_forward(ldm_ctx *ctx, const ldm_unet *u, float *out, const float *sample, int B, int H, int W,
                            const float *timesteps, const ldm_unet_cond *cond) {
  return ldm_unet_forward_ex(ctx, u, out, sample, B, H, W, timesteps, cond, NULL);
}

ldm_status ldm_unet_forward_ex(ldm_ctx *ctx, const ldm_unet *u, float *out, const float *sample, int B, int H, int W,
                               const float *timesteps, const ldm_unet_cond *cond, const ldm_unet_extra *x) {
  static const ldm_unet_extra none = {0};
  if (!x) x = &none;
  if (u->cfg.controlnet && !x->tap)
    return ldm_fail(ctx->err, LDM_ERR_INTERNAL, "unet: a ControlNet runs in encoder mode only");
  LDM_TRY(check_inputs(u, B, H, W, cond, ctx->err));
  const ldm_unet_config *c = &u->cfg;
  const ldm_unet_weights *w = &u->w;
  ldm_status st = LDM_OK;
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  fwd f = {.ctx = ctx, .cfg = c, .B = B, .context = cond->context, .T = cond->n_tokens};
  int te = c->time_embed_dim, C0 = c->channels[0];
  skip_entry skips[1 + LDM_UNET_MAX_LEVELS * 66];
  int n_skip = 0;
  float *emb, *emb_act, *h, *buf[3] = {0};

  // time embedding (+ class / add embeddings) -> emb [B, temb]; resnets use silu(emb)
  ALLOC(emb, (int64_t)B * te);
  ALLOC(emb_act, (int64_t)B * te);
  RUN(embed(&f, u, emb, timesteps, cond));
  ldm_silu(ctx, emb_act, emb, (int64_t)B * te);
  f.emb_act = emb_act;

  if (c->center_input) {
    // center_input_sample: 2 * sample - 1 -> [B, HW, Cin]
    int64_t n = (int64_t)B * H * W * c->in_channels;
    float *centered;
    ALLOC(centered, n);
    for (int64_t i = 0; i < n; i++) centered[i] = 2.0f * sample[i] - 1.0f;
    sample = centered;
  }
  // conv_in -> [B, HW, C0]
  ALLOC(h, (int64_t)B * H * W * C0);
  RUN(ldm_conv2d(ctx, h, sample, B, H, W, c->in_channels, &w->conv_in_w, &w->conv_in_b, 1, 1));
  if (x->hint) // + the ControlNet's embedded control image
    ldm_add(ctx, h, h, x->hint, (int64_t)B * H * W * C0);
  skips[n_skip++] = (skip_entry){h, H, W, C0};
  int ch = C0;

  // down blocks: every output is kept as a skip
  for (int i = 1; i < w->n_input; i++) {
    if (cancelled(ctx)) {
      st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "unet: cancelled");
      goto done;
    }
    const ldm_unet_block *blk = &w->input[i];
    float *y;
    if (blk->has_down) {
      // Downsample: 3x3 conv stride 2 -> [B, ceil(H/2)*ceil(W/2), C]
      int Ho = ldm_conv_out(H, 3, 2, 1), Wo = ldm_conv_out(W, 3, 2, 1);
      ALLOC(y, (int64_t)B * Ho * Wo * ch);
      RUN(ldm_conv2d(ctx, y, h, B, H, W, ch, &blk->conv_w, &blk->conv_b, 2, 1));
      H = Ho;
      W = Wo;
    } else {
      int co = blk->res.cout;
      ALLOC(y, (int64_t)B * H * W * co);
      if (blk->has_attn) {
        // resnet -> transient [B, HW, cout]; attention -> y
        ldm_arena_mark m2 = ldm_arena_get_mark(ctx->scratch);
        float *r;
        ALLOC(r, (int64_t)B * H * W * co);
        st = resblock(&f, r, h, H, W, &blk->res);
        if (st == LDM_OK) st = transformer(&f, y, r, H, W, &blk->attn);
        ldm_arena_reset(ctx->scratch, m2);
        if (st != LDM_OK) goto done;
      } else {
        RUN(resblock(&f, y, h, H, W, &blk->res));
      }
      ch = co;
    }
    skips[n_skip++] = (skip_entry){y, H, W, ch};
    h = y;
  }

  // up-path buffers: the largest of every concat / block output / upsample
  {
    int64_t need = (int64_t)B * H * W * ch;
    int hc = ch, sp = n_skip;
    for (int i = 0; i < w->n_output; i++) {
      const ldm_unet_block *blk = &w->output[i];
      const skip_entry *s = &skips[--sp];
      int64_t hw = (int64_t)s->H * s->W;
      int64_t a = B * hw * (hc + s->C);
      if (a > need) need = a;
      hc = blk->res.cout;
      if (blk->has_up && sp > 0) {
        int64_t b4 = (int64_t)B * 4 * hw * hc;
        if (b4 > need) need = b4;
      }
    }
    for (int k = 0; k < 3; k++) ALLOC(buf[k], need);
  }

  // middle block: resnet -> attention -> resnet -> [B, HW, C]; its resnets
  // divide their output by mid_block_scale_factor (output_scale_factor)
  RUN(resblock(&f, buf[0], h, H, W, &w->mid_res1));
  h = buf[0];
  if (c->mid_scale != 1.0f) mid_rescale(h, (int64_t)B * H * W * ch, c->mid_scale);
  if (w->mid_has_attn) {
    RUN(transformer(&f, buf[1], h, H, W, &w->mid_attn));
    h = buf[1];
  }
  {
    float *y = h == buf[0] ? buf[1] : buf[0];
    RUN(resblock(&f, y, h, H, W, &w->mid_res2));
    h = y;
    if (c->mid_scale != 1.0f) mid_rescale(h, (int64_t)B * H * W * ch, c->mid_scale);
  }
  if (x->tap) { // encoder mode: hand out every skip and the middle output, then stop
    for (int i = 0; i < n_skip; i++) RUN(x->tap(x->tap_user, i, skips[i].p, B, skips[i].H, skips[i].W, skips[i].C));
    RUN(x->tap(x->tap_user, n_skip, h, B, H, W, ch));
    goto done;
  }
  if (x->down_res) // ControlNet residuals, added after the middle block read the last skip as it was
    for (int i = 0; i < n_skip; i++)
      if (x->down_res[i])
        ldm_add(ctx, skips[i].p, skips[i].p, x->down_res[i], (int64_t)B * skips[i].H * skips[i].W * skips[i].C);
  if (x->mid_res) ldm_add(ctx, h, h, x->mid_res, (int64_t)B * H * W * ch);

  // up blocks: concat the skip, resnet, attention, upsample to the next skip's size
  for (int i = 0; i < w->n_output; i++) {
    if (cancelled(ctx)) {
      st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "unet: cancelled");
      goto done;
    }
    const ldm_unet_block *blk = &w->output[i];
    skip_entry s = skips[--n_skip];
    float *o1 = h == buf[0] ? buf[1] : buf[0];
    // cat(h, skip) -> [B, HW, ch + C_skip]
    ldm_concat_channels(ctx, o1, h, ch, s.p, s.C, B, (int64_t)H * W);
    // resnet -> [B, HW, cout] (into h's buffer, free after the concat)
    RUN(resblock(&f, h, o1, H, W, &blk->res));
    ch = blk->res.cout;
    if (blk->has_attn) {
      RUN(transformer(&f, o1, h, H, W, &blk->attn));
      float *t = h;
      h = o1;
      o1 = t;
    }
    if (blk->has_up) {
      const skip_entry *next = &skips[n_skip - 1];
      float *y = h == buf[0] ? buf[1] : buf[0];
      float *z = (h != buf[2] && y != buf[2]) ? buf[2] : (h != buf[1] && y != buf[1]) ? buf[1] : buf[0];
      // nearest up to the next skip's size + conv -> [B, Ht*Wt, ch] (back into h's buffer)
      RUN(upsample(&f, h, y, z, h, H, W, ch, next->H, next->W, blk));
      H = next->H;
      W = next->W;
    }
  }

  // out: GroupNorm + SiLU -> conv_out -> [B, HW, out_channels]
  {
    float *t = h == buf[0] ? buf[1] : buf[0];
    RUN(ldm_group_norm(ctx, t, h, B, (int64_t)H * W, ch, c->groups, c->norm_eps, &w->norm_out_w,
                       &w->norm_out_b, true));
    RUN(ldm_conv2d(ctx, out, t, B, H, W, ch, &w->conv_out_w, &w->conv_out_b, 1, 1));
  }
done:
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}
