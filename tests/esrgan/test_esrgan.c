/* ESRGAN-class goldens vs spandrel 0.4.2 (tests/reference/make_esrgan.py):
 * RRDBNet with old ESRGAN and Real-ESRGAN keys at x4, x2 (pixel-unshuffle 2)
 * and x1 (pixel-unshuffle 4), SRVGGNetCompact at x4 and x2, through the
 * `ldm eval esrgan` harness; detection (architecture, key layout, scale,
 * blocks) from the tensors; tiled against one piece (PSNR >= 45 dB) and
 * against the reference.
 * Tolerance: max abs error <= 1e-4 against spandrel's outputs. */
#include "ldm_test.h"

#include <unistd.h>

#include "core/status.h"
#include "io/source.h"
#include "models/esrgan/esrgan.h"

#define TOL 1e-4
#define MIN_TILED_DB 45.0

static char tmpdir[1024];

/* Runs the harness on golden input `in_name` and returns the output
 * (malloc'd, *n elements), or NULL after a failed check. */
static float *eval(const char *model, const char *in_name, const char *options, int64_t *n) {
  char model_path[4096], in_path[4096], out_path[4096];
  ldm_test_golden(model, model_path, sizeof model_path);
  snprintf(in_path, sizeof in_path, "%s/in.safetensors", tmpdir);
  snprintf(out_path, sizeof out_path, "%s/out.safetensors", tmpdir);
  ldm_error err = {0};
  ldm_st_file *g = ldm_test_open_golden("esrgan/esrgan_io.safetensors");
  ldm_tensor t = *ldm_st_find(g, in_name);
  t.name = "image";
  CHECK(ldm_st_write(in_path, &t, 1, NULL, &err) == LDM_OK, "write input: %s", err.msg);
  ldm_st_close(g);
  ldm_eval_params p = {.component = "esrgan", .model_path = model_path, .in_path = in_path,
                       .out_path = out_path, .options = options, .threads = 2};
  ldm_status st = ldm_eval_run(&p, &err);
  CHECK(st == LDM_OK, "%s: eval esrgan failed: %s", model, err.msg);
  if (st != LDM_OK) return NULL;
  ldm_st_file *o = NULL;
  CHECK(ldm_st_open(&o, out_path, &err) == LDM_OK, "open output: %s", err.msg);
  if (!o) return NULL;
  ldm_tensor s;
  float *y = ldm_test_tensor_f32(o, "image", &s);
  *n = ldm_tensor_numel(&s);
  ldm_st_close(o);
  return y;
}

static void golden(const char *name, ldm_sr_arch arch, ldm_sr_keys keys, int scale, int blocks, int shuffle) {
  char model[256], in_name[128], out_name[128], path[4096];
  snprintf(model, sizeof model, "esrgan/%s.safetensors", name);
  snprintf(in_name, sizeof in_name, "%s_in", name);
  snprintf(out_name, sizeof out_name, "%s_out", name);
  /* detection */
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_sr_config c;
  CHECK(ldm_source_open(&src, ldm_test_golden(model, path, sizeof path), &err) == LDM_OK, "%s", err.msg);
  CHECK(src && ldm_sr_probe(src, &c, &err) == LDM_OK, "%s: probe: %s", name, err.msg);
  char desc[160];
  ldm_sr_describe(&c, desc, sizeof desc);
  printf("%s: %s\n", name, desc);
  CHECK(c.arch == arch && c.keys == keys && c.scale == scale && c.n_blocks == blocks && c.shuffle == shuffle,
        "%s: detected arch %d keys %d scale %d blocks %d shuffle %d, expected %d %d %d %d %d", name, c.arch, c.keys,
        c.scale, c.n_blocks, c.shuffle, arch, keys, scale, blocks, shuffle);
  ldm_source_close(src);
  /* outputs */
  int64_t n = 0;
  float *got = eval(model, in_name, NULL, &n);
  ldm_st_file *g = ldm_test_open_golden("esrgan/esrgan_io.safetensors");
  ldm_tensor rs;
  float *ref = ldm_test_tensor_f32(g, out_name, &rs);
  CHECK(!got || n == ldm_tensor_numel(&rs), "%s: %lld outputs, expected %lld", name, (long long)n,
        (long long)ldm_tensor_numel(&rs));
  if (got && n == ldm_tensor_numel(&rs)) ldm_test_close(name, got, ref, n, TOL, 0);
  free(got);
  free(ref);
  ldm_st_close(g);
}

static double psnr(const float *a, const float *b, int64_t n) {
  double se = 0;
  for (int64_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return se == 0 ? INFINITY : 10 * log10((double)n / se); /* peak 1 */
}

/* One piece vs spandrel, then tiles vs one piece (PSNR) and vs spandrel. */
static void tiled(const char *name, const char *options) {
  char model[256], ref_name[128], label[256];
  snprintf(model, sizeof model, "esrgan/%s.safetensors", name);
  snprintf(ref_name, sizeof ref_name, "%s_big_out", name);
  ldm_st_file *g = ldm_test_open_golden("esrgan/esrgan_io.safetensors");
  ldm_tensor rs;
  float *ref = ldm_test_tensor_f32(g, ref_name, &rs);
  int64_t n1 = 0, n2 = 0;
  float *whole = eval(model, "big_in", NULL, &n1), *tl = eval(model, "big_in", options, &n2);
  if (whole && tl && n1 == ldm_tensor_numel(&rs) && n2 == n1) {
    snprintf(label, sizeof label, "%s 44x60 one piece", name);
    ldm_test_close(label, whole, ref, n1, TOL, 0);
    double db = psnr(tl, whole, n1), db_ref = psnr(tl, ref, n1);
    printf("%s tiled (%s) vs one piece: psnr=%.1f dB (min %.0f); vs spandrel one piece: %.1f dB\n", name, options, db,
           MIN_TILED_DB, db_ref);
    CHECK(db >= MIN_TILED_DB, "%s: tiled vs one piece %.1f dB < %.0f", name, db, MIN_TILED_DB);
  } else {
    CHECK(0, "%s: tiled outputs missing or of the wrong size", name);
  }
  free(whole);
  free(tl);
  free(ref);
  ldm_st_close(g);
}

/* Files that are not ESRGAN-class nets are told apart (arch NONE), broken
 * ones refused with the tensor's name. */
static void detection_errors(void) {
  char path[4096];
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_sr_config c;
  CHECK(ldm_source_open(&src, ldm_test_golden("vae/kl2.safetensors", path, sizeof path), &err) == LDM_OK, "%s",
        err.msg);
  CHECK(src && ldm_sr_probe(src, &c, &err) == LDM_OK && c.arch == LDM_SR_NONE, "a VAE file probed as an SR net");
  ldm_source_close(src);
  /* an RRDBNet without its last conv */
  ldm_st_file *f = ldm_test_open_golden("esrgan/rrdb_new_x4.safetensors");
  int64_t cnt = ldm_st_count(f);
  ldm_tensor *ts = calloc((size_t)cnt, sizeof *ts);
  int k = 0;
  for (int64_t i = 0; i < cnt; i++) {
    const ldm_tensor *t = ldm_st_at(f, i);
    if (strcmp(t->name, "conv_hr.weight") != 0) ts[k++] = *t;
  }
  snprintf(path, sizeof path, "%s/broken.safetensors", tmpdir);
  CHECK(ldm_st_write(path, ts, k, NULL, &err) == LDM_OK, "%s", err.msg);
  ldm_st_close(f);
  free(ts);
  ldm_sr *sr = NULL;
  CHECK(ldm_source_open(&src, path, &err) == LDM_OK, "%s", err.msg);
  ldm_status st = src ? ldm_sr_load(&sr, src, &err) : LDM_ERR_IO;
  printf("missing conv_hr: %s\n", err.msg);
  CHECK(st == LDM_ERR_MISSING && strstr(err.msg, "conv_hr.weight"), "missing conv_hr: status %d '%s'", st, err.msg);
  ldm_sr_free(sr);
  ldm_source_close(src);
}

/* Through the public job API: an F32 picture in, F32 out (no 1/255
 * rounding anywhere) equals spandrel's output clamped to 0..1; ldm_model_info
 * names the kind; a progress callback that returns non-zero cancels. */
static int cancel_at_first(void *user, int step, int total, double el, const ldm_image *prev) {
  (void)el;
  (void)prev;
  (void)total;
  *(int *)user = step;
  return 1;
}

static void job_api(void) {
  char path[4096];
  ldm_error err = {0};
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = ldm_test_golden("esrgan/compact_x4.safetensors", path, sizeof path);
  mp.threads = 2;
  ldm_model *m = NULL;
  CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "load: %s", err.msg);
  if (!m) return;
  ldm_model_info info;
  ldm_model_get_info(m, &info);
  CHECK(info.feed_forward && info.scale == 4 && !strcmp(info.family, "srvgg"), "info: ff %d scale %d family %s",
        info.feed_forward, info.scale, info.family);
  ldm_st_file *g = ldm_test_open_golden("esrgan/esrgan_io.safetensors");
  ldm_tensor xs, ys;
  float *x = ldm_test_tensor_f32(g, "compact_x4_in", &xs), *ref = ldm_test_tensor_f32(g, "compact_x4_out", &ys);
  int H = (int)xs.shape[2], W = (int)xs.shape[3];
  ldm_image *in = ldm_image_new(W, H, 3, LDM_PIXEL_F32);
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < H * W; i++) ((float *)in->data)[i * 3 + c] = x[c * H * W + i];
  ldm_job_params jp;
  ldm_job_params_init(&jp, LDM_TASK_UPSCALE);
  jp.init = in;
  jp.output_type = LDM_PIXEL_F32;
  ldm_job *job = NULL;
  ldm_image **imgs = NULL;
  int n = 0;
  CHECK(ldm_job_new(&job, m, &jp, &err) == LDM_OK, "job: %s", err.msg);
  ldm_status st = job ? ldm_job_run(job, &imgs, &n, &err) : LDM_ERR_INTERNAL;
  CHECK(st == LDM_OK && n == 1, "run: %s", err.msg);
  if (st == LDM_OK && n == 1) {
    const ldm_image *o = imgs[0];
    CHECK(o->width == 4 * W && o->height == 4 * H && o->channels == 3 && o->type == LDM_PIXEL_F32,
          "output %dx%d c%d t%d", o->width, o->height, o->channels, (int)o->type);
    int64_t N = (int64_t)16 * H * W;
    float *got = malloc((size_t)N * 3 * sizeof(float)), *r = malloc((size_t)N * 3 * sizeof(float));
    for (int64_t i = 0; i < N; i++)
      for (int c = 0; c < 3; c++) {
        got[c * N + i] = ((const float *)o->data)[i * 3 + c];
        float v = ref[c * N + i];
        r[c * N + i] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    ldm_test_close("job F32 in/out vs spandrel (clamped)", got, r, 3 * N, TOL, 0);
    free(got);
    free(r);
  }
  for (int i = 0; i < n; i++) ldm_image_free(imgs[i]);
  free(imgs);
  ldm_job_free(job);
  /* cancel from the progress callback, tiles of 32 output pixels */
  int seen = 0;
  jp.tile_size = 32;
  jp.progress = cancel_at_first;
  jp.progress_user = &seen;
  job = NULL;
  imgs = NULL;
  n = 0;
  CHECK(ldm_job_new(&job, m, &jp, &err) == LDM_OK, "job: %s", err.msg);
  st = job ? ldm_job_run(job, &imgs, &n, &err) : LDM_ERR_INTERNAL;
  printf("cancel at the first tile: %s (%s)\n", ldm_status_str(st), err.msg);
  CHECK(st == LDM_ERR_CANCELLED && seen == 1 && n == 0 && !imgs, "cancel: status %d after step %d", st, seen);
  ldm_job_free(job);
  /* a diffusion task on an upscaler is refused */
  ldm_job_params_init(&jp, LDM_TASK_TXT2IMG);
  CHECK(ldm_job_new(&job, m, &jp, &err) == LDM_ERR_INVALID_ARG, "txt2img on an upscaler accepted");
  ldm_image_free(in);
  free(x);
  free(ref);
  ldm_st_close(g);
  ldm_model_free(m);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ldm-test-esrgan-XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  golden("rrdb_old_x4", LDM_SR_RRDB, LDM_SR_KEYS_OLD, 4, 2, 1);
  golden("rrdb_new_x4", LDM_SR_RRDB, LDM_SR_KEYS_REALESRGAN, 4, 1, 1);
  golden("rrdb_new_x2", LDM_SR_RRDB, LDM_SR_KEYS_REALESRGAN, 2, 1, 2);
  golden("rrdb_old_x1", LDM_SR_RRDB, LDM_SR_KEYS_OLD, 1, 1, 4);
  golden("compact_x4", LDM_SR_COMPACT, LDM_SR_KEYS_COMPACT, 4, 4, 1);
  golden("compact_x2", LDM_SR_COMPACT, LDM_SR_KEYS_COMPACT, 2, 2, 1);
  tiled("rrdb_old_x4", "tile=24,overlap=8");
  tiled("rrdb_old_x4", "tile=36,overlap=16");
  tiled("compact_x4", "tile=24,overlap=8");
  detection_errors();
  job_api();
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
  return ldm_test_finish("esrgan");
}
