/* Data movement ops: nearest x2 upsample (F.interpolate(scale_factor=2,
 * mode='nearest')), pixel (un)shuffle (torch.nn.PixelShuffle /
 * pixel_unshuffle), channel concat (torch.cat(dim=1) in NCHW terms),
 * element-wise add, and NCHW <-> channels-last layout conversion. */
#include "ops/ops.h"
#include "ops/ops_util.h"

#include <string.h>

typedef struct up_job {
  float *y;
  const float *x;
  int H, W, C;
} up_job;

static void up_task(void *user, int64_t r) { /* r = b * H + iy */
  up_job *j = user;
  const float *src = j->x + r * j->W * (int64_t)j->C;
  int64_t b = r / j->H, iy = r % j->H;
  int64_t W2 = 2 * (int64_t)j->W;
  float *d0 = j->y + ((b * 2 * j->H + 2 * iy) * W2) * j->C;
  float *d1 = d0 + W2 * j->C;
  size_t px = (size_t)j->C * sizeof(float);
  for (int ix = 0; ix < j->W; ix++) {
    memcpy(d0 + (2 * (int64_t)ix) * j->C, src + (int64_t)ix * j->C, px);
    memcpy(d0 + (2 * (int64_t)ix + 1) * j->C, src + (int64_t)ix * j->C, px);
  }
  memcpy(d1, d0, px * (size_t)W2);
}

void ldm_upsample_nearest2x(ldm_ctx *ctx, float *y, const float *x, int B,
                            int H, int W, int C) {
  up_job j = {y, x, H, W, C};
  ldm_pool_for(ctx ? ctx->pool : NULL, (int64_t)B * H, up_task, &j);
}

typedef struct cat_job {
  float *y;
  const float *a, *b;
  int C1, C2;
  int64_t rows, per;
} cat_job;

static void cat_task(void *user, int64_t t) {
  cat_job *j = user;
  int64_t r0 = t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  int64_t C = (int64_t)j->C1 + j->C2;
  for (int64_t r = r0; r < r1; r++) {
    memcpy(j->y + r * C, j->a + r * j->C1, (size_t)j->C1 * sizeof(float));
    memcpy(j->y + r * C + j->C1, j->b + r * j->C2, (size_t)j->C2 * sizeof(float));
  }
}

void ldm_concat_channels(ldm_ctx *ctx, float *y, const float *a, int C1,
                         const float *b, int C2, int B, int64_t HW) {
  int64_t rows = (int64_t)B * HW;
  int64_t per = 16384 / ((int64_t)C1 + C2 > 0 ? (int64_t)C1 + C2 : 1);
  if (per < 1) per = 1;
  cat_job j = {y, a, b, C1, C2, rows, per};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(rows, per), cat_task, &j);
}

typedef struct add_job {
  float *y;
  const float *a, *b;
  int64_t n;
} add_job;

enum { ADD_GRAIN = 32768 };

static void add_task(void *user, int64_t t) {
  add_job *j = user;
  int64_t i0 = t * ADD_GRAIN, i1 = i0 + ADD_GRAIN < j->n ? i0 + ADD_GRAIN : j->n;
  for (int64_t i = i0; i < i1; i++) j->y[i] = j->a[i] + j->b[i];
}

void ldm_add(ldm_ctx *ctx, float *y, const float *a, const float *b, int64_t n) {
  add_job j = {y, a, b, n};
  ldm_pool_for(ctx ? ctx->pool : NULL, ops_tasks(n, ADD_GRAIN), add_task, &j);
}

/* Blocked transpose of one image: src [R, S] -> dst [S, R]. */
static void transpose(float *dst, const float *src, int64_t R, int64_t S) {
  enum { T = 32 };
  for (int64_t r0 = 0; r0 < R; r0 += T)
    for (int64_t s0 = 0; s0 < S; s0 += T) {
      int64_t r1 = r0 + T < R ? r0 + T : R, s1 = s0 + T < S ? s0 + T : S;
      for (int64_t r = r0; r < r1; r++)
        for (int64_t s = s0; s < s1; s++) dst[s * R + r] = src[r * S + s];
    }
}

void ldm_nchw_to_nhwc(float *y, const float *x, int B, int C, int64_t HW) {
  for (int b = 0; b < B; b++)
    transpose(y + (int64_t)b * C * HW, x + (int64_t)b * C * HW, C, HW);
}

void ldm_nhwc_to_nchw(float *y, const float *x, int B, int C, int64_t HW) {
  for (int b = 0; b < B; b++)
    transpose(y + (int64_t)b * C * HW, x + (int64_t)b * C * HW, HW, C);
}

/* torch's channel order: unshuffled channel c * r * r + i * r + j holds
 * input channel c at (h * r + i, w * r + j). */
typedef struct shuf_job {
  float *y;
  const float *x;
  int H, W, C, r; /* the large image's size and the small one's channels / (r*r) */
  bool unshuffle;
} shuf_job;

static void shuf_task(void *user, int64_t hy) { /* one row of the small image */
  const shuf_job *j = user;
  int r = j->r, w = j->W / r, C = j->C, rr = r * r;
  for (int wx = 0; wx < w; wx++) {
    int64_t small = ((int64_t)hy * w + wx) * C * rr;
    for (int i = 0; i < r; i++)
      for (int k = 0; k < r; k++) {
        int64_t big = (((int64_t)hy * r + i) * j->W + (int64_t)wx * r + k) * C;
        for (int c = 0; c < C; c++) {
          int64_t s = small + (int64_t)c * rr + i * r + k;
          if (j->unshuffle) j->y[s] = j->x[big + c];
          else j->y[big + c] = j->x[s];
        }
      }
  }
}

void ldm_pixel_unshuffle(ldm_ctx *ctx, float *y, const float *x, int H, int W, int C, int r) {
  shuf_job j = {y, x, H, W, C, r, true};
  ldm_pool_for(ctx ? ctx->pool : NULL, H / r, shuf_task, &j);
}

void ldm_pixel_shuffle(ldm_ctx *ctx, float *y, const float *x, int h, int w, int C, int r) {
  shuf_job j = {y, x, h * r, w * r, C, r, false};
  ldm_pool_for(ctx ? ctx->pool : NULL, h, shuf_task, &j);
}

int ldm_tile_origins(int n, int t, int ov, int *org, int max) {
  if (n <= t) {
    org[0] = 0;
    return 1;
  }
  /* k tiles with (k - 1) * (t - ov) >= n - t, spread evenly */
  int k = (n - ov + (t - ov) - 1) / (t - ov);
  if (k < 2) k = 2;
  if (k > max) k = max;
  for (int i = 0; i < k; i++) org[i] = (int)((int64_t)i * (n - t) / (k - 1));
  return k;
}
