/* ldm_eval_run: dispatches `ldm eval <component>` to the component's runner
 * after checking the parameters, so every runner sees valid paths. */
#include "pipeline/eval.h"
#include "core/status.h"
#include "io/lora.h"

#include <stdlib.h>
#include "core/value.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  ldm_eval_fn fn;
} components[] = {
    {"text", ldm_eval_text},
    {"vae-encode", ldm_eval_vae_encode},
    {"vae-decode", ldm_eval_vae_decode},
    {"taesd-encode", ldm_eval_taesd_encode},
    {"taesd-decode", ldm_eval_taesd_decode},
    {"unet", ldm_eval_unet},
    {"esrgan", ldm_eval_esrgan},
};
#define N_COMPONENTS (sizeof components / sizeof *components)

const char *const *ldm_eval_components(void) {
  static const char *names[N_COMPONENTS + 1];
  for (size_t i = 0; i < N_COMPONENTS; i++) names[i] = components[i].name;
  names[N_COMPONENTS] = NULL;
  return names;
}

ldm_status ldm_eval_run(const ldm_eval_params *p, ldm_error *err) {
  ldm_error_clear(err);
  if (!p || !p->component)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval: no component given");
  if (!p->model_path || !p->in_path || !p->out_path)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval %s: --model, --in and --out are all required",
                    p->component);
  if (p->threads < 0)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval %s: threads = %d, expected >= 0", p->component,
                    p->threads);
  int threads = p->threads ? p->threads : ldm_default_threads();
  for (size_t i = 0; i < N_COMPONENTS; i++)
    if (strcmp(components[i].name, p->component) == 0) return components[i].fn(p, threads, err);
  char list[256] = "";
  for (size_t i = 0; i < N_COMPONENTS; i++) {
    if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, components[i].name, sizeof list - strlen(list) - 1);
  }
  return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval: unknown component '%s' (known: %s)", p->component, list);
}

const char *ldm_eval_option(const ldm_eval_params *p, const char *key, char *buf, size_t n) {
  if (!p->options || n == 0) return NULL;
  size_t kl = strlen(key);
  const char *s = p->options;
  while (*s) {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    if (len > kl && strncmp(s, key, kl) == 0 && s[kl] == '=') {
      size_t vl = len - kl - 1;
      if (vl >= n) { /* never a cut value: the checks then refuse it */
        snprintf(buf, n, "%s", "(too long)");
        return buf;
      }
      memcpy(buf, s + kl + 1, vl);
      buf[vl] = '\0';
      return buf;
    }
    if (!end) break;
    s = end + 1;
  }
  return NULL;
}

ldm_status ldm_eval_precision(const ldm_eval_params *p, ldm_precision *out, ldm_error *err) {
  char buf[32];
  const char *v = ldm_eval_option(p, "precision", buf, sizeof buf);
  *out = LDM_PRECISION_F32;
  if (v && !ldm_precision_parse(v, out))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval %s: precision=%s, expected f32, bf16 or bf16-emulated",
                    p->component, v);
  return LDM_OK;
}

ldm_status ldm_eval_apply_loras(const ldm_eval_params *p, struct ldm_lora_table *tables, int n,
                                const char *family, ldm_error *err) {
  char buf[8192];
  const char *v = ldm_eval_option(p, "lora", buf, sizeof buf);
  if (!v) return LDM_OK;
  ldm_lora_ref *refs;
  int nr;
  char *mem;
  LDM_TRY(ldm_lora_parse_list(v, &refs, &nr, &mem, err));
  ldm_lora_table *tp[4];
  for (int i = 0; i < n && i < 4; i++) tp[i] = &tables[i];
  ldm_ctx ctx = {.threads = 1, .err = err};
  ldm_status st = ldm_lora_merge(&ctx, refs, nr, tp, n < 4 ? n : 4, family, true, err);
  free(refs);
  free(mem);
  return st;
}

ldm_status ldm_eval_int_option(const ldm_eval_params *p, const char *key, int lo, int hi, int def, int *out,
                               ldm_error *err) {
  char buf[64], where[96];
  const char *v = ldm_eval_option(p, key, buf, sizeof buf);
  *out = def;
  if (!v) return LDM_OK;
  snprintf(where, sizeof where, "eval %s --options %s", p->component, key);
  int64_t x;
  LDM_TRY(ldm_value_int(v, lo, hi, &x, where, err));
  *out = (int)x;
  return LDM_OK;
}
