/* ldm-dialog.c: GimpProcedureDialog for the gimp-ldm procedures. The
 * generated widgets come from the procedure's arguments: the everyday ones
 * (prompts, strength, seed, model) first, the rest in an "Advanced"
 * expander that remembers its state. This file adds the multi-line prompt
 * boxes, the model list, the model's recommended settings, the estimate,
 * the live preview and the progress line, and keeps the dialog open while
 * (and after) a run.
 */
#include <stdio.h>
#include <string.h>

#include "ldm-ui-intl.h"
#include "ldm-dialog.h"

#define PREVIEW_SIZE 160
#define CONTROL_PREVIEW_SIZE 80

typedef struct
{
  GimpProcedureConfig *config;
  GimpLdmDialogHooks   hooks;
  GtkWidget           *dialog;
  GtkWidget           *model_combo;
  GtkWidget           *model_button;   /* GtkFileChooserButton */
  GtkWidget           *info;
  GtkWidget           *model_info;
  GtkWidget           *lora_combo;     /* "Add a LoRA" */
  GtkWidget           *embeddings;
  GtkWidget           *seed_row;
  GtkWidget           *estimate;
  GtkWidget           *preview;
  GtkWidget           *progress;
  GtkWidget           *message;        /* a run's final message, in full */
  GtkWidget           *control_body;   /* the Control section's contents */
  GtkWidget           *extra;          /* our box under the generated widgets */
  GtkWidget           *control;        /* the Control expander */
  GtkWidget           *advanced;       /* the Advanced expander */
  GtkWidget           *control_layer;  /* combo: (none) + the image's layers */
  GArray              *control_ids; /* item IDs of control_layer's rows 1.. */
  GtkWidget           *controlnet_combo;
  GList               *controlnets; /* GimpLdmModelEntry in controlnet_combo */
  GtkWidget           *control_preview;
  GtkWidget           *control_frame; /* frame of control_preview */
  GtkWidget           *canny_low;     /* canny's thresholds */
  GtkWidget           *canny_high;
  GtkWidget           *control_message;
  GList               *models;         /* GimpLdmModelEntry shown in model_combo */
  GimpLdmModelFacts    facts;
  GHashTable          *touched;        /* properties the user changed */
  gboolean             model_chosen;   /* the user picked a model here */
  gboolean             running;
  gint                 syncing;
  void               (*on_cancel) (gpointer);
  gpointer             cancel_data;
} DialogState;

static DialogState *
get_state (GtkWidget *dialog)
{
  return g_object_get_data (G_OBJECT (dialog), "ldm-dialog-state");
}

static void
entry_free (GimpLdmModelEntry *e)
{
  g_free (e->path);
  g_free (e->label);
  g_free (e);
}

static void
state_free (DialogState *st)
{
  g_list_free_full (st->models, (GDestroyNotify) entry_free);
  g_list_free_full (st->controlnets, (GDestroyNotify) entry_free);
  if (st->control_ids)
    g_array_free (st->control_ids, TRUE);
  g_free (st->facts.text);
  g_hash_table_destroy (st->touched);
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
  text = st->hooks.estimate (st->config, st->hooks.user);
  gtk_label_set_text (GTK_LABEL (st->estimate), text ? text : "");
  g_free (text);
}

static gchar *
config_file_path (DialogState *st, const gchar *property)
{
  GFile *file = NULL;
  gchar *path = NULL;

  g_object_get (st->config, property, &file, NULL);
  if (file)
    {
      path = g_file_get_path (file);
      g_object_unref (file);
    }
  return path;
}

static gchar *
config_model_path (DialogState *st)
{
  return config_file_path (st, "model");
}

/* The model's recommended steps, CFG and sampler into the config, where the
 * value is unset (0, "default") or the user chose another model here and
 * has not changed that value themselves. */
static void
apply_recommendations (DialogState *st)
{
  GimpLdmModelFacts *f = &st->facts;
  gint               steps = 0;
  gdouble            cfg = 0.0;
  gchar             *sampler = NULL;

  st->syncing++;
  if (has_prop (st->config, "steps"))
    {
      g_object_get (st->config, "steps", &steps, NULL);
      if (f->rec_steps > 0 && (steps == 0 || (st->model_chosen &&
          ! g_hash_table_contains (st->touched, "steps"))))
        g_object_set (st->config, "steps", f->rec_steps, NULL);
    }
  if (has_prop (st->config, "cfg-scale"))
    {
      g_object_get (st->config, "cfg-scale", &cfg, NULL);
      if (f->rec_cfg > 0.0 && (cfg == 0.0 || (st->model_chosen &&
          ! g_hash_table_contains (st->touched, "cfg-scale"))))
        g_object_set (st->config, "cfg-scale", f->rec_cfg, NULL);
    }
  if (has_prop (st->config, "sampler"))
    {
      GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (st->config),
                                                        "sampler");
      GimpChoice *choice = gimp_param_spec_choice_get_choice (pspec);
      GList      *nicks = gimp_choice_list_nicks (choice), *l;
      gboolean    current_ok = FALSE;

      g_object_get (st->config, "sampler", &sampler, NULL);
      /* only the samplers that fit the model can be picked */
      for (l = nicks; l; l = l->next)
        {
          gboolean ok = TRUE;
          gint     i;

          if (f->samplers && strcmp (l->data, "default"))
            {
              ok = FALSE;
              for (i = 0; f->samplers[i]; i++)
                if (! strcmp (f->samplers[i], l->data))
                  ok = TRUE;
            }
          gimp_choice_set_sensitive (choice, l->data, ok);
          if (ok && sampler && ! strcmp (sampler, l->data))
            current_ok = TRUE;
        }
      if (f->rec_sampler && (! current_ok || ! g_strcmp0 (sampler, "default") ||
          (st->model_chosen && ! g_hash_table_contains (st->touched, "sampler"))))
        g_object_set (st->config, "sampler", f->rec_sampler, NULL);
      g_free (sampler);
    }
  st->syncing--;
}

/* The LoRAs and embeddings for the model's family. */
static void
update_addons (DialogState *st)
{
  GList *loras = NULL, *l;
  gchar *embeddings = NULL, *text;

  if (! st->lora_combo || ! st->hooks.list_addons)
    return;
  st->hooks.list_addons (st->config, &loras, &embeddings, st->hooks.user);
  st->syncing++;
  gtk_combo_box_text_remove_all (GTK_COMBO_BOX_TEXT (st->lora_combo));
  gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->lora_combo),
                                  loras ? _("Add a LoRA…")
                                        : _("(no LoRAs for this model)"));
  for (l = loras; l; l = l->next)
    gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->lora_combo), l->data);
  gtk_combo_box_set_active (GTK_COMBO_BOX (st->lora_combo), 0);
  st->syncing--;
  /* TRANSLATORS: the embeddings found; type a name in a prompt to use it */
  text = embeddings && *embeddings
         ? g_strdup_printf (_("Embeddings (type the name in a prompt): %s"),
                            embeddings)
         : g_strdup ("");
  gtk_label_set_text (GTK_LABEL (st->embeddings), text);
  gtk_widget_set_visible (st->embeddings, *text != '\0');
  g_free (text);
  g_free (embeddings);
  g_list_free_full (loras, g_free);
}

/* A LoRA picked from the list: appended to the loras field at 1.0 (the
 * multiplier is edited there). */
static void
on_lora_picked (GtkComboBox *combo,
                gpointer     data)
{
  DialogState *st = data;
  gchar       *name, *loras = NULL, *joined;

  if (st->syncing || gtk_combo_box_get_active (combo) <= 0)
    return;
  name = gtk_combo_box_text_get_active_text (GTK_COMBO_BOX_TEXT (combo));
  g_object_get (st->config, "loras", &loras, NULL);
  joined = loras && *loras ? g_strdup_printf ("%s, %s:1", loras, name)
                           : g_strdup_printf ("%s:1", name);
  g_object_set (st->config, "loras", joined, NULL);
  g_free (joined);
  g_free (loras);
  g_free (name);
  st->syncing++;
  gtk_combo_box_set_active (combo, 0);
  st->syncing--;
}

/* Whether the model list holds, after Default and the models found, an
 * item for a file chosen with the button. */
static gboolean
model_other (DialogState *st)
{
  GtkTreeModel *m = gtk_combo_box_get_model (GTK_COMBO_BOX (st->model_combo));

  return gtk_tree_model_iter_n_children (m, NULL) >
         (gint) g_list_length (st->models) + 1;
}

static void
update_model_info (DialogState *st)
{
  gchar *path;
  GList *l;
  gint   i;

  if (! has_prop (st->config, "model"))
    return;
  path = config_model_path (st);

  g_free (st->facts.text);
  memset (&st->facts, 0, sizeof (st->facts));
  if (st->hooks.describe_model)
    st->hooks.describe_model (path, &st->facts, st->hooks.user);
  else
    st->facts.usable = TRUE;
  if (st->model_info)
    gtk_label_set_text (GTK_LABEL (st->model_info),
                        st->facts.text ? st->facts.text : "");
  /* OK only for a model this procedure can use */
  gtk_dialog_set_response_sensitive (GTK_DIALOG (st->dialog), GTK_RESPONSE_OK,
                                     st->facts.usable && ! st->running);

  st->syncing++;
  if (st->model_button)
    {
      if (path)
        gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (st->model_button), path);
      else
        gtk_file_chooser_unselect_all (GTK_FILE_CHOOSER (st->model_button));
    }
  if (st->model_combo)
    {
      /* the list names the model in use: one of its own, or a last item
       * for a file chosen with the button (not "Default") */
      gint found = path ? -1 : 0, other = (gint) g_list_length (st->models) + 1;

      for (l = st->models, i = 1; path && l; l = l->next, i++)
        if (strcmp (path, ((GimpLdmModelEntry *) l->data)->path) == 0)
          found = i;
      if (model_other (st))
        gtk_combo_box_text_remove (GTK_COMBO_BOX_TEXT (st->model_combo), other);
      if (found < 0)
        {
          gchar *base = g_path_get_basename (path);
          /* TRANSLATORS: model list entry for a file chosen with the file
           * button, outside the model folders */
          gchar *text = g_strdup_printf (_ ("%s (chosen file)"), base);

          gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->model_combo),
                                          text);
          found = other;
          g_free (text);
          g_free (base);
        }
      gtk_combo_box_set_active (GTK_COMBO_BOX (st->model_combo), found);
    }
  st->syncing--;
  g_free (path);
  update_addons (st);
  if (st->facts.usable)
    apply_recommendations (st);
  update_estimate (st);
}

/* ---- the Control section ----------------------------------------------- */

/* A combo box's texts ellipsized: from min_chars on it asks for no more
 * than max_chars. */
static void
ellipsize_cells (GtkWidget *combo, gint min_chars, gint max_chars)
{
  GList *cells = gtk_cell_layout_get_cells (GTK_CELL_LAYOUT (combo));
  GList *l;

  for (l = cells; l; l = l->next)
    if (GTK_IS_CELL_RENDERER_TEXT (l->data))
      g_object_set (l->data, "ellipsize", PANGO_ELLIPSIZE_END, "width-chars",
                    min_chars, "max-width-chars", max_chars, NULL);
  g_list_free (cells);
}

/* A text combo box that does not widen the dialog: long entries (layer
 * names, model files) are ellipsized. */
static GtkWidget *
narrow_combo (void)
{
  GtkWidget *combo = gtk_combo_box_text_new ();

  ellipsize_cells (combo, 12, 24);
  gtk_widget_set_hexpand (combo, TRUE);
  return combo;
}

/* A slider with a short label inside (the section says what it controls);
 * its tooltip and accessible name are the argument's. */
static GtkWidget *
control_scale (GimpProcedureConfig *config,
               const gchar         *property,
               const gchar         *label,
               gdouble              step,
               gdouble              page,
               gint                 digits)
{
  GtkWidget  *scale = gimp_prop_spin_scale_new (G_OBJECT (config), property,
                                                step, page, digits);
  GParamSpec *pspec =
      g_object_class_find_property (G_OBJECT_GET_CLASS (config), property);
  gchar *name = g_strdup (g_param_spec_get_nick (pspec));
  gchar *s, *d;

  gimp_spin_scale_set_label (GIMP_SPIN_SCALE (scale), label);
  /* the argument's label without its mnemonic underscore */
  for (s = d = name; *s; s++)
    if (*s != '_')
      *d++ = *s;
  *d = '\0';
  atk_object_set_name (gtk_widget_get_accessible (scale), name);
  gtk_widget_set_tooltip_text (scale, g_param_spec_get_blurb (pspec));
  g_free (name);
  return scale;
}

/* Canny's thresholds: usable only with the canny preprocessor. */
static void
update_canny_sensitive (DialogState *st)
{
  gchar   *pre = NULL;
  gboolean canny;

  if (! st->canny_low)
    return;
  g_object_get (st->config, "control-preprocess", &pre, NULL);
  canny = ! g_strcmp0 (pre, "canny");
  gtk_widget_set_sensitive (st->canny_low, canny);
  gtk_widget_set_sensitive (st->canny_high, canny);
  g_free (pre);
}

/* The preprocessed control layer, as the run will see it. */
static void
update_control_preview (DialogState *st)
{
  gfloat *px = NULL;
  gchar  *message = NULL;
  gint    w = 0, h = 0;

  if (! st->control_preview || ! st->hooks.control_preview)
    return;
  px = st->hooks.control_preview (st->config, &w, &h, &message, st->hooks.user);
  if (px && w > 0 && h > 0)
    {
      GdkPixbuf *pb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, w, h);
      GdkPixbuf *scaled;
      guchar    *dst = gdk_pixbuf_get_pixels (pb);
      gint       rs = gdk_pixbuf_get_rowstride (pb), x, y, pw, ph;

      for (y = 0; y < h; y++)
        for (x = 0; x < w * 3; x++)
          dst[y * rs + x] =
              (guchar) (CLAMP (px[(gsize) y * w * 3 + x], 0.0f, 1.0f) * 255.0f +
                        0.5f);
      pw =
          w >= h ? CONTROL_PREVIEW_SIZE : MAX (1, w * CONTROL_PREVIEW_SIZE / h);
      ph =
          w >= h ? MAX (1, h * CONTROL_PREVIEW_SIZE / w) : CONTROL_PREVIEW_SIZE;
      /* area-averaging: thin lines stay visible when shrunk */
      scaled = gdk_pixbuf_scale_simple (pb, pw, ph, GDK_INTERP_TILES);
      gtk_image_set_from_pixbuf (GTK_IMAGE (st->control_preview), scaled);
      g_object_unref (scaled);
      g_object_unref (pb);
    }
  else
    gtk_image_clear (GTK_IMAGE (st->control_preview));
  gtk_label_set_text (GTK_LABEL (st->control_message),
                      message ? message
                      : px    ? ""
                              : _ ("No control layer: no ControlNet."));
  gtk_widget_set_visible (st->control_message, message || ! px);
  g_free (px);
  g_free (message);
}

/* The ControlNets for the current model's family, and the chosen one. */
static void
update_controlnets (DialogState *st)
{
  gchar *path;
  GList *l;
  gint   i, active = 0;

  if (! st->controlnet_combo)
    return;
  path = config_file_path (st, "controlnet");
  g_list_free_full (st->controlnets, (GDestroyNotify) entry_free);
  st->controlnets =
      st->hooks.list_controlnets
          ? st->hooks.list_controlnets (st->config, st->hooks.user)
          : NULL;
  /* a file given otherwise (script, recipe) stays selectable */
  for (l = st->controlnets; l && path; l = l->next)
    if (! strcmp (path, ((GimpLdmModelEntry *) l->data)->path))
      break;
  if (path && ! l)
    {
      GimpLdmModelEntry *e = g_new0 (GimpLdmModelEntry, 1);

      e->path = g_strdup (path);
      e->label = g_path_get_basename (path);
      st->controlnets = g_list_append (st->controlnets, e);
    }
  st->syncing++;
  gtk_combo_box_text_remove_all (GTK_COMBO_BOX_TEXT (st->controlnet_combo));
  gtk_combo_box_text_append_text (
      GTK_COMBO_BOX_TEXT (st->controlnet_combo),
      st->controlnets ? _ ("(none)") : _ ("(none found for this model)"));
  for (l = st->controlnets, i = 1; l; l = l->next, i++)
    {
      GimpLdmModelEntry *e = l->data;

      gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->controlnet_combo),
                                      e->label);
      if (path && ! strcmp (path, e->path))
        active = i;
    }
  gtk_combo_box_set_active (GTK_COMBO_BOX (st->controlnet_combo), active);
  st->syncing--;
  g_free (path);
}

static void
on_controlnet_changed (GtkComboBox *combo, gpointer data)
{
  DialogState *st = data;
  gint         i = gtk_combo_box_get_active (combo);
  GFile       *file = NULL;

  if (st->syncing || i < 0)
    return;
  if (i > 0)
    file = g_file_new_for_path (
        ((GimpLdmModelEntry *) g_list_nth_data (st->controlnets, i - 1))->path);
  g_object_set (st->config, "controlnet", file, NULL);
  if (file)
    g_object_unref (file);
}

static void
add_layer_rows (DialogState *st, GList *layers, gint depth, gint current)
{
  GList *l;

  for (l = layers; l; l = l->next)
    {
      GimpItem *item = l->data;
      gint      id = gimp_item_get_id (item);
      gchar    *label;

      if (! GIMP_IS_LAYER (item))
        continue;
      label =
          g_strdup_printf ("%*s%s", depth * 2, "", gimp_item_get_name (item));
      gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->control_layer),
                                      label);
      g_free (label);
      g_array_append_val (st->control_ids, id);
      if (id == current)
        gtk_combo_box_set_active (GTK_COMBO_BOX (st->control_layer),
                                  (gint) st->control_ids->len);
      if (gimp_item_is_group (item))
        {
          GList *children = gimp_item_list_children (item);

          add_layer_rows (st, children, depth + 1, current);
          g_list_free (children);
        }
    }
}

/* (none) and every layer of the image, groups' children indented. */
static void
fill_control_layers (DialogState *st)
{
  GimpImage *image = st->hooks.image;
  GimpLayer *current = NULL;
  GList     *layers;

  g_object_get (st->config, "control-layer", &current, NULL);
  st->syncing++;
  gtk_combo_box_text_remove_all (GTK_COMBO_BOX_TEXT (st->control_layer));
  g_array_set_size (st->control_ids, 0);
  gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->control_layer),
                                  _ ("(none)"));
  gtk_combo_box_set_active (GTK_COMBO_BOX (st->control_layer), 0);
  if (image)
    {
      layers = gimp_image_list_layers (image);
      add_layer_rows (st, layers, 0,
                      current ? gimp_item_get_id (GIMP_ITEM (current)) : -1);
      g_list_free (layers);
    }
  st->syncing--;
  g_clear_object (&current);
}

static void
on_control_layer_changed (GtkComboBox *combo, gpointer data)
{
  DialogState *st = data;
  gint         i = gtk_combo_box_get_active (combo);
  GimpLayer   *layer = NULL;

  if (st->syncing || i < 0)
    return;
  if (i > 0 && (guint) i <= st->control_ids->len)
    layer = gimp_layer_get_by_id (g_array_index (st->control_ids, gint, i - 1));
  g_object_set (st->config, "control-layer", layer, NULL);
}

static void
on_config_notify (GObject    *config,
                  GParamSpec *pspec,
                  gpointer    data)
{
  DialogState *st = data;

  if (! strcmp (pspec->name, "model"))
    {
      if (! st->syncing)
        st->model_chosen = TRUE;
      update_model_info (st);
      update_controlnets (st);
      return;
    }
  if (! strcmp (pspec->name, "control-preprocess"))
    update_canny_sensitive (st);
  if (! strcmp (pspec->name, "control-layer") ||
      ! strcmp (pspec->name, "control-preprocess") ||
      ! strcmp (pspec->name, "control-canny-low") ||
      ! strcmp (pspec->name, "control-canny-high") ||
      ! strcmp (pspec->name, "margin"))
    update_control_preview (st);
  if (! st->syncing)
    g_hash_table_add (st->touched, g_strdup (pspec->name));
  update_estimate (st);
}

static void
on_model_combo_changed (GtkComboBox *combo,
                        gpointer     data)
{
  DialogState *st = data;
  gint         i = gtk_combo_box_get_active (combo);
  GFile       *file = NULL;

  /* the chosen file's own item: that file stays the model */
  if (st->syncing || i < 0 ||
      (model_other (st) && i == (gint) g_list_length (st->models) + 1))
    return;
  if (i > 0)
    file = g_file_new_for_path (((GimpLdmModelEntry *)
                                 g_list_nth_data (st->models, i - 1))->path);
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
  gtk_widget_set_size_request (tv, 420, 42);
  gtk_label_set_mnemonic_widget (GTK_LABEL (lbl), tv);
  *ids = g_list_append (*ids, g_strdup (label_id));
  *ids = g_list_append (*ids, g_strdup (property));
}

static void
add_if (GimpProcedureConfig *config,
        GList              **ids,
        const gchar         *property)
{
  if (has_prop (config, property))
    *ids = g_list_append (*ids, g_strdup (property));
}

/* Two or more arguments side by side in a box named id. */
static gboolean
add_row (GimpProcedureDialog *pd,
         GimpProcedureConfig *config,
         GList              **ids,
         const gchar         *id,
         const gchar         *first,
         ...)
{
  GList       *props = NULL;
  const gchar *p;
  va_list      args;
  GtkWidget   *box;

  va_start (args, first);
  for (p = first; p; p = va_arg (args, const gchar *))
    if (has_prop (config, p))
      props = g_list_append (props, g_strdup (p));
  va_end (args);
  if (! props)
    return FALSE;
  box = gimp_procedure_dialog_fill_box_list (pd, id, props);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (box),
                                  GTK_ORIENTATION_HORIZONTAL);
  gtk_box_set_spacing (GTK_BOX (box), 12);
  g_list_free_full (props, g_free);
  *ids = g_list_append (*ids, g_strdup (id));
  return TRUE;
}

static void
on_destroy_disconnect (GtkWidget *dialog,
                       gpointer   data)
{
  DialogState *st = get_state (dialog);

  if (st)
    g_signal_handlers_disconnect_by_data (st->config, st);
}

/* Beside the canvas rather than over it: the right edge of the monitor's
 * work area (GIMP centres plug-in dialogs on the image window otherwise). */
static void
on_map_place (GtkWidget *dialog,
              gpointer   data)
{
  GdkDisplay  *display = gtk_widget_get_display (dialog);
  GdkWindow   *window = gtk_widget_get_window (dialog);
  GdkMonitor  *monitor;
  GdkRectangle area;
  gint         w, h;

  if (! window)
    return;
  monitor = gdk_display_get_monitor_at_window (display, window);
  if (! monitor)
    return;
  gdk_monitor_get_workarea (monitor, &area);
  gtk_window_get_size (GTK_WINDOW (dialog), &w, &h);
  if (w < area.width)
    gtk_window_move (GTK_WINDOW (dialog), area.x + area.width - w,
                     area.y + MAX (0, (area.height - h) / 4));
}

/* A closed section's contents off the screen for GTK too: in GIMP's
 * procedure dialog a closed expander's child stayed mapped, so the access
 * keys of its invisible settings were live (Alt+S focused the hidden Steps
 * field). The child is shown only while the expander is open, from when the
 * dialog maps and at every toggle (hidden, not merely unmapped: GTK maps an
 * opening expander's visible child itself). */
static void
sync_section (GtkWidget *expander)
{
  GtkWidget *child = expander ? gtk_bin_get_child (GTK_BIN (expander)) : NULL;

  if (child)
    gtk_widget_set_visible (
        child, gtk_expander_get_expanded (GTK_EXPANDER (expander)));
}

static void
on_map_sections (GtkWidget *dialog, gpointer data)
{
  DialogState *st = get_state (dialog);

  if (st)
    {
      sync_section (st->advanced);
      sync_section (st->control);
    }
}

/* A picture area with a thin border and a darker ground: visible as one
 * while it is still empty (GIMP's themes draw no frame borders). */
static GtkWidget *
sunken (GtkWidget *image)
{
  GtkWidget      *frame = gtk_frame_new (NULL);
  GtkCssProvider *css = gtk_css_provider_new ();

  gtk_css_provider_load_from_data (css,
                                   "frame > border { border: 1px solid "
                                   "alpha(currentColor, 0.3); }\n"
                                   "image { background-color: "
                                   "alpha(black, 0.15); }",
                                   -1, NULL);
  gtk_style_context_add_provider (gtk_widget_get_style_context (frame),
                                  GTK_STYLE_PROVIDER (css),
                                  GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  gtk_style_context_add_provider (gtk_widget_get_style_context (image),
                                  GTK_STYLE_PROVIDER (css),
                                  GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  g_object_unref (css);
  gtk_widget_set_halign (frame, GTK_ALIGN_CENTER);
  gtk_container_add (GTK_CONTAINER (frame), image);
  return frame;
}

/* Control and Advanced open one at a time: together they would take the
 * dialog past 700 px (a 768-px screen would hide OK) */
static void
on_section_opened (GObject *expander, GParamSpec *pspec, gpointer data)
{
  DialogState *st = data;
  GtkWidget   *other =
      (GtkWidget *) expander == st->control ? st->advanced : st->control;

  if (other && gtk_expander_get_expanded (GTK_EXPANDER (expander)))
    gtk_expander_set_expanded (GTK_EXPANDER (other), FALSE);
}

/* A section toggled: its contents shown or hidden with it; closed, the
 * dialog back to the height it needs (a GTK window grows with its content
 * but keeps its size when the content shrinks). */
static void
on_section_toggled (GObject *expander, GParamSpec *pspec, gpointer dialog)
{
  gint w, h;

  sync_section (GTK_WIDGET (expander));
  if (gtk_expander_get_expanded (GTK_EXPANDER (expander)))
    return;
  gtk_window_get_size (GTK_WINDOW (dialog), &w, &h);
  gtk_window_resize (GTK_WINDOW (dialog), w, 1);
}

static GtkWidget *
label_left (const gchar *text)
{
  GtkWidget *label = gtk_label_new_with_mnemonic (text);

  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  return label;
}

/* A label for messages that may hold paths and tensor names: wrapped at
 * words, and inside a word too long for a line (a long name must not widen
 * the dialog). */
static void
wrap_anywhere (GtkWidget *label, gint max_chars)
{
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_line_wrap_mode (GTK_LABEL (label), PANGO_WRAP_WORD_CHAR);
  gtk_label_set_max_width_chars (GTK_LABEL (label), max_chars);
}

/* The model row: the models found (with their family) and a file chooser
 * that opens in the model folder; under it what the model is. */
static void
add_model_widgets (DialogState *st,
                   GtkWidget   *grid)
{
  GtkFileFilter *filter;
  GtkWidget     *label, *row;
  gchar         *folder = NULL;
  GList         *l;

  label = label_left (_("Mo_del:"));
  gtk_grid_attach (GTK_GRID (grid), label, 0, 0, 1, 1);
  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_grid_attach (GTK_GRID (grid), row, 1, 0, 1, 1);

  st->model_combo = gtk_combo_box_text_new ();
  if (st->hooks.list_models)
    st->models = st->hooks.list_models (st->config, st->hooks.user);
  gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->model_combo),
                                  _("Default (the bundled demo model)"));
  for (l = st->models; l; l = l->next)
    gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (st->model_combo),
                                    ((GimpLdmModelEntry *) l->data)->label);
  gtk_widget_set_hexpand (st->model_combo, TRUE);
  gtk_box_pack_start (GTK_BOX (row), st->model_combo, TRUE, TRUE, 0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), st->model_combo);
  g_signal_connect (st->model_combo, "changed",
                    G_CALLBACK (on_model_combo_changed), st);

  /* the model argument accepts any path (a missing file is reported by the
   * plug-in, with its name), so its chooser is made here */
  st->model_button = gtk_file_chooser_button_new (_("Choose a model file"),
                                                  GTK_FILE_CHOOSER_ACTION_OPEN);
  /* as wide with a file's icon and name as with "(None)": picking one does
   * not widen the dialog */
  gtk_widget_set_size_request (st->model_button, 150, -1);
  gtk_widget_set_tooltip_text (st->model_button,
                               _("A model file (.safetensors) from anywhere"));
  gtk_file_chooser_button_set_width_chars (GTK_FILE_CHOOSER_BUTTON (st->model_button), 10);
  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("Safetensors models"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (st->model_button), filter);
  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("All files"));
  gtk_file_filter_add_pattern (filter, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (st->model_button), filter);
  if (st->hooks.models_folder)
    folder = st->hooks.models_folder (st->config, st->hooks.user);
  if (folder)
    gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (st->model_button),
                                         folder);
  g_free (folder);
  gtk_box_pack_start (GTK_BOX (row), st->model_button, FALSE, FALSE, 0);
  g_signal_connect (st->model_button, "file-set",
                    G_CALLBACK (on_model_file_set), st);

  st->model_info = label_left ("");
  wrap_anywhere (st->model_info, 44);
  gtk_grid_attach (GTK_GRID (grid), st->model_info, 1, 1, 1, 1);
}

/* Seed (0 .. 2^32-1: GimpProcedureDialog makes no widget for unsigned
 * arguments) and "Random" in one row. */
static GtkWidget *
add_seed_widgets (GimpProcedureDialog *pd,
                  GimpProcedureConfig *config,
                  GtkWidget           *grid)
{
  GtkWidget *label = label_left (_("Se_ed:"));
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  GtkWidget *spin = gimp_prop_spin_button_new (G_OBJECT (config), "seed",
                                               1.0, 1000.0, 0);
  GtkWidget *random = gimp_procedure_dialog_get_widget (pd, "random-seed",
                                                        GTK_TYPE_CHECK_BUTTON);

  gtk_grid_attach (GTK_GRID (grid), label, 0, 2, 1, 1);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), spin);
  gtk_entry_set_width_chars (GTK_ENTRY (spin), 11);
  gtk_box_pack_start (GTK_BOX (row), spin, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), random, FALSE, FALSE, 0);
  gtk_grid_attach (GTK_GRID (grid), row, 1, 2, 1, 1);
  g_object_bind_property (config, "random-seed", spin, "sensitive",
                          G_BINDING_SYNC_CREATE | G_BINDING_INVERT_BOOLEAN);
  return row;
}

/* ---- access keys on screen (LDM_DIALOG_ACCESS_KEYS=FILE, for the tests) --
 * Once the dialog is up it opens its sections one after the other (none,
 * Advanced, Control), appends for each the access keys of everything then
 * on screen as lines "SECTION KEY TEXT" to FILE (labels, buttons and
 * expanders through their GtkLabel; GIMP's spin scales draw their own
 * label), and cancels. GTK counts a key's target while it is mapped: a key
 * inside a closed section is marked HIDDEN (live, but nothing shows), and a
 * key that two lines of one section share is a clash (Alt+key then only
 * moves the focus between them). tests/gimp/ldm_keys.py reads the file. */
typedef struct
{
  GtkWidget *dialog;
  FILE      *out;
  gint       step;
} KeyReport;

static void
report_keys (GtkWidget *widget, gpointer data)
{
  KeyReport   *r = data;
  const gchar *text = NULL;
  gunichar     key = 0;
  const gchar *section[] = { "none", "advanced", "control" };

  if (! gtk_widget_get_mapped (widget))
    return;
  if (GTK_IS_LABEL (widget) &&
      gtk_label_get_mnemonic_keyval (GTK_LABEL (widget)) != GDK_KEY_VoidSymbol)
    {
      text = gtk_label_get_label (GTK_LABEL (widget));
      key = gdk_keyval_to_unicode (gdk_keyval_to_lower (
          gtk_label_get_mnemonic_keyval (GTK_LABEL (widget))));
    }
  else if (GIMP_IS_SPIN_SCALE (widget) &&
           gimp_spin_scale_get_mnemonic_keyval (GIMP_SPIN_SCALE (widget)) !=
               GDK_KEY_VoidSymbol)
    {
      text = gimp_spin_scale_get_label (GIMP_SPIN_SCALE (widget));
      key = gdk_keyval_to_unicode (gdk_keyval_to_lower (
          gimp_spin_scale_get_mnemonic_keyval (GIMP_SPIN_SCALE (widget))));
    }
  if (key)
    {
      gchar      k[8] = { 0 };
      GtkWidget *ex = gtk_widget_get_ancestor (widget, GTK_TYPE_EXPANDER);
      gboolean   hidden = FALSE;

      /* the key of something inside a closed section (its title aside) is
       * live where nothing shows: marked */
      for (; ex; ex = gtk_widget_get_parent (ex)
                          ? gtk_widget_get_ancestor (gtk_widget_get_parent (ex),
                                                     GTK_TYPE_EXPANDER)
                          : NULL)
        {
          GtkWidget *title = gtk_expander_get_label_widget (GTK_EXPANDER (ex));

          if (! gtk_expander_get_expanded (GTK_EXPANDER (ex)) && title &&
              widget != title && ! gtk_widget_is_ancestor (widget, title))
            hidden = TRUE;
        }
      g_unichar_to_utf8 (key, k);
      fprintf (r->out, "%s %s %s%s\n", section[r->step], k, text,
               hidden ? "  HIDDEN" : "");
    }
  if (GTK_IS_CONTAINER (widget))
    gtk_container_forall (GTK_CONTAINER (widget), report_keys, r);
}

static gboolean
report_step (gpointer data)
{
  KeyReport   *r = data;
  DialogState *st = get_state (r->dialog);

  fprintf (r->out, "# Advanced %s, Control %s\n",
           st->advanced &&
                   gtk_expander_get_expanded (GTK_EXPANDER (st->advanced))
               ? "open"
               : "closed",
           st->control && gtk_expander_get_expanded (GTK_EXPANDER (st->control))
               ? "open"
               : "closed");
  report_keys (r->dialog, r);
  fflush (r->out);
  r->step++;
  if (r->step == 1 && st->advanced)
    {
      gtk_expander_set_expanded (GTK_EXPANDER (st->advanced), TRUE);
      return G_SOURCE_CONTINUE;
    }
  if (r->step <= 2 && st->control)
    {
      r->step = 2;
      gtk_expander_set_expanded (GTK_EXPANDER (st->control), TRUE);
      return G_SOURCE_CONTINUE;
    }
  fclose (r->out);
  g_free (r);
  gtk_dialog_response (GTK_DIALOG (st->dialog), GTK_RESPONSE_CANCEL);
  return G_SOURCE_REMOVE;
}

static void
on_map_report_keys (GtkWidget *dialog, gpointer data)
{
  DialogState *st = get_state (dialog);
  const gchar *path = g_getenv ("LDM_DIALOG_ACCESS_KEYS");
  KeyReport   *r;
  FILE        *out = path ? fopen (path, "a") : NULL;

  if (! out)
    return;
  r = g_new0 (KeyReport, 1);
  r->dialog = dialog;
  r->out = out;
  fprintf (out, "dialog %s\n", gtk_window_get_title (GTK_WINDOW (dialog)));
  if (st->advanced)
    gtk_expander_set_expanded (GTK_EXPANDER (st->advanced), FALSE);
  if (st->control)
    gtk_expander_set_expanded (GTK_EXPANDER (st->control), FALSE);
  /* each state once GTK has mapped (or unmapped) the section's widgets */
  g_timeout_add (500, report_step, r);
}

GtkWidget *
gimp_ldm_dialog_new (GimpProcedure            *procedure,
                     GimpProcedureConfig      *config,
                     const gchar              *title,
                     const GimpLdmDialogHooks *hooks)
{
  GtkWidget           *dialog;
  GimpProcedureDialog *pd;
  DialogState         *st = g_new0 (DialogState, 1);
  GList               *ids = NULL, *adv = NULL;
  GtkWidget           *content, *grid, *label, *hbox, *vbox, *frame;
  GtkWidget           *left, *right;
  GtkWidget           *expander = NULL;

  st->config = config;
  st->facts.usable = TRUE;    /* no model argument (Regenerate): nothing to check */
  st->touched = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (hooks)
    st->hooks = *hooks;

  dialog = gimp_procedure_dialog_new (procedure, config, title);
  st->dialog = dialog;
  pd = GIMP_PROCEDURE_DIALOG (dialog);
  g_object_set_data_full (G_OBJECT (dialog), "ldm-dialog-state", st,
                          (GDestroyNotify) state_free);

  /* ---- everyday settings ---------------------------------------------- */
  if (has_prop (config, "prompt"))
    add_text_view (pd, &ids, "prompt", "prompt-label", _("_Prompt"));
  if (has_prop (config, "negative-prompt"))
    add_text_view (pd, &ids, "negative-prompt", "negative-label",
                   _("_Negative prompt"));
  if (has_prop (config, "loras"))
    {
      GtkWidget *box = gimp_procedure_dialog_fill_box (pd, "loras-box", "loras",
                                                       NULL);

      gtk_orientable_set_orientation (GTK_ORIENTABLE (box),
                                      GTK_ORIENTATION_HORIZONTAL);
      gtk_box_set_spacing (GTK_BOX (box), 6);
      st->lora_combo = gtk_combo_box_text_new ();
      gtk_widget_set_tooltip_text (st->lora_combo,
                                   _("The LoRAs in the model folders for this "
                                     "model's family"));
      gtk_box_pack_end (GTK_BOX (box), st->lora_combo, FALSE, FALSE, 0);
      gtk_widget_show (st->lora_combo);
      g_signal_connect (st->lora_combo, "changed", G_CALLBACK (on_lora_picked), st);
      /* Upscale: LoRAs act only on the refine stage, under Advanced */
      if (has_prop (config, "scale"))
        adv = g_list_append (adv, g_strdup ("loras-box"));
      else
        ids = g_list_append (ids, g_strdup ("loras-box"));
      st->embeddings = label_left ("");
      wrap_anywhere (st->embeddings, 60);
    }
  add_if (config, &ids, "strength");
  add_row (pd, config, &ids, "left-right-box", "left", "right", NULL);
  add_row (pd, config, &ids, "top-bottom-box", "top", "bottom", NULL);
  add_row (pd, config, &ids, "scale-box", "scale", "new-image", NULL);
  add_row (pd, config, &ids, "refine-box", "refine", "refine-strength", NULL);
  add_if (config, &ids, "new-seed");
  gimp_procedure_dialog_fill_list (pd, ids);
  g_list_free_full (ids, g_free);

  /* ---- the rest, in an expander that remembers its state -----------------
   * two settings to a row and the precision as a list, so that the dialog
   * stays within 700 px with Advanced open (one setting to a row and the
   * precision's three choices as radio buttons took Inpaint to 824 px) */
  add_row (pd, config, &adv, "steps-cfg-box", "steps", "cfg-scale", NULL);
  add_row (pd, config, &adv, "sampler-threads-box", "sampler", "threads", NULL);
  add_row (pd, config, &adv, "size-box", "width", "height", NULL);
  add_row (pd, config, &adv, "margin-work-box", "margin", "work-size", NULL);
  add_if (config, &adv, "refine-model");
  add_if (config, &adv, "noise-level");
  if (has_prop (config, "precision"))
    gimp_procedure_dialog_get_widget (pd, "precision", GTK_TYPE_COMBO_BOX);
  add_if (config, &adv, "precision");
  if (adv)
    {
      GtkWidget *box = gimp_procedure_dialog_fill_box_list (pd, "advanced-box",
                                                                 adv);

      expander = gtk_expander_new_with_mnemonic (_ ("Ad_vanced"));
      gtk_container_add (GTK_CONTAINER (expander), box);
      if (has_prop (config, "show-advanced"))
        g_object_bind_property (config, "show-advanced", expander, "expanded",
                                G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE);
      g_list_free_full (adv, g_free);
    }

  /* ---- Control: a layer steers the picture through a ControlNet ---------
   * the layer, ControlNet and preprocessor (with canny's thresholds) in a
   * grid, then one row of sliders: weight, start, end; the control image
   * sits in the preview column, beside these rows, while the section is
   * open (the dialog stays within 700 px with it open) */
  if (has_prop (config, "control-layer"))
    {
      GtkWidget *box, *cgrid, *combo, *couter;

      couter = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
      cgrid = gtk_grid_new ();
      gtk_grid_set_row_spacing (GTK_GRID (cgrid), 4);
      gtk_grid_set_column_spacing (GTK_GRID (cgrid), 8);
      gtk_widget_set_margin_start (couter, 12);
      gtk_box_pack_start (GTK_BOX (couter), cgrid, FALSE, FALSE, 0);

      label = label_left (_ ("Control la_yer:"));
      gtk_grid_attach (GTK_GRID (cgrid), label, 0, 0, 1, 1);
      st->control_layer = narrow_combo ();
      gtk_widget_set_tooltip_text (st->control_layer,
                                   _ ("A layer of this image (e.g. one you "
                                      "sketched on) whose drawing steers the "
                                      "picture; it is only read"));
      gtk_label_set_mnemonic_widget (GTK_LABEL (label), st->control_layer);
      gtk_grid_attach (GTK_GRID (cgrid), st->control_layer, 1, 0, 1, 1);
      st->control_ids = g_array_new (FALSE, FALSE, sizeof (gint));
      fill_control_layers (st);
      g_signal_connect (st->control_layer, "changed",
                        G_CALLBACK (on_control_layer_changed), st);

      label = label_left (_ ("ControlNet _model:"));
      gtk_grid_attach (GTK_GRID (cgrid), label, 0, 1, 1, 1);
      st->controlnet_combo = narrow_combo ();
      gtk_widget_set_tooltip_text (
          st->controlnet_combo, _ ("The ControlNets in the model folders for "
                                   "this model's family"));
      gtk_label_set_mnemonic_widget (GTK_LABEL (label), st->controlnet_combo);
      gtk_grid_attach (GTK_GRID (cgrid), st->controlnet_combo, 1, 1, 1, 1);
      g_signal_connect (st->controlnet_combo, "changed",
                        G_CALLBACK (on_controlnet_changed), st);

      label = label_left (_ ("Preprocess_ing:"));
      gtk_grid_attach (GTK_GRID (cgrid), label, 0, 2, 1, 1);
      /* the preprocessor and, beside it, canny's two thresholds (usable
       * only for canny) */
      box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
      gtk_grid_attach (GTK_GRID (cgrid), box, 1, 2, 1, 1);
      combo = gimp_prop_choice_combo_box_new (G_OBJECT (config),
                                              "control-preprocess");
      /* short enough to leave canny's thresholds room for their labels */
      ellipsize_cells (combo, 6, 14);
      gtk_widget_set_hexpand (combo, TRUE);
      gtk_label_set_mnemonic_widget (GTK_LABEL (label), combo);
      gtk_box_pack_start (GTK_BOX (box), combo, TRUE, TRUE, 0);
      if (has_prop (config, "control-canny-low") &&
          has_prop (config, "control-canny-high"))
        {
          st->canny_low =
              control_scale (config, "control-canny-low", _ ("Low"), 1, 10, 0);
          st->canny_high = control_scale (config, "control-canny-high",
                                          _ ("High"), 1, 10, 0);
          gtk_widget_set_size_request (st->canny_low, 112, -1);
          gtk_widget_set_size_request (st->canny_high, 112, -1);
          gtk_box_pack_start (GTK_BOX (box), st->canny_low, FALSE, FALSE, 0);
          gtk_box_pack_start (GTK_BOX (box), st->canny_high, FALSE, FALSE, 0);
          update_canny_sensitive (st);
        }

      st->control_message = label_left ("");
      wrap_anywhere (st->control_message, 40);
      /* shown only when there is something to say */
      gtk_widget_set_no_show_all (st->control_message, TRUE);
      gtk_grid_attach (GTK_GRID (cgrid), st->control_message, 1, 3, 1, 1);

      /* weight, start and end: three sliders in one row */
      box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
      gtk_box_set_homogeneous (GTK_BOX (box), TRUE);
      gtk_box_pack_start (GTK_BOX (couter), box, FALSE, FALSE, 0);
      gtk_box_pack_start (
          GTK_BOX (box),
          control_scale (config, "control-scale", _ ("_Weight"), 0.05, 0.25, 2),
          TRUE, TRUE, 0);
      gtk_box_pack_start (
          GTK_BOX (box),
          control_scale (config, "control-start", _ ("Start"), 0.05, 0.1, 2),
          TRUE, TRUE, 0);
      gtk_box_pack_start (
          GTK_BOX (box),
          control_scale (config, "control-end", _ ("End"), 0.05, 0.1, 2), TRUE,
          TRUE, 0);

      st->control = gtk_expander_new_with_mnemonic (_ ("Con_trol"));
      gtk_container_add (GTK_CONTAINER (st->control), couter);
      st->control_body = couter;
      if (has_prop (config, "show-control"))
        g_object_bind_property (config, "show-control", st->control, "expanded",
                                G_BINDING_BIDIRECTIONAL |
                                    G_BINDING_SYNC_CREATE);

      st->control_frame = gtk_frame_new (_ ("Control image"));
      gtk_widget_set_halign (st->control_frame, GTK_ALIGN_CENTER);
      st->control_preview = gtk_image_new ();
      gtk_widget_set_size_request (st->control_preview, CONTROL_PREVIEW_SIZE,
                                   CONTROL_PREVIEW_SIZE);
      gtk_container_add (GTK_CONTAINER (st->control_frame),
                         sunken (st->control_preview));
      gtk_widget_show_all (st->control_frame);
      gtk_widget_set_no_show_all (st->control_frame, TRUE);
      g_object_bind_property (st->control, "expanded", st->control_frame,
                              "visible", G_BINDING_SYNC_CREATE);
    }

  /* ---- extra widgets under the generated ones ---------------------------
   * the info line; then the settings (model, seed, Control, Advanced, the
   * estimate and progress at the bottom) beside the preview column */
  content = gtk_dialog_get_content_area (GTK_DIALOG (dialog));
  vbox = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  gtk_box_pack_start (GTK_BOX (content), vbox, FALSE, FALSE, 0);
  st->extra = vbox;

  st->info = label_left ("");
  wrap_anywhere (st->info, 60);
  gtk_label_set_selectable (GTK_LABEL (st->info), TRUE);
  gtk_widget_set_no_show_all (st->info, TRUE); /* shown with a text */
  gtk_box_pack_start (GTK_BOX (vbox), st->info, FALSE, FALSE, 0);

  hbox = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  gtk_box_pack_start (GTK_BOX (vbox), hbox, FALSE, FALSE, 0);
  left = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  gtk_box_pack_start (GTK_BOX (hbox), left, TRUE, TRUE, 0);
  right = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  gtk_box_pack_start (GTK_BOX (hbox), right, FALSE, FALSE, 0);

  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 4);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 8);
  gtk_box_pack_start (GTK_BOX (left), grid, FALSE, FALSE, 0);
  if (has_prop (config, "model"))
    add_model_widgets (st, grid);
  if (st->embeddings)
    gtk_grid_attach (GTK_GRID (grid), st->embeddings, 1, 3, 1, 1);
  if (has_prop (config, "seed") && has_prop (config, "random-seed"))
    st->seed_row = add_seed_widgets (pd, config, grid);
  if (st->control)
    {
      gtk_box_pack_start (GTK_BOX (left), st->control, FALSE, FALSE, 0);
      g_signal_connect (st->control, "notify::expanded",
                        G_CALLBACK (on_section_toggled), dialog);
    }
  if (expander)
    {
      gtk_box_pack_start (GTK_BOX (left), expander, FALSE, FALSE, 0);
      g_signal_connect (expander, "notify::expanded",
                        G_CALLBACK (on_section_toggled), dialog);
      st->advanced = expander;
    }
  if (st->control && st->advanced)
    {
      /* both remembered open: Control, the rarer, stays */
      if (gtk_expander_get_expanded (GTK_EXPANDER (st->control)))
        gtk_expander_set_expanded (GTK_EXPANDER (st->advanced), FALSE);
      g_signal_connect (st->control, "notify::expanded",
                        G_CALLBACK (on_section_opened), st);
      g_signal_connect (st->advanced, "notify::expanded",
                        G_CALLBACK (on_section_opened), st);
    }

  /* the estimate and the progress bar at the bottom of the column, level
   * with the preview's lower edge when the expanders are closed */
  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 6);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 8);
  gtk_box_pack_end (GTK_BOX (left), grid, FALSE, FALSE, 0);
  label = label_left (_("Estimated time:"));
  gtk_grid_attach (GTK_GRID (grid), label, 0, 0, 1, 1);
  st->estimate = label_left ("");
  gtk_label_set_line_wrap (GTK_LABEL (st->estimate), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (st->estimate), 30);
  gtk_widget_set_hexpand (st->estimate, TRUE); /* right after its label */
  gtk_grid_attach (GTK_GRID (grid), st->estimate, 1, 0, 1, 1);
  st->progress = gtk_progress_bar_new ();
  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (st->progress), TRUE);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (st->progress), _("Ready"));
  /* a long text (an error) is cut here, not widening the dialog; it is
   * shown in full under the bar (gimp_ldm_dialog_set_status) */
  gtk_progress_bar_set_ellipsize (GTK_PROGRESS_BAR (st->progress),
                                  PANGO_ELLIPSIZE_END);
  gtk_widget_set_hexpand (st->progress, TRUE);
  gtk_grid_attach (GTK_GRID (grid), st->progress, 0, 1, 2, 1);
  st->message = label_left ("");
  wrap_anywhere (st->message, 50);
  gtk_label_set_selectable (GTK_LABEL (st->message), TRUE);
  gtk_widget_set_no_show_all (st->message, TRUE);
  gtk_grid_attach (GTK_GRID (grid), st->message, 0, 2, 2, 1);
  if (st->control_body)
    {
      /* the column is as wide from the start as the Control section needs
       * (measured while its contents are shown, before the dialog maps and
       * a closed section hides them): opening it does not widen the dialog */
      gint min_w = 0;

      gtk_widget_show_all (st->control_body);
      gtk_widget_get_preferred_width (st->control_body, &min_w, NULL);
      gtk_widget_set_size_request (grid, min_w, -1);
    }

  frame = gtk_frame_new (_("Preview"));
  gtk_box_pack_start (GTK_BOX (right), frame, FALSE, FALSE, 0);
  st->preview = gtk_image_new ();
  gtk_widget_set_size_request (st->preview, PREVIEW_SIZE, PREVIEW_SIZE);
  gtk_container_add (GTK_CONTAINER (frame), sunken (st->preview));
  if (st->control_frame)
    gtk_box_pack_start (GTK_BOX (right), st->control_frame, FALSE, FALSE, 0);
  gtk_widget_show_all (vbox);

  /* disconnected when the dialog (which owns `st`) is destroyed */
  g_signal_connect (config, "notify", G_CALLBACK (on_config_notify), st);
  g_signal_connect (dialog, "destroy", G_CALLBACK (on_destroy_disconnect),
                    NULL);
  g_signal_connect (dialog, "map", G_CALLBACK (on_map_place), NULL);
  g_signal_connect (dialog, "map", G_CALLBACK (on_map_sections), NULL);
  if (g_getenv ("LDM_DIALOG_ACCESS_KEYS"))
    g_signal_connect (dialog, "map", G_CALLBACK (on_map_report_keys), NULL);

  update_model_info (st);
  update_controlnets (st);
  update_control_preview (st);
  update_estimate (st);
  return dialog;
}

gboolean
gimp_ldm_dialog_run (GtkWidget *dialog)
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
    {
      gtk_progress_bar_set_text (GTK_PROGRESS_BAR (st->progress),
                                 _("Cancelling…"));
      st->on_cancel (st->cancel_data);
    }
}

static gboolean
on_running_delete (GtkWidget *widget,
                   GdkEvent  *event,
                   gpointer   data)
{
  DialogState *st = data;

  if (! st->running)
    return FALSE;
  if (st->on_cancel)
    st->on_cancel (st->cancel_data);
  return TRUE;   /* keep the dialog until the run returns */
}

void
gimp_ldm_dialog_set_running (GtkWidget  *dialog,
                             gboolean    running,
                             void      (*on_cancel) (gpointer),
                             gpointer    data)
{
  DialogState *st = get_state (dialog);
  GtkWidget   *cancel;
  GList       *children, *l;

  if (! st)
    return;
  if (! g_object_get_data (G_OBJECT (dialog), "ldm-running-handlers"))
    {
      g_signal_connect (dialog, "response", G_CALLBACK (on_running_response), st);
      g_signal_connect (dialog, "delete-event", G_CALLBACK (on_running_delete), st);
      g_object_set_data (G_OBJECT (dialog), "ldm-running-handlers", st);
    }
  st->running = running;
  st->on_cancel = on_cancel;
  st->cancel_data = data;
  gtk_dialog_set_response_sensitive (GTK_DIALOG (dialog), GTK_RESPONSE_OK,
                                     ! running && st->facts.usable);
  /* freeze the settings; the button row (Cancel) and our box stay alive */
  cancel = gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog),
                                               GTK_RESPONSE_CANCEL);
  children = gtk_container_get_children (GTK_CONTAINER (gtk_dialog_get_content_area (GTK_DIALOG (dialog))));
  for (l = children; l; l = l->next)
    if (l->data != st->extra &&
        ! (cancel && gtk_widget_is_ancestor (cancel, GTK_WIDGET (l->data))))
      gtk_widget_set_sensitive (GTK_WIDGET (l->data), ! running);
  g_list_free (children);
  if (st->model_button)
    gtk_widget_set_sensitive (st->model_button, ! running);
  if (st->model_combo)
    gtk_widget_set_sensitive (st->model_combo, ! running);
  if (st->seed_row)
    gtk_widget_set_sensitive (st->seed_row, ! running);
  if (st->control)
    gtk_widget_set_sensitive (st->control, ! running);
  if (running)
    gtk_widget_show (dialog);
}

void
gimp_ldm_dialog_set_info (GtkWidget   *dialog,
                          const gchar *text)
{
  DialogState *st = get_state (dialog);

  if (st && st->info)
    {
      gtk_label_set_text (GTK_LABEL (st->info), text ? text : "");
      gtk_widget_set_visible (st->info, text && *text);
    }
}

void
gimp_ldm_dialog_set_status (GtkWidget   *dialog,
                            const gchar *text,
                            gdouble      fraction)
{
  DialogState *st = get_state (dialog);

  if (! st || ! st->progress)
    return;
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (st->progress), text);
  gtk_widget_set_tooltip_text (st->progress, text);
  if (st->message)
    {
      /* a final message (no fraction) too long for the bar: in full below */
      gboolean show = fraction < 0.0 && text && g_utf8_strlen (text, -1) > 40;

      gtk_label_set_text (GTK_LABEL (st->message), show ? text : "");
      gtk_widget_set_visible (st->message, show);
    }
  if (fraction >= 0.0)
    gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (st->progress),
                                   CLAMP (fraction, 0.0, 1.0));
}

void
gimp_ldm_dialog_set_preview (GtkWidget    *dialog,
                             const gfloat *pixels,
                             gint          width,
                             gint          height,
                             gint          channels,
                             gsize         stride)
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
    {
      const gfloat *row = (const gfloat *) ((const guchar *) pixels + y * stride);

      for (x = 0; x < width; x++)
        {
          const gfloat *s = row + (gsize) x * channels;
          gint          ch;

          for (ch = 0; ch < 3; ch++)
            {
              gfloat v = s[channels == 1 ? 0 : ch];

              dst[y * rs + x * 3 + ch] = (guchar) (CLAMP (v, 0.0f, 1.0f) * 255.0f + 0.5f);
            }
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
