/* UNet goldens vs diffusers (tests/reference/make_unet.py): every family
 * (SD1.x, inpainting, SD2.x, SDXL, x4 upscaler, LCM) in the diffusers and the
 * original single-file layout through the `ldm eval unet` harness, odd latent
 * sizes, ignored EMA tensors, a missing tensor named in the error, arena reuse
 * (no allocation on the second step) and cancellation.
 * Tolerance: max abs error <= 1e-3 against diffusers' output. With bf16
 * matrix products (precision=bf16-emulated on every CPU, precision=bf16
 * where the CPU has AMX-BF16 or AVX512-BF16; the test prints which path ran)
 * per case <= diffusers' own bf16 deviation: the same UNet in diffusers
 * under torch.autocast("cpu", bfloat16) against its f32 output, printed by
 * tests/reference/bf16_deviation.py (diffusers 0.31.0, torch 2.5.1), as
 * these random tiny models amplify rounding far more than trained ones;
 * and never above the 0.3 this test allowed before (sd1_48x40's and sdxl's
 * diffusers deviations are 0.39 and 0.63).
 * (That script also prints the deviation with only conv/linear operands
 * rounded, no attention: AMX bf16, which rounds attention's operands too,
 * ran above it on sd1 (0.154 vs 0.119), sd1_odd (0.083 vs 0.057), sd1_48x40
 * (0.250 vs 0.242), sd2 (0.052 vs 0.047) and x4 (0.036 vs 0.032), below it
 * on the rest; VDPBF16PS and the emulation below it everywhere.)
 * `test_unet --compare OUT REF [TOL]` compares the `out` tensors of two files
 * (used by the slow suite). */
#include "ldm_test.h"

#include <stdatomic.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/status.h"
#include "io/source.h"
#include "models/unet/unet.h"
#include "ops/ops.h"

#define TOL 1e-3

static char tmpdir[1024];

static int compare_files(const char *label, const char *out_path, const char *ref_path, double tol) {
  ldm_error err = {0};
  ldm_st_file *o = NULL, *r = NULL;
  if (ldm_st_open(&o, out_path, &err) != LDM_OK || ldm_st_open(&r, ref_path, &err) != LDM_OK) {
    CHECK(0, "%s: %s", label, err.msg);
    ldm_st_close(o);
    return 0;
  }
  ldm_tensor gs, rs;
  float *got = ldm_test_tensor_f32(o, "out", &gs);
  float *ref = ldm_test_tensor_f32(r, "out", &rs);
  int same = gs.ndim == rs.ndim && memcmp(gs.shape, rs.shape, sizeof gs.shape) == 0;
  CHECK(same, "%s: output shape differs from the reference", label);
  int ok = same && ldm_test_close(label, got, ref, ldm_tensor_numel(&rs), tol, 0);
  free(got);
  free(ref);
  ldm_st_close(o);
  ldm_st_close(r);
  return ok;
}

/* `ldm eval unet` on a golden model and io file; compares `out`. Returns
 * the output's unet_ignored_tensors metadata (-1 on failure). */
static long eval_check_tol(const char *model, const char *options, const char *io, double tol) {
  char model_path[4096], io_path[4096], out_path[4096], label[512];
  ldm_test_golden(model, model_path, sizeof model_path);
  ldm_test_golden(io, io_path, sizeof io_path);
  snprintf(out_path, sizeof out_path, "%s/out.safetensors", tmpdir);
  snprintf(label, sizeof label, "unet %s (%s)%s%s", model, io, options ? " " : "", options ? options : "");
  ldm_error err = {0};
  ldm_eval_params p = {.component = "unet", .model_path = model_path, .in_path = io_path,
                       .out_path = out_path, .options = options, .threads = 2};
  ldm_status st = ldm_eval_run(&p, &err);
  CHECK(st == LDM_OK, "%s: eval failed: %s", label, err.msg);
  if (st != LDM_OK) return -1;
  compare_files(label, out_path, io_path, tol);
  ldm_st_file *o = NULL;
  long ign = -1;
  if (ldm_st_open(&o, out_path, &err) == LDM_OK) {
    const char *v = ldm_st_metadata_get(o, "unet_ignored_tensors");
    ign = v ? atol(v) : -1;
    ldm_st_close(o);
  }
  return ign;
}

static long eval_check(const char *model, const char *options, const char *io) {
  return eval_check_tol(model, options, io, TOL);
}

/* A copy of a golden model without one tensor must fail naming it. */
static void check_missing(void) {
  char path[4096], out[4096];
  ldm_error err = {0};
  ldm_st_file *f = ldm_test_open_golden("unet/sd1_inpaint.safetensors");
  int64_t n = ldm_st_count(f);
  ldm_tensor *ts = calloc((size_t)n, sizeof *ts);
  int k = 0;
  const char *drop = "model.diffusion_model.output_blocks.3.1.transformer_blocks.0.attn2.to_v.weight";
  for (int64_t i = 0; i < n; i++)
    if (strcmp(ldm_st_at(f, i)->name, drop) != 0) ts[k++] = *ldm_st_at(f, i);
  CHECK(k == n - 1, "tensor to drop not found in the golden");
  snprintf(out, sizeof out, "%s/missing.safetensors", tmpdir);
  CHECK(ldm_st_write(out, ts, k, NULL, &err) == LDM_OK, "write: %s", err.msg);
  ldm_source *src = NULL;
  ldm_unet *u = NULL;
  CHECK(ldm_source_open(&src, out, &err) == LDM_OK, "open: %s", err.msg);
  ldm_unet_overrides ov = {.num_heads = 2, .groups = 4};
  ldm_status st = src ? ldm_unet_load(&u, src, &ov, &err) : LDM_ERR_INTERNAL;
  printf("missing tensor: status %s: %s\n", ldm_status_str(st), err.msg);
  CHECK(st == LDM_ERR_MISSING, "load without %s gave %s", drop, ldm_status_str(st));
  CHECK(strstr(err.msg, "output_blocks.3.1.transformer_blocks.0.attn2.to_v.weight") != NULL,
        "error does not name the missing tensor: %s", err.msg);
  ldm_unet_free(u);
  ldm_source_close(src);
  ldm_st_close(f);
  free(ts);
  (void)path;
}

/* Two forwards at the same size: the second must not grow the arena and must
 * give bit-identical results; a set cancel flag stops the third. */
static void check_reuse_and_cancel(void) {
  char model[4096];
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_unet *u = NULL;
  ldm_test_golden("unet/sdxl", model, sizeof model);
  CHECK(ldm_source_open(&src, model, &err) == LDM_OK, "open: %s", err.msg);
  if (!src) return;
  CHECK(ldm_unet_load(&u, src, NULL, &err) == LDM_OK, "load: %s", err.msg);
  if (!u) {
    ldm_source_close(src);
    return;
  }
  ldm_st_file *io = ldm_test_open_golden("unet/sdxl_io.safetensors");
  ldm_tensor st_s, st_e;
  float *sample = ldm_test_tensor_f32(io, "sample", &st_s);
  float *ts = ldm_test_tensor_f32(io, "timestep", NULL);
  float *ehs = ldm_test_tensor_f32(io, "encoder_hidden_states", &st_e);
  float *te = ldm_test_tensor_f32(io, "text_embeds", NULL);
  float *tid = ldm_test_tensor_f32(io, "time_ids", NULL);
  float *ref = ldm_test_tensor_f32(io, "out", NULL);
  int B = (int)st_s.shape[0], C = (int)st_s.shape[1], H = (int)st_s.shape[2], W = (int)st_s.shape[3];
  int64_t HW = (int64_t)H * W, n = B * HW * C;
  float *x = malloc((size_t)n * 4), *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4),
        *o = malloc((size_t)n * 4);
  ldm_nchw_to_nhwc(x, sample, B, C, HW);
  ldm_arena *arena = ldm_arena_new(1 << 20);
  ldm_pool *pool = ldm_pool_new(2);
  atomic_int cancel = 0;
  ldm_ctx ctx = {.pool = pool, .threads = 2, .scratch = arena, .err = &err, .cancel = &cancel};
  ldm_unet_cond cond = {.context = ehs, .n_tokens = (int)st_e.shape[1], .text_embeds = te,
                        .n_text = (int)ldm_st_find(io, "text_embeds")->shape[1], .time_ids = tid};
  CHECK(ldm_unet_forward(&ctx, u, y1, x, B, H, W, ts, &cond) == LDM_OK, "forward 1: %s", err.msg);
  size_t reserved = ldm_arena_reserved(arena);
  CHECK(ldm_arena_in_use(arena) == 0, "arena not reset after forward (%zu bytes)", ldm_arena_in_use(arena));
  CHECK(ldm_unet_forward(&ctx, u, y2, x, B, H, W, ts, &cond) == LDM_OK, "forward 2: %s", err.msg);
  printf("arena: %zu bytes reserved after step 1, %zu after step 2, peak %zu\n", reserved,
         ldm_arena_reserved(arena), ldm_arena_peak(arena));
  CHECK(ldm_arena_reserved(arena) == reserved, "second step grew the arena");
  CHECK(memcmp(y1, y2, (size_t)n * 4) == 0, "second step differs from the first");
  ldm_nhwc_to_nchw(o, y2, B, C, HW);
  ldm_test_close("unet sdxl internal API", o, ref, n, TOL, 0);
  atomic_store(&cancel, 1);
  ldm_status st = ldm_unet_forward(&ctx, u, y2, x, B, H, W, ts, &cond);
  CHECK(st == LDM_ERR_CANCELLED, "cancelled forward gave %s", ldm_status_str(st));
  CHECK(ldm_arena_in_use(arena) == 0, "arena not reset after cancel");
  /* a missing added condition is an error, not a crash */
  atomic_store(&cancel, 0);
  cond.time_ids = NULL;
  st = ldm_unet_forward(&ctx, u, y2, x, B, H, W, ts, &cond);
  CHECK(st == LDM_ERR_INVALID_ARG, "forward without time_ids gave %s", ldm_status_str(st));
  free(x), free(y1), free(y2), free(o);
  free(sample), free(ts), free(ehs), free(te), free(tid), free(ref);
  ldm_pool_free(pool);
  ldm_arena_free(arena);
  ldm_st_close(io);
  ldm_unet_free(u);
  ldm_source_close(src);
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "--compare") == 0) {
    double tol = argc >= 5 ? atof(argv[4]) : TOL;
    compare_files("unet compare", argv[2], argv[3], tol);
    return ldm_test_finish("unet-compare");
  }
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ldm_test_unet_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  /* the original files cannot say heads / groups (a yaml does): options */
  /* bf16: diffusers' torch.autocast bf16 deviation (bf16_deviation.py) */
  static const struct {
    const char *name, *options, *io;
    bool single;
    double bf16;
  } cases[] = {
      {"sd1", "heads=2,groups=4", "sd1_io", true, 0.2378},
      {"sd1", "heads=2,groups=4", "sd1_odd_io", true, 0.1907},
      {"sd1", "heads=2,groups=4", "sd1_48x40_io", true, 0.3936},
      {"sd1_inpaint", "heads=2,groups=4", "sd1_inpaint_io", true, 0.0461},
      {"sd2", "head_dim=8,groups=4", "sd2_io", true, 0.0539},
      {"sdxl", "head_dim=8,groups=4", "sdxl_io", true, 0.6276},
      {"x4", "groups=4", "x4_io", true, 0.0638},
      {"lcm", NULL, "lcm_io", false, 0.0475},
  };
  printf("precision=bf16 products run on: %s\n", ldm_bf16_path());
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char model[256], io[256];
    snprintf(io, sizeof io, "unet/%s.safetensors", cases[i].io);
    snprintf(model, sizeof model, "unet/%s", cases[i].name);
    long ign = eval_check(model, NULL, io);
    CHECK(ign == 0, "%s: %ld tensors ignored, expected 0", model, ign);
    double tol16 = cases[i].bf16 < 0.3 ? cases[i].bf16 : 0.3;
    eval_check_tol(model, "precision=bf16-emulated", io, tol16);
    if (ldm_bf16_native()) eval_check_tol(model, "precision=bf16", io, tol16);
    if (cases[i].single) {
      snprintf(model, sizeof model, "unet/%s.safetensors", cases[i].name);
      ign = eval_check(model, cases[i].options, io);
      long want = strcmp(cases[i].name, "sd1") == 0 ? 3 : 0; /* 3 model_ema.* */
      CHECK(ign == want, "%s: %ld tensors ignored, expected %ld", model, ign, want);
    }
  }
  /* config options no released checkpoint uses, implemented (golden/config;
   * f32: the option's arithmetic is what they check) */
  static const char *const config_cases[] = {"unet_center", "unet_midscale"};
  for (size_t i = 0; i < sizeof config_cases / sizeof *config_cases; i++) {
    char model[256], io[256];
    snprintf(model, sizeof model, "config/%s", config_cases[i]);
    snprintf(io, sizeof io, "config/%s_io.safetensors", config_cases[i]);
    long ign = eval_check(model, NULL, io);
    CHECK(ign == 0, "%s: %ld tensors ignored, expected 0", model, ign);
  }
  if (!ldm_bf16_native())
    printf("precision=bf16 not run: this CPU has no AMX-BF16 or AVX512-BF16 (bf16-emulated was)\n");
  check_missing();
  check_reuse_and_cancel();
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return ldm_test_finish("unet-golden");
}
