/* bench_live: the engine's share of live painting's latency (plug-in-ldm-live):
 * from a stroke committed to the result ready for the live layer, with the
 * model loaded, as the plug-in runs it -- the composite (an RGB float image
 * of SIZE x SIZE) as the init image of an img2img job of STEPS denoising
 * steps at STRENGTH (the schedule STEPS / STRENGTH long), no guidance
 * (few-step models), Euler a, the result decoded by TAESD and resized to the
 * work area. One warm-up job first (weights prepared, as after the first
 * stroke), then 5 strokes: each paints a disc into the canvas and times the
 * job. Prints
 *   BENCH case=live_SIZE ours_s=<median of 5> min_s=... max_s=... cpu_s=<median CPU seconds> ...
 * The plug-in adds the fingerprint period (250 ms: 125 ms on average) and
 * the composite read (about 12 ms at 256 x 256, gimp-live prints it).
 * ENCODER taesd (the plug-in's choice when the TAESD has an encoder) or vae.
 * Usage: bench_live MODEL TAESD SIZE [THREADS] [STEPS] [STRENGTH] [ENCODER] */
#include "ldm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
         1e-6 * (double)u.ru_stime.tv_usec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void disc(ldm_image *img, int cx, int cy, int r, float red, float green, float blue) {
  for (int y = cy - r; y <= cy + r; y++)
    for (int x = cx - r; x <= cx + r; x++) {
      if (x < 0 || y < 0 || x >= img->width || y >= img->height || (x - cx) * (x - cx) + (y - cy) * (y - cy) > r * r)
        continue;
      float *p = (float *)((char *)img->data + (size_t)y * img->stride) + 3 * x;
      p[0] = red, p[1] = green, p[2] = blue;
    }
}

static int taesd_encode = 1;

static int run_job(ldm_model *m, const ldm_image *init, int steps, float strength, int size, double *wall,
                   double *cpu) {
  ldm_job_params jp;
  ldm_job *job = NULL;
  ldm_image **imgs = NULL, *out = NULL;
  int n = 0, job_steps = (int)ceil(steps / strength - 1e-6);
  ldm_error err;
  ldm_error_clear(&err);
  while ((int)(job_steps * strength) < steps) job_steps++;
  double t0 = now(), c0 = cpu_s();
  ldm_job_params_init(&jp, LDM_TASK_IMG2IMG);
  jp.prompt = "a watercolor landscape, hills and a lake";
  jp.steps = job_steps;
  jp.cfg_scale = 1.0f;
  jp.sampler = "euler_a";
  jp.seed = 1;
  jp.strength = strength;
  jp.init = init;
  jp.output_type = LDM_PIXEL_F32;
  jp.taesd_decode = true;
  jp.taesd_encode = taesd_encode;
  ldm_status st = ldm_job_new(&job, m, &jp, &err);
  if (st == LDM_OK) st = ldm_job_run(job, &imgs, &n, &err);
  if (st == LDM_OK && n > 0) st = ldm_image_resize(imgs[0], size, size, &out, &err);
  *wall = now() - t0;
  *cpu = cpu_s() - c0;
  for (int i = 0; i < n; i++) ldm_image_free(imgs[i]);
  free(imgs);
  ldm_image_free(out);
  ldm_job_free(job);
  if (st != LDM_OK) fprintf(stderr, "bench_live: %s\n", err.msg[0] ? err.msg : ldm_status_str(st));
  return st == LDM_OK;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_live MODEL TAESD SIZE [THREADS] [STEPS] [STRENGTH] [taesd|vae]\n");
    return 2;
  }
  ldm_blas_tune(argv);
  int size = atoi(argv[3]), threads = argc > 4 ? atoi(argv[4]) : 0, steps = argc > 5 ? atoi(argv[5]) : 1;
  float strength = argc > 6 ? (float)atof(argv[6]) : 0.5f;
  taesd_encode = argc > 7 ? strcmp(argv[7], "vae") != 0 : 1;
  ldm_model_params mp;
  ldm_model *m = NULL;
  ldm_error err;
  ldm_error_clear(&err);
  ldm_model_params_init(&mp);
  mp.path = argv[1];
  mp.taesd_path = argv[2];
  mp.threads = threads;
  mp.weight_cache_mb = getenv("WC0") ? 0 : (int)(ldm_memory_available_bytes() / 3 / (1024 * 1024)); /* as the plug-in */
  double t0 = now();
  if (ldm_model_load(&m, &mp, &err) != LDM_OK) {
    fprintf(stderr, "bench_live: %s\n", err.msg);
    return 1;
  }
  ldm_image *canvas = ldm_image_new(size, size, 3, LDM_PIXEL_F32);
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++) {
      float *p = (float *)((char *)canvas->data + (size_t)y * canvas->stride) + 3 * x;
      p[0] = 0.55f + 0.2f * y / size, p[1] = 0.7f, p[2] = 0.9f - 0.3f * y / size;
    }
  double w, c, walls[5], cpus[5];
  if (!run_job(m, canvas, steps, strength, size, &w, &c)) return 1;
  double load = now() - t0;
  fprintf(stderr, "# model load + warm-up job %.2f s (warm-up job %.2f s, %.2f CPU-s)\n", load, w, c);
  for (int i = 0; i < 5; i++) {
    disc(canvas, size * (i + 1) / 7, size / 2 + (i % 2 ? size / 6 : -size / 6), size / 12, 0.9f * (i % 2), 0.3f,
         0.2f + 0.15f * i);
    if (!run_job(m, canvas, steps, strength, size, &walls[i], &cpus[i])) return 1;
    fprintf(stderr, "# stroke %d: %.3f s, %.2f CPU-s\n", i + 1, walls[i], cpus[i]);
  }
  qsort(walls, 5, sizeof(double), cmp);
  qsort(cpus, 5, sizeof(double), cmp);
  double la[3] = {0};
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1;
    fclose(f);
  }
  printf(
      "BENCH case=live_%d ours_s=%.3f min_s=%.3f max_s=%.3f cpu_s=%.2f steps=%d strength=%.2f threads=%d "
      "encoder=%s decoder=taesd load=%.2f blas=\"%s\"\n",
      size, walls[2], walls[0], walls[4], cpus[2], steps, strength, threads ? threads : ldm_default_threads(),
      taesd_encode ? "taesd" : "vae", la[0], ldm_blas_info());
  ldm_image_free(canvas);
  ldm_model_free(m);
  return 0;
}
