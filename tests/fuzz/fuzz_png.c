/* Fuzz target: the CLI's PNG reader. Each input is a file that goes through
 * png_read_meta (the chunk walk `ldm info` and --from-png use, text chunks
 * inflated), png_read_rgba (libpng, size admitted first, with an 8 MiB
 * decode limit here) and, when it holds a `parameters` text, the recipe
 * parser with the value checks (cli/recipe.c, cli/values.c). */
#include "cli.h"
#include "png_io.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool ready;

static int on_setting(void *user, const char *key, const char *value) {
  (void)user;
  int i;
  float f;
  uint64_t u;
  bool r;
  if (!strcmp(key, "Steps")) return cli_parse_int(key, value, 1, 1000, &i) ? 2 : 0;
  if (!strcmp(key, "CFG scale")) return cli_parse_float(key, value, 0, 100, &f) ? 2 : 0;
  if (!strcmp(key, "Seed")) return cli_parse_seed(key, value, &r, &u) ? 2 : 0;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) {
    ready = true;
    cli_quiet = true;
    png_io_set_memory_limit((int64_t)8 << 20); /* decodes up to ~1400x1400: fast executions */
  }
  char msg[1200], *text = NULL;
  int w = 0, h = 0;
  FILE *m = size ? fmemopen((void *)data, size, "rb") : NULL;
  if (m) {
    if (png_read_meta_stream(m, "fuzz", "parameters", &w, &h, &text, msg, sizeof msg) != 0 && !msg[0]) abort();
    fclose(m);
  }
  if (text) {
    char *prompt, *negative;
    if (recipe_parse(text, &prompt, &negative, on_setting, NULL) == 0) {
      free(prompt);
      free(negative);
    }
    free(text);
    text = NULL;
  }
  msg[0] = '\0';
  FILE *f = size ? fmemopen((void *)data, size, "rb") : NULL;
  if (!f) return 0;
  ldm_image *img = png_read_rgba_stream(f, "fuzz.png", NULL, NULL, msg, sizeof msg); /* the text: above */
  fclose(f);
  if (!img && !msg[0]) abort(); /* every refusal says why */
  if (img) {
    volatile unsigned sum = 0;
    for (int y = 0; y < img->height; y++) sum += ((const unsigned char *)img->data)[(size_t)y * img->stride];
  }
  ldm_image_free(img);
  return 0;
}
