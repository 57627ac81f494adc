/* The one number check (see value.h). */
#include "core/value.h"
#include "core/status.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

ldm_status ldm_value_int(const char *text, int64_t lo, int64_t hi, int64_t *out, const char *where,
                         ldm_error *err) {
  char *end = NULL;
  errno = 0;
  long long v = text ? strtoll(text, &end, 10) : 0;
  if (!text || !*text || *end || errno || v < lo || v > hi)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: '%.64s' is not an integer in %lld..%lld", where,
                    text ? text : "", (long long)lo, (long long)hi);
  *out = v;
  return LDM_OK;
}

ldm_status ldm_value_double(const char *text, double lo, double hi, double *out, const char *where,
                            ldm_error *err) {
  char *end = NULL;
  errno = 0;
  double v = text ? strtod(text, &end) : 0;
  if (!text || !*text || *end || errno || !isfinite(v) || !(v >= lo && v <= hi))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: '%.64s' is not a finite number in %g..%g", where,
                    text ? text : "", lo, hi);
  *out = v;
  return LDM_OK;
}

ldm_status ldm_json_int(json_t *obj, const char *key, int idx, int64_t lo, int64_t hi, int *out,
                        const char *file, ldm_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return LDM_OK;
  json_t *e = v;
  if (idx >= 0 && json_is_array(v)) {
    if ((size_t)idx >= json_array_size(v)) return LDM_OK;
    e = json_array_get(v, (size_t)idx);
  }
  /* 64.0 is an integer too (configs written by hand); 2^32 is not an int */
  double d = json_is_integer(e) ? (double)json_integer_value(e) : json_is_real(e) ? json_real_value(e) : NAN;
  if (!isfinite(d) || d != floor(d) || d < (double)lo || d > (double)hi) {
    char text[64] = "";
    char *dump = json_dumps(e, JSON_ENCODE_ANY);
    snprintf(text, sizeof text, "%s", dump ? dump : "?");
    free(dump);
    if (idx >= 0 && json_is_array(v))
      return ldm_fail(err, LDM_ERR_FORMAT, "%s: %s[%d] = %s, expected an integer in %lld..%lld", file, key, idx, text,
                      (long long)lo, (long long)hi);
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: %s = %s, expected an integer in %lld..%lld", file, key, text,
                    (long long)lo, (long long)hi);
  }
  *out = (int)d;
  return LDM_OK;
}

static ldm_status json_double(json_t *obj, const char *key, double lo, double hi, bool open, double *out,
                              const char *file, ldm_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return LDM_OK;
  double d = json_is_number(v) ? json_number_value(v) : NAN;
  bool ok = isfinite(d) && (open ? d > lo && d < hi : d >= lo && d <= hi);
  if (!ok) {
    char text[64] = "";
    char *dump = json_dumps(v, JSON_ENCODE_ANY);
    snprintf(text, sizeof text, "%s", dump ? dump : "?");
    free(dump);
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: %s = %s, expected a number %s %g and %s %g", file, key, text,
                    open ? "above" : "from", lo, open ? "below" : "to", hi);
  }
  *out = d;
  return LDM_OK;
}

ldm_status ldm_json_double(json_t *obj, const char *key, double lo, double hi, double *out, const char *file,
                           ldm_error *err) {
  return json_double(obj, key, lo, hi, false, out, file, err);
}

ldm_status ldm_json_double_open(json_t *obj, const char *key, double lo, double hi, double *out, const char *file,
                                ldm_error *err) {
  return json_double(obj, key, lo, hi, true, out, file, err);
}

ldm_status ldm_json_object(const char *text, const char *file, json_t **out, ldm_error *err) {
  json_error_t je;
  json_t *root = json_loads(text, 0, &je);
  *out = NULL;
  if (json_is_object(root)) {
    *out = root;
    return LDM_OK;
  }
  json_decref(root);
  return ldm_fail(err, LDM_ERR_FORMAT, "%s: %s (line %d)", file, root ? "not an object" : je.text, je.line);
}
