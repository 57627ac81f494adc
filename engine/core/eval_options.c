/* The `ldm eval --options` string: lookup by key, integer and precision
 * options (core/eval_options.h). */
#include "core/eval_options.h"
#include "core/status.h"
#include "core/value.h"

#include <stdio.h>
#include <string.h>

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
