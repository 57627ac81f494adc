/* The inpaint mask blur against AUTOMATIC1111's, computed by OpenCV
 * (tests/reference/make_mask_blur.py): per axis a Gaussian of sigma = the
 * --mask-blur value over 2 * int(2.5 sigma + 0.5) + 1 taps, borders
 * reflected without repeating the edge pixel (OpenCV's BORDER_REFLECT_101).
 * A radius one tap short or long, another sigma or another border fails.
 * Tolerance: max abs <= 1e-5 (f32 accumulation order; mask values 0..1). */
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
  ldm_st_close(gf);
  return ldm_test_finish("mask-blur");
}
