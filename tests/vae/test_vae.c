/* VAE goldens vs diffusers (tests/reference/make_vae.py): AutoencoderKL
 * encode/decode in both layouts through the `ldm eval` harness, odd sizes
 * (reflection padding, cropped decode), and TAESD (AutoencoderTiny) in the
 * diffusers and original layouts.
 * Tolerance: max abs error <= 1e-4 against the diffusers outputs. */
#include "ldm_test.h"

#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/status.h"
#include "io/source.h"
#include "models/vae/vae.h"
#include "ops/ops.h"

#define TOL 1e-4

static char tmpdir[1024];

/* Runs `ldm eval <component>` on a golden model and input, then compares
 * each output tensor with the golden reference tensor of the same file. */
static void eval_check(const char *label, const char *component, const char *model,
                       const char *options, const char *io, const char *in_name,
                       const char *const *out_names, const char *const *ref_names, int n_out) {
  char model_path[4096], io_path[4096], in_path[4096], out_path[4096];
  ldm_test_golden(model, model_path, sizeof model_path);
  ldm_test_golden(io, io_path, sizeof io_path);
  snprintf(in_path, sizeof in_path, "%s/in.safetensors", tmpdir);
  snprintf(out_path, sizeof out_path, "%s/out.safetensors", tmpdir);
  ldm_error err = {0};
  /* Input file holding the golden input under the component's name. */
  ldm_st_file *g = ldm_test_open_golden(io);
  const ldm_tensor *src = ldm_st_find(g, in_name);
  CHECK(src != NULL, "%s: golden has no '%s'", io, in_name);
  if (!src) return;
  ldm_tensor t = *src;
  t.name = strcmp(component + strlen(component) - 6, "encode") == 0 ? "image" : "latent";
  CHECK(ldm_st_write(in_path, &t, 1, NULL, &err) == LDM_OK, "write input: %s", err.msg);
  ldm_eval_params p = {.component = component, .model_path = model_path, .in_path = in_path,
                       .out_path = out_path, .options = options, .threads = 2};
  ldm_status st = ldm_eval_run(&p, &err);
  CHECK(st == LDM_OK, "%s: eval %s failed: %s", label, component, err.msg);
  if (st != LDM_OK) {
    ldm_st_close(g);
    return;
  }
  ldm_st_file *o = NULL;
  CHECK(ldm_st_open(&o, out_path, &err) == LDM_OK, "open output: %s", err.msg);
  for (int i = 0; o && i < n_out; i++) {
    ldm_tensor gs, rs;
    float *got = ldm_test_tensor_f32(o, out_names[i], &gs);
    float *ref = ldm_test_tensor_f32(g, ref_names[i], &rs);
    char name[256];
    snprintf(name, sizeof name, "%s %s", label, out_names[i]);
    CHECK(gs.ndim == rs.ndim && memcmp(gs.shape, rs.shape, sizeof gs.shape) == 0,
          "%s: shape differs from the golden", name);
    if (gs.ndim == rs.ndim && memcmp(gs.shape, rs.shape, sizeof gs.shape) == 0)
      ldm_test_close(name, got, ref, ldm_tensor_numel(&rs), TOL, 0);
    free(got);
    free(ref);
  }
  ldm_st_close(o);
  ldm_st_close(g);
}

static void kl_goldens(void) {
  const char *enc_out[] = {"mean", "logvar"}, *enc_ref[] = {"enc_mean", "enc_logvar"};
  const char *dec_out[] = {"image"}, *dec_ref[] = {"dec_image"};
  /* 4 levels (factor 8), f16 weights: diffusers folder (config gives the
   * group count) and checkpoint keys first_stage_model.* (no config). */
  eval_check("kl4 diffusers encode", "vae-encode", "vae/kl4", NULL, "vae/kl4_io.safetensors",
             "enc_image", enc_out, enc_ref, 2);
  eval_check("kl4 diffusers decode", "vae-decode", "vae/kl4", NULL, "vae/kl4_io.safetensors",
             "dec_latent", dec_out, dec_ref, 1);
  eval_check("kl4 single-file encode", "vae-encode", "vae/kl4.safetensors", "groups=8",
             "vae/kl4_io.safetensors", "enc_image", enc_out, enc_ref, 2);
  eval_check("kl4 single-file decode", "vae-decode", "vae/kl4.safetensors", "groups=8",
             "vae/kl4_io.safetensors", "dec_latent", dec_out, dec_ref, 1);
  /* odd size 37 x 53: reflection-padded to 40 x 56 inside the engine */
  const char *odd_ref[] = {"odd_mean", "odd_logvar"};
  eval_check("kl4 odd-size encode", "vae-encode", "vae/kl4", NULL, "vae/kl4_io.safetensors",
             "odd_image", enc_out, odd_ref, 2);
  /* 2 levels, 2 resnets per level: bf16 diffusers folder and a standalone
   * f32 file with prefixless original keys. */
  eval_check("kl2 diffusers encode", "vae-encode", "vae/kl2", NULL, "vae/kl2_io.safetensors",
             "enc_image", enc_out, enc_ref, 2);
  eval_check("kl2 diffusers decode", "vae-decode", "vae/kl2", NULL, "vae/kl2_io.safetensors",
             "dec_latent", dec_out, dec_ref, 1);
  eval_check("kl2 standalone encode", "vae-encode", "vae/kl2.safetensors", "groups=8",
             "vae/kl2_io.safetensors", "enc_image", enc_out, enc_ref, 2);
  eval_check("kl2 standalone decode", "vae-decode", "vae/kl2.safetensors", "groups=8",
             "vae/kl2_io.safetensors", "dec_latent", dec_out, dec_ref, 1);
}

static void taesd_goldens(void) {
  const char *eo[] = {"latent"}, *er[] = {"enc_latent"}, *dout[] = {"image"}, *dr[] = {"dec_image"};
  eval_check("taesd diffusers encode", "taesd-encode", "vae/taesd", NULL, "vae/taesd_io.safetensors",
             "enc_image", eo, er, 1);
  eval_check("taesd diffusers decode", "taesd-decode", "vae/taesd", NULL, "vae/taesd_io.safetensors",
             "dec_latent", dout, dr, 1);
  eval_check("taesd original encode", "taesd-encode", "vae/taesd_encoder.safetensors", NULL,
             "vae/taesd_io.safetensors", "enc_image", eo, er, 1);
  eval_check("taesd original decode", "taesd-decode", "vae/taesd_decoder.safetensors", NULL,
             "vae/taesd_io.safetensors", "dec_latent", dout, dr, 1);
}

/* A decode cropped to H x W equals the top-left of the full decode. */
static void crop_check(void) {
  char path[4096];
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_vae *vae = NULL;
  CHECK(ldm_source_open(&src, ldm_test_golden("vae/kl4", path, sizeof path), &err) == LDM_OK,
        "%s", err.msg);
  CHECK(src && ldm_vae_load(&vae, src, NULL, &err) == LDM_OK, "%s", err.msg);
  if (!vae) return;
  ldm_st_file *g = ldm_test_open_golden("vae/kl4_io.safetensors");
  float *lat = ldm_test_tensor_f32(g, "dec_latent", NULL);
  ldm_ctx ctx = {.pool = ldm_pool_new(2), .threads = 2, .scratch = ldm_arena_new(0), .err = &err};
  float *full = malloc(2 * 3 * 40 * 56 * sizeof(float)), *crop = malloc(2 * 3 * 37 * 53 * sizeof(float));
  CHECK(ldm_vae_decode(&ctx, vae, full, lat, 2, 5, 7, 0, 0) == LDM_OK, "%s", err.msg);
  CHECK(ldm_vae_decode(&ctx, vae, crop, lat, 2, 5, 7, 37, 53) == LDM_OK, "%s", err.msg);
  float *ref = malloc(2 * 3 * 37 * 53 * sizeof(float));
  for (int b = 0; b < 6; b++)
    for (int y = 0; y < 37; y++)
      for (int x = 0; x < 53; x++) ref[(b * 37 + y) * 53 + x] = full[(b * 40 + y) * 56 + x];
  ldm_test_close("kl4 decode cropped to 37x53 vs full decode", crop, ref, 2 * 3 * 37 * 53, 0, 0);
  /* tiled batch of 2 (tile 4, overlap 2 latent px) equals each item tiled alone */
  float *t2 = malloc(2 * 3 * 40 * 56 * sizeof(float)), *t1 = malloc(3 * 40 * 56 * sizeof(float));
  CHECK(ldm_vae_decode_tiled(&ctx, vae, t2, lat, 2, 5, 7, 0, 0, 4, 2) == LDM_OK, "%s", err.msg);
  CHECK(ldm_vae_decode_tiled(&ctx, vae, t1, lat + 4 * 5 * 7, 1, 5, 7, 0, 0, 4, 2) == LDM_OK, "%s", err.msg);
  ldm_test_close("kl4 tiled decode, batch item 1 vs alone", t2 + 3 * 40 * 56, t1, 3 * 40 * 56, 0, 0);
  /* a tile larger than the latent takes the untiled path */
  CHECK(ldm_vae_decode_tiled(&ctx, vae, t2, lat, 2, 5, 7, 0, 0, 8, 2) == LDM_OK, "%s", err.msg);
  ldm_test_close("kl4 decode with one tile vs untiled", t2, full, 2 * 3 * 40 * 56, 0, 0);
  free(t2);
  free(t1);
  int h, w;
  ldm_vae_latent_size(vae, 37, 53, &h, &w);
  CHECK(h == 5 && w == 7, "latent size of 37x53: %dx%d", h, w);
  /* errors are values: a latent too small for the crop */
  CHECK(ldm_vae_decode(&ctx, vae, crop, lat, 2, 5, 7, 41, 56) == LDM_ERR_INVALID_ARG,
        "oversized crop accepted");
  printf("error message: %s\n", err.msg);
  free(full);
  free(crop);
  free(ref);
  free(lat);
  ldm_st_close(g);
  ldm_pool_free(ctx.pool);
  ldm_arena_free(ctx.scratch);
  ldm_vae_free(vae);
  ldm_source_close(src);
}

/* An original TAESD pair loads as one model; the diffusers folder holds both. */
static void taesd_pair_check(void) {
  char p1[4096], p2[4096];
  ldm_error err = {0};
  ldm_source *a = NULL, *b = NULL;
  ldm_taesd *t = NULL;
  CHECK(ldm_source_open(&a, ldm_test_golden("vae/taesd_encoder.safetensors", p1, sizeof p1), &err) == LDM_OK &&
            ldm_source_open(&b, ldm_test_golden("vae/taesd_decoder.safetensors", p2, sizeof p2), &err) == LDM_OK,
        "%s", err.msg);
  CHECK(a && b && ldm_taesd_load(&t, b, a, &err) == LDM_OK, "taesd pair: %s", err.msg);
  CHECK(t && ldm_taesd_has_encoder(t) && ldm_taesd_has_decoder(t) && ldm_taesd_factor(t) == 8 &&
            ldm_taesd_latent_channels(t) == 4,
        "taesd pair: halves, factor or channels wrong");
  ldm_taesd_free(t);
  t = NULL;
  /* the AutoencoderKL loader refuses TAESD files with a message naming them */
  ldm_vae *v = NULL;
  CHECK(ldm_vae_load(&v, a, NULL, &err) == LDM_ERR_MISSING && strstr(err.msg, "taesd_encoder"),
        "vae load of a TAESD file: %s", err.msg);
  ldm_source_close(a);
  ldm_source_close(b);
}

/* Layout errors name the file and the tensor. */
static void error_check(void) {
  char path[4096];
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_vae *vae = NULL;
  CHECK(ldm_source_open(&src, ldm_test_golden("vae/taesd_io.safetensors", path, sizeof path), &err) == LDM_OK,
        "%s", err.msg);
  CHECK(ldm_vae_load(&vae, src, NULL, &err) == LDM_ERR_MISSING && strstr(err.msg, "no VAE found"),
        "non-VAE file: %s", err.msg);
  ldm_source_close(src);
  src = NULL;
  CHECK(ldm_source_open(&src, ldm_test_golden("vae/kl4.safetensors", path, sizeof path), &err) == LDM_OK,
        "%s", err.msg);
  /* without the group count the tiny model's 16 channels do not split into 32 groups */
  CHECK(ldm_vae_load(&vae, src, NULL, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "norm_num_groups"),
        "groups error: %s", err.msg);
  printf("error message: %s\n", err.msg);
  ldm_source_close(src);
}

/* Preview factors and scaling factors. Exact checks (integer pixels). */
static void preview_scale_check(void) {
  ldm_error err = {0};
  /* planar [4, 1, 2]: pixel 0 = (1, 0, 0, 0); pixel 1 = (0, 0, 0, -5), clamped to white */
  float lat[4 * 2] = {1, 0, 0, 0, 0, 0, 0, -5};
  uint8_t rgb[6];
  CHECK(ldm_latent_preview(LDM_FAMILY_SD1, rgb, lat, 1, 2, &err) == LDM_OK, "%s", err.msg);
  /* pixel 0 = channel-0 row of the SD1 factors (0.3512, 0.2297, 0.3227) -> (x+1)/2*255 */
  CHECK(rgb[0] == 172 && rgb[1] == 157 && rgb[2] == 169, "sd1 preview pixel 0 = %d %d %d", rgb[0], rgb[1], rgb[2]);
  CHECK(rgb[3] == 255 && rgb[4] == 255 && rgb[5] == 255, "sd1 preview pixel 1 = %d %d %d", rgb[3], rgb[4], rgb[5]);
  CHECK(ldm_latent_preview(LDM_FAMILY_SDXL, rgb, lat, 1, 2, &err) == LDM_OK, "%s", err.msg);
  CHECK(rgb[0] == 177 && rgb[1] == 179 && rgb[2] == 185, "sdxl preview pixel 0 = %d %d %d", rgb[0], rgb[1], rgb[2]);
  uint8_t x4[6];
  /* x4 upscaler: channel-0 row of its factors (-0.2340, -0.3863, -0.3257) */
  CHECK(ldm_latent_preview(LDM_FAMILY_X4_UPSCALER, x4, lat, 1, 2, &err) == LDM_OK, "%s", err.msg);
  CHECK(x4[0] == 98 && x4[1] == 78 && x4[2] == 86, "x4 preview pixel 0 = %d %d %d", x4[0], x4[1], x4[2]);
  CHECK(ldm_latent_preview(LDM_FAMILY_UNKNOWN, x4, lat, 1, 2, &err) == LDM_ERR_UNSUPPORTED,
        "a family without factors should be unsupported");
  printf("preview: sd1 (%d %d %d) sdxl (%d %d %d) x4 (%d %d %d)\n", 172, 157, 169, rgb[0], rgb[1], rgb[2], x4[0],
         x4[1], x4[2]);

  char path[4096];
  ldm_source *src = NULL;
  ldm_vae *vae = NULL;
  CHECK(ldm_source_open(&src, ldm_test_golden("vae/kl4", path, sizeof path), &err) == LDM_OK, "%s", err.msg);
  CHECK(src && ldm_vae_load(&vae, src, NULL, &err) == LDM_OK, "%s", err.msg);
  if (vae) {
    const ldm_vae_config *c = ldm_vae_get_config(vae);
    CHECK(c->levels == 4 && c->ch[0] == 16 && c->ch[1] == 24 && c->ch[3] == 32 && c->layers == 1 &&
          c->groups == 8 && c->latent_channels == 4 && c->mid_attention && c->quant_conv &&
          c->post_quant_conv && ldm_vae_factor(vae) == 8,
          "kl4 config: levels %d ch %d %d %d %d layers %d groups %d", c->levels, c->ch[0], c->ch[1],
          c->ch[2], c->ch[3], c->layers, c->groups);
    CHECK(c->scale == 0.18215f && c->shift == 0.0f, "kl4 scale %g shift %g (config.json)", c->scale, c->shift);
    float z[2] = {1.0f, -2.0f};
    ldm_vae_scale_latent(vae, z, 2);
    ldm_vae_unscale_latent(vae, z, 2);
    CHECK(fabsf(z[0] - 1.0f) < 1e-6f && fabsf(z[1] + 2.0f) < 1e-6f, "scale/unscale round trip");
  }
  ldm_vae_free(vae);
  vae = NULL;
  ldm_source_close(src);
  src = NULL;
  /* a VAE whose config.json has a shift_factor (SD3 / Flux VAEs): the same
   * kl4 weights with shift 0.0609; latents are (z - shift) * scale and back
   * z / scale + shift, as diffusers' SD3 pipelines apply them */
  {
    char tmpl[] = "/tmp/ldm-vae-shift-XXXXXX", p2[4200], cfg[8192] = "";
    CHECK(mkdtemp(tmpl) != NULL, "mkdtemp");
    snprintf(p2, sizeof p2, "%s/vae", tmpl);
    CHECK(mkdir(p2, 0700) == 0, "mkdir %s", p2);
    FILE *in = fopen(ldm_test_golden("vae/kl4/vae/config.json", path, sizeof path), "rb");
    size_t len = in ? fread(cfg, 1, sizeof cfg - 1, in) : 0;
    if (in) fclose(in);
    cfg[len] = 0;
    char *at = strstr(cfg, "\"shift_factor\": null");
    CHECK(at != NULL, "kl4 config.json has no \"shift_factor\": null");
    if (at) {
      char out[8300];
      snprintf(out, sizeof out, "%.*s\"shift_factor\": 0.0609%s", (int)(at - cfg), cfg, at + strlen("\"shift_factor\": null"));
      snprintf(p2, sizeof p2, "%s/vae/config.json", tmpl);
      FILE *o = fopen(p2, "wb");
      CHECK(o && fputs(out, o) >= 0, "write %s", p2);
      if (o) fclose(o);
      snprintf(p2, sizeof p2, "%s/vae/diffusion_pytorch_model.safetensors", tmpl);
      CHECK(symlink(ldm_test_golden("vae/kl4/vae/diffusion_pytorch_model.safetensors", path, sizeof path), p2) == 0,
            "symlink");
      if (ldm_source_open(&src, tmpl, &err) == LDM_OK && ldm_vae_load(&vae, src, NULL, &err) == LDM_OK) {
        const ldm_vae_config *c = ldm_vae_get_config(vae);
        float z[2] = {1.0f, -2.0f}, want[2];
        for (int i = 0; i < 2; i++) want[i] = (z[i] - 0.0609f) * c->scale;
        CHECK(c->shift == 0.0609f, "shift_factor read as %g", c->shift);
        ldm_vae_scale_latent(vae, z, 2);
        ldm_test_close("vae scale with shift_factor 0.0609", z, want, 2, 1e-6, 0.0);
        ldm_vae_unscale_latent(vae, z, 2);
        want[0] = 1.0f, want[1] = -2.0f;
        ldm_test_close("vae unscale with shift_factor 0.0609", z, want, 2, 1e-6, 0.0);
      } else {
        CHECK(false, "kl4 with shift_factor: %s", err.msg);
      }
      ldm_vae_free(vae);
      vae = NULL;
      ldm_source_close(src);
      src = NULL;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpl);
  }
  /* no config in a single file: the family decides the scale */
  CHECK(ldm_source_open(&src, ldm_test_golden("vae/kl2.safetensors", path, sizeof path), &err) == LDM_OK,
        "%s", err.msg);
  ldm_vae_load_opts o = {.groups = 8, .family = LDM_FAMILY_SDXL};
  CHECK(src && ldm_vae_load(&vae, src, &o, &err) == LDM_OK, "%s", err.msg);
  if (vae) {
    const ldm_vae_config *c = ldm_vae_get_config(vae);
    CHECK(c->scale == 0.13025f, "sdxl scale %g", c->scale);
    CHECK(c->levels == 2 && c->layers == 2 && c->ch[0] == 16 && c->ch[1] == 32 && ldm_vae_factor(vae) == 2,
          "kl2 config: levels %d layers %d", c->levels, c->layers);
  }
  ldm_vae_free(vae);
  ldm_source_close(src);
}

/* test_vae --compare OUT REF TOL name=refname...: compares tensors of two
 * files (used by the slow full-size suite). */
static int compare_main(int argc, char **argv) {
  ldm_error err = {0};
  ldm_st_file *o = NULL, *r = NULL;
  if (ldm_st_open(&o, argv[2], &err) != LDM_OK || ldm_st_open(&r, argv[3], &err) != LDM_OK) {
    fprintf(stderr, "FAIL: %s\n", err.msg);
    return 1;
  }
  double tol = atof(argv[4]);
  for (int i = 5; i < argc; i++) {
    char name[128];
    snprintf(name, sizeof name, "%s", argv[i]);
    char *eq = strchr(name, '=');
    if (!eq) return 2;
    *eq = '\0';
    ldm_tensor gs, rs;
    float *got = ldm_test_tensor_f32(o, name, &gs), *ref = ldm_test_tensor_f32(r, eq + 1, &rs);
    CHECK(ldm_tensor_numel(&gs) == ldm_tensor_numel(&rs), "%s: element count differs", name);
    if (ldm_tensor_numel(&gs) == ldm_tensor_numel(&rs))
      ldm_test_close(name, got, ref, ldm_tensor_numel(&rs), tol, 0);
    free(got);
    free(ref);
  }
  ldm_st_close(o);
  ldm_st_close(r);
  return ldm_test_finish("vae-compare");
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "--compare") == 0) return compare_main(argc, argv);
  snprintf(tmpdir, sizeof tmpdir, "%s/ldm_test_vae_%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (int)getpid());
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmpdir);
  if (system(cmd) != 0) return 1;
  kl_goldens();
  taesd_goldens();
  crop_check();
  error_check();
  preview_scale_check();
  taesd_pair_check();
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return ldm_test_finish("vae-golden");
}
