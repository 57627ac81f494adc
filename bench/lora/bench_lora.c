/* bench_lora: what merging a LoRA costs a job. One process, one model:
 * a small txt2img job without the LoRA (run twice, the second timed), the
 * same job with the LoRA (the merge happens in it), and again with the same
 * LoRA (already merged: no cost). Prints
 *   BENCH case=lora_apply ours_s=<lora job - plain job> ...
 * with the merged (converted) bytes and the resident-memory growth they
 * should account for. Usage: bench_lora MODEL LORA [THREADS] [MULT] */
#include "ldm.h"
#include "pipeline/pipeline.h"

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

/* CPU seconds of this process (all threads): on a shared machine the wall
 * clock says how loaded it is, this says what the work cost */
static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
         1e-6 * (double)u.ru_stime.tv_usec;
}

static long long rss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = atoll(line + 6);
  if (f) fclose(f);
  return kb * 1024;
}

static double job(ldm_model *m, const ldm_lora *l, int n, int threads, double *cpu) {
  ldm_job_params jp;
  ldm_job_params_init(&jp, LDM_TASK_TXT2IMG);
  jp.prompt = "a photo of a cat";
  jp.width = jp.height = 64;
  jp.steps = 1;
  jp.sampler = "euler";
  jp.seed = 1;
  jp.threads = threads;
  jp.loras = l;
  jp.n_loras = n;
  ldm_job *j = NULL;
  ldm_error err = {0};
  ldm_image **imgs = NULL;
  int ni = 0;
  double t0 = now(), c0 = cpu_s();
  if (ldm_job_new(&j, m, &jp, &err) != LDM_OK || ldm_job_run(j, &imgs, &ni, &err) != LDM_OK) {
    fprintf(stderr, "bench_lora: %s\n", err.msg);
    exit(1);
  }
  double t = now() - t0;
  if (cpu) *cpu = cpu_s() - c0;
  for (int i = 0; i < ni; i++) ldm_image_free(imgs[i]);
  free(imgs);
  ldm_job_free(j);
  return t;
}

int main(int argc, char **argv) {
  ldm_blas_tune(argv);
  if (argc < 3) {
    fprintf(stderr, "usage: bench_lora MODEL LORA [THREADS] [MULT]\n");
    return 2;
  }
  int threads = argc > 3 ? atoi(argv[3]) : 0;
  if (threads <= 0) threads = ldm_default_threads();
  float mult = argc > 4 ? strtof(argv[4], NULL) : 0.8f;
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = argv[1];
  mp.threads = threads;
  ldm_model *m = NULL;
  ldm_error err = {0};
  if (ldm_model_load(&m, &mp, &err) != LDM_OK) {
    fprintf(stderr, "bench_lora: %s\n", err.msg);
    return 1;
  }
  ldm_lora l = {argv[2], mult};
  double c_plain, c_lora, c_same, c_plain2;
  job(m, NULL, 0, threads, NULL); /* loads the networks, touches every weight */
  double t_plain = job(m, NULL, 0, threads, &c_plain);
  long long rss0 = rss_bytes();
  double t_lora = job(m, &l, 1, threads, &c_lora);
  long long rss1 = rss_bytes();
  double t_same = job(m, &l, 1, threads, &c_same);
  size_t merged = ldm_lora_table_bytes(&m->unet->lora);
  for (int e = 0; e < 2; e++) {
    ldm_clip_text *enc = ldm_text_cond_encoder(m->text, e);
    if (enc) merged += ldm_lora_table_bytes(&enc->lora);
  }
  double t_plain2 = job(m, NULL, 0, threads, &c_plain2); /* restores the file's weights */
  printf("wall: plain job %.3f s, with the LoRA %.3f s (merge), same LoRA again %.3f s, plain again %.3f s\n",
         t_plain, t_lora, t_same, t_plain2);
  printf("cpu:  plain job %.3f s, with the LoRA %.3f s (merge), same LoRA again %.3f s, plain again %.3f s\n",
         c_plain, c_lora, c_same, c_plain2);
  printf("BENCH case=lora_apply ours_s=%.3f ours_cpu_s=%.3f plain_job_s=%.3f lora_job_s=%.3f same_set_job_s=%.3f "
         "merged_mb=%.1f rss_delta_mb=%.1f threads=%d cpu=\"%s\"\n",
         t_lora - t_plain, c_lora - c_plain, t_plain, t_lora, t_same, (double)merged / 1048576.0,
         (double)(rss1 - rss0) / 1048576.0, threads, ldm_cpu_features());
  ldm_model_free(m);
  return 0;
}
