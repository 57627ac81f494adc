/* ldm-live-dialog.h: the live painting dialog, a non-modal
 * GimpProcedureDialog (prompts, strength, steps, seed, model, precision)
 * with the state of live mode under it and the buttons Apply and Close.
 * Knows GTK and the procedure config only.
 */
#ifndef GIMP_LDM_LIVE_DIALOG_H
#define GIMP_LDM_LIVE_DIALOG_H

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

typedef struct
{
  void (*apply) (gpointer user); /* the Apply button */
  void (*close) (gpointer user); /* Close, Esc, or the window closed */
  gpointer user;
} GimpLdmLiveDialogHooks;

GtkWidget *gimp_ldm_live_dialog_new (GimpProcedure                *procedure,
                                     GimpProcedureConfig          *config,
                                     const GimpLdmLiveDialogHooks *hooks);
/* "Waiting for a change", "Running: step 1 of 2", "Cancelled" */
void gimp_ldm_live_dialog_set_state (GtkWidget *dialog, const gchar *text);
void gimp_ldm_live_dialog_set_latency (GtkWidget *dialog, const gchar *text);
/* The model in use (or why there is none) */
void gimp_ldm_live_dialog_set_model (GtkWidget *dialog, const gchar *text);
/* The model file the chooser shows (the one in use, also when it was
 * found by default); NULL: none. Changes nothing in the config. */
void gimp_ldm_live_dialog_set_model_file (GtkWidget *dialog, const gchar *path);
void gimp_ldm_live_dialog_set_apply_sensitive (GtkWidget *dialog,
                                               gboolean   sensitive);
/* Live mode ended: the message in the state line, Apply insensitive, only
 * Close left. */
void gimp_ldm_live_dialog_set_ended (GtkWidget *dialog, const gchar *message);

#endif /* GIMP_LDM_LIVE_DIALOG_H */
