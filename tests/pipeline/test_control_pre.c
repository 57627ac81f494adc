/* The ControlNet control-image preprocessors and resize against the
 * references (tests/reference/make_control_pre.py):
 *  - canny vs OpenCV 4.10 cv2.Canny on cv2.cvtColor(RGB2GRAY), three test
 *    images x five threshold pairs: agreement = edge pixels both mark /
 *    edge pixels either marks, tolerance >= 99.5 % (the bound; the
 *    implementation aims at 100 %);
 *  - scribble vs ControlNet's threshold (np.min(img, 2) < 127) and
 *    cv2.dilate: exact;
 *  - resize vs diffusers' control_image_processor (PIL LANCZOS): U8 exact
 *    (max abs 0 on the 0..255 scale); F32 vs PIL mode "F": max abs <= 1e-6;
 *  - invert, alpha and F32 rules, and bad parameters (one clear error each). */
#include "ldm_test.h"

/* A U8 golden tensor [H, W(, C)] as an ldm_image (RGB or grey). */
static ldm_image *golden_u8(ldm_st_file *f, const char *name) {
  const ldm_tensor *t = ldm_st_find(f, name);
  if (!t || t->dtype != LDM_DTYPE_U8) {
    fprintf(stderr, "FAIL: golden has no u8 tensor '%s'\n", name);
    exit(1);
  }
  int C = t->ndim == 3 ? (int)t->shape[2] : 1;
  ldm_image *img = ldm_image_new((int)t->shape[1], (int)t->shape[0], C, LDM_PIXEL_U8);
  if (!img) exit(1);
  memcpy(img->data, t->data, (size_t)img->width * img->height * C);
  return img;
}

static ldm_image *to_f32(const ldm_image *u) {
  ldm_image *f = ldm_image_new(u->width, u->height, u->channels, LDM_PIXEL_F32);
  if (!f) exit(1);
  size_t n = (size_t)u->width * u->height * u->channels;
  for (size_t i = 0; i < n; i++) ((float *)f->data)[i] = ((const unsigned char *)u->data)[i] / 255.0f;
  return f;
}

/* Value of channel 0 of out at pixel i, on 0..255. */
static float v255(const ldm_image *img, size_t i, int c) {
  if (img->type == LDM_PIXEL_F32) return ((const float *)img->data)[i * img->channels + c] * 255.0f;
  return ((const unsigned char *)img->data)[i * img->channels + c];
}

static ldm_image *run(const ldm_image *src, ldm_preprocess kind, float lo, float hi, int dilate) {
  ldm_preprocess_params p;
  ldm_preprocess_params_init(&p);
  p.kind = kind;
  p.canny_low = lo;
  p.canny_high = hi;
  p.scribble_dilate = dilate;
  ldm_image *out = NULL;
  ldm_error err = {0};
  ldm_status st = ldm_control_preprocess(src, &p, &out, &err);
  CHECK(st == LDM_OK && out, "%s: %s", ldm_preprocess_name(kind), err.msg);
  if (out) CHECK(out->channels == 3 && out->width == src->width && out->height == src->height &&
                     out->type == src->type,
                 "%s: output %dx%dx%d", ldm_preprocess_name(kind), out->width, out->height, out->channels);
  return out;
}

static void expect_error(const char *what, ldm_preprocess kind, float lo, float hi, float thr, int dilate,
                         const char *needle) {
  ldm_image *img = ldm_image_new(8, 8, 3, LDM_PIXEL_U8), *out = NULL;
  ldm_preprocess_params p;
  ldm_preprocess_params_init(&p);
  p.kind = kind;
  p.canny_low = lo;
  p.canny_high = hi;
  p.scribble_threshold = thr;
  p.scribble_dilate = dilate;
  ldm_error err = {0};
  ldm_status st = ldm_control_preprocess(img, &p, &out, &err);
  printf("bad %s: %s\n", what, err.msg);
  CHECK(st == LDM_ERR_INVALID_ARG && !out && strstr(err.msg, needle), "%s: status %d, message '%s'", what, st,
        err.msg);
  ldm_image_free(img);
}

int main(void) {
  ldm_st_file *gf = ldm_test_open_golden("pipeline/control_pre.safetensors");
  ldm_tensor ts;
  float *thr = ldm_test_tensor_f32(gf, "canny.thresholds", &ts);
  const char *names[] = {"shapes", "field", "zone"};
  for (int k = 0; k < 3; k++) {
    char n[96];
    snprintf(n, sizeof n, "canny.%s.image", names[k]);
    ldm_image *img = golden_u8(gf, n), *imgf = to_f32(img);
    for (int t = 0; t < (int)ts.shape[0]; t++) {
      float lo = thr[2 * t], hi = thr[2 * t + 1];
      snprintf(n, sizeof n, "canny.%s.edges%d", names[k], t);
      ldm_image *ref = golden_u8(gf, n), *out = run(img, LDM_PREPROCESS_CANNY, lo, hi, 0);
      if (!out) continue;
      size_t N = (size_t)img->width * img->height;
      long both = 0, either = 0, ours = 0, theirs = 0, grey = 0;
      for (size_t i = 0; i < N; i++) {
        int a = v255(out, i, 0) > 0, b = ((const unsigned char *)ref->data)[i] > 0;
        ours += a, theirs += b, both += a && b, either += a || b;
        grey += v255(out, i, 0) != v255(out, i, 1) || v255(out, i, 0) != v255(out, i, 2) ||
                (v255(out, i, 0) != 0 && v255(out, i, 0) != 255);
      }
      double agree = either ? 100.0 * both / either : 100.0;
      printf("canny %s %dx%d low %g high %g: edge pixels ours %ld opencv %ld, agreement %.2f%% (tol >= 99.5%%)\n",
             names[k], img->width, img->height, lo, hi, ours, theirs, agree);
      CHECK(agree >= 99.5, "canny %s %g,%g: agreement %.2f%%", names[k], lo, hi, agree);
      CHECK(grey == 0, "canny output not black/white RGB at %ld pixels", grey);
      /* F32 input (values k/255) gives the same edges, as 0.0 / 1.0 */
      ldm_image *outf = run(imgf, LDM_PREPROCESS_CANNY, lo, hi, 0);
      long diff = 0;
      for (size_t i = 0; outf && i < N * 3; i++) diff += v255(outf, i / 3, (int)(i % 3)) != v255(out, i / 3, (int)(i % 3));
      CHECK(outf && diff == 0, "canny on F32 input differs from U8 at %ld values", diff);
      ldm_image_free(outf), ldm_image_free(out), ldm_image_free(ref);
    }
    ldm_image_free(img), ldm_image_free(imgf);
  }
  free(thr);

  /* scribble: threshold 127 and dilation 0, 1, 3 against the numpy/OpenCV rule */
  ldm_image *sk = golden_u8(gf, "scribble.image"), *skf = to_f32(sk);
  for (int r = 0; r <= 3; r += r ? 2 : 1) {
    char n[64];
    snprintf(n, sizeof n, "scribble.dilate%d", r);
    ldm_image *ref = golden_u8(gf, n);
    for (int f = 0; f < 2; f++) {
      ldm_image *out = run(f ? skf : sk, LDM_PREPROCESS_SCRIBBLE, 0, 0, r);
      if (!out) continue;
      size_t N = (size_t)sk->width * sk->height;
      float *got = malloc(N * 3 * sizeof(float)), *want = malloc(N * 3 * sizeof(float));
      if (!got || !want) return 1;
      long lines = 0;
      for (size_t i = 0; i < N * 3; i++) {
        got[i] = v255(out, i / 3, (int)(i % 3));
        want[i] = ((const unsigned char *)ref->data)[i / 3];
        lines += want[i] > 0;
      }
      snprintf(n, sizeof n, "scribble dilate %d (%s input, %ld line values)", r, f ? "F32" : "U8", lines);
      ldm_test_close(n, got, want, (long long)N * 3, 0.0, 0.0);
      free(got), free(want), ldm_image_free(out);
    }
    ldm_image_free(ref);
  }
  ldm_image_free(sk), ldm_image_free(skf);

  /* invert and none: U8 exact, F32 exact, alpha over white (invert) / black (none) */
  {
    ldm_image *a = ldm_image_new(4, 1, 4, LDM_PIXEL_U8);
    const unsigned char px[16] = {0, 0, 0, 255, 255, 255, 255, 255, 10, 200, 77, 255, 0, 0, 0, 0};
    memcpy(a->data, px, 16);
    ldm_image *inv = run(a, LDM_PREPROCESS_INVERT, 0, 0, 0), *none = run(a, LDM_PREPROCESS_NONE, 0, 0, 0);
    const float want_inv[12] = {255, 255, 255, 0, 0, 0, 245, 55, 178, 0, 0, 0};
    const float want_none[12] = {0, 0, 0, 255, 255, 255, 10, 200, 77, 0, 0, 0};
    float gi[12], gn[12];
    for (int i = 0; i < 12; i++) gi[i] = v255(inv, (size_t)i / 3, i % 3), gn[i] = v255(none, (size_t)i / 3, i % 3);
    ldm_test_close("invert U8 (last pixel transparent: paper, white -> black)", gi, want_inv, 12, 0.0, 0.0);
    ldm_test_close("none U8 (last pixel transparent: black)", gn, want_none, 12, 0.0, 0.0);
    ldm_image *af = to_f32(a);
    ((float *)af->data)[8] = 0.123456f; /* not on the 1/255 grid */
    ldm_image *invf = run(af, LDM_PREPROCESS_INVERT, 0, 0, 0);
    float g = ((const float *)invf->data)[6], w = 1.0f - 0.123456f;
    ldm_test_close("invert F32 (unrounded)", &g, &w, 1, 1e-7, 0.0);
    /* half-transparent black over white paper is mid grey; inverted the same */
    ldm_image *h = ldm_image_new(1, 1, 4, LDM_PIXEL_F32);
    ((float *)h->data)[3] = 0.5f;
    ldm_image *hi = run(h, LDM_PREPROCESS_INVERT, 0, 0, 0);
    float gh = ((const float *)hi->data)[0], wh = 0.5f;
    ldm_test_close("invert F32 half-transparent black", &gh, &wh, 1, 1e-7, 0.0);
    ldm_image_free(a), ldm_image_free(inv), ldm_image_free(none), ldm_image_free(af), ldm_image_free(invf);
    ldm_image_free(h), ldm_image_free(hi);
  }

  /* resize: U8 exact against PIL through diffusers' processor */
  {
    ldm_image *src = golden_u8(gf, "canny.shapes.image");
    for (int i = 0; i < 4; i++) {
      char n[128];
      snprintf(n, sizeof n, "resize%d.out", i);
      ldm_image *ref = golden_u8(gf, n), *out = NULL;
      ldm_error err = {0};
      ldm_status st = ldm_control_resize(src, ref->width, ref->height, &out, &err);
      CHECK(st == LDM_OK && out && out->type == LDM_PIXEL_F32 && out->channels == 3, "resize: %s", err.msg);
      if (!out) continue;
      size_t N = (size_t)ref->width * ref->height * 3;
      float *got = malloc(N * sizeof(float)), *want = malloc(N * sizeof(float));
      if (!got || !want) return 1;
      for (size_t k = 0; k < N; k++) {
        got[k] = ((const float *)out->data)[k] * 255.0f;
        want[k] = ((const unsigned char *)ref->data)[k];
      }
      snprintf(n, sizeof n, "control resize %dx%d -> %dx%d vs diffusers/PIL LANCZOS (0..255)", src->width,
               src->height, ref->width, ref->height);
      ldm_test_close(n, got, want, (long long)N, 1e-3, 0.0);
      free(got), free(want), ldm_image_free(out), ldm_image_free(ref);
    }
    ldm_image_free(src);
    ldm_image *fu = golden_u8(gf, "canny.field.image"), *ff = to_f32(fu), *out = NULL;
    ldm_tensor rs;
    float *want = ldm_test_tensor_f32(gf, "resizef.out", &rs);
    ldm_error err = {0};
    ldm_status st = ldm_control_resize(ff, (int)rs.shape[1], (int)rs.shape[0], &out, &err);
    CHECK(st == LDM_OK && out, "resize F32: %s", err.msg);
    if (out)
      ldm_test_close("control resize F32 160x128 -> 72x40 vs PIL mode F LANCZOS", out->data, want,
                     (long long)rs.shape[0] * rs.shape[1] * 3, 1e-6, 0.0);
    free(want), ldm_image_free(out), ldm_image_free(fu), ldm_image_free(ff);
  }

  /* bad parameters: one clear error each, no image */
  expect_error("canny low > high", LDM_PREPROCESS_CANNY, 200, 100, 127, 0, "low threshold 200 is above");
  expect_error("canny negative low", LDM_PREPROCESS_CANNY, -1, 100, 127, 0, "low threshold -1");
  expect_error("canny NaN high", LDM_PREPROCESS_CANNY, 10, NAN, 127, 0, "high threshold nan");
  expect_error("canny high too large", LDM_PREPROCESS_CANNY, 10, 5000, 127, 0, "at most 2040");
  expect_error("scribble negative threshold", LDM_PREPROCESS_SCRIBBLE, 0, 0, -3, 0, "threshold -3");
  expect_error("scribble dilation", LDM_PREPROCESS_SCRIBBLE, 0, 0, 127, 65, "dilation 65");
  expect_error("scribble negative dilation", LDM_PREPROCESS_SCRIBBLE, 0, 0, 127, -1, "dilation -1");
  expect_error("inpaint kind", LDM_PREPROCESS_INPAINT, 0, 0, 127, 0, "is the job's");
  expect_error("unknown kind", (ldm_preprocess)9, 0, 0, 127, 0, "unknown preprocessor 9");
  {
    ldm_image empty = {0}, *out = NULL;
    ldm_preprocess_params p;
    ldm_preprocess_params_init(&p);
    ldm_error err = {0};
    CHECK(ldm_control_preprocess(&empty, &p, &out, &err) == LDM_ERR_INVALID_ARG && !out, "empty image accepted");
    printf("bad empty image: %s\n", err.msg);
    CHECK(ldm_control_resize(&empty, 64, 64, &out, &err) == LDM_ERR_INVALID_ARG && !out, "empty resize accepted");
    ldm_image *img = ldm_image_new(8, 8, 3, LDM_PIXEL_U8);
    CHECK(ldm_control_resize(img, 0, 64, &out, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "0x64"),
          "resize to 0x64: %s", err.msg);
    printf("bad resize size: %s\n", err.msg);
    ldm_image_free(img);
  }
  /* names */
  ldm_preprocess k;
  CHECK(ldm_preprocess_parse("canny", &k) && k == LDM_PREPROCESS_CANNY, "parse canny");
  CHECK(ldm_preprocess_parse("scribble", &k) && k == LDM_PREPROCESS_SCRIBBLE, "parse scribble");
  CHECK(!ldm_preprocess_parse("Canny", &k) && !ldm_preprocess_parse("", &k), "parse accepts a bad name");
  CHECK(strcmp(ldm_preprocess_name(LDM_PREPROCESS_INVERT), "invert") == 0, "name of invert");
  ldm_st_close(gf);
  return ldm_test_finish("control-preprocess");
}
