/* bench_vae: time and peak RSS of one AutoencoderKL decode (libldm) at a
 * given latent size, for bench/vae/run to set beside diffusers.
 * Usage: bench_vae MODEL LATENT_SIDE THREADS [TILE]
 * Prints `ldm decode SIZE: X.XX s, peak RSS N MiB, arena peak N MiB`. */
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_vae MODEL LATENT_SIDE THREADS [TILE]\n");
    return 2;
  }
  int side = atoi(argv[2]), threads = atoi(argv[3]), tile = argc > 4 ? atoi(argv[4]) : -1;
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_vae *vae = NULL;
  if (ldm_source_open(&src, argv[1], &err) != LDM_OK || ldm_vae_load(&vae, src, NULL, &err) != LDM_OK) {
    fprintf(stderr, "bench_vae: %s\n", err.msg);
    return 1;
  }
  int f = ldm_vae_factor(vae);
  size_t n_lat = (size_t)4 * side * side, n_img = (size_t)3 * side * f * side * f;
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
  double t0 = now();
  ldm_status st = ldm_vae_decode_tiled(&ctx, vae, img, lat, 1, side, side, 0, 0, tile, 0);
  double dt = now() - t0;
  if (st != LDM_OK) {
    fprintf(stderr, "bench_vae: %s\n", err.msg);
    return 1;
  }
  double mean = 0;
  for (size_t i = 0; i < n_img; i++) mean += img[i];
  printf("ldm decode %d%s: %.2f s, peak RSS %.0f MiB, arena peak %.0f MiB, out mean %.4f\n",
         side * f, tile > 0 ? " (tiled)" : "", dt, ldm_peak_rss_bytes() / 1048576.0,
         ldm_arena_peak(ctx.scratch) / 1048576.0, mean / (double)n_img);
  ldm_arena_free(ctx.scratch);
  ldm_pool_free(ctx.pool);
  free(lat);
  free(img);
  ldm_vae_free(vae);
  ldm_source_close(src);
  return 0;
}
