/* ldm-dialog.h: the plug-in's dialog, a GimpProcedureDialog built from the
 * procedure config plus the pieces GIMP does not generate: multi-line
 * prompts, the list of models found in the model folders, model family and
 * run-time estimate, a live preview and a progress line while the job runs.
 * Knows GTK and the procedure config only; the engine is behind the hooks.
 */
#ifndef LDM_DIALOG_H
#define LDM_DIALOG_H

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

typedef struct
{
  /* text describing the model file (family, size) or why it cannot be used;
   * path NULL: the procedure's default model; *native gets its native side
   * in pixels (0 if unknown) */
  gchar *(*describe_model) (const gchar *path, gint *native, gpointer user);
  /* text estimating the run time for the current values */
  gchar *(*estimate)       (GimpProcedureConfig *config, gint native,
                            gpointer user);
  /* full paths of the models in the configured folders (caller frees) */
  GList *(*list_models)    (GimpProcedureConfig *config, gpointer user);
  gpointer user;
} LdmDialogHooks;

GtkWidget *ldm_dialog_new         (GimpProcedure        *procedure,
                                   GimpProcedureConfig  *config,
                                   const gchar          *title,
                                   const LdmDialogHooks *hooks);
/* Shows the dialog until OK (TRUE) or Cancel/close (FALSE). The dialog stays
 * on screen after OK, to show progress; destroy it when done. */
gboolean   ldm_dialog_run         (GtkWidget            *dialog);
/* After OK: freezes the settings; Cancel then calls `on_cancel (data)`. */
void       ldm_dialog_set_running (GtkWidget            *dialog,
                                   void                (*on_cancel) (gpointer),
                                   gpointer              data);
/* A line of text above the extra widgets (e.g. the recipe to re-run). */
void       ldm_dialog_set_info    (GtkWidget            *dialog,
                                   const gchar          *text);
void       ldm_dialog_set_status  (GtkWidget            *dialog,
                                   const gchar          *text,
                                   gdouble               fraction);
/* Interleaved float RGB (channels 3) or grey (1), 0..1. */
void       ldm_dialog_set_preview (GtkWidget            *dialog,
                                   const gfloat         *pixels,
                                   gint                  width,
                                   gint                  height,
                                   gint                  channels);

#endif /* LDM_DIALOG_H */
