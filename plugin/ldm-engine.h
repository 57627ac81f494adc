/* ldm-engine.h: runs one engine job (model load + ldm_job_run) on a worker
 * thread while the plug-in's main loop keeps GIMP's progress, the dialog's
 * preview and Cancel alive. The engine is reached only through ldm.h.
 */
#ifndef LDM_ENGINE_H
#define LDM_ENGINE_H

#include <glib.h>
#include <ldm.h>

#include "ldm-pixels.h"

typedef struct _LdmRun LdmRun;

/* GError code (domain GIMP_PLUG_IN_ERROR) of a run stopped by Cancel. */
#define LDM_RUN_ERROR_CANCELLED 1

/* Called on the main thread about 10 times a second while the job runs and
 * whenever a new preview arrived. `preview` is RGB float or NULL. */
typedef void (*LdmRunProgressFn) (gpointer         user,
                                  gint             step,
                                  gint             total,
                                  gdouble          elapsed_s,
                                  const LdmPixels *preview);

typedef struct
{
  const gchar     *model_path;
  gint             threads;
  ldm_precision    precision;
  ldm_job_params   job;        /* init/mask point at images owned by the caller */
  LdmRunProgressFn progress;
  gpointer         progress_user;
} LdmRunParams;

/* Loads the model, runs the job, returns the first image as RGB float or NULL
 * with `error` set (GIMP_PLUG_IN_ERROR; a cancelled run says so). Blocks the
 * caller while iterating the default main context. `seconds` gets the job's
 * wall time. */
LdmPixels *ldm_run_job         (const LdmRunParams *params,
                                gdouble            *seconds,
                                GError            **error);
/* Asks the running job (if any) to stop; safe from signal handlers on the
 * main thread. */
void       ldm_run_cancel_current (void);

/* Describes a model ("sd1 · 512 px · 860 M parameters") or NULL with error. */
gchar     *ldm_run_describe_model (const gchar *path,
                                   gint        *native_size,
                                   GError     **error);

/* ldm_image (RGB/RGBA, U8 or F32) <-> float pixels */
LdmPixels *ldm_pixels_from_image (const ldm_image *img);
ldm_image *ldm_image_from_pixels (const LdmPixels *p);

#endif /* LDM_ENGINE_H */
