/* Every config key of the pinned reference classes (diffusers 0.31's
 * UNet2DConditionModel and AutoencoderKL, transformers 4.46's CLIPTextConfig;
 * tests/golden/config/keys.txt, written by tests/reference/make_config_keys.py)
 * is classified by its component's table, and no table names a key the class
 * does not have. Then, through the components' config.json readers:
 *  - the class's default config (every key at its default) is accepted;
 *  - every key the engine refuses unless at its implemented values is refused
 *    with another value, the error (LDM_ERR_UNSUPPORTED) naming key and value;
 *  - the cases of wrong numbers once computed silently: UNet act_fn "mish",
 *    downsample_padding 0, text hidden_act "gelu_new", eos_token_id not the
 *    vocabulary's last. (center_input_sample, mid_block_scale_factor and
 *    gelu_pytorch_tanh are implemented: goldens in unet-golden / text-encoder.)
 * Tolerance: exact (classification). */
#include "ldm_test.h"

#include <jansson.h>
#include <string.h>

#include "core/config_keys.h"
#include "models/unet/unet.h"
#include "models/vae/vae.h"
#include "text/clip_text.h"

enum { UNET, VAE, TEXT, N_COMP };
static const char *comp_names[N_COMP] = {"unet", "vae", "text"};

static const ldm_config_keys *table(int c) {
  if (c == UNET) return ldm_unet_config_keys();
  if (c == VAE) return ldm_vae_config_keys();
  return ldm_clip_config_keys();
}

/* Every key a component's lists name (malloc'd copies, count in *n). */
static char **listed_keys(const ldm_config_keys *k, int *n) {
  const char *lists[] = {k->read, k->shape, k->no_effect, k->only};
  char **out = NULL;
  *n = 0;
  for (int r = 0; r < 4; r++)
    for (const char *s = lists[r]; s && *s;) {
      s += strspn(s, " ");
      size_t len = strcspn(s, " "), name = strcspn(s, "= ");
      if (len) {
        out = realloc(out, (size_t)(*n + 1) * sizeof *out);
        out[*n] = strndup(s, name);
        (*n)++;
      }
      s += len;
    }
  return out;
}

/* Runs the component's config.json reader on text. */
static ldm_status read_json(int c, const char *text, ldm_error *err) {
  if (c == UNET) {
    ldm_unet_config cfg = {0};
    cfg.mid_scale = 1.0f;
    return ldm_unet_config_json(text, "unet/config.json", &cfg, NULL, err);
  }
  if (c == VAE) {
    int groups = 32;
    double scale = 0.18215, shift = 0;
    return ldm_vae_config_json(text, "vae/config.json", &groups, &scale, &shift, err);
  }
  int heads = 0, act = 0;
  float eps = 1e-5f;
  return ldm_clip_config_json(text, "text_encoder/config.json", &heads, &act, &eps, err);
}

/* A value the key's accepted list does not hold, as JSON text. */
static void other_value(const char *accept, char *out, size_t n) {
  json_t *a = json_loads(accept, JSON_DECODE_ANY, NULL);
  json_t *first = json_array_size(a) ? json_array_get(a, 0) : NULL;
  if (!first || json_is_string(first))
    snprintf(out, n, "\"not-implemented\"");
  else if (json_is_boolean(first))
    snprintf(out, n, "%s", json_is_true(first) ? "false" : "true");
  else if (json_is_number(first))
    snprintf(out, n, "%g", json_number_value(first) + 7);
  else
    snprintf(out, n, "{\"0\": [1]}");
  json_decref(a);
}

static void expect_refused(int c, const char *key, const char *value, const char *extra) {
  char text[512], shown[128];
  ldm_error err = {0};
  snprintf(text, sizeof text, "{%s\"%s\": %s}", extra ? extra : "", key, value);
  ldm_status st = read_json(c, text, &err);
  /* the message shows the value as compact JSON */
  json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  snprintf(shown, sizeof shown, "%s", s ? s : value);
  free(s);
  json_decref(v);
  CHECK(st == LDM_ERR_UNSUPPORTED && strstr(err.msg, key) && strstr(err.msg, shown),
        "%s %s = %s: got %s '%s', expected unsupported naming the key and value", comp_names[c], key, value,
        ldm_status_str(st), err.msg);
  if (st == LDM_ERR_UNSUPPORTED) printf("refused: %s %s = %s: %s\n", comp_names[c], key, shown, err.msg);
}

int main(void) {
  char path[4096];
  FILE *f = fopen(ldm_test_golden("config/keys.txt", path, sizeof path), "r");
  CHECK(f != NULL, "cannot open %s", path);
  if (!f) return ldm_test_finish("config-keys");
  json_t *defaults[N_COMP];
  for (int c = 0; c < N_COMP; c++) defaults[c] = json_object();
  char **names[N_COMP];
  int n_names[N_COMP], *seen[N_COMP];
  for (int c = 0; c < N_COMP; c++) {
    names[c] = listed_keys(table(c), &n_names[c]);
    seen[c] = calloc((size_t)n_names[c] + 1, sizeof(int));
  }
  char line[8192];
  int n_keys = 0, per_rule[4] = {0};
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' || line[0] == '\n') continue;
    char comp[16], key[128];
    int off = 0;
    if (sscanf(line, "%15s %127s %n", comp, key, &off) != 2) {
      CHECK(0, "keys.txt: bad line '%s'", line);
      continue;
    }
    int c = 0;
    while (c < N_COMP && strcmp(comp, comp_names[c])) c++;
    if (c == N_COMP) {
      CHECK(0, "keys.txt: unknown component '%s'", comp);
      continue;
    }
    n_keys++;
    line[strcspn(line, "\n")] = '\0';
    json_t *def = json_loads(line + off, JSON_DECODE_ANY, NULL);
    CHECK(def != NULL, "keys.txt: %s %s: default '%s' is not JSON", comp, key, line + off);
    if (def) json_object_set_new(defaults[c], key, def);
    char accept[256];
    int rule = ldm_config_key_rule(table(c), key, accept, sizeof accept);
    CHECK(rule >= 0,
          "%s config key '%s' (default %s) is not classified by the engine: implement it, refuse it "
          "unless at its default, or state why it changes nothing",
          comp, key, line + off);
    if (rule < 0) continue;
    for (int i = 0; i < n_names[c]; i++)
      if (!strcmp(names[c][i], key)) seen[c][i]++;
    per_rule[rule]++;
    if (rule == LDM_KEY_ONLY) {
      char bad[64];
      other_value(accept, bad, sizeof bad);
      expect_refused(c, key, bad, NULL);
    }
  }
  fclose(f);
  for (int c = 0; c < N_COMP; c++) {
    for (int i = 0; i < n_names[c]; i++) {
      CHECK(seen[c][i] == 1, "%s lists: key '%s' is not a key of the reference class (stale entry)", comp_names[c],
            names[c][i]);
      for (int j = 0; j < i; j++)
        CHECK(strcmp(names[c][i], names[c][j]), "%s lists: '%s' twice", comp_names[c], names[c][i]);
    }
    for (int i = 0; i < n_names[c]; i++) free(names[c][i]);
    free(names[c]);
    /* the reference class's own default config is accepted */
    char *text = json_dumps(defaults[c], JSON_COMPACT);
    ldm_error err = {0};
    ldm_status st = read_json(c, text, &err);
    CHECK(st == LDM_OK, "%s: the reference default config is refused: %s", comp_names[c], err.msg);
    free(text);
    json_decref(defaults[c]);
    free(seen[c]);
  }
  /* the cases: each refused with key and value named */
  expect_refused(UNET, "act_fn", "\"mish\"", NULL);
  expect_refused(UNET, "downsample_padding", "0", NULL);
  expect_refused(UNET, "down_block_types", "[\"CrossAttnDownBlock2D\", \"SimpleCrossAttnDownBlock2D\"]", NULL);
  expect_refused(VAE, "act_fn", "\"mish\"", NULL);
  expect_refused(TEXT, "hidden_act", "\"gelu_new\"", NULL);
  expect_refused(TEXT, "eos_token_id", "7", "\"vocab_size\": 100, ");
  /* and what is implemented is accepted */
  static const struct {
    int c;
    const char *json;
  } ok[] = {
      {UNET, "{\"center_input_sample\": true, \"mid_block_scale_factor\": 1.7, \"act_fn\": \"swish\"}"},
      {UNET, "{\"resnet_out_scale_factor\": 1, \"downsample_padding\": 1.0, \"class_embed_type\": null}"},
      {TEXT, "{\"hidden_act\": \"gelu_pytorch_tanh\", \"eos_token_id\": 99, \"vocab_size\": 100}"},
      {TEXT, "{\"eos_token_id\": 2, \"vocab_size\": 100}"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    ldm_error err = {0};
    ldm_status st = read_json(ok[i].c, ok[i].json, &err);
    CHECK(st == LDM_OK, "%s %s: refused: %s", comp_names[ok[i].c], ok[i].json, err.msg);
  }
  printf(
      "config-keys: %d keys of the reference classes: %d read, %d from the weights, %d without effect, "
      "%d refused unless implemented values (tol 0 unclassified)\n",
      n_keys, per_rule[LDM_KEY_READ], per_rule[LDM_KEY_SHAPE], per_rule[LDM_KEY_NO_EFFECT], per_rule[LDM_KEY_ONLY]);
  return ldm_test_finish("config-keys");
}
