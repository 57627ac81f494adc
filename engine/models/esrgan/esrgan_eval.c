/* `ldm eval esrgan`: an RRDBNet or SRVGGNetCompact file on the tensor
 * `image` [B, 3, H, W] (RGB 0..1, NCHW as in PyTorch) -> `image`
 * [B, 3, H*s, W*s], unclamped as the torch module returns it. Options:
 * tile=N,overlap=N (tiled with cross-faded overlaps, input pixels; without
 * them an image up to LDM_SR_WHOLE_PX runs in one piece), repeat=N (N more
 * runs, their seconds written as the metadata forward_seconds). */
#include "models/esrgan/esrgan.h"
#include "core/arena.h"
#include "core/status.h"
#include "core/wcache.h"
#include "io/safetensors.h"
#include "io/source.h"
#include "ops/ops.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

ldm_status ldm_eval_esrgan(const ldm_eval_params *p, int threads, ldm_error *err) {
  ldm_source *src = NULL;
  ldm_st_file *in = NULL;
  ldm_sr *sr = NULL;
  float *x = NULL, *xl = NULL, *yl = NULL, *y = NULL;
  ldm_ctx ctx = {.threads = threads, .err = err};
  ldm_status st = ldm_eval_check_options(p, "precision, tile, overlap, repeat", err);
  if (st == LDM_OK) st = ldm_eval_precision(p, &ctx.precision, err);
  if (st == LDM_OK) st = ldm_source_open(&src, p->model_path, err);
  if (st == LDM_OK) st = ldm_sr_load(&sr, src, err);
  if (st == LDM_OK) st = ldm_st_open(&in, p->in_path, err);
  const ldm_tensor *t = NULL;
  if (st == LDM_OK) st = ldm_st_require(in, "image", &t, err);
  if (st == LDM_OK && (t->ndim != 4 || t->shape[1] != 3 || t->shape[0] < 1 || t->shape[2] < 1 || t->shape[3] < 1 ||
                       t->shape[2] > 16384 || t->shape[3] > 16384 || t->shape[0] > 64))
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: 'image' must be [B, 3, H, W] (B <= 64, H, W <= 16384)", p->in_path);
  ctx.pool = ldm_pool_new(threads);
  ctx.scratch = ldm_arena_new(0);
  ctx.wcache = ldm_wcache_new(SIZE_MAX);
  if (st == LDM_OK && (!ctx.pool || !ctx.scratch || !ctx.wcache))
    st = ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory");
  if (st == LDM_OK) {
    int B = (int)t->shape[0], H = (int)t->shape[2], W = (int)t->shape[3], s = ldm_sr_get_config(sr)->scale;
    int64_t hw = (int64_t)H * W, HW = hw * s * s;
    int tile = 0, overlap = 0, repeat = 0;
    st = ldm_eval_int_option(p, "tile", 0, 65536, 0, &tile, err);
    if (st == LDM_OK) st = ldm_eval_int_option(p, "overlap", 0, 4096, 0, &overlap, err);
    if (st == LDM_OK) st = ldm_eval_int_option(p, "repeat", 0, 100, 0, &repeat, err);
    x = malloc((size_t)(B * 3 * hw) * sizeof(float));
    xl = malloc((size_t)(3 * hw) * sizeof(float));
    yl = malloc((size_t)(3 * HW) * sizeof(float));
    y = malloc((size_t)(B * 3 * HW) * sizeof(float));
    if (!x || !xl || !yl || !y) st = ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory for a %dx%d image", W, H);
    if (st == LDM_OK) st = ldm_tensor_read_f32(t, 0, B * 3 * hw, x, err);
    char secs[4096] = "";
    for (int r = 0; r <= repeat && st == LDM_OK; r++) {
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      for (int b = 0; b < B && st == LDM_OK; b++) {
        ldm_nchw_to_nhwc(xl, x + (int64_t)b * 3 * hw, 1, 3, hw);
        st = ldm_sr_upscale(&ctx, sr, yl, xl, H, W, tile, overlap, NULL, NULL);
        if (st == LDM_OK) ldm_nhwc_to_nchw(y + (int64_t)b * 3 * HW, yl, 1, 3, HW);
      }
      clock_gettime(CLOCK_MONOTONIC, &t1);
      if (r > 0) {
        size_t l = strlen(secs);
        snprintf(secs + l, sizeof secs - l, "%s%.3f", l ? "," : "",
                 (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
      }
    }
    if (st == LDM_OK) {
      ldm_tensor o = {.dtype = LDM_DTYPE_F32, .ndim = 4, .shape = {B, 3, (int64_t)H * s, (int64_t)W * s}, .data = y,
                      .name = "image"};
      const char *meta[] = {"forward_seconds", secs, NULL};
      st = ldm_st_write(p->out_path, &o, 1, repeat > 0 ? meta : NULL, err);
    }
  }
  ldm_wcache_free(ctx.wcache);
  ldm_pool_free(ctx.pool);
  ldm_arena_free(ctx.scratch);
  ldm_st_close(in);
  ldm_sr_free(sr);
  ldm_source_close(src);
  free(x);
  free(xl);
  free(yl);
  free(y);
  return st;
}
