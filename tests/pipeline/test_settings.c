/* Model settings (ldm.h "Model settings"): native size and recommended
 * steps / guidance / sampler read from a single file's __metadata__ and a
 * diffusers folder's model_index.json, validated (a bad value fails the load
 * with a message naming the file, key and value), and the native size used
 * by a job that leaves width/height 0. Files are the golden tiny SD1
 * pipeline with its header rewritten (tensor bytes unchanged) in a
 * temporary folder. Exact checks. */
#include "ldm_test.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[4096];

/* Copies src to dst with the key/value pairs (NULL-terminated list) added
 * to its __metadata__. */
static int rewrite(const char *src, const char *dst, const char *const *kv) {
  FILE *f = fopen(src, "rb");
  if (!f) return -1;
  unsigned char len8[8];
  if (fread(len8, 1, 8, f) != 8) return fclose(f), -1;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
  char *hdr = malloc(n + 1);
  if (!hdr || fread(hdr, 1, n, f) != n) return free(hdr), fclose(f), -1;
  hdr[n] = '\0';
  json_t *root = json_loads(hdr, 0, NULL);
  free(hdr);
  json_t *meta = json_object_get(root, "__metadata__");
  if (!meta) json_object_set_new(root, "__metadata__", meta = json_object());
  for (int i = 0; kv[i] && kv[i + 1]; i += 2) json_object_set_new(meta, kv[i], json_string(kv[i + 1]));
  char *text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
  FILE *o = fopen(dst, "wb");
  if (!o) return free(text), fclose(f), -1;
  for (int i = 0; i < 8; i++) fputc((int)((padded >> (8 * i)) & 0xff), o);
  fwrite(text, 1, tl, o);
  for (size_t i = tl; i < padded; i++) fputc(' ', o);
  free(text);
  char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, k, o);
  fclose(f);
  return fclose(o);
}

static ldm_status load_info(const char *path, ldm_model_info *info, ldm_error *err, ldm_model **keep) {
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = path;
  mp.threads = 2;
  ldm_model *m = NULL;
  memset(info, 0, sizeof *info);
  ldm_status st = ldm_model_load(&m, &mp, err);
  if (st == LDM_OK) ldm_model_get_info(m, info);
  if (keep) *keep = m;
  else ldm_model_free(m);
  return st;
}

static void single_file(void) {
  char src[4096], dst[8192];
  ldm_test_golden("pipeline/sd1.safetensors", src, sizeof src);
  snprintf(dst, sizeof dst, "%s/m.safetensors", tmpdir);
  ldm_model_info info;
  ldm_error err = {0};

  /* none stated: the family's defaults */
  const char *none[] = {NULL};
  CHECK(rewrite(src, dst, none) == 0, "rewrite %s", dst);
  CHECK(load_info(dst, &info, &err, NULL) == LDM_OK, "no settings: %s", err.msg);
  printf("none stated: native %d stated %d, steps %d cfg %g sampler '%s'\n", info.native_size,
         info.native_size_stated, info.rec_steps, (double)info.rec_cfg, info.rec_sampler);
  CHECK(info.native_size == 512 && !info.native_size_stated && info.rec_steps == 0 && info.rec_cfg == 0.0f &&
            info.rec_sampler[0] == '\0',
        "none stated: %d %d %d %g '%s'", info.native_size, info.native_size_stated, info.rec_steps,
        (double)info.rec_cfg, info.rec_sampler);

  const char *spec[] = {"modelspec.resolution", "768x768", NULL};
  rewrite(src, dst, spec);
  CHECK(load_info(dst, &info, &err, NULL) == LDM_OK && info.native_size == 768 && info.native_size_stated,
        "modelspec.resolution 768x768: %d (%s)", info.native_size, err.msg);
  const char *spaced[] = {"modelspec.resolution", "640 x 640", NULL};
  rewrite(src, dst, spaced);
  CHECK(load_info(dst, &info, &err, NULL) == LDM_OK && info.native_size == 640,
        "modelspec.resolution '640 x 640': %d (%s)", info.native_size, err.msg);
  const char *wide[] = {"modelspec.resolution", "1024x576", NULL}; /* same area: sqrt(589824) = 768 */
  rewrite(src, dst, wide);
  CHECK(load_info(dst, &info, &err, NULL) == LDM_OK && info.native_size == 768,
        "modelspec.resolution 1024x576: %d (%s)", info.native_size, err.msg);

  const char *all[] = {"modelspec.resolution", "512x512", "ldm.native_size", "64", "ldm.steps", "25",
                       "ldm.cfg_scale", "2.5", "ldm.sampler", "ddim", NULL};
  rewrite(src, dst, all);
  ldm_model *m = NULL;
  CHECK(load_info(dst, &info, &err, &m) == LDM_OK, "all stated: %s", err.msg);
  printf("all stated: native %d stated %d, steps %d cfg %g sampler '%s'\n", info.native_size,
         info.native_size_stated, info.rec_steps, (double)info.rec_cfg, info.rec_sampler);
  CHECK(info.native_size == 64 && info.native_size_stated && info.rec_steps == 25 && info.rec_cfg == 2.5f &&
            !strcmp(info.rec_sampler, "ddim"),
        "all stated: %d %d %g '%s'", info.native_size, info.rec_steps, (double)info.rec_cfg, info.rec_sampler);
  if (m) { /* width/height 0: the stated native size */
    ldm_job_params p;
    ldm_job_params_init(&p, LDM_TASK_TXT2IMG);
    p.steps = 1;
    ldm_job *job = NULL;
    ldm_image **imgs = NULL;
    int n = 0;
    CHECK(ldm_job_new(&job, m, &p, &err) == LDM_OK && ldm_job_run(job, &imgs, &n, &err) == LDM_OK, "job: %s",
          err.msg);
    if (n == 1) {
      printf("txt2img without a size: %dx%d (native 64)\n", imgs[0]->width, imgs[0]->height);
      CHECK(imgs[0]->width == 64 && imgs[0]->height == 64, "size %dx%d", imgs[0]->width, imgs[0]->height);
      ldm_image_free(imgs[0]);
    }
    free(imgs);
    ldm_job_free(job);
    ldm_model_free(m);
  }
  const char *label[] = {"ldm.sampler", "DPM++ 2M Karras", NULL}; /* A1111 labels are sampler names too */
  rewrite(src, dst, label);
  CHECK(load_info(dst, &info, &err, NULL) == LDM_OK && !strcmp(info.rec_sampler, "DPM++ 2M Karras"),
        "A1111 label: '%s' (%s)", info.rec_sampler, err.msg);

  /* malformed values: LDM_ERR_FORMAT naming the file, key and value */
  const char *bad[][2] = {{"ldm.native_size", "60"},      {"ldm.native_size", "abc"},
                          {"ldm.native_size", "-64"},     {"ldm.native_size", "64px"},
                          {"ldm.native_size", "32768"},   {"modelspec.resolution", "512"},
                          {"modelspec.resolution", "512x"}, {"modelspec.resolution", "500x500"},
                          {"modelspec.resolution", "x512"}, {"modelspec.resolution", "512x512x3"},
                          {"ldm.steps", "0"},             {"ldm.steps", "20.5"},
                          {"ldm.steps", "1001"},          {"ldm.cfg_scale", "nan"},
                          {"ldm.cfg_scale", "200"},       {"ldm.cfg_scale", ""},
                          {"ldm.cfg_scale", "-1"},        {"ldm.sampler", "no_such_sampler"},
                          {"ldm.sampler", ""}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *kv[] = {bad[i][0], bad[i][1], NULL};
    rewrite(src, dst, kv);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", bad[i][1]);
    ldm_status st = load_info(dst, &info, &err, NULL);
    CHECK(st == LDM_ERR_FORMAT && strstr(err.msg, dst) && strstr(err.msg, bad[i][0]) && strstr(err.msg, quoted),
          "%s = '%s': status %d, message '%s'", bad[i][0], bad[i][1], st, err.msg);
    if (i == 0) printf("error: %s\n", err.msg);
  }
  unlink(dst);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void folder(void) {
  char rel[4096], gold[PATH_MAX], dir[8192], path[16384], target[8192];
  if (!realpath(ldm_test_golden("pipeline/sd1", rel, sizeof rel), gold)) {
    CHECK(0, "no golden folder %s", rel);
    return;
  }
  snprintf(dir, sizeof dir, "%s/folder", tmpdir);
  mkdir(dir, 0755);
  const char *parts[] = {"scheduler", "text_encoder", "tokenizer", "unet", "vae"};
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, parts[i]);
    snprintf(target, sizeof target, "%s/%s", gold, parts[i]);
    CHECK(symlink(target, path) == 0, "symlink %s", path);
  }
  snprintf(path, sizeof path, "%s/model_index.json", dir);
  const char *head = "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.31.0\", "
                     "\"scheduler\": [\"diffusers\", \"DDIMScheduler\"], \"text_encoder\": [\"transformers\", "
                     "\"CLIPTextModel\"], \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"], \"unet\": "
                     "[\"diffusers\", \"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"]";
  char text[4096];
  ldm_model_info info;
  ldm_error err = {0};
  snprintf(text, sizeof text, "%s}", head);
  write_text(path, text);
  /* the golden UNet's sample_size 8 times the VAE's 8 (4 levels) */
  CHECK(load_info(dir, &info, &err, NULL) == LDM_OK && info.native_size == 64 && info.native_size_stated &&
            info.rec_steps == 0 && info.rec_cfg == 0.0f && !info.rec_sampler[0],
        "folder without _ldm: native %d stated %d steps %d (%s)", info.native_size, info.native_size_stated,
        info.rec_steps, err.msg);
  snprintf(text, sizeof text,
           "%s, \"_ldm\": {\"native_size\": 128, \"steps\": 30, \"cfg_scale\": 3.5, \"sampler\": \"euler\"}}", head);
  write_text(path, text);
  CHECK(load_info(dir, &info, &err, NULL) == LDM_OK, "folder with _ldm: %s", err.msg);
  printf("folder _ldm: native %d, steps %d cfg %g sampler '%s'\n", info.native_size, info.rec_steps,
         (double)info.rec_cfg, info.rec_sampler);
  CHECK(info.native_size == 128 && info.rec_steps == 30 && info.rec_cfg == 3.5f && !strcmp(info.rec_sampler, "euler"),
        "folder _ldm: %d %d %g '%s'", info.native_size, info.rec_steps, (double)info.rec_cfg, info.rec_sampler);
  const char *bad[][2] = {{"\"steps\": \"20\"", "steps"},       {"\"steps\": 0", "steps"},
                          {"\"native_size\": 100", "native_size"}, {"\"cfg_scale\": -1", "cfg_scale"},
                          {"\"cfg_scale\": \"7\"", "cfg_scale"}, {"\"sampler\": \"x\"", "sampler"},
                          {"\"sampler\": 3", "sampler"},         {"\"colour\": 1", "colour"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(text, sizeof text, "%s, \"_ldm\": {%s}}", head, bad[i][0]);
    write_text(path, text);
    ldm_status st = load_info(dir, &info, &err, NULL);
    CHECK(st == LDM_ERR_FORMAT && strstr(err.msg, "model_index.json") && strstr(err.msg, bad[i][1]),
          "_ldm {%s}: status %d, '%s'", bad[i][0], st, err.msg);
    if (i == 0) printf("error: %s\n", err.msg);
  }
  snprintf(text, sizeof text, "%s, \"_ldm\": 5}", head);
  write_text(path, text);
  CHECK(load_info(dir, &info, &err, NULL) == LDM_ERR_FORMAT && strstr(err.msg, "an object"), "_ldm 5: %s", err.msg);
  unlink(path);
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, parts[i]);
    unlink(path);
  }
  rmdir(dir);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/ldm-settings-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    fprintf(stderr, "FAIL: mkdtemp %s\n", tmpdir);
    return 1;
  }
  single_file();
  folder();
  rmdir(tmpdir);
  return ldm_test_finish("model-settings");
}
