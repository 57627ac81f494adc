/* ldm-engine.c: the plug-in's only contact with libldm. A job runs on a
 * worker GThread; progress and previews are handed to the main thread under
 * a mutex and delivered from a timeout source, so GIMP's progress bar and
 * the dialog keep updating and Cancel reaches ldm_job_cancel.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <libgimp/gimp.h>

#include "ldm-intl.h"
#include "ldm-engine.h"

struct _LdmRun
{
  LdmRunParams  p;
  GMutex        lock;
  ldm_job      *job;            /* set while ldm_job_run may be running */
  gint          cancel;         /* atomic */
  gint          done;           /* atomic */
  /* progress, written by the worker under `lock` */
  gint          step, total;
  gdouble       elapsed;
  gboolean      progress_new;
  LdmPixels    *preview;
  gboolean      preview_new;
  /* result */
  ldm_status    status;
  ldm_error     err;
  ldm_image   **images;
  gint          n_images;
  gdouble       seconds;
};

static LdmRun *current_run = NULL;   /* main thread only */

LdmPixels *
ldm_pixels_from_image (const ldm_image *img)
{
  LdmPixels *p;
  gint       x, y, ch, c;

  if (! img || ! img->data || img->width <= 0 || img->height <= 0 ||
      (img->channels != 1 && img->channels != 3 && img->channels != 4))
    return NULL;
  c = img->channels == 1 ? 1 : 3;
  p = ldm_pixels_new (img->width, img->height, c);
  if (! p)
    return NULL;
  for (y = 0; y < img->height; y++)
    {
      const guint8 *row = (const guint8 *) img->data + (gsize) y * img->stride;
      gfloat       *out = p->data + (gsize) y * img->width * c;

      for (x = 0; x < img->width; x++)
        for (ch = 0; ch < c; ch++)
          {
            gsize i = (gsize) x * img->channels + ch;

            out[(gsize) x * c + ch] = img->type == LDM_PIXEL_F32
              ? ((const gfloat *) row)[i] : row[i] / 255.0f;
          }
    }
  return p;
}

ldm_image *
ldm_image_from_pixels (const LdmPixels *p)
{
  ldm_image *img = ldm_image_new (p->w, p->h, p->c, LDM_PIXEL_F32);
  gint       y;

  if (! img)
    return NULL;
  for (y = 0; y < p->h; y++)
    memcpy ((guint8 *) img->data + (gsize) y * img->stride,
            p->data + (gsize) y * p->w * p->c,
            sizeof (gfloat) * (gsize) p->w * p->c);
  return img;
}

/* Worker thread: engine callback after each step. */
static int
on_engine_progress (void            *user,
                    int              step,
                    int              total,
                    double           elapsed_s,
                    const ldm_image *preview)
{
  LdmRun *run = user;

  g_mutex_lock (&run->lock);
  run->step = step;
  run->total = total;
  run->elapsed = elapsed_s;
  run->progress_new = TRUE;
  if (preview)
    {
      LdmPixels *copy = ldm_pixels_from_image (preview);

      if (copy)
        {
          ldm_pixels_free (run->preview);
          run->preview = copy;
          run->preview_new = TRUE;
        }
    }
  g_mutex_unlock (&run->lock);
  g_main_context_wakeup (NULL);
  return g_atomic_int_get (&run->cancel);
}

static gpointer
worker (gpointer data)
{
  LdmRun           *run = data;
  ldm_model_params  mp;
  ldm_model        *model = NULL;
  ldm_job          *job = NULL;
  ldm_job_params    jp = run->p.job;
  ldm_status        st;
  gint64            t0 = g_get_monotonic_time ();

  ldm_model_params_init (&mp);
  mp.path = run->p.model_path;
  mp.threads = run->p.threads;
  mp.precision = run->p.precision;
  st = ldm_model_load (&model, &mp, &run->err);

  if (st == LDM_OK)
    {
      jp.threads = run->p.threads;
      jp.progress = on_engine_progress;
      jp.progress_user = run;
      st = ldm_job_new (&job, model, &jp, &run->err);
    }
  if (st == LDM_OK)
    {
      g_mutex_lock (&run->lock);
      run->job = job;
      if (g_atomic_int_get (&run->cancel))
        ldm_job_cancel (job);
      g_mutex_unlock (&run->lock);

      st = ldm_job_run (job, &run->images, &run->n_images, &run->err);

      g_mutex_lock (&run->lock);
      run->job = NULL;
      g_mutex_unlock (&run->lock);
    }
  if (st == LDM_OK && g_atomic_int_get (&run->cancel))
    st = LDM_ERR_CANCELLED;

  ldm_job_free (job);
  ldm_model_free (model);
  run->status = st;
  run->seconds = (g_get_monotonic_time () - t0) / 1e6;
  g_atomic_int_set (&run->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

static gboolean
deliver_progress (gpointer data)
{
  LdmRun    *run = data;
  LdmPixels *preview = NULL;
  gboolean   have = FALSE;
  gint       step, total;
  gdouble    elapsed;

  g_mutex_lock (&run->lock);
  step = run->step;
  total = run->total;
  elapsed = run->elapsed;
  if (run->progress_new)
    have = TRUE;
  run->progress_new = FALSE;
  if (run->preview_new)
    {
      preview = run->preview;
      run->preview = NULL;
      run->preview_new = FALSE;
    }
  g_mutex_unlock (&run->lock);

  if ((have || preview) && run->p.progress)
    run->p.progress (run->p.progress_user, step, total, elapsed, preview);
  ldm_pixels_free (preview);
  return G_SOURCE_CONTINUE;
}

void
ldm_run_cancel_current (void)
{
  if (! current_run)
    return;
  g_atomic_int_set (&current_run->cancel, 1);
  g_mutex_lock (&current_run->lock);
  if (current_run->job)
    ldm_job_cancel (current_run->job);
  g_mutex_unlock (&current_run->lock);
}

LdmPixels *
ldm_run_job (const LdmRunParams  *params,
             gdouble             *seconds,
             GError             **error)
{
  LdmRun    *run = g_new0 (LdmRun, 1);
  LdmPixels *result = NULL;
  GThread   *thread;
  guint      timer;
  gint       i;

  run->p = *params;
  g_mutex_init (&run->lock);
  ldm_error_clear (&run->err);
  current_run = run;

  thread = g_thread_new ("ldm-job", worker, run);
  timer = g_timeout_add (100, deliver_progress, run);
  while (! g_atomic_int_get (&run->done))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (thread);
  g_source_remove (timer);
  deliver_progress (run);
  current_run = NULL;

  if (seconds)
    *seconds = run->seconds;

  if (run->status == LDM_OK && run->n_images > 0)
    {
      result = ldm_pixels_from_image (run->images[0]);
      if (! result)
        g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                     _("The engine returned an image the plug-in cannot read."));
    }
  else if (run->status == LDM_ERR_CANCELLED)
    {
      g_set_error_literal (error, GIMP_PLUG_IN_ERROR, LDM_RUN_ERROR_CANCELLED,
                           _("Cancelled."));
    }
  else if (run->status == LDM_OK)
    {
      g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0,
                           _("The engine returned no image."));
    }
  else
    {
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                   _("The diffusion engine failed (%s): %s"),
                   ldm_status_str (run->status),
                   run->err.msg[0] ? run->err.msg : "-");
    }

  for (i = 0; i < run->n_images; i++)
    ldm_image_free (run->images[i]);
  free (run->images);
  ldm_pixels_free (run->preview);
  g_mutex_clear (&run->lock);
  g_free (run);
  return result;
}

gchar *
ldm_run_describe_model (const gchar  *path,
                        gint         *native_size,
                        GError      **error)
{
  ldm_model_params mp;
  ldm_model       *model = NULL;
  ldm_model_info   info;
  ldm_error        err;
  ldm_status       st;
  gchar           *text;

  ldm_error_clear (&err);
  ldm_model_params_init (&mp);
  mp.path = path;
  st = ldm_model_load (&model, &mp, &err);
  if (st != LDM_OK)
    {
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0, "%s", err.msg[0] ? err.msg
                   : ldm_status_str (st));
      return NULL;
    }
  ldm_model_get_info (model, &info);
  ldm_model_free (model);
  if (native_size)
    *native_size = info.native_size;
  /* TRANSLATORS: model family, native size in pixels, parameters in millions */
  text = g_strdup_printf (_("%s, %d px, %.*f M parameters"),
                          info.family[0] ? info.family : "?",
                          info.native_size,
                          info.n_params < 10000000 ? 2 : 0,
                          info.n_params / 1e6);
  return text;
}
