/* The component harness behind ldm_eval_run: each model component provides
 * one function that reads its inputs from p->in_path, runs, and writes its
 * outputs to p->out_path (tensor names per component in ldm.h). */
#ifndef LDM_PIPELINE_EVAL_H
#define LDM_PIPELINE_EVAL_H

#include "ldm.h"

typedef ldm_status (*ldm_eval_fn)(const ldm_eval_params *p, int threads,
                                  ldm_error *err);

ldm_status ldm_eval_text(const ldm_eval_params *p, int threads, ldm_error *err);        /* engine/text */
ldm_status ldm_eval_vae_encode(const ldm_eval_params *p, int threads, ldm_error *err);  /* engine/models */
ldm_status ldm_eval_vae_decode(const ldm_eval_params *p, int threads, ldm_error *err);
ldm_status ldm_eval_taesd_encode(const ldm_eval_params *p, int threads, ldm_error *err);
ldm_status ldm_eval_taesd_decode(const ldm_eval_params *p, int threads, ldm_error *err);
ldm_status ldm_eval_unet(const ldm_eval_params *p, int threads, ldm_error *err);
ldm_status ldm_eval_esrgan(const ldm_eval_params *p, int threads, ldm_error *err);      /* engine/models/esrgan */

/* Options string helpers: "k=v,k2=v2". */
const char *ldm_eval_option(const ldm_eval_params *p, const char *key,
                            char *buf, size_t n);
/* The lora=PATH[:MULT][;PATH[:MULT]...] option: merges those LoRAs into the
 * tables (modules of networks not loaded are skipped). */
struct ldm_lora_table;
ldm_status ldm_eval_apply_loras(const ldm_eval_params *p, struct ldm_lora_table *tables, int n,
                                const char *family, ldm_error *err);
/* An integer option through the one number check (ldm_value_int): absent
 * -> def; present -> lo..hi or an error naming the option. */
ldm_status ldm_eval_int_option(const ldm_eval_params *p, const char *key, int lo, int hi, int def, int *out,
                               ldm_error *err);
/* The precision=f32|bf16|bf16-emulated option (default f32). */
ldm_status ldm_eval_precision(const ldm_eval_params *p, ldm_precision *out, ldm_error *err);

#endif
