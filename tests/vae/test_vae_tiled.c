/* Tiled VAE decode and encode vs the untiled path on the tiny 4-level VAE
 * (tests/golden/vae/kl4, random weights): a 1024x1024 decode (latent
 * 128x128) in tiles of 72 latent pixels with 16 of overlap (2 x 2 tiles), and
 * a 512x512 encode in tiles of 40 (2 x 2).
 * Tolerances (measured 32.5 dB and 61.6 dB, see the printed figures): decode
 * PSNR >= 30 dB over the [-1, 1] range, encode mean PSNR >= 45 dB over its
 * range. Memory: the tiled path's scratch (arena peak) must not exceed that of
 * one untiled tile-sized run plus the latent-sized mid-block features, and
 * must be below the untiled run's. LDM_VAE_TILED_COMPARE=1 also prints the
 * figures with per-tile GroupNorm statistics (as diffusers' tiled VAE). */
#include "ldm_test.h"

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

/* Smooth random field plus noise, deterministic. */
static void fill(float *x, int C, int H, int W, unsigned seed, float amp) {
  unsigned s = seed;
  for (int c = 0; c < C; c++)
    for (int y = 0; y < H; y++)
      for (int xx = 0; xx < W; xx++) {
        s = s * 1664525u + 1013904223u;
        float n = ((s >> 8) & 0xffff) / 65535.0f - 0.5f;
        float v = sinf(0.05f * y * (c + 1) + 0.3f * c) * cosf(0.037f * xx + 0.7f * c) + 0.5f * n;
        x[((size_t)c * H + y) * W + xx] = amp * v;
      }
}

static double psnr(const float *a, const float *b, size_t n, double range, double *max_abs) {
  double se = 0;
  *max_abs = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    se += d * d;
    if (fabs(d) > *max_abs) *max_abs = fabs(d);
  }
  double mse = se / (double)n;
  return mse > 0 ? 10.0 * log10(range * range / mse) : INFINITY;
}

typedef struct run_result {
  size_t peak;
  double secs;
  ldm_status st;
} run_result;

static run_result decode(const ldm_vae *vae, float *img, const float *lat, int h, int w, int tile,
                         int passes, ldm_error *err) {
  ldm_ctx ctx = {.pool = ldm_pool_new(2), .threads = 2, .scratch = ldm_arena_new(0), .err = err};
  double t0 = now();
  run_result r;
  r.st = ldm_vae_decode_tiled_ex(&ctx, vae, img, lat, 1, h, w, 0, 0, tile, 16, passes);
  r.secs = now() - t0;
  r.peak = ldm_arena_peak(ctx.scratch);
  ldm_arena_free(ctx.scratch);
  ldm_pool_free(ctx.pool);
  return r;
}

static run_result encode(const ldm_vae *vae, float *mean, const float *img, int H, int W, int tile,
                         int passes, ldm_error *err) {
  ldm_ctx ctx = {.pool = ldm_pool_new(2), .threads = 2, .scratch = ldm_arena_new(0), .err = err};
  double t0 = now();
  run_result r;
  r.st = ldm_vae_encode_tiled_ex(&ctx, vae, mean, NULL, img, 1, H, W, tile, 16, passes);
  r.secs = now() - t0;
  r.peak = ldm_arena_peak(ctx.scratch);
  ldm_arena_free(ctx.scratch);
  ldm_pool_free(ctx.pool);
  return r;
}

int main(void) {
  char path[4096];
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_vae *vae = NULL;
  if (ldm_source_open(&src, ldm_test_golden("vae/kl4", path, sizeof path), &err) != LDM_OK ||
      ldm_vae_load(&vae, src, NULL, &err) != LDM_OK) {
    fprintf(stderr, "FAIL: load %s: %s\n", path, err.msg);
    return 1;
  }
  const bool compare = getenv("LDM_VAE_TILED_COMPARE") != NULL;
  /* decode 128x128 -> 1024x1024 */
  const int h = 128, w = 128, H = 1024, W = 1024, DT = 72;
  float *lat = malloc((size_t)4 * h * w * sizeof(float));
  float *full = malloc((size_t)3 * H * W * sizeof(float));
  float *tiled = malloc((size_t)3 * H * W * sizeof(float));
  float *one = malloc((size_t)3 * DT * 8 * DT * 8 * sizeof(float));
  fill(lat, 4, h, w, 1234u, 2.0f);
  run_result ru = decode(vae, full, lat, h, w, -1, -1, &err);
  CHECK(ru.st == LDM_OK, "untiled decode: %s", err.msg);
  run_result r1 = decode(vae, one, lat, DT, DT, -1, -1, &err);
  CHECK(r1.st == LDM_OK, "one-tile decode: %s", err.msg);
  double max_abs, p;
  if (compare) {
    run_result r0 = decode(vae, tiled, lat, h, w, DT, 0, &err);
    p = psnr(tiled, full, (size_t)3 * H * W, 2.0, &max_abs);
    printf("tiled decode, per-tile GroupNorm statistics: max_abs=%.4g PSNR=%.2f dB (%.2f s)\n",
           max_abs, p, r0.secs);
  }
  run_result rt = decode(vae, tiled, lat, h, w, DT, -1, &err);
  CHECK(rt.st == LDM_OK, "tiled decode: %s", err.msg);
  p = psnr(tiled, full, (size_t)3 * H * W, 2.0, &max_abs);
  printf("tiled decode 1024x1024 (tile %d, overlap 16 latent px) vs untiled: max_abs=%.4g "
         "PSNR=%.2f dB (tol PSNR >= 30)\n", DT, max_abs, p);
  size_t extra = (size_t)h * w * 32 * sizeof(float); /* mid-block features, chL = 32 */
  printf("  arena peak: untiled %.1f MiB (%.2f s), tiled %.1f MiB (%.2f s), one %dx%d tile "
         "untiled %.1f MiB, latent features %.1f MiB\n", ru.peak / 1048576.0, ru.secs,
         rt.peak / 1048576.0, rt.secs, DT, DT, r1.peak / 1048576.0, extra / 1048576.0);
  CHECK(p >= 30.0, "tiled decode PSNR %.2f dB < 30", p);
  CHECK(rt.peak <= r1.peak + extra, "tiled peak %zu > one-tile peak %zu + %zu", rt.peak, r1.peak, extra);
  CHECK(rt.peak < ru.peak, "tiled peak %zu not below untiled %zu", rt.peak, ru.peak);

  /* encode 512x512 -> 64x64 */
  const int EH = 512, EW = 512, ET = 40;
  float *img = malloc((size_t)3 * EH * EW * sizeof(float));
  float *m_full = malloc((size_t)4 * 64 * 64 * sizeof(float));
  float *m_tiled = malloc((size_t)4 * 64 * 64 * sizeof(float));
  fill(img, 3, EH, EW, 99u, 0.8f);
  run_result eu = encode(vae, m_full, img, EH, EW, -1, -1, &err);
  CHECK(eu.st == LDM_OK, "untiled encode: %s", err.msg);
  double range = 0;
  for (int i = 0; i < 4 * 64 * 64; i++) range = fmax(range, fabs(m_full[i]));
  if (compare) {
    run_result e0 = encode(vae, m_tiled, img, EH, EW, ET, 0, &err);
    p = psnr(m_tiled, m_full, (size_t)4 * 64 * 64, 2 * range, &max_abs);
    printf("tiled encode, per-tile GroupNorm statistics: max_abs=%.4g PSNR=%.2f dB (%.2f s)\n",
           max_abs, p, e0.secs);
  }
  run_result et = encode(vae, m_tiled, img, EH, EW, ET, -1, &err);
  CHECK(et.st == LDM_OK, "tiled encode: %s", err.msg);
  p = psnr(m_tiled, m_full, (size_t)4 * 64 * 64, 2 * range, &max_abs);
  printf("tiled encode 512x512 (tile %d, overlap 16 latent px) vs untiled: mean max_abs=%.4g "
         "PSNR=%.2f dB over [-%.2f, %.2f] (tol PSNR >= 45)\n", ET, max_abs, p, range, range);
  printf("  arena peak: untiled %.1f MiB (%.2f s), tiled %.1f MiB (%.2f s)\n", eu.peak / 1048576.0,
         eu.secs, et.peak / 1048576.0, et.secs);
  CHECK(p >= 45.0, "tiled encode PSNR %.2f dB < 45", p);
  CHECK(et.peak < eu.peak, "tiled encode peak %zu not below untiled %zu", et.peak, eu.peak);

  free(lat);
  free(full);
  free(tiled);
  free(one);
  free(img);
  free(m_full);
  free(m_tiled);
  ldm_vae_free(vae);
  ldm_source_close(src);
  return ldm_test_finish("vae-tiled");
}
