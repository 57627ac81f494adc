/* ControlNet goldens vs diffusers (tests/reference/make_controlnet.py): tiny
 * random ControlNetModels (SD1-style and SDXL-style) in every layout -- a
 * diffusers folder, its single file, the original layout with the
 * control_model. prefix (SD1 and SDXL) and without it -- through `ldm eval controlnet`; every
 * down residual and the mid residual within TOL max abs of diffusers'
 * (conditioning scale 0.8 / 1 / 0.6 applied). Then the refusals: a checkpoint
 * given as a ControlNet, a ControlNet given as a checkpoint, a missing
 * tensor (named), a ControlNet that does not fit the UNet. */
#include "ldm_test.h"

#include <unistd.h>

#include "core/status.h"
#include "io/source.h"
#include "models/unet/controlnet.h"
#include "core/eval_options.h"

#define TOL 1e-4

static char tmpdir[1024];

static void eval_case(const char *model, const char *options, const char *io_name) {
  char model_path[4096], io_path[4096], out_path[4096], label[512];
  ldm_test_golden(model, model_path, sizeof model_path);
  ldm_test_golden(io_name, io_path, sizeof io_path);
  snprintf(out_path, sizeof out_path, "%s/out.safetensors", tmpdir);
  ldm_error err = {0};
  ldm_eval_params p = {.component = "controlnet",
                       .model_path = model_path,
                       .in_path = io_path,
                       .out_path = out_path,
                       .options = options,
                       .threads = 2};
  ldm_status st = ldm_eval_run(&p, &err);
  CHECK(st == LDM_OK, "controlnet %s: eval failed: %s", model, err.msg);
  if (st != LDM_OK) return;
  ldm_st_file *o = NULL, *r = NULL;
  if (ldm_st_open(&o, out_path, &err) != LDM_OK || ldm_st_open(&r, io_path, &err) != LDM_OK) {
    CHECK(0, "%s: %s", model, err.msg);
    ldm_st_close(o);
    return;
  }
  int n_ref = 0;
  for (int i = 0;; i++) {
    char name[32];
    if (i < 64)
      snprintf(name, sizeof name, "down_%d", i);
    else
      snprintf(name, sizeof name, "mid");
    if (i < 64 && !ldm_st_find(r, name)) i = 63;
    if (i == 63) continue;
    ldm_tensor gs = {0}, rs = {0};
    float *ref = ldm_test_tensor_f32(r, name, &rs);
    float *got = ldm_st_find(o, name) ? ldm_test_tensor_f32(o, name, &gs) : NULL;
    CHECK(got != NULL, "controlnet %s: no output '%s'", model, name);
    if (got) {
      CHECK(gs.ndim == rs.ndim && memcmp(gs.shape, rs.shape, sizeof gs.shape) == 0, "controlnet %s: '%s' shape differs",
            model, name);
      snprintf(label, sizeof label, "controlnet %s%s%s %s", model, options ? " " : "", options ? options : "", name);
      ldm_test_close(label, got, ref, ldm_tensor_numel(&rs), TOL, 0);
    }
    free(got);
    free(ref);
    n_ref++;
    if (i >= 64) break;
  }
  CHECK(n_ref >= 4, "controlnet %s: only %d residuals in the golden", model, n_ref);
  CHECK(ldm_st_find(o, "mid") && (int)ldm_st_count(o) == n_ref, "controlnet %s: %d outputs, expected %d", model,
        (int)ldm_st_count(o), n_ref);
  ldm_st_close(o);
  ldm_st_close(r);
}

static ldm_status load_cn(const char *golden, const ldm_unet_overrides *ov, ldm_controlnet **cn, ldm_source **src,
                          ldm_error *err) {
  char path[4096];
  ldm_test_golden(golden, path, sizeof path);
  *cn = NULL;
  LDM_TRY(ldm_source_open(src, path, err));
  return ldm_controlnet_load(cn, *src, ov, err);
}

static void check_refusals(void) {
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_controlnet *cn = NULL;
  ldm_unet_overrides ov = {.num_heads = 2, .groups = 4};
  /* a checkpoint is not a ControlNet */
  ldm_status st = load_cn("pipeline/sd1.safetensors", &ov, &cn, &src, &err);
  printf("checkpoint as ControlNet: %s: %s\n", ldm_status_str(st), err.msg);
  CHECK(st == LDM_ERR_INVALID_ARG && strstr(err.msg, "not a ControlNet"), "checkpoint as ControlNet: %s", err.msg);
  ldm_controlnet_free(cn);
  ldm_source_close(src);
  /* a ControlNet is not a checkpoint */
  char path[4096];
  ldm_model *m = NULL;
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = ldm_test_golden("controlnet/sd1_a", path, sizeof path);
  ldm_job *job = NULL;
  ldm_job_params jp;
  ldm_job_params_init(&jp, LDM_TASK_TXT2IMG);
  jp.steps = 1;
  jp.width = jp.height = 64;
  ldm_image **imgs = NULL;
  int n = 0;
  st = ldm_model_load(&m, &mp, &err);
  if (st == LDM_OK) st = ldm_job_new(&job, m, &jp, &err);
  if (st == LDM_OK) st = ldm_job_run(job, &imgs, &n, &err);
  printf("ControlNet as checkpoint: %s: %s\n", ldm_status_str(st), err.msg);
  CHECK(st == LDM_ERR_INVALID_ARG && strstr(err.msg, "is a ControlNet"), "ControlNet as checkpoint: %s", err.msg);
  ldm_job_free(job);
  ldm_model_free(m);
  /* a missing tensor is named */
  ldm_st_file *f = ldm_test_open_golden("controlnet/sd1_a_orig.safetensors");
  int64_t nt = ldm_st_count(f);
  ldm_tensor *ts = calloc((size_t)nt, sizeof *ts);
  int k = 0;
  const char *drop = "control_model.zero_convs.2.0.weight";
  for (int64_t i = 0; i < nt; i++)
    if (strcmp(ldm_st_at(f, i)->name, drop) != 0) ts[k++] = *ldm_st_at(f, i);
  CHECK(k == nt - 1, "tensor to drop not found in the golden");
  char out[4096];
  snprintf(out, sizeof out, "%s/missing.safetensors", tmpdir);
  CHECK(ldm_st_write(out, ts, k, NULL, &err) == LDM_OK, "write: %s", err.msg);
  src = NULL;
  cn = NULL;
  st = ldm_source_open(&src, out, &err);
  if (st == LDM_OK) st = ldm_controlnet_load(&cn, src, &ov, &err);
  printf("missing tensor: %s: %s\n", ldm_status_str(st), err.msg);
  CHECK(st == LDM_ERR_MISSING && strstr(err.msg, drop), "missing %s: %s", drop, err.msg);
  ldm_controlnet_free(cn);
  ldm_source_close(src);
  ldm_st_close(f);
  free(ts);
  /* an SDXL ControlNet does not fit an SD1 UNet */
  ldm_source *usrc = NULL;
  ldm_unet *u = NULL;
  st = load_cn("controlnet/sdxl_a", NULL, &cn, &src, &err);
  CHECK(st == LDM_OK, "sdxl_a: %s", err.msg);
  CHECK(cn && cn->family == LDM_FAMILY_SDXL, "sdxl_a: family %s", cn ? ldm_family_name(cn->family) : "-");
  if (ldm_source_open(&usrc, ldm_test_golden("pipeline/sd1", path, sizeof path), &err) == LDM_OK &&
      ldm_unet_load(&u, usrc, NULL, &err) == LDM_OK && cn) {
    st = ldm_controlnet_check_fit(cn, "sdxl_a", u, "sd1", &err);
    printf("SDXL ControlNet on an SD1 UNet: %s: %s\n", ldm_status_str(st), err.msg);
    CHECK(st == LDM_ERR_INVALID_ARG && strstr(err.msg, "sdxl_a") && strstr(err.msg, "sd1"), "fit: %s", err.msg);
  }
  ldm_unet_free(u);
  ldm_source_close(usrc);
  ldm_controlnet_free(cn);
  ldm_source_close(src);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ldm_test_controlnet_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  /* a single file (original or diffusers names) cannot say heads / groups */
  static const struct {
    const char *model, *options, *io;
  } cases[] = {
      {"controlnet/sd1_a", NULL, "controlnet/sd1_a_io.safetensors"},
      {"controlnet/sd1_a.safetensors", "heads=2,groups=4", "controlnet/sd1_a_io.safetensors"},
      {"controlnet/sd1_a_orig.safetensors", "heads=2,groups=4", "controlnet/sd1_a_io.safetensors"},
      {"controlnet/sd1_b_bare.safetensors", "heads=2,groups=4", "controlnet/sd1_b_io.safetensors"},
      {"controlnet/sdxl_a", NULL, "controlnet/sdxl_a_io.safetensors"},
      {"controlnet/sdxl_a.safetensors", "head_dim=8,groups=4", "controlnet/sdxl_a_io.safetensors"},
      {"controlnet/sdxl_a_orig.safetensors", "head_dim=8,groups=4", "controlnet/sdxl_a_io.safetensors"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) eval_case(cases[i].model, cases[i].options, cases[i].io);
  check_refusals();
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return ldm_test_finish("controlnet-golden");
}
