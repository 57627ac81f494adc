/* ldm-run.c: GIMP side of a generation, in four stages. Plan: checks the
 * layer and selection, picks the source rect (the selection's bounds plus a
 * context margin), the model's working size and settings. Pixels in: the
 * drawable as non-linear RGB float and the selection as a float mask, scaled
 * to the working size with the engine's resampler. Engine: ldm-engine.c.
 * Pixels out: scaled back (still float) into a new layer above the drawable,
 * masked by the selection, inside one undo group.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <libgimp/gimp.h>

#include "ldm-intl.h"
#include "ldm-models.h"
#include "ldm-run.h"

#define SPEED_PARASITE "gimp-ldm-speeds"

static gboolean fail (GError **error, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
fail (GError      **error,
      const gchar  *format,
      ...)
{
  va_list args;
  gchar  *msg;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0, msg);
  g_free (msg);
  return FALSE;
}

/* ---- speed records ------------------------------------------------------
 * One persistent parasite, a line per model family and task:
 *   "<family>/<task> <s per step per MP> <fixed s per MP> <load s>"
 * (MP: megapixels of the working size; fixed: text encoding, VAE; load:
 * the model load, which does not grow with the area). A run replaces its
 * line. */

static const gchar *
task_name (ldm_task task)
{
  static const gchar *names[] = { "txt2img", "img2img", "inpaint", "outpaint",
                                  "upscale" };

  return (guint) task < G_N_ELEMENTS (names) ? names[task] : "other";
}

static gchar *
speed_key (const GimpLdmPlan *plan)
{
  return g_strdup_printf ("%s/%s", plan->model.family[0] ? plan->model.family
                                                         : "?",
                          task_name (plan->task));
}

static gchar *
speeds_read (void)
{
  GimpParasite *p = gimp_get_parasite (SPEED_PARASITE);
  const gchar  *data;
  gchar        *text;
  guint32       n = 0;

  if (! p)
    return g_strdup ("");
  data = gimp_parasite_get_data (p, &n);   /* sets n: not in one expression */
  text = g_strndup (data, n);
  gimp_parasite_free (p);
  return text;
}

static gboolean
speed_lookup (const gchar *key,
              gdouble     *per_step,
              gdouble     *fixed,
              gdouble     *load)
{
  gchar  *text = speeds_read ();
  gchar **lines = g_strsplit (text, "\n", -1);
  gboolean found = FALSE;
  gint    i;

  for (i = 0; lines[i] && ! found; i++)
    {
      gchar **f = g_strsplit (lines[i], " ", -1);

      if (g_strv_length (f) == 4 && ! strcmp (f[0], key))
        {
          *per_step = g_ascii_strtod (f[1], NULL);
          *fixed = g_ascii_strtod (f[2], NULL);
          *load = g_ascii_strtod (f[3], NULL);
          found = isfinite (*per_step) && isfinite (*fixed) &&
                  isfinite (*load) && *per_step >= 0.0 && *fixed >= 0.0 &&
                  *load >= 0.0;
        }
      g_strfreev (f);
    }
  g_strfreev (lines);
  g_free (text);
  return found;
}

static void
speed_remember (const GimpLdmPlan      *plan,
                const GimpLdmEngineJob *job)
{
  gdouble       mp = (gdouble) plan->ww * plan->wh / 1e6;
  gint          n = job->steps_done;
  gdouble       per_step, fixed;
  gchar        *key, *text, **lines;
  GString      *out;
  gchar         a[G_ASCII_DTOSTR_BUF_SIZE], b[G_ASCII_DTOSTR_BUF_SIZE];
  gchar         c[G_ASCII_DTOSTR_BUF_SIZE];
  GimpParasite *p;
  gint          i;

  if (mp <= 0.0 || job->seconds <= 0.0)
    return;
  if (n >= 2 && job->first_step_s >= 0.0)
    per_step = (job->last_step_s - job->first_step_s) / (n - 1);
  else if (n >= 1)
    per_step = job->last_step_s / n;
  else
    per_step = 0.0;
  fixed = MAX (job->seconds - job->load_s - per_step * n, 0.0);

  key = speed_key (plan);
  out = g_string_new (NULL);
  g_string_append_printf (out, "%s %s %s %s\n", key,
                          g_ascii_dtostr (a, sizeof (a), per_step / mp),
                          g_ascii_dtostr (b, sizeof (b), fixed / mp),
                          g_ascii_dtostr (c, sizeof (c), job->load_s));
  text = speeds_read ();
  lines = g_strsplit (text, "\n", -1);
  for (i = 0; lines[i]; i++)
    if (*lines[i] && ! (g_str_has_prefix (lines[i], key) &&
                        lines[i][strlen (key)] == ' '))
      g_string_append_printf (out, "%s\n", lines[i]);
  p = gimp_parasite_new (SPEED_PARASITE, GIMP_PARASITE_PERSISTENT,
                         out->len + 1, out->str);
  gimp_attach_parasite (p);
  gimp_parasite_free (p);
  g_strfreev (lines);
  g_free (text);
  g_string_free (out, TRUE);
  g_free (key);
}

gdouble
gimp_ldm_estimate (const GimpLdmPlan *plan,
                   const GimpLdmSpec *spec)
{
  gdouble  mp = (gdouble) plan->ww * plan->wh / 1e6;
  gdouble  per_step, fixed, load, steps = plan->steps;
  gchar   *key = speed_key (plan);
  gboolean found = speed_lookup (key, &per_step, &fixed, &load);

  g_free (key);
  if (! found)
    return -1.0;
  /* img2img and inpaint run the last strength part of the schedule */
  if (plan->task == LDM_TASK_IMG2IMG || plan->task == LDM_TASK_INPAINT)
    steps = MAX (1.0, floor (steps * CLAMP (spec->strength, 0.0, 1.0)));
  return (per_step * steps + fixed) * mp + load;
}

/* ---- plan ----------------------------------------------------------------- */

/* The SD x4 upscaler and the ESRGAN-class nets state their scale. */
static gboolean
is_upscaler (const ldm_model_info *info)
{
  return info->scale > 0 || info->feed_forward;
}

gboolean
gimp_ldm_model_usable (GimpLdmProc           proc,
                       const ldm_model_info *info,
                       GError              **error)
{
  gboolean upscaler = is_upscaler (info);

  if (proc == GIMP_LDM_PROC_UPSCALE && ! upscaler)
    /* TRANSLATORS: %s is a model family such as "sd1" */
    return fail (error, _("This is a %s model, not an upscaler: choose an "
                          "upscaling model for Upscale Layer."), info->family);
  if (proc != GIMP_LDM_PROC_UPSCALE && upscaler)
    return fail (error, _("This is an upscaling model (%s): it can only "
                          "upscale layers."), info->family);
  return TRUE;
}

static const gchar *const samplers_all[] =
{
  "euler", "euler_a", "heun", "lms", "pndm", "dpmpp_2m", "dpmpp_2m_karras",
  "dpmpp_2m_sde", "dpmpp_2s_a", "ddim", "lcm", "unipc", NULL
};
/* LCM's sampler only suits models distilled for it (LCM, LCM-LoRA) */
static const gchar *const samplers_no_lcm[] =
{
  "euler", "euler_a", "heun", "lms", "pndm", "dpmpp_2m", "dpmpp_2m_karras",
  "dpmpp_2m_sde", "dpmpp_2s_a", "ddim", "unipc", NULL
};

const gchar *const *
gimp_ldm_samplers_for (const ldm_model_info *info)
{
  if (info && (strstr (info->family, "lcm") || ! strcmp (info->rec_sampler, "lcm")))
    return samplers_all;
  return samplers_no_lcm;
}

/* Image-space rect of the selection bounds grown by `margin`, clipped to
 * the drawable. FALSE with error when there is no usable selection. */
static gboolean
selection_rect (GimpImage    *image,
                GimpDrawable *drawable,
                gint          margin,
                gint         *rx,
                gint         *ry,
                gint         *rw,
                gint         *rh,
                GError      **error)
{
  gboolean non_empty = FALSE;
  gint     x1, y1, x2, y2, ox, oy, dw, dh, ix, iy, iw, ih;

  gimp_selection_bounds (image, &non_empty, &x1, &y1, &x2, &y2);
  if (! non_empty)
    return fail (error, _("There is no selection. Select the area to "
                          "repaint first."));
  if (x2 - x1 < GIMP_LDM_MIN_SELECTION || y2 - y1 < GIMP_LDM_MIN_SELECTION)
    return fail (error, _("The selection is too small (%d × %d pixels). "
                          "Select at least %d × %d pixels."),
                 x2 - x1, y2 - y1, GIMP_LDM_MIN_SELECTION,
                 GIMP_LDM_MIN_SELECTION);
  if (! gimp_drawable_mask_intersect (drawable, &ix, &iy, &iw, &ih) ||
      iw < 1 || ih < 1)
    return fail (error, _("The selection does not touch the active layer."));

  gimp_drawable_get_offsets (drawable, &ox, &oy);
  dw = gimp_drawable_get_width (drawable);
  dh = gimp_drawable_get_height (drawable);
  x1 = MAX (x1 - margin, ox);
  y1 = MAX (y1 - margin, oy);
  x2 = MIN (x2 + margin, ox + dw);
  y2 = MIN (y2 + margin, oy + dh);
  if (x2 - x1 < GIMP_LDM_MIN_SELECTION || y2 - y1 < GIMP_LDM_MIN_SELECTION)
    return fail (error, _("The selected part of the active layer is too "
                          "small."));
  *rx = x1;
  *ry = y1;
  *rw = x2 - x1;
  *rh = y2 - y1;
  return TRUE;
}

static void
layer_rect (GimpDrawable *drawable,
            GimpLdmPlan  *plan)
{
  gimp_drawable_get_offsets (drawable, &plan->rx, &plan->ry);
  plan->rw = gimp_drawable_get_width (drawable);
  plan->rh = gimp_drawable_get_height (drawable);
}

/* Source rect and task; no model needed. */
static gboolean
plan_inputs (const GimpLdmSpec *spec,
             GimpImage         *image,
             GimpDrawable      *drawable,
             GimpLdmPlan       *plan,
             GError           **error)
{
  if (gimp_image_get_base_type (image) == GIMP_INDEXED ||
      (drawable && gimp_drawable_is_indexed (drawable)))
    return fail (error, _("Indexed images are not supported. Convert the "
                          "image to RGB or grayscale first (Image ▸ Mode)."));
  if (spec->proc != GIMP_LDM_PROC_GENERATE &&
      (! drawable || ! GIMP_IS_LAYER (drawable) ||
       GIMP_IS_LAYER_MASK (drawable)))
    return fail (error, _("Select one layer to work on."));

  plan->use_selection = FALSE;
  switch (spec->proc)
    {
    case GIMP_LDM_PROC_INPAINT:
      plan->task = LDM_TASK_INPAINT;
      if (! selection_rect (image, drawable, spec->margin, &plan->rx,
                            &plan->ry, &plan->rw, &plan->rh, error))
        return FALSE;
      plan->use_selection = TRUE;
      break;

    case GIMP_LDM_PROC_REFINE:
      plan->task = LDM_TASK_IMG2IMG;
      if (! gimp_selection_is_empty (image))
        {
          if (! selection_rect (image, drawable, spec->margin, &plan->rx,
                                &plan->ry, &plan->rw, &plan->rh, error))
            return FALSE;
          plan->use_selection = TRUE;
        }
      else
        layer_rect (drawable, plan);
      break;

    case GIMP_LDM_PROC_GENERATE:
      plan->task = LDM_TASK_TXT2IMG;
      plan->rx = plan->ry = 0;
      plan->rw = spec->width > 0 ? spec->width : gimp_image_get_width (image);
      plan->rh = spec->height > 0 ? spec->height : gimp_image_get_height (image);
      break;

    case GIMP_LDM_PROC_UPSCALE:
      plan->task = LDM_TASK_UPSCALE;
      layer_rect (drawable, plan);
      if ((gint64) plan->rw * 4 > GIMP_MAX_IMAGE_SIZE ||
          (gint64) plan->rh * 4 > GIMP_MAX_IMAGE_SIZE)
        return fail (error, _("The layer is too large to upscale ×4."));
      if (spec->scale > 0 &&
          ((gint64) plan->rw * spec->scale > GIMP_MAX_IMAGE_SIZE ||
           (gint64) plan->rh * spec->scale > GIMP_MAX_IMAGE_SIZE))
        return fail (error, _("The layer is too large to upscale ×%d."),
                     spec->scale);
      break;

    case GIMP_LDM_PROC_OUTPAINT:
      plan->task = LDM_TASK_OUTPAINT;
      if (spec->left + spec->top + spec->right + spec->bottom <= 0)
        return fail (error, _("Choose how many pixels to add on at least one "
                              "side."));
      layer_rect (drawable, plan);
      break;

    default:
      return fail (error, _("Unknown procedure."));
    }

  if (plan->rw < GIMP_LDM_MIN_SELECTION || plan->rh < GIMP_LDM_MIN_SELECTION)
    return fail (error, _("The area is too small (%d × %d pixels)."),
                 plan->rw, plan->rh);
  return TRUE;
}

gboolean
gimp_ldm_check_inputs (const GimpLdmSpec *spec,
                       GimpImage         *image,
                       GimpDrawable      *drawable,
                       GError           **error)
{
  GimpLdmPlan plan = { 0 };

  if (spec->proc == GIMP_LDM_PROC_REGENERATE)
    return TRUE;
  return plan_inputs (spec, image, drawable, &plan, error);
}

/* Working size for a w x h region and a model of native side `native`:
 * about native^2 pixels, same aspect, sides multiples of `multiple`. */
static void
work_size (gint  w,
           gint  h,
           gint  native,
           gint  multiple,
           gint *work_w,
           gint *work_h)
{
  gdouble s = (gdouble) native / sqrt ((gdouble) w * h);
  gint    ww = (gint) floor (w * s / multiple + 0.5) * multiple;
  gint    wh = (gint) floor (h * s / multiple + 0.5) * multiple;

  *work_w = MAX (ww, multiple);
  *work_h = MAX (wh, multiple);
}

gboolean
gimp_ldm_plan_make (const GimpLdmSpec    *spec,
                    GimpImage            *image,
                    GimpDrawable         *drawable,
                    const ldm_model_info *info,
                    GimpLdmPlan          *plan,
                    GError              **error)
{
  gboolean upscale = spec->proc == GIMP_LDM_PROC_UPSCALE;
  gint     native;

  memset (plan, 0, sizeof (*plan));
  plan->model = *info;
  if (! plan_inputs (spec, image, drawable, plan, error) ||
      ! gimp_ldm_model_usable (spec->proc, info, error))
    return FALSE;

  /* settings: the user's, else the model's recommendation, else ours */
  plan->steps = spec->steps > 0 ? spec->steps
              : info->rec_steps > 0 ? info->rec_steps : 20;
  plan->cfg_scale = spec->cfg_scale > 0.0 ? spec->cfg_scale
                  : info->rec_cfg > 0.0f ? info->rec_cfg
                  : upscale ? 9.0 : 7.0;
  plan->sampler = spec->sampler && *spec->sampler &&
                  strcmp (spec->sampler, GIMP_LDM_SAMPLER_DEFAULT)
                  ? spec->sampler
                  : info->rec_sampler[0] ? info->rec_sampler
                  : upscale ? "ddim" : "euler_a";

  native = spec->work_size > 0 && ! upscale ? spec->work_size
         : info->native_size > 0 ? info->native_size : 512;
  switch (plan->task)
    {
    case LDM_TASK_UPSCALE:
      plan->ww = plan->rw;
      plan->wh = plan->rh;
      plan->scale = spec->scale > 0 ? spec->scale : info->scale;
      if (plan->scale > info->scale)
        return fail (error, _("This model upscales ×%d: choose that or a "
                              "smaller scale."), info->scale);
      if ((gint64) plan->rw * plan->scale > GIMP_MAX_IMAGE_SIZE ||
          (gint64) plan->rh * plan->scale > GIMP_MAX_IMAGE_SIZE)
        return fail (error, _("The layer is too large to upscale ×%d."),
                     plan->scale);
      if (spec->refine && ! info->feed_forward)
        return fail (error, _("Upscale and refine needs a fast (ESRGAN-class) "
                              "upscaler; the SD ×4 upscaler refines by "
                              "itself."));
      break;

    case LDM_TASK_OUTPAINT:
      {
        gint    ew = plan->rw + spec->left + spec->right;
        gint    eh = plan->rh + spec->top + spec->bottom;
        gdouble s;

        /* margins at the working scale, in whole latent pixels (8 px) so
         * that the init image is a multiple of 8 too */
        work_size (ew, eh, native, 64, &plan->ww, &plan->wh);
        s = (gdouble) plan->ww / ew;
        plan->l = 8 * (gint) floor (spec->left * s / 8.0 + 0.5);
        plan->r = 8 * (gint) floor (spec->right * s / 8.0 + 0.5);
        s = (gdouble) plan->wh / eh;
        plan->t = 8 * (gint) floor (spec->top * s / 8.0 + 0.5);
        plan->b = 8 * (gint) floor (spec->bottom * s / 8.0 + 0.5);
        if (spec->left > 0)
          plan->l = MAX (plan->l, 8);
        if (spec->right > 0)
          plan->r = MAX (plan->r, 8);
        if (spec->top > 0)
          plan->t = MAX (plan->t, 8);
        if (spec->bottom > 0)
          plan->b = MAX (plan->b, 8);
        if (plan->ww - plan->l - plan->r < GIMP_LDM_MIN_SELECTION ||
            plan->wh - plan->t - plan->b < GIMP_LDM_MIN_SELECTION)
          return fail (error, _("The layer is too small for that much new "
                                "canvas."));
      }
      break;

    default:
      work_size (plan->rw, plan->rh, native, 64, &plan->ww, &plan->wh);
      break;
    }
  return TRUE;
}

/* ---- pixels in -------------------------------------------------------------- */

/* babl converts between formats along paths it picks by timing them at run
 * time, and those round differently in the last bit, so the same pixels could
 * reach the engine (or the layer) a little different from one run to the
 * next: regenerate with the same seed came out one level apart in 1 of 95200
 * values. 8-bit sRGB buffers whose encoding is the one asked for are therefore
 * read and written in their own format and converted here; everything else
 * (other precisions, other colour spaces) goes through babl in float. */
static gboolean
is_u8_encoding (GeglBuffer  *buf,
                const gchar *encoding)
{
  const Babl *fmt = gegl_buffer_get_format (buf);

  return babl_format_get_space (fmt) == babl_space ("sRGB") &&
         ! strcmp (babl_format_get_encoding (fmt), encoding);
}

/* rect of buf as an F32 image of n channels (0..1) in `encoding`. */
static ldm_image *
read_floats (GeglBuffer          *buf,
             const GeglRectangle *rect,
             const gchar         *encoding,
             const gchar         *u8_encoding,
             gint                 n)
{
  ldm_image *img = ldm_image_new (rect->width, rect->height, n, LDM_PIXEL_F32);
  gsize      count = (gsize) rect->width * n, i;
  gint       y;

  if (! img)
    return NULL;
  if (is_u8_encoding (buf, u8_encoding))
    {
      guint8 *raw = g_new (guint8, count);

      for (y = 0; y < rect->height; y++)
        {
          gfloat *dst = (gfloat *) ((guint8 *) img->data + (gsize) y * img->stride);

          gegl_buffer_get (buf, GEGL_RECTANGLE (rect->x, rect->y + y,
                                                rect->width, 1),
                           1.0, gegl_buffer_get_format (buf), raw,
                           GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
          for (i = 0; i < count; i++)
            dst[i] = raw[i] / 255.0f;
        }
      g_free (raw);
      return img;
    }
  gegl_buffer_get (buf, rect, 1.0, babl_format (encoding), img->data,
                   (gint) img->stride, GEGL_ABYSS_NONE);
  return img;
}

/* RGB of `drawable` inside the image-space rect, with its alpha when
 * `alpha` (4 channels). */
static ldm_image *
read_rgb (GimpDrawable *drawable,
          gint x, gint y, gint w, gint h,
          gboolean alpha)
{
  GeglBuffer *buf = gimp_drawable_get_buffer (drawable);
  ldm_image  *rgba, *rgb;
  gint        ox, oy, i, j;

  gimp_drawable_get_offsets (drawable, &ox, &oy);
  rgba = read_floats (buf, GEGL_RECTANGLE (x - ox, y - oy, w, h),
                      "R'G'B'A float", "R'G'B'A u8", 4);
  g_object_unref (buf);
  if (alpha)
    return rgba;
  rgb = rgba ? ldm_image_new (w, h, 3, LDM_PIXEL_F32) : NULL;
  if (rgb)
    for (j = 0; j < h; j++)
      {
        const gfloat *s = (const gfloat *) ((guint8 *) rgba->data + (gsize) j * rgba->stride);
        gfloat       *d = (gfloat *) ((guint8 *) rgb->data + (gsize) j * rgb->stride);

        for (i = 0; i < w; i++)
          memcpy (d + 3 * i, s + 4 * i, 3 * sizeof (gfloat));
      }
  ldm_image_free (rgba);
  return rgb;
}

/* The selection inside the image-space rect, linear "Y float" 0..1. */
static ldm_image *
read_selection (GimpImage *image,
                gint x, gint y, gint w, gint h)
{
  GeglBuffer *buf = gimp_drawable_get_buffer (GIMP_DRAWABLE (gimp_image_get_selection (image)));
  ldm_image  *img = read_floats (buf, GEGL_RECTANGLE (x, y, w, h),
                                 "Y float", "Y u8", 1);

  g_object_unref (buf);
  return img;
}

/* The engine's resampler; NULL with error. */
static ldm_image *
resize (const ldm_image *src,
        gint             w,
        gint             h,
        GError         **error)
{
  ldm_image *out = NULL;
  ldm_error  err;

  ldm_error_clear (&err);
  if (ldm_image_resize (src, w, h, &out, &err) != LDM_OK)
    {
      fail (error, "%s", err.msg);
      return NULL;
    }
  return out;
}

/* Reads the pixels the plan needs and scales them to the working size. */
static gboolean
pixels_in (const GimpLdmPlan *plan,
           GimpImage         *image,
           GimpDrawable      *drawable,
           ldm_image        **init,
           ldm_image        **mask,
           GError           **error)
{
  ldm_image *src, *sel;

  *init = *mask = NULL;
  if (plan->task == LDM_TASK_TXT2IMG)
    return TRUE;
  src = read_rgb (drawable, plan->rx, plan->ry, plan->rw, plan->rh,
                  plan->task == LDM_TASK_UPSCALE && plan->model.feed_forward &&
                  gimp_drawable_has_alpha (drawable));
  if (! src)
    return fail (error, _("Not enough memory for this image size."));
  if (plan->task == LDM_TASK_UPSCALE)
    {
      *init = src;
      return TRUE;
    }
  if (plan->task == LDM_TASK_OUTPAINT)
    *init = resize (src, plan->ww - plan->l - plan->r,
                    plan->wh - plan->t - plan->b, error);
  else
    *init = resize (src, plan->ww, plan->wh, error);
  ldm_image_free (src);
  if (! *init)
    return FALSE;
  if (plan->use_selection)
    {
      sel = read_selection (image, plan->rx, plan->ry, plan->rw, plan->rh);
      *mask = sel ? resize (sel, plan->ww, plan->wh, error) : NULL;
      ldm_image_free (sel);
      if (! *mask)
        return sel ? FALSE : fail (error, _("Not enough memory for this "
                                            "image size."));
    }
  return TRUE;
}

/* ---- pixels out -------------------------------------------------------------- */

/* Writes the F32 RGB image (values 0..1) into the drawable: float through
 * babl, an "R'G'B'A u8" layer rounded here in its own format (see
 * is_u8_encoding). */
static void
write_rgb (GimpDrawable    *drawable,
           const ldm_image *rgb)
{
  GeglBuffer *buf = gimp_drawable_get_buffer (drawable);
  gboolean    own_u8 = is_u8_encoding (buf, "R'G'B'A u8");
  gfloat     *row = g_new (gfloat, (gsize) rgb->width * 4);
  guint8     *row8 = own_u8 ? g_new (guint8, (gsize) rgb->width * 4) : NULL;
  gint        x, y, i;

  for (y = 0; y < rgb->height; y++)
    {
      const gfloat *s = (const gfloat *) ((const guint8 *) rgb->data +
                                          (gsize) y * rgb->stride);

      for (x = 0; x < rgb->width; x++)
        {
          for (i = 0; i < 3; i++)
            row[x * 4 + i] = CLAMP (s[x * rgb->channels +
                                      (rgb->channels == 1 ? 0 : i)],
                                    0.0f, 1.0f);
          row[x * 4 + 3] = rgb->channels == 4
                           ? CLAMP (s[x * 4 + 3], 0.0f, 1.0f) : 1.0f;
        }
      if (own_u8)
        {
          for (i = 0; i < rgb->width * 4; i++)
            row8[i] = (guint8) (row[i] * 255.0f + 0.5f);
          gegl_buffer_set (buf, GEGL_RECTANGLE (0, y, rgb->width, 1), 0,
                           gegl_buffer_get_format (buf), row8,
                           GEGL_AUTO_ROWSTRIDE);
        }
      else
        gegl_buffer_set (buf, GEGL_RECTANGLE (0, y, rgb->width, 1), 0,
                         babl_format ("R'G'B'A float"), row,
                         GEGL_AUTO_ROWSTRIDE);
    }
  g_free (row8);
  g_free (row);
  gegl_buffer_flush (buf);
  g_object_unref (buf);
  gimp_drawable_update (drawable, 0, 0, rgb->width, rgb->height);
}

static gchar *
layer_name (const GimpLdmSpec *spec)
{
  gchar *flat = g_strdup (spec->prompt ? spec->prompt : "");
  gchar *name;

  g_strdelimit (flat, "\r\n\t", ' ');
  g_strstrip (flat);
  if (g_utf8_strlen (flat, -1) > 48)
    {
      gchar *cut = g_utf8_substring (flat, 0, 47);

      g_free (flat);
      flat = g_strconcat (cut, "…", NULL);
      g_free (cut);
    }
  /* TRANSLATORS: layer name: prompt and seed */
  name = g_strdup_printf (_("%s (seed %u)"), *flat ? flat : _("generated"),
                          (guint) spec->seed);
  g_free (flat);
  return name;
}

static GimpLayer *
insert_layer_above (GimpImage         *image,
                    GimpDrawable      *drawable,
                    const GimpLdmSpec *spec,
                    gint               x,
                    gint               y,
                    gint               w,
                    gint               h)
{
  GimpImageType type = gimp_image_get_base_type (image) == GIMP_GRAY
                       ? GIMP_GRAYA_IMAGE : GIMP_RGBA_IMAGE;
  gchar        *name = layer_name (spec);
  GimpLayer    *layer;
  GimpItem     *parent = NULL;
  gint          position = 0;

  layer = gimp_layer_new (image, name, w, h, type, 100.0,
                          GIMP_LAYER_MODE_NORMAL);
  g_free (name);
  if (drawable && GIMP_IS_LAYER (drawable) && ! GIMP_IS_LAYER_MASK (drawable))
    {
      parent = gimp_item_get_parent (GIMP_ITEM (drawable));
      position = gimp_image_get_item_position (image, GIMP_ITEM (drawable));
    }
  gimp_image_insert_layer (image, layer,
                           parent && GIMP_IS_LAYER (parent)
                             ? GIMP_LAYER (parent) : NULL,
                           position);
  gimp_layer_set_offsets (layer, x, y);
  return layer;
}

static void
attach_recipe (GimpLayer         *layer,
               const GimpLdmSpec *spec)
{
  gchar        *text = gimp_ldm_spec_to_recipe (spec);
  GimpParasite *p = gimp_parasite_new (GIMP_LDM_RECIPE_PARASITE,
                                       GIMP_PARASITE_PERSISTENT |
                                       GIMP_PARASITE_UNDOABLE,
                                       strlen (text) + 1, text);

  gimp_item_attach_parasite (GIMP_ITEM (layer), p);
  gimp_parasite_free (p);
  g_free (text);
}

/* Outpaint: black (keep the original) over the old area, white elsewhere. */
static void
outpaint_mask (GimpLayer *layer,
               gint       keep_x,
               gint       keep_y,
               gint       keep_w,
               gint       keep_h)
{
  GimpLayerMask *mask = gimp_layer_create_mask (layer, GIMP_ADD_MASK_WHITE);
  GeglBuffer    *buf;
  gfloat        *zeros;

  gimp_layer_add_mask (layer, mask);
  buf = gimp_drawable_get_buffer (GIMP_DRAWABLE (mask));
  zeros = g_new0 (gfloat, (gsize) keep_w * keep_h);
  gegl_buffer_set (buf, GEGL_RECTANGLE (keep_x, keep_y, keep_w, keep_h), 0,
                   babl_format ("Y float"), zeros, GEGL_AUTO_ROWSTRIDE);
  g_free (zeros);
  gegl_buffer_flush (buf);
  g_object_unref (buf);
  gimp_drawable_update (GIMP_DRAWABLE (mask), 0, 0,
                        gimp_drawable_get_width (GIMP_DRAWABLE (mask)),
                        gimp_drawable_get_height (GIMP_DRAWABLE (mask)));
}

/* The new layer with `result` scaled to its rect; the selection (inpaint,
 * refine of a selection) or the old canvas (outpaint) becomes its mask, so
 * the user's pixels outside show through exactly. */
static GimpLayer *
pixels_out (const GimpLdmPlan  *plan,
            GimpLdmSpec        *spec,
            GimpImage          *image,
            GimpDrawable       *drawable,
            const ldm_image    *result,
            const GimpLdmRunUi *ui,
            GError            **error)
{
  gint       lx = plan->rx, ly = plan->ry, lw = plan->rw, lh = plan->rh;
  ldm_image *out;
  GimpLayer *layer;

  if (plan->task == LDM_TASK_UPSCALE)
    {
      lw = plan->rw * plan->scale;
      lh = plan->rh * plan->scale;
      lx = spec->new_image ? 0 : plan->rx;
      ly = spec->new_image ? 0 : plan->ry;
    }
  else if (plan->task == LDM_TASK_OUTPAINT)
    {
      lw = plan->rw + spec->left + spec->right;
      lh = plan->rh + spec->top + spec->bottom;
    }
  out = resize (result, lw, lh, error);
  if (! out)
    return NULL;

  if (plan->task == LDM_TASK_UPSCALE && spec->new_image)
    {
      GimpImage *img2 = gimp_image_new_with_precision (lw, lh,
                          gimp_image_get_base_type (image) == GIMP_GRAY
                            ? GIMP_GRAY : GIMP_RGB,
                          gimp_image_get_precision (image));

      gimp_image_undo_disable (img2);
      layer = insert_layer_above (img2, NULL, spec, 0, 0, lw, lh);
      write_rgb (GIMP_DRAWABLE (layer), out);
      attach_recipe (layer, spec);
      gimp_image_undo_enable (img2);
      if (ui && ui->interactive)
        gimp_display_new (img2);
    }
  else
    {
      gimp_image_undo_group_start (image);
      if (plan->task == LDM_TASK_OUTPAINT)
        gimp_image_resize (image,
                           gimp_image_get_width (image) + spec->left + spec->right,
                           gimp_image_get_height (image) + spec->top + spec->bottom,
                           spec->left, spec->top);
      /* outpaint: (rx, ry) is where the canvas moved the layer's corner */
      layer = insert_layer_above (image, drawable, spec, lx, ly, lw, lh);
      write_rgb (GIMP_DRAWABLE (layer), out);
      if (plan->use_selection)
        gimp_layer_add_mask (layer,
                             gimp_layer_create_mask (layer,
                                                     GIMP_ADD_MASK_SELECTION));
      else if (plan->task == LDM_TASK_OUTPAINT)
        outpaint_mask (layer, spec->left, spec->top, plan->rw, plan->rh);
      attach_recipe (layer, spec);
      gimp_image_undo_group_end (image);
    }
  ldm_image_free (out);
  gimp_displays_flush ();
  return layer;
}

/* ---- the run ----------------------------------------------------------------- */

typedef struct
{
  const GimpLdmRunUi *ui;
  gint                last_step;
} RunProgress;

static gchar *
format_duration (gdouble s)
{
  if (s < 60.0)
    return g_strdup_printf (_("%.0f s"), ceil (s));
  return g_strdup_printf (_("%d min %02d s"), (gint) s / 60, (gint) s % 60);
}

gchar *
gimp_ldm_progress_text (const GimpLdmProgress *p)
{
  gchar *text, *eta;

  if (p->total <= 0)
    return g_strdup (_("Loading the model"));
  if (p->step <= 0 || p->step >= p->total)
    return g_strdup_printf (_("Step %d of %d"), p->step, p->total);
  eta = format_duration (p->elapsed_s / p->step * (p->total - p->step));
  /* TRANSLATORS: progress text: step, total steps, remaining time */
  text = g_strdup_printf (_("Step %d of %d, about %s left"),
                          p->step, p->total, eta);
  g_free (eta);
  return text;
}

/* GIMP's progress (status bar, or the caller's), then the dialog's. */
static void
on_run_progress (gpointer               user,
                 const GimpLdmProgress *p)
{
  RunProgress *rp = user;

  if (p->step != rp->last_step && p->total > 0)
    {
      gchar *text = gimp_ldm_progress_text (p);

      rp->last_step = p->step;
      gimp_progress_set_text (text);
      gimp_progress_update ((gdouble) p->step / p->total);
      g_free (text);
    }
  if (rp->ui && rp->ui->progress)
    rp->ui->progress (rp->ui->progress_user, p);
}

gchar *
gimp_ldm_default_model (GimpLdmProc  proc,
                        const gchar *model_folders)
{
  gchar *found = gimp_ldm_models_find (model_folders,
                                       gimp_ldm_proc_default_model (proc));

  /* installs without the fast demo upscaler: the diffusion one */
  if (! found && proc == GIMP_LDM_PROC_UPSCALE)
    found = gimp_ldm_models_find (model_folders, "ldm-demo-x4.safetensors");
  return found;
}

/* The loras argument, "NAME:MULT, NAME, /path/x.safetensors:-0.5", as the
 * engine's LoRA list: NAME is a file stem in the model folders (any
 * layout), MULT a finite number (1 when left out). Paths are owned by
 * `paths`. */
static gboolean
resolve_loras (const gchar  *text,
               const gchar  *model_folders,
               GArray       *loras,
               GPtrArray    *paths,
               GError      **error)
{
  gchar  **items;
  gchar   *roots;
  gboolean ok = TRUE;
  gint     i;

  if (! text || ! *text)
    return TRUE;
  roots = gimp_ldm_models_roots (model_folders);
  items = g_strsplit (text, ",", -1);
  for (i = 0; ok && items[i]; i++)
    {
      gchar   *item = g_strstrip (items[i]);
      gchar   *colon = strrchr (item, ':');
      gdouble  mult = 1.0;
      ldm_lora l;
      gchar   *path = NULL;

      if (! *item)
        continue;
      if (colon)
        {
          gchar *end = NULL;

          mult = g_ascii_strtod (colon + 1, &end);
          if (end == colon + 1 || *end || ! isfinite (mult))
            {
              ok = fail (error, _("LoRA “%s”: the multiplier must be a number, "
                                  "as in NAME:0.8."), item);
              break;
            }
          *colon = '\0';
        }
      if (strchr (item, G_DIR_SEPARATOR))
        path = g_file_test (item, G_FILE_TEST_IS_REGULAR) ? g_strdup (item) : NULL;
      else
        {
          /* the engine's look-up, as for <lora:NAME> tags */
          gchar     found[4096];
          ldm_error err;

          ldm_error_clear (&err);
          if (*roots && ldm_models_find (roots, LDM_KIND_LORA, item, found,
                                         sizeof (found), &err) == LDM_OK)
            path = g_strdup (found);
        }
      if (! path)
        {
          ok = fail (error, _("LoRA “%s” is not in the model folders (%s)."),
                     item, roots);
          break;
        }
      g_ptr_array_add (paths, path);
      l.path = path;
      l.multiplier = (float) mult;
      g_array_append_val (loras, l);
    }
  g_strfreev (items);
  g_free (roots);
  return ok;
}

/* Resolves spec->model_path (the procedure's demo model when unset). */
static gboolean
resolve_model (GimpLdmSpec  *spec,
               const gchar  *model_folders,
               GError      **error)
{
  if (spec->model_path && *spec->model_path)
    {
      if (! g_file_test (spec->model_path, G_FILE_TEST_EXISTS))
        return fail (error, _("Model file “%s” does not exist."),
                     spec->model_path);
      return TRUE;
    }
  g_free (spec->model_path);
  spec->model_path = gimp_ldm_default_model (spec->proc, model_folders);
  if (! spec->model_path)
    {
      gchar **dirs = gimp_ldm_models_search_path (model_folders);
      gchar  *list = g_strjoinv (G_SEARCHPATH_SEPARATOR_S, dirs);

      fail (error, _("No model chosen, and the default model “%s” is not in "
                     "the model folders (%s)."),
            gimp_ldm_proc_default_model (spec->proc), list);
      g_free (list);
      g_strfreev (dirs);
      return FALSE;
    }
  return TRUE;
}

static gboolean
plan_run (GimpLdmSpec  *spec,
          GimpImage    *image,
          GimpDrawable *drawable,
          const gchar  *model_folders,
          GimpLdmPlan  *plan,
          GError      **error)
{
  ldm_model_info info;
  ldm_precision  precision;

  if (! gimp_ldm_check_inputs (spec, image, drawable, error))
    return FALSE;
  if (! g_strcmp0 (spec->precision, "auto"))
    {
      /* resolved here, so that the layer recipe (and Regenerate) keeps
       * the precision this run took */
      gchar *cache = g_build_filename (g_get_user_cache_dir (), "gimp-ldm",
                                       "cpu-peaks", NULL);

      g_free (spec->precision);
      spec->precision =
          g_strdup (ldm_precision_name (ldm_precision_auto (cache, NULL)));
      g_free (cache);
    }
  if (! ldm_precision_parse (spec->precision, &precision))
    return fail (error, _("Unknown arithmetic “%s” (f32 or bf16)."),
                 spec->precision);
  if (! resolve_model (spec, model_folders, error) ||
      ! gimp_ldm_engine_describe (spec->model_path, &info, error) ||
      ! gimp_ldm_plan_make (spec, image, drawable, &info, plan, error))
    return FALSE;

  /* upscale and refine: the checkpoint that redraws the tiles */
  if (plan->task == LDM_TASK_UPSCALE && spec->refine)
    {
      ldm_model_info refine_info;

      if (! spec->refine_model || ! *spec->refine_model)
        {
          g_free (spec->refine_model);
          spec->refine_model = gimp_ldm_default_model (GIMP_LDM_PROC_GENERATE,
                                                       model_folders);
          if (! spec->refine_model)
            return fail (error, _("Upscale and refine: no checkpoint chosen, "
                                  "and the default model “%s” is not in the "
                                  "model folders."),
                         gimp_ldm_proc_default_model (GIMP_LDM_PROC_GENERATE));
        }
      if (! gimp_ldm_engine_describe (spec->refine_model, &refine_info, error) ||
          ! gimp_ldm_model_usable (GIMP_LDM_PROC_REFINE, &refine_info, error))
        return FALSE;
    }

  /* the recipe keeps what ran, so Regenerate repeats it */
  spec->steps = plan->steps;
  spec->cfg_scale = plan->cfg_scale;
  if (plan->sampler != spec->sampler)
    {
      gchar *s = g_strdup (plan->sampler);

      g_free (spec->sampler);
      spec->sampler = s;
      plan->sampler = spec->sampler;
    }
  spec->work_w = plan->ww;
  spec->work_h = plan->wh;
  spec->work_margins[0] = plan->l;
  spec->work_margins[1] = plan->t;
  spec->work_margins[2] = plan->r;
  spec->work_margins[3] = plan->b;
  spec->rect_x = plan->rx;
  spec->rect_y = plan->ry;
  spec->rect_w = plan->rw;
  spec->rect_h = plan->rh;
  spec->src_tattoo = drawable ? (gint) gimp_item_get_tattoo (GIMP_ITEM (drawable)) : 0;
  spec->estimate_s = MAX (gimp_ldm_estimate (plan, spec), 0.0);
  g_free (spec->model_hash);
  spec->model_hash = gimp_ldm_models_quick_hash (spec->model_path);
  if (spec->random_seed)
    spec->seed = g_random_int ();
  return TRUE;
}

/* ---- ControlNet -------------------------------------------------------- */

/* The control layer the spec names: by item ID (the arguments; it must be
 * a layer of `image`), else by tattoo (a recipe). NULL without error when
 * there is none (no control). */
static gboolean
control_layer (const GimpLdmSpec *spec,
               GimpImage         *image,
               GimpLayer        **out,
               GError           **error)
{
  GimpLayer *layer = NULL;

  *out = NULL;
  if (spec->proc != GIMP_LDM_PROC_GENERATE &&
      spec->proc != GIMP_LDM_PROC_REFINE && spec->proc != GIMP_LDM_PROC_INPAINT)
    return TRUE;
  if (spec->control_id > 0)
    {
      layer = gimp_layer_get_by_id (spec->control_id);
      if (! layer || GIMP_IS_LAYER_MASK (layer))
        return fail (error, _ ("The control layer is not a layer."));
      if (gimp_item_get_image (GIMP_ITEM (layer)) != image)
        return fail (error, _ ("The control layer “%s” is not in this image."),
                     gimp_item_get_name (GIMP_ITEM (layer)));
    }
  else if (spec->control_tattoo > 0)
    {
      layer = gimp_image_get_layer_by_tattoo (image, spec->control_tattoo);
      if (! layer)
        return fail (error, _ ("The control layer this layer was made with no "
                               "longer exists."));
    }
  else
    return TRUE;
  if (gimp_drawable_get_width (GIMP_DRAWABLE (layer)) < 1 ||
      gimp_drawable_get_height (GIMP_DRAWABLE (layer)) < 1)
    return fail (error, _ ("The control layer “%s” is empty."),
                 gimp_item_get_name (GIMP_ITEM (layer)));
  if (gimp_drawable_is_indexed (GIMP_DRAWABLE (layer)))
    return fail (error, _ ("Indexed images are not supported. Convert the "
                           "image to RGB or grayscale first (Image ▸ Mode)."));
  *out = layer;
  return TRUE;
}

static gboolean
canny_check (const GimpLdmSpec *spec, ldm_preprocess kind, GError **error)
{
  if (kind == LDM_PREPROCESS_CANNY &&
      spec->control_canny_low > spec->control_canny_high)
    /* TRANSLATORS: the two Canny edge thresholds of the control image */
    return fail (error,
                 _ ("The Canny low threshold (%d) is above the high one "
                    "(%d)."),
                 spec->control_canny_low, spec->control_canny_high);
  return TRUE;
}

/* The checks of the control settings that need no pixels. */
static gboolean
control_check (const GimpLdmSpec *spec,
               GimpLayer         *layer,
               ldm_preprocess    *kind,
               GError           **error)
{
  if (! spec->controlnet || ! *spec->controlnet)
    return fail (error,
                 _ ("Choose a ControlNet model for the control layer "
                    "“%s”."),
                 gimp_item_get_name (GIMP_ITEM (layer)));
  if (! g_file_test (spec->controlnet, G_FILE_TEST_EXISTS))
    return fail (error, _ ("ControlNet file “%s” does not exist."),
                 spec->controlnet);
  if (! ldm_preprocess_parse (spec->control_preprocess, kind) ||
      *kind > LDM_PREPROCESS_CANNY)
    return fail (error,
                 _ ("Unknown preprocessor “%s” (none, invert, scribble "
                    "or canny)."),
                 spec->control_preprocess);
  if (! (spec->control_start < spec->control_end))
    return fail (error, _ ("The control starts (%g) after it ends (%g)."),
                 spec->control_start, spec->control_end);
  return canny_check (spec, *kind, error);
}

gboolean
gimp_ldm_work_rect (const GimpLdmSpec *spec,
                    GimpImage         *image,
                    GimpDrawable      *drawable,
                    gint              *x,
                    gint              *y,
                    gint              *w,
                    gint              *h)
{
  GimpLdmPlan plan = { 0 };

  if (! plan_inputs (spec, image, drawable, &plan, NULL))
    return FALSE;
  *x = plan.rx;
  *y = plan.ry;
  *w = plan.rw;
  *h = plan.rh;
  return TRUE;
}

ldm_image *
gimp_ldm_control_preview (const GimpLdmSpec *spec,
                          GimpImage         *image,
                          GimpDrawable      *drawable,
                          gint               max_side,
                          GError           **error)
{
  GimpLayer            *layer = NULL;
  ldm_image            *src, *small = NULL, *out = NULL;
  ldm_preprocess_params pp;
  ldm_error             err;
  gint                  x, y, w, h;

  if (! control_layer (spec, image, &layer, error) || ! layer)
    return NULL;
  ldm_preprocess_params_init (&pp);
  pp.canny_low = (float) spec->control_canny_low;
  pp.canny_high = (float) spec->control_canny_high;
  if (! ldm_preprocess_parse (spec->control_preprocess, &pp.kind) ||
      pp.kind > LDM_PREPROCESS_CANNY)
    {
      fail (error,
            _ ("Unknown preprocessor “%s” (none, invert, scribble or "
               "canny)."),
            spec->control_preprocess);
      return NULL;
    }
  if (! canny_check (spec, pp.kind, error))
    return NULL;
  /* the area the run works on; the whole canvas when that is not known
   * yet (no selection for an inpaint) */
  if (! gimp_ldm_work_rect (spec, image, drawable, &x, &y, &w, &h))
    {
      x = y = 0;
      w = gimp_image_get_width (image);
      h = gimp_image_get_height (image);
    }
  src = read_rgb (GIMP_DRAWABLE (layer), x, y, w, h, TRUE);
  if (! src)
    {
      fail (error, _ ("Not enough memory for this image size."));
      return NULL;
    }
  ldm_error_clear (&err);
  if (MAX (w, h) > max_side)
    {
      gint sw = MAX (1, w * max_side / MAX (w, h));
      gint sh = MAX (1, h * max_side / MAX (w, h));

      small = resize (src, sw, sh, error);
      ldm_image_free (src);
      src = small;
      if (! src)
        return NULL;
    }
  if (ldm_control_preprocess (src, &pp, &out, &err) != LDM_OK)
    fail (error, "%s", err.msg);
  ldm_image_free (src);
  return out;
}

GimpLayer *
gimp_ldm_execute (GimpLdmSpec        *spec,
                  GimpImage          *image,
                  GimpDrawable       *drawable,
                  const gchar        *model_folders,
                  const GimpLdmRunUi *ui,
                  GError            **error)
{
  GimpLdmPlan      plan;
  GimpLdmEngineJob job = { 0 };
  ldm_image       *init = NULL, *mask = NULL, *result = NULL;
  GimpLayer       *layer = NULL;
  RunProgress      rp = { ui, -1 };
  GArray          *loras = g_array_new (FALSE, FALSE, sizeof (ldm_lora));
  GPtrArray       *lora_paths = g_ptr_array_new_with_free_func (g_free);
  gchar           *roots = gimp_ldm_models_roots (model_folders);
  gchar           *expected_hashes = g_strdup (spec->lora_hashes);
  GimpLayer       *ctl_layer = NULL;
  ldm_image       *ctl_image = NULL;
  ldm_control      ctl;
  ldm_preprocess   ctl_kind = LDM_PREPROCESS_NONE;

  if (! control_layer (spec, image, &ctl_layer, error) ||
      (ctl_layer && ! control_check (spec, ctl_layer, &ctl_kind, error)) ||
      ! plan_run (spec, image, drawable, model_folders, &plan, error) ||
      ! resolve_loras (spec->loras, model_folders, loras, lora_paths, error) ||
      ! pixels_in (&plan, image, drawable, &init, &mask, error))
    goto done;
  if (ctl_layer)
    {
      /* the control layer over the area worked on, transparent outside
       * it; the engine preprocesses it at this size and resizes it to the
       * work size (its pixels are only read) */
      ctl_image = read_rgb (GIMP_DRAWABLE (ctl_layer), plan.rx, plan.ry,
                            plan.rw, plan.rh, TRUE);
      if (! ctl_image)
        {
          fail (error, _ ("Not enough memory for this image size."));
          goto done;
        }
      ldm_control_init (&ctl);
      ctl.model_path = spec->controlnet;
      ctl.image = ctl_image;
      ctl.scale = (float) spec->control_scale;
      ctl.start = (float) spec->control_start;
      ctl.end = (float) spec->control_end;
      ctl.preprocess = ctl_kind;
      ctl.canny_low = spec->control_canny_low;
      ctl.canny_high = spec->control_canny_high;
      spec->control_id = 0;
      spec->control_tattoo =
          (gint) gimp_item_get_tattoo (GIMP_ITEM (ctl_layer));
      g_free (spec->controlnet_hash);
      spec->controlnet_hash = gimp_ldm_models_quick_hash (spec->controlnet);
    }
  else
    spec->control_tattoo = 0;

  ldm_model_params_init (&job.model);
  job.model.path = spec->model_path;
  job.model.threads = spec->threads;
  ldm_precision_parse (spec->precision, &job.model.precision);
  ldm_job_params_init (&job.job, plan.task);
  job.job.prompt = spec->prompt;
  job.job.negative_prompt = spec->negative_prompt;
  job.job.steps = plan.steps;
  job.job.cfg_scale = (float) plan.cfg_scale;
  job.job.sampler = plan.sampler;
  job.job.seed = spec->seed;
  job.job.rng = LDM_RNG_CPU;
  job.job.strength = (float) spec->strength;
  job.job.noise_level = spec->noise_level;
  job.job.init = init;
  job.job.mask = mask;
  job.job.output_type = LDM_PIXEL_F32;
  job.job.loras = (const ldm_lora *) loras->data;
  job.job.n_loras = (gint) loras->len;
  job.job.model_dirs = *roots ? roots : NULL;   /* <lora:...>, embeddings */
  if (ctl_image)
    {
      job.job.controls = &ctl;
      job.job.n_controls = 1;
    }
  if (plan.task == LDM_TASK_UPSCALE && plan.model.feed_forward)
    {
      job.job.upscale_factor = plan.scale;
      if (spec->refine)
        {
          job.refine_path = spec->refine_model;
          job.job.refine_strength = (float) spec->refine_strength;
        }
    }
  job.job.no_composite = TRUE;    /* the layer mask composites, once */
  if (plan.task == LDM_TASK_TXT2IMG)
    {
      job.job.width = plan.ww;
      job.job.height = plan.wh;
    }
  else if (plan.task == LDM_TASK_OUTPAINT)
    {
      job.job.outpaint_left = plan.l;
      job.job.outpaint_top = plan.t;
      job.job.outpaint_right = plan.r;
      job.job.outpaint_bottom = plan.b;
    }
  job.job.want_preview = ui && ui->progress;
  job.progress = on_run_progress;
  job.progress_user = &rp;
  job.control = ui ? ui->control : NULL;

  gimp_progress_init (_("Generating"));
  result = gimp_ldm_engine_run (&job, error);
  gimp_progress_end ();
  if (! result)
    goto done;
  /* Regenerate: the LoRAs must be the ones the layer was made with */
  if (expected_hashes && g_strcmp0 (expected_hashes, job.lora_hashes))
    {
      fail (error, _("The LoRAs differ from the ones this layer was made "
                     "with (now: %s; then: %s)."),
            job.lora_hashes ? job.lora_hashes : _("none"), expected_hashes);
      goto done;
    }
  g_free (spec->lora_hashes);
  spec->lora_hashes = g_strdup (job.lora_hashes);
  spec->seconds = job.seconds;
  speed_remember (&plan, &job);
  layer = pixels_out (&plan, spec, image, drawable, result, ui, error);

done:
  g_free (job.lora_hashes);
  g_free (expected_hashes);
  g_free (roots);
  g_array_free (loras, TRUE);
  g_ptr_array_free (lora_paths, TRUE);
  ldm_image_free (init);
  ldm_image_free (mask);
  ldm_image_free (result);
  ldm_image_free (ctl_image);
  return layer;
}
