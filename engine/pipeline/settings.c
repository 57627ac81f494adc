/* What a model states about itself: its native size and recommended steps,
 * guidance scale and sampler (see "Model settings" in ldm.h). Single files
 * carry them in `__metadata__` (our ldm.* keys, Stability's ModelSpec
 * modelspec.resolution); diffusers folders in model_index.json's "_ldm"
 * object (diffusers drops '_' keys) or, for the size, the UNet's
 * sample_size times the VAE's downscaling. */
#include "pipeline/pipeline.h"
#include "core/status.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIZE_MIN = 8, SIZE_MAX_PX = 16384 };

static bool size_ok(long v) { return v >= SIZE_MIN && v <= SIZE_MAX_PX && v % 8 == 0; }

/* A whole decimal integer ("64"; no sign, spaces or trailing text). */
static bool parse_long(const char *s, long *out) {
  if (!s || *s < '0' || *s > '9') return false;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

static bool parse_float(const char *s, float *out) {
  if (!s || !*s || strchr(" \t\n", *s)) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v)) return false;
  *out = (float)v;
  return true;
}

static bool sampler_ok(const char *s) { return s && strlen(s) < 32 && ldm_sampler_reference(s) != NULL; }

/* Copies s[0..n) without surrounding spaces into buf (size 16); false if
 * it does not fit. */
static bool trimmed(const char *s, size_t n, char *buf) {
  while (n && *s == ' ') s++, n--;
  while (n && s[n - 1] == ' ') n--;
  if (n >= 16) return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return true;
}

/* "WxH" (also "W x H", "WXH") -> one side: W when square, else the side of
 * a square of the same area, to the nearest multiple of 8. */
static bool parse_resolution(const char *s, int *out) {
  long w, h;
  char a[16], b[16];
  const char *x = s ? strpbrk(s, "xX") : NULL;
  if (!x || !trimmed(s, (size_t)(x - s), a) || !trimmed(x + 1, strlen(x + 1), b)) return false;
  if (!parse_long(a, &w) || !parse_long(b, &h) || !size_ok(w) || !size_ok(h)) return false;
  long side = w == h ? w : 8 * lround(sqrt((double)w * (double)h) / 8.0);
  *out = (int)side;
  return true;
}

static ldm_status bad_meta(ldm_model *m, const char *key, const char *value, const char *expected, ldm_error *err) {
  return ldm_fail(err, LDM_ERR_FORMAT, "%s: __metadata__ %s = '%s': expected %s", ldm_source_path(m->src), key, value,
                  expected);
}

static ldm_status read_single_file(ldm_model *m, pl_model_settings *s, ldm_error *err) {
  const char *v;
  long n;
  if ((v = ldm_source_metadata(m->src, "ldm.native_size"))) {
    if (!parse_long(v, &n) || !size_ok(n))
      return bad_meta(m, "ldm.native_size", v, "pixels per side, a multiple of 8 from 8 to 16384", err);
    s->native_size = (int)n;
  } else if ((v = ldm_source_metadata(m->src, "modelspec.resolution"))) {
    if (!parse_resolution(v, &s->native_size))
      return bad_meta(m, "modelspec.resolution", v, "WIDTHxHEIGHT, multiples of 8 from 8 to 16384", err);
  }
  if ((v = ldm_source_metadata(m->src, "ldm.steps"))) {
    if (!parse_long(v, &n) || n < 1 || n > 1000) return bad_meta(m, "ldm.steps", v, "an integer from 1 to 1000", err);
    s->steps = (int)n;
  }
  if ((v = ldm_source_metadata(m->src, "ldm.cfg_scale"))) {
    if (!parse_float(v, &s->cfg) || s->cfg < 0.0f || s->cfg > 100.0f)
      return bad_meta(m, "ldm.cfg_scale", v, "a number from 0 to 100", err);
  }
  if ((v = ldm_source_metadata(m->src, "ldm.sampler"))) {
    if (!sampler_ok(v)) return bad_meta(m, "ldm.sampler", v, "a sampler name (see `ldm samplers`)", err);
    snprintf(s->sampler, sizeof s->sampler, "%s", v);
  }
  return LDM_OK;
}

/* The VAE's downscaling: 2^(len(block_out_channels) - 1), or 0. */
static int vae_factor(const char *config) {
  json_t *root = config ? json_loads(config, 0, NULL) : NULL;
  json_t *b = json_object_get(root, "block_out_channels");
  size_t n = json_is_array(b) ? json_array_size(b) : 0;
  json_decref(root);
  return n >= 1 && n <= 8 ? 1 << (n - 1) : 0;
}

/* UNet sample_size (an integer, or [h, w]) times the VAE's factor, or 0. */
static int config_native_size(const ldm_model *m) {
  json_t *root = json_loads(ldm_source_config(m->src, "unet") ? ldm_source_config(m->src, "unet") : "", 0, NULL);
  json_t *v = json_object_get(root, "sample_size");
  double side = 0;
  if (json_is_integer(v)) side = (double)json_integer_value(v);
  else if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0)) &&
           json_is_integer(json_array_get(v, 1)))
    side = sqrt((double)json_integer_value(json_array_get(v, 0)) * (double)json_integer_value(json_array_get(v, 1)));
  json_decref(root);
  int f = vae_factor(ldm_source_config(m->src, "vae"));
  long px = lround(side * f);
  return f && size_ok(px) ? (int)px : 0;
}

static ldm_status bad_json(const char *path, const char *key, const json_t *v, const char *expected,
                           ldm_error *err) {
  char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  ldm_status st = ldm_fail(err, LDM_ERR_FORMAT, "%s: \"_ldm\".%s = %.200s: expected %s", path, key,
                           text ? text : "?", expected);
  free(text);
  return st;
}

static ldm_status read_folder(ldm_model *m, pl_model_settings *s, ldm_error *err) {
  s->native_size = config_native_size(m);
  char path[4096];
  if (!ldm_source_file(m->src, "model_index.json", path, sizeof path)) return LDM_OK;
  json_t *root = json_load_file(path, 0, NULL);
  json_t *o = json_object_get(root, "_ldm");
  ldm_status st = LDM_OK;
  if (o && !json_is_object(o)) st = bad_json(path, "", o, "an object", err);
  const char *key;
  json_t *v;
  if (st == LDM_OK && o) json_object_foreach(o, key, v) {
    if (!strcmp(key, "native_size")) {
      if (!json_is_integer(v) || !size_ok((long)json_integer_value(v)))
        st = bad_json(path, key, v, "pixels per side, a multiple of 8 from 8 to 16384", err);
      else s->native_size = (int)json_integer_value(v);
    } else if (!strcmp(key, "steps")) {
      if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
        st = bad_json(path, key, v, "an integer from 1 to 1000", err);
      else s->steps = (int)json_integer_value(v);
    } else if (!strcmp(key, "cfg_scale")) {
      if (!json_is_number(v) || json_number_value(v) < 0.0 || json_number_value(v) > 100.0)
        st = bad_json(path, key, v, "a number from 0 to 100", err);
      else s->cfg = (float)json_number_value(v);
    } else if (!strcmp(key, "sampler")) {
      if (!json_is_string(v) || !sampler_ok(json_string_value(v)))
        st = bad_json(path, key, v, "a sampler name (see `ldm samplers`)", err);
      else snprintf(s->sampler, sizeof s->sampler, "%s", json_string_value(v));
    } else {
      st = ldm_fail(err, LDM_ERR_FORMAT, "%s: \"_ldm\" has an unknown key '%s' (native_size, steps, cfg_scale, sampler)",
                    path, key);
    }
    if (st != LDM_OK) break;
  }
  json_decref(root);
  return st;
}

ldm_status pl_model_read_settings(ldm_model *m, ldm_error *err) {
  pl_model_settings s = {0};
  LDM_TRY(ldm_source_is_folder(m->src) ? read_folder(m, &s, err) : read_single_file(m, &s, err));
  m->settings = s;
  if (s.native_size > 0) m->fam.native_size = s.native_size;
  return LDM_OK;
}
