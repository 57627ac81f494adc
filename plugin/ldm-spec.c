/* ldm-spec.c: procedure names, reading a procedure config into an GimpLdmSpec,
 * and the recipe text stored on every generated layer (so a layer can be
 * inspected and regenerated with plug-in-ldm-regenerate).
 */
#include "config.h"

#include <string.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>

#include "ldm-intl.h"
#include "ldm-spec.h"

static const gchar *proc_names[GIMP_LDM_PROC_COUNT] =
{
  "plug-in-ldm-inpaint",
  "plug-in-ldm-generate",
  "plug-in-ldm-refine",
  "plug-in-ldm-upscale",
  "plug-in-ldm-outpaint",
  "plug-in-ldm-regenerate"
};

const gchar *
gimp_ldm_proc_name (GimpLdmProc proc)
{
  return proc < GIMP_LDM_PROC_COUNT ? proc_names[proc] : "";
}

GimpLdmProc
gimp_ldm_proc_from_name (const gchar *name)
{
  gint i;

  for (i = 0; i < GIMP_LDM_PROC_COUNT; i++)
    if (name && strcmp (name, proc_names[i]) == 0)
      return (GimpLdmProc) i;
  return GIMP_LDM_PROC_COUNT;
}

const gchar *
gimp_ldm_proc_default_model (GimpLdmProc proc)
{
  switch (proc)
    {
    case GIMP_LDM_PROC_INPAINT:
    case GIMP_LDM_PROC_OUTPAINT:
      return "ldm-demo-inpaint.safetensors";
    case GIMP_LDM_PROC_UPSCALE:
      /* the fast feed-forward upscaler; ldm-demo-x4 when it is missing */
      return "ldm-demo-esrgan-x4.safetensors";
    default:
      return "ldm-demo.safetensors";
    }
}

void
gimp_ldm_spec_init (GimpLdmSpec *spec,
               GimpLdmProc  proc)
{
  memset (spec, 0, sizeof (*spec));
  spec->proc        = proc;
  spec->prompt      = g_strdup ("");
  spec->negative_prompt = g_strdup ("");
  spec->steps       = 0;
  spec->cfg_scale   = 0.0;
  spec->strength    = proc == GIMP_LDM_PROC_REFINE ? 0.5 : 1.0;
  spec->sampler     = g_strdup (GIMP_LDM_SAMPLER_DEFAULT);
  spec->precision = g_strdup ("auto");
  spec->margin      = 32;
  spec->noise_level = 20;
  spec->new_image   = TRUE;
  spec->refine_strength = 0.3;
  spec->control_preprocess = g_strdup ("scribble");
  spec->control_scale = 1.0;
  spec->control_start = 0.0;
  spec->control_end = 1.0;
  spec->control_canny_low = 100;
  spec->control_canny_high = 200;
}

void
gimp_ldm_spec_clear (GimpLdmSpec *spec)
{
  g_clear_pointer (&spec->prompt, g_free);
  g_clear_pointer (&spec->negative_prompt, g_free);
  g_clear_pointer (&spec->sampler, g_free);
  g_clear_pointer (&spec->precision, g_free);
  g_clear_pointer (&spec->model_path, g_free);
  g_clear_pointer (&spec->model_hash, g_free);
  g_clear_pointer (&spec->refine_model, g_free);
  g_clear_pointer (&spec->loras, g_free);
  g_clear_pointer (&spec->lora_hashes, g_free);
  g_clear_pointer (&spec->controlnet, g_free);
  g_clear_pointer (&spec->controlnet_hash, g_free);
  g_clear_pointer (&spec->control_preprocess, g_free);
}

static gboolean
has_prop (GObject     *obj,
          const gchar *name)
{
  return g_object_class_find_property (G_OBJECT_GET_CLASS (obj), name) != NULL;
}

static void
get_int (GObject *obj, const gchar *name, gint *dst)
{
  if (has_prop (obj, name))
    g_object_get (obj, name, dst, NULL);
}

static void
get_uint (GObject *obj, const gchar *name, guint32 *dst)
{
  guint v;

  if (has_prop (obj, name))
    {
      g_object_get (obj, name, &v, NULL);
      *dst = v;
    }
}

static void
get_double (GObject *obj, const gchar *name, gdouble *dst)
{
  if (has_prop (obj, name))
    g_object_get (obj, name, dst, NULL);
}

static void
get_bool (GObject *obj, const gchar *name, gboolean *dst)
{
  if (has_prop (obj, name))
    g_object_get (obj, name, dst, NULL);
}

/* A file argument as a path (NULL when unset). */
static void
get_path (GObject *obj, const gchar *name, gchar **dst)
{
  GFile *file = NULL;

  if (! has_prop (obj, name))
    return;
  g_object_get (obj, name, &file, NULL);
  g_clear_pointer (dst, g_free);
  if (file)
    {
      *dst = g_file_get_path (file);
      g_object_unref (file);
    }
}

static void
get_string (GObject *obj, const gchar *name, gchar **dst)
{
  gchar *s = NULL;

  if (! has_prop (obj, name))
    return;
  g_object_get (obj, name, &s, NULL);
  g_free (*dst);
  *dst = s ? s : g_strdup ("");
}

void
gimp_ldm_spec_from_config (GimpLdmSpec             *spec,
                      GimpProcedureConfig *config)
{
  GObject *obj = G_OBJECT (config);

  get_string (obj, "prompt", &spec->prompt);
  get_string (obj, "negative-prompt", &spec->negative_prompt);
  get_string (obj, "loras", &spec->loras);
  get_int (obj, "steps", &spec->steps);
  get_double (obj, "cfg-scale", &spec->cfg_scale);
  get_uint (obj, "seed", &spec->seed);
  get_bool (obj, "random-seed", &spec->random_seed);
  get_double (obj, "strength", &spec->strength);
  get_string (obj, "sampler", &spec->sampler);
  get_int (obj, "threads", &spec->threads);
  get_string (obj, "precision", &spec->precision);
  get_int (obj, "work-size", &spec->work_size);
  get_int (obj, "width", &spec->width);
  get_int (obj, "height", &spec->height);
  get_int (obj, "margin", &spec->margin);
  get_int (obj, "left", &spec->left);
  get_int (obj, "top", &spec->top);
  get_int (obj, "right", &spec->right);
  get_int (obj, "bottom", &spec->bottom);
  get_int (obj, "noise-level", &spec->noise_level);
  get_bool (obj, "new-image", &spec->new_image);
  get_bool (obj, "refine", &spec->refine);
  get_double (obj, "refine-strength", &spec->refine_strength);
  if (has_prop (obj, "scale"))
    {
      gchar *nick = NULL;

      g_object_get (obj, "scale", &nick, NULL);
      /* "model", "x1" .. "x4" */
      spec->scale = nick && nick[0] == 'x' ? atoi (nick + 1) : 0;
      g_free (nick);
    }
  get_path (obj, "refine-model", &spec->refine_model);
  get_path (obj, "model", &spec->model_path);
  if (has_prop (obj, "control-layer"))
    {
      GimpLayer *layer = NULL;

      g_object_get (obj, "control-layer", &layer, NULL);
      spec->control_id = layer ? gimp_item_get_id (GIMP_ITEM (layer)) : 0;
      spec->control_tattoo =
          layer ? (gint) gimp_item_get_tattoo (GIMP_ITEM (layer)) : 0;
      g_clear_object (&layer);
    }
  get_path (obj, "controlnet", &spec->controlnet);
  get_string (obj, "control-preprocess", &spec->control_preprocess);
  get_double (obj, "control-scale", &spec->control_scale);
  get_double (obj, "control-start", &spec->control_start);
  get_double (obj, "control-end", &spec->control_end);
  get_int (obj, "control-canny-low", &spec->control_canny_low);
  get_int (obj, "control-canny-high", &spec->control_canny_high);
}

/* Values are one line each: backslash, newline and CR are escaped. */
static void
append_kv (GString     *out,
           const gchar *key,
           const gchar *value)
{
  const gchar *p;

  g_string_append_printf (out, "%s=", key);
  for (p = value ? value : ""; *p; p++)
    {
      if (*p == '\\')
        g_string_append (out, "\\\\");
      else if (*p == '\n')
        g_string_append (out, "\\n");
      else if (*p == '\r')
        g_string_append (out, "\\r");
      else
        g_string_append_c (out, *p);
    }
  g_string_append_c (out, '\n');
}

static gchar *
unescape (const gchar *s)
{
  GString *out = g_string_new (NULL);

  for (; *s; s++)
    {
      if (*s == '\\' && s[1])
        {
          s++;
          g_string_append_c (out, *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s);
        }
      else
        {
          g_string_append_c (out, *s);
        }
    }
  return g_string_free (out, FALSE);
}

gchar *
gimp_ldm_spec_to_recipe (const GimpLdmSpec *spec)
{
  GString *out = g_string_new ("gimp-ldm-recipe=1\n");
  gchar    buf[G_ASCII_DTOSTR_BUF_SIZE];
  gchar   *base = spec->model_path ? g_path_get_basename (spec->model_path) : NULL;
  gchar   *tmp;

#define KV_INT(k, v) do { tmp = g_strdup_printf ("%d", (gint) (v)); \
                          append_kv (out, k, tmp); g_free (tmp); } while (0)
#define KV_DBL(k, v) append_kv (out, k, g_ascii_dtostr (buf, sizeof (buf), (v)))

  append_kv (out, "procedure", gimp_ldm_proc_name (spec->proc));
  append_kv (out, "model", base);
  append_kv (out, "model-path", spec->model_path);
  append_kv (out, "model-hash", spec->model_hash);
  append_kv (out, "prompt", spec->prompt);
  append_kv (out, "negative-prompt", spec->negative_prompt);
  append_kv (out, "loras", spec->loras);
  append_kv (out, "lora-hashes", spec->lora_hashes);
  append_kv (out, "sampler", spec->sampler);
  KV_INT ("steps", spec->steps);
  KV_DBL ("cfg-scale", spec->cfg_scale);
  tmp = g_strdup_printf ("%u", (guint) spec->seed);
  append_kv (out, "seed", tmp);
  g_free (tmp);
  append_kv (out, "rng", "cpu");
  KV_DBL ("strength", spec->strength);
  KV_INT ("threads", spec->threads);
  append_kv (out, "precision", spec->precision);
  KV_INT ("work-size", spec->work_size);
  KV_INT ("width", spec->width);
  KV_INT ("height", spec->height);
  KV_INT ("margin", spec->margin);
  KV_INT ("left", spec->left);
  KV_INT ("top", spec->top);
  KV_INT ("right", spec->right);
  KV_INT ("bottom", spec->bottom);
  KV_INT ("noise-level", spec->noise_level);
  KV_INT ("new-image", spec->new_image);
  KV_INT ("scale", spec->scale);
  KV_INT ("refine", spec->refine);
  KV_DBL ("refine-strength", spec->refine_strength);
  append_kv (out, "refine-model", spec->refine_model);
  if (spec->control_tattoo > 0)
    {
      /* the control layer by tattoo, as the source layer */
      KV_INT ("control-layer", spec->control_tattoo);
      append_kv (out, "controlnet", spec->controlnet);
      append_kv (out, "controlnet-hash", spec->controlnet_hash);
      append_kv (out, "control-preprocess", spec->control_preprocess);
      KV_DBL ("control-scale", spec->control_scale);
      KV_DBL ("control-start", spec->control_start);
      KV_DBL ("control-end", spec->control_end);
      KV_INT ("control-canny-low", spec->control_canny_low);
      KV_INT ("control-canny-high", spec->control_canny_high);
    }
  KV_INT ("source-tattoo", spec->src_tattoo);
  tmp = g_strdup_printf ("%d,%d,%d,%d", spec->rect_x, spec->rect_y,
                         spec->rect_w, spec->rect_h);
  append_kv (out, "rect", tmp);
  g_free (tmp);
  tmp = g_strdup_printf ("%dx%d", spec->work_w, spec->work_h);
  append_kv (out, "size", tmp);
  g_free (tmp);
  if (spec->proc == GIMP_LDM_PROC_OUTPAINT)
    {
      tmp = g_strdup_printf ("%d,%d,%d,%d", spec->work_margins[0],
                             spec->work_margins[1], spec->work_margins[2],
                             spec->work_margins[3]);
      append_kv (out, "work-margins", tmp);
      g_free (tmp);
    }
  if (spec->estimate_s > 0.0)
    KV_DBL ("estimate-seconds", spec->estimate_s);
  if (spec->seconds > 0.0)
    KV_DBL ("seconds", spec->seconds);

#undef KV_INT
#undef KV_DBL
  g_free (base);
  return g_string_free (out, FALSE);
}

/* Checked conversions: a value that is not a whole number in range (or a
 * finite number) is remembered in *bad (the first one) for the message. */
static void
parse_int (const gchar *key,
           const gchar *val,
           gint64       min,
           gint64       max,
           gint        *dst,
           gchar      **bad)
{
  gint64 v;

  if (g_ascii_string_to_signed (val, 10, min, max, &v, NULL))
    *dst = (gint) v;
  else if (! *bad)
    *bad = g_strdup_printf ("%s=%s", key, val);
}

static void
parse_double (const gchar *key,
              const gchar *val,
              gdouble     *dst,
              gchar      **bad)
{
  gchar  *end = NULL;
  gdouble v = g_ascii_strtod (val, &end);

  if (end && end != val && ! *end && isfinite (v))
    *dst = v;
  else if (! *bad)
    *bad = g_strdup_printf ("%s=%s", key, val);
}

gboolean
gimp_ldm_spec_from_recipe (GimpLdmSpec      *spec,
                      const gchar  *text,
                      GError      **error)
{
  gchar  **lines;
  gint     i;
  gboolean versioned = FALSE;
  gchar   *bad = NULL;

  lines = g_strsplit (text ? text : "", "\n", -1);
  for (i = 0; lines[i]; i++)
    {
      gchar *eq = strchr (lines[i], '=');
      gchar *key, *val;

      if (! eq)
        continue;
      *eq = '\0';
      key = lines[i];
      val = unescape (eq + 1);

      if (! strcmp (key, "gimp-ldm-recipe"))
        versioned = ! strcmp (val, "1");
      else if (! strcmp (key, "procedure"))
        spec->proc = gimp_ldm_proc_from_name (val);
      else if (! strcmp (key, "model-path"))
        { g_free (spec->model_path); spec->model_path = *val ? g_strdup (val) : NULL; }
      else if (! strcmp (key, "model-hash"))
        { g_free (spec->model_hash); spec->model_hash = g_strdup (val); }
      else if (! strcmp (key, "prompt"))
        { g_free (spec->prompt); spec->prompt = g_strdup (val); }
      else if (! strcmp (key, "negative-prompt"))
        { g_free (spec->negative_prompt); spec->negative_prompt = g_strdup (val); }
      else if (! strcmp (key, "loras"))
        { g_free (spec->loras); spec->loras = g_strdup (val); }
      else if (! strcmp (key, "lora-hashes"))
        { g_free (spec->lora_hashes); spec->lora_hashes = *val ? g_strdup (val) : NULL; }
      else if (! strcmp (key, "sampler"))
        { g_free (spec->sampler); spec->sampler = g_strdup (val); }
      else if (! strcmp (key, "steps"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->steps, &bad);
      else if (! strcmp (key, "cfg-scale"))
        parse_double (key, val, &spec->cfg_scale, &bad);
      else if (! strcmp (key, "seed"))
        {
          guint64 v;

          if (! g_ascii_string_to_unsigned (val, 10, 0, G_MAXUINT32, &v, NULL))
            bad = bad ? bad : g_strdup_printf ("seed=%s", val);
          else
            spec->seed = (guint32) v;
        }
      else if (! strcmp (key, "strength"))
        parse_double (key, val, &spec->strength, &bad);
      else if (! strcmp (key, "threads"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->threads, &bad);
      else if (! strcmp (key, "precision"))
        { g_free (spec->precision); spec->precision = g_strdup (val); }
      else if (! strcmp (key, "work-size"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->work_size, &bad);
      else if (! strcmp (key, "width"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->width, &bad);
      else if (! strcmp (key, "height"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->height, &bad);
      else if (! strcmp (key, "margin"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->margin, &bad);
      else if (! strcmp (key, "left"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->left, &bad);
      else if (! strcmp (key, "top"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->top, &bad);
      else if (! strcmp (key, "right"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->right, &bad);
      else if (! strcmp (key, "bottom"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->bottom, &bad);
      else if (! strcmp (key, "noise-level"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->noise_level, &bad);
      else if (! strcmp (key, "new-image"))
        { gint b = 0; parse_int (key, val, 0, 1, &b, &bad); spec->new_image = b != 0; }
      else if (! strcmp (key, "scale"))
        parse_int (key, val, 0, 16, &spec->scale, &bad);
      else if (! strcmp (key, "refine"))
        { gint b = 0; parse_int (key, val, 0, 1, &b, &bad); spec->refine = b != 0; }
      else if (! strcmp (key, "refine-strength"))
        parse_double (key, val, &spec->refine_strength, &bad);
      else if (! strcmp (key, "refine-model"))
        { g_free (spec->refine_model); spec->refine_model = *val ? g_strdup (val) : NULL; }
      else if (! strcmp (key, "control-layer"))
        parse_int (key, val, 0, G_MAXINT, &spec->control_tattoo, &bad);
      else if (! strcmp (key, "controlnet"))
        {
          g_free (spec->controlnet);
          spec->controlnet = *val ? g_strdup (val) : NULL;
        }
      else if (! strcmp (key, "controlnet-hash"))
        {
          g_free (spec->controlnet_hash);
          spec->controlnet_hash = *val ? g_strdup (val) : NULL;
        }
      else if (! strcmp (key, "control-preprocess"))
        {
          g_free (spec->control_preprocess);
          spec->control_preprocess = g_strdup (val);
        }
      else if (! strcmp (key, "control-scale"))
        parse_double (key, val, &spec->control_scale, &bad);
      else if (! strcmp (key, "control-start"))
        parse_double (key, val, &spec->control_start, &bad);
      else if (! strcmp (key, "control-end"))
        parse_double (key, val, &spec->control_end, &bad);
      else if (! strcmp (key, "control-canny-low"))
        parse_int (key, val, 1, 255, &spec->control_canny_low, &bad);
      else if (! strcmp (key, "control-canny-high"))
        parse_int (key, val, 1, 255, &spec->control_canny_high, &bad);
      else if (! strcmp (key, "source-tattoo"))
        parse_int (key, val, G_MININT, G_MAXINT, &spec->src_tattoo, &bad);
      else if (! strcmp (key, "rect"))
        sscanf (val, "%d,%d,%d,%d", &spec->rect_x, &spec->rect_y,
                &spec->rect_w, &spec->rect_h);
      else if (! strcmp (key, "size"))
        sscanf (val, "%dx%d", &spec->work_w, &spec->work_h);
      g_free (val);
    }
  g_strfreev (lines);

  if (bad)
    {
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                   _("The layer's generation recipe has an invalid value: %s"),
                   bad);
      g_free (bad);
      return FALSE;
    }
  if (! versioned || spec->proc >= GIMP_LDM_PROC_REGENERATE)
    {
      g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0,
                           _("The layer's generation recipe is not readable."));
      return FALSE;
    }
  spec->random_seed = FALSE;
  return TRUE;
}
