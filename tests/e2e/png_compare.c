/* PNG comparisons for the e2e tests:
 *   png_compare psnr A.png B.png MIN_DB [MASK.png]
 *       PSNR of A against B (over pixels where MASK > 0 when given); fails
 *       below MIN_DB.
 *   png_compare same-outside A.png B.png MASK.png
 *       every pixel where MASK == 0 must be bit-identical in A and B.
 *   png_compare psnr-alpha A.png B.png MIN_DB
 *       PSNR of A's alpha channel against B's; fails below MIN_DB.
 *   png_compare differs A.png B.png
 *       fails when A and B are identical (a check that something happened).
 *   png_compare colour A.png FX FY FR
 *       prints the named colour (of the demo data set's nine) nearest to the
 *       mean colour of the square of half-side FR around (FX, FY), all as
 *       fractions of the image size.
 *   png_compare share A.png MASK.png COLOUR
 *       prints the fraction of the pixels where MASK > 0 whose nearest named
 *       colour is COLOUR.
 *   png_compare centroid A.png COLOUR
 *       prints "X Y N": the centroid (pixel centres, x right, y down) of the N
 *       pixels whose nearest named colour is COLOUR; "-1 -1 0" when none is. */
#include "png_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ldm_image *load(const char *path) {
  char msg[1200];
  ldm_image *img = png_read_rgba(path, NULL, NULL, msg, sizeof msg);
  if (!img) {
    fprintf(stderr, "FAIL: %s\n", msg);
    exit(1);
  }
  return img;
}

static const unsigned char *px(const ldm_image *img, int x, int y) {
  return (const unsigned char *)img->data + (size_t)y * img->stride + (size_t)x * 4;
}

static const struct {
  const char *name;
  int rgb[3];
} colours[] = {
    {"red", {220, 30, 30}},     {"green", {30, 170, 50}},    {"blue", {30, 60, 220}},
    {"yellow", {245, 215, 30}}, {"white", {245, 245, 245}},  {"black", {15, 15, 15}},
    {"orange", {245, 140, 20}}, {"purple", {140, 40, 180}},  {"gray", {128, 128, 128}},
};

/* Index in colours[] of the named colour nearest (Euclidean in sRGB) to rgb. */
static int nearest_colour(const double rgb[3]) {
  int best = 0;
  double best_d = 1e30;
  for (size_t i = 0; i < sizeof colours / sizeof *colours; i++) {
    double d = 0;
    for (int c = 0; c < 3; c++) d += (rgb[c] - colours[i].rgb[c]) * (rgb[c] - colours[i].rgb[c]);
    if (d < best_d) {
      best_d = d;
      best = (int)i;
    }
  }
  return best;
}

static int colour_index(const char *name) {
  for (size_t i = 0; i < sizeof colours / sizeof *colours; i++)
    if (!strcmp(colours[i].name, name)) return (int)i;
  fprintf(stderr, "FAIL: '%s' is not one of the named colours\n", name);
  return -1;
}

static int region_colour(const char *path, double fx, double fy, double fr) {
  ldm_image *a = load(path);
  int x0 = (int)((fx - fr) * a->width), x1 = (int)((fx + fr) * a->width);
  int y0 = (int)((fy - fr) * a->height), y1 = (int)((fy + fr) * a->height);
  x0 = x0 < 0 ? 0 : x0;
  y0 = y0 < 0 ? 0 : y0;
  x1 = x1 > a->width ? a->width : x1;
  y1 = y1 > a->height ? a->height : y1;
  double sum[3] = {0, 0, 0};
  long n = 0;
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++, n++)
      for (int c = 0; c < 3; c++) sum[c] += px(a, x, y)[c];
  double mean[3];
  for (int c = 0; c < 3; c++) mean[c] = n ? sum[c] / n : 0;
  printf("%s\n", colours[nearest_colour(mean)].name);
  ldm_image_free(a);
  return 0;
}

static int colour_share(const char *path, const char *mask_path, const char *name) {
  int want = colour_index(name);
  if (want < 0) return 2;
  ldm_image *a = load(path), *m = load(mask_path);
  if (m->width != a->width || m->height != a->height) {
    fprintf(stderr, "FAIL: mask %s is %dx%d, %s is %dx%d\n", mask_path, m->width, m->height, path, a->width,
            a->height);
    ldm_image_free(a);
    ldm_image_free(m);
    return 1;
  }
  long n = 0, hit = 0;
  for (int y = 0; y < a->height; y++)
    for (int x = 0; x < a->width; x++) {
      if (!px(m, x, y)[0]) continue;
      double rgb[3] = {px(a, x, y)[0], px(a, x, y)[1], px(a, x, y)[2]};
      n++;
      hit += nearest_colour(rgb) == want;
    }
  printf("%.3f\n", n ? (double)hit / (double)n : 0.0);
  ldm_image_free(a);
  ldm_image_free(m);
  return 0;
}

static int colour_centroid(const char *path, const char *name) {
  int want = colour_index(name);
  if (want < 0) return 2;
  ldm_image *a = load(path);
  double sx = 0, sy = 0;
  long n = 0;
  for (int y = 0; y < a->height; y++)
    for (int x = 0; x < a->width; x++) {
      double rgb[3] = {px(a, x, y)[0], px(a, x, y)[1], px(a, x, y)[2]};
      if (nearest_colour(rgb) != want) continue;
      sx += x + 0.5;
      sy += y + 0.5;
      n++;
    }
  if (n)
    printf("%.2f %.2f %ld\n", sx / (double)n, sy / (double)n, n);
  else
    printf("-1 -1 0\n");
  ldm_image_free(a);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "centroid")) return colour_centroid(argv[2], argv[3]);
  if (argc == 6 && !strcmp(argv[1], "colour"))
    return region_colour(argv[2], atof(argv[3]), atof(argv[4]), atof(argv[5]));
  if (argc == 5 && !strcmp(argv[1], "share")) return colour_share(argv[2], argv[3], argv[4]);
  if (argc < 4) {
    fprintf(stderr, "usage: png_compare psnr|same-outside|differs A B [MIN_DB] [MASK]\n");
    return 2;
  }
  const char *mode = argv[1];
  ldm_image *a = load(argv[2]), *b = load(argv[3]);
  if (a->width != b->width || a->height != b->height) {
    fprintf(stderr, "FAIL: %s is %dx%d, %s is %dx%d\n", argv[2], a->width, a->height, argv[3], b->width,
            b->height);
    return 1;
  }
  if (!strcmp(mode, "psnr-alpha")) {
    double se = 0, min_db = argc > 4 ? atof(argv[4]) : 40.0;
    for (int y = 0; y < a->height; y++)
      for (int x = 0; x < a->width; x++) se += (double)(px(a, x, y)[3] - px(b, x, y)[3]) * (px(a, x, y)[3] - px(b, x, y)[3]);
    double mse = se / ((double)a->width * a->height), psnr = mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99.0;
    printf("psnr-alpha %s vs %s: %.2f dB (min %.1f)\n", argv[2], argv[3], psnr, min_db);
    ldm_image_free(a);
    ldm_image_free(b);
    return psnr >= min_db ? 0 : 1;
  }
  const char *mask_path = !strcmp(mode, "psnr") ? (argc > 5 ? argv[5] : NULL) : (argc > 4 ? argv[4] : NULL);
  ldm_image *m = mask_path ? load(mask_path) : NULL;
  if (m && (m->width != a->width || m->height != a->height)) {
    fprintf(stderr, "FAIL: mask %s has the wrong size\n", mask_path);
    return 1;
  }
  double se = 0;
  long long n = 0, changed = 0, outside = 0, diff_px = 0;
  for (int y = 0; y < a->height; y++)
    for (int x = 0; x < a->width; x++) {
      const unsigned char *p = px(a, x, y), *q = px(b, x, y);
      int in_mask = !m || px(m, x, y)[0] > 0;
      int same = !memcmp(p, q, 3);
      if (!same) diff_px++;
      if (!m || !in_mask) outside++;
      if (m && !in_mask && !same) changed++;
      if (in_mask) {
        for (int c = 0; c < 3; c++) se += (double)(p[c] - q[c]) * (p[c] - q[c]);
        n += 3;
      }
    }
  int rc = 2;
  if (!strcmp(mode, "psnr")) {
    double min_db = argc > 4 ? atof(argv[4]) : 40.0;
    double mse = n ? se / n : 0, psnr = mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99.0;
    printf("psnr %s vs %s%s: %.2f dB (min %.1f)\n", argv[2], argv[3], m ? " (masked area)" : "", psnr, min_db);
    rc = psnr >= min_db ? 0 : 1;
  } else if (!strcmp(mode, "same-outside")) {
    printf("same-outside %s vs %s: %lld of %lld unmasked pixels differ\n", argv[2], argv[3], changed, outside);
    rc = m && changed == 0 && outside > 0 ? 0 : 1;
  } else if (!strcmp(mode, "differs")) {
    printf("differs %s vs %s: %lld pixels differ\n", argv[2], argv[3], diff_px);
    rc = diff_px > 0 ? 0 : 1;
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
  }
  ldm_image_free(a);
  ldm_image_free(b);
  ldm_image_free(m);
  return rc;
}
