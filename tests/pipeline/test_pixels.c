/* What the pipelines hand back, through the public API: float output
 * (LDM_PIXEL_F32) against the U8 output of the same job (txt2img, inpaint,
 * upscale), the float composite keeping unmasked input pixels exactly,
 * no_composite against the composited result (inpaint, only masked,
 * outpaint), float init pixels reaching the model unrounded, ldm_image_resize against torch's antialiased bilinear
 * interpolate (golden from tests/reference/make_resize_golden.py), and the
 * live preview showing the picture forming (the denoised estimate) with the
 * demo model. Tolerances are stated at each check. */
#include "ldm_test.h"

#include <stdlib.h>

static int threads(void) { return 2; }

static ldm_model *load(const char *path, ldm_error *err) {
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = path;
  mp.threads = threads();
  ldm_model *m = NULL;
  if (ldm_model_load(&m, &mp, err) != LDM_OK) return NULL;
  return m;
}

static ldm_status run(ldm_model *m, const ldm_job_params *p, ldm_image **out, ldm_error *err) {
  ldm_job *job = NULL;
  *out = NULL;
  ldm_status st = ldm_job_new(&job, m, p, err);
  ldm_image **imgs = NULL;
  int n = 0;
  if (st == LDM_OK) st = ldm_job_run(job, &imgs, &n, err);
  ldm_job_free(job);
  if (st == LDM_OK) {
    *out = imgs[0];
    for (int i = 1; i < n; i++) ldm_image_free(imgs[i]);
  }
  free(imgs);
  return st;
}

static float getf(const ldm_image *img, int x, int y, int c) {
  const char *row = (const char *)img->data + (size_t)y * img->stride;
  if (img->type == LDM_PIXEL_F32) return ((const float *)row)[(size_t)x * img->channels + c];
  return ((const unsigned char *)row)[(size_t)x * img->channels + c] / 255.0f;
}

/* |f32 - u8/255| over all samples; how many f32 values are off the 1/255
 * grid (further than 1e-4 levels from a multiple of 1/255). */
static void compare_types(const ldm_image *f, const ldm_image *u, double *max_d, long *off_grid) {
  *max_d = 0;
  *off_grid = 0;
  for (int y = 0; y < f->height; y++)
    for (int x = 0; x < f->width; x++)
      for (int c = 0; c < 3; c++) {
        double a = getf(f, x, y, c), b = getf(u, x, y, c);
        if (fabs(a - b) > *max_d) *max_d = fabs(a - b);
        double lv = a * 255.0;
        if (fabs(lv - nearbyint(lv)) > 1e-4) (*off_grid)++;
      }
}

/* 1: F32 output equals the U8 output to the rounding (0.5/255 + 1e-6) and
 * is not on the 1/255 grid; txt2img and inpaint. */
static void test_f32_output(ldm_model *m, ldm_model *mi) {
  ldm_error err = {0};
  ldm_job_params p;
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.prompt = "a red circle";
  p.width = 48;
  p.height = 32;
  p.steps = 3;
  p.seed = 11;
  ldm_image *u = NULL, *f = NULL;
  CHECK(run(m, &p, &u, &err) == LDM_OK, "txt2img u8: %s", err.msg);
  p.output_type = LDM_PIXEL_F32;
  CHECK(run(m, &p, &f, &err) == LDM_OK, "txt2img f32: %s", err.msg);
  if (u && f) {
    double d;
    long off;
    compare_types(f, u, &d, &off);
    long n = 3L * f->width * f->height;
    printf("txt2img f32 vs u8: max_abs=%.3g (tol %.3g), %ld of %ld values off the 1/255 grid\n", d,
           0.5 / 255 + 1e-6, off, n);
    CHECK(f->type == LDM_PIXEL_F32 && u->type == LDM_PIXEL_U8 && f->channels == 3, "types %d %d", f->type, u->type);
    CHECK(d <= 0.5 / 255 + 1e-6, "txt2img f32 differs from u8 by %g", d);
    CHECK(off > n / 2, "txt2img f32: only %ld of %ld values off the grid", off, n);
  }
  ldm_image_free(u);
  ldm_image_free(f);

  /* inpaint on a float image with off-grid values, hard mask (blur 0) */
  int W = 40, H = 32;
  ldm_image *init = ldm_image_new(W, H, 4, LDM_PIXEL_F32), *mask = ldm_image_new(W, H, 1, LDM_PIXEL_F32);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      float *px = (float *)((char *)init->data + (size_t)y * init->stride) + 4 * x;
      px[0] = (float)x / (W - 1) * 0.9f + 0.0123f; /* ramps: off the 1/255 grid */
      px[1] = (float)y / (H - 1) * 0.8f + 0.0071f;
      px[2] = 0.3337f;
      px[3] = 1.0f;
      ((float *)((char *)mask->data + (size_t)y * mask->stride))[x] = x >= 8 && x < 24 && y >= 8 && y < 24 ? 1.0f : 0.0f;
    }
  ldm_image_free(u = NULL);
  ldm_job_params_init(&p, LDM_TASK_INPAINT);
  p.prompt = "a green square";
  p.steps = 3;
  p.seed = 5;
  p.init = init;
  p.mask = mask;
  p.mask_blur = 0;
  CHECK(run(mi, &p, &u, &err) == LDM_OK, "inpaint u8: %s", err.msg);
  p.output_type = LDM_PIXEL_F32;
  CHECK(run(mi, &p, &f, &err) == LDM_OK, "inpaint f32: %s", err.msg);
  if (u && f) {
    double d_in = 0, d_out = 0, d_u8 = 0;
    long off_in = 0, n_in = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        bool in = ((float *)((char *)mask->data + (size_t)y * mask->stride))[x] > 0;
        for (int c = 0; c < 3; c++) {
          double a = getf(f, x, y, c), b = getf(u, x, y, c), o = getf(init, x, y, c);
          if (in) {
            d_in = fmax(d_in, fabs(a - b));
            n_in++;
            if (fabs(a * 255 - nearbyint(a * 255)) > 1e-4) off_in++;
          } else {
            d_out = fmax(d_out, fabs(a - o));               /* exactly the input */
            d_u8 = fmax(d_u8, fabs(nearbyint(b * 255) - nearbyint(o * 255))); /* the input rounded */
          }
        }
      }
    printf("inpaint f32: inside the mask vs u8 max_abs=%.3g (tol %.3g), %ld of %ld off the grid; outside vs the "
           "float input max_abs=%g (tol 0); u8 outside vs the rounded input %g levels (tol 0)\n",
           d_in, 0.5 / 255 + 1e-6, off_in, n_in, d_out, d_u8);
    CHECK(d_in <= 0.5 / 255 + 1e-6, "inpaint f32 vs u8 inside the mask: %g", d_in);
    CHECK(off_in > n_in / 2, "inpaint f32: only %ld of %ld masked values off the grid", off_in, n_in);
    CHECK(d_out == 0.0, "inpaint f32 changed unmasked pixels by up to %g", d_out);
    CHECK(d_u8 == 0.0, "inpaint u8 differs from the rounded input outside the mask by %g levels", d_u8);
  }
  ldm_image_free(u);
  ldm_image_free(f);

  /* no_composite: the same picture where the mask is 1, the model's own
   * pixels (not the input) somewhere where it is 0; with only_masked, the
   * input outside the work region */
  for (int om = 0; om < 2; om++) {
    ldm_job_params_init(&p, LDM_TASK_INPAINT);
    p.prompt = "a green square";
    p.steps = 3;
    p.seed = 5;
    p.init = init;
    p.mask = mask;
    p.mask_blur = 0;
    p.output_type = LDM_PIXEL_F32;
    p.only_masked = om;
    p.only_masked_padding = 4;
    p.width = om ? 32 : 0;
    p.height = om ? 32 : 0;
    ldm_image *c = NULL, *nc = NULL;
    CHECK(run(mi, &p, &c, &err) == LDM_OK, "composited: %s", err.msg);
    p.no_composite = true;
    CHECK(run(mi, &p, &nc, &err) == LDM_OK, "no_composite: %s", err.msg);
    if (c && nc) {
      double d_mask = 0, d_zero = 0, d_outside = 0;
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
          bool in = ((float *)((char *)mask->data + (size_t)y * mask->stride))[x] > 0;
          /* only masked: bbox 8..24 + padding 4 -> 4..28 on both axes */
          bool region = !om || (x >= 4 && x < 28 && y >= 4 && y < 28);
          for (int k = 0; k < 3; k++) {
            double a = getf(c, x, y, k), b = getf(nc, x, y, k), o = getf(init, x, y, k);
            if (in) d_mask = fmax(d_mask, fabs(a - b));
            else if (region) d_zero = fmax(d_zero, fabs(b - o));
            else d_outside = fmax(d_outside, fabs(b - o));
          }
        }
      printf("no_composite%s: vs composited where mask = 1 max_abs=%g (tol 0); vs the input where mask = 0 "
             "max_abs=%.3g (must be > 0.01)%s\n", om ? " (only masked)" : "", d_mask, d_zero,
             om ? "; outside the work region vs the input max_abs=0 expected" : "");
      CHECK(nc->width == W && nc->height == H && nc->type == LDM_PIXEL_F32, "no_composite image %dx%d type %d",
            nc->width, nc->height, nc->type);
      CHECK(d_mask == 0.0, "no_composite differs from the composite inside the mask by %g", d_mask);
      CHECK(d_zero > 0.01, "no_composite equals the input outside the mask (%g): not the generated image", d_zero);
      if (om) CHECK(d_outside == 0.0, "no_composite changed pixels outside the work region by %g", d_outside);
    }
    ldm_image_free(c);
    ldm_image_free(nc);
  }

  /* outpaint in float: the composite keeps the input's area exactly, the
   * uncomposited canvas is the model's picture there */
  ldm_job_params_init(&p, LDM_TASK_OUTPAINT);
  p.prompt = "sky";
  p.steps = 3;
  p.seed = 6;
  p.init = init;
  p.outpaint_left = 8;
  p.outpaint_bottom = 16;
  p.mask_blur = 0; /* mask exactly 1 on the new area */
  p.output_type = LDM_PIXEL_F32;
  ldm_image *oc = NULL, *on = NULL;
  CHECK(run(mi, &p, &oc, &err) == LDM_OK, "outpaint: %s", err.msg);
  p.no_composite = true;
  CHECK(run(mi, &p, &on, &err) == LDM_OK, "outpaint no_composite: %s", err.msg);
  if (oc && on) {
    double d_keep = 0, d_model = 0, d_new = 0;
    for (int y = 0; y < H + 16; y++)
      for (int x = 0; x < W + 8; x++)
        for (int c = 0; c < 3; c++) {
          double a = getf(oc, x, y, c), b = getf(on, x, y, c);
          if (x >= 8 && y < H) {
            d_keep = fmax(d_keep, fabs(a - getf(init, x - 8, y, c)));
            d_model = fmax(d_model, fabs(b - getf(init, x - 8, y, c)));
          } else {
            d_new = fmax(d_new, fabs(a - b));
          }
        }
    printf("outpaint f32 %dx%d: composite vs the input in its area max_abs=%g (tol 0); no_composite there "
           "max_abs=%.3g (> 0); the two in the new area max_abs=%g (tol 0: mask 1 there)\n", on->width, on->height,
           d_keep, d_model, d_new);
    CHECK(on->width == W + 8 && on->height == H + 16 && d_keep == 0.0 && d_model > 0.0 && d_new == 0.0,
          "outpaint: %dx%d keep %g model %g new %g", on->width, on->height, d_keep, d_model, d_new);
  }
  ldm_image_free(oc);
  ldm_image_free(on);

  /* F32 init pixels reach the model unrounded: an init that differs from
   * its U8 rounding by under half a level gives another img2img result */
  ldm_image *q = ldm_image_new(W, H, 4, LDM_PIXEL_F32);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < 4 * W; x++) {
      float v = ((float *)((char *)init->data + (size_t)y * init->stride))[x];
      ((float *)((char *)q->data + (size_t)y * q->stride))[x] = nearbyintf(v * 255.0f) / 255.0f;
    }
  ldm_job_params_init(&p, LDM_TASK_IMG2IMG);
  p.prompt = "x";
  p.steps = 3;
  p.seed = 4;
  p.sampler = "ddim"; /* deterministic: a difference comes from the input */
  p.output_type = LDM_PIXEL_F32;
  p.init = init;
  ldm_image *a = NULL, *b = NULL;
  CHECK(run(m, &p, &a, &err) == LDM_OK, "img2img f32 init: %s", err.msg);
  p.init = q;
  CHECK(run(m, &p, &b, &err) == LDM_OK, "img2img rounded init: %s", err.msg);
  if (a && b) {
    double d = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < 3; c++) d = fmax(d, fabs(getf(a, x, y, c) - getf(b, x, y, c)));
    printf("img2img: float init vs the same rounded to 1/255: outputs differ by max_abs=%.3g (must be > 0)\n", d);
    CHECK(d > 0.0, "img2img ignores sub-level differences of a float init: quantised to 8 bits inside");
  }
  ldm_image_free(a);
  ldm_image_free(b);
  ldm_image_free(q);
  ldm_image_free(init);
  ldm_image_free(mask);
}

/* The x4 upscaler's F32 output equals its U8 output to the rounding. */
static void test_f32_upscale(ldm_model *m) {
  ldm_image *lr = ldm_image_new(12, 8, 3, LDM_PIXEL_U8);
  for (int y = 0; y < 8; y++)
    for (int x = 0; x < 36; x++) ((unsigned char *)lr->data)[(size_t)y * lr->stride + x] = (unsigned char)(7 * x + 31 * y);
  ldm_job_params p;
  ldm_job_params_init(&p, LDM_TASK_UPSCALE);
  p.prompt = "x";
  p.steps = 2;
  p.seed = 1;
  p.init = lr;
  ldm_image *u = NULL, *f = NULL;
  ldm_error err = {0};
  CHECK(run(m, &p, &u, &err) == LDM_OK, "upscale u8: %s", err.msg);
  p.output_type = LDM_PIXEL_F32;
  CHECK(run(m, &p, &f, &err) == LDM_OK, "upscale f32: %s", err.msg);
  if (u && f) {
    double d;
    long off;
    compare_types(f, u, &d, &off);
    printf("upscale %dx%d f32 vs u8: max_abs=%.3g (tol %.3g), %ld of %d values off the 1/255 grid\n", f->width,
           f->height, d, 0.5 / 255 + 1e-6, off, 3 * f->width * f->height);
    CHECK(f->width == 48 && f->height == 32 && d <= 0.5 / 255 + 1e-6 && off > 0, "upscale f32: %dx%d, %g, %ld",
          f->width, f->height, d, off);
  }
  ldm_image_free(u);
  ldm_image_free(f);
  ldm_image_free(lr);
}

/* 2: ldm_image_resize against torch.nn.functional.interpolate(bilinear,
 * antialias=True, align_corners=False) on float data (golden), tol 2e-6;
 * U8 within 1 level of the reference rounded (PIL-style rounding of the
 * same filter); 1, 3 and 4 channels; bad arguments. */
static void test_resize(void) {
  ldm_st_file *g = ldm_test_open_golden("pipeline/resize.safetensors");
  ldm_tensor ts;
  float *src = ldm_test_tensor_f32(g, "src", &ts); /* [H, W, 4] in 0..1 */
  int H = (int)ts.shape[0], W = (int)ts.shape[1];
  const char *names[] = {"up_64x48", "down_13x11", "mixed_23x57", "same_37x29"};
  for (int k = 0; k < 4; k++) {
    ldm_tensor tr;
    float *ref = ldm_test_tensor_f32(g, names[k], &tr); /* [h, w, 4] */
    int h = (int)tr.shape[0], w = (int)tr.shape[1];
    for (int C = 1; C <= 4; C++) {
      if (C == 2) continue;
      ldm_image *in = ldm_image_new(W, H, C, LDM_PIXEL_F32), *in8 = ldm_image_new(W, H, C, LDM_PIXEL_U8);
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
          for (int c = 0; c < C; c++) {
            float v = src[((size_t)y * W + x) * 4 + c];
            ((float *)((char *)in->data + (size_t)y * in->stride))[x * C + c] = v;
            ((unsigned char *)in8->data + (size_t)y * in8->stride)[x * C + c] = (unsigned char)nearbyintf(v * 255);
          }
      ldm_image *out = NULL, *out8 = NULL;
      ldm_error err = {0};
      CHECK(ldm_image_resize(in, w, h, &out, &err) == LDM_OK, "resize: %s", err.msg);
      CHECK(ldm_image_resize(in8, w, h, &out8, &err) == LDM_OK, "resize u8: %s", err.msg);
      if (out && out8) {
        float *got = malloc((size_t)w * h * C * sizeof(float)), *want = malloc((size_t)w * h * C * sizeof(float));
        int max8 = 0;
        for (int y = 0; y < h; y++)
          for (int x = 0; x < w; x++)
            for (int c = 0; c < C; c++) {
              size_t i = ((size_t)y * w + x) * C + c;
              got[i] = ((float *)((char *)out->data + (size_t)y * out->stride))[x * C + c];
              want[i] = ref[((size_t)y * w + x) * 4 + c];
              int g8 = ((unsigned char *)out8->data + (size_t)y * out8->stride)[x * C + c];
              /* the u8 reference: the same filter on the u8 input, in float, rounded */
              int d = abs(g8 - (int)nearbyintf(ref[((size_t)y * w + x) * 4 + c] * 255));
              if (d > max8) max8 = d;
            }
        char name[96];
        snprintf(name, sizeof name, "resize %dx%d -> %s, %d channel(s), f32 vs torch", W, H, names[k], C);
        ldm_test_close(name, got, want, (long long)w * h * C, 2e-6, 0);
        /* u8 input is the float input rounded (0.5/255), so the filter's
         * result moves by at most 0.5 level, then rounds: 1 level */
        printf("resize %s, %d channel(s), u8: max %d level(s) from the float reference rounded (tol 1)\n", names[k],
               C, max8);
        CHECK(max8 <= 1, "u8 resize %s: %d levels off", names[k], max8);
        CHECK(out->channels == C && out->type == LDM_PIXEL_F32 && out8->type == LDM_PIXEL_U8, "resize types");
        free(got);
        free(want);
      }
      ldm_image_free(out);
      ldm_image_free(out8);
      ldm_image_free(in);
      ldm_image_free(in8);
    }
    free(ref);
  }
  free(src);
  ldm_st_close(g);
  ldm_image img = {.width = 4, .height = 4, .channels = 2, .type = LDM_PIXEL_U8, .stride = 8, .data = (void *)"x"};
  ldm_image *out = NULL;
  ldm_error err = {0};
  CHECK(ldm_image_resize(&img, 2, 2, &out, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "2 channels") && !out,
        "2 channels: %s", err.msg);
  img.channels = 3;
  img.stride = 12;
  CHECK(ldm_image_resize(&img, 0, 2, &out, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "0x2"), "size 0: %s",
        err.msg);
  img.stride = 4;
  CHECK(ldm_image_resize(&img, 2, 2, &out, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "stride"), "stride: %s",
        err.msg);
  CHECK(ldm_image_resize(NULL, 2, 2, &out, &err) == LDM_ERR_INVALID_ARG, "NULL source");
  printf("resize errors: %s\n", err.msg);
}

/* 3: the preview shows the picture forming. High-frequency energy (mean
 * squared 4-neighbour Laplacian of the RGB preview, 0..1 units) of the
 * previews after steps 1, 10 and 20 of 20 with the demo models (euler_a,
 * the model's recommended guidance). A preview of the noisy latent (what
 * the previews were before) is mostly noise half-way: 26.6x the final
 * preview's energy with the txt2img model, 13.0x with the upscaler (whose
 * previews were missing altogether). The denoised estimate is a picture from
 * the first steps on: half-way its energy must be at most twice the final
 * preview's (measured 0.77x and 1.04x). The first step's energy is printed
 * too; with the denoised estimate that preview is no longer noise, so it is
 * no yardstick. */
typedef struct prev_log {
  int n;
  double hf[64];
  unsigned char half[32 * 32 * 3], last[32 * 32 * 3];
  int w, h, total;
} prev_log;

static double laplacian_energy(const ldm_image *p) {
  double s = 0;
  long n = 0;
  for (int y = 1; y + 1 < p->height; y++)
    for (int x = 1; x + 1 < p->width; x++)
      for (int c = 0; c < 3; c++) {
        double l = 4 * getf(p, x, y, c) - getf(p, x - 1, y, c) - getf(p, x + 1, y, c) - getf(p, x, y - 1, c) -
                   getf(p, x, y + 1, c);
        s += l * l;
        n++;
      }
  return n ? s / n : 0;
}

static int on_step(void *user, int step, int total, double elapsed, const ldm_image *preview) {
  prev_log *l = user;
  (void)elapsed;
  if (!preview || step < 1 || step > 64 || preview->width * preview->height * 3 > (int)sizeof l->half) return 0;
  l->n++;
  l->total = total;
  l->w = preview->width;
  l->h = preview->height;
  l->hf[step - 1] = laplacian_energy(preview);
  for (int y = 0; y < preview->height; y++) {
    const unsigned char *row = (const unsigned char *)preview->data + (size_t)y * preview->stride;
    size_t o = (size_t)y * preview->width * 3;
    if (step == total / 2) memcpy(l->half + o, row, (size_t)preview->width * 3);
    if (step == total) memcpy(l->last + o, row, (size_t)preview->width * 3);
  }
  return 0;
}

static void test_preview_forms(const char *demo, ldm_task task, const char *label) {
  ldm_error err = {0};
  ldm_model *m = load(demo, &err);
  CHECK(m != NULL, "demo model %s: %s", demo, err.msg);
  if (!m) return;
  ldm_model_info info;
  ldm_model_get_info(m, &info);
  ldm_job_params p;
  ldm_job_params_init(&p, task);
  p.prompt = task == LDM_TASK_UPSCALE ? "a red circle on a white background" : "a big red circle on a blue background";
  p.steps = 20;
  if (info.rec_cfg > 0) p.cfg_scale = info.rec_cfg;
  p.sampler = "euler_a";
  p.seed = 3;
  p.want_preview = true;
  p.progress = on_step;
  prev_log log = {0};
  p.progress_user = &log;
  ldm_image *lr = NULL;
  if (task == LDM_TASK_UPSCALE) { /* a 16x16 scene: red disc on white */
    lr = ldm_image_new(16, 16, 3, LDM_PIXEL_U8);
    for (int y = 0; y < 16; y++)
      for (int x = 0; x < 16; x++) {
        unsigned char *px = (unsigned char *)lr->data + (size_t)y * lr->stride + 3 * x;
        bool disc = (x - 8) * (x - 8) + (y - 8) * (y - 8) < 25;
        px[0] = 255;
        px[1] = px[2] = disc ? 0 : 255;
      }
    p.init = lr;
    p.noise_level = 20;
  } else {
    p.width = p.height = 256; /* a 32x32 latent: a 32x32 preview */
  }
  ldm_image *out = NULL;
  CHECK(run(m, &p, &out, &err) == LDM_OK, "%s preview job: %s", label, err.msg);
  CHECK(log.n == 20 && log.total == 20, "%s: %d previews of %d steps, expected 20", label, log.n, log.total);
  if (log.n == 20) {
    double first = log.hf[0], half = log.hf[9], last = log.hf[19];
    double d_half = 0;
    size_t bytes = (size_t)log.w * log.h * 3;
    for (size_t i = 0; i < bytes; i++) d_half += abs((int)log.half[i] - (int)log.last[i]);
    d_half /= (double)bytes;
    printf("%s preview %dx%d: Laplacian energy step 1 %.5f, step 10 %.5f, step 20 %.5f: step 10 / step 20 = %.2f "
           "(tol 2); mean |step 10 - step 20| %.1f levels\n", label, log.w, log.h, first, half, last,
           half / last, d_half);
    CHECK(half <= 2.0 * last, "%s: the half-way preview is noise (energy %.5f, the final preview's %.5f)", label,
          half, last);
  }
  ldm_image_free(out);
  ldm_image_free(lr);
  ldm_model_free(m);
}

int main(void) {
  char sd1[4096], inp[4096], demo[4096], demo_x4[4096];
  const char *root = getenv("LDM_SOURCE_ROOT");
  ldm_test_golden("pipeline/sd1.safetensors", sd1, sizeof sd1);
  ldm_test_golden("pipeline/sd1_inpaint.safetensors", inp, sizeof inp);
  snprintf(demo, sizeof demo, "%s/models/demo/ldm-demo.safetensors", root ? root : ".");
  snprintf(demo_x4, sizeof demo_x4, "%s/models/demo/ldm-demo-x4.safetensors", root ? root : ".");
  ldm_error err = {0};
  ldm_model *m = load(sd1, &err), *mi = m ? load(inp, &err) : NULL;
  CHECK(m && mi, "golden pipelines: %s", err.msg);
  if (m && mi) test_f32_output(m, mi);
  ldm_model_free(m);
  ldm_model_free(mi);
  char x4[4096];
  ldm_model *mx = load(ldm_test_golden("pipeline/x4.safetensors", x4, sizeof x4), &err);
  CHECK(mx != NULL, "x4: %s", err.msg);
  if (mx) test_f32_upscale(mx);
  ldm_model_free(mx);
  test_resize();
  test_preview_forms(demo, LDM_TASK_TXT2IMG, "demo txt2img");
  test_preview_forms(demo_x4, LDM_TASK_UPSCALE, "demo x4 upscale");
  return ldm_test_finish("pipeline-pixels");
}
