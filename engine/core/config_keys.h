/* The config keys of the reference classes a component loads (diffusers'
 * config.json of UNet2DConditionModel / AutoencoderKL, transformers'
 * CLIPTextConfig), each classified by the component: read and honoured,
 * following from the weights' shapes, without effect on what the engine
 * computes, or refused unless one of the values the engine implements. A
 * model whose config asks for something the engine does not compute is thus
 * refused with the key and value named instead of running with other numbers.
 * tests/unit/test_config_keys.c checks that every key of the pinned classes
 * (tests/golden/config/keys.txt) is classified, and nothing else. */
#ifndef LDM_CORE_CONFIG_KEYS_H
#define LDM_CORE_CONFIG_KEYS_H

#include "ldm.h"

#include <jansson.h>
#include <stddef.h>

typedef enum ldm_config_rule {
  LDM_KEY_READ,      /* read and honoured by the loader, every value */
  LDM_KEY_SHAPE,     /* follows from the weights' shapes or names */
  LDM_KEY_NO_EFFECT, /* training, generation or bookkeeping: no effect on the numbers */
  LDM_KEY_ONLY,      /* refused unless one of the accepted values */
} ldm_config_rule;

/* A component's keys by rule, each list space-separated; `only` holds
 * KEY=VALUES items, VALUES the accepted values as a JSON array without
 * spaces (a config value that is an array: each element one of them; []:
 * only null or absent). */
typedef struct ldm_config_keys {
  const char *read, *shape, *no_effect, *only;
} ldm_config_keys;

/* The rule for key, or -1 when keys does not list it; for LDM_KEY_ONLY the
 * accepted values (JSON text) go to accept (n bytes). */
int ldm_config_key_rule(const ldm_config_keys *keys, const char *key, char *accept, size_t n);
/* Checks every key of the config object: an LDM_KEY_ONLY key with another
 * value is LDM_ERR_UNSUPPORTED "<file>: <key> = <value> is not supported
 * (supported: ...)". Keys not listed (newer releases) pass; absent and null
 * keys are the reference class's defaults and pass. */
ldm_status ldm_config_check(json_t *root, const ldm_config_keys *keys, const char *file, ldm_error *err);

#endif
