/* CLIP text encoders vs transformers' CLIPTextModel(WithProjection) and
 * open_clip's TextTransformer (goldens: tests/reference/make_text.py), each
 * model in the single-file and diffusers layouts, through `ldm eval text`.
 * Tolerance: max abs error <= 1e-4 on last_hidden_state,
 * penultimate_hidden_state and pooled. Also: bad models (missing tensor,
 * wrong shape, wrong dtype) fail with a message naming the tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ldm.h"
#include "ldm_test.h"

#define TOL 1e-4

static char tmpdir[64];

/* Runs eval text and compares every output with golden `io` (names + suffix). */
static void run_case(const char *label, const char *model, const char *io, const char *ids_name,
                     const char *suffix, const char *options, int expect_pooled) {
  char mpath[4096], iopath[4096], in[4200], out[4200];
  ldm_test_golden(model, mpath, sizeof mpath);
  ldm_test_golden(io, iopath, sizeof iopath);
  ldm_st_file *g = ldm_test_open_golden(io);
  /* the input as int32 (the golden holds int64) */
  ldm_tensor shape;
  const ldm_tensor *t = ldm_st_find(g, ids_name);
  CHECK(t != NULL, "%s: golden lacks %s", label, ids_name);
  if (!t) return;
  shape = *t;
  int64_t n = ldm_tensor_numel(t), *tmp = malloc((size_t)n * sizeof *tmp);
  int32_t *ids = malloc((size_t)n * sizeof *ids);
  ldm_error err = {0};
  CHECK(ldm_tensor_read_i64(t, 0, n, tmp, &err) == LDM_OK, "%s: %s", label, err.msg);
  for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)tmp[i];
  ldm_tensor it = {.dtype = LDM_DTYPE_I32, .ndim = 2, .shape = {shape.shape[0], shape.shape[1]},
                   .data = ids, .name = "input_ids"};
  snprintf(in, sizeof in, "%s/in.safetensors", tmpdir);
  snprintf(out, sizeof out, "%s/out.safetensors", tmpdir);
  CHECK(ldm_st_write(in, &it, 1, NULL, &err) == LDM_OK, "%s: write input: %s", label, err.msg);
  ldm_eval_params p = {.component = "text", .model_path = mpath, .in_path = in,
                       .out_path = out, .options = options, .threads = 2};
  ldm_status st = ldm_eval_run(&p, &err);
  CHECK(st == LDM_OK, "%s: eval text: %s", label, err.msg);
  if (st == LDM_OK) {
    ldm_st_file *o = NULL;
    CHECK(ldm_st_open(&o, out, &err) == LDM_OK, "%s: %s", label, err.msg);
    static const char *names[] = {"last_hidden_state", "penultimate_hidden_state", "pooled"};
    for (int k = 0; k < 3 && o; k++) {
      char gname[64], name[128];
      snprintf(gname, sizeof gname, "%s%s", names[k], suffix);
      const ldm_tensor *got = ldm_st_find(o, names[k]);
      if (k == 2 && !expect_pooled) {
        CHECK(got == NULL, "%s: unexpected pooled output", label);
        continue;
      }
      ldm_tensor rs;
      float *ref = ldm_test_tensor_f32(g, gname, &rs);
      CHECK(got && ldm_tensor_numel(got) == ldm_tensor_numel(&rs) && got->ndim == rs.ndim,
            "%s: output %s missing or wrong shape", label, names[k]);
      if (got && ldm_tensor_numel(got) == ldm_tensor_numel(&rs)) {
        float *a = ldm_test_tensor_f32(o, names[k], NULL);
        snprintf(name, sizeof name, "%s %s", label, names[k]);
        ldm_test_close(name, a, ref, ldm_tensor_numel(&rs), TOL, 0);
        free(a);
      }
      free(ref);
    }
    ldm_st_close(o);
  }
  unlink(in);
  unlink(out);
  free(tmp);
  free(ids);
  ldm_st_close(g);
}

/* Rewrites sd1.safetensors with one tensor dropped / reshaped / retyped and
 * checks the error names it. */
static void bad_model(const char *what, const char *victim, int mode, ldm_status want) {
  ldm_st_file *f = ldm_test_open_golden("text/sd1.safetensors");
  int64_t n = ldm_st_count(f), k = 0;
  ldm_tensor *ts = calloc((size_t)n, sizeof *ts);
  for (int64_t i = 0; i < n; i++) {
    ldm_tensor t = *ldm_st_at(f, i);
    if (strcmp(t.name, victim) == 0) {
      if (mode == 0) continue;                 /* missing */
      if (mode == 1) t.shape[t.ndim - 1] -= 1; /* wrong shape (fewer elements) */
      if (mode == 2) t.dtype = LDM_DTYPE_I16;  /* wrong dtype, same size */
    }
    ts[k++] = t;
  }
  char path[4200], io[4096], out[4200];
  snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
  snprintf(out, sizeof out, "%s/bad_out.safetensors", tmpdir);
  ldm_error err = {0};
  CHECK(ldm_st_write(path, ts, (int)k, NULL, &err) == LDM_OK, "%s: %s", what, err.msg);
  ldm_eval_params p = {.component = "text", .model_path = path,
                       .in_path = ldm_test_golden("text/sd1_io.safetensors", io, sizeof io),
                       .out_path = out, .options = "heads=2", .threads = 1};
  ldm_status st = ldm_eval_run(&p, &err);
  printf("%s: %s: %s\n", what, ldm_status_str(st), err.msg);
  CHECK(st == want && strstr(err.msg, victim) && strstr(err.msg, "bad.safetensors") &&
            (mode == 2 ? strstr(err.msg, "F16") != NULL : strstr(err.msg, "expected") != NULL),
        "%s: status %d, message '%s'", what, st, err.msg);
  CHECK(access(out, F_OK) != 0, "%s: output written despite the error", what);
  unlink(path);
  free(ts);
  ldm_st_close(f);
}

/* Malformed inputs: an error naming the input, no output file. */
static void bad_input(const char *what, ldm_dtype dt, int64_t B, int64_t T, int64_t bad_id,
                      const char *name, const char *needle) {
  char in[4200], out[4200], model[4096];
  snprintf(in, sizeof in, "%s/bad_in.safetensors", tmpdir);
  snprintf(out, sizeof out, "%s/bad_out.safetensors", tmpdir);
  int64_t n = B * T;
  int64_t *buf = calloc((size_t)n, 8);
  int32_t *b32 = (int32_t *)buf;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = i == n - 1 ? bad_id : 5;
    if (dt == LDM_DTYPE_I32) b32[i] = (int32_t)v;
    else buf[i] = v;
  }
  ldm_tensor t = {.dtype = dt, .ndim = 2, .shape = {B, T}, .data = buf, .name = name};
  ldm_error err = {0};
  CHECK(ldm_st_write(in, &t, 1, NULL, &err) == LDM_OK, "%s: %s", what, err.msg);
  ldm_eval_params p = {.component = "text",
                       .model_path = ldm_test_golden("text/sd1", model, sizeof model),
                       .in_path = in, .out_path = out, .threads = 1};
  ldm_status st = ldm_eval_run(&p, &err);
  printf("%s: %s: %s\n", what, ldm_status_str(st), err.msg);
  CHECK(st != LDM_OK && strstr(err.msg, needle), "%s: status %d '%s'", what, st, err.msg);
  CHECK(access(out, F_OK) != 0, "%s: output written despite the error", what);
  unlink(in);
  free(buf);
}

/* --compare OUT REF TOL [SUFFIX]: the slow suite's check of an eval output
 * against a reference file (REF's tensors named <output>SUFFIX). */
static int compare_files(int argc, char **argv) {
  ldm_error err = {0};
  ldm_st_file *o = NULL, *r = NULL;
  if (ldm_st_open(&o, argv[2], &err) != LDM_OK || ldm_st_open(&r, argv[3], &err) != LDM_OK) {
    fprintf(stderr, "FAIL: %s\n", err.msg);
    return 1;
  }
  double tol = atof(argv[4]);
  const char *suffix = argc > 5 ? argv[5] : "";
  for (int64_t i = 0; i < ldm_st_count(o); i++) {
    const ldm_tensor *t = ldm_st_at(o, i);
    char rname[128];
    snprintf(rname, sizeof rname, "%s%s", t->name, suffix);
    ldm_tensor rs;
    float *ref = ldm_test_tensor_f32(r, rname, &rs);
    float *got = ldm_test_tensor_f32(o, t->name, NULL);
    CHECK(ldm_tensor_numel(t) == ldm_tensor_numel(&rs), "%s: size", t->name);
    if (ldm_tensor_numel(t) == ldm_tensor_numel(&rs))
      ldm_test_close(t->name, got, ref, ldm_tensor_numel(t), tol, 0);
    free(ref);
    free(got);
  }
  ldm_st_close(o);
  ldm_st_close(r);
  return ldm_test_finish("text-compare");
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "--compare") == 0) return compare_files(argc, argv);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ldm_text_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  run_case("sd1-single", "text/sd1.safetensors", "text/sd1_io.safetensors", "input_ids", "", "heads=2", 0);
  run_case("sd1-diffusers", "text/sd1", "text/sd1_io.safetensors", "input_ids", "", NULL, 0);
  /* hidden_act gelu_pytorch_tanh (transformers' tanh-approximated GELU) */
  run_case("gelu-tanh", "config/text_gelu_tanh", "config/text_gelu_tanh_io.safetensors", "input_ids", "", NULL, 0);
  run_case("sd2-single", "text/sd2.safetensors", "text/sd2_io.safetensors", "input_ids", "", "heads=2", 1);
  run_case("sd2-diffusers", "text/sd2", "text/sd2_io.safetensors", "input_ids", "", NULL, 0);
  run_case("sdxl-single-1", "text/sdxl.safetensors", "text/sdxl_io.safetensors", "input_ids", "",
           "heads=2", 0);
  run_case("sdxl-diffusers-1", "text/sdxl", "text/sdxl_io.safetensors", "input_ids", "", NULL, 0);
  run_case("sdxl-single-2", "text/sdxl.safetensors", "text/sdxl_io.safetensors", "input_ids_2", "_2",
           "heads=2,encoder=2", 1);
  run_case("sdxl-diffusers-2", "text/sdxl", "text/sdxl_io.safetensors", "input_ids_2", "_2",
           "encoder=2", 1);
  const char *v = "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight";
  bad_model("missing tensor", v, 0, LDM_ERR_MISSING);
  bad_model("wrong shape", v, 1, LDM_ERR_SHAPE);
  bad_model("wrong dtype", v, 2, LDM_ERR_SHAPE);
  bad_input("id out of range", LDM_DTYPE_I64, 1, 77, 2514, "input_ids", "2514");
  bad_input("negative id", LDM_DTYPE_I32, 2, 10, -1, "input_ids", "input_ids[1, 9]");
  bad_input("float ids", LDM_DTYPE_F32, 1, 77, 0, "input_ids", "expected I32/I64");
  bad_input("too long", LDM_DTYPE_I64, 1, 78, 0, "input_ids", "T<=77");
  bad_input("no input_ids", LDM_DTYPE_I64, 1, 77, 0, "tokens", "input_ids");
  rmdir(tmpdir);
  return ldm_test_finish("text-encoder");
}
