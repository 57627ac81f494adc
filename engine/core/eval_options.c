/* The `ldm eval --options` string: lookup by key, integer and precision
 * options (core/eval_options.h). */
#include "core/eval_options.h"
#include "core/status.h"
#include "core/value.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *ldm_kv_get(const char *list, const char *key, char *buf, size_t n) {
  if (!list || n == 0) return NULL;
  size_t kl = strlen(key);
  const char *s = list;
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

ldm_status ldm_kv_int(const char *list, const char *key, int lo, int hi, int def, int *out, const char *where,
                      ldm_error *err) {
  char buf[64], at[256];
  const char *v = ldm_kv_get(list, key, buf, sizeof buf);
  *out = def;
  if (!v) return LDM_OK;
  snprintf(at, sizeof at, "%s %s", where, key);
  int64_t x;
  LDM_TRY(ldm_value_int(v, lo, hi, &x, at, err));
  *out = (int)x;
  return LDM_OK;
}

const char *ldm_eval_option(const ldm_eval_params *p, const char *key, char *buf, size_t n) {
  return ldm_kv_get(p->options, key, buf, n);
}

ldm_status ldm_kv_check_keys(const char *list, const char *known, const char *where, ldm_error *err) {
  const char *s = list;
  while (s && *s) {
    size_t len = strcspn(s, ","), kl = strcspn(s, "=,");
    bool found = false;
    for (const char *k = known; kl > 0 && kl < len && *k;) {
      size_t n = strcspn(k, ", ");
      if (n == kl && strncmp(k, s, kl) == 0) found = true;
      k += n;
      k += strspn(k, ", ");
    }
    if (!found && kl < len)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: unknown key '%.*s' (valid keys: %s)", where,
                      (int)(kl > 64 ? 64 : kl), s, known);
    if (!found)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: '%.*s' is not key=value (valid keys: %s)", where,
                      (int)(len > 64 ? 64 : len), s, known);
    s += len;
    if (*s == ',') s++;
  }
  return LDM_OK;
}

ldm_status ldm_eval_check_options(const ldm_eval_params *p, const char *known, ldm_error *err) {
  char where[96];
  snprintf(where, sizeof where, "eval %s --options", p->component);
  return ldm_kv_check_keys(p->options, known, where, err);
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
  char where[96];
  snprintf(where, sizeof where, "eval %s --options", p->component);
  return ldm_kv_int(p->options, key, lo, hi, def, out, where, err);
}
