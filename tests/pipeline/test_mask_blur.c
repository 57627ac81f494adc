/* The inpaint mask blur against AUTOMATIC1111's, computed by OpenCV
 * (tests/reference/make_mask_blur.py): per axis a Gaussian of sigma = the
 * --mask-blur value over 2 * int(2.5 sigma + 0.5) + 1 taps, borders
 * reflected without repeating the edge pixel (OpenCV's BORDER_REFLECT_101).
 * A radius one tap short or long, another sigma or another border fails.
 * Tolerance: max abs <= 1e-5 (f32 accumulation order; mask values 0..1).
 * Then the overlay of the result on the original (pl_composite) against
 * A1111's apply_overlay, Pillow's alpha_composite of the original with alpha
 * 1 - mask over the generated image: within 1 of 255 (Pillow rounds in
 * fixed point), and exact where the mask is 0 or 1. */
#include "ldm_test.h"

#include "pipeline/imageproc.h"

int main(void) {
  ldm_st_file *gf = ldm_test_open_golden("pipeline/mask_blur.safetensors");
  ldm_tensor shape;
  float *mask = ldm_test_tensor_f32(gf, "mask", &shape);
  int H = (int)shape.shape[0], W = (int)shape.shape[1];
  ldm_tensor ss;
  float *sigmas = ldm_test_tensor_f32(gf, "sigmas", &ss);
  float *plane = malloc(sizeof(float) * (size_t)(W * H)), *tmp = malloc(sizeof(float) * (size_t)(W * H));
  if (!plane || !tmp) return 1;
  for (int i = 0; i < (int)ss.shape[0]; i++) {
    char n[64];
    snprintf(n, sizeof n, "blur%d", i);
    float *ref = ldm_test_tensor_f32(gf, n, NULL);
    memcpy(plane, mask, sizeof(float) * (size_t)(W * H));
    pl_blur(plane, W, H, sigmas[i], tmp);
    snprintf(n, sizeof n, "mask-blur sigma %g (%dx%d)", sigmas[i], W, H);
    ldm_test_close(n, plane, ref, (long long)W * H, 1e-5, 0.0);
    free(ref);
  }
  /* 0 leaves the mask as it is */
  memcpy(plane, mask, sizeof(float) * (size_t)(W * H));
  pl_blur(plane, W, H, 0.0f, tmp);
  ldm_test_close("mask-blur 0 (no blur)", plane, mask, (long long)W * H, 0.0, 0.0);
  free(plane), free(tmp), free(mask), free(sigmas);

  /* the overlay */
  const ldm_tensor *to = ldm_st_find(gf, "overlay.orig"), *tg = ldm_st_find(gf, "overlay.gen"),
                   *tk = ldm_st_find(gf, "overlay.mask255"), *tr = ldm_st_find(gf, "overlay.out");
  CHECK(to && tg && tk && tr, "golden has no overlay case");
  if (to && tg && tk && tr) {
    int oh = (int)to->shape[0], ow = (int)to->shape[1];
    ldm_image *orig = ldm_image_new(ow, oh, 3, LDM_PIXEL_U8), *gen = ldm_image_new(ow, oh, 3, LDM_PIXEL_U8),
              *out = ldm_image_new(ow, oh, 3, LDM_PIXEL_U8);
    float *m = malloc(sizeof(float) * (size_t)(ow * oh)), *got = malloc(sizeof(float) * (size_t)(ow * oh * 3)),
          *ref = malloc(sizeof(float) * (size_t)(ow * oh * 3)), *got01 = malloc(sizeof(float) * (size_t)(ow * oh * 3)),
          *ref01 = malloc(sizeof(float) * (size_t)(ow * oh * 3));
    if (!orig || !gen || !out || !m || !got || !ref || !got01 || !ref01) return 1;
    const unsigned char *po = to->data, *pg = tg->data, *pk = tk->data, *pr = tr->data;
    for (int y = 0; y < oh; y++) {
      memcpy((unsigned char *)orig->data + (size_t)y * orig->stride, po + (size_t)y * ow * 3, (size_t)ow * 3);
      memcpy((unsigned char *)gen->data + (size_t)y * gen->stride, pg + (size_t)y * ow * 3, (size_t)ow * 3);
    }
    for (int i = 0; i < ow * oh; i++) m[i] = pk[i] / 255.0f;
    pl_composite(orig, gen, m, out);
    int n01 = 0;
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow * 3; x++) {
        int i = y * ow * 3 + x;
        got[i] = ((const unsigned char *)out->data)[(size_t)y * out->stride + x];
        ref[i] = pr[i];
        if (pk[y * ow + x / 3] == 0 || pk[y * ow + x / 3] == 255) got01[n01] = got[i], ref01[n01++] = ref[i];
      }
    ldm_test_close("overlay vs A1111 apply_overlay (Pillow alpha_composite)", got, ref, (long long)ow * oh * 3, 1.0,
                   0.0);
    ldm_test_close("overlay where the mask is 0 or 1", got01, ref01, n01, 0.0, 0.0);
    ldm_image_free(orig), ldm_image_free(gen), ldm_image_free(out);
    free(m), free(got), free(ref), free(got01), free(ref01);
  }
  ldm_st_close(gf);
  return ldm_test_finish("mask-blur");
}
