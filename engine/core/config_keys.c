/* Config key classification and check (core/config_keys.h). */
#include "core/config_keys.h"
#include "core/status.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const ldm_config_key *ldm_config_key_find(const ldm_config_key *keys, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(keys[i].key, key) == 0) return &keys[i];
  return NULL;
}

/* Numbers compare by value (1 and 1.0 are the same), the rest as JSON. */
static bool same_value(json_t *a, json_t *b) {
  if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
  return json_equal(a, b);
}

static bool accepted(json_t *v, json_t *accept) {
  size_t i;
  json_t *a;
  json_array_foreach(accept, i, a) if (same_value(v, a)) return true;
  return false;
}

ldm_status ldm_config_check(json_t *root, const ldm_config_key *keys, size_t n, const char *file, ldm_error *err) {
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    const ldm_config_key *k = ldm_config_key_find(keys, n, key);
    if (!k || k->rule != LDM_KEY_ONLY || json_is_null(v)) continue;
    json_t *accept = json_loads(k->accept, JSON_DECODE_ANY, NULL);
    if (!json_is_array(accept)) {
      json_decref(accept);
      return ldm_fail(err, LDM_ERR_INTERNAL, "%s: the accepted values of '%s' do not parse", file, key);
    }
    bool ok = true;
    if (json_is_array(v)) {
      size_t i;
      json_t *e;
      json_array_foreach(v, i, e) ok = ok && accepted(e, accept);
    } else {
      ok = accepted(v, accept);
    }
    json_decref(accept);
    if (!ok) {
      char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      bool none = strcmp(k->accept, "[]") == 0;
      ldm_status st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: %s = %.200s is not supported (supported: %s)", file, key,
                               s ? s : "?", none ? "null or absent" : k->accept);
      free(s);
      return st;
    }
  }
  return LDM_OK;
}
