/* ldm-live.h: plug-in-ldm-live, live painting. While its dialog is open the
 * plug-in watches the image's composite inside the work area; each change
 * starts an img2img job (a change during a job cancels it: no queue) and the
 * result is shown in a "Live result" layer at the top of the image, updated
 * without undo steps. Apply keeps the current result as a normal layer (one
 * undo step, with its recipe); Close removes the live layer.
 */
#ifndef GIMP_LDM_LIVE_H
#define GIMP_LDM_LIVE_H

#include <libgimp/gimp.h>
#include <ldm.h>

#define GIMP_LDM_LIVE_PROC "plug-in-ldm-live"

GimpProcedure *gimp_ldm_live_create_procedure (GimpPlugIn *plug_in);

/* What live painting picks when no model is chosen, in the model folders
 * (a G_SEARCHPATH_SEPARATOR list, may be NULL): the first few-step model
 * (see gimp_ldm_live_few_step), else the first checkpoint for which an
 * LCM-LoRA is there (*lora set to its path), else the demo model. NULL when
 * there is none of these. */
gchar *gimp_ldm_live_default_model (const gchar *model_folders, gchar **lora);

/* Whether a model is a few-step one, and which kind: "lcm" (LCM models:
 * the LCM sampler), "turbo" (SD-Turbo, SDXL-Turbo and other adversarially
 * distilled ones: Euler a) or NULL. Recognised, in this order, by what the
 * model states about itself (ldm.sampler "lcm"; ldm.steps 1 to 8), a
 * diffusers folder's LCMScheduler, and the file or folder name ("turbo",
 * "lightning", "lcm"). */
const gchar *gimp_ldm_live_few_step (const gchar          *path,
                                     const ldm_model_info *info);

#endif /* GIMP_LDM_LIVE_H */
