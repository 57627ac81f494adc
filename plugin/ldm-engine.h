/* ldm-engine.h: runs one engine job (model load + ldm_job_run) on a worker
 * thread while the plug-in's main loop keeps GIMP's progress, the dialog's
 * preview and Cancel alive. The engine is reached only through ldm.h.
 */
#ifndef GIMP_LDM_ENGINE_H
#define GIMP_LDM_ENGINE_H

#include <glib.h>
#include <ldm.h>

/* GError code (domain GIMP_PLUG_IN_ERROR) of a run stopped by Cancel. */
#define GIMP_LDM_ERROR_CANCELLED 1

/* What a running job reports, on the main thread. */
typedef struct
{
  gint             step, total;   /* total 0: not denoising yet */
  gdouble          elapsed_s;     /* since the job started (model loaded) */
  const ldm_image *preview;       /* the picture forming (RGB), or NULL */
} GimpLdmProgress;

/* The one progress callback type of the plug-in: engine -> run -> dialog. */
typedef void (*GimpLdmProgressFn) (gpointer               user,
                                   const GimpLdmProgress *progress);

/* Cancel of one run, shared by whoever may cancel it (the dialog's Cancel
 * button, Esc, closing the dialog) and the worker. */
typedef struct
{
  gint     cancel;    /* atomic */
  GMutex   lock;
  ldm_job *job;       /* set while ldm_job_run may be running */
} GimpLdmControl;

void gimp_ldm_control_init   (GimpLdmControl *control);
void gimp_ldm_control_clear  (GimpLdmControl *control);
/* Safe on the main thread at any time: the job stops within one step. */
void gimp_ldm_control_cancel (GimpLdmControl *control);

typedef struct
{
  ldm_model_params  model;      /* path, threads, precision */
  ldm_job_params    job;        /* init/mask point at images owned by the caller */
  const gchar      *refine_path; /* upscale and refine: the checkpoint, or NULL */
  GimpLdmProgressFn progress;   /* may be NULL */
  gpointer          progress_user;
  GimpLdmControl   *control;
  /* filled by the run: timing for the speed records */
  gdouble           seconds;      /* the whole job, model load included */
  gdouble           load_s;       /* the model load alone */
  gdouble           first_step_s; /* elapsed at step 1, -1 if none */
  gdouble           last_step_s;  /* elapsed at the last step, -1 if none */
  gint              steps_done;
  gchar            *lora_hashes;  /* "NAME: HASH, ..." of the LoRAs merged
                                     (the job's and the prompt's), or NULL;
                                     the caller frees it */
} GimpLdmEngineJob;

/* Loads the model, runs the job, returns its first image (RGB; F32 when
 * job.output_type asks) or NULL with `error` set (GIMP_PLUG_IN_ERROR; a
 * cancelled run has code GIMP_LDM_ERROR_CANCELLED). Blocks the caller while
 * iterating the default main context. */
ldm_image *gimp_ldm_engine_run      (GimpLdmEngineJob *job,
                                     GError          **error);

/* The engine's facts about a model, without running it. */
gboolean   gimp_ldm_engine_describe (const gchar      *path,
                                     ldm_model_info   *info,
                                     GError          **error);

#endif /* GIMP_LDM_ENGINE_H */
