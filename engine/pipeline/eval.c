/* ldm_eval_run: dispatches `ldm eval <component>` to the component's runner
 * (declared in the component's own header) after checking the parameters,
 * so every runner sees valid paths. */
#include "core/eval_options.h"
#include "core/status.h"
#include "models/esrgan/esrgan.h"
#include "models/unet/controlnet.h"
#include "models/unet/unet.h"
#include "models/vae/vae.h"
#include "text/clip_text.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  ldm_eval_fn fn;
} components[] = {
    {"text", ldm_eval_text},
    {"vae-encode", ldm_eval_vae_encode},
    {"vae-decode", ldm_eval_vae_decode},
    {"taesd-encode", ldm_eval_taesd_encode},
    {"taesd-decode", ldm_eval_taesd_decode},
    {"unet", ldm_eval_unet},
    {"controlnet", ldm_eval_controlnet},
    {"esrgan", ldm_eval_esrgan},
};
#define N_COMPONENTS (sizeof components / sizeof *components)

const char *const *ldm_eval_components(void) {
  static const char *names[N_COMPONENTS + 1];
  for (size_t i = 0; i < N_COMPONENTS; i++) names[i] = components[i].name;
  names[N_COMPONENTS] = NULL;
  return names;
}

ldm_status ldm_eval_run(const ldm_eval_params *p, ldm_error *err) {
  ldm_error_clear(err);
  if (!p || !p->component)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval: no component given");
  if (!p->model_path || !p->in_path || !p->out_path)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval %s: --model, --in and --out are all required",
                    p->component);
  if (p->threads < 0)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval %s: threads = %d, expected >= 0", p->component,
                    p->threads);
  int threads = p->threads ? p->threads : ldm_default_threads();
  for (size_t i = 0; i < N_COMPONENTS; i++)
    if (strcmp(components[i].name, p->component) == 0) return components[i].fn(p, threads, err);
  char list[256] = "";
  for (size_t i = 0; i < N_COMPONENTS; i++) {
    if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, components[i].name, sizeof list - strlen(list) - 1);
  }
  return ldm_fail(err, LDM_ERR_INVALID_ARG, "eval: unknown component '%s' (known: %s)", p->component, list);
}
