/* `ldm info MODEL` (family, prediction, channels, native size and the
 * recommended settings the model states, parameters, size)
 * and `ldm ls FILE` (every tensor with dtype and shape, then metadata). */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Text from a file, with control characters (escape sequences, newlines)
 * written as \xNN and backslashes as \\, so it cannot drive the terminal. */
static void print_escaped(const char *s, int width) {
  int n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p < 0x20 || *p == 0x7f) n += printf("\\x%02x", *p);
    else if (*p == '\\') n += printf("\\\\");
    else {
      putchar(*p);
      n++;
    }
  }
  for (; n < width; n++) putchar(' ');
}

static void print_tensor(void *user, const char *name, const char *dtype, int ndim, const int64_t *shape) {
  (void)user;
  if (ndim < 0) {
    printf("metadata ");
    print_escaped(name, 0);
    printf(" = ");
    print_escaped(dtype, 0);
    printf("\n");
    return;
  }
  print_escaped(name, 72);
  printf(" %-5s [", dtype);
  for (int i = 0; i < ndim; i++) printf(i ? ", %lld" : "%lld", (long long)shape[i]);
  printf("]\n");
}

int ldm_cmd_ls(int argc, char **argv) {
  if (argc != 2 || !strcmp(argv[1], "--help")) {
    fprintf(argc == 2 ? stdout : stderr, "usage: ldm ls FILE.safetensors\n");
    return argc == 2 ? LDM_EXIT_OK : LDM_EXIT_USAGE;
  }
  ldm_error err = {0};
  if (ldm_file_list(argv[1], print_tensor, NULL, &err) != LDM_OK) return cli_fail(LDM_EXIT_RUNTIME, "%s", err.msg);
  return LDM_EXIT_OK;
}

int ldm_cmd_info(int argc, char **argv) {
  if (argc != 2 || !strcmp(argv[1], "--help")) {
    fprintf(argc == 2 ? stdout : stderr, "usage: ldm info MODEL|IMAGE.png (.safetensors file, diffusers folder, or a PNG made by ldm)\n");
    return argc == 2 ? LDM_EXIT_OK : LDM_EXIT_USAGE;
  }
  const char *path = argv[1];
  int png_rc = cli_png_info(path);
  if (png_rc >= 0) return png_rc;
  ldm_error err = {0};
  struct stat sb;
  if (stat(path, &sb) != 0) return cli_fail(LDM_EXIT_RUNTIME, "%s: no such file or folder", path);
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = path;
  ldm_model *m = NULL;
  ldm_controlnet_info ci;
  if (ldm_controlnet_probe(path, &ci, &err) == LDM_OK) {
    printf(
        "model:       %s\nkind:        ControlNet\nfamily:      %s\nlayout:      %s\ncontrol:     %d channels\n"
        "parameters:  %lld\nfile size:   %lld bytes\n",
        path, ci.family, ci.layout, ci.hint_channels, (long long)ci.n_params, (long long)ci.file_bytes);
    return LDM_EXIT_OK;
  }
  ldm_error_clear(&err);
  ldm_status st = ldm_model_load(&m, &mp, &err);
  if (st == LDM_OK) {
    ldm_model_info info;
    ldm_model_get_info(m, &info);
    if (info.feed_forward)
      printf("model:       %s\nfamily:      %s\narch:        %s\nscale:       x%d\nparameters:  %lld\n"
             "file size:   %lld bytes\n",
             path, info.family, info.arch, info.scale, (long long)info.n_params, (long long)info.file_bytes);
    else
    printf("model:       %s\nfamily:      %s\nprediction:  %s\nunet input:  %d channels\n"
           "native size: %d px (%s)\nunet params: %lld\nfile size:   %lld bytes\n",
           path, info.family, info.prediction, info.unet_in_channels, info.native_size,
           info.native_size_stated ? "stated by the model" : "the family's default; not stated by the model",
           (long long)info.n_params, (long long)info.file_bytes);
    /* the recommended settings the model states (the CLI's defaults) */
    if (!info.feed_forward) {
      if (info.rec_steps > 0) printf("steps:       %d (recommended)\n", info.rec_steps);
      else printf("steps:       not stated\n");
      if (info.rec_cfg > 0.0f) printf("cfg scale:   %g (recommended)\n", (double)info.rec_cfg);
      else printf("cfg scale:   not stated\n");
      if (info.rec_sampler[0]) printf("sampler:     %s (recommended)\n", info.rec_sampler);
      else printf("sampler:     not stated\n");
    }
    if (!info.feed_forward && info.scale) printf("scale:       x%d\n", info.scale);
    ldm_model_free(m);
  } else if (S_ISREG(sb.st_mode) && (st == LDM_ERR_UNSUPPORTED || st == LDM_ERR_MISSING)) {
    /* Not a diffusion checkpoint we recognise: still describe the file. */
    ldm_error err2 = {0};
    ldm_file_summary s;
    if (ldm_file_summarize(path, &s, &err2) != LDM_OK) return cli_fail(LDM_EXIT_RUNTIME, "%s", err2.msg);
    printf("file:        %s\nfamily:      unknown (%s)\ntensors:     %lld\nparameters:  %lld\n"
           "dtypes:      %s\nfile size:   %lld bytes\n",
           path, err.msg, (long long)s.n_tensors, (long long)s.n_params, s.dtypes, (long long)s.file_bytes);
  } else {
    return cli_fail(LDM_EXIT_RUNTIME, "%s", err.msg);
  }
  return LDM_EXIT_OK;
}
