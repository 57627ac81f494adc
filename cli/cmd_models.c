/* `ldm models`: what the model folders hold (ldm_models_scan): kind and
 * family from the tensors, size, file; unreadable files with the reason. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: ldm models [--kind checkpoint|lora|embedding|vae|controlnet|upscaler] [--model-dir DIR]...\n"
          "  Lists the models found under the model folders: each --model-dir, then $LDM_MODEL_PATH\n"
          "  (':'-separated). A folder may be an AUTOMATIC1111 or ComfyUI root (models/Stable-diffusion,\n"
          "  models/Lora, models/checkpoints, models/loras, embeddings, ...), a gimp-ldm one (checkpoints/,\n"
          "  loras/, embeddings/, vae/, controlnet/, upscalers/) or a plain folder of files.\n"
          "  Columns: kind, family (from the tensors), size in MiB, file; unreadable files end in\n"
          "  '(error: reason)'.\n");
}

typedef struct counts {
  int n, bad;
} counts;

static int show(void *user, const ldm_model_entry *e) {
  counts *c = user;
  c->n++;
  printf("%-10s  %-12s  %9.1f  %s", ldm_model_kind_name(e->kind), e->family[0] ? e->family : "-",
         (double)e->bytes / 1048576.0, e->path);
  if (e->error) {
    printf("  (error: %s)", e->error);
    c->bad++;
  }
  putchar('\n');
  return 0;
}

int ldm_cmd_models(int argc, char **argv) {
  ldm_model_kind kind = LDM_KIND_ANY;
  char dirs[8192] = "";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return LDM_EXIT_OK;
    }
    if (!v) {
      usage(stderr);
      return cli_fail(LDM_EXIT_USAGE, "models: '%s' needs a value", a);
    }
    if (!strcmp(a, "--kind")) {
      if (!ldm_model_kind_parse(v, &kind))
        return cli_fail(LDM_EXIT_USAGE, "--kind: '%s' is not checkpoint, lora, embedding, vae, controlnet or upscaler",
                        v);
    } else if (!strcmp(a, "--model-dir")) {
      size_t k = strlen(dirs);
      if (k + strlen(v) + 2 >= sizeof dirs) return cli_fail(LDM_EXIT_USAGE, "--model-dir: too many folders");
      snprintf(dirs + k, sizeof dirs - k, "%s%s", k ? ":" : "", v);
    } else {
      usage(stderr);
      return cli_fail(LDM_EXIT_USAGE, "models: unknown option '%s'", a);
    }
    i++;
  }
  const char *env = getenv("LDM_MODEL_PATH");
  if (env && *env) {
    size_t k = strlen(dirs);
    snprintf(dirs + k, sizeof dirs - k, "%s%s", k ? ":" : "", env);
  }
  if (!dirs[0]) return cli_fail(LDM_EXIT_USAGE, "models: no model folder (--model-dir DIR or LDM_MODEL_PATH)");
  counts c = {0, 0};
  ldm_error err = {0};
  if (ldm_models_scan(dirs, kind, show, &c, &err) != LDM_OK) return cli_fail(LDM_EXIT_RUNTIME, "%s", err.msg);
  fprintf(stderr, "%d file%s, %d unreadable\n", c.n, c.n == 1 ? "" : "s", c.bad);
  return LDM_EXIT_OK;
}
