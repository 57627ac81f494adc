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

/* The value of `key` copied into buf (n bytes), or NULL when absent. A value
 * longer than buf reads as "(too long)", never cut, so the checks refuse it. */
const char *ldm_eval_option(const ldm_eval_params *p, const char *key, char *buf, size_t n);
/* An integer option through the one number check (ldm_value_int): absent
 * -> def; present -> lo..hi or an error naming the option. */
ldm_status ldm_eval_int_option(const ldm_eval_params *p, const char *key, int lo, int hi, int def, int *out,
                               ldm_error *err);
/* The precision=f32|bf16|bf16-emulated option (default f32). */
ldm_status ldm_eval_precision(const ldm_eval_params *p, ldm_precision *out, ldm_error *err);

#endif
