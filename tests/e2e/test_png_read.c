/* The CLI's PNG reader (cli/png_io.c) against Pillow (tests/reference/
 * make_png.py): grey, 16-bit grey, grey+alpha, 4-bit palette with
 * transparency and RGBA files of tests/data all come back as the same 8-bit
 * RGBA pixels. Tolerance: exact (max abs 0). */
#include "ldm_test.h"
#include "png_io.h"

int main(void) {
  ldm_st_file *gf = ldm_test_open_golden("png/decoded.safetensors");
  const char *names[] = {"grey", "grey16", "grey_alpha", "palette", "rgba", "mask40x48"};
  const char *root = getenv("LDM_SOURCE_ROOT");
  for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
    char path[4096], msg[1200];
    snprintf(path, sizeof path, "%s/tests/data/%s.png", root ? root : ".", names[k]);
    const ldm_tensor *tp = ldm_st_find(gf, names[k]);
    CHECK(tp && tp->dtype == LDM_DTYPE_U8 && tp->ndim == 3 && tp->shape[2] == 4, "golden %s: not [H, W, 4] U8",
          names[k]);
    if (!tp || tp->dtype != LDM_DTYPE_U8 || tp->ndim != 3) continue;
    ldm_tensor t = *tp;
    int64_t nel = ldm_tensor_numel(tp);
    float *ref = malloc(sizeof(float) * (size_t)nel);
    if (!ref) return 1;
    for (int64_t i = 0; i < nel; i++) ref[i] = ((const unsigned char *)tp->data)[i];
    ldm_image *img = png_read_rgba(path, NULL, NULL, msg, sizeof msg);
    CHECK(img != NULL, "%s: %s", names[k], msg);
    if (!img) continue;
    int H = (int)t.shape[0], W = (int)t.shape[1];
    CHECK(img->width == W && img->height == H && img->channels == 4, "%s: %dx%dx%d, Pillow %dx%dx4", names[k],
          img->width, img->height, img->channels, W, H);
    if (img->width == W && img->height == H && img->channels == 4) {
      float *got = malloc(sizeof(float) * (size_t)W * H * 4);
      if (!got) return 1;
      for (int y = 0; y < H; y++)
        for (int x = 0; x < 4 * W; x++)
          got[(size_t)y * W * 4 + x] = ((const unsigned char *)img->data)[(size_t)y * img->stride + x];
      char n[96];
      snprintf(n, sizeof n, "png-read %s.png (%dx%d RGBA)", names[k], W, H);
      ldm_test_close(n, got, ref, (long long)W * H * 4, 0.0, 0.0);
      free(got);
    }
    ldm_image_free(img);
    free(ref);
  }
  ldm_st_close(gf);
  return ldm_test_finish("png-read");
}
