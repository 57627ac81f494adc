/* Config key classification and check (core/config_keys.h). */
#include "core/config_keys.h"
#include "core/status.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The item of the space-separated list whose name (up to '=' or the end)
 * is key, or NULL; *len gets the item's length. */
static const char *find_item(const char *list, const char *key, size_t *len) {
  size_t kl = strlen(key);
  for (const char *s = list ? list : ""; *s;) {
    s += strspn(s, " ");
    size_t n = strcspn(s, " "), name = strcspn(s, "= ");
    if (n && name == kl && strncmp(s, key, kl) == 0) {
      *len = n;
      return s;
    }
    s += n;
  }
  return NULL;
}

int ldm_config_key_rule(const ldm_config_keys *keys, const char *key, char *accept, size_t n) {
  const char *lists[] = {keys->read, keys->shape, keys->no_effect, keys->only};
  size_t len;
  for (int r = 0; r < 4; r++) {
    const char *it = find_item(lists[r], key, &len);
    if (!it) continue;
    if (r == LDM_KEY_ONLY && n) snprintf(accept, n, "%.*s", (int)(len - strlen(key) - 1), it + strlen(key) + 1);
    return r;
  }
  return -1;
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

ldm_status ldm_config_check(json_t *root, const ldm_config_keys *keys, const char *file, ldm_error *err) {
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    char text[256];
    if (json_is_null(v) || ldm_config_key_rule(keys, key, text, sizeof text) != LDM_KEY_ONLY) continue;
    json_t *accept = json_loads(text, JSON_DECODE_ANY, NULL);
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
    bool none = json_array_size(accept) == 0;
    json_decref(accept);
    if (!ok) {
      char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      ldm_status st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: %s = %.200s is not supported (supported: %s)", file, key,
                               s ? s : "?", none ? "null or absent" : text);
      free(s);
      return st;
    }
  }
  return LDM_OK;
}
