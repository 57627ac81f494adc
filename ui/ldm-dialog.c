/* ldm-dialog.c: GimpProcedureDialog for the gimp-ldm procedures. The
 * generated widgets come from the procedure's arguments; this file adds the
 * labelled multi-line prompt boxes, the model list, model info, estimate,
 * live preview and progress line, and keeps the dialog open while running.
 */
#include "config.h"

#include <string.h>

#include "ldm-intl.h"
#include "ldm-dialog.h"

#define PREVIEW_SIZE 192

typedef struct
{
  GimpProcedureConfig *config;
  LdmDialogHooks       hooks;
  GtkWidget           *model_combo;
  GtkWidget           *model_button;   /* GtkFileChooserButton */
  GtkWidget           *info;
  GtkWidget           *model_info;
  GtkWidget           *estimate;
  GtkWidget           *preview;
  GtkWidget           *progress;
  GtkWidget           *extra;         /* our box under the generated widgets */
  GList               *models;        /* paths shown in model_combo */
  gint                 native;
  gboolean             running;
  gboolean             syncing;
  void               (*on_cancel) (gpointer);
  gpointer             cancel_data;
} DialogState;

static DialogState *
get_state (GtkWidget *dialog)
{
  return g_object_get_data (G_OBJECT (dialog), "ldm-dialog-state");
}

static void
state_free (DialogState *st)
{
  g_list_free_full (st->models, g_free);
  g_free (st);
}

static gboolean
has_prop (GimpProcedureConfig *config,
          const gchar         *name)
{
  return g_object_class_find_property (G_OBJECT_GET_CLASS (config), name) != NULL;
}

static void
update_estimate (DialogState *st)
{
  gchar *text;

  if (! st->estimate || ! st->hooks.estimate)
    return;
  text = st->hooks.estimate (st->config, st->native, st->hooks.user);
  gtk_label_set_text (GTK_LABEL (st->estimate), text ? text : "");
  g_free (text);
}

static void
update_model_info (DialogState *st)
{
  GFile *file = NULL;
  gchar *path = NULL;
  gchar *text = NULL;
  GList *l;
  gint   i;

  if (! has_prop (st->config, "model"))
    return;
  g_object_get (st->config, "model", &file, NULL);
  if (file)
    {
      path = g_file_get_path (file);
      g_object_unref (file);
    }

  st->native = 0;
  if (st->hooks.describe_model)
    text = st->hooks.describe_model (path, &st->native, st->hooks.user);
  if (st->model_info)
    gtk_label_set_text (GTK_LABEL (st->model_info), text ? text : "");
  g_free (text);

  if (st->model_button)
    {
      st->syncing = TRUE;
      if (path)
        gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (st->model_button), path);
      else
        gtk_file_chooser_unselect_all (GTK_FILE_CHOOSER (st->model_button));
      st->syncing = FALSE;
    }

  /* reflect the file in the list of found models */
  if (st->model_combo)
    {
      st->syncing = TRUE;
      gtk_combo_box_set_active (GTK_COMBO_BOX (st->model_combo), 0);
      for (l = st->models, i = 1; l; l = l->next, i++)
        if (path && strcmp (path, l->data) == 0)
          gtk_combo_box_set_active (GTK_COMBO_BOX (st->model_combo), i);
      st->syncing = FALSE;
    }
  g_free (path);
  update_estimate (st);
}

static void
on_config_notify (GObject    *config,
                  GParamSpec *pspec,
                  gpointer    data)
{
  DialogState *st = data;

  if (! strcmp (pspec->name, "model"))
    update_model_info (st);
  else
    update_estimate (st);
}

static void
on_model_combo_changed (GtkComboBox *combo,
                        gpointer     data)
{
  DialogState *st = data;
  gint         i = gtk_combo_box_get_active (combo);
  GFile       *file = NULL;

  if (st->syncing || i < 0)
    return;
  if (i > 0)
    file = g_file_new_for_path (g_list_nth_data (st->models, i - 1));
  g_object_set (st->config, "model", file, NULL);
  if (file)
    g_object_unref (file);
}

static void
on_model_file_set (GtkFileChooserButton *button,
                   gpointer              data)
{
  DialogState *st = data;
  GFile       *file;

  if (st->syncing)
    return;
  file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (button));
  g_object_set (st->config, "model", file, NULL);
  if (file)
    g_object_unref (file);
}

/* A labelled multi-line text box bound to a string argument. */
static void
add_text_view (GimpProcedureDialog *dialog,
               GList              **ids,
               const gchar         *property,
               const gchar         *label_id,
               const gchar         *label)
{
  GtkWidget *tv;
  GtkWidget *lbl;

  lbl = gimp_procedure_dialog_get_label (dialog, label_id, label, FALSE, TRUE);
  gtk_label_set_xalign (GTK_LABEL (lbl), 0.0);
  tv = gimp_procedure_dialog_get_widget (dialog, property, GTK_TYPE_TEXT_VIEW);
  gtk_text_view_set_wrap_mode (GTK_TEXT_VIEW (tv), GTK_WRAP_WORD_CHAR);
  gtk_text_view_set_left_margin (GTK_TEXT_VIEW (tv), 4);
  gtk_text_view_set_right_margin (GTK_TEXT_VIEW (tv), 4);
  gtk_widget_set_size_request (tv, 380, 54);
  gtk_label_set_mnemonic_widget (GTK_LABEL (lbl), tv);
  *ids = g_list_append (*ids, g_strdup (label_id));
  *ids = g_list_append (*ids, g_strdup (property));
}

static void
add_if (GimpProcedureDialog *dialog,
        GimpProcedureConfig *config,
        GList              **ids,
        const gchar         *property)
{
  if (has_prop (config, property))
    *ids = g_list_append (*ids, g_strdup (property));
}

static void
on_destroy_disconnect (GtkWidget *dialog,
                       gpointer   data)
{
  DialogState *st = get_state (dialog);

  if (st)
    g_signal_handlers_disconnect_by_data (st->config, st);
}

GtkWidget *
ldm_dialog_new (GimpProcedure        *procedure,
                GimpProcedureConfig  *config,
                const gchar          *title,
                const LdmDialogHooks *hooks)
{
  GtkWidget           *dialog;
  GimpProcedureDialog *pd;
  DialogState         *st = g_new0 (DialogState, 1);
  GList               *ids = NULL;
  GtkWidget           *content, *grid, *label, *hbox, *vbox, *frame;
  GList               *l;

  st->config = config;
  if (hooks)
    st->hooks = *hooks;

  dialog = gimp_procedure_dialog_new (procedure, config, title);
  pd = GIMP_PROCEDURE_DIALOG (dialog);
  g_object_set_data_full (G_OBJECT (dialog), "ldm-dialog-state", st,
                          (GDestroyNotify) state_free);

  if (has_prop (config, "prompt"))
    add_text_view (pd, &ids, "prompt", "prompt-label", _("_Prompt"));
  if (has_prop (config, "negative-prompt"))
    add_text_view (pd, &ids, "negative-prompt", "negative-label",
                   _("_Negative prompt"));

  if (has_prop (config, "seed") && has_prop (config, "random-seed"))
    {
      GtkWidget *box = gimp_procedure_dialog_fill_box (pd, "seed-box", "seed",
                                                       "random-seed", NULL);

      gtk_orientable_set_orientation (GTK_ORIENTABLE (box),
                                      GTK_ORIENTATION_HORIZONTAL);
      gtk_box_set_spacing (GTK_BOX (box), 12);
      gimp_procedure_dialog_set_sensitive (pd, "seed", TRUE, G_OBJECT (config),
                                           "random-seed", TRUE);
    }

  add_if (pd, config, &ids, "strength");
  add_if (pd, config, &ids, "margin");
  add_if (pd, config, &ids, "width");
  add_if (pd, config, &ids, "height");
  add_if (pd, config, &ids, "left");
  add_if (pd, config, &ids, "top");
  add_if (pd, config, &ids, "right");
  add_if (pd, config, &ids, "bottom");
  add_if (pd, config, &ids, "noise-level");
  add_if (pd, config, &ids, "new-image");
  add_if (pd, config, &ids, "new-seed");
  add_if (pd, config, &ids, "steps");
  add_if (pd, config, &ids, "cfg-scale");
  add_if (pd, config, &ids, "sampler");
  if (has_prop (config, "seed") && has_prop (config, "random-seed"))
    ids = g_list_append (ids, g_strdup ("seed-box"));
  add_if (pd, config, &ids, "work-size");
  add_if (pd, config, &ids, "threads");
  add_if (pd, config, &ids, "precision");

  gimp_procedure_dialog_fill_list (pd, ids);
  g_list_free_full (ids, g_free);

  /* ---- extra widgets under the generated ones --------------------------- */
  content = gtk_dialog_get_content_area (GTK_DIALOG (dialog));
  hbox = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  gtk_box_pack_start (GTK_BOX (content), hbox, FALSE, FALSE, 0);
  gtk_container_set_border_width (GTK_CONTAINER (hbox), 12);

  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 6);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 8);
  gtk_box_pack_start (GTK_BOX (hbox), grid, TRUE, TRUE, 0);

  st->info = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (st->info), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (st->info), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (st->info), 50);
  gtk_label_set_selectable (GTK_LABEL (st->info), TRUE);
  gtk_grid_attach (GTK_GRID (grid), st->info, 0, -2, 2, 1);

  if (has_prop (config, "model"))
    {
      GtkFileFilter *filter;

      /* the model argument accepts any path (a missing file is reported by
       * the plug-in, with its name), so its chooser is made here */
      label = gtk_label_new_with_mnemonic (_("Mo_del file:"));
      gtk_label_set_xalign (GTK_LABEL (label), 0.0);
      gtk_grid_attach (GTK_GRID (grid), label, 0, -1, 1, 1);
      st->model_button = gtk_file_chooser_button_new (_("Choose a model file"),
                                                      GTK_FILE_CHOOSER_ACTION_OPEN);
      filter = gtk_file_filter_new ();
      gtk_file_filter_set_name (filter, _("Safetensors models"));
      gtk_file_filter_add_pattern (filter, "*.safetensors");
      gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (st->model_button), filter);
      filter = gtk_file_filter_new ();
      gtk_file_filter_set_name (filter, _("All files"));
      gtk_file_filter_add_pattern (filter, "*");
      gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (st->model_button), filter);
      gtk_label_set_mnemonic_widget (GTK_LABEL (label), st->model_button);
      gtk_grid_attach (GTK_GRID (grid), st->model_button, 1, -1, 1, 1);
      g_signal_connect (st->model_button, "file-set",
                        G_CALLBACK (on_model_file_set), st);

      label = gtk_label_new (_("Models found:"));
      gtk_label_set_xalign (GTK_LABEL (label), 0.0);
      gtk_grid_attach (GTK_GRID (grid), label, 0, 0, 1, 1);

      st->model_combo = gtk_combo_box_text_new ();
      gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->model_combo),
                                      _("(chosen file or default)"));
      if (st->hooks.list_models)
        st->models = st->hooks.list_models (config, st->hooks.user);
      for (l = st->models; l; l = l->next)
        {
          gchar *base = g_path_get_basename (l->data);

          gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->model_combo),
                                          base);
          g_free (base);
        }
      gtk_widget_set_hexpand (st->model_combo, TRUE);
      gtk_grid_attach (GTK_GRID (grid), st->model_combo, 1, 0, 1, 1);
      g_signal_connect (st->model_combo, "changed",
                        G_CALLBACK (on_model_combo_changed), st);

      label = gtk_label_new (_("Model:"));
      gtk_label_set_xalign (GTK_LABEL (label), 0.0);
      gtk_grid_attach (GTK_GRID (grid), label, 0, 1, 1, 1);
      st->model_info = gtk_label_new ("");
      gtk_label_set_xalign (GTK_LABEL (st->model_info), 0.0);
      gtk_label_set_line_wrap (GTK_LABEL (st->model_info), TRUE);
      gtk_label_set_max_width_chars (GTK_LABEL (st->model_info), 40);
      gtk_grid_attach (GTK_GRID (grid), st->model_info, 1, 1, 1, 1);
    }

  label = gtk_label_new (_("Estimated time:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_grid_attach (GTK_GRID (grid), label, 0, 2, 1, 1);
  st->estimate = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (st->estimate), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (st->estimate), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (st->estimate), 40);
  gtk_grid_attach (GTK_GRID (grid), st->estimate, 1, 2, 1, 1);

  st->progress = gtk_progress_bar_new ();
  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (st->progress), TRUE);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (st->progress), _("Ready"));
  gtk_grid_attach (GTK_GRID (grid), st->progress, 0, 3, 2, 1);

  vbox = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  gtk_box_pack_start (GTK_BOX (hbox), vbox, FALSE, FALSE, 0);
  frame = gtk_frame_new (_("Preview"));
  gtk_box_pack_start (GTK_BOX (vbox), frame, FALSE, FALSE, 0);
  st->preview = gtk_image_new ();
  gtk_widget_set_size_request (st->preview, PREVIEW_SIZE, PREVIEW_SIZE);
  gtk_container_add (GTK_CONTAINER (frame), st->preview);
  gtk_widget_show_all (hbox);
  st->extra = hbox;

  /* disconnected when the dialog (which owns `st`) is destroyed */
  g_signal_connect (config, "notify", G_CALLBACK (on_config_notify), st);
  g_signal_connect (dialog, "destroy", G_CALLBACK (on_destroy_disconnect),
                    NULL);

  update_model_info (st);
  update_estimate (st);
  return dialog;
}

gboolean
ldm_dialog_run (GtkWidget *dialog)
{
  return gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (dialog));
}

static void
on_running_response (GtkDialog *dialog,
                     gint       response,
                     gpointer   data)
{
  DialogState *st = data;

  if (st->running && st->on_cancel &&
      (response == GTK_RESPONSE_CANCEL ||
       response == GTK_RESPONSE_DELETE_EVENT))
    st->on_cancel (st->cancel_data);
}

static gboolean
on_running_delete (GtkWidget *widget,
                   GdkEvent  *event,
                   gpointer   data)
{
  DialogState *st = data;

  if (st->running && st->on_cancel)
    st->on_cancel (st->cancel_data);
  return TRUE;   /* keep the dialog until the run returns */
}

void
ldm_dialog_set_running (GtkWidget *dialog,
                        void     (*on_cancel) (gpointer),
                        gpointer   data)
{
  DialogState *st = get_state (dialog);
  GtkWidget   *ok;
  GList       *children, *l;

  if (! st)
    return;
  st->running = TRUE;
  st->on_cancel = on_cancel;
  st->cancel_data = data;
  ok = gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog), GTK_RESPONSE_OK);
  if (ok)
    gtk_widget_set_sensitive (ok, FALSE);
  /* freeze the generated settings (everything but our box) */
  children = gtk_container_get_children (GTK_CONTAINER (gtk_dialog_get_content_area (GTK_DIALOG (dialog))));
  for (l = children; l; l = l->next)
    if (l->data != st->extra)
      gtk_widget_set_sensitive (GTK_WIDGET (l->data), FALSE);
  g_list_free (children);
  if (st->model_button)
    gtk_widget_set_sensitive (st->model_button, FALSE);
  if (st->model_combo)
    gtk_widget_set_sensitive (st->model_combo, FALSE);
  g_signal_connect (dialog, "response", G_CALLBACK (on_running_response), st);
  g_signal_connect (dialog, "delete-event", G_CALLBACK (on_running_delete), st);
  gtk_widget_show (dialog);
}

void
ldm_dialog_set_info (GtkWidget   *dialog,
                     const gchar *text)
{
  DialogState *st = get_state (dialog);

  if (st && st->info)
    gtk_label_set_text (GTK_LABEL (st->info), text ? text : "");
}

void
ldm_dialog_set_status (GtkWidget   *dialog,
                       const gchar *text,
                       gdouble      fraction)
{
  DialogState *st = get_state (dialog);

  if (! st || ! st->progress)
    return;
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (st->progress), text);
  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (st->progress),
                                 CLAMP (fraction, 0.0, 1.0));
}

void
ldm_dialog_set_preview (GtkWidget    *dialog,
                        const gfloat *pixels,
                        gint          width,
                        gint          height,
                        gint          channels)
{
  DialogState *st = get_state (dialog);
  GdkPixbuf   *pb, *scaled;
  guchar      *dst;
  gint         rs, x, y, pw, ph;

  if (! st || ! st->preview || width < 1 || height < 1)
    return;
  pb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, width, height);
  dst = gdk_pixbuf_get_pixels (pb);
  rs = gdk_pixbuf_get_rowstride (pb);
  for (y = 0; y < height; y++)
    for (x = 0; x < width; x++)
      {
        const gfloat *s = pixels + ((gsize) y * width + x) * channels;
        gint          ch;

        for (ch = 0; ch < 3; ch++)
          {
            gfloat v = s[channels == 1 ? 0 : ch];

            dst[y * rs + x * 3 + ch] = (guchar) (CLAMP (v, 0.0f, 1.0f) * 255.0f + 0.5f);
          }
      }
  if (width >= height)
    {
      pw = PREVIEW_SIZE;
      ph = MAX (1, height * PREVIEW_SIZE / width);
    }
  else
    {
      ph = PREVIEW_SIZE;
      pw = MAX (1, width * PREVIEW_SIZE / height);
    }
  scaled = gdk_pixbuf_scale_simple (pb, pw, ph, GDK_INTERP_BILINEAR);
  gtk_image_set_from_pixbuf (GTK_IMAGE (st->preview), scaled);
  g_object_unref (scaled);
  g_object_unref (pb);
}
