/* Placeholder until this component lands: reports LDM_ERR_UNSUPPORTED. */
#include "pipeline/eval.h"
#include "core/status.h"
ldm_status ldm_eval_unet(const ldm_eval_params *p, int threads, ldm_error *err) {
  return ldm_fail(err, LDM_ERR_UNSUPPORTED, "component '%s' is not implemented yet", p->component);
}
