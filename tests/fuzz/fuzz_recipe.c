/* Fuzz target: the recipe (`parameters` text, --from-png) parser and the
 * value checks every stored setting goes through. Input: the text. */
#include "cli.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int on_setting(void *user, const char *key, const char *value) {
  int *count = user;
  (*count)++;
  if (!key[0] || strchr(key, ',')) abort(); /* keys never hold a comma */
  int i;
  float f;
  uint64_t u;
  bool r;
  if (!strcmp(key, "Steps") && cli_parse_int(key, value, 1, 1000, &i) == 0 && (i < 1 || i > 1000)) abort();
  if (!strcmp(key, "CFG scale") && cli_parse_float(key, value, 0, 100, &f) == 0 && !(f >= 0 && f <= 100)) abort();
  if (!strcmp(key, "Denoising strength") && cli_parse_float(key, value, 0, 1, &f) == 0 && !isfinite(f)) abort();
  if (!strcmp(key, "Seed")) (void)cli_parse_seed(key, value, &r, &u);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cli_quiet = true;
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  char *prompt = NULL, *negative = NULL;
  int count = 0;
  int rc = recipe_parse(s, &prompt, &negative, on_setting, &count);
  if (rc == 0 && (!prompt || !negative)) abort();
  if (rc != 0 && (prompt || negative)) abort();
  free(prompt);
  free(negative);
  free(s);
  return 0;
}
