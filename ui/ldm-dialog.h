/* ldm-dialog.h: the plug-in's dialog, a GimpProcedureDialog built from the
 * procedure config plus the pieces GIMP does not generate: multi-line
 * prompts, the models usable for the procedure, the model's recommended
 * settings, an "Advanced" expander, the run-time estimate, a live preview
 * and a progress line while the job runs. It stays open after OK: a run
 * that fails or is cancelled leaves it open with the values as they were.
 * Knows GTK and the procedure config only; the engine is behind the hooks.
 */
#ifndef GIMP_LDM_DIALOG_H
#define GIMP_LDM_DIALOG_H

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

/* What the dialog needs to know of a model (filled by describe_model). */
typedef struct
{
  gchar              *text;        /* "name: family, 64 px" or why unusable */
  gboolean            usable;      /* for this procedure */
  gint                rec_steps;   /* what the model recommends, else ours */
  gdouble             rec_cfg;
  const gchar        *rec_sampler;
  const gchar *const *samplers;    /* sampler nicks that fit, NULL: all */
} GimpLdmModelFacts;

/* A model found in the model folders, usable for the procedure. */
typedef struct
{
  gchar *path;
  gchar *label;   /* "ldm-demo (sd1)" */
} GimpLdmModelEntry;

typedef struct
{
  /* path NULL: the procedure's default model; fills facts (text owned by
   * the dialog afterwards) */
  void    (*describe_model) (const gchar *path, GimpLdmModelFacts *facts,
                             gpointer user);
  /* text estimating the run time for the current values */
  gchar  *(*estimate)       (GimpProcedureConfig *config, gpointer user);
  /* GimpLdmModelEntry list of the models found (the dialog frees it) */
  GList  *(*list_models)    (GimpProcedureConfig *config, gpointer user);
  /* the folder the model file chooser opens in (the dialog frees it) */
  gchar  *(*models_folder)  (GimpProcedureConfig *config, gpointer user);
  /* names of the LoRAs (a list of strings) and the embeddings (one line)
   * found for the current model's family (the dialog frees them) */
  void    (*list_addons)    (GimpProcedureConfig *config, GList **loras,
                             gchar **embeddings, gpointer user);
  /* GimpLdmModelEntry list of the ControlNets found for the current model's
   * family (the dialog frees it) */
  GList *(*list_controlnets) (GimpProcedureConfig *config, gpointer user);
  /* the control image for the current values (preprocessed control layer),
   * interleaved float RGB 0..1, rows packed; NULL when there is no control
   * layer, with *message saying why when it cannot be made (the dialog
   * frees both) */
  gfloat *(*control_preview) (GimpProcedureConfig *config,
                              gint                *width,
                              gint                *height,
                              gchar              **message,
                              gpointer             user);
  /* the image the dialog works on: its layers are the control layer
   * choices (NULL: none) */
  GimpImage *image;
  gpointer user;
} GimpLdmDialogHooks;

GtkWidget *gimp_ldm_dialog_new         (GimpProcedure            *procedure,
                                        GimpProcedureConfig      *config,
                                        const gchar              *title,
                                        const GimpLdmDialogHooks *hooks);
/* Shows the dialog until OK (TRUE) or Cancel/close (FALSE). The dialog stays
 * on screen after OK, to show progress; call again after a failed or
 * cancelled run; destroy it when done. */
gboolean   gimp_ldm_dialog_run         (GtkWidget   *dialog);
/* Running: settings frozen, OK insensitive, Cancel (button, Esc, closing the
 * window) calls on_cancel (data). Not running: editable again. */
void       gimp_ldm_dialog_set_running (GtkWidget   *dialog,
                                        gboolean     running,
                                        void       (*on_cancel) (gpointer),
                                        gpointer     data);
/* A line of text above the settings (e.g. the recipe to re-run). */
void       gimp_ldm_dialog_set_info    (GtkWidget   *dialog,
                                        const gchar *text);
/* The progress line; fraction < 0 leaves the bar as it is. */
void       gimp_ldm_dialog_set_status  (GtkWidget   *dialog,
                                        const gchar *text,
                                        gdouble      fraction);
/* Interleaved float RGB (channels 3) or grey (1), 0..1, rows `stride`
 * bytes apart. */
void       gimp_ldm_dialog_set_preview (GtkWidget    *dialog,
                                        const gfloat *pixels,
                                        gint          width,
                                        gint          height,
                                        gint          channels,
                                        gsize         stride);

#endif /* GIMP_LDM_DIALOG_H */
