/* LoRA goldens vs diffusers (tests/reference/make_lora.py): for SD1, SD2 and
 * SDXL tiny models, LoRAs in the kohya naming (with alpha, f16), in the PEFT
 * naming (no alpha, f32), diffusers' older processor naming, and two at
 * once (a kohya LoCon with 3x3 convs at
 * 0.7 and the PEFT one at -0.3), merged by the `eval` harness (lora=) into
 * the UNet and every text encoder, in the diffusers folder and (SD1, SD2)
 * the original single-file layout; compared with diffusers'
 * load_lora_weights + fuse_lora(lora_scale=...).
 * Tolerance: max abs <= 1e-4 on every output (the base models without a
 * LoRA are checked the same way, so the LoRA's share is what is measured).
 * Also: an SD1 LoRA on the SDXL UNet is refused naming the module and both
 * families; LyCORIS LoHa / pickles / a module without its up weight are
 * refused by name; the prompt's <lora:NAME:MULT> tags are resolved through
 * model folders and removed from the prompt; A1111's add-on hash. */
#include "ldm_test.h"

#include <unistd.h>

#include "core/status.h"

#define TOL 1e-4

static char tmpdir[1024];

typedef struct model_set {
  const char *family;
  const char *unet[2], *unet_opt[2];
  const char *text[2], *text_opt[2];
  int n_text;          /* text encoders */
} model_set;

static const model_set sets[] = {
    {"sd1", {"pipeline/sd1", "pipeline/sd1.safetensors"}, {"", "heads=2,groups=4"},
     {"pipeline/sd1", "pipeline/sd1.safetensors"}, {"", "heads=2,"}, 1},
    {"sd2", {"unet/sd2", "unet/sd2.safetensors"}, {"", "head_dim=8,groups=4"},
     {"text/sd2", "text/sd2.safetensors"}, {"", "heads=2,"}, 1},
    {"sdxl", {"pipeline/sdxl", NULL}, {"", ""}, {"pipeline/sdxl", NULL}, {"", ""}, 2},
};

static void lora_option(const char *spec, char *out, size_t n) {
  /* "a:0.8;b:-0.3" -> "lora=DIR/a.safetensors:0.8;DIR/b.safetensors:-0.3" */
  char dir[4096];
  ldm_test_golden("lora", dir, sizeof dir);
  size_t k = (size_t)snprintf(out, n, "%s", *spec ? "lora=" : "");
  const char *s = spec;
  while (*s) {
    size_t len = strcspn(s, ";");
    const char *colon = memchr(s, ':', len);
    size_t nl = colon ? (size_t)(colon - s) : len;
    k += (size_t)snprintf(out + k, n - k, "%s%s/%.*s.safetensors%.*s", s == spec ? "" : ";", dir, (int)nl, s,
                          (int)(len - nl), s + nl);
    s += len + (s[len] == ';');
  }
}

static void compare(const char *label, const char *out, const char *io, const char *const *names, int n) {
  ldm_error err = {0};
  ldm_st_file *o = NULL;
  ldm_st_file *g = ldm_test_open_golden(io);
  CHECK(ldm_st_open(&o, out, &err) == LDM_OK, "%s: %s", label, err.msg);
  for (int i = 0; o && i < n; i++) {
    if (!ldm_st_find(g, names[i])) continue;
    ldm_tensor rs, gs;
    float *ref = ldm_test_tensor_f32(g, names[i], &rs);
    const ldm_tensor *t = ldm_st_find(o, names[i]);
    CHECK(t && ldm_tensor_numel(t) == ldm_tensor_numel(&rs), "%s: output %s missing or of another size", label,
          names[i]);
    if (t && ldm_tensor_numel(t) == ldm_tensor_numel(&rs)) {
      float *got = ldm_test_tensor_f32(o, names[i], &gs);
      char name[512];
      snprintf(name, sizeof name, "%s %s", label, names[i]);
      ldm_test_close(name, got, ref, ldm_tensor_numel(&rs), TOL, 0);
      free(got);
    }
    free(ref);
  }
  ldm_st_close(o);
  ldm_st_close(g);
}

static void run_eval(const char *label, const char *component, const char *model, const char *io,
                     const char *options, const char *const *names, int n) {
  char mpath[4096], iopath[4096], out[4200];
  ldm_test_golden(model, mpath, sizeof mpath);
  ldm_test_golden(io, iopath, sizeof iopath);
  snprintf(out, sizeof out, "%s/out.safetensors", tmpdir);
  ldm_error err = {0};
  ldm_eval_params p = {.component = component, .model_path = mpath, .in_path = iopath, .out_path = out,
                       .options = options, .threads = 2};
  ldm_status st = ldm_eval_run(&p, &err);
  CHECK(st == LDM_OK, "%s: eval %s failed: %s", label, component, err.msg);
  if (st == LDM_OK) compare(label, out, io, names, n);
  unlink(out);
}

static void goldens(void) {
  char path[4096];
  FILE *f = fopen(ldm_test_golden("lora/cases.txt", path, sizeof path), "r");
  CHECK(f != NULL, "cannot open %s", path);
  if (!f) return;
  char line[1024];
  int n_cases = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, '|'), *c2 = c1 ? strchr(c1 + 1, '|') : NULL;
    if (!c2) continue;
    *c1 = *c2 = '\0';
    const char *name = line, *family = c1 + 1, *spec = c2 + 1;
    const model_set *ms = NULL;
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
      if (!strcmp(sets[i].family, family)) ms = &sets[i];
    CHECK(ms != NULL, "case %s: unknown family %s", name, family);
    if (!ms) continue;
    n_cases++;
    char lora[8192], opt[8300], io[1400], label[1400];
    lora_option(spec, lora, sizeof lora);
    for (int l = 0; l < 2; l++) {
      if (!ms->unet[l]) continue;
      static const char *const unet_out[] = {"out"};
      snprintf(opt, sizeof opt, "%s%s%s", ms->unet_opt[l], *ms->unet_opt[l] && *lora ? "," : "", lora);
      snprintf(io, sizeof io, "lora/%s_unet_io.safetensors", name);
      snprintf(label, sizeof label, "%s unet (%s)", name, ms->unet[l]);
      run_eval(label, "unet", ms->unet[l], io, opt, unet_out, 1);
      for (int e = 1; e <= ms->n_text; e++) {
        static const char *const text_out[] = {"last_hidden_state", "penultimate_hidden_state", "pooled"};
        snprintf(opt, sizeof opt, "%sencoder=%d%s%s", ms->text_opt[l], e, *lora ? "," : "", lora);
        snprintf(io, sizeof io, "lora/%s_text%d_io.safetensors", name, e);
        snprintf(label, sizeof label, "%s text%d (%s)", name, e, ms->text[l]);
        run_eval(label, "text", ms->text[l], io, opt, text_out, 3);
      }
    }
  }
  fclose(f);
  CHECK(n_cases >= 12, "only %d LoRA cases in cases.txt", n_cases);
}

/* eval unet with a LoRA expected to fail; the message must hold all needles. */
static void expect_refusal(const char *label, const char *model, const char *lora_path, const char *const *needles,
                           int n) {
  char mpath[4096], opt[4200], io[4096], out[4200];
  ldm_test_golden(model, mpath, sizeof mpath);
  ldm_test_golden("lora/sdxl_base_unet_io.safetensors", io, sizeof io);
  snprintf(opt, sizeof opt, "lora=%s:1", lora_path);
  snprintf(out, sizeof out, "%s/out.safetensors", tmpdir);
  ldm_error err = {0};
  ldm_eval_params p = {.component = "unet", .model_path = mpath, .in_path = io, .out_path = out,
                       .options = opt, .threads = 1};
  ldm_status st = ldm_eval_run(&p, &err);
  CHECK(st != LDM_OK, "%s: accepted", label);
  for (int i = 0; i < n; i++)
    CHECK(strstr(err.msg, needles[i]) != NULL, "%s: message lacks '%s': %s", label, needles[i], err.msg);
  printf("%s: refused: %s\n", label, err.msg);
  unlink(out);
}

static void write_file(const char *path, const ldm_tensor *t, int n) {
  ldm_error err = {0};
  CHECK(ldm_st_write(path, t, n, NULL, &err) == LDM_OK, "write %s: %s", path, err.msg);
}

static void refusals(void) {
  char lp[4096], p[4200];
  ldm_test_golden("lora/sd1_kohya.safetensors", lp, sizeof lp);
  const char *fam[] = {"LoRA module 'lora_unet_", "this sdxl model", "made for sd1"};
  expect_refusal("sd1 LoRA on sdxl", "pipeline/sdxl", lp, fam, 3);
  ldm_test_golden("lora/sd1_peft.safetensors", lp, sizeof lp);
  const char *fam2[] = {"LoRA module 'unet.", "made for sd1"};
  expect_refusal("sd1 PEFT LoRA on sdxl", "pipeline/sdxl", lp, fam2, 2);
  float v[8] = {0};
  ldm_tensor loha[2] = {
      {.dtype = LDM_DTYPE_F32, .ndim = 2, .shape = {2, 2}, .data = v,
       .name = "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a"},
      {.dtype = LDM_DTYPE_F32, .ndim = 2, .shape = {2, 2}, .data = v + 4,
       .name = "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_b"}};
  snprintf(p, sizeof p, "%s/loha.safetensors", tmpdir);
  write_file(p, loha, 2);
  const char *n1[] = {"LoHa", "hada_w1_a"};
  expect_refusal("LoHa", "pipeline/sdxl", p, n1, 2);
  ldm_tensor half = {.dtype = LDM_DTYPE_F32, .ndim = 2, .shape = {2, 2}, .data = v,
                     .name = "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"};
  snprintf(p, sizeof p, "%s/noup.safetensors", tmpdir);
  write_file(p, &half, 1);
  const char *n2[] = {"no up", "lora_unet_down_blocks_0_attentions_0_proj_in"};
  expect_refusal("no up weight", "pipeline/sdxl", p, n2, 2);
  ldm_tensor odd = {.dtype = LDM_DTYPE_F32, .ndim = 2, .shape = {2, 2}, .data = v, .name = "model.weight"};
  snprintf(p, sizeof p, "%s/odd.safetensors", tmpdir);
  write_file(p, &odd, 1);
  const char *n3[] = {"'model.weight' is not a LoRA weight"};
  expect_refusal("not a LoRA", "pipeline/sdxl", p, n3, 1);
  snprintf(p, sizeof p, "%s/x.pt", tmpdir);
  const char *n4[] = {"pickle", ".safetensors"};
  expect_refusal("pickle", "pipeline/sdxl", p, n4, 2);
}

/* Prompt tags through the public job API. */
static void prompt_tags(void) {
  char model[4096], dir[4096];
  ldm_test_golden("pipeline/sd1", model, sizeof model);
  ldm_test_golden("lora", dir, sizeof dir);
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = model;
  ldm_model *m = NULL;
  ldm_error err = {0};
  CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "load %s: %s", model, err.msg);
  if (!m) return;
  ldm_job_params jp;
  ldm_job_params_init(&jp, LDM_TASK_TXT2IMG);
  ldm_lora extra = {.path = "/nonexistent/x.safetensors", .multiplier = -0.5f};
  jp.loras = &extra;
  jp.n_loras = 1;
  jp.model_dirs = dir;
  jp.prompt = "a <lora:sd1_kohya:0.8>cat, <lora:sd1_peft>(dog:1.2) <lora:sd1_locon:0.5:-1> <3 <a:>";
  ldm_job *j = NULL;
  CHECK(ldm_job_new(&j, m, &jp, &err) == LDM_OK, "job: %s", err.msg);
  if (j) {
    CHECK(!strcmp(ldm_job_prompt(j), "a cat, (dog:1.2)  <3 <a:>"), "clean prompt: '%s'", ldm_job_prompt(j));
    CHECK(ldm_job_lora_count(j) == 4, "%d LoRAs", ldm_job_lora_count(j));
    const ldm_job_lora *l0 = ldm_job_lora_at(j, 0), *l1 = ldm_job_lora_at(j, 1), *l3 = ldm_job_lora_at(j, 3);
    CHECK(l0 && !l0->from_prompt && l0->multiplier == -0.5f && !strcmp(l0->name, "x"), "params LoRA");
    CHECK(l1 && l1->from_prompt && l1->multiplier == 0.8f && !strcmp(l1->name, "sd1_kohya") &&
              strstr(l1->path, "lora/sd1_kohya.safetensors"),
          "first tag: %s %s %g", l1 ? l1->name : "-", l1 ? l1->path : "-", l1 ? (double)l1->multiplier : 0.0);
    CHECK(l3 && l3->multiplier == 0.5f && l3->unet_multiplier == -1.0f, "te/unet multipliers");
    /* the missing params LoRA surfaces when the job runs */
    ldm_image **imgs = NULL;
    int n = 0;
    jp.width = 64;
    CHECK(ldm_job_run(j, &imgs, &n, &err) != LDM_OK && strstr(err.msg, "/nonexistent/x.safetensors"),
          "missing LoRA file not reported: %s", err.msg);
    ldm_job_free(j);
  }
  jp.n_loras = 0;
  jp.prompt = "<lora:no_such_lora:1> x";
  CHECK(ldm_job_new(&j, m, &jp, &err) != LDM_OK && strstr(err.msg, "no_such_lora"), "unknown name: %s", err.msg);
  jp.prompt = "<hypernet:x:1> x";
  CHECK(ldm_job_new(&j, m, &jp, &err) != LDM_OK && strstr(err.msg, "hypernet"), "hypernet: %s", err.msg);
  jp.prompt = "<lora:sd1_kohya:abc> x";
  CHECK(ldm_job_new(&j, m, &jp, &err) != LDM_OK && strstr(err.msg, "abc"), "bad multiplier: %s", err.msg);
  jp.model_dirs = NULL;
  jp.prompt = "<lora:sd1_kohya> x";
  CHECK(ldm_job_new(&j, m, &jp, &err) != LDM_OK && strstr(err.msg, "model folders"), "no dirs: %s", err.msg);
  char found[4096];
  CHECK(ldm_models_find(dir, LDM_KIND_LORA, "sd1_peft", found, sizeof found, &err) == LDM_OK &&
            strstr(found, "lora/sd1_peft.safetensors"),
        "ldm_models_find: %s", err.msg);
  CHECK(ldm_models_find(dir, LDM_KIND_LORA, "nope", found, sizeof found, &err) == LDM_ERR_MISSING &&
            strstr(err.msg, "nope"),
        "ldm_models_find of a missing name: %s", err.msg);
  ldm_model_free(m);
  printf("prompt tags: checked\n");
}

/* One model serving jobs with different LoRA sets (with and without the
 * weight cache): each image must equal the one a fresh model makes. */
static ldm_image *gen(ldm_model *m, const ldm_lora *l, int n) {
  ldm_job_params jp;
  ldm_job_params_init(&jp, LDM_TASK_TXT2IMG);
  jp.prompt = "a red circle";
  jp.steps = 2;
  jp.width = 32;
  jp.height = 32;
  jp.seed = 7;
  jp.sampler = "euler";
  jp.threads = 2;
  jp.loras = l;
  jp.n_loras = n;
  ldm_job *j = NULL;
  ldm_error err = {0};
  ldm_image **imgs = NULL, *r = NULL;
  int ni = 0;
  if (ldm_job_new(&j, m, &jp, &err) == LDM_OK && ldm_job_run(j, &imgs, &ni, &err) == LDM_OK && ni == 1) r = imgs[0];
  CHECK(r != NULL, "job: %s", err.msg);
  free(imgs);
  ldm_job_free(j);
  return r;
}

static bool same_image(const ldm_image *a, const ldm_image *b) {
  if (!a || !b || a->width != b->width || a->height != b->height) return false;
  for (int y = 0; y < a->height; y++)
    if (memcmp((char *)a->data + (size_t)y * a->stride, (char *)b->data + (size_t)y * b->stride,
               (size_t)a->width * 3))
      return false;
  return true;
}

static void rebuild(void) {
  char model[4096], l1[4096], l2[4096];
  ldm_test_golden("pipeline/sd1", model, sizeof model);
  ldm_test_golden("lora/sd1_kohya.safetensors", l1, sizeof l1);
  ldm_test_golden("lora/sd1_locon.safetensors", l2, sizeof l2);
  const ldm_lora a[1] = {{l1, 0.8f}}, b[2] = {{l2, 0.7f}, {l1, -0.3f}};
  /* the reference of each set: a fresh model with the same weight cache
   * setting (with and without it the products sum in other orders, and an
   * image may differ by one level in a pixel) */
  ldm_image *fresh[2][3] = {{0}};
  for (int cache = 0; cache < 2; cache++)
    for (int k = 0; k < 3; k++) {
      ldm_model_params mp;
      ldm_model_params_init(&mp);
      mp.path = model;
      mp.weight_cache_mb = cache ? -1 : 0;
      ldm_model *m = NULL;
      ldm_error err = {0};
      CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "%s", err.msg);
      if (m) fresh[cache][k] = gen(m, k == 0 ? NULL : k == 1 ? a : b, k);
      ldm_model_free(m);
    }
  CHECK(!same_image(fresh[0][0], fresh[0][1]) && !same_image(fresh[0][1], fresh[0][2]), "the LoRAs change nothing");
  for (int cache = 0; cache < 2; cache++) {
    ldm_model_params mp;
    ldm_model_params_init(&mp);
    mp.path = model;
    mp.weight_cache_mb = cache ? -1 : 0;
    ldm_model *m = NULL;
    ldm_error err = {0};
    CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "%s", err.msg);
    static const int order[] = {1, 2, 0, 1, 1, 0};
    for (int i = 0; m && i < 6; i++) {
      int k = order[i];
      ldm_image *img = gen(m, k == 0 ? NULL : k == 1 ? a : b, k);
      CHECK(same_image(img, fresh[cache][k]), "weight cache %s, job %d (set %d) differs from a fresh model's",
            cache ? "on" : "off", i, k);
      ldm_image_free(img);
    }
    ldm_model_free(m);
  }
  for (int cache = 0; cache < 2; cache++)
    for (int k = 0; k < 3; k++) ldm_image_free(fresh[cache][k]);
  printf("LoRA sets changed between jobs on one model (cache off/on): checked\n");
}

/* A1111's hash: SHA-256 of the bytes after the header, first 12 hex digits. */
static void hash(void) {
  char p[4200], h[13];
  snprintf(p, sizeof p, "%s/h.safetensors", tmpdir);
  /* header length 2, header "{}", then "abc": sha256("abc") = ba7816bf8f01... */
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL, "cannot write %s", p);
  if (!f) return;
  fwrite("\x02\0\0\0\0\0\0\0{}abc", 1, 13, f);
  fclose(f);
  ldm_error err = {0};
  CHECK(ldm_addon_hash(p, h, &err) == LDM_OK, "hash: %s", err.msg);
  CHECK(!strcmp(h, "ba7816bf8f01"), "hash of 'abc' after the header: %s", h);
  printf("addon hash: %s (expected ba7816bf8f01)\n", h);
  unlink(p);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ldm-test-lora-XXXXXX");
  if (!mkdtemp(tmpdir)) return 1;
  goldens();
  refusals();
  prompt_tags();
  rebuild();
  hash();
  char p[4200];
  const char *files[] = {"loha", "noup", "odd"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s.safetensors", tmpdir, files[i]);
    unlink(p);
  }
  rmdir(tmpdir);
  return ldm_test_finish("lora");
}
