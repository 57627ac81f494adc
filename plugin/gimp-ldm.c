/* gimp-ldm.c: the GIMP 3 plug-in "gimp-ldm". Registers the procedures
 * plug-in-ldm-{inpaint,generate,refine,upscale,outpaint,regenerate} under
 * Filters ▸ Generative, turns their arguments (or a layer's recipe) into an
 * GimpLdmSpec, checks the inputs, shows the dialog in interactive mode and
 * runs gimp_ldm_execute (again after a failed or cancelled run, with the
 * values kept).
 */
#include "config.h"

#include <string.h>

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ldm-intl.h"
#include "ldm-engine.h"
#include "ldm-live.h"
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

static GList          *gimp_ldm_query_procedures (GimpPlugIn           *plug_in);
static GimpProcedure  *gimp_ldm_create_procedure (GimpPlugIn           *plug_in,
                                             const gchar          *name);
static gboolean        gimp_ldm_set_i18n         (GimpPlugIn           *plug_in,
                                             const gchar          *name,
                                             gchar               **domain,
                                             gchar               **catalog_dir);
static GimpValueArray *gimp_ldm_run              (GimpProcedure        *procedure,
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

  plug_in_class->query_procedures = gimp_ldm_query_procedures;
  plug_in_class->create_procedure = gimp_ldm_create_procedure;
  plug_in_class->set_i18n         = gimp_ldm_set_i18n;
}

static void
gimp_ldm_init (GimpLdm *self)
{
}

static gboolean
gimp_ldm_set_i18n (GimpPlugIn   *plug_in,
              const gchar  *name,
              gchar       **domain,
              gchar       **catalog_dir)
{
  /* catalogues live in <plug-in folder>/locale (GIMP's default) */
  *domain = g_strdup (GETTEXT_PACKAGE);
  return TRUE;
}

static GList *
gimp_ldm_query_procedures (GimpPlugIn *plug_in)
{
  GList *list = NULL;
  gint   i;

  for (i = 0; i < GIMP_LDM_PROC_COUNT; i++)
    list = g_list_append (list, g_strdup (gimp_ldm_proc_name ((GimpLdmProc) i)));
  list = g_list_append (list, g_strdup (GIMP_LDM_LIVE_PROC));
  return list;
}

static GimpChoice *
sampler_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();
  guint       i;

  gimp_choice_add (choice, GIMP_LDM_SAMPLER_DEFAULT, -1,
                   _("The model's recommendation"), NULL);
  /* the labels AUTOMATIC1111 shows; the nicks are the engine's names */
  for (i = 0; i < G_N_ELEMENTS (sampler_names); i++)
    {
      const gchar *label = ldm_sampler_a1111_name (sampler_names[i]);

      gimp_choice_add (choice, sampler_names[i], (gint) i,
                       label ? label : sampler_names[i], NULL);
    }
  return choice;
}

static GimpChoice *
scale_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();

  gimp_choice_add (choice, "model", 0, _("The model's"), NULL);
  gimp_choice_add (choice, "x2", 2, "×2", NULL);
  gimp_choice_add (choice, "x3", 3, "×3", NULL);
  gimp_choice_add (choice, "x4", 4, "×4", NULL);
  return choice;
}

static GimpChoice *
precision_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();

  gimp_choice_add (choice, "auto", 2,
                   _ ("auto (bf16 where this CPU runs it much faster)"), NULL);
  gimp_choice_add (choice, "f32", 0, _("f32 (the reference result)"), NULL);
  gimp_choice_add (choice, "bf16", 1,
                   _ ("bf16 (AMX or AVX512-BF16 CPUs; faster only on some)"),
                   NULL);
  return choice;
}

/* The nicks are the engine's preprocessor names (ldm_preprocess_parse). */
static GimpChoice *
preprocess_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();

  gimp_choice_add (choice, "none", 0, _ ("None (the layer as drawn)"),
                   _ ("The layer is the control image: a depth map, a pose, "
                      "white lines on black"));
  gimp_choice_add (choice, "invert", 1, _ ("Invert (dark lines on white)"),
                   _ ("Dark lines on white become white lines on black"));
  gimp_choice_add (choice, "scribble", 2, _ ("Scribble (a sketch)"),
                   _ ("Everything darker than mid grey becomes a white line "
                      "on black"));
  gimp_choice_add (choice, "canny", 3, _ ("Canny edges"),
                   _ ("The edges of the layer's picture, found with the "
                      "Canny low and high thresholds"));
  return choice;
}

/* Generate, Refine and Inpaint: a layer of the image steers the picture
 * through a ControlNet. */
static void
add_control_arguments (GimpProcedure *procedure)
{
  gimp_procedure_add_layer_argument (procedure, "control-layer",
                                     _ ("Control la_yer"),
                                     _ ("A layer of this image whose drawing "
                                        "steers the picture through the "
                                        "ControlNet (read over the area "
                                        "worked on, never changed); none: no "
                                        "ControlNet"),
                                     TRUE, G_PARAM_READWRITE);
  gimp_procedure_add_file_argument (procedure, "controlnet", _ ("Cont_rolNet"),
                                    _ ("ControlNet model (.safetensors or "
                                       "diffusers folder) of the checkpoint's "
                                       "family"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY, TRUE, NULL,
                                    G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (
      procedure, "control-preprocess", _ ("Pre_processor"),
      _ ("How the control layer becomes the "
         "control image"),
      preprocess_choice (), "scribble", G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "control-scale",
                                      _ ("Control _weight"),
                                      _ ("How strongly the control image "
                                         "steers (AUTOMATIC1111's Control "
                                         "Weight)"),
                                      0.0, 2.0, 1.0, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "control-start",
                                      _ ("Control _start"),
                                      _ ("Fraction of the steps after which "
                                         "the control starts"),
                                      0.0, 1.0, 0.0, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "control-end",
                                      _ ("Control e_nd"),
                                      _ ("Fraction of the steps after which "
                                         "the control stops"),
                                      0.0, 1.0, 1.0, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "control-canny-low",
                                   _ ("Canny _low"),
                                   _ ("Canny edges: the lower threshold "
                                      "(weaker edges that touch a strong one "
                                      "are kept; AUTOMATIC1111's Threshold "
                                      "A)"),
                                   1, 255, 100, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "control-canny-high",
                                   _ ("Canny _high"),
                                   _ ("Canny edges: the upper threshold "
                                      "(stronger edges are always kept; not "
                                      "below the low one; AUTOMATIC1111's "
                                      "Threshold B)"),
                                   1, 255, 200, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_aux_argument (
      procedure, "show-control", _ ("Control"), _ ("Show the control settings"),
      FALSE, G_PARAM_READWRITE);
}

static void
add_common_arguments (GimpProcedure *procedure,
                      GimpLdmProc        proc)
{
  gimp_procedure_add_string_argument (procedure, "prompt", _("_Prompt"),
                                      _("What the picture should show"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "negative-prompt",
                                      _("_Negative prompt"),
                                      _("What the picture should not show"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "loras", _ ("LoRAs"),
                                      _ ("LoRAs to apply, as NAME:MULT "
                                         "separated by commas (NAME: the file "
                                         "name without .safetensors in the "
                                         "model folders, or a path; MULT 1 "
                                         "when left out); <lora:NAME:MULT> in "
                                         "the prompt works too"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "steps", _ ("Steps"),
                                   _ ("Number of denoising steps (0: what the "
                                      "model recommends, else 20)"),
                                   0, 150, 0, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "cfg-scale", _("C_FG scale"),
                                      _("Classifier-free guidance scale: how "
                                        "closely to follow the prompt (0: what "
                                        "the model recommends)"),
                                      0.0, 30.0, 0.0, G_PARAM_READWRITE);
  gimp_procedure_add_uint_argument (procedure, "seed", _("Se_ed"),
                                    _("Seed of the initial noise, 0 to "
                                      "4294967295 (the seed used is stored "
                                      "here when random-seed is on)"),
                                    0, G_MAXUINT32, 0, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_argument (procedure, "random-seed",
                                       _("R_andom"),
                                       _("Pick a new random seed on every run"),
                                       TRUE, G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "sampler", _("Sa_mpler"),
                                      _("Sampling method"),
                                      sampler_choice (),
                                      GIMP_LDM_SAMPLER_DEFAULT,
                                      G_PARAM_READWRITE);
  gimp_procedure_add_file_argument (procedure, "model", _("Mo_del"),
                                    _("Model file (.safetensors) or diffusers "
                                      "folder; empty: the bundled demo model"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY, TRUE, NULL,
                                    G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "threads", _("Threads"),
                                   _("CPU threads (0: one per core)"),
                                   0, 256, 0, G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "precision", _ ("Precision"),
                                      _ ("Matrix products in f32 or with bf16 "
                                         "operands (pixels differ slightly); "
                                         "auto: bf16 where this CPU's bf16 "
                                         "peak is at least 1.8x its f32 peak "
                                         "(measured once), else f32"),
                                      precision_choice (), "auto",
                                      G_PARAM_READWRITE);
  if (proc != GIMP_LDM_PROC_UPSCALE)
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
  gimp_procedure_add_boolean_aux_argument (procedure, "show-advanced",
                                           _("Advanced"),
                                           _("Show the advanced settings"),
                                           FALSE, G_PARAM_READWRITE);
}

static GimpProcedure *
gimp_ldm_create_procedure (GimpPlugIn  *plug_in,
                      const gchar *name)
{
  GimpProcedure *procedure;
  GimpLdmProc        proc = gimp_ldm_proc_from_name (name);
  const gchar   *label = NULL, *blurb = NULL, *help = NULL;

  if (! strcmp (name, GIMP_LDM_LIVE_PROC))
    return gimp_ldm_live_create_procedure (plug_in);
  if (proc >= GIMP_LDM_PROC_COUNT)
    return NULL;

  procedure = gimp_image_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                        gimp_ldm_run, GINT_TO_POINTER (proc), NULL);
  gimp_procedure_set_image_types (procedure, "RGB*, GRAY*");
  gimp_procedure_set_sensitivity_mask (procedure,
                                       proc == GIMP_LDM_PROC_GENERATE
                                       ? GIMP_PROCEDURE_SENSITIVE_DRAWABLE |
                                         GIMP_PROCEDURE_SENSITIVE_DRAWABLES |
                                         GIMP_PROCEDURE_SENSITIVE_NO_DRAWABLES
                                       : GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
  gimp_procedure_set_attribution (procedure, "gimp-ldm authors",
                                  "gimp-ldm authors", "2026");

  switch (proc)
    {
    case GIMP_LDM_PROC_INPAINT:
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
      add_control_arguments (procedure);
      break;

    case GIMP_LDM_PROC_GENERATE:
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
      add_control_arguments (procedure);
      break;

    case GIMP_LDM_PROC_REFINE:
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
      add_control_arguments (procedure);
      break;

    case GIMP_LDM_PROC_UPSCALE:
      label = _("_Upscale Layer...");
      blurb = _("Upscale the active layer with a super-resolution model");
      help  = _("Upscales the active layer with a fast ESRGAN-class model "
                "(Real-ESRGAN, 4x-UltraSharp, ...; seconds) or the SD ×4 "
                "diffusion upscaler (minutes, guided by the prompt), in tiles, "
                "into a new image or a new layer. Optionally the upscaled "
                "picture is then refined by a checkpoint at low strength, "
                "tile by tile.");
      add_common_arguments (procedure, proc);
      gimp_procedure_add_choice_argument (procedure, "scale", _ ("Scale"),
                                          _ ("Output size: the model's "
                                             "factor, or less (the result "
                                             "scaled down)"),
                                          scale_choice (), "model",
                                          G_PARAM_READWRITE);
      gimp_procedure_add_boolean_argument (procedure, "refine", _ ("Refine"),
                                           _ ("Then redraw the upscaled "
                                              "picture with a checkpoint at "
                                              "low strength, tile by tile "
                                              "(fast upscalers only)"),
                                           FALSE, G_PARAM_READWRITE);
      gimp_procedure_add_double_argument (procedure, "refine-strength",
                                          _("Refine stren_gth"),
                                          _("How much the refining redraws "
                                            "(0.2-0.4 adds detail, keeps the "
                                            "picture)"),
                                          0.0, 1.0, 0.3, G_PARAM_READWRITE);
      gimp_procedure_add_file_argument (
          procedure, "refine-model", _ ("Refine model"),
          _ ("The checkpoint that refines; "
             "empty: the bundled demo model"),
          GIMP_FILE_CHOOSER_ACTION_OPEN, TRUE, NULL, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "noise-level",
                                       _ ("No_ise level"),
                                       _ ("Noise added to the low-resolution "
                                          "input (higher: more invented "
                                          "detail)"),
                                       0, 350, 20, G_PARAM_READWRITE);
      gimp_procedure_add_boolean_argument (procedure, "new-image",
                                           _("Ne_w image"),
                                           _("Put the result in a new image "
                                             "(else a new layer in this one)"),
                                           TRUE, G_PARAM_READWRITE);
      break;

    case GIMP_LDM_PROC_OUTPAINT:
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

    case GIMP_LDM_PROC_REGENERATE:
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

typedef struct
{
  GimpLdmProc     proc;
  GimpImage      *image;
  GimpDrawable   *drawable;
  ldm_model_info  info;        /* the model the dialog shows */
  gboolean        info_ok;
} DialogCtx;

static gchar *
config_folders (GimpProcedureConfig *config)
{
  gchar *folders = NULL;

  g_object_get (config, "model-folders", &folders, NULL);
  return folders;
}

static gchar *
describe_text (const gchar          *path,
               const ldm_model_info *info)
{
  gchar *base = g_path_get_basename (path);
  gchar *text;

  if (info->feed_forward)
    /* TRANSLATORS: model file, architecture ("RRDBNet ..., x4") */
    text = g_strdup_printf (_("%s: %s (fast)"), base, info->arch);
  else
    /* TRANSLATORS: model file, family, native size in pixels */
    text = g_strdup_printf (_("%s: %s, %d px"), base,
                            info->family[0] ? info->family : "?",
                            info->native_size);
  g_free (base);
  return text;
}

static void
hook_describe_model (const gchar       *path,
                     GimpLdmModelFacts *facts,
                     gpointer           user)
{
  DialogCtx *ctx = user;
  GError    *error = NULL;
  gchar     *found = NULL;

  ctx->info_ok = FALSE;
  facts->usable = FALSE;
  if (! path)
    {
      const gchar *name = gimp_ldm_proc_default_model (ctx->proc);

      found = gimp_ldm_default_model (ctx->proc, NULL);
      if (! found)
        {
          facts->text = g_strdup_printf (_("The default model %s is not in "
                                           "the model folders."), name);
          return;
        }
      path = found;
    }
  if (gimp_ldm_engine_describe (path, &ctx->info, &error) &&
      gimp_ldm_model_usable (ctx->proc, &ctx->info, &error))
    {
      ctx->info_ok = TRUE;
      facts->usable = TRUE;
      facts->text = describe_text (path, &ctx->info);
      facts->rec_steps = ctx->info.rec_steps > 0 ? ctx->info.rec_steps : 20;
      facts->rec_cfg = ctx->info.rec_cfg > 0.0f ? ctx->info.rec_cfg
                     : ctx->proc == GIMP_LDM_PROC_UPSCALE ? 9.0 : 7.0;
      facts->rec_sampler = ctx->info.rec_sampler[0] ? ctx->info.rec_sampler
                         : ctx->proc == GIMP_LDM_PROC_UPSCALE ? "ddim"
                                                              : "euler_a";
      facts->samplers = gimp_ldm_samplers_for (&ctx->info);
    }
  else
    {
      facts->text = g_strdup_printf (_("Cannot use this model: %s"),
                                     error->message);
      g_clear_error (&error);
    }
  g_free (found);
}

static gchar *
hook_estimate (GimpProcedureConfig *config,
               gpointer             user)
{
  DialogCtx   *ctx = user;
  GimpLdmSpec  spec;
  GimpLdmPlan  plan;
  GError      *error = NULL;
  gdouble      s;
  gchar       *text;

  if (! ctx->info_ok)
    return g_strdup ("-");
  gimp_ldm_spec_init (&spec, ctx->proc);
  gimp_ldm_spec_from_config (&spec, config);
  if (! gimp_ldm_plan_make (&spec, ctx->image, ctx->drawable, &ctx->info,
                            &plan, &error))
    {
      text = g_strdup (error->message);
      g_clear_error (&error);
      gimp_ldm_spec_clear (&spec);
      return text;
    }
  s = gimp_ldm_estimate (&plan, &spec);
  gimp_ldm_spec_clear (&spec);
  if (s < 0.0)
    /* TRANSLATORS: estimate before the first run: work size */
    return g_strdup_printf (_("known after the first run (at %d × %d)"),
                            plan.ww, plan.wh);
  if (s < 60.0)
    /* TRANSLATORS: estimate: seconds, steps, work size */
    return g_strdup_printf (_("about %.0f s (%d steps at %d × %d)"),
                            MAX (s, 1.0), plan.steps, plan.ww, plan.wh);
  return g_strdup_printf (_("about %.1f min (%d steps at %d × %d)"),
                          s / 60.0, plan.steps, plan.ww, plan.wh);
}

static GList *
hook_list_models (GimpProcedureConfig *config,
                  gpointer             user)
{
  DialogCtx *ctx = user;
  gchar     *folders = config_folders (config);
  GList     *paths = gimp_ldm_models_list (folders), *l, *out = NULL;
  GList     *fast = NULL;

  /* only the models this procedure can use, with their family */
  for (l = paths; l; l = l->next)
    {
      ldm_model_info info;

      if (gimp_ldm_engine_describe (l->data, &info, NULL) &&
          gimp_ldm_model_usable (ctx->proc, &info, NULL))
        {
          GimpLdmModelEntry *e = g_new0 (GimpLdmModelEntry, 1);
          gchar             *base = g_path_get_basename (l->data);

          e->path = g_strdup (l->data);
          e->label = info.feed_forward
                     /* TRANSLATORS: model list entry: file, family, scale */
                     ? g_strdup_printf (_("%s (%s ×%d, fast)"), base,
                                        info.family, info.scale)
                     : g_strdup_printf ("%s (%s)", base, info.family);
          /* fast (feed-forward) upscalers first */
          if (info.feed_forward)
            fast = g_list_append (fast, e);
          else
            out = g_list_append (out, e);
          g_free (base);
        }
    }
  g_list_free_full (paths, g_free);
  g_free (folders);
  return g_list_concat (fast, out);
}

/* The LoRAs and embeddings found for the dialog's model family. */
static void
hook_list_addons (GimpProcedureConfig  *config,
                  GList               **loras,
                  gchar               **embeddings,
                  gpointer              user)
{
  DialogCtx   *ctx = user;
  gchar       *folders = config_folders (config);
  const gchar *family = ctx->info_ok ? ctx->info.family : NULL;
  GList       *found, *l;
  GString     *names = g_string_new (NULL);

  found = gimp_ldm_models_addons (folders, LDM_KIND_LORA, family);
  for (l = found; l; l = l->next)
    *loras = g_list_append (*loras, g_strdup (((GimpLdmAddon *) l->data)->name));
  g_list_free_full (found, (GDestroyNotify) gimp_ldm_addon_free);
  found = gimp_ldm_models_addons (folders, LDM_KIND_EMBEDDING, family);
  for (l = found; l; l = l->next)
    g_string_append_printf (names, "%s%s", names->len ? ", " : "",
                            ((GimpLdmAddon *) l->data)->name);
  g_list_free_full (found, (GDestroyNotify) gimp_ldm_addon_free);
  *embeddings = g_string_free (names, FALSE);
  g_free (folders);
}

/* The ControlNets found for the dialog's model family. A diffusers folder's
 * weights are named after the folder; a name found in several places (a
 * folder and its single file, two model folders) also says which folder
 * holds each. */
static GList *
hook_list_controlnets (GimpProcedureConfig *config, gpointer user)
{
  DialogCtx *ctx = user;
  gchar     *folders = config_folders (config);
  GList     *found, *l, *m, *out = NULL;
  GPtrArray *holders = g_ptr_array_new_with_free_func (g_free);
  gboolean  *twin;
  guint      i, j;

  found = gimp_ldm_models_addons (folders, LDM_KIND_CONTROLNET,
                                  ctx->info_ok ? ctx->info.family : NULL);
  for (l = found; l; l = l->next)
    {
      GimpLdmAddon      *a = l->data;
      GimpLdmModelEntry *e = g_new0 (GimpLdmModelEntry, 1);
      gchar             *dir = g_path_get_dirname (a->path);
      gchar             *name = g_strdup (a->name);
      gchar             *holder;

      if (! strcmp (name, "diffusion_pytorch_model"))
        {
          g_free (name);
          name = g_path_get_basename (dir);
          holder = g_path_get_dirname (dir);
          g_free (dir);
          dir = holder;
        }
      g_ptr_array_add (holders, g_path_get_basename (dir));
      e->path = g_strdup (a->path);
      e->label = a->family[0] ? g_strdup_printf ("%s (%s)", name, a->family)
                              : g_strdup (name);
      out = g_list_append (out, e);
      g_free (name);
      g_free (dir);
    }
  g_list_free_full (found, (GDestroyNotify) gimp_ldm_addon_free);
  /* twins found on the plain labels first, then labelled */
  twin = g_new0 (gboolean, holders->len);
  for (l = out, i = 0; l; l = l->next, i++)
    for (m = out, j = 0; m; m = m->next, j++)
      twin[i] |= i != j && ! strcmp (((GimpLdmModelEntry *) l->data)->label,
                                     ((GimpLdmModelEntry *) m->data)->label);
  for (l = out, i = 0; l; l = l->next, i++)
    if (twin[i])
      {
        GimpLdmModelEntry *e = l->data;
        gchar             *label = g_strdup_printf ("%s \u2014 %s", e->label,
                                                    (gchar *) holders->pdata[i]);

        g_free (e->label);
        e->label = label;
      }
  g_free (twin);
  g_ptr_array_free (holders, TRUE);
  g_free (folders);
  return out;
}

/* The control layer preprocessed as the run will do it. */
static gfloat *
hook_control_preview (GimpProcedureConfig *config,
                      gint                *width,
                      gint                *height,
                      gchar              **message,
                      gpointer             user)
{
  DialogCtx  *ctx = user;
  GimpLdmSpec spec;
  GError     *error = NULL;
  ldm_image  *img;
  gfloat     *px = NULL;
  gint        y;

  gimp_ldm_spec_init (&spec, ctx->proc);
  gimp_ldm_spec_from_config (&spec, config);
  img =
      gimp_ldm_control_preview (&spec, ctx->image, ctx->drawable, 512, &error);
  gimp_ldm_spec_clear (&spec);
  if (error)
    {
      *message = g_strdup (error->message);
      g_clear_error (&error);
    }
  if (! img)
    return NULL;
  px = g_new (gfloat, (gsize) img->width * img->height * 3);
  for (y = 0; y < img->height; y++)
    memcpy (px + (gsize) y * img->width * 3,
            (const guint8 *) img->data + (gsize) y * img->stride,
            (gsize) img->width * 3 * sizeof (gfloat));
  *width = img->width;
  *height = img->height;
  ldm_image_free (img);
  return px;
}

static gchar *
hook_models_folder (GimpProcedureConfig *config,
                    gpointer             user)
{
  gchar  *folders = config_folders (config);
  gchar **dirs = gimp_ldm_models_search_path (folders);
  gchar  *found = NULL;
  gint    i;

  for (i = 0; dirs[i] && ! found; i++)
    if (g_file_test (dirs[i], G_FILE_TEST_IS_DIR))
      found = g_strdup (dirs[i]);
  g_strfreev (dirs);
  g_free (folders);
  return found;
}

/* ---- run-time UI glue -------------------------------------------------- */

static void
on_progress (gpointer               user,
             const GimpLdmProgress *p)
{
  GtkWidget *dialog = user;
  gchar     *text = gimp_ldm_progress_text (p);

  gimp_ldm_dialog_set_status (dialog, text,
                              p->total > 0 ? (gdouble) p->step / p->total : 0.0);
  g_free (text);
  if (p->preview && p->preview->type == LDM_PIXEL_F32)
    gimp_ldm_dialog_set_preview (dialog, p->preview->data, p->preview->width,
                                 p->preview->height, p->preview->channels,
                                 p->preview->stride);
  else if (p->preview)
    {
      const ldm_image *pv = p->preview;
      gsize            n = (gsize) pv->width * pv->channels, i;
      gfloat          *f = g_new (gfloat, n * pv->height);
      gint             y;

      for (y = 0; y < pv->height; y++)
        for (i = 0; i < n; i++)
          f[y * n + i] = ((const guint8 *) pv->data)[y * pv->stride + i] / 255.0f;
      gimp_ldm_dialog_set_preview (dialog, f, pv->width, pv->height,
                                   pv->channels, n * sizeof (gfloat));
      g_free (f);
    }
}

static void
on_dialog_cancel (gpointer data)
{
  gimp_ldm_control_cancel (data);
}

static const gchar *
dialog_title (GimpLdmProc proc)
{
  switch (proc)
    {
    case GIMP_LDM_PROC_INPAINT:    return _("Inpaint Selection");
    case GIMP_LDM_PROC_GENERATE:   return _("Generate Layer");
    case GIMP_LDM_PROC_REFINE:     return _("Refine Layer");
    case GIMP_LDM_PROC_UPSCALE:    return _("Upscale Layer");
    case GIMP_LDM_PROC_OUTPAINT:   return _("Expand Canvas");
    case GIMP_LDM_PROC_REGENERATE: return _("Regenerate Layer");
    default:                       return "gimp-ldm";
    }
}

/* The spec a run of `proc` does: a layer's recipe for Regenerate (whose
 * source layer then becomes *drawable), else nothing to read yet. */
static gboolean
spec_prepare (GimpLdmSpec    *spec,
              GimpLdmProc     proc,
              GimpImage      *image,
              GimpDrawable  **drawable,
              GError        **error)
{
  GimpParasite *p;
  guint32       n = 0;
  const gchar  *data;
  gchar        *text;
  gboolean      ok;

  gimp_ldm_spec_init (spec, proc);
  if (proc != GIMP_LDM_PROC_REGENERATE)
    return TRUE;
  if (! GIMP_IS_LAYER (*drawable) ||
      ! (p = gimp_item_get_parasite (GIMP_ITEM (*drawable),
                                     GIMP_LDM_RECIPE_PARASITE)))
    {
      g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0,
                           _("The active layer has no gimp-ldm recipe."));
      return FALSE;
    }
  data = gimp_parasite_get_data (p, &n);   /* sets n: not in one expression */
  text = g_strndup (data, n);
  ok = gimp_ldm_spec_from_recipe (spec, text, error);
  g_free (text);
  gimp_parasite_free (p);
  if (! ok)
    return FALSE;
  /* the source layer the recipe was made from, when it still exists */
  if (spec->src_tattoo > 0)
    {
      GimpItem *src = GIMP_ITEM (gimp_image_get_layer_by_tattoo (image,
                                                                 spec->src_tattoo));

      if (src && GIMP_IS_DRAWABLE (src))
        *drawable = GIMP_DRAWABLE (src);
      else if (spec->proc != GIMP_LDM_PROC_GENERATE)
        {
          g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0,
                               _("The layer this one was made from no "
                                 "longer exists."));
          return FALSE;
        }
    }
  return TRUE;
}

static void
spec_read_config (GimpLdmSpec         *spec,
                  GimpProcedureConfig *config)
{
  if (spec->proc == GIMP_LDM_PROC_REGENERATE ||
      ! g_object_class_find_property (G_OBJECT_GET_CLASS (config), "prompt"))
    {
      gboolean new_seed = FALSE;

      g_object_get (config, "new-seed", &new_seed, NULL);
      spec->random_seed = new_seed;
    }
  else
    gimp_ldm_spec_from_config (spec, config);
}

/* Interactive: the dialog stays open through runs that fail or are
 * cancelled (the message in its progress line, the values kept) until a
 * run succeeds or the user closes it. */
static GimpLayer *
run_interactive (GimpProcedure       *procedure,
                 GimpProcedureConfig *config,
                 GimpLdmProc          proc,
                 GimpLdmSpec         *recipe,
                 GimpImage           *image,
                 GimpDrawable        *drawable,
                 GError             **error)
{
  DialogCtx          ctx = { 0 };
  GimpLdmDialogHooks hooks = { .describe_model = hook_describe_model,
                               .estimate = hook_estimate,
                               .list_models = hook_list_models,
                               .models_folder = hook_models_folder,
                               .list_addons = hook_list_addons,
                               .list_controlnets = hook_list_controlnets,
                               .control_preview = hook_control_preview,
                               .image = image,
                               .user = &ctx };
  GimpLdmControl     control;
  GimpLdmRunUi       ui = { on_progress, NULL, &control, TRUE };
  GtkWidget         *dialog;
  GimpLayer         *layer = NULL;
  gchar             *folders;

  ctx.proc = proc;
  ctx.image = image;
  ctx.drawable = drawable;
  gimp_ui_init (PLUG_IN_BINARY);
  dialog = gimp_ldm_dialog_new (procedure, config, dialog_title (proc), &hooks);
  ui.progress_user = dialog;
  if (proc == GIMP_LDM_PROC_REGENERATE)
    {
      gchar *base = recipe->model_path ? g_path_get_basename (recipe->model_path)
                                       : g_strdup ("-");
      /* TRANSLATORS: summary of the recipe regenerate will run */
      gchar *info = g_strdup_printf (_("%s\nPrompt: %s\nModel: %s · "
                                       "%d steps · CFG %.1f · %s · seed %u"),
                                     gimp_ldm_proc_name (recipe->proc),
                                     recipe->prompt, base, recipe->steps,
                                     recipe->cfg_scale, recipe->sampler,
                                     (guint) recipe->seed);
      gimp_ldm_dialog_set_info (dialog, info);
      g_free (info);
      g_free (base);
    }

  while (! layer && gimp_ldm_dialog_run (dialog))
    {
      GimpLdmSpec spec;
      GError     *run_error = NULL;

      /* each try starts from the recipe / the dialog's current values */
      gimp_ldm_spec_init (&spec, proc);
      if (proc == GIMP_LDM_PROC_REGENERATE)
        {
          gchar *text = gimp_ldm_spec_to_recipe (recipe);

          gimp_ldm_spec_from_recipe (&spec, text, NULL);
          g_free (text);
        }
      spec_read_config (&spec, config);
      folders = config_folders (config);
      gimp_ldm_control_init (&control);
      gimp_ldm_dialog_set_running (dialog, TRUE, on_dialog_cancel, &control);
      gimp_ldm_dialog_set_status (dialog, _("Loading the model"), 0.0);
      layer = gimp_ldm_execute (&spec, image, drawable, folders, &ui,
                                &run_error);
      gimp_ldm_dialog_set_running (dialog, FALSE, NULL, NULL);
      gimp_ldm_control_clear (&control);
      g_free (folders);

      if (layer && proc != GIMP_LDM_PROC_REGENERATE && spec.random_seed)
        g_object_set (config, "seed", spec.seed, NULL);   /* shown next time */
      if (! layer)
        {
          gimp_ldm_dialog_set_status (dialog,
                                      g_error_matches (run_error,
                                                       GIMP_PLUG_IN_ERROR,
                                                       GIMP_LDM_ERROR_CANCELLED)
                                      ? _("Cancelled: nothing was added.")
                                      : run_error->message, -1.0);
          g_clear_error (&run_error);
        }
      gimp_ldm_spec_clear (&spec);
    }
  gtk_widget_destroy (dialog);
  if (! layer)
    g_set_error_literal (error, GIMP_PLUG_IN_ERROR, GIMP_LDM_ERROR_CANCELLED,
                         _("Cancelled."));
  return layer;
}

static GimpValueArray *
gimp_ldm_run (GimpProcedure        *procedure,
              GimpRunMode           run_mode,
              GimpImage            *image,
              GimpDrawable        **drawables,
              GimpProcedureConfig  *config,
              gpointer              run_data)
{
  GimpLdmProc     proc = GPOINTER_TO_INT (run_data);
  GimpDrawable   *drawable = NULL;
  GimpLayer      *layer = NULL;
  GError         *error = NULL;
  GimpLdmSpec     spec;
  gint            n_drawables;
  GimpValueArray *ret;

  n_drawables = drawables
    ? (gint) gimp_core_object_array_get_length ((GObject **) drawables) : 0;
  if (n_drawables > 0)
    drawable = drawables[0];
  if (proc != GIMP_LDM_PROC_GENERATE && n_drawables != 1)
    {
      g_set_error (&error, GIMP_PLUG_IN_ERROR, 0,
                   _("Procedure '%s' works with exactly one layer."),
                   gimp_ldm_proc_name (proc));
      return gimp_procedure_new_return_values (procedure,
                                               GIMP_PDB_CALLING_ERROR, error);
    }

  /* what can be checked before the dialog opens, is */
  if (spec_prepare (&spec, proc, image, &drawable, &error))
    {
      GimpLdmSpec check;

      gimp_ldm_spec_init (&check, spec.proc);
      spec_read_config (&check, config);
      check.proc = spec.proc;
      if (proc == GIMP_LDM_PROC_REGENERATE)
        gimp_ldm_check_inputs (&spec, image, drawable, &error);
      else
        gimp_ldm_check_inputs (&check, image, drawable, &error);
      gimp_ldm_spec_clear (&check);
    }
  if (! error)
    {
      if (run_mode == GIMP_RUN_INTERACTIVE)
        layer = run_interactive (procedure, config, proc, &spec, image,
                                 drawable, &error);
      else
        {
          gchar *folders = config_folders (config);

          spec_read_config (&spec, config);
          layer = gimp_ldm_execute (&spec, image, drawable, folders, NULL,
                                    &error);
          g_free (folders);
          if (layer && proc != GIMP_LDM_PROC_REGENERATE && spec.random_seed)
            g_object_set (config, "seed", spec.seed, NULL);
        }
    }
  gimp_ldm_spec_clear (&spec);

  if (! layer)
    {
      if (g_error_matches (error, GIMP_PLUG_IN_ERROR, GIMP_LDM_ERROR_CANCELLED))
        {
          g_clear_error (&error);
          return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL,
                                                   NULL);
        }
      return gimp_procedure_new_return_values (procedure,
                                               GIMP_PDB_EXECUTION_ERROR, error);
    }
  ret = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
  GIMP_VALUES_SET_LAYER (ret, 1, layer);
  return ret;
}
