/* bench_vae: time and peak RSS of one AutoencoderKL decode (libldm) at a
 * given latent size, for bench/vae/run to set beside diffusers; with --taesd
 * the same for a TAESD decoder (AutoencoderTiny), timed the same way.
 * Usage: bench_vae [--taesd] [--repeat N] MODEL LATENT_SIDE THREADS [TILE]
 * Prints `ldm decode SIZE: X.XX s, peak RSS N MiB, arena peak N MiB`; with
 * --repeat N the decode runs 1 + N times in the process and X is the median
 * of the N warm calls (the first call and each warm one are listed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/status.h"
#include "io/source.h"
#include "models/vae/vae.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  ldm_blas_tune(argv); /* OpenBLAS's kernels for this CPU (may start the program again) */
  bool taesd_mode = false;
  int repeat = 0, a = 1;
  for (; a < argc && !strncmp(argv[a], "--", 2); a++) {
    if (!strcmp(argv[a], "--taesd")) taesd_mode = true;
    else if (!strcmp(argv[a], "--repeat") && a + 1 < argc) repeat = atoi(argv[++a]);
    else break;
  }
  if (argc - a < 3 || repeat < 0 || repeat > 100) {
    fprintf(stderr, "usage: bench_vae [--taesd] [--repeat N] MODEL LATENT_SIDE THREADS [TILE]\n");
    return 2;
  }
  const char *path = argv[a];
  int side = atoi(argv[a + 1]), threads = atoi(argv[a + 2]), tile = argc - a > 3 ? atoi(argv[a + 3]) : -1;
  if (taesd_mode && tile > 0) {
    fprintf(stderr, "bench_vae: TAESD has no tiled decode\n");
    return 2;
  }
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_vae *vae = NULL;
  ldm_taesd *taesd = NULL;
  if (ldm_source_open(&src, path, &err) != LDM_OK ||
      (taesd_mode ? ldm_taesd_load(&taesd, src, NULL, &err) : ldm_vae_load(&vae, src, NULL, &err)) != LDM_OK) {
    fprintf(stderr, "bench_vae: %s\n", err.msg);
    return 1;
  }
  if (taesd && !ldm_taesd_has_decoder(taesd)) {
    fprintf(stderr, "bench_vae: %s has no TAESD decoder\n", path);
    return 1;
  }
  int f = taesd ? ldm_taesd_factor(taesd) : ldm_vae_factor(vae);
  int lc = taesd ? ldm_taesd_latent_channels(taesd) : 4;
  size_t n_lat = (size_t)lc * side * side, n_img = (size_t)3 * side * f * side * f;
  float *lat = malloc(n_lat * sizeof(float)), *img = malloc(n_img * sizeof(float));
  if (!lat || !img) return 1;
  unsigned s = 1;
  for (size_t i = 0; i < n_lat; i++) { /* rough N(0, 1): sum of 4 uniforms */
    float u = 0;
    for (int k = 0; k < 4; k++) {
      s = s * 1664525u + 1013904223u;
      u += ((s >> 8) & 0xffffff) / 16777216.0f;
    }
    lat[i] = (u - 2.0f) * 1.7320508f;
  }
  ldm_ctx ctx = {.pool = ldm_pool_new(threads), .threads = threads, .scratch = ldm_arena_new(0),
                 .err = &err};
  ldm_blas_set_threads(threads);
  double dt[101];
  for (int r = 0; r <= repeat; r++) {
    double t0 = now();
    ldm_status st = taesd ? ldm_taesd_decode(&ctx, taesd, img, lat, 1, side, side)
                          : ldm_vae_decode_tiled(&ctx, vae, img, lat, 1, side, side, 0, 0, tile, 0);
    dt[r] = now() - t0;
    if (st != LDM_OK) {
      fprintf(stderr, "bench_vae: %s\n", err.msg);
      return 1;
    }
  }
  double mean = 0;
  for (size_t i = 0; i < n_img; i++) mean += img[i];
  const char *what = taesd ? "ldm taesd decode" : "ldm decode";
  if (repeat == 0) {
    printf("%s %d%s: %.2f s, ", what, side * f, tile > 0 ? " (tiled)" : "", dt[0]);
  } else {
    double warm[100];
    memcpy(warm, dt + 1, (size_t)repeat * sizeof(double));
    qsort(warm, (size_t)repeat, sizeof(double), cmp_double);
    printf("%s %d%s: %.3f s (median of %d warm calls:", what, side * f, tile > 0 ? " (tiled)" : "",
           warm[repeat / 2], repeat);
    for (int r = 1; r <= repeat; r++) printf(" %.3f", dt[r]);
    printf("; first call %.3f), ", dt[0]);
  }
  printf("peak RSS %.0f MiB, arena peak %.0f MiB, out mean %.4f\n", ldm_peak_rss_bytes() / 1048576.0,
         ldm_arena_peak(ctx.scratch) / 1048576.0, mean / (double)n_img);
  ldm_arena_free(ctx.scratch);
  ldm_pool_free(ctx.pool);
  free(lat);
  free(img);
  ldm_vae_free(vae);
  ldm_taesd_free(taesd);
  ldm_source_close(src);
  return 0;
}
