/* Placeholder until family detection lands with the UNet. */
#include "models/family.h"
#include "core/status.h"
#include <string.h>
ldm_status ldm_family_detect(const ldm_source *src, ldm_family_info *out, ldm_error *err) {
  memset(out, 0, sizeof *out);
  return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: family detection not implemented yet",
                  ldm_source_path(src));
}
static const char *const names[] = {"unknown", "sd1", "sd1-inpaint", "sd2", "sd2-inpaint",
                                    "sdxl", "sdxl-inpaint", "x4-upscaler"};
const char *ldm_family_name(ldm_family f) {
  return (unsigned)f < sizeof names / sizeof *names ? names[f] : "unknown";
}
ldm_family ldm_family_from_name(const char *name) {
  for (unsigned i = 1; i < sizeof names / sizeof *names; i++)
    if (name && strcmp(name, names[i]) == 0) return (ldm_family)i;
  return LDM_FAMILY_UNKNOWN;
}
const char *ldm_prediction_name(ldm_prediction p) {
  return p == LDM_PRED_V ? "v" : p == LDM_PRED_SAMPLE ? "sample" : "epsilon";
}
