/* One check for every number libldm reads from text: `--options` values,
 * "ldm.options" metadata and the diffusers config.json files. A value is
 * accepted only when it is a complete number (no trailing text), finite
 * (NaN and Inf are refused) and inside the range that means something for
 * its key; the message names where the value came from and the range. */
#ifndef LDM_CORE_VALUE_H
#define LDM_CORE_VALUE_H

#include "ldm.h"

#include <jansson.h>

/* Parses a decimal integer in lo..hi from text. `where` names the source
 * and key, e.g. "eval unet options: heads". */
ldm_status ldm_value_int(const char *text, int64_t lo, int64_t hi, int64_t *out, const char *where,
                         ldm_error *err);
/* Parses a finite number in lo..hi from text. */
ldm_status ldm_value_double(const char *text, double lo, double hi, double *out, const char *where,
                            ldm_error *err);

/* Parses text as a JSON object into *out (the caller json_decref's it):
 * otherwise LDM_ERR_FORMAT naming file and the parser's message and line. */
ldm_status ldm_json_object(const char *text, const char *file, json_t **out, ldm_error *err);

/* config.json values: key absent or null leaves *out as it is; a present
 * value must be an integer (a number) in lo..hi. `file` names the file
 * ("model/unet/config.json"). idx >= 0 reads element idx of an array (a
 * single integer applies to every element). */
ldm_status ldm_json_int(json_t *obj, const char *key, int idx, int64_t lo, int64_t hi, int *out,
                        const char *file, ldm_error *err);
ldm_status ldm_json_double(json_t *obj, const char *key, double lo, double hi, double *out, const char *file,
                           ldm_error *err);
/* As ldm_json_double, the bounds excluded (lo < v < hi). */
ldm_status ldm_json_double_open(json_t *obj, const char *key, double lo, double hi, double *out, const char *file,
                                ldm_error *err);

#endif
