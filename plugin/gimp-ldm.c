/* gimp-ldm.c: the GIMP 3 plug-in "gimp-ldm". Registers the procedures
 * plug-in-ldm-{inpaint,generate,refine,upscale,outpaint,regenerate} under
 * Filters ▸ Generative, turns their arguments (or a layer's recipe) into an
 * LdmSpec, shows the dialog in interactive mode and runs ldm_execute.
 */
#include "config.h"

#include <string.h>

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ldm-intl.h"
#include "ldm-engine.h"
#include "ldm-models.h"
#include "ldm-run.h"
#include "ldm-spec.h"
#include "ldm-dialog.h"

#define PLUG_IN_BINARY "gimp-ldm"
#define MENU_PATH      "<Image>/Filters/Generative"

typedef struct _GimpLdm      { GimpPlugIn parent_instance; } GimpLdm;
typedef struct _GimpLdmClass { GimpPlugInClass parent_class; } GimpLdmClass;

#define GIMP_LDM_TYPE (gimp_ldm_get_type ())
GType gimp_ldm_get_type (void) G_GNUC_CONST;

static GList          *ldm_query_procedures (GimpPlugIn           *plug_in);
static GimpProcedure  *ldm_create_procedure (GimpPlugIn           *plug_in,
                                             const gchar          *name);
static gboolean        ldm_set_i18n         (GimpPlugIn           *plug_in,
                                             const gchar          *name,
                                             gchar               **domain,
                                             gchar               **catalog_dir);
static GimpValueArray *ldm_run              (GimpProcedure        *procedure,
                                             GimpRunMode           run_mode,
                                             GimpImage            *image,
                                             GimpDrawable        **drawables,
                                             GimpProcedureConfig  *config,
                                             gpointer              run_data);

G_DEFINE_TYPE (GimpLdm, gimp_ldm, GIMP_TYPE_PLUG_IN)

/* GIMP_MAIN, with OpenBLAS set to this CPU's kernels first (ldm_blas_tune
 * may start the plug-in again, with the same arguments and pipes). */
int
main (int   argc,
      char *argv[])
{
  ldm_blas_tune (argv);
  return gimp_main (GIMP_LDM_TYPE, argc, argv);
}

static const gchar *sampler_names[] =
{
  "euler", "euler_a", "heun", "lms", "pndm", "dpmpp_2m", "dpmpp_2m_karras",
  "dpmpp_2m_sde", "dpmpp_2s_a", "ddim", "lcm", "unipc"
};

static void
gimp_ldm_class_init (GimpLdmClass *klass)
{
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS (klass);

  plug_in_class->query_procedures = ldm_query_procedures;
  plug_in_class->create_procedure = ldm_create_procedure;
  plug_in_class->set_i18n         = ldm_set_i18n;
}

static void
gimp_ldm_init (GimpLdm *self)
{
}

static gboolean
ldm_set_i18n (GimpPlugIn   *plug_in,
              const gchar  *name,
              gchar       **domain,
              gchar       **catalog_dir)
{
  /* catalogues live in <plug-in folder>/locale (GIMP's default) */
  *domain = g_strdup (GETTEXT_PACKAGE);
  return TRUE;
}

static GList *
ldm_query_procedures (GimpPlugIn *plug_in)
{
  GList *list = NULL;
  gint   i;

  for (i = 0; i < LDM_PROC_COUNT; i++)
    list = g_list_append (list, g_strdup (ldm_proc_name ((LdmProc) i)));
  return list;
}

static GimpChoice *
sampler_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();
  guint       i;

  for (i = 0; i < G_N_ELEMENTS (sampler_names); i++)
    gimp_choice_add (choice, sampler_names[i], (gint) i, sampler_names[i], NULL);
  return choice;
}

static GimpChoice *
precision_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();

  gimp_choice_add (choice, "f32", 0, _("f32 (the reference result)"), NULL);
  gimp_choice_add (choice, "bf16", 1,
                   _("bf16 (AVX512-BF16 CPUs; faster only on some)"),
                   NULL);
  return choice;
}

static void
add_common_arguments (GimpProcedure *procedure,
                      LdmProc        proc)
{
  gimp_procedure_add_string_argument (procedure, "prompt", _("_Prompt"),
                                      _("What the picture should show"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "negative-prompt",
                                      _("_Negative prompt"),
                                      _("What the picture should not show"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "steps", _("S_teps"),
                                   _("Number of denoising steps"),
                                   1, 150, proc == LDM_PROC_UPSCALE ? 20 : 20,
                                   G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "cfg-scale", _("C_FG scale"),
                                      _("Classifier-free guidance scale: how "
                                        "closely to follow the prompt"),
                                      0.0, 30.0,
                                      proc == LDM_PROC_UPSCALE ? 9.0 : 7.0,
                                      G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "seed", _("Se_ed"),
                                   _("Seed of the initial noise (the seed "
                                     "used is stored here when random-seed "
                                     "is on)"),
                                   0, G_MAXINT, 0, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_argument (procedure, "random-seed",
                                       _("R_andom"),
                                       _("Pick a new random seed on every run"),
                                       TRUE, G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "sampler", _("Sa_mpler"),
                                      _("Sampling method"),
                                      sampler_choice (),
                                      proc == LDM_PROC_UPSCALE ? "ddim"
                                                               : "euler_a",
                                      G_PARAM_READWRITE);
  gimp_procedure_add_file_argument (procedure, "model", _("Mo_del"),
                                    _("Model file (.safetensors) or diffusers "
                                      "folder; empty: the bundled demo model"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY, TRUE, NULL,
                                    G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "threads", _("Threads"),
                                   _("CPU threads (0: one per core)"),
                                   0, 256, 0, G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "precision", _("Arit_hmetic"),
                                      _("Matrix products in f32 or with bf16 "
                                        "operands (faster on CPUs with "
                                        "AVX512-BF16, f32 on others; pixels "
                                        "differ slightly)"),
                                      precision_choice (), "f32",
                                      G_PARAM_READWRITE);
  if (proc != LDM_PROC_UPSCALE)
    gimp_procedure_add_int_argument (procedure, "work-size", _("Wor_k size"),
                                     _("Side in pixels of the square area the "
                                       "model works at (rounded to 64; 0: the "
                                       "model's native size)"),
                                     0, 2048, 0, G_PARAM_READWRITE);
  gimp_procedure_add_string_aux_argument (procedure, "model-folders",
                                          _("Model folders"),
                                          _("Folders searched for models, "
                                            "separated by ':'"),
                                          "", G_PARAM_READWRITE);
}

static GimpProcedure *
ldm_create_procedure (GimpPlugIn  *plug_in,
                      const gchar *name)
{
  GimpProcedure *procedure;
  LdmProc        proc = ldm_proc_from_name (name);
  const gchar   *label = NULL, *blurb = NULL, *help = NULL;

  if (proc >= LDM_PROC_COUNT)
    return NULL;

  procedure = gimp_image_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                        ldm_run, GINT_TO_POINTER (proc), NULL);
  gimp_procedure_set_image_types (procedure, "RGB*, GRAY*");
  gimp_procedure_set_sensitivity_mask (procedure,
                                       proc == LDM_PROC_GENERATE
                                       ? GIMP_PROCEDURE_SENSITIVE_DRAWABLE |
                                         GIMP_PROCEDURE_SENSITIVE_DRAWABLES |
                                         GIMP_PROCEDURE_SENSITIVE_NO_DRAWABLES
                                       : GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
  gimp_procedure_set_attribution (procedure, "gimp-ldm authors",
                                  "gimp-ldm authors", "2026");

  switch (proc)
    {
    case LDM_PROC_INPAINT:
      label = _("_Inpaint Selection...");
      blurb = _("Repaint the selected area from a prompt");
      help  = _("Repaints the selection of the active layer with a latent "
                "diffusion model and adds the result as a new layer masked by "
                "the selection. Works on the selection's bounds plus a context "
                "margin, scaled to the model's size and back.");
      add_common_arguments (procedure, proc);
      gimp_procedure_add_double_argument (procedure, "strength",
                                          _("Stren_gth"),
                                          _("Denoising strength (1: ignore "
                                            "the original content)"),
                                          0.0, 1.0, 1.0, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "margin",
                                       _("Conte_xt margin"),
                                       _("Pixels around the selection given "
                                         "to the model as context"),
                                       0, 1024, 32, G_PARAM_READWRITE);
      break;

    case LDM_PROC_GENERATE:
      label = _("_Generate Layer...");
      blurb = _("Generate a new layer from a prompt");
      help  = _("Generates a picture from a text prompt and adds it as a new "
                "layer, at the image size or the given size.");
      add_common_arguments (procedure, proc);
      gimp_procedure_add_int_argument (procedure, "width", _("_Width"),
                                       _("Layer width (0: image width)"),
                                       0, GIMP_MAX_IMAGE_SIZE, 0,
                                       G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "height", _("Hei_ght"),
                                       _("Layer height (0: image height)"),
                                       0, GIMP_MAX_IMAGE_SIZE, 0,
                                       G_PARAM_READWRITE);
      break;

    case LDM_PROC_REFINE:
      label = _("_Refine Layer...");
      blurb = _("Rework the active layer (or selection) from a prompt");
      help  = _("Image-to-image: re-noises the active layer, or the selected "
                "part of it, by the strength and denoises it towards the "
                "prompt. The result is a new layer (masked by the selection "
                "when there is one).");
      add_common_arguments (procedure, proc);
      gimp_procedure_add_double_argument (procedure, "strength",
                                          _("Stren_gth"),
                                          _("How much to change (0: nothing, "
                                            "1: everything)"),
                                          0.0, 1.0, 0.5, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "margin",
                                       _("Conte_xt margin"),
                                       _("Pixels around the selection given "
                                         "to the model as context"),
                                       0, 1024, 32, G_PARAM_READWRITE);
      break;

    case LDM_PROC_UPSCALE:
      label = _("_Upscale Layer ×4...");
      blurb = _("Upscale the active layer four times with a diffusion model");
      help  = _("Runs the ×4 super-resolution model on the active layer, in "
                "tiles, into a new image or a new layer four times as large.");
      add_common_arguments (procedure, proc);
      gimp_procedure_add_int_argument (procedure, "noise-level",
                                       _("Noise le_vel"),
                                       _("Noise added to the low-resolution "
                                         "input (higher: more invented "
                                         "detail)"),
                                       0, 350, 20, G_PARAM_READWRITE);
      gimp_procedure_add_boolean_argument (procedure, "new-image",
                                           _("Ne_w image"),
                                           _("Put the result in a new image "
                                             "(else a new layer in this one)"),
                                           TRUE, G_PARAM_READWRITE);
      break;

    case LDM_PROC_OUTPAINT:
      label = _("_Expand Canvas...");
      blurb = _("Grow the canvas and fill the new area from a prompt");
      help  = _("Adds the given number of pixels on each side of the canvas "
                "and fills the new area around the active layer with a new "
                "layer that continues the picture.");
      add_common_arguments (procedure, proc);
      gimp_procedure_add_int_argument (procedure, "left", _("Left"),
                                       _("Pixels to add on the left"),
                                       0, 4096, 0, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "top", _("Top"),
                                       _("Pixels to add on the top"),
                                       0, 4096, 0, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "right", _("Ri_ght"),
                                       _("Pixels to add on the right"),
                                       0, 4096, 128, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "bottom", _("_Bottom"),
                                       _("Pixels to add on the bottom"),
                                       0, 4096, 0, G_PARAM_READWRITE);
      break;

    case LDM_PROC_REGENERATE:
      label = _("Re_generate Layer");
      blurb = _("Run a generated layer's recipe again");
      help  = _("Reads the recipe stored on a layer made by gimp-ldm and runs "
                "it again (same model, prompt, settings and seed, or a new "
                "seed), on the layer it was made from and the current "
                "selection.");
      gimp_procedure_add_boolean_argument (procedure, "new-seed",
                                           _("Ne_w seed"),
                                           _("Use a new random seed instead "
                                             "of the recipe's"),
                                           FALSE, G_PARAM_READWRITE);
      gimp_procedure_add_string_aux_argument (procedure, "model-folders",
                                              _("Model folders"),
                                              _("Folders searched for models, "
                                                "separated by ':'"),
                                              "", G_PARAM_READWRITE);
      break;

    default:
      break;
    }

  gimp_procedure_set_menu_label (procedure, label);
  gimp_procedure_add_menu_path (procedure, MENU_PATH);
  gimp_procedure_set_documentation (procedure, blurb, help, name);
  gimp_procedure_add_layer_return_value (procedure, "layer", _("Layer"),
                                         _("The new layer"), FALSE,
                                         G_PARAM_READWRITE);
  return procedure;
}

/* ---- dialog hooks (the only place the dialog meets the engine) ---------- */

static gchar *dialog_model_folders = NULL;   /* the configured search path */

static gchar *
hook_describe_model (const gchar *path,
                     gint        *native,
                     gpointer     user)
{
  GError *error = NULL;
  gchar  *found = NULL;
  gchar  *text, *base;

  if (! path)
    {
      LdmProc      proc = GPOINTER_TO_INT (user);
      const gchar *name = ldm_proc_default_model (proc);

      found = ldm_models_find (dialog_model_folders, name);
      if (! found)
        return g_strdup_printf (_("Default model %s: not found in the model "
                                  "folders"), name);
      path = found;
    }
  text = ldm_run_describe_model (path, native, &error);
  if (text)
    {
      gchar *tmp = text;

      base = g_path_get_basename (path);
      text = g_strdup_printf ("%s: %s", base, tmp);
      g_free (base);
      g_free (tmp);
    }
  g_free (found);

  if (! text)
    {
      text = g_strdup_printf (_("Cannot use this model: %s"), error->message);
      g_clear_error (&error);
    }
  return text;
}

static gchar *
hook_estimate (GimpProcedureConfig *config,
               gint                 native,
               gpointer             user)
{
  LdmProc  proc = GPOINTER_TO_INT (user);
  gdouble  speed = ldm_speed_get ();
  gint     steps = 20;
  gint     side = native > 0 ? native : 512;
  gdouble  mp = (gdouble) side * side / 1e6;
  gdouble  s;

  if (g_object_class_find_property (G_OBJECT_GET_CLASS (config), "steps"))
    g_object_get (config, "steps", &steps, NULL);
  if (speed <= 0.0)
    return g_strdup (_("unknown until the first run on this computer"));
  s = speed * steps * mp;
  if (proc == LDM_PROC_REFINE || proc == LDM_PROC_INPAINT)
    {
      gdouble strength = 1.0;

      g_object_get (config, "strength", &strength, NULL);
      s *= MAX (strength, 0.05);
    }
  if (s < 60.0)
    return g_strdup_printf (_("about %.0f s (%d steps at %d × %d)"),
                            s, steps, side, side);
  return g_strdup_printf (_("about %.1f min (%d steps at %d × %d)"),
                          s / 60.0, steps, side, side);
}

static GList *
hook_list_models (GimpProcedureConfig *config,
                  gpointer             user)
{
  gchar *folders = NULL;
  GList *list;

  g_object_get (config, "model-folders", &folders, NULL);
  list = ldm_models_list (folders);
  g_free (folders);
  return list;
}

/* ---- run-time UI glue -------------------------------------------------- */

static void
ui_preview (gpointer         user,
            const LdmPixels *rgb)
{
  ldm_dialog_set_preview (GTK_WIDGET (user), rgb->data, rgb->w, rgb->h, rgb->c);
}

static void
ui_status (gpointer     user,
           const gchar *text,
           gdouble      fraction)
{
  ldm_dialog_set_status (GTK_WIDGET (user), text, fraction);
}

static void
on_dialog_cancel (gpointer data)
{
  ldm_run_cancel_current ();
}

static const gchar *
dialog_title (LdmProc proc)
{
  switch (proc)
    {
    case LDM_PROC_INPAINT:    return _("Inpaint Selection");
    case LDM_PROC_GENERATE:   return _("Generate Layer");
    case LDM_PROC_REFINE:     return _("Refine Layer");
    case LDM_PROC_UPSCALE:    return _("Upscale Layer ×4");
    case LDM_PROC_OUTPAINT:   return _("Expand Canvas");
    case LDM_PROC_REGENERATE: return _("Regenerate Layer");
    default:                  return "gimp-ldm";
    }
}

static GimpValueArray *
ldm_run (GimpProcedure        *procedure,
         GimpRunMode           run_mode,
         GimpImage            *image,
         GimpDrawable        **drawables,
         GimpProcedureConfig  *config,
         gpointer              run_data)
{
  LdmProc         proc = GPOINTER_TO_INT (run_data);
  GimpDrawable   *drawable = NULL;
  GtkWidget      *dialog = NULL;
  GimpLayer      *layer = NULL;
  GError         *error = NULL;
  gchar          *folders = NULL;
  LdmSpec         spec;
  LdmRunUi        ui = { NULL, NULL, NULL, FALSE };
  gint            n_drawables;
  GimpValueArray *ret;

  n_drawables = drawables
    ? (gint) gimp_core_object_array_get_length ((GObject **) drawables) : 0;
  if (n_drawables > 0)
    drawable = drawables[0];
  if (proc != LDM_PROC_GENERATE && n_drawables != 1)
    {
      g_set_error (&error, GIMP_PLUG_IN_ERROR, 0,
                   _("Procedure '%s' works with exactly one layer."),
                   ldm_proc_name (proc));
      return gimp_procedure_new_return_values (procedure,
                                               GIMP_PDB_CALLING_ERROR, error);
    }

  ldm_spec_init (&spec, proc);

  if (proc == LDM_PROC_REGENERATE)
    {
      GimpParasite *p;
      gboolean      new_seed = FALSE;

      if (! GIMP_IS_LAYER (drawable) ||
          ! (p = gimp_item_get_parasite (GIMP_ITEM (drawable),
                                         LDM_RECIPE_PARASITE)))
        {
          g_set_error_literal (&error, GIMP_PLUG_IN_ERROR, 0,
                               _("The active layer has no gimp-ldm recipe."));
          ldm_spec_clear (&spec);
          return gimp_procedure_new_return_values (procedure,
                                                   GIMP_PDB_EXECUTION_ERROR,
                                                   error);
        }
      else
        {
          guint32      n = 0;
          const gchar *data = gimp_parasite_get_data (p, &n);
          gchar       *text = g_strndup (data, n);
          gboolean     ok = ldm_spec_from_recipe (&spec, text, &error);

          g_free (text);
          gimp_parasite_free (p);
          if (! ok)
            {
              ldm_spec_clear (&spec);
              return gimp_procedure_new_return_values (procedure,
                                                       GIMP_PDB_EXECUTION_ERROR,
                                                       error);
            }
        }
      g_object_get (config, "new-seed", &new_seed, NULL);
      spec.random_seed = new_seed;
      /* the source layer the recipe was made from, when it still exists */
      if (spec.src_tattoo > 0)
        {
          GimpItem *src = GIMP_ITEM (gimp_image_get_layer_by_tattoo (image,
                                                                     spec.src_tattoo));
          if (src && GIMP_IS_DRAWABLE (src))
            drawable = GIMP_DRAWABLE (src);
          else if (spec.proc != LDM_PROC_GENERATE)
            {
              g_set_error_literal (&error, GIMP_PLUG_IN_ERROR, 0,
                                   _("The layer this one was made from no "
                                     "longer exists."));
              ldm_spec_clear (&spec);
              return gimp_procedure_new_return_values (procedure,
                                                       GIMP_PDB_EXECUTION_ERROR,
                                                       error);
            }
        }
    }

  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      LdmDialogHooks hooks = { hook_describe_model, hook_estimate,
                               hook_list_models, GINT_TO_POINTER (proc) };

      gimp_ui_init (PLUG_IN_BINARY);
      g_object_get (config, "model-folders", &dialog_model_folders, NULL);
      dialog = ldm_dialog_new (procedure, config, dialog_title (proc), &hooks);
      if (proc == LDM_PROC_REGENERATE)
        {
          gchar *base = spec.model_path ? g_path_get_basename (spec.model_path)
                                        : g_strdup ("-");
          /* TRANSLATORS: summary of the recipe regenerate will run */
          gchar *info = g_strdup_printf (_("%s\nPrompt: %s\nModel: %s · "
                                           "%d steps · CFG %.1f · %s · seed %d"),
                                         ldm_proc_name (spec.proc), spec.prompt,
                                         base, spec.steps, spec.cfg_scale,
                                         spec.sampler, spec.seed);
          ldm_dialog_set_info (dialog, info);
          g_free (info);
          g_free (base);
        }
      if (! ldm_dialog_run (dialog))
        {
          gtk_widget_destroy (dialog);
          ldm_spec_clear (&spec);
          return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL,
                                                   NULL);
        }
      ldm_dialog_set_running (dialog, on_dialog_cancel, NULL);
      ui.preview = ui_preview;
      ui.status = ui_status;
      ui.user = dialog;
      ui.interactive = TRUE;
    }

  if (proc == LDM_PROC_REGENERATE)
    {
      gboolean new_seed = FALSE;

      g_object_get (config, "new-seed", &new_seed, NULL);
      spec.random_seed = new_seed;
    }
  else
    {
      ldm_spec_from_config (&spec, config);
    }
  g_object_get (config, "model-folders", &folders, NULL);

  layer = ldm_execute (&spec, image, drawable, folders, &ui, &error);
  g_free (folders);

  if (dialog)
    gtk_widget_destroy (dialog);

  if (! layer)
    {
      ldm_spec_clear (&spec);
      if (g_error_matches (error, GIMP_PLUG_IN_ERROR, LDM_RUN_ERROR_CANCELLED))
        {
          g_clear_error (&error);
          return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL,
                                                   NULL);
        }
      return gimp_procedure_new_return_values (procedure,
                                               GIMP_PDB_EXECUTION_ERROR, error);
    }

  /* show the seed used in the dialog next time */
  if (proc != LDM_PROC_REGENERATE && spec.random_seed)
    g_object_set (config, "seed", spec.seed, NULL);
  ldm_spec_clear (&spec);

  ret = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
  GIMP_VALUES_SET_LAYER (ret, 1, layer);
  return ret;
}
