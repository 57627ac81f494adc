/* The upscale task with a feed-forward (ESRGAN-class) model: the image
 * through the net in tiles (models/esrgan), alpha through it on its own as
 * Real-ESRGAN's RealESRGANer.enhance does (alpha_upsampler 'realesrgan':
 * replicated to RGB, back to grey with 0.299 R + 0.587 G + 0.114 B), the
 * result clamped, optionally resized to a smaller scale, and optionally
 * refined: AUTOMATIC1111's "SD upscale" -- img2img at low strength with a
 * checkpoint over overlapping tiles of the upscaled image, cross-faded. */
#include "pipeline/pipeline.h"
#include "pipeline/imageproc.h"
#include "core/arena.h"
#include "ops/ops.h"
#include "core/status.h"
#include "core/threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sr_run {
  ldm_job *job;
  const ldm_job_params *p;
  struct timespec t0;
  int step, total;          /* progress over the upscale's tiles and the refine steps */
  int refine_base, refine_tiles;
} sr_run;

static double elapsed(const sr_run *r) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - r->t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - r->t0.tv_nsec);
}

/* ldm_sr_upscale's per-tile callback: progress and cancel. */
static int tile_done(void *user, int done, int total) {
  sr_run *r = user;
  (void)done;
  (void)total;
  r->step++;
  if (atomic_load(&r->job->cancel)) return 1;
  if (r->p->progress && r->p->progress(r->p->progress_user, r->step, r->total, elapsed(r), NULL)) {
    atomic_store(&r->job->cancel, 1);
    return 1;
  }
  return 0;
}

static float read_px(const ldm_image *img, int x, int y, int c) {
  const char *row = (const char *)img->data + (size_t)y * img->stride;
  size_t i = (size_t)x * img->channels + (size_t)c;
  return img->type == LDM_PIXEL_F32 ? ((const float *)row)[i] : ((const unsigned char *)row)[i] / 255.0f;
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* Interleaved RGB [H*W, 3] -> [h*w, 3] with the pipelines' antialiased
 * (triangle) resize, through planes. */
static ldm_status resize_rgb(const float *in, int W, int H, float *out, int w, int h, ldm_error *err) {
  float *a = malloc((size_t)3 * W * H * sizeof(float)), *b = malloc((size_t)3 * w * h * sizeof(float));
  if (!a || !b) {
    free(a);
    free(b);
    return ldm_fail(err, LDM_ERR_NOMEM, "out of memory resizing to %dx%d", w, h);
  }
  size_t HW = (size_t)W * H, hw = (size_t)w * h;
  for (size_t i = 0; i < HW; i++)
    for (int c = 0; c < 3; c++) a[c * HW + i] = in[i * 3 + c];
  pl_resize(a, 3, W, H, b, w, h);
  for (size_t i = 0; i < hw; i++)
    for (int c = 0; c < 3; c++) out[i * 3 + c] = b[c * hw + i];
  free(a);
  free(b);
  return LDM_OK;
}

/* ---- refine: img2img over tiles ------------------------------------------- */

typedef struct refine_cb {
  sr_run *r;
  int tile;                 /* index of the running tile */
} refine_cb;

static int refine_progress(void *user, int step, int total, double el, const ldm_image *preview) {
  refine_cb *c = user;
  sr_run *r = c->r;
  (void)el;
  if (c->tile == 0 && step == 1) r->total = r->refine_base + r->refine_tiles * total;
  r->step = r->refine_base + c->tile * total + step;
  if (atomic_load(&r->job->cancel)) return 1;
  if (r->p->progress && r->p->progress(r->p->progress_user, r->step, r->total, elapsed(r), preview)) {
    atomic_store(&r->job->cancel, 1);
    return 1;
  }
  return 0;
}

static int round8(int v) { return (v + 7) / 8 * 8; }

/* img [OH*OW, 3] (0..1) redrawn in place by img2img tiles with seed. */
static ldm_status refine(sr_run *r, float *img, int OW, int OH, uint64_t seed, ldm_error *err) {
  const ldm_job_params *p = r->p;
  ldm_model *rm = p->refine_model;
  int T = p->refine_tile ? p->refine_tile : rm->fam.native_size;
  int tw = OW < T ? OW : T, th = OH < T ? OH : T;
  int ov = p->refine_overlap ? p->refine_overlap : 64;
  int mn = tw < th ? tw : th;
  if (ov > mn / 2) ov = mn / 2;
  int ox[1024], oy[1024];
  int nx = ldm_tile_origins(OW, tw, ov, ox, 1024), ny = ldm_tile_origins(OH, th, ov, oy, 1024);
  r->refine_tiles = nx * ny;
  int jw = round8(tw), jh = round8(th);
  ldm_image *tin = ldm_image_new(tw, th, 3, LDM_PIXEL_F32);
  float *acc = calloc((size_t)OW * OH * 3, sizeof(float)), *wsum = calloc((size_t)OW * OH, sizeof(float));
  float *got = malloc((size_t)jw * jh * 3 * sizeof(float)), *back = malloc((size_t)tw * th * 3 * sizeof(float));
  ldm_status st = LDM_OK;
  if (!tin || !acc || !wsum || !got || !back) st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory refining %dx%d", OW, OH);
  refine_cb cb = {r, 0};
  for (int ty = 0; ty < ny && st == LDM_OK; ty++)
    for (int tx = 0; tx < nx && st == LDM_OK; tx++) {
      cb.tile = ty * nx + tx;
      for (int y = 0; y < th; y++)
        memcpy((char *)tin->data + (size_t)y * tin->stride, img + ((size_t)(oy[ty] + y) * OW + ox[tx]) * 3,
               (size_t)tw * 3 * sizeof(float));
      ldm_job_params jp;
      ldm_job_params_init(&jp, LDM_TASK_IMG2IMG);
      jp.prompt = p->prompt;
      jp.negative_prompt = p->negative_prompt;
      jp.steps = p->steps;
      jp.cfg_scale = p->cfg_scale;
      jp.guidance_rescale = p->guidance_rescale;
      jp.sampler = p->sampler;
      jp.seed = seed;
      jp.rng = p->rng;
      jp.clip_skip = p->clip_skip;
      jp.strength = p->refine_strength > 0.0f ? p->refine_strength : 0.3f;
      jp.width = jw;
      jp.height = jh;
      jp.init = tin;
      jp.output_type = LDM_PIXEL_F32; /* no rounding between the stages */
      jp.threads = p->threads;
      jp.loras = p->loras; /* the job's LoRAs and embeddings go to the refine model */
      jp.n_loras = p->n_loras;
      jp.model_dirs = p->model_dirs;
      jp.want_preview = p->want_preview;
      jp.progress = refine_progress;
      jp.progress_user = &cb;
      ldm_job *job = NULL;
      ldm_image **outs = NULL;
      int n = 0;
      st = ldm_job_new(&job, rm, &jp, err);
      if (st == LDM_OK) st = ldm_job_run(job, &outs, &n, err);
      ldm_job_free(job);
      if (st == LDM_OK && n >= 1) {
        for (int y = 0; y < jh; y++)
          for (int x = 0; x < jw; x++)
            for (int c = 0; c < 3; c++) got[((size_t)y * jw + x) * 3 + c] = read_px(outs[0], x, y, c);
        if (jw != tw || jh != th) st = resize_rgb(got, jw, jh, back, tw, th, err);
        else memcpy(back, got, (size_t)tw * th * 3 * sizeof(float));
      }
      for (int i = 0; i < n; i++) ldm_image_free(outs[i]);
      free(outs);
      if (st != LDM_OK) break;
      /* cross-fade over the overlaps (linear ramps over the whole overlap,
       * as A1111's combine_grid) */
      for (int y = 0; y < th; y++) {
        float wy = 1.0f;
        if (oy[ty] > 0 && y < ov) wy = (y + 0.5f) / ov;
        if (oy[ty] + th < OH && y >= th - ov) wy = fminf(wy, (th - y - 0.5f) / ov);
        for (int x = 0; x < tw; x++) {
          float w = wy;
          if (ox[tx] > 0 && x < ov) w = fminf(w, (x + 0.5f) / ov);
          if (ox[tx] + tw < OW && x >= tw - ov) w = fminf(w, (tw - x - 0.5f) / ov);
          size_t o = (size_t)(oy[ty] + y) * OW + (size_t)(ox[tx] + x);
          for (int c = 0; c < 3; c++) acc[o * 3 + c] += w * back[((size_t)y * tw + x) * 3 + c];
          wsum[o] += w;
        }
      }
    }
  if (st == LDM_OK)
    for (size_t i = 0; i < (size_t)OW * OH; i++)
      for (int c = 0; c < 3; c++) img[i * 3 + c] = wsum[i] > 0.0f ? acc[i * 3 + c] / wsum[i] : img[i * 3 + c];
  ldm_image_free(tin);
  free(acc);
  free(wsum);
  free(got);
  free(back);
  return st;
}

/* ---- the job --------------------------------------------------------------- */

/* rgb [OH*OW, 3] (+ alpha [OH*OW]) -> an image of `channels` channels. */
static ldm_image *to_image(const float *rgb, const float *alpha, int OW, int OH, int channels, ldm_pixel_type type) {
  ldm_image *img = ldm_image_new(OW, OH, channels, type);
  if (!img) return NULL;
  for (int y = 0; y < OH; y++) {
    char *row = (char *)img->data + (size_t)y * img->stride;
    for (int x = 0; x < OW; x++) {
      size_t i = (size_t)y * OW + x;
      float v[4] = {rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], alpha ? alpha[i] : 1.0f};
      if (channels == 1) v[0] = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
      for (int c = 0; c < channels; c++) {
        float u = clamp01(v[c]);
        if (type == LDM_PIXEL_F32) ((float *)row)[(size_t)x * channels + c] = u;
        else ((unsigned char *)row)[(size_t)x * channels + c] = (unsigned char)nearbyintf(u * 255.0f);
      }
    }
  }
  return img;
}

ldm_status pl_sr_job_run(ldm_job *job, ldm_image ***images, int *n_images, ldm_error *err) {
  const ldm_job_params *p = &job->p;
  ldm_model *m = job->model;
  const ldm_image *in = p->init;
  const int W = in->width, H = in->height, C = in->channels, s = m->sr_cfg.scale;
  const int f = p->upscale_factor > 0 ? p->upscale_factor : s;
  const int64_t HW = (int64_t)W * H, SW = (int64_t)W * s, SH = (int64_t)H * s, OW = (int64_t)W * f,
                OH = (int64_t)H * f;
  if (SW > 65536 || SH > 65536 || SW * SH > ((int64_t)1 << 30))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "upscale of %dx%d by %d: the result (%lldx%lld) is too large", W, H, s,
                    (long long)SW, (long long)SH);
  sr_run r = {.job = job, .p = p};
  clock_gettime(CLOCK_MONOTONIC, &r.t0);
  int threads = p->threads > 0 ? p->threads : m->threads;
  ldm_ctx ctx = {.pool = ldm_pool_new(threads), .threads = threads, .scratch = ldm_arena_new((size_t)4 << 20),
                 .err = err, .cancel = &job->cancel, .precision = m->precision, .wcache = m->wcache};
  float *rgb = malloc((size_t)HW * 3 * sizeof(float)), *out = malloc((size_t)(SW * SH) * 3 * sizeof(float));
  float *alpha = NULL, *ares = NULL;
  int count = p->refine_model ? p->batch_count : 1;
  ldm_image **imgs = calloc((size_t)count, sizeof *imgs);
  float *refined = NULL;
  ldm_status st = LDM_OK;
  if (!ctx.pool || !ctx.scratch || !rgb || !out || !imgs) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory for a %dx%d upscale", W, H);
    goto done;
  }
  bool has_alpha = false;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      float *d = rgb + ((size_t)y * W + x) * 3;
      for (int c = 0; c < 3; c++) d[c] = read_px(in, x, y, C >= 3 ? c : 0);
      if (C == 4 && read_px(in, x, y, 3) < 1.0f) has_alpha = true;
    }
  int tile = p->tile_size > 0 ? (p->tile_size + s - 1) / s : 0;
  int tiles = ldm_sr_tile_count(H, W, tile, 0);
  r.total = tiles * (has_alpha ? 2 : 1);
  r.refine_base = r.total;
  st = ldm_sr_upscale(&ctx, m->sr, out, rgb, H, W, tile, 0, tile_done, &r);
  if (st == LDM_OK && has_alpha) { /* the alpha plane through the net, as RGB */
    alpha = malloc((size_t)(SW * SH) * 3 * sizeof(float));
    if (!alpha) st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory for a %dx%d upscale", W, H);
    for (int y = 0; y < H && st == LDM_OK; y++)
      for (int x = 0; x < W; x++) {
        float a = read_px(in, x, y, 3);
        float *d = rgb + ((size_t)y * W + x) * 3;
        d[0] = d[1] = d[2] = a;
      }
    if (st == LDM_OK) st = ldm_sr_upscale(&ctx, m->sr, alpha, rgb, H, W, tile, 0, tile_done, &r);
  }
  if (st != LDM_OK) goto done;
  for (int64_t i = 0; i < SW * SH * 3; i++) out[i] = clamp01(out[i]);
  if (alpha) {
    ares = malloc((size_t)(OW * OH) * sizeof(float));
    if (!ares) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory for a %dx%d upscale", W, H);
      goto done;
    }
    for (int64_t i = 0; i < SW * SH; i++)
      alpha[i] = clamp01(0.299f * clamp01(alpha[i * 3]) + 0.587f * clamp01(alpha[i * 3 + 1]) +
                         0.114f * clamp01(alpha[i * 3 + 2]));
  }
  if (f != s) { /* the smaller scale: the net's result resized (A1111, Real-ESRGAN --outscale) */
    float *small = malloc((size_t)(OW * OH) * 3 * sizeof(float));
    if (!small) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory for a %dx%d upscale", W, H);
      goto done;
    }
    st = resize_rgb(out, (int)SW, (int)SH, small, (int)OW, (int)OH, err);
    free(out);
    out = small;
    if (st == LDM_OK && alpha) pl_resize(alpha, 1, (int)SW, (int)SH, ares, (int)OW, (int)OH);
  } else if (alpha) {
    memcpy(ares, alpha, (size_t)(OW * OH) * sizeof(float));
  }
  if (st != LDM_OK) goto done;
  ldm_arena_trim(ctx.scratch);
  if (p->refine_model) {
    refined = malloc((size_t)(OW * OH) * 3 * sizeof(float));
    if (!refined) st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory refining %lldx%lld", (long long)OW, (long long)OH);
  }
  for (int b = 0; b < count && st == LDM_OK; b++) {
    const float *res = out;
    if (p->refine_model) {
      memcpy(refined, out, (size_t)(OW * OH) * 3 * sizeof(float));
      r.refine_base = r.step;
      st = refine(&r, refined, (int)OW, (int)OH, p->seed + (uint64_t)b, err);
      res = refined;
    }
    if (st == LDM_OK && !(imgs[b] = to_image(res, ares, (int)OW, (int)OH, C, p->output_type)))
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory for a %lldx%lld image", (long long)OW, (long long)OH);
  }
done:
  ldm_pool_free(ctx.pool);
  ldm_arena_free(ctx.scratch);
  free(rgb);
  free(out);
  free(alpha);
  free(ares);
  free(refined);
  if (st != LDM_OK) {
    for (int i = 0; imgs && i < count; i++) ldm_image_free(imgs[i]);
    free(imgs);
    return st;
  }
  *images = imgs;
  *n_images = count;
  return LDM_OK;
}
