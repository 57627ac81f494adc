/* The `ldm eval --options` string ("k=v,k2=v2") as each component's eval
 * runner reads it: one value by key, integers through the one number check
 * (core/value.h), and the precision option. Every runner lives in its own
 * layer (text/, models/...) and sees only this from the harness. */
#ifndef LDM_CORE_EVAL_OPTIONS_H
#define LDM_CORE_EVAL_OPTIONS_H

#include "ldm.h"

#include <stddef.h>

/* An eval runner: reads its inputs from p->in_path, runs, and writes its
 * outputs to p->out_path (tensor names per component in ldm.h). */
typedef ldm_status (*ldm_eval_fn)(const ldm_eval_params *p, int threads, ldm_error *err);

/* "k=v,k2=v2" lists: the eval --options and a model file's own settings
 * ("ldm.options" metadata, "unet.heads=2,vae.groups=4"). The value of `key`
 * copied into buf (n bytes), or NULL when absent (or list NULL). A value
 * longer than buf reads as "(too long)", never cut, so the checks refuse it. */
const char *ldm_kv_get(const char *list, const char *key, char *buf, size_t n);
/* An integer value of the list through the one number check
 * (ldm_value_int): absent -> def; present -> lo..hi or an error naming
 * `where` and the key. */
ldm_status ldm_kv_int(const char *list, const char *key, int lo, int hi, int def, int *out, const char *where,
                      ldm_error *err);

/* Every item of the list must be key=value with a key in `known` (a
 * comma-separated list, e.g. "encoder, heads, lora"): otherwise
 * LDM_ERR_INVALID_ARG "<where>: unknown key 'k' (valid keys: ...)". */
ldm_status ldm_kv_check_keys(const char *list, const char *known, const char *where, ldm_error *err);

/* ldm_kv_get on p->options. */
const char *ldm_eval_option(const ldm_eval_params *p, const char *key, char *buf, size_t n);
/* ldm_kv_check_keys on p->options ("eval <component> --options: unknown
 * key ..."); each runner calls it first with the keys it reads. */
ldm_status ldm_eval_check_options(const ldm_eval_params *p, const char *known, ldm_error *err);
/* An integer option through the one number check (ldm_value_int): absent
 * -> def; present -> lo..hi or an error naming the option. */
ldm_status ldm_eval_int_option(const ldm_eval_params *p, const char *key, int lo, int hi, int def, int *out,
                               ldm_error *err);
/* The precision=f32|bf16|bf16-emulated option (default f32). */
ldm_status ldm_eval_precision(const ldm_eval_params *p, ldm_precision *out, ldm_error *err);

#endif
