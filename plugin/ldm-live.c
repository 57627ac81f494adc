/* ldm-live.c: plug-in-ldm-live, live painting (see ldm-live.h).
 *
 * Main thread (GTK + the PDB): a watch timer reads a fingerprint of the
 * image a few times per second -- per layer, GIMP's own downscaled preview
 * of the work area (gimp_drawable_get_sub_thumbnail_data) plus its
 * visibility, opacity, mode and offsets, the live layer left out. When it
 * changes, the composite of the work area is read from a duplicate of the
 * image (live layer removed, visible layers merged, duplicate deleted: the
 * user's image, its undo history and the clipboard are not touched) and
 * handed to the worker.
 *
 * Worker thread: keeps the model loaded and runs one img2img job at a time.
 * A newer request cancels the running job within a UNet evaluation and
 * replaces any request still waiting: only the newest pixels are ever
 * worked on.
 *
 * The live layer is added and removed with the image's undo frozen and its
 * pixels are written straight into its buffer, so live updates leave no
 * undo step; an image that was clean is marked clean again after adding or
 * removing it.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "ldm-intl.h"
#include "ldm-engine.h"
#include "ldm-live.h"
#include "ldm-models.h"
#include "ldm-spec.h"
#include "ldm-live-dialog.h"

#define WATCH_MS   250 /* fingerprint reads */
#define POLL_MS    50  /* results and progress from the worker */
#define THUMB_SIDE 128 /* fingerprint resolution of the work area */

/* ---- the worker ------------------------------------------------------------ */

typedef struct
{
  gint          gen;
  ldm_image    *init; /* F32 RGB at the work size */
  gchar        *prompt, *negative_prompt, *sampler;
  gint          steps;     /* denoising steps to run */
  gint          job_steps; /* the schedule's length: steps / strength */
  gdouble       cfg_scale, strength;
  guint32       seed;
  gchar        *model_path, *taesd_path, *lora_path, *roots;
  ldm_precision precision;
  gint64        t_change; /* when the change was seen (monotonic µs) */
} Request;

typedef struct
{
  Request   *req;   /* what ran */
  ldm_image *image; /* F32 RGB, NULL on failure */
  gchar     *error; /* NULL on success */
  gboolean   cancelled;
  gboolean   taesd; /* decoded by TAESD */
  gdouble    job_s;
} Result;

typedef struct
{
  GMutex   lock;
  GCond    cond;
  GThread *thread;
  Request *pending; /* the newest request not yet started */
  gboolean quit;
  gint     latest;      /* gen of the newest request */
  ldm_job *job;         /* the running job, or NULL */
  gint     running_gen; /* 0 when idle */
  gint     step, total;
  Result  *result; /* the newest finished job */
  /* worker only */
  ldm_model    *model;
  gchar        *loaded_path, *loaded_taesd;
  ldm_precision loaded_precision;
  gboolean      has_taesd;
  gboolean      taesd_no_encoder; /* a decoder-only TAESD: VAE encode */
} Engine;

static void
request_free (Request *r)
{
  if (! r)
    return;
  ldm_image_free (r->init);
  g_free (r->prompt);
  g_free (r->negative_prompt);
  g_free (r->sampler);
  g_free (r->model_path);
  g_free (r->taesd_path);
  g_free (r->lora_path);
  g_free (r->roots);
  g_free (r);
}

static void
result_free (Result *r)
{
  if (! r)
    return;
  request_free (r->req);
  ldm_image_free (r->image);
  g_free (r->error);
  g_free (r);
}

static int
on_job_progress (void            *user,
                 int              step,
                 int              total,
                 double           elapsed_s,
                 const ldm_image *preview)
{
  Engine *e = user;
  gint    stale;

  g_mutex_lock (&e->lock);
  e->step = step;
  e->total = total;
  stale = e->latest != e->running_gen || e->quit;
  g_mutex_unlock (&e->lock);
  g_main_context_wakeup (NULL);
  return stale;
}

static gboolean
engine_load (Engine *e, Request *r, ldm_error *err)
{
  ldm_model_params mp;
  gsize            avail = ldm_memory_available_bytes ();

  if (e->model && ! g_strcmp0 (e->loaded_path, r->model_path) &&
      ! g_strcmp0 (e->loaded_taesd, r->taesd_path) &&
      e->loaded_precision == r->precision)
    return TRUE;
  ldm_model_free (e->model);
  e->model = NULL;
  g_clear_pointer (&e->loaded_path, g_free);
  g_clear_pointer (&e->loaded_taesd, g_free);
  ldm_model_params_init (&mp);
  mp.path = r->model_path;
  mp.taesd_path = r->taesd_path;
  mp.precision = r->precision;
  /* prepared weights kept between jobs: every change reruns the model;
   * up to a third of the memory free now */
  mp.weight_cache_mb =
      avail ? (gint) MIN (avail / 3 / (1024 * 1024), 16384) : 0;
  if (ldm_model_load (&e->model, &mp, err) != LDM_OK)
    return FALSE;
  e->loaded_path = g_strdup (r->model_path);
  e->loaded_taesd = g_strdup (r->taesd_path);
  e->loaded_precision = r->precision;
  e->has_taesd = r->taesd_path != NULL;
  e->taesd_no_encoder = FALSE;
  return TRUE;
}

static gpointer
engine_thread (gpointer data)
{
  Engine *e = data;

  for (;;)
    {
      Request       *r;
      Result        *res = g_new0 (Result, 1);
      ldm_job_params jp;
      ldm_lora       lora;
      ldm_job       *job = NULL;
      ldm_image    **images = NULL;
      gint           n_images = 0, i;
      ldm_error      err;
      ldm_status     st = LDM_OK;
      gint64         t0;

      g_mutex_lock (&e->lock);
      while (! e->pending && ! e->quit)
        g_cond_wait (&e->cond, &e->lock);
      if (e->quit)
        {
          g_mutex_unlock (&e->lock);
          g_free (res);
          break;
        }
      r = e->pending;
      e->pending = NULL;
      e->running_gen = r->gen;
      e->step = 0;
      e->total = 0;
      g_mutex_unlock (&e->lock);

      res->req = r;
      ldm_error_clear (&err);
      t0 = g_get_monotonic_time ();
      if (! engine_load (e, r, &err))
        st = err.status ? err.status : LDM_ERR_IO;
      if (st == LDM_OK)
        {
          ldm_job_params_init (&jp, LDM_TASK_IMG2IMG);
          jp.prompt = r->prompt;
          jp.negative_prompt = r->negative_prompt;
          jp.steps = r->job_steps;
          jp.cfg_scale = (float) r->cfg_scale;
          jp.sampler = r->sampler;
          jp.seed = r->seed;
          jp.rng = LDM_RNG_CPU;
          jp.strength = (float) r->strength;
          jp.init = r->init;
          jp.output_type = LDM_PIXEL_F32;
          jp.taesd_decode = e->has_taesd;
          /* the encode is about half of a one-step job: TAESD's when it
           * has an encoder */
          jp.taesd_encode = e->has_taesd && ! e->taesd_no_encoder;
          jp.progress = on_job_progress;
          jp.progress_user = e;
          jp.model_dirs = r->roots && *r->roots ? r->roots : NULL;
          if (r->lora_path)
            {
              lora.path = r->lora_path;
              lora.multiplier = 1.0f;
              jp.loras = &lora;
              jp.n_loras = 1;
            }
          st = ldm_job_new (&job, e->model, &jp, &err);
        }
      if (st == LDM_OK)
        {
          g_mutex_lock (&e->lock);
          e->job = job;
          if (e->latest != r->gen || e->quit)
            ldm_job_cancel (job);
          g_mutex_unlock (&e->lock);
          st = ldm_job_run (job, &images, &n_images, &err);
          if (st == LDM_ERR_MISSING && jp.taesd_encode)
            {
              /* a decoder-only TAESD: the VAE encodes from now on */
              e->taesd_no_encoder = TRUE;
              ldm_job_free (job);
              job = NULL;
              ldm_error_clear (&err);
              jp.taesd_encode = FALSE;
              st = ldm_job_new (&job, e->model, &jp, &err);
              e->job = job;
              if (st == LDM_OK)
                st = ldm_job_run (job, &images, &n_images, &err);
            }
          g_mutex_lock (&e->lock);
          e->job = NULL;
          g_mutex_unlock (&e->lock);
        }
      ldm_job_free (job);
      res->job_s = (g_get_monotonic_time () - t0) / 1e6;
      res->taesd = e->has_taesd;
      if (st == LDM_OK && n_images > 0)
        {
          res->image = images[0];
          images[0] = NULL;
        }
      else if (st == LDM_ERR_CANCELLED)
        res->cancelled = TRUE;
      else
        res->error =
            g_strdup (err.msg[0]     ? err.msg
                      : st == LDM_OK ? _ ("The engine returned no image.")
                                     : ldm_status_str (st));
      for (i = 0; i < n_images; i++)
        ldm_image_free (images[i]);
      g_free (images);

      g_mutex_lock (&e->lock);
      e->running_gen = 0;
      /* a failure always reaches the main thread; a cancelled or stale
       * success only when nothing newer is there */
      if (res->error || ! e->result || e->result->cancelled ||
          e->result->req->gen < r->gen)
        {
          result_free (e->result);
          e->result = res;
        }
      else
        result_free (res);
      g_mutex_unlock (&e->lock);
      g_main_context_wakeup (NULL);
    }
  ldm_model_free (e->model);
  g_free (e->loaded_path);
  g_free (e->loaded_taesd);
  return NULL;
}

static void
engine_start (Engine *e)
{
  memset (e, 0, sizeof (*e));
  g_mutex_init (&e->lock);
  g_cond_init (&e->cond);
  e->thread = g_thread_new ("ldm-live", engine_thread, e);
}

/* The newest request replaces any waiting one and cancels the running job. */
static void
engine_submit (Engine *e, Request *r)
{
  g_mutex_lock (&e->lock);
  request_free (e->pending);
  e->pending = r;
  e->latest = r->gen;
  if (e->job)
    ldm_job_cancel (e->job);
  g_cond_signal (&e->cond);
  g_mutex_unlock (&e->lock);
}

static void
engine_stop (Engine *e)
{
  g_mutex_lock (&e->lock);
  e->quit = TRUE;
  request_free (e->pending);
  e->pending = NULL;
  if (e->job)
    ldm_job_cancel (e->job);
  g_cond_signal (&e->cond);
  g_mutex_unlock (&e->lock);
  g_thread_join (e->thread);
  result_free (e->result);
  g_mutex_clear (&e->lock);
  g_cond_clear (&e->cond);
}

/* ---- few-step models ---------------------------------------------------------- */

static gboolean
name_has (const gchar *path, const gchar *word)
{
  gchar   *base = g_path_get_basename (path);
  gchar   *low = g_ascii_strdown (base, -1);
  gboolean has = strstr (low, word) != NULL;

  g_free (low);
  g_free (base);
  return has;
}

static gboolean
file_has (const gchar *path, const gchar *text)
{
  gchar   *data = NULL;
  gboolean has = FALSE;

  if (g_file_get_contents (path, &data, NULL, NULL))
    has = strstr (data, text) != NULL;
  g_free (data);
  return has;
}

const gchar *
gimp_ldm_live_few_step (const gchar *path, const ldm_model_info *info)
{
  if (info->feed_forward || info->scale > 0 || info->unet_in_channels != 4)
    return NULL;
  /* what the model states about itself */
  if (! g_ascii_strcasecmp (info->rec_sampler, "lcm"))
    return "lcm";
  if (info->rec_steps >= 1 && info->rec_steps <= 8)
    return "turbo";
  /* a diffusers folder with the LCM scheduler */
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      gchar *sched =
          g_build_filename (path, "scheduler", "scheduler_config.json", NULL);
      gchar   *index = g_build_filename (path, "model_index.json", NULL);
      gboolean lcm =
          file_has (sched, "LCMScheduler") || file_has (index, "LCMScheduler");

      g_free (sched);
      g_free (index);
      if (lcm)
        return "lcm";
    }
  /* the names these models are published under */
  if (name_has (path, "lcm"))
    return "lcm";
  if (name_has (path, "turbo") || name_has (path, "lightning"))
    return "turbo";
  return NULL;
}

gchar *
gimp_ldm_live_default_model (const gchar *model_folders, gchar **lora)
{
  GList *paths = gimp_ldm_models_list (model_folders), *l;
  gchar *found = NULL;

  *lora = NULL;
  for (l = paths; l && ! found; l = l->next)
    {
      ldm_model_info info;

      if (gimp_ldm_engine_describe (l->data, &info, NULL) &&
          gimp_ldm_live_few_step (l->data, &info))
        found = g_strdup (l->data);
    }
  /* a checkpoint with an LCM-LoRA of its family */
  for (l = paths; l && ! found; l = l->next)
    {
      ldm_model_info info;
      GList         *loras, *a;

      if (! gimp_ldm_engine_describe (l->data, &info, NULL) ||
          info.feed_forward || info.scale > 0 || info.unet_in_channels != 4 ||
          name_has (l->data, "ldm-demo"))
        continue;
      loras =
          gimp_ldm_models_addons (model_folders, LDM_KIND_LORA, info.family);
      for (a = loras; a && ! found; a = a->next)
        if (name_has (((GimpLdmAddon *) a->data)->path, "lcm"))
          {
            found = g_strdup (l->data);
            *lora = g_strdup (((GimpLdmAddon *) a->data)->path);
          }
      g_list_free_full (loras, (GDestroyNotify) gimp_ldm_addon_free);
    }
  g_list_free_full (paths, g_free);
  if (! found)
    found = gimp_ldm_models_find (model_folders, "ldm-demo.safetensors");
  return found;
}

/* A TAESD for the family in the model folders (or one level below, as
 * ComfyUI's vae_approx and A1111's VAE-approx): taesd* for SD 1/2, taesdxl*
 * for SDXL; a .safetensors file or a diffusers folder. */
static gchar *
find_taesd (const gchar *model_folders, const gchar *family)
{
  gchar      **dirs = gimp_ldm_models_search_path (model_folders);
  const gchar *want = g_str_has_prefix (family, "sdxl") ? "taesdxl" : "taesd";
  gchar       *found = NULL;
  gint         i;

  if (! g_str_has_prefix (family, "sd1") &&
      ! g_str_has_prefix (family, "sd2") && ! g_str_has_prefix (family, "sdxl"))
    {
      g_strfreev (dirs);
      return NULL;
    }
  for (i = 0; dirs[i] && ! found; i++)
    {
      GPtrArray *todo = g_ptr_array_new_with_free_func (g_free);
      guint      k;

      g_ptr_array_add (todo, g_strdup (dirs[i]));
      for (k = 0; k < todo->len && ! found; k++)
        {
          GDir        *dir = g_dir_open (todo->pdata[k], 0, NULL);
          const gchar *name;

          while (dir && ! found && (name = g_dir_read_name (dir)))
            {
              gchar   *full = g_build_filename (todo->pdata[k], name, NULL);
              gchar   *low = g_ascii_strdown (name, -1);
              gboolean is_dir = g_file_test (full, G_FILE_TEST_IS_DIR);
              gboolean match = g_str_has_prefix (low, want) &&
                               (strcmp (want, "taesd") ||
                                ! g_str_has_prefix (low, "taesdxl")) &&
                               ! g_str_has_prefix (low, "taesd3") &&
                               ! strstr (low, "encoder");

              if (match && (is_dir || g_str_has_suffix (low, ".safetensors")))
                found = g_strdup (full);
              else if (is_dir && k == 0)
                g_ptr_array_add (todo, g_strdup (full));
              g_free (low);
              g_free (full);
            }
          if (dir)
            g_dir_close (dir);
        }
      g_ptr_array_free (todo, TRUE);
    }
  g_strfreev (dirs);
  return found;
}

/* ---- the live session (main thread) --------------------------------------------- */

typedef struct
{
  GimpImage           *image;
  GimpProcedureConfig *config;
  GtkWidget           *dialog;
  GMainLoop           *loop;
  GimpLayer           *live;
  guint                live_tattoo;
  gint                 rx, ry, rw, rh; /* work area, image coordinates */
  gint                 ww, wh;         /* work size */
  guint64              fingerprint;
  gboolean             have_fingerprint;
  gboolean             settings_changed;
  gboolean             model_changed;
  gint                 gen;
  guint                watch_id, poll_id;
  /* the model, resolved when the settings change */
  gchar         *model_path, *lora_path, *taesd_path, *roots;
  ldm_model_info info;
  gboolean       model_ok;
  const gchar   *few;
  /* the result shown */
  Result  *shown;
  gint     shown_gen;
  gchar   *end_message; /* why live mode ended */
  gboolean ended;
  Engine   engine;
  gdouble  read_ms;  /* the last composite read */
  gdouble  watch_ms; /* the last fingerprint */
  gint     last_state_gen;
} Live;

static void live_end (Live *lv, const gchar *message);

static gchar *
config_folders (GimpProcedureConfig *config)
{
  gchar *folders = NULL;

  g_object_get (config, "model-folders", &folders, NULL);
  return folders;
}

/* Resolves the model (the chosen one, else the default) and what goes with
 * it; the dialog's model line says what was found. */
static void
live_resolve_model (Live *lv)
{
  GFile  *file = NULL;
  gchar  *folders = config_folders (lv->config);
  GError *error = NULL;
  gchar  *text, *base;

  g_clear_pointer (&lv->model_path, g_free);
  g_clear_pointer (&lv->lora_path, g_free);
  g_clear_pointer (&lv->taesd_path, g_free);
  g_clear_pointer (&lv->roots, g_free);
  lv->model_ok = FALSE;
  lv->few = NULL;
  g_object_get (lv->config, "model", &file, NULL);
  if (file)
    {
      lv->model_path = g_file_get_path (file);
      g_object_unref (file);
    }
  if (! lv->model_path || ! *lv->model_path)
    {
      g_free (lv->model_path);
      lv->model_path = gimp_ldm_live_default_model (folders, &lv->lora_path);
    }
  lv->roots = gimp_ldm_models_roots (folders);
  gimp_ldm_live_dialog_set_model_file (lv->dialog, lv->model_path);
  if (! lv->model_path)
    {
      gimp_ldm_live_dialog_set_model (lv->dialog,
                                      _ ("No model: no few-step model and no "
                                         "demo model in the model folders."));
      g_free (folders);
      return;
    }
  if (! gimp_ldm_engine_describe (lv->model_path, &lv->info, &error))
    {
      gimp_ldm_live_dialog_set_model (lv->dialog, error->message);
      g_clear_error (&error);
      g_free (folders);
      return;
    }
  if (lv->info.feed_forward || lv->info.scale > 0 ||
      lv->info.unet_in_channels != 4)
    {
      /* TRANSLATORS: %s is a model family such as "sd1-inpaint" */
      text = g_strdup_printf (_ ("This model (%s) cannot redraw a picture: "
                                 "choose a text-to-image model."),
                              lv->info.family);
      gimp_ldm_live_dialog_set_model (lv->dialog, text);
      g_free (text);
      g_free (folders);
      return;
    }
  lv->model_ok = TRUE;
  lv->few = lv->lora_path ? "lcm"
                          : gimp_ldm_live_few_step (lv->model_path, &lv->info);
  lv->taesd_path = find_taesd (folders, lv->info.family);
  base = g_path_get_basename (lv->model_path);
  if (lv->lora_path)
    {
      gchar *lb = g_path_get_basename (lv->lora_path);

      /* TRANSLATORS: model line: file, family, LoRA file, decoder */
      text = g_strdup_printf (_ ("%s (%s) with %s · %s"), base, lv->info.family,
                              lb, lv->taesd_path ? "TAESD" : "VAE");
      g_free (lb);
    }
  else
    /* TRANSLATORS: model line: file, family, few-step kind or not, decoder */
    text = g_strdup_printf (
        _ ("%s (%s%s) · %s"), base, lv->info.family,
        lv->few ? (! strcmp (lv->few, "lcm") ? ", LCM" : ", few-step") : "",
        lv->taesd_path ? "TAESD" : "VAE");
  gimp_ldm_live_dialog_set_model (lv->dialog, text);
  g_free (text);
  g_free (base);
  g_free (folders);
}

static void
work_size (Live *lv)
{
  gint    native = lv->info.native_size > 0 ? lv->info.native_size : 512;
  gint    side = MAX (lv->rw, lv->rh);
  gdouble s = side > native ? (gdouble) native / side : 1.0;

  lv->ww = MAX (64, (gint) floor (lv->rw * s / 64.0 + 0.5) * 64);
  lv->wh = MAX (64, (gint) floor (lv->rh * s / 64.0 + 0.5) * 64);
  while (MAX (lv->ww, lv->wh) > MAX (native, 64))
    {
      if (lv->ww >= lv->wh)
        lv->ww -= 64;
      else
        lv->wh -= 64;
    }
}

/* The work area: the selection's bounds, else the whole image. */
static void
work_area (GimpImage *image, gint *x, gint *y, gint *w, gint *h)
{
  gboolean non_empty = FALSE;
  gint     x1, y1, x2, y2;

  if (gimp_selection_bounds (image, &non_empty, &x1, &y1, &x2, &y2) &&
      non_empty && x2 - x1 >= 8 && y2 - y1 >= 8)
    {
      *x = x1;
      *y = y1;
      *w = x2 - x1;
      *h = y2 - y1;
      return;
    }
  *x = *y = 0;
  *w = gimp_image_get_width (image);
  *h = gimp_image_get_height (image);
}

static gboolean
is_live (Live *lv, GimpLayer *layer)
{
  return lv->live && gimp_item_get_id (GIMP_ITEM (layer)) ==
                         gimp_item_get_id (GIMP_ITEM (lv->live));
}

/* Adds or removes the live layer without an undo step; a clean image stays
 * clean.
 *
 * GIMP counts every undo push in the image's dirty count even while undo is
 * frozen (gimp_image_undo_push marks the image dirty before it looks at the
 * freeze), and only an undo the user makes lowers that count again; the PDB
 * can only set it to 0 (gimp_image_clean_all). So: the layer gets its
 * offsets before it is inserted (an item not yet in the image moves
 * without an undo push: the insert is the only count), and an image that
 * was clean before the insert or the removal is marked clean after it. When
 * the image has unsaved changes at that moment, the count stays higher by
 * 1 for the insert and 2 for the removal (a group and the removal itself):
 * it then only ever errs towards asking to save. */
static void
live_layer_remove (Live *lv)
{
  gboolean was_dirty;

  if (! lv->live)
    return;
  if (gimp_image_is_valid (lv->image) &&
      gimp_item_is_valid (GIMP_ITEM (lv->live)))
    {
      was_dirty = gimp_image_is_dirty (lv->image);
      gimp_image_undo_freeze (lv->image);
      gimp_image_remove_layer (lv->image, lv->live);
      gimp_image_undo_thaw (lv->image);
      if (! was_dirty)
        gimp_image_clean_all (lv->image);
      gimp_displays_flush ();
    }
  lv->live = NULL;
  lv->live_tattoo = 0;
}

static void
live_layer_add (Live *lv)
{
  GimpImage    *image = lv->image;
  gboolean      was_dirty = gimp_image_is_dirty (image);
  GimpLayer   **selected = gimp_image_get_selected_layers (image);
  GimpImageType type = gimp_image_get_base_type (image) == GIMP_GRAY
                           ? GIMP_GRAYA_IMAGE
                           : GIMP_RGBA_IMAGE;

  gimp_image_undo_freeze (image);
  lv->live = gimp_layer_new (image, _ ("Live result"), lv->rw, lv->rh, type,
                             100.0, GIMP_LAYER_MODE_NORMAL);
  /* before the insert: moving an item that is in the image counts twice */
  gimp_layer_set_offsets (lv->live, lv->rx, lv->ry);
  gimp_image_insert_layer (image, lv->live, NULL, 0);
  /* the user goes on painting where they were */
  if (selected && selected[0])
    gimp_image_set_selected_layers (image, (const GimpLayer **) selected);
  gimp_image_undo_thaw (image);
  if (! was_dirty)
    gimp_image_clean_all (image);
  g_free (selected);
  lv->live_tattoo = gimp_item_get_tattoo (GIMP_ITEM (lv->live));
  gimp_displays_flush ();
}

static guint64
hash_bytes (guint64 h, gconstpointer data, gsize n)
{
  const guint8 *p = data;
  gsize         i;

  for (i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ULL; /* FNV-1a */
  return h;
}

/* A cheap fingerprint of what the work area shows, the live layer left
 * out: each layer's GIMP preview of the work area at <= THUMB_SIDE px. */
static guint64
fingerprint (Live *lv)
{
  GimpLayer **layers = gimp_image_get_layers (lv->image);
  guint64     h = 14695981039346656037ULL;
  gint        area[4] = { lv->rx, lv->ry, lv->rw, lv->rh };
  gint        i;

  h = hash_bytes (h, area, sizeof (area));
  for (i = 0; layers && layers[i]; i++)
    {
      GimpDrawable *d = GIMP_DRAWABLE (layers[i]);
      gint          ox, oy, w, h2, x1, y1, x2, y2;
      gint          facts[6];
      gdouble       opacity;

      if (is_live (lv, layers[i]))
        continue;
      gimp_drawable_get_offsets (d, &ox, &oy);
      w = gimp_drawable_get_width (d);
      h2 = gimp_drawable_get_height (d);
      opacity = gimp_layer_get_opacity (layers[i]);
      facts[0] = gimp_item_get_id (GIMP_ITEM (d));
      facts[1] = gimp_item_get_visible (GIMP_ITEM (d));
      facts[2] = (gint) gimp_layer_get_mode (layers[i]);
      facts[3] = ox;
      facts[4] = oy;
      facts[5] = w * 65536 + h2;
      h = hash_bytes (h, facts, sizeof (facts));
      h = hash_bytes (h, &opacity, sizeof (opacity));
      if (! facts[1])
        continue;
      x1 = MAX (lv->rx, ox);
      y1 = MAX (lv->ry, oy);
      x2 = MIN (lv->rx + lv->rw, ox + w);
      y2 = MIN (lv->ry + lv->rh, oy + h2);
      if (x2 > x1 && y2 > y1)
        {
          gint    tw, th, aw = 0, ah = 0, bpp = 0;
          gdouble s = MIN (1.0, (gdouble) THUMB_SIDE / MAX (x2 - x1, y2 - y1));
          GBytes *b;

          tw = MAX (1, (gint) ((x2 - x1) * s));
          th = MAX (1, (gint) ((y2 - y1) * s));
          b = gimp_drawable_get_sub_thumbnail_data (
              d, x1 - ox, y1 - oy, x2 - x1, y2 - y1, tw, th, &aw, &ah, &bpp);
          if (b)
            {
              gsize         n;
              gconstpointer p = g_bytes_get_data (b, &n);

              h = hash_bytes (h, p, n);
              g_bytes_unref (b);
            }
        }
    }
  g_free (layers);
  return h;
}

/* The composite of the work area without the live layer, as F32 RGB over
 * white, scaled to the work size: read from a duplicate of the image. */
static ldm_image *
read_composite (Live *lv, GError **error)
{
  GimpImage  *dup = gimp_image_duplicate (lv->image);
  GimpLayer **layers;
  GimpLayer  *merged;
  ldm_image  *rgba = NULL, *rgb = NULL, *out = NULL;
  ldm_error   err;
  gint        i, x, y;

  if (! dup)
    {
      g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0,
                           _ ("Could not read the image."));
      return NULL;
    }
  gimp_image_undo_disable (dup);
  layers = gimp_image_get_layers (dup);
  for (i = 0; layers && layers[i]; i++)
    if (gimp_item_get_tattoo (GIMP_ITEM (layers[i])) == lv->live_tattoo ||
        (i == 0 && lv->live &&
         ! g_strcmp0 (gimp_item_get_name (GIMP_ITEM (layers[i])),
                      _ ("Live result"))))
      {
        gimp_image_remove_layer (dup, layers[i]);
        break;
      }
  g_free (layers);
  merged = gimp_image_merge_visible_layers (dup, GIMP_CLIP_TO_IMAGE);
  rgba = ldm_image_new (lv->rw, lv->rh, 4, LDM_PIXEL_F32);
  rgb = ldm_image_new (lv->rw, lv->rh, 3, LDM_PIXEL_F32);
  if (rgba && rgb)
    {
      if (merged)
        {
          GeglBuffer *buf = gimp_drawable_get_buffer (GIMP_DRAWABLE (merged));
          gint        ox, oy;

          gimp_drawable_get_offsets (GIMP_DRAWABLE (merged), &ox, &oy);
          gegl_buffer_get (
              buf, GEGL_RECTANGLE (lv->rx - ox, lv->ry - oy, lv->rw, lv->rh),
              1.0, babl_format ("R'G'B'A float"), rgba->data,
              (gint) rgba->stride, GEGL_ABYSS_NONE);
          g_object_unref (buf);
        }
      else
        memset (rgba->data, 0, rgba->stride * rgba->height);
      for (y = 0; y < lv->rh; y++)
        {
          const gfloat *s =
              (const gfloat *) ((guint8 *) rgba->data + y * rgba->stride);
          gfloat *d = (gfloat *) ((guint8 *) rgb->data + y * rgb->stride);

          for (x = 0; x < lv->rw; x++)
            for (i = 0; i < 3; i++)
              d[3 * x + i] =
                  s[4 * x + i] * s[4 * x + 3] + (1.0f - s[4 * x + 3]);
        }
      ldm_error_clear (&err);
      if (ldm_image_resize (rgb, lv->ww, lv->wh, &out, &err) != LDM_OK)
        g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0, err.msg);
    }
  else
    g_set_error_literal (error, GIMP_PLUG_IN_ERROR, 0,
                         _ ("Not enough memory for this image size."));
  gimp_image_delete (dup);
  ldm_image_free (rgba);
  ldm_image_free (rgb);
  return out;
}

static ldm_precision
config_precision (GimpProcedureConfig *config)
{
  gchar        *name = NULL;
  ldm_precision p = LDM_PRECISION_F32;

  g_object_get (config, "precision", &name, NULL);
  if (name && ! strcmp (name, "auto"))
    {
      /* the engine's choice: bf16 where this CPU runs it much faster
       * (AMX), f32 elsewhere; the peaks measured once per machine */
      gchar *cache = g_build_filename (g_get_user_cache_dir (), "gimp-ldm",
                                       "cpu-peaks", NULL);

      p = ldm_precision_auto (cache, NULL);
      g_free (cache);
    }
  else if (name)
    ldm_precision_parse (name, &p);
  g_free (name);
  return p;
}

static Request *
make_request (Live *lv, ldm_image *init)
{
  Request *r = g_new0 (Request, 1);
  gint     steps = 2;
  gdouble  strength = 0.5;
  guint    seed = 0;

  g_object_get (lv->config, "prompt", &r->prompt, "negative-prompt",
                &r->negative_prompt, "steps", &steps, "strength", &strength,
                "seed", &seed, NULL);
  r->gen = ++lv->gen;
  r->init = init;
  r->steps = CLAMP (steps, 1, 4);
  r->strength = CLAMP (strength, 0.05, 1.0);
  /* the schedule whose last `strength` part is `steps` long */
  r->job_steps = MIN (1000, (gint) ceil (r->steps / r->strength - 1e-6));
  while ((gint) (r->job_steps * r->strength) < r->steps)
    r->job_steps++;
  r->seed = seed;
  if (lv->few)
    {
      r->cfg_scale = 1.0;
      r->sampler = g_strdup (! strcmp (lv->few, "lcm") ? "lcm" : "euler_a");
    }
  else
    {
      r->cfg_scale = lv->info.rec_cfg > 0.0f ? lv->info.rec_cfg : 7.0;
      r->sampler =
          g_strdup (lv->info.rec_sampler[0] ? lv->info.rec_sampler : "euler_a");
    }
  r->model_path = g_strdup (lv->model_path);
  r->taesd_path = g_strdup (lv->taesd_path);
  r->lora_path = g_strdup (lv->lora_path);
  r->roots = g_strdup (lv->roots);
  r->precision = config_precision (lv->config);
  r->t_change = g_get_monotonic_time ();
  return r;
}

/* Writes the F32 RGB image, opaque, into the whole drawable in one
 * gegl_buffer_set: the fewest tile transfers, so the time in which the user
 * could delete the layer under the write stays short (GIMP ends a plug-in
 * that reads a removed drawable's tiles). */
static gboolean
write_layer (GimpDrawable *drawable, const ldm_image *img)
{
  GeglBuffer *buf;
  gfloat     *px;
  gint        x, y, i;

  if (! gimp_item_is_valid (GIMP_ITEM (drawable)))
    return FALSE;
  px = g_try_new (gfloat, (gsize) img->width * img->height * 4);
  if (! px)
    return FALSE;
  for (y = 0; y < img->height; y++)
    {
      const gfloat *s =
          (const gfloat *) ((guint8 *) img->data + y * img->stride);
      gfloat *d = px + (gsize) y * img->width * 4;

      for (x = 0; x < img->width; x++)
        {
          for (i = 0; i < 3; i++)
            d[4 * x + i] = CLAMP (s[3 * x + i], 0.0f, 1.0f);
          d[4 * x + 3] = 1.0f;
        }
    }
  buf = gimp_drawable_get_buffer (drawable);
  if (! buf)
    {
      g_free (px);
      return FALSE;
    }
  gegl_buffer_set (buf, GEGL_RECTANGLE (0, 0, img->width, img->height), 0,
                   babl_format ("R'G'B'A float"), px, GEGL_AUTO_ROWSTRIDE);
  gegl_buffer_flush (buf);
  g_object_unref (buf);
  g_free (px);
  gimp_drawable_update (drawable, 0, 0, img->width, img->height);
  return TRUE;
}

/* The result (work size) into the live layer (work area size). */
static gboolean
show_result (Live *lv, const Result *res)
{
  ldm_image *img = NULL;
  ldm_error  err;
  gboolean   ok;

  if (! lv->live)
    return FALSE;
  ldm_error_clear (&err);
  if (ldm_image_resize (res->image, lv->rw, lv->rh, &img, &err) != LDM_OK)
    return FALSE;
  ok = write_layer (GIMP_DRAWABLE (lv->live), img);
  if (ok)
    gimp_displays_flush ();
  ldm_image_free (img);
  return ok;
}

static void
set_state_text (Live *lv, const gchar *text)
{
  gimp_ldm_live_dialog_set_state (lv->dialog, text);
}

/* POLL_MS: progress, results and errors from the worker. */
static gboolean
on_poll (gpointer data)
{
  Live    *lv = data;
  Result  *res;
  gint     running, step, total, latest;
  gboolean pending;

  if (lv->ended)
    return G_SOURCE_REMOVE;
  g_mutex_lock (&lv->engine.lock);
  res = lv->engine.result;
  lv->engine.result = NULL;
  running = lv->engine.running_gen;
  step = lv->engine.step;
  total = lv->engine.total;
  latest = lv->engine.latest;
  pending = lv->engine.pending != NULL;
  g_mutex_unlock (&lv->engine.lock);

  if (res && res->error)
    {
      gchar *msg = g_strdup_printf (_ ("Live painting ended: %s"), res->error);

      result_free (res);
      live_end (lv, msg);
      g_free (msg);
      return G_SOURCE_REMOVE;
    }
  if (res && res->image && res->req->gen > lv->shown_gen)
    {
      if (! gimp_image_is_valid (lv->image) ||
          ! gimp_item_is_valid (GIMP_ITEM (lv->live)))
        {
          result_free (res);
          return G_SOURCE_CONTINUE; /* the watch ends it with the reason */
        }
      if (show_result (lv, res))
        {
          gdouble latency =
              (g_get_monotonic_time () - res->req->t_change) / 1e6;
          gchar *text;

          /* TRANSLATORS: latency line: seconds from the change to the
           * result, seconds of the job, ms reading the picture, decoder */
          text = g_strdup_printf (
              _ ("Last result: %.2f s after the change "
                 "(job %.2f s, reading the picture %.0f ms, "
                 "%s)"),
              latency, res->job_s, lv->read_ms, res->taesd ? "TAESD" : "VAE");
          gimp_ldm_live_dialog_set_latency (lv->dialog, text);
          g_free (text);
          result_free (lv->shown);
          lv->shown = res;
          lv->shown_gen = res->req->gen;
          gimp_ldm_live_dialog_set_apply_sensitive (lv->dialog, TRUE);
          res = NULL;
        }
    }
  if (running)
    {
      gchar *text =
          total > 0
              /* TRANSLATORS: live state: step k of n */
              ? g_strdup_printf (_ ("Running: step %d of %d"), step, total)
              : g_strdup (_ ("Running: preparing"));

      set_state_text (lv, text);
      g_free (text);
    }
  else if (pending)
    set_state_text (lv, _ ("Running: preparing"));
  else if (res && res->cancelled && res->req->gen == latest)
    set_state_text (lv, _ ("Cancelled"));
  else if (lv->shown_gen == latest && lv->last_state_gen != latest)
    {
      set_state_text (lv, _ ("Waiting for a change"));
      lv->last_state_gen = latest;
    }
  result_free (res);
  return G_SOURCE_CONTINUE;
}

/* WATCH_MS: whether the image, the live layer or the picture changed. */
static gboolean
on_watch (gpointer data)
{
  Live   *lv = data;
  gint    x, y, w, h;
  guint64 fp;
  gint64  t0;

  if (lv->ended)
    return G_SOURCE_REMOVE;
  if (! gimp_image_is_valid (lv->image))
    {
      live_end (lv, _ ("The image was closed: live painting ended."));
      return G_SOURCE_REMOVE;
    }
  if (lv->live && ! gimp_item_is_valid (GIMP_ITEM (lv->live)))
    {
      lv->live = NULL;
      live_end (lv, _ ("The “Live result” layer was deleted: live painting "
                       "ended."));
      return G_SOURCE_REMOVE;
    }
  if (lv->model_changed)
    {
      live_resolve_model (lv);
      lv->model_changed = FALSE;
    }
  if (lv->settings_changed)
    {
      lv->have_fingerprint = FALSE;
      lv->settings_changed = FALSE;
    }
  if (! lv->model_ok)
    return G_SOURCE_CONTINUE;

  work_area (lv->image, &x, &y, &w, &h);
  if (! lv->live || x != lv->rx || y != lv->ry || w != lv->rw || h != lv->rh)
    {
      live_layer_remove (lv);
      lv->rx = x;
      lv->ry = y;
      lv->rw = w;
      lv->rh = h;
      live_layer_add (lv);
      lv->have_fingerprint = FALSE;
      lv->shown_gen = lv->gen; /* nothing older is shown in the new layer */
    }
  work_size (lv);
  t0 = g_get_monotonic_time ();
  fp = fingerprint (lv);
  lv->watch_ms = (g_get_monotonic_time () - t0) / 1e3;
  if (! lv->have_fingerprint || fp != lv->fingerprint)
    {
      GError    *error = NULL;
      ldm_image *init;

      lv->fingerprint = fp;
      lv->have_fingerprint = TRUE;
      t0 = g_get_monotonic_time ();
      init = read_composite (lv, &error);
      lv->read_ms = (g_get_monotonic_time () - t0) / 1e3;
      if (! init)
        {
          live_end (lv, error->message);
          g_clear_error (&error);
          return G_SOURCE_REMOVE;
        }
      /* the change was seen about half a watch period before now */
      engine_submit (&lv->engine, make_request (lv, init));
    }
  return G_SOURCE_CONTINUE;
}

static void
on_config_notify (GObject *config, GParamSpec *pspec, gpointer data)
{
  Live *lv = data;

  lv->settings_changed = TRUE;
  if (! strcmp (pspec->name, "model") ||
      ! strcmp (pspec->name, "model-folders"))
    lv->model_changed = TRUE;
}

/* Ends live mode: the worker stops, the live layer goes; the dialog stays
 * with the message until closed (or closes at once without one). */
static void
live_end (Live *lv, const gchar *message)
{
  if (lv->ended)
    return;
  lv->ended = TRUE;
  engine_stop (&lv->engine);
  live_layer_remove (lv);
  if (message)
    {
      lv->end_message = g_strdup (message);
      gimp_ldm_live_dialog_set_ended (lv->dialog, message);
    }
  else if (g_main_loop_is_running (lv->loop))
    g_main_loop_quit (lv->loop);
}

/* Apply: the shown result as a normal layer with its recipe, one undo step. */
static void
on_apply (gpointer data)
{
  Live         *lv = data;
  Result       *res = lv->shown;
  GimpLdmSpec   spec;
  GimpLayer    *layer;
  ldm_image    *img = NULL;
  ldm_error     err;
  GimpParasite *p;
  gchar        *recipe, *name, *flat;
  GimpImageType type;

  if (lv->ended || ! res || ! gimp_image_is_valid (lv->image))
    return;
  ldm_error_clear (&err);
  if (ldm_image_resize (res->image, lv->rw, lv->rh, &img, &err) != LDM_OK)
    return;

  gimp_ldm_spec_init (&spec, GIMP_LDM_PROC_REFINE);
  spec.random_seed = FALSE;
  spec.prompt = g_strdup (res->req->prompt);
  spec.negative_prompt = g_strdup (res->req->negative_prompt);
  spec.steps = res->req->job_steps;
  spec.cfg_scale = res->req->cfg_scale;
  spec.seed = res->req->seed;
  spec.strength = res->req->strength;
  g_free (spec.sampler);
  spec.sampler = g_strdup (res->req->sampler);
  spec.model_path = g_strdup (res->req->model_path);
  spec.model_hash = gimp_ldm_models_quick_hash (res->req->model_path);
  g_free (spec.precision);
  spec.precision = g_strdup (ldm_precision_name (res->req->precision));
  if (res->req->lora_path)
    {
      gchar *base = g_path_get_basename (res->req->lora_path);
      gchar *dot = strrchr (base, '.');

      if (dot)
        *dot = '\0';
      spec.loras = g_strdup (base);
      g_free (base);
    }
  spec.rect_x = lv->rx;
  spec.rect_y = lv->ry;
  spec.rect_w = lv->rw;
  spec.rect_h = lv->rh;
  spec.work_w = res->image->width;
  spec.work_h = res->image->height;
  spec.seconds = res->job_s;
  recipe = gimp_ldm_spec_to_recipe (&spec);
  {
    /* what the recipe cannot say otherwise: the input was the composite */
    gchar *full = g_strconcat (recipe, "source=live-composite\n",
                               res->taesd ? "decoder=taesd\n" : "", NULL);

    g_free (recipe);
    recipe = full;
  }

  flat = g_strdup (spec.prompt ? spec.prompt : "");
  g_strdelimit (flat, "\r\n\t", ' ');
  g_strstrip (flat);
  if (g_utf8_strlen (flat, -1) > 48)
    {
      gchar *cut = g_utf8_substring (flat, 0, 47);

      g_free (flat);
      flat = g_strconcat (cut, "…", NULL);
      g_free (cut);
    }
  /* TRANSLATORS: applied live result layer name: prompt and seed */
  name = g_strdup_printf (_ ("%s (live, seed %u)"),
                          *flat ? flat : _ ("live result"), (guint) spec.seed);
  type = gimp_image_get_base_type (lv->image) == GIMP_GRAY ? GIMP_GRAYA_IMAGE
                                                           : GIMP_RGBA_IMAGE;

  gimp_image_undo_group_start (lv->image);
  layer = gimp_layer_new (lv->image, name, lv->rw, lv->rh, type, 100.0,
                          GIMP_LAYER_MODE_NORMAL);
  /* under the live layer, above everything else */
  gimp_layer_set_offsets (layer, lv->rx, lv->ry);
  gimp_image_insert_layer (lv->image, layer, NULL, lv->live ? 1 : 0);
  write_layer (GIMP_DRAWABLE (layer), img);
  p = gimp_parasite_new (GIMP_LDM_RECIPE_PARASITE,
                         GIMP_PARASITE_PERSISTENT | GIMP_PARASITE_UNDOABLE,
                         strlen (recipe) + 1, recipe);
  gimp_item_attach_parasite (GIMP_ITEM (layer), p);
  gimp_parasite_free (p);
  gimp_image_undo_group_end (lv->image);
  gimp_displays_flush ();

  gimp_ldm_live_dialog_set_state (lv->dialog, _ ("Applied: the result is a "
                                                 "new layer."));
  g_free (name);
  g_free (flat);
  g_free (recipe);
  ldm_image_free (img);
  gimp_ldm_spec_clear (&spec);
}

static void
on_close (gpointer data)
{
  Live *lv = data;

  live_end (lv, NULL);
  if (g_main_loop_is_running (lv->loop))
    g_main_loop_quit (lv->loop);
}

static GimpValueArray *
live_run (GimpProcedure       *procedure,
          GimpRunMode          run_mode,
          GimpImage           *image,
          GimpDrawable       **drawables,
          GimpProcedureConfig *config,
          gpointer             run_data)
{
  Live                   lv = { 0 };
  GimpLdmLiveDialogHooks hooks = { on_apply, on_close, &lv };
  GError                *error = NULL;

  if (run_mode != GIMP_RUN_INTERACTIVE)
    {
      g_set_error_literal (&error, GIMP_PLUG_IN_ERROR, 0,
                           _ ("Live painting is interactive only: open it "
                              "from Filters ▸ Generative ▸ Live Painting…"));
      return gimp_procedure_new_return_values (procedure,
                                               GIMP_PDB_CALLING_ERROR, error);
    }
  gimp_ui_init ("gimp-ldm");
  lv.image = image;
  lv.config = config;
  lv.loop = g_main_loop_new (NULL, FALSE);
  lv.dialog = gimp_ldm_live_dialog_new (procedure, config, &hooks);
  live_resolve_model (&lv);
  engine_start (&lv.engine);
  g_signal_connect (config, "notify", G_CALLBACK (on_config_notify), &lv);
  set_state_text (&lv, _ ("Waiting for a change"));
  gtk_widget_show (lv.dialog);
  lv.watch_id = g_timeout_add (WATCH_MS, on_watch, &lv);
  lv.poll_id = g_timeout_add (POLL_MS, on_poll, &lv);
  on_watch (&lv);

  g_main_loop_run (lv.loop);

  live_end (&lv, NULL);
  g_signal_handlers_disconnect_by_data (config, &lv);
  gtk_widget_destroy (lv.dialog);
  g_main_loop_unref (lv.loop);
  result_free (lv.shown);
  g_free (lv.model_path);
  g_free (lv.lora_path);
  g_free (lv.taesd_path);
  g_free (lv.roots);
  g_free (lv.end_message);
  /* sources still queued see lv.ended; remove them before lv goes */
  g_source_remove_by_user_data (&lv);
  g_source_remove_by_user_data (&lv);
  return gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
}

static GimpChoice *
precision_choice (void)
{
  GimpChoice *choice = gimp_choice_new ();

  gimp_choice_add (choice, "auto", 0,
                   _ ("auto (bf16 where this CPU runs it much faster)"), NULL);
  gimp_choice_add (choice, "f32", 1, _ ("f32 (the reference result)"), NULL);
  gimp_choice_add (choice, "bf16", 2,
                   _ ("bf16 (AMX or AVX512-BF16 CPUs; faster only on some)"),
                   NULL);
  return choice;
}

GimpProcedure *
gimp_ldm_live_create_procedure (GimpPlugIn *plug_in)
{
  GimpProcedure *procedure;

  procedure = gimp_image_procedure_new (plug_in, GIMP_LDM_LIVE_PROC,
                                        GIMP_PDB_PROC_TYPE_PLUGIN, live_run,
                                        NULL, NULL);
  gimp_procedure_set_image_types (procedure, "RGB*, GRAY*");
  gimp_procedure_set_sensitivity_mask (
      procedure, GIMP_PROCEDURE_SENSITIVE_DRAWABLE |
                     GIMP_PROCEDURE_SENSITIVE_DRAWABLES |
                     GIMP_PROCEDURE_SENSITIVE_NO_DRAWABLES);
  gimp_procedure_set_menu_label (procedure, _ ("_Live Painting..."));
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Generative");
  gimp_procedure_set_documentation (
      procedure,
      _ ("Paint, and a few-step model redraws the picture as you go"),
      _ ("Interactive only. While the dialog is open, every change of the "
         "picture inside the work area (the selection's bounds, else the whole "
         "image) is redrawn by image-to-image with a few-step model into a "
         "\"Live result\" layer at the top of the image, which leaves no undo "
         "steps. Apply keeps the current result as a normal layer; Close "
         "removes "
         "the live layer."),
      GIMP_LDM_LIVE_PROC);
  gimp_procedure_set_attribution (procedure, "gimp-ldm authors",
                                  "gimp-ldm authors", "2026");

  gimp_procedure_add_string_argument (procedure, "prompt", _ ("_Prompt"),
                                      _ ("What the picture should show"), "",
                                      G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "negative-prompt",
                                      _ ("_Negative prompt"),
                                      _ ("What the picture should not show "
                                         "(unused by few-step models, which "
                                         "run without guidance)"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "strength", _ ("Stren_gth"),
                                      _ ("How much to redraw (0.05: almost "
                                         "nothing, 1: everything)"),
                                      0.05, 1.0, 0.6, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "steps", _ ("S_teps"),
                                   _ ("Denoising steps run for each change "
                                      "(1 to 4)"),
                                   1, 4, 2, G_PARAM_READWRITE);
  gimp_procedure_add_uint_argument (procedure, "seed", _ ("Se_ed"),
                                    _ ("Seed of the noise, fixed so that the "
                                       "result stays stable while you paint"),
                                    0, G_MAXUINT32, 1, G_PARAM_READWRITE);
  gimp_procedure_add_file_argument (procedure, "model", _ ("Mo_del"),
                                    _ ("Model file (.safetensors) or diffusers "
                                       "folder; empty: the first few-step "
                                       "model found, else the demo model"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY, TRUE, NULL,
                                    G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "precision", _ ("Precision"),
                                      _ ("Matrix products in f32 or with bf16 "
                                         "operands"),
                                      precision_choice (), "auto",
                                      G_PARAM_READWRITE);
  gimp_procedure_add_string_aux_argument (procedure, "model-folders",
                                          _ ("Model folders"),
                                          _ ("Folders searched for models, "
                                             "separated by ':'"),
                                          "", G_PARAM_READWRITE);
  return procedure;
}
