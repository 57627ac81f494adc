/* ldm-live-dialog.c: the live painting dialog (see ldm-live-dialog.h). */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ldm-ui-intl.h"
#include "ldm-live-dialog.h"

typedef struct
{
  GimpLdmLiveDialogHooks hooks;
  GtkWidget             *model, *state, *latency, *chooser;
  gboolean               ended;
} LiveDialog;

static LiveDialog *
get (GtkWidget *dialog)
{
  return g_object_get_data (G_OBJECT (dialog), "ldm-live-dialog");
}

static GtkWidget *
label_left (const gchar *text)
{
  GtkWidget *label = gtk_label_new (text);

  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 56);
  return label;
}

static void
on_response (GtkDialog *dialog, gint response, gpointer data)
{
  LiveDialog *ld = data;

  if (response == GTK_RESPONSE_OK)
    {
      if (! ld->ended && ld->hooks.apply)
        ld->hooks.apply (ld->hooks.user);
    }
  else if (response == GTK_RESPONSE_CANCEL ||
           response == GTK_RESPONSE_DELETE_EVENT ||
           response == GTK_RESPONSE_CLOSE)
    {
      if (ld->hooks.close)
        ld->hooks.close (ld->hooks.user);
    }
}

static gboolean
on_delete (GtkWidget *widget, GdkEvent *event, gpointer data)
{
  LiveDialog *ld = data;

  if (ld->hooks.close)
    ld->hooks.close (ld->hooks.user);
  return TRUE; /* the caller destroys the dialog */
}

/* Beside the canvas: at the right edge of the screen. */
static void
on_map_place (GtkWidget *dialog, gpointer data)
{
  GdkDisplay  *display = gtk_widget_get_display (dialog);
  GdkWindow   *window = gtk_widget_get_window (dialog);
  GdkMonitor  *monitor;
  GdkRectangle area;
  gint         w, h;

  if (! window ||
      ! (monitor = gdk_display_get_monitor_at_window (display, window)))
    return;
  gdk_monitor_get_workarea (monitor, &area);
  gtk_window_get_size (GTK_WINDOW (dialog), &w, &h);
  if (w < area.width)
    gtk_window_move (GTK_WINDOW (dialog), area.x + area.width - w,
                     area.y + MAX (0, (area.height - h) / 4));
}

static void
on_model_file_set (GtkFileChooserButton *button, gpointer config)
{
  GFile *file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (button));

  g_object_set (config, "model", file, NULL);
  if (file)
    g_object_unref (file);
}

static void
add_text_view (GimpProcedureDialog *pd,
               GList              **ids,
               const gchar         *property,
               const gchar         *label_id,
               const gchar         *label)
{
  GtkWidget *lbl =
      gimp_procedure_dialog_get_label (pd, label_id, label, FALSE, TRUE);
  GtkWidget *tv =
      gimp_procedure_dialog_get_widget (pd, property, GTK_TYPE_TEXT_VIEW);

  gtk_label_set_xalign (GTK_LABEL (lbl), 0.0);
  gtk_text_view_set_wrap_mode (GTK_TEXT_VIEW (tv), GTK_WRAP_WORD_CHAR);
  gtk_text_view_set_left_margin (GTK_TEXT_VIEW (tv), 4);
  gtk_text_view_set_right_margin (GTK_TEXT_VIEW (tv), 4);
  gtk_widget_set_size_request (tv, 400, 42);
  gtk_label_set_mnemonic_widget (GTK_LABEL (lbl), tv);
  *ids = g_list_append (*ids, g_strdup (label_id));
  *ids = g_list_append (*ids, g_strdup (property));
}

GtkWidget *
gimp_ldm_live_dialog_new (GimpProcedure                *procedure,
                          GimpProcedureConfig          *config,
                          const GimpLdmLiveDialogHooks *hooks)
{
  LiveDialog          *ld = g_new0 (LiveDialog, 1);
  GtkWidget           *dialog, *content, *frame, *grid, *button;
  GimpProcedureDialog *pd;
  GList               *ids = NULL;
  GtkWidget           *label, *spin, *chooser;
  GtkFileFilter       *filter;

  ld->hooks = *hooks;
  dialog = gimp_procedure_dialog_new (procedure, config, _ ("Live Painting"));
  pd = GIMP_PROCEDURE_DIALOG (dialog);
  g_object_set_data_full (G_OBJECT (dialog), "ldm-live-dialog", ld, g_free);
  gtk_window_set_modal (GTK_WINDOW (dialog), FALSE);

  add_text_view (pd, &ids, "prompt", "prompt-label", _ ("_Prompt"));
  add_text_view (pd, &ids, "negative-prompt", "negative-label",
                 _ ("_Negative prompt"));
  ids = g_list_append (ids, g_strdup ("strength"));
  ids = g_list_append (ids, g_strdup ("precision"));
  gimp_procedure_dialog_fill_list (pd, ids);
  g_list_free_full (ids, g_free);

  /* seed and model: GimpProcedureDialog makes no widget for unsigned
   * arguments nor for files that may be folders */
  content = gtk_dialog_get_content_area (GTK_DIALOG (dialog));
  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 4);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 8);
  gtk_box_pack_start (GTK_BOX (content), grid, FALSE, FALSE, 0);
  /* steps: a plain spin button (the range 1..4 is smaller than the page
   * of GIMP's scale entry) */
  label = gtk_label_new_with_mnemonic (_ ("S_teps:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  spin = gimp_prop_spin_button_new (G_OBJECT (config), "steps", 1.0, 1.0, 0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), spin);
  gtk_grid_attach (GTK_GRID (grid), label, 0, 2, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), spin, 1, 2, 1, 1);
  label = gtk_label_new_with_mnemonic (_ ("Se_ed:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  spin = gimp_prop_spin_button_new (G_OBJECT (config), "seed", 1.0, 1000.0, 0);
  gtk_entry_set_width_chars (GTK_ENTRY (spin), 11);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), spin);
  gtk_grid_attach (GTK_GRID (grid), label, 0, 0, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), spin, 1, 0, 1, 1);
  label = gtk_label_new_with_mnemonic (_ ("Mo_del:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  chooser = gtk_file_chooser_button_new (_ ("Choose a model file"),
                                         GTK_FILE_CHOOSER_ACTION_OPEN);
  gtk_widget_set_tooltip_text (chooser,
                               _ ("A model file (.safetensors) from anywhere"));
  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _ ("Safetensors models"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _ ("All files"));
  gtk_file_filter_add_pattern (filter, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  {
    GFile *file = NULL;

    g_object_get (config, "model", &file, NULL);
    if (file)
      {
        gtk_file_chooser_set_file (GTK_FILE_CHOOSER (chooser), file, NULL);
        g_object_unref (file);
      }
  }
  ld->chooser = chooser;
  gtk_widget_set_hexpand (chooser, TRUE);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), chooser);
  g_signal_connect (chooser, "file-set", G_CALLBACK (on_model_file_set),
                    config);
  gtk_grid_attach (GTK_GRID (grid), label, 0, 1, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), chooser, 1, 1, 1, 1);
  gtk_widget_show_all (grid);

  frame = gtk_frame_new (_ ("Live"));
  gtk_box_pack_start (GTK_BOX (content), frame, FALSE, FALSE, 0);
  grid = gtk_grid_new ();
  gtk_container_set_border_width (GTK_CONTAINER (grid), 6);
  gtk_grid_set_row_spacing (GTK_GRID (grid), 4);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 8);
  gtk_container_add (GTK_CONTAINER (frame), grid);
  gtk_grid_attach (GTK_GRID (grid), label_left (_ ("Model:")), 0, 0, 1, 1);
  ld->model = label_left ("");
  /* names for accessibility tools (and the tests that read them) */
  atk_object_set_description (gtk_widget_get_accessible (ld->model),
                              "live-model");
  gtk_grid_attach (GTK_GRID (grid), ld->model, 1, 0, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), label_left (_ ("State:")), 0, 1, 1, 1);
  ld->state = label_left ("");
  atk_object_set_description (gtk_widget_get_accessible (ld->state),
                              "live-state");
  gtk_grid_attach (GTK_GRID (grid), ld->state, 1, 1, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), label_left (_ ("Latency:")), 0, 2, 1, 1);
  ld->latency = label_left (_ ("no result yet"));
  atk_object_set_description (gtk_widget_get_accessible (ld->latency),
                              "live-latency");
  gtk_grid_attach (GTK_GRID (grid), ld->latency, 1, 2, 1, 1);
  gtk_widget_show_all (frame);

  /* Apply keeps the result; Close ends live mode */
  button =
      gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog), GTK_RESPONSE_OK);
  if (button)
    gtk_button_set_label (GTK_BUTTON (button), _ ("_Apply"));
  button = gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog),
                                               GTK_RESPONSE_CANCEL);
  if (button)
    gtk_button_set_label (GTK_BUTTON (button), _ ("_Close"));
  gtk_dialog_set_response_sensitive (GTK_DIALOG (dialog), GTK_RESPONSE_OK,
                                     FALSE);

  g_signal_connect (dialog, "response", G_CALLBACK (on_response), ld);
  g_signal_connect (dialog, "delete-event", G_CALLBACK (on_delete), ld);
  g_signal_connect (dialog, "map", G_CALLBACK (on_map_place), NULL);
  return dialog;
}

void
gimp_ldm_live_dialog_set_state (GtkWidget *dialog, const gchar *text)
{
  LiveDialog *ld = get (dialog);

  if (ld && ! ld->ended &&
      g_strcmp0 (gtk_label_get_text (GTK_LABEL (ld->state)), text))
    gtk_label_set_text (GTK_LABEL (ld->state), text);
}

void
gimp_ldm_live_dialog_set_latency (GtkWidget *dialog, const gchar *text)
{
  LiveDialog *ld = get (dialog);

  if (ld)
    gtk_label_set_text (GTK_LABEL (ld->latency), text);
}

void
gimp_ldm_live_dialog_set_model (GtkWidget *dialog, const gchar *text)
{
  LiveDialog *ld = get (dialog);

  if (ld)
    gtk_label_set_text (GTK_LABEL (ld->model), text);
}

void
gimp_ldm_live_dialog_set_model_file (GtkWidget *dialog, const gchar *path)
{
  LiveDialog *ld = get (dialog);
  gchar      *shown;

  if (! ld)
    return;
  shown = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (ld->chooser));
  /* a folder model cannot be shown by an open-file chooser */
  if (path && g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      if (g_strcmp0 (shown, path))
        gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (ld->chooser), path);
    }
  else if (shown)
    gtk_file_chooser_unselect_all (GTK_FILE_CHOOSER (ld->chooser));
  g_free (shown);
}

void
gimp_ldm_live_dialog_set_apply_sensitive (GtkWidget *dialog, gboolean sensitive)
{
  LiveDialog *ld = get (dialog);

  if (ld && ! ld->ended)
    gtk_dialog_set_response_sensitive (GTK_DIALOG (dialog), GTK_RESPONSE_OK,
                                       sensitive);
}

void
gimp_ldm_live_dialog_set_ended (GtkWidget *dialog, const gchar *message)
{
  LiveDialog *ld = get (dialog);

  if (! ld)
    return;
  gtk_label_set_text (GTK_LABEL (ld->state), message);
  ld->ended = TRUE;
  gtk_dialog_set_response_sensitive (GTK_DIALOG (dialog), GTK_RESPONSE_OK,
                                     FALSE);
}
