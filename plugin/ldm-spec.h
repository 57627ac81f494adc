/* ldm-spec.h: one generation request of the plug-in (what a procedure's
 * arguments or a layer's recipe parasite say), independent of where it came
 * from, plus its text form stored as the "gimp-ldm-recipe" layer parasite.
 */
#ifndef LDM_SPEC_H
#define LDM_SPEC_H

#include <libgimp/gimp.h>

#define LDM_RECIPE_PARASITE "gimp-ldm-recipe"

typedef enum
{
  LDM_PROC_INPAINT,
  LDM_PROC_GENERATE,
  LDM_PROC_REFINE,
  LDM_PROC_UPSCALE,
  LDM_PROC_OUTPAINT,
  LDM_PROC_REGENERATE,
  LDM_PROC_COUNT
} LdmProc;

typedef struct
{
  LdmProc  proc;
  gchar   *prompt;
  gchar   *negative_prompt;
  gint     steps;
  gdouble  cfg_scale;
  gint     seed;            /* the seed actually used */
  gboolean random_seed;     /* pick a new seed before running */
  gdouble  strength;
  gchar   *sampler;
  gchar   *model_path;      /* resolved path; NULL = the procedure's default */
  gchar   *model_hash;      /* filled when the run starts */
  gint     threads;         /* 0 = engine default */
  gchar   *precision;       /* "f32" or "bf16" (ldm_precision_parse) */
  gint     work_size;       /* side of the working area, 0 = model native */
  gint     width, height;   /* generate: 0 = image size */
  gint     margin;          /* inpaint/refine: context pixels around the selection */
  gint     left, top, right, bottom;   /* outpaint */
  gint     noise_level;     /* upscale */
  gboolean new_image;       /* upscale: result in a new image */
  /* filled by the run, stored in the recipe */
  gint     src_tattoo;      /* source drawable (0 = none) */
  gint     rect_x, rect_y, rect_w, rect_h;   /* worked area, image coordinates */
  gint     work_w, work_h;  /* size the engine ran at */
} LdmSpec;

const gchar *ldm_proc_name        (LdmProc proc);
LdmProc      ldm_proc_from_name   (const gchar *name);
/* Default demo model file name of a procedure (looked up in the model path). */
const gchar *ldm_proc_default_model (LdmProc proc);

void     ldm_spec_init        (LdmSpec *spec, LdmProc proc);
void     ldm_spec_clear       (LdmSpec *spec);
/* Reads every argument the procedure has from its config. */
void     ldm_spec_from_config (LdmSpec *spec, GimpProcedureConfig *config);
/* Recipe text ("key=value" lines, values escaped) and back. */
gchar   *ldm_spec_to_recipe   (const LdmSpec *spec);
gboolean ldm_spec_from_recipe (LdmSpec *spec, const gchar *text, GError **error);

#endif /* LDM_SPEC_H */
