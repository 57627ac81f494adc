/* ldm-run.c: GIMP side of a generation. Reads the active drawable as
 * non-linear RGBA float and the selection as a float mask, crops to the
 * selection's bounds plus a context margin, scales to the model's working
 * size, runs the engine (ldm-engine.c), scales back and adds a new masked
 * layer above the drawable inside one undo group.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <libgimp/gimp.h>

#include "ldm-intl.h"
#include "ldm-engine.h"
#include "ldm-models.h"
#include "ldm-run.h"

#define SPEED_PARASITE "gimp-ldm-speed"

typedef struct
{
  const LdmRunUi *ui;
  gint            last_step;
} ProgressCtx;

gdouble
ldm_speed_get (void)
{
  GimpParasite *p = gimp_get_parasite (SPEED_PARASITE);
  gdouble       v = 0.0;

  if (p)
    {
      guint32       n = 0;
      const gchar  *data = gimp_parasite_get_data (p, &n);
      gchar        *s = g_strndup (data, n);

      v = g_ascii_strtod (s, NULL);
      g_free (s);
      gimp_parasite_free (p);
    }
  return v > 0.0 && v < 1e6 ? v : 0.0;
}

static void
speed_remember (gdouble seconds,
                gint    steps,
                gint    w,
                gint    h)
{
  gdouble       mp = (gdouble) w * h / 1e6;
  gchar         buf[G_ASCII_DTOSTR_BUF_SIZE];
  GimpParasite *p;

  if (steps < 1 || mp <= 0.0 || seconds <= 0.0)
    return;
  g_ascii_dtostr (buf, sizeof (buf), seconds / (steps * mp));
  p = gimp_parasite_new (SPEED_PARASITE, GIMP_PARASITE_PERSISTENT,
                         strlen (buf) + 1, buf);
  gimp_attach_parasite (p);
  gimp_parasite_free (p);
}

static gchar *
format_duration (gdouble s)
{
  if (s < 60.0)
    return g_strdup_printf (_("%.0f s"), ceil (s));
  return g_strdup_printf (_("%d min %02d s"), (gint) s / 60, (gint) s % 60);
}

static void
on_progress (gpointer         user,
             gint             step,
             gint             total,
             gdouble          elapsed,
             const LdmPixels *preview)
{
  ProgressCtx *ctx = user;
  gdouble      fraction = total > 0 ? (gdouble) step / total : 0.0;

  if (step != ctx->last_step && total > 0)
    {
      gchar *text;

      ctx->last_step = step;
      if (step > 0 && step < total)
        {
          gchar *eta = format_duration (elapsed / step * (total - step));

          /* TRANSLATORS: progress text: step, total steps, remaining time */
          text = g_strdup_printf (_("Step %d of %d, about %s left"),
                                  step, total, eta);
          g_free (eta);
        }
      else
        {
          text = g_strdup_printf (_("Step %d of %d"), step, total);
        }
      gimp_progress_set_text (text);
      gimp_progress_update (fraction);
      if (ctx->ui && ctx->ui->status)
        ctx->ui->status (ctx->ui->user, text, fraction);
      g_free (text);
    }
  if (preview && ctx->ui && ctx->ui->preview)
    ctx->ui->preview (ctx->ui->user, preview);
}

/* babl converts between formats along paths it picks by timing them at run
 * time, and those round differently in the last bit, so the same pixels could
 * reach the engine (or the layer) a little different from one run to the
 * next: regenerate with the same seed came out one level apart in 1 of 95200
 * values. 8-bit sRGB buffers whose encoding is the one asked for are therefore
 * read and written in their own format and converted here; everything else
 * (other precisions, other colour spaces) goes through babl. */
static gboolean
is_u8_encoding (GeglBuffer *buf, const gchar *encoding)
{
  const Babl *fmt = gegl_buffer_get_format (buf);

  return babl_format_get_space (fmt) == babl_space ("sRGB") &&
         ! strcmp (babl_format_get_encoding (fmt), encoding);
}

/* rect of buf as floats 0..1 in `encoding` ("R'G'B'A float", "Y float"),
 * n components per pixel, into dst. */
static void
read_floats (GeglBuffer *buf, const GeglRectangle *rect, const gchar *encoding,
             const gchar *u8_encoding, gint n, gfloat *dst)
{
  gsize count = (gsize) rect->width * rect->height * n, i;

  if (is_u8_encoding (buf, u8_encoding))
    {
      guint8 *raw = g_new (guint8, count);

      gegl_buffer_get (buf, rect, 1.0, gegl_buffer_get_format (buf), raw,
                       GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
      for (i = 0; i < count; i++)
        dst[i] = raw[i] / 255.0f;
      g_free (raw);
      return;
    }
  gegl_buffer_get (buf, rect, 1.0, babl_format (encoding), dst,
                   GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
}

/* Pixels of `drawable` inside the image-space rect, as "R'G'B'A float". */
static LdmPixels *
read_rgba (GimpDrawable *drawable,
           gint x, gint y, gint w, gint h)
{
  LdmPixels  *p = ldm_pixels_new (w, h, 4);
  GeglBuffer *buf;
  gint        ox, oy;

  if (! p)
    return NULL;
  gimp_drawable_get_offsets (drawable, &ox, &oy);
  buf = gimp_drawable_get_buffer (drawable);
  read_floats (buf, GEGL_RECTANGLE (x - ox, y - oy, w, h), "R'G'B'A float", "R'G'B'A u8", 4, p->data);
  g_object_unref (buf);
  return p;
}

/* The selection inside the image-space rect, linear "Y float" 0..1. */
static LdmPixels *
read_selection (GimpImage *image,
                gint x, gint y, gint w, gint h)
{
  LdmPixels  *p = ldm_pixels_new (w, h, 1);
  GeglBuffer *buf;

  if (! p)
    return NULL;
  buf = gimp_drawable_get_buffer (GIMP_DRAWABLE (gimp_image_get_selection (image)));
  read_floats (buf, GEGL_RECTANGLE (x, y, w, h), "Y float", "Y u8", 1, p->data);
  g_object_unref (buf);
  return p;
}

static LdmPixels *
rgba_to_rgb (const LdmPixels *src)
{
  LdmPixels *dst = ldm_pixels_new (src->w, src->h, 3);
  gsize      i, n = (gsize) src->w * src->h;

  if (! dst)
    return NULL;
  for (i = 0; i < n; i++)
    {
      dst->data[i * 3 + 0] = src->data[i * 4 + 0];
      dst->data[i * 3 + 1] = src->data[i * 4 + 1];
      dst->data[i * 3 + 2] = src->data[i * 4 + 2];
    }
  return dst;
}

/* Writes rgb (values 0..1) into the drawable; an "R'G'B'A u8" layer gets them
 * rounded here, in its own format (see is_u8_encoding). */
static void
write_rgb (GimpDrawable    *drawable,
           const LdmPixels *rgb)
{
  GeglBuffer *buf = gimp_drawable_get_buffer (drawable);
  gboolean    own_u8 = is_u8_encoding (buf, "R'G'B'A u8");
  gfloat     *row = g_new (gfloat, (gsize) rgb->w * 4);
  guint8     *row8 = own_u8 ? g_new (guint8, (gsize) rgb->w * 4) : NULL;
  gint        x, y;

  for (y = 0; y < rgb->h; y++)
    {
      const gfloat *s = rgb->data + (gsize) y * rgb->w * rgb->c;
      gint          i;

      for (x = 0; x < rgb->w; x++)
        {
          gint ch;

          for (ch = 0; ch < 3; ch++)
            row[x * 4 + ch] = CLAMP (s[x * rgb->c + (rgb->c == 1 ? 0 : ch)],
                                     0.0f, 1.0f);
          row[x * 4 + 3] = 1.0f;
        }
      if (own_u8)
        {
          for (i = 0; i < rgb->w * 4; i++)
            row8[i] = (guint8) (row[i] * 255.0f + 0.5f);
          gegl_buffer_set (buf, GEGL_RECTANGLE (0, y, rgb->w, 1), 0,
                           gegl_buffer_get_format (buf), row8, GEGL_AUTO_ROWSTRIDE);
        }
      else
        gegl_buffer_set (buf, GEGL_RECTANGLE (0, y, rgb->w, 1), 0,
                         babl_format ("R'G'B'A float"), row, GEGL_AUTO_ROWSTRIDE);
    }
  g_free (row8);
  g_free (row);
  gegl_buffer_flush (buf);
  g_object_unref (buf);
  gimp_drawable_update (drawable, 0, 0, rgb->w, rgb->h);
}

static gchar *
layer_name (const LdmSpec *spec)
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
  name = g_strdup_printf (_("%s (seed %d)"), *flat ? flat : _("generated"),
                          spec->seed);
  g_free (flat);
  return name;
}

static gboolean
fail (GError **error, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

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

/* Resolves spec->model_path (the procedure's demo model when unset). */
static gboolean
resolve_model (LdmSpec      *spec,
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
  spec->model_path = ldm_models_find (model_folders,
                                      ldm_proc_default_model (spec->proc));
  if (! spec->model_path)
    {
      gchar **dirs = ldm_models_search_path (model_folders);
      gchar  *list = g_strjoinv (G_SEARCHPATH_SEPARATOR_S, dirs);

      fail (error, _("No model chosen, and the default model “%s” is not in "
                     "the model folders (%s)."),
            ldm_proc_default_model (spec->proc), list);
      g_free (list);
      g_strfreev (dirs);
      return FALSE;
    }
  return TRUE;
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
  if (x2 - x1 < LDM_MIN_SELECTION || y2 - y1 < LDM_MIN_SELECTION)
    return fail (error, _("The selection is too small (%d × %d pixels). "
                          "Select at least %d × %d pixels."),
                 x2 - x1, y2 - y1, LDM_MIN_SELECTION, LDM_MIN_SELECTION);
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
  if (x2 - x1 < LDM_MIN_SELECTION || y2 - y1 < LDM_MIN_SELECTION)
    return fail (error, _("The selected part of the active layer is too "
                          "small."));
  *rx = x1;
  *ry = y1;
  *rw = x2 - x1;
  *rh = y2 - y1;
  return TRUE;
}

static GimpLayer *
insert_layer_above (GimpImage     *image,
                    GimpDrawable  *drawable,
                    const LdmSpec *spec,
                    gint           x,
                    gint           y,
                    gint           w,
                    gint           h)
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
attach_recipe (GimpLayer     *layer,
               const LdmSpec *spec)
{
  gchar        *text = ldm_spec_to_recipe (spec);
  GimpParasite *p = gimp_parasite_new (LDM_RECIPE_PARASITE,
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

GimpLayer *
ldm_execute (LdmSpec        *spec,
             GimpImage      *image,
             GimpDrawable   *drawable,
             const gchar    *model_folders,
             const LdmRunUi *ui,
             GError        **error)
{
  LdmRunParams rp;
  ProgressCtx  pctx = { ui, -1 };
  ldm_task     task;
  LdmPixels   *src = NULL, *rgb = NULL, *mask = NULL;
  LdmPixels   *init_w = NULL, *mask_w = NULL, *result = NULL, *out = NULL;
  ldm_image   *init_img = NULL, *mask_img = NULL;
  GimpLayer   *layer = NULL;
  gint         rx = 0, ry = 0, rw = 0, rh = 0;   /* source rect, image space */
  gint         lx = 0, ly = 0, lw = 0, lh = 0;   /* new layer, image space  */
  gint         native = 0, ww = 0, wh = 0;
  gboolean     use_selection = FALSE;
  gdouble      seconds = 0.0;
  gchar       *model_desc;

  /* ---- inputs ---------------------------------------------------------- */
  if (gimp_image_get_base_type (image) == GIMP_INDEXED ||
      (drawable && gimp_drawable_is_indexed (drawable)))
    {
      fail (error, _("Indexed images are not supported. Convert the image "
                     "to RGB or grayscale first (Image ▸ Mode)."));
      return NULL;
    }
  if (spec->proc != LDM_PROC_GENERATE &&
      (! drawable || ! GIMP_IS_LAYER (drawable) ||
       GIMP_IS_LAYER_MASK (drawable)))
    {
      fail (error, _("Select one layer to work on."));
      return NULL;
    }

  switch (spec->proc)
    {
    case LDM_PROC_INPAINT:
      task = LDM_TASK_INPAINT;
      if (! selection_rect (image, drawable, spec->margin,
                            &rx, &ry, &rw, &rh, error))
        return NULL;
      use_selection = TRUE;
      break;

    case LDM_PROC_REFINE:
      task = LDM_TASK_IMG2IMG;
      if (! gimp_selection_is_empty (image))
        {
          if (! selection_rect (image, drawable, spec->margin,
                                &rx, &ry, &rw, &rh, error))
            return NULL;
          use_selection = TRUE;
        }
      else
        {
          gimp_drawable_get_offsets (drawable, &rx, &ry);
          rw = gimp_drawable_get_width (drawable);
          rh = gimp_drawable_get_height (drawable);
        }
      break;

    case LDM_PROC_GENERATE:
      task = LDM_TASK_TXT2IMG;
      rw = spec->width > 0 ? spec->width : gimp_image_get_width (image);
      rh = spec->height > 0 ? spec->height : gimp_image_get_height (image);
      break;

    case LDM_PROC_UPSCALE:
      task = LDM_TASK_UPSCALE;
      gimp_drawable_get_offsets (drawable, &rx, &ry);
      rw = gimp_drawable_get_width (drawable);
      rh = gimp_drawable_get_height (drawable);
      if ((gint64) rw * 4 > GIMP_MAX_IMAGE_SIZE ||
          (gint64) rh * 4 > GIMP_MAX_IMAGE_SIZE)
        {
          fail (error, _("The layer is too large to upscale ×4."));
          return NULL;
        }
      break;

    case LDM_PROC_OUTPAINT:
      task = LDM_TASK_OUTPAINT;
      if (spec->left + spec->top + spec->right + spec->bottom <= 0)
        {
          fail (error, _("Choose how many pixels to add on at least one "
                         "side."));
          return NULL;
        }
      gimp_drawable_get_offsets (drawable, &rx, &ry);
      rw = gimp_drawable_get_width (drawable);
      rh = gimp_drawable_get_height (drawable);
      break;

    default:
      fail (error, _("Unknown procedure."));
      return NULL;
    }

  if (rw < LDM_MIN_SELECTION || rh < LDM_MIN_SELECTION)
    {
      fail (error, _("The area is too small (%d × %d pixels)."), rw, rh);
      return NULL;
    }

  if (! ldm_precision_parse (spec->precision, &rp.precision))
    {
      fail (error, _("Unknown arithmetic “%s” (f32 or bf16)."), spec->precision);
      return NULL;
    }
  if (! resolve_model (spec, model_folders, error))
    return NULL;
  model_desc = ldm_run_describe_model (spec->model_path, &native, error);
  if (! model_desc)
    {
      g_prefix_error (error, _("Cannot use the model “%s”: "),
                      spec->model_path);
      return NULL;
    }
  g_free (model_desc);
  if (spec->work_size > 0 && task != LDM_TASK_UPSCALE)
    native = spec->work_size;
  if (native <= 0)
    native = 512;
  g_free (spec->model_hash);
  spec->model_hash = ldm_models_quick_hash (spec->model_path);
  if (spec->random_seed)
    spec->seed = g_random_int_range (0, G_MAXINT);

  /* ---- pixels in ------------------------------------------------------- */
  rp.model_path = spec->model_path;
  rp.threads = spec->threads;
  ldm_job_params_init (&rp.job, task);
  rp.job.prompt = spec->prompt;
  rp.job.negative_prompt = spec->negative_prompt;
  rp.job.steps = spec->steps;
  rp.job.cfg_scale = (float) spec->cfg_scale;
  rp.job.sampler = spec->sampler;
  rp.job.seed = (uint64_t) spec->seed;
  rp.job.rng = LDM_RNG_CPU;
  rp.job.strength = (float) spec->strength;
  rp.job.threads = spec->threads;
  rp.job.want_preview = ui && ui->preview;
  rp.progress = on_progress;
  rp.progress_user = &pctx;

  if (task == LDM_TASK_TXT2IMG)
    {
      ldm_work_size (rw, rh, native, 64, &ww, &wh);
      rp.job.width = ww;
      rp.job.height = wh;
    }
  else
    {
      src = read_rgba (drawable, rx, ry, rw, rh);
      rgb = src ? rgba_to_rgb (src) : NULL;
      if (! rgb)
        goto nomem;

      if (task == LDM_TASK_UPSCALE)
        {
          ww = rw;
          wh = rh;
          init_img = ldm_image_from_pixels (rgb);
          rp.job.noise_level = spec->noise_level;
        }
      else if (task == LDM_TASK_OUTPAINT)
        {
          gint    ew = rw + spec->left + spec->right;
          gint    eh = rh + spec->top + spec->bottom;
          gdouble s;
          gint    l, t, r, b;

          /* margins at the working scale, in whole latent pixels (8 px) so
           * that the init image is a multiple of 8 too */
          ldm_work_size (ew, eh, native, 64, &ww, &wh);
          s = (gdouble) ww / ew;
          l = 8 * (gint) floor (spec->left * s / 8.0 + 0.5);
          r = 8 * (gint) floor (spec->right * s / 8.0 + 0.5);
          s = (gdouble) wh / eh;
          t = 8 * (gint) floor (spec->top * s / 8.0 + 0.5);
          b = 8 * (gint) floor (spec->bottom * s / 8.0 + 0.5);
          if (spec->left > 0)
            l = MAX (l, 8);
          if (spec->right > 0)
            r = MAX (r, 8);
          if (spec->top > 0)
            t = MAX (t, 8);
          if (spec->bottom > 0)
            b = MAX (b, 8);
          if (ww - l - r < LDM_MIN_SELECTION || wh - t - b < LDM_MIN_SELECTION)
            {
              fail (error, _("The layer is too small for that much new "
                             "canvas."));
              goto done;
            }
          init_w = ldm_pixels_resample (rgb, ww - l - r, wh - t - b);
          init_img = init_w ? ldm_image_from_pixels (init_w) : NULL;
          rp.job.outpaint_left = l;
          rp.job.outpaint_top = t;
          rp.job.outpaint_right = r;
          rp.job.outpaint_bottom = b;
        }
      else
        {
          ldm_work_size (rw, rh, native, 64, &ww, &wh);
          init_w = ldm_pixels_resample (rgb, ww, wh);
          init_img = init_w ? ldm_image_from_pixels (init_w) : NULL;
          if (use_selection)
            {
              mask = read_selection (image, rx, ry, rw, rh);
              mask_w = mask ? ldm_pixels_resample (mask, ww, wh) : NULL;
              mask_img = mask_w ? ldm_image_from_pixels (mask_w) : NULL;
              if (! mask_img)
                goto nomem;
              rp.job.mask = mask_img;
            }
        }
      if (! init_img)
        goto nomem;
      rp.job.init = init_img;
    }
  spec->work_w = ww;
  spec->work_h = wh;

  /* ---- engine ---------------------------------------------------------- */
  gimp_progress_init (_("Generating"));
  if (ui && ui->status)
    ui->status (ui->user, _("Loading the model"), 0.0);
  result = ldm_run_job (&rp, &seconds, error);
  gimp_progress_end ();
  if (! result)
    goto done;
  speed_remember (seconds, task == LDM_TASK_UPSCALE ? 1 : spec->steps, ww, wh);

  /* ---- pixels out ------------------------------------------------------ */
  switch (spec->proc)
    {
    case LDM_PROC_UPSCALE:
      lw = rw * 4;
      lh = rh * 4;
      lx = spec->new_image ? 0 : rx;
      ly = spec->new_image ? 0 : ry;
      break;
    case LDM_PROC_OUTPAINT:
      lw = rw + spec->left + spec->right;
      lh = rh + spec->top + spec->bottom;
      lx = rx;          /* after the canvas moved by (left, top) */
      ly = ry;
      break;
    default:
      lx = rx;
      ly = ry;
      lw = rw;
      lh = rh;
      break;
    }
  out = ldm_pixels_resample (result, lw, lh);
  if (! out)
    goto nomem;

  spec->rect_x = rx;
  spec->rect_y = ry;
  spec->rect_w = rw;
  spec->rect_h = rh;
  spec->src_tattoo = drawable ? (gint) gimp_item_get_tattoo (GIMP_ITEM (drawable)) : 0;

  if (spec->proc == LDM_PROC_UPSCALE && spec->new_image)
    {
      GimpImage *img2;

      img2 = gimp_image_new_with_precision (lw, lh,
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
      if (spec->proc == LDM_PROC_OUTPAINT)
        gimp_image_resize (image,
                           gimp_image_get_width (image) + spec->left + spec->right,
                           gimp_image_get_height (image) + spec->top + spec->bottom,
                           spec->left, spec->top);
      layer = insert_layer_above (image, drawable, spec, lx, ly, lw, lh);
      write_rgb (GIMP_DRAWABLE (layer), out);
      if (use_selection)
        gimp_layer_add_mask (layer,
                             gimp_layer_create_mask (layer,
                                                     GIMP_ADD_MASK_SELECTION));
      else if (spec->proc == LDM_PROC_OUTPAINT)
        outpaint_mask (layer, spec->left, spec->top, rw, rh);
      attach_recipe (layer, spec);
      gimp_image_undo_group_end (image);
    }
  gimp_displays_flush ();
  goto done;

nomem:
  fail (error, _("Not enough memory for this image size."));

done:
  ldm_pixels_free (src);
  ldm_pixels_free (rgb);
  ldm_pixels_free (mask);
  ldm_pixels_free (init_w);
  ldm_pixels_free (mask_w);
  ldm_pixels_free (result);
  ldm_pixels_free (out);
  ldm_image_free (init_img);
  ldm_image_free (mask_img);
  return layer;
}
