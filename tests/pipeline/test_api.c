/* Public job API on the tiny golden SD1 pipeline: cancel from another thread
 * (a 50-step job stopped after step 3 returns before step 5 starts), one
 * model serving sequential jobs, batch seeds (image i == a job with seed+i),
 * outpaint keeping the original area, and clear errors for bad jobs.
 * Run under ASan in the sanitizer build: no leak on any path. */
#include "ldm_test.h"
#include "core/arena.h"
#include "core/threads.h"
#include "pipeline/pipeline.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <time.h>

static char model_path[4096];

static ldm_model *load(const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/pipeline/%s", getenv("LDM_GOLDEN_DIR"), name);
  snprintf(model_path, sizeof model_path, "%s", p);
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = p;
  mp.threads = 2;
  ldm_error err = {0};
  ldm_model *m = NULL;
  if (ldm_model_load(&m, &mp, &err) != LDM_OK) {
    fprintf(stderr, "FAIL: cannot load %s: %s\n", p, err.msg);
    exit(1);
  }
  return m;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct cancel_state {
  ldm_job *job;
  atomic_int last_step;
  atomic_int go, cancelled;
  double t_step[64];
  double t_cancel;
} cancel_state;

static int on_progress(void *user, int step, int total, double elapsed, const ldm_image *preview) {
  cancel_state *cs = user;
  (void)total;
  (void)elapsed;
  (void)preview;
  if (step < 64) cs->t_step[step] = now();
  atomic_store(&cs->last_step, step);
  if (step == 3) {
    atomic_store(&cs->go, 1);
    /* wait (up to 30 s) until the other thread has cancelled: on a busy
     * machine it may not be scheduled for several steps, and "within one
     * step" is about the job, not the scheduler */
    for (int i = 0; i < 150000 && !atomic_load(&cs->cancelled); i++) {
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
  }
  return 0;
}

static void *canceller(void *arg) {
  cancel_state *cs = arg;
  while (!atomic_load(&cs->go)) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  cs->t_cancel = now();
  ldm_job_cancel(cs->job);
  atomic_store(&cs->cancelled, 1);
  return NULL;
}

static void test_cancel(ldm_model *m) {
  cancel_state cs = {0};
  ldm_job_params p;
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.prompt = "a red circle";
  p.width = 64;
  p.height = 64;
  p.steps = 50;
  p.sampler = "euler";
  p.progress = on_progress;
  p.progress_user = &cs;
  p.want_preview = true;
  ldm_error err = {0};
  CHECK(ldm_job_new(&cs.job, m, &p, &err) == LDM_OK, "job: %s", err.msg);
  pthread_t th;
  pthread_create(&th, NULL, canceller, &cs);
  ldm_image **imgs = NULL;
  int n = 0;
  ldm_status st = ldm_job_run(cs.job, &imgs, &n, &err);
  double t_end = now();
  pthread_join(th, NULL);
  int last = atomic_load(&cs.last_step);
  double step_s = cs.t_step[3] - cs.t_step[2];
  printf("cancel: status %s after step %d of 50; returned %.4f s after cancel (one step %.4f s)\n",
         ldm_status_str(st), last, t_end - cs.t_cancel, step_s);
  CHECK(st == LDM_ERR_CANCELLED && imgs == NULL && n == 0, "cancelled job: status %s", ldm_status_str(st));
  CHECK(last >= 3 && last <= 4, "cancel honoured within one step: last step %d", last);
  ldm_job_free(cs.job);
}

static int run_job(ldm_model *m, const ldm_job_params *p, ldm_image ***imgs, int *n, ldm_error *err) {
  ldm_job *j = NULL;
  ldm_status st = ldm_job_new(&j, m, p, err);
  if (st == LDM_OK) st = ldm_job_run(j, imgs, n, err);
  ldm_job_free(j);
  return st;
}

static void free_images(ldm_image **imgs, int n) {
  for (int i = 0; i < n; i++) ldm_image_free(imgs[i]);
  free(imgs);
}

static int same_image(const ldm_image *a, const ldm_image *b) {
  if (a->width != b->width || a->height != b->height) return 0;
  for (int y = 0; y < a->height; y++)
    if (memcmp((char *)a->data + y * a->stride, (char *)b->data + y * b->stride, (size_t)a->width * 3)) return 0;
  return 1;
}

/* Largest difference of one channel of one pixel, in 8-bit levels (-1: sizes differ). */
static int max_level_diff(const ldm_image *a, const ldm_image *b) {
  if (a->width != b->width || a->height != b->height) return -1;
  int worst = 0;
  for (int y = 0; y < a->height; y++) {
    const unsigned char *ra = (const unsigned char *)a->data + y * a->stride;
    const unsigned char *rb = (const unsigned char *)b->data + y * b->stride;
    for (int i = 0; i < a->width * 3; i++) {
      int d = abs((int)ra[i] - (int)rb[i]);
      if (d > worst) worst = d;
    }
  }
  return worst;
}

static void test_batch_and_reuse(ldm_model *m) {
  ldm_job_params p;
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.prompt = "a blue square";
  p.width = 32;
  p.height = 40;
  p.steps = 4;
  p.seed = 77;
  p.batch_count = 2;
  ldm_image **a = NULL, **b = NULL;
  int na = 0, nb = 0;
  ldm_error err = {0};
  CHECK(run_job(m, &p, &a, &na, &err) == LDM_OK && na == 2, "batch: %s", err.msg);
  p.seed = 78;
  p.batch_count = 1;
  CHECK(run_job(m, &p, &b, &nb, &err) == LDM_OK && nb == 1, "second job on the same model: %s", err.msg);
  if (na == 2 && nb == 1) {
    CHECK(a[0]->width == 32 && a[0]->height == 40, "size %dx%d", a[0]->width, a[0]->height);
    CHECK(same_image(a[1], b[0]), "batch image 1 equals a job with seed + 1");
    CHECK(!same_image(a[0], a[1]), "batch images differ");
  }
  free_images(a, na);
  free_images(b, nb);
}

/* Prompt encodings kept with the model: prompts that come back (and a
 * changed CLIP skip) give the images of a fresh model, bit for bit. */
static ldm_image *prompt_image(ldm_model *m, const char *prompt, int clip_skip) {
  ldm_job_params p;
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.prompt = prompt;
  p.negative_prompt = "blurry";
  p.cfg_scale = 5.0f;
  p.clip_skip = clip_skip;
  p.width = 32;
  p.height = 32;
  p.steps = 2;
  p.seed = 5;
  ldm_image **imgs = NULL, *r = NULL;
  int n = 0;
  ldm_error err = {0};
  CHECK(run_job(m, &p, &imgs, &n, &err) == LDM_OK && n == 1, "job '%s': %s", prompt, err.msg);
  if (n == 1) r = imgs[0];
  free(imgs);
  return r;
}

static void test_prompt_memo(ldm_model *m) {
  static const char *const prompts[] = {"a red circle", "a green square", "a red circle", "a red circle"};
  static const int skips[] = {1, 1, 1, 2};
  ldm_image *fresh[4] = {0}, *got[4] = {0};
  for (int i = 0; i < 4; i++) {
    ldm_model *f = load("sd1.safetensors");
    if (f) fresh[i] = prompt_image(f, prompts[i], skips[i]);
    ldm_model_free(f);
  }
  for (int i = 0; i < 4; i++) got[i] = prompt_image(m, prompts[i], skips[i]);
  int same = 1;
  for (int i = 0; i < 4; i++) same &= got[i] && fresh[i] && same_image(got[i], fresh[i]);
  CHECK(same, "jobs after other prompts on one model differ from a fresh model's");
  if (fresh[0] && fresh[1] && fresh[3])
    CHECK(!same_image(fresh[0], fresh[1]) && !same_image(fresh[0], fresh[3]),
          "the prompts / CLIP skips chosen change nothing");
  printf("prompt memo: 4 jobs on one model equal a fresh model's\n");
  for (int i = 0; i < 4; i++) {
    ldm_image_free(fresh[i]);
    ldm_image_free(got[i]);
  }
}

/* A model with the prepared-weight cache gives the same image on the job that
 * fills the cache and on the next one (bit for bit), and the image of a model
 * without it to within one 8-bit level: without the cache small products stream
 * the stored weight (ops_gemm_stream, LDM_CONV_STREAM) where the cache's
 * prepared weights go to im2col/Winograd, another summation order, so a pixel
 * whose float value lies at a rounding boundary may round the other way (seen on
 * an Intel Xeon with OpenBLAS 0.3.21; bit-equal on an AMD EPYC). A wrong or stale
 * cache entry moves whole regions by far more. */
static void test_weight_cache(ldm_model *plain) {
  char p_[4096];
  snprintf(p_, sizeof p_, "%s", model_path);
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = p_;
  mp.threads = 2;
  mp.weight_cache_mb = -1;
  ldm_error err = {0};
  ldm_model *m = NULL;
  CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "load with weight cache: %s", err.msg);
  if (!m) return;
  ldm_job_params p;
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.prompt = "a red circle";
  p.width = 64;
  p.height = 48;
  p.steps = 3;
  p.seed = 5;
  ldm_image **a = NULL, **b = NULL, **c = NULL, **d = NULL, **e = NULL;
  int na = 0, nb = 0, nc = 0, nd = 0, ne = 0;
  CHECK(run_job(plain, &p, &a, &na, &err) == LDM_OK, "plain: %s", err.msg);
  CHECK(!plain->job_pool && !plain->job_scratch, "a model without a weight cache keeps a job's pool or arena");
  CHECK(run_job(m, &p, &b, &nb, &err) == LDM_OK, "cache filling: %s", err.msg);
  /* the model keeps the job's threads and scratch: the next job of the
   * same size takes no new memory for it */
  size_t kept = m->job_scratch ? ldm_arena_reserved(m->job_scratch) : 0;
  const void *pool = m->job_pool;
  CHECK(run_job(m, &p, &c, &nc, &err) == LDM_OK, "cache reused: %s", err.msg);
  CHECK(m->job_pool && m->job_pool == pool && m->job_scratch && kept > 0 &&
            ldm_arena_reserved(m->job_scratch) == kept && ldm_arena_in_use(m->job_scratch) == 0,
        "kept job scratch: %zu B after the first job, %zu B after the second, %zu B left in use", kept,
        m->job_scratch ? ldm_arena_reserved(m->job_scratch) : 0, m->job_scratch ? ldm_arena_in_use(m->job_scratch) : 0);
  printf("weight cache: the job scratch kept with the model: %zu MiB, the same after a second job\n", kept >> 20);
  /* a larger job on one thread (a new pool) in between; then the first
   * job's image again: nothing of the kept memory's contents leaks */
  ldm_job_params q = p;
  q.width = 96;
  q.height = 80;
  q.threads = 1;
  CHECK(run_job(m, &q, &d, &nd, &err) == LDM_OK && nd == 1, "larger job on one thread: %s", err.msg);
  CHECK(m->job_pool && ldm_pool_size(m->job_pool) == 1, "the kept pool does not follow the job's thread count");
  CHECK(run_job(m, &p, &e, &ne, &err) == LDM_OK, "first job again: %s", err.msg);
  if (na == 1 && nb == 1 && nc == 1 && ne == 1) {
    int dl = max_level_diff(a[0], b[0]);
    printf("weight cache: max difference without vs with the cache: %d level(s) (at most 1)\n", dl);
    CHECK(dl >= 0 && dl <= 1, "weight cache changes the image by %d levels", dl);
    CHECK(same_image(b[0], c[0]), "the reused weight cache changes the image");
    CHECK(same_image(c[0], e[0]), "the job after a larger one on the kept scratch differs");
  }
  free_images(a, na), free_images(b, nb), free_images(c, nc), free_images(d, nd), free_images(e, ne);
  mp.weight_cache_mb = -2;
  ldm_model *bad = NULL;
  CHECK(ldm_model_load(&bad, &mp, &err) == LDM_ERR_INVALID_ARG && !bad, "weight cache -2 accepted");
  ldm_model_free(m);
}

static void test_outpaint(ldm_model *m) {
  ldm_image *init = ldm_image_new(40, 24, 4, LDM_PIXEL_U8);
  for (int y = 0; y < 24; y++)
    for (int x = 0; x < 40; x++) {
      unsigned char *px = (unsigned char *)init->data + y * init->stride + 4 * x;
      px[0] = (unsigned char)(x * 6);
      px[1] = (unsigned char)(y * 10);
      px[2] = 200;
      px[3] = 255;
    }
  ldm_job_params p;
  ldm_job_params_init(&p, LDM_TASK_OUTPAINT);
  p.prompt = "sky";
  p.steps = 4;
  p.init = init;
  p.outpaint_left = 8;
  p.outpaint_right = 16;
  p.outpaint_top = 8;
  p.outpaint_bottom = 0;
  ldm_image **o = NULL;
  int n = 0;
  ldm_error err = {0};
  CHECK(run_job(m, &p, &o, &n, &err) == LDM_OK && n == 1, "outpaint: %s", err.msg);
  if (n == 1) {
    CHECK(o[0]->width == 64 && o[0]->height == 32, "outpaint size %dx%d", o[0]->width, o[0]->height);
    int changed = 0;
    for (int y = 0; y < 24; y++)
      for (int x = 0; x < 40; x++) {
        const unsigned char *a = (unsigned char *)init->data + y * init->stride + 4 * x;
        const unsigned char *b = (unsigned char *)o[0]->data + (y + 8) * o[0]->stride + 3 * (x + 8);
        changed += memcmp(a, b, 3) != 0;
      }
    printf("outpaint: %d of %d original pixels changed\n", changed, 40 * 24);
    CHECK(changed == 0, "outpaint changed %d original pixels", changed);
  }
  free_images(o, n);
  ldm_image_free(init);
}

static void test_errors(ldm_model *m) {
  ldm_job_params p;
  ldm_job *j = NULL;
  ldm_error err = {0};
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.width = 30;
  CHECK(ldm_job_new(&j, m, &p, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "multiples of 8"), "size: %s",
        err.msg);
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.sampler = "nope";
  CHECK(ldm_job_new(&j, m, &p, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "nope"), "sampler: %s", err.msg);
  ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
  p.steps = 0;
  CHECK(ldm_job_new(&j, m, &p, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "steps"), "steps: %s", err.msg);
  ldm_job_params_init(&p, LDM_TASK_IMG2IMG);
  CHECK(ldm_job_new(&j, m, &p, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "init"), "no init: %s", err.msg);
  ldm_image *img = ldm_image_new(16, 16, 3, LDM_PIXEL_U8), *mask = ldm_image_new(8, 8, 1, LDM_PIXEL_F32);
  ldm_job_params_init(&p, LDM_TASK_INPAINT);
  p.init = img;
  p.mask = mask;
  ldm_image **o = NULL;
  int n = 0;
  CHECK(run_job(m, &p, &o, &n, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "mask is 8x8"), "mask size: %s",
        err.msg);
  ldm_image_free(mask);
  mask = ldm_image_new(16, 16, 1, LDM_PIXEL_F32); /* all zero */
  p.mask = mask;
  CHECK(run_job(m, &p, &o, &n, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "empty"), "empty mask: %s",
        err.msg);
  ldm_job_params_init(&p, LDM_TASK_UPSCALE);
  p.init = img;
  CHECK(run_job(m, &p, &o, &n, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "upscale"), "upscale: %s", err.msg);
  printf("errors: %s\n", err.msg);
  ldm_image_free(img);
  ldm_image_free(mask);
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  ldm_model *bad = NULL;
  mp.path = "/nonexistent/model.safetensors";
  CHECK(ldm_model_load(&bad, &mp, &err) == LDM_ERR_IO && strstr(err.msg, "/nonexistent/model.safetensors"),
        "missing model: %s", err.msg);
  mp.path = model_path;
  mp.options = "unet.heads=x";
  CHECK(ldm_model_load(&bad, &mp, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "unet.heads"), "options: %s",
        err.msg);
}

static int preview_w, preview_h, previews;
static unsigned char last_preview[48 * 32 * 3];
static int on_preview(void *user, int step, int total, double elapsed, const ldm_image *preview) {
  (void)user; (void)step; (void)total; (void)elapsed;
  if (preview) {
    preview_w = preview->width;
    preview_h = preview->height;
    previews++;
    if (preview->width * preview->height * 3 == (int)sizeof last_preview)
      memcpy(last_preview, preview->data, sizeof last_preview);
  }
  return 0;
}

static double mean_abs_diff(const unsigned char *a, const unsigned char *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
  return s / (double)n;
}

/* A TAESD given with the model decodes the per-step previews at full size;
 * without one, the preview is the latent-sized linear approximation. */
static void test_previews(void) {
  char model[4096], taesd[4096];
  snprintf(model, sizeof model, "%s/pipeline/sd1.safetensors", getenv("LDM_GOLDEN_DIR"));
  snprintf(taesd, sizeof taesd, "%s/vae/taesd_decoder.safetensors", getenv("LDM_GOLDEN_DIR"));
  for (int with_taesd = 0; with_taesd < 2; with_taesd++) {
    ldm_model_params mp;
    ldm_model_params_init(&mp);
    mp.path = model;
    mp.taesd_path = with_taesd ? taesd : NULL;
    ldm_model *m = NULL;
    ldm_error err = {0};
    CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "load with taesd: %s", err.msg);
    if (!m) return;
    ldm_job_params p;
    ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
    p.width = 48;
    p.height = 32;
    p.steps = 3;
    p.want_preview = true;
    p.progress = on_preview;
    ldm_image **o = NULL;
    int n = 0;
    previews = preview_w = preview_h = 0;
    CHECK(run_job(m, &p, &o, &n, &err) == LDM_OK, "preview job: %s", err.msg);
    int want_w = with_taesd ? 48 : 6, want_h = with_taesd ? 32 : 4;
    printf("preview %s: %d previews of %dx%d\n", with_taesd ? "taesd" : "linear", previews, preview_w, preview_h);
    CHECK(previews == 3 && preview_w == want_w && preview_h == want_h, "preview %dx%d, expected %dx%d",
          preview_w, preview_h, want_w, want_h);
    /* the same job with the TAESD as final decoder: its image is the last
     * preview (the TAESD decode of the last step's denoised estimate, which
     * euler_a's last step returns: equal up to float rounding, so at most a
     * few pixels one level apart), not the VAE's */
    ldm_image **t = NULL;
    int nt = 0;
    p.taesd_decode = true;
    p.want_preview = false;
    ldm_status st = run_job(m, &p, &t, &nt, &err);
    if (!with_taesd) {
      CHECK(st == LDM_ERR_INVALID_ARG && strstr(err.msg, "TAESD"), "taesd decode without a TAESD: %d %s", st,
            err.msg);
    } else if (st == LDM_OK && nt == 1 && n == 1 && t[0]->width == 48 && t[0]->height == 32) {
      size_t bytes = sizeof last_preview;
      double d_prev = mean_abs_diff(t[0]->data, last_preview, bytes);
      double d_vae = mean_abs_diff(t[0]->data, o[0]->data, bytes);
      printf("taesd final decode: mean |diff| %.4f vs last preview (tol 0.01), %.3f vs VAE decode\n", d_prev, d_vae);
      CHECK(d_prev <= 0.01 && d_vae > 1.0, "taesd final decode: %.4f vs preview, %.3f vs VAE", d_prev, d_vae);
    } else {
      CHECK(0, "taesd final decode job: %s (%d images)", err.msg, nt);
    }
    free_images(t, nt);
    ldm_job_params up;
    ldm_job_params_init(&up, LDM_TASK_UPSCALE);
    up.taesd_decode = true;
    up.init = o[0];
    ldm_job *j = NULL;
    st = ldm_job_new(&j, m, &up, &err);
    CHECK(st == LDM_ERR_INVALID_ARG && j == NULL, "taesd decode for upscale: %d %s", st, err.msg);
    ldm_job_free(j);
    free_images(o, n);
    ldm_model_free(m);
  }
}

/* TAESD encode (ldm_job_params.taesd_encode, for live painting): img2img
 * with the init image through a whole AutoencoderTiny's encoder runs and
 * gives another picture than the VAE encoder (the encoder's numbers are
 * checked against diffusers by the taesd-encode golden of test_vae); without
 * a TAESD, with a decoder-only TAESD and for the x4 upscaler it is refused
 * with a message naming TAESD. */
static void test_taesd_encode(void) {
  char model[4096], taesd[4096], dec_only[4096];
  snprintf(model, sizeof model, "%s/pipeline/sd1.safetensors", getenv("LDM_GOLDEN_DIR"));
  snprintf(taesd, sizeof taesd, "%s/vae/taesd", getenv("LDM_GOLDEN_DIR"));
  snprintf(dec_only, sizeof dec_only, "%s/vae/taesd_decoder.safetensors", getenv("LDM_GOLDEN_DIR"));
  ldm_image *init = ldm_image_new(48, 32, 3, LDM_PIXEL_U8);
  for (int y = 0; y < 32; y++)
    for (int x = 0; x < 48 * 3; x++)
      ((unsigned char *)init->data)[y * init->stride + x] = (unsigned char)(x * 5 + y * 7);
  ldm_image **with[2] = {NULL, NULL};
  int n[2] = {0, 0};
  for (int k = 0; k < 3; k++) {
    ldm_model_params mp;
    ldm_model_params_init(&mp);
    mp.path = model;
    mp.taesd_path = k == 0 ? taesd : k == 1 ? dec_only : NULL;
    ldm_model *m = NULL;
    ldm_error err = {0};
    CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "load: %s", err.msg);
    if (!m) continue;
    ldm_job_params p;
    ldm_job_params_init(&p, LDM_TASK_IMG2IMG);
    p.prompt = "a red circle";
    p.steps = 4;
    p.strength = 0.5f;
    p.seed = 3;
    p.init = init;
    p.taesd_encode = true;
    if (k == 0) {
      CHECK(run_job(m, &p, &with[0], &n[0], &err) == LDM_OK && n[0] == 1, "img2img with TAESD encode: %s", err.msg);
      p.taesd_encode = false;
      CHECK(run_job(m, &p, &with[1], &n[1], &err) == LDM_OK && n[1] == 1, "img2img with the VAE encoder: %s", err.msg);
      if (n[0] == 1 && n[1] == 1) {
        CHECK(with[0][0]->width == 48 && with[0][0]->height == 32, "TAESD encode: size %dx%d", with[0][0]->width,
              with[0][0]->height);
        CHECK(!same_image(with[0][0], with[1][0]), "TAESD encode gives another picture than the VAE encoder");
      }
      ldm_job_params up;
      ldm_job_params_init(&up, LDM_TASK_UPSCALE);
      up.taesd_encode = true;
      up.init = init;
      ldm_job *j = NULL;
      ldm_status st = ldm_job_new(&j, m, &up, &err);
      CHECK(st == LDM_ERR_INVALID_ARG && j == NULL && strstr(err.msg, "TAESD"), "TAESD encode for upscale: %d %s", st,
            err.msg);
      ldm_job_free(j);
    } else {
      ldm_image **o = NULL;
      int no = 0;
      ldm_status st = run_job(m, &p, &o, &no, &err);
      CHECK(st != LDM_OK && strstr(err.msg, "TAESD"), "TAESD encode %s: refused (%d %s)",
            k == 1 ? "with a decoder-only TAESD" : "without a TAESD", st, err.msg);
      printf("taesd encode %s: %s\n", k == 1 ? "decoder-only" : "no TAESD", err.msg);
      free_images(o, no);
    }
    ldm_model_free(m);
  }
  free_images(with[0], n[0]);
  free_images(with[1], n[1]);
  ldm_image_free(init);
}

int main(void) {
  ldm_model *m = load("sd1.safetensors");
  test_cancel(m);
  test_batch_and_reuse(m);
  test_prompt_memo(m);
  test_weight_cache(m);
  test_outpaint(m);
  test_errors(m);
  ldm_model_free(m);
  test_previews();
  test_taesd_encode();
  return ldm_test_finish("pipeline-api");
}
