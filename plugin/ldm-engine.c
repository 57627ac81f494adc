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

typedef struct
{
  GimpLdmEngineJob *job;
  GMutex            lock;
  gint              done;         /* atomic */
  /* progress, written by the worker under `lock` */
  gint              step, total;
  gdouble           elapsed;
  gboolean          progress_new;
  ldm_image        *preview;      /* a copy owned here */
  /* result */
  ldm_status        status;
  ldm_error         err;
  ldm_image       **images;
  gint              n_images;
} Worker;

void
gimp_ldm_control_init (GimpLdmControl *control)
{
  memset (control, 0, sizeof (*control));
  g_mutex_init (&control->lock);
}

void
gimp_ldm_control_clear (GimpLdmControl *control)
{
  g_mutex_clear (&control->lock);
}

void
gimp_ldm_control_cancel (GimpLdmControl *control)
{
  if (! control)
    return;
  g_atomic_int_set (&control->cancel, 1);
  g_mutex_lock (&control->lock);
  if (control->job)
    ldm_job_cancel (control->job);
  g_mutex_unlock (&control->lock);
}

static ldm_image *
image_copy (const ldm_image *src)
{
  ldm_image *dst = ldm_image_new (src->width, src->height, src->channels,
                                  src->type);
  gsize      row = (gsize) src->width * src->channels *
                   (src->type == LDM_PIXEL_F32 ? sizeof (gfloat) : 1);
  gint       y;

  if (! dst)
    return NULL;
  for (y = 0; y < src->height; y++)
    memcpy ((guint8 *) dst->data + (gsize) y * dst->stride,
            (const guint8 *) src->data + (gsize) y * src->stride, row);
  return dst;
}

/* Worker thread: engine callback after each step. */
static int
on_engine_progress (void            *user,
                    int              step,
                    int              total,
                    double           elapsed_s,
                    const ldm_image *preview)
{
  Worker         *w = user;
  GimpLdmControl *control = w->job->control;

  g_mutex_lock (&w->lock);
  w->step = step;
  w->total = total;
  w->elapsed = elapsed_s;
  w->progress_new = TRUE;
  if (step == 1)
    w->job->first_step_s = elapsed_s;
  if (step >= 1)
    {
      w->job->last_step_s = elapsed_s;
      w->job->steps_done = step;
    }
  if (preview)
    {
      ldm_image *copy = image_copy (preview);

      if (copy)
        {
          ldm_image_free (w->preview);
          w->preview = copy;
        }
    }
  g_mutex_unlock (&w->lock);
  g_main_context_wakeup (NULL);
  return control ? g_atomic_int_get (&control->cancel) : 0;
}

static gpointer
worker (gpointer data)
{
  Worker         *w = data;
  GimpLdmControl *control = w->job->control;
  ldm_model      *model = NULL;
  ldm_model      *refine = NULL;
  ldm_job        *job = NULL;
  ldm_job_params  jp = w->job->job;
  ldm_status      st;
  gint64          t0 = g_get_monotonic_time ();

  st = ldm_model_load (&model, &w->job->model, &w->err);
  w->job->load_s = (g_get_monotonic_time () - t0) / 1e6;
  if (st == LDM_OK && w->job->refine_path)
    {
      ldm_model_params rp = w->job->model;

      rp.path = w->job->refine_path;
      st = ldm_model_load (&refine, &rp, &w->err);
      jp.refine_model = refine;
    }
  if (st == LDM_OK)
    {
      jp.threads = 0;   /* the model's */
      jp.progress = on_engine_progress;
      jp.progress_user = w;
      st = ldm_job_new (&job, model, &jp, &w->err);
    }
  if (st == LDM_OK && ldm_job_lora_count (job) > 0)
    {
      /* what ran, as AUTOMATIC1111 records it ("Lora hashes") */
      GString *hashes = g_string_new (NULL);
      gint     i;

      for (i = 0; st == LDM_OK && i < ldm_job_lora_count (job); i++)
        {
          const ldm_job_lora *l = ldm_job_lora_at (job, i);
          char                hash[13];

          st = ldm_addon_hash (l->path, hash, &w->err);
          if (st == LDM_OK)
            g_string_append_printf (hashes, "%s%s: %s", i ? ", " : "",
                                    l->name, hash);
        }
      w->job->lora_hashes = g_string_free (hashes, FALSE);
    }
  if (st == LDM_OK)
    {
      if (control)
        {
          g_mutex_lock (&control->lock);
          control->job = job;
          if (g_atomic_int_get (&control->cancel))
            ldm_job_cancel (job);
          g_mutex_unlock (&control->lock);
        }
      st = ldm_job_run (job, &w->images, &w->n_images, &w->err);
      if (control)
        {
          g_mutex_lock (&control->lock);
          control->job = NULL;
          g_mutex_unlock (&control->lock);
        }
    }
  if (st == LDM_OK && control && g_atomic_int_get (&control->cancel))
    st = LDM_ERR_CANCELLED;

  ldm_job_free (job);
  ldm_model_free (refine);
  ldm_model_free (model);
  w->status = st;
  g_atomic_int_set (&w->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

static gboolean
deliver_progress (gpointer data)
{
  Worker          *w = data;
  GimpLdmProgress  p = { 0 };
  ldm_image       *preview;
  gboolean         have;

  g_mutex_lock (&w->lock);
  p.step = w->step;
  p.total = w->total;
  p.elapsed_s = w->elapsed;
  have = w->progress_new;
  w->progress_new = FALSE;
  preview = w->preview;
  w->preview = NULL;
  g_mutex_unlock (&w->lock);

  p.preview = preview;
  if ((have || preview) && w->job->progress)
    w->job->progress (w->job->progress_user, &p);
  ldm_image_free (preview);
  return G_SOURCE_CONTINUE;
}

ldm_image *
gimp_ldm_engine_run (GimpLdmEngineJob  *job,
                     GError           **error)
{
  Worker     w = { 0 };
  ldm_image *result = NULL;
  GThread   *thread;
  guint      timer;
  gint64     t0 = g_get_monotonic_time ();
  gint       i;

  w.job = job;
  g_clear_pointer (&job->lora_hashes, g_free);
  job->first_step_s = job->last_step_s = -1.0;
  job->steps_done = 0;
  g_mutex_init (&w.lock);
  ldm_error_clear (&w.err);

  thread = g_thread_new ("ldm-job", worker, &w);
  timer = g_timeout_add (100, deliver_progress, &w);
  while (! g_atomic_int_get (&w.done))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (thread);
  g_source_remove (timer);
  deliver_progress (&w);
  job->seconds = (g_get_monotonic_time () - t0) / 1e6;

  if (w.status == LDM_OK && w.n_images > 0)
    {
      result = w.images[0];
      w.images[0] = NULL;
    }
  else if (w.status == LDM_ERR_CANCELLED)
    g_set_error_literal (error, GIMP_PLUG_IN_ERROR, GIMP_LDM_ERROR_CANCELLED,
                         _("Cancelled."));
  else if (w.status == LDM_OK)
    g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0,
                         _("The engine returned no image."));
  else
    g_set_error (error, GIMP_PLUG_IN_ERROR, 0, "%s",
                 w.err.msg[0] ? w.err.msg : ldm_status_str (w.status));

  for (i = 0; i < w.n_images; i++)
    ldm_image_free (w.images[i]);
  free (w.images);
  ldm_image_free (w.preview);
  g_mutex_clear (&w.lock);
  return result;
}

gboolean
gimp_ldm_engine_describe (const gchar     *path,
                          ldm_model_info  *info,
                          GError         **error)
{
  ldm_model_params mp;
  ldm_model       *model = NULL;
  ldm_error        err;
  ldm_status       st;

  ldm_error_clear (&err);
  ldm_model_params_init (&mp);
  mp.path = path;
  st = ldm_model_load (&model, &mp, &err);
  if (st != LDM_OK)
    {
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0, "%s",
                   err.msg[0] ? err.msg : ldm_status_str (st));
      return FALSE;
    }
  ldm_model_get_info (model, info);
  ldm_model_free (model);
  return TRUE;
}
