/* Family detection (what `ldm info` reports) on every tiny golden UNet in
 * both layouts, and on full-size single-file layouts of SD1.5, SD1.5
 * inpainting, SD2.1, SDXL and the x4 upscaler: tests/golden/unet/layout_*.stheader
 * hold the header of the f16 file that diffusers' own model with the real
 * config gives (make_unet.py); the test extends each to a sparse file of the
 * declared size, so no weight data is stored or read. Exact checks. */
#include "ldm_test.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "io/source.h"
#include "models/family.h"
#include "models/unet/unet.h"

static char tmpdir[1024];

static void check(const char *label, const char *path, ldm_family fam, int pred, int in_ch, int ctx_dim,
                  int native, int64_t params) {
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_family_info fi;
  CHECK(ldm_source_open(&src, path, &err) == LDM_OK, "%s: %s", label, err.msg);
  if (!src) return;
  ldm_status st = ldm_family_detect(src, &fi, &err);
  CHECK(st == LDM_OK, "%s: %s", label, err.msg);
  if (st == LDM_OK) {
    printf("%-22s family %-12s prediction %-7s in %d context %4d native %4d params %lld vae %.5f\n", label,
           ldm_family_name(fi.family), ldm_prediction_name(fi.prediction), fi.unet_in_channels, fi.context_dim,
           fi.native_size, (long long)fi.unet_params, fi.vae_scale);
    CHECK(fi.family == fam, "%s: family %s, expected %s", label, ldm_family_name(fi.family), ldm_family_name(fam));
    if (pred >= 0)
      CHECK((int)fi.prediction == pred, "%s: prediction %s, expected %s", label, ldm_prediction_name(fi.prediction),
            ldm_prediction_name((ldm_prediction)pred));
    CHECK(fi.unet_in_channels == in_ch, "%s: in_channels %d, expected %d", label, fi.unet_in_channels, in_ch);
    CHECK(fi.context_dim == ctx_dim, "%s: context %d, expected %d", label, fi.context_dim, ctx_dim);
    if (native) CHECK(fi.native_size == native, "%s: native %d, expected %d", label, fi.native_size, native);
    if (params) CHECK(fi.unet_params == params, "%s: params %lld, expected %lld", label, (long long)fi.unet_params,
                      (long long)params);
  }
  ldm_source_close(src);
}

/* `ldm info FILE` must print the family (skipped only when LDM_EXE is unset,
 * which meson always sets). */
static void check_cli(const char *label, const char *path, ldm_family fam) {
  const char *exe = getenv("LDM_EXE");
  CHECK(exe != NULL, "LDM_EXE is not set");
  if (!exe) return;
  char cmd[8500], line[512], want[64], got[64] = "";
  snprintf(cmd, sizeof cmd, "'%s' info '%s' 2>&1", exe, path);
  FILE *f = popen(cmd, "r");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "family: %63s", got) == 1) break;
  while (f && fgets(line, sizeof line, f)) {
  }
  int rc = f ? pclose(f) : -1;
  snprintf(want, sizeof want, "%s", ldm_family_name(fam));
  printf("%-22s ldm info: family %s\n", label, got);
  CHECK(rc == 0 && strcmp(got, want) == 0, "%s: ldm info printed family '%s' (exit %d), expected '%s'", label, got,
        rc, want);
}

/* Header file -> sparse safetensors file of the declared size. */
static const char *materialize(const char *name, char *out, size_t n) {
  char path[4096];
  ldm_test_golden(name, path, sizeof path);
  FILE *f = fopen(path, "rb");
  if (!f) {
    CHECK(0, "cannot open golden %s", path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)len + 1);
  size_t got = fread(buf, 1, (size_t)len, f);
  fclose(f);
  buf[got] = '\0';
  const char *key = "\"ldm_layout_data_bytes\":\"";
  char *k = NULL;
  for (long i = 8; i + (long)strlen(key) < len && !k; i++)
    if (memcmp(buf + i, key, strlen(key)) == 0) k = buf + i;
  long long data = k ? atoll(k + strlen(key)) : 0;
  CHECK(got == (size_t)len && data > 0, "%s: no data size in the header", name);
  snprintf(out, n, "%s/%s.safetensors", tmpdir, strrchr(name, '/') + 1);
  int fd = open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  int ok = fd >= 0 && write(fd, buf, got) == (ssize_t)got && ftruncate(fd, (off_t)(len + data)) == 0;
  if (fd >= 0) close(fd);
  free(buf);
  CHECK(ok, "cannot write %s", out);
  return ok ? out : NULL;
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/ldm_test_unet_family_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  char p[4096];
  const int EPS = LDM_PRED_EPSILON, V = LDM_PRED_V, ANY = -1;
  /* tiny models: folder (prediction from scheduler_config.json) and single file */
  check("tiny sd1 folder", ldm_test_golden("unet/sd1", p, sizeof p), LDM_FAMILY_SD1, EPS, 4, 16, 512, 141628);
  check("tiny sd1 file", ldm_test_golden("unet/sd1.safetensors", p, sizeof p), LDM_FAMILY_SD1, EPS, 4, 16, 512,
        141628);
  check("tiny inpaint folder", ldm_test_golden("unet/sd1_inpaint", p, sizeof p), LDM_FAMILY_SD1_INPAINT, EPS, 9,
        16, 512, 52364);
  check("tiny inpaint file", ldm_test_golden("unet/sd1_inpaint.safetensors", p, sizeof p), LDM_FAMILY_SD1_INPAINT,
        EPS, 9, 16, 512, 52364);
  check("tiny sd2 folder", ldm_test_golden("unet/sd2", p, sizeof p), LDM_FAMILY_SD2, V, 4, 40, 768, 74132);
  check("tiny sd2 file", ldm_test_golden("unet/sd2.safetensors", p, sizeof p), LDM_FAMILY_SD2, ANY, 4, 40, 0,
        74132);
  check("tiny sdxl folder", ldm_test_golden("unet/sdxl", p, sizeof p), LDM_FAMILY_SDXL, EPS, 4, 40, 1024, 142172);
  check("tiny sdxl file", ldm_test_golden("unet/sdxl.safetensors", p, sizeof p), LDM_FAMILY_SDXL, EPS, 4, 40, 1024,
        142172);
  check("tiny x4 folder", ldm_test_golden("unet/x4", p, sizeof p), LDM_FAMILY_X4_UPSCALER, V, 7, 40, 512, 148660);
  check("tiny x4 file", ldm_test_golden("unet/x4.safetensors", p, sizeof p), LDM_FAMILY_X4_UPSCALER, V, 7, 40, 512,
        148660);
  check("tiny lcm folder", ldm_test_golden("unet/lcm", p, sizeof p), LDM_FAMILY_SD1, EPS, 4, 16, 512, 52068);
  /* full-size layouts (sparse files; parameter counts of the real UNets) */
  static const struct {
    const char *hdr;
    ldm_family fam;
    int in, ctx, native;
    long long params;
  } full[] = {
      {"unet/layout_sd15.stheader", LDM_FAMILY_SD1, 4, 768, 512, 859520964LL},
      {"unet/layout_sd15_inpaint.stheader", LDM_FAMILY_SD1_INPAINT, 9, 768, 512, 859535364LL},
      {"unet/layout_sd21.stheader", LDM_FAMILY_SD2, 4, 1024, 0, 865910724LL},
      {"unet/layout_sdxl.stheader", LDM_FAMILY_SDXL, 4, 2048, 1024, 2567463684LL},
      {"unet/layout_x4.stheader", LDM_FAMILY_X4_UPSCALER, 7, 1024, 512, 473398020LL},
  };
  for (size_t i = 0; i < sizeof full / sizeof *full; i++) {
    char path[4096];
    if (!materialize(full[i].hdr, path, sizeof path)) continue;
    check(full[i].hdr + 5, path, full[i].fam, full[i].fam == LDM_FAMILY_X4_UPSCALER ? V : full[i].fam == LDM_FAMILY_SD2 ? ANY : EPS,
          full[i].in, full[i].ctx, full[i].native, full[i].params);
    check_cli(full[i].hdr + 5, path, full[i].fam);
    /* the loader binds every tensor of the real layout (family default heads) */
    ldm_error err = {0};
    ldm_source *src = NULL;
    ldm_unet *u = NULL;
    CHECK(ldm_source_open(&src, path, &err) == LDM_OK, "%s", err.msg);
    ldm_status st = src ? ldm_unet_load(&u, src, NULL, &err) : LDM_ERR_INTERNAL;
    CHECK(st == LDM_OK, "%s: load: %s", full[i].hdr, err.msg);
    if (u) {
      const ldm_unet_config *c = &u->cfg;
      printf("  levels %d lpb %d ch %d..%d heads[0..] %d %d %d depth %d %d %d mid %d ignored %lld\n", c->n_levels,
             c->layers_per_block, c->channels[0], c->channels[c->n_levels - 1], c->heads[0], c->heads[1], c->heads[2],
             c->attn_depth[0], c->attn_depth[1], c->attn_depth[2], c->mid_depth, (long long)c->n_ignored);
      CHECK(c->n_ignored == 0, "%s: %lld tensors unused", full[i].hdr, (long long)c->n_ignored);
    }
    ldm_unet_free(u);
    ldm_source_close(src);
    unlink(path);
  }
  rmdir(tmpdir);
  return ldm_test_finish("unet-family");
}
