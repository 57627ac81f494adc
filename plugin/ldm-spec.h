/* ldm-spec.h: one generation request of the plug-in (what a procedure's
 * arguments or a layer's recipe parasite say), independent of where it came
 * from, plus its text form stored as the "gimp-ldm-recipe" layer parasite.
 */
#ifndef GIMP_LDM_SPEC_H
#define GIMP_LDM_SPEC_H

#include <libgimp/gimp.h>

#define GIMP_LDM_RECIPE_PARASITE "gimp-ldm-recipe"

typedef enum
{
  GIMP_LDM_PROC_INPAINT,
  GIMP_LDM_PROC_GENERATE,
  GIMP_LDM_PROC_REFINE,
  GIMP_LDM_PROC_UPSCALE,
  GIMP_LDM_PROC_OUTPAINT,
  GIMP_LDM_PROC_REGENERATE,
  GIMP_LDM_PROC_COUNT
} GimpLdmProc;

/* The sampler argument's value that means "what the model recommends". */
#define GIMP_LDM_SAMPLER_DEFAULT "default"

typedef struct
{
  GimpLdmProc proc;
  gchar   *prompt;
  gchar   *negative_prompt;
  gint     steps;           /* 0 = the model's recommendation */
  gdouble  cfg_scale;       /* 0 = the model's recommendation */
  guint32  seed;            /* the seed actually used, 0 .. 2^32-1 */
  gboolean random_seed;     /* pick a new seed before running */
  gdouble  strength;
  gchar   *sampler;         /* engine name, or GIMP_LDM_SAMPLER_DEFAULT */
  gchar   *model_path;      /* resolved path; NULL = the procedure's default */
  gchar   *model_hash;      /* filled when the run starts */
  gint     threads;         /* 0 = engine default */
  gchar      *precision;       /* "auto", "f32" or "bf16" (auto: resolved
                               by the run, which records the result) */
  gint     work_size;       /* side of the working area, 0 = model native */
  gint     width, height;   /* generate: 0 = image size */
  gint     margin;          /* inpaint/refine: context pixels around the selection */
  gint     left, top, right, bottom;   /* outpaint */
  gint     noise_level;     /* upscale (SD x4) */
  gboolean new_image;       /* upscale: result in a new image */
  gint     scale;           /* upscale: output size factor, 0 = the model's */
  gboolean refine;          /* upscale: then img2img over it in tiles */
  gdouble  refine_strength;
  gchar   *refine_model;    /* the checkpoint that refines; NULL = demo */
  gchar   *loras;           /* "NAME:MULT, ..." (NAME: stem in the model
                               folders, or a path), as the user wrote it */
  gchar   *lora_hashes;     /* what ran: "NAME: HASH, ..." (AUTOMATIC1111's
                               "Lora hashes"); a regenerate checks them */
  /* ControlNet (Generate, Refine, Inpaint) */
  gint control_id;     /* the control layer's item ID (from the
                               arguments; may belong to another image, which
                               the run refuses), 0 = by tattoo / none */
  gint control_tattoo; /* the control layer's tattoo (recipe), 0 = no control */
  gchar  *controlnet;  /* path of the ControlNet model, or NULL */
  gchar  *controlnet_hash;    /* quick hash, filled when the run starts */
  gchar  *control_preprocess; /* "none", "invert", "scribble", "canny" */
  gdouble control_scale;
  gdouble control_start, control_end;
  gint    control_canny_low, control_canny_high; /* canny thresholds, 1..255 */
  /* filled by the run, stored in the recipe */
  gint     src_tattoo;      /* source drawable (0 = none) */
  gint     rect_x, rect_y, rect_w, rect_h;   /* worked area, image coordinates */
  gint     work_w, work_h;  /* size the engine ran at */
  gint     work_margins[4]; /* outpaint: left, top, right, bottom at the work size */
  gdouble  estimate_s;      /* the time estimated before the run (0: none) */
  gdouble  seconds;         /* the time the run took */
} GimpLdmSpec;

const gchar *gimp_ldm_proc_name          (GimpLdmProc proc);
GimpLdmProc  gimp_ldm_proc_from_name     (const gchar *name);
/* Default demo model file name of a procedure (looked up in the model path). */
const gchar *gimp_ldm_proc_default_model (GimpLdmProc proc);

void     gimp_ldm_spec_init        (GimpLdmSpec *spec, GimpLdmProc proc);
void     gimp_ldm_spec_clear       (GimpLdmSpec *spec);
/* Reads every argument the procedure has from its config. */
void     gimp_ldm_spec_from_config (GimpLdmSpec *spec, GimpProcedureConfig *config);
/* Recipe text ("key=value" lines, values escaped) and back. */
gchar   *gimp_ldm_spec_to_recipe   (const GimpLdmSpec *spec);
gboolean gimp_ldm_spec_from_recipe (GimpLdmSpec *spec, const gchar *text,
                                    GError **error);

#endif /* GIMP_LDM_SPEC_H */
