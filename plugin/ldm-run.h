/* ldm-run.h: carries out one GimpLdmSpec on an image in four stages --
 * plan (what to read, at which size, with which model and settings),
 * pixels in, engine, pixels out (a new layer in one undo group). Nothing in
 * the image changes unless the engine succeeded.
 */
#ifndef GIMP_LDM_RUN_H
#define GIMP_LDM_RUN_H

#include <libgimp/gimp.h>
#include <ldm.h>

#include "ldm-engine.h"
#include "ldm-spec.h"

/* Minimum side of a selection the plug-in works on, in pixels. */
#define GIMP_LDM_MIN_SELECTION 8

typedef struct
{
  GimpLdmProgressFn progress;      /* may be NULL */
  gpointer          progress_user;
  GimpLdmControl   *control;       /* cancel; may be NULL */
  gboolean          interactive;   /* display new images */
} GimpLdmRunUi;

/* What a run does, decided before any pixel is read. */
typedef struct
{
  ldm_task        task;
  ldm_model_info  model;
  gint            rx, ry, rw, rh;      /* source rect, image space */
  gboolean        use_selection;
  gint            ww, wh;              /* the engine's work size */
  gint            l, t, r, b;          /* outpaint margins at the work size */
  gint            scale;               /* upscale: output pixels per input pixel */
  gint            steps;               /* resolved: spec, model, fallback */
  gdouble         cfg_scale;
  const gchar    *sampler;
} GimpLdmPlan;

/* The checks that need no model: layer, selection, sizes. Used before the
 * dialog opens and again before a run. */
gboolean   gimp_ldm_check_inputs (const GimpLdmSpec *spec,
                                  GimpImage         *image,
                                  GimpDrawable      *drawable,
                                  GError           **error);
/* Whether a model can serve a procedure (an upscaler for Upscale, a
 * diffusion model for the others); FALSE with a message naming both. */
gboolean   gimp_ldm_model_usable (GimpLdmProc           proc,
                                  const ldm_model_info *info,
                                  GError              **error);
/* Sampler names that fit a model (NULL-terminated, static strings). */
const gchar *const *gimp_ldm_samplers_for (const ldm_model_info *info);
/* The plan for spec on image with a described model. */
gboolean   gimp_ldm_plan_make    (const GimpLdmSpec    *spec,
                                  GimpImage            *image,
                                  GimpDrawable         *drawable,
                                  const ldm_model_info *info,
                                  GimpLdmPlan          *plan,
                                  GError              **error);
/* The procedure's default model in the model folders (the first of its
 * candidates found), or NULL. */
gchar     *gimp_ldm_default_model (GimpLdmProc  proc,
                                   const gchar *model_folders);
/* Seconds the plan will take by this computer's record for the model family
 * and task, or a negative value when there is none yet. */
gdouble    gimp_ldm_estimate     (const GimpLdmPlan    *plan,
                                  const GimpLdmSpec    *spec);

/* The image-space rect a run of spec works on (the selection's bounds plus
 * the margin, the layer, the canvas); FALSE when the inputs don't allow a
 * run. */
gboolean gimp_ldm_work_rect (const GimpLdmSpec *spec,
                             GimpImage         *image,
                             GimpDrawable      *drawable,
                             gint              *x,
                             gint              *y,
                             gint              *w,
                             gint              *h);
/* The control image the run would steer with, preprocessed as the engine
 * does (ldm_control_preprocess), of the control layer over the work rect,
 * at most max_side pixels a side (scaled down first): RGB F32, the caller
 * frees it. NULL without error when the spec has no control layer. */
ldm_image *gimp_ldm_control_preview (const GimpLdmSpec *spec,
                                     GimpImage         *image,
                                     GimpDrawable      *drawable,
                                     gint               max_side,
                                     GError           **error);

/* "Step 3 of 20, about 12 s left" */
gchar     *gimp_ldm_progress_text (const GimpLdmProgress *progress);

/* Returns the new layer (in `image`, or in a new image for upscale with
 * new-image) or NULL with `error` set. `model_folders` is the configured
 * search path (may be NULL). */
GimpLayer *gimp_ldm_execute      (GimpLdmSpec        *spec,
                                  GimpImage          *image,
                                  GimpDrawable       *drawable,
                                  const gchar        *model_folders,
                                  const GimpLdmRunUi *ui,
                                  GError            **error);

#endif /* GIMP_LDM_RUN_H */
