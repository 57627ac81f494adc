/* Models and jobs (public API). Loading opens and maps the files and detects
 * the family and reads the scheduler settings; the networks load on the
 * first job (pl_model_ensure, called here in the job entry points); jobs
 * validate their parameters up front and run in generate.c (upscale_sr.c for
 * the ESRGAN-class upscalers). */
#include "ldm.h"
#include "core/eval_options.h"
#include "core/status.h"
#include "core/value.h"
#include "core/arena.h"
#include "core/threads.h"
#include "core/wcache.h"
#include "io/source.h"
#include "models/family.h"
#include "pipeline/pipeline.h"

#include <jansson.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ldm_beta_schedule parse_beta_schedule(const char *v) {
  if (v && !strcmp(v, "linear")) return LDM_BETAS_LINEAR;
  if (v && !strcmp(v, "squaredcos_cap_v2")) return LDM_BETAS_SQUAREDCOS_CAP_V2;
  return LDM_BETAS_SCALED_LINEAR;
}

/* scheduler/scheduler_config.json (and low_res_scheduler/ for x4): the keys
 * that change what a sampler does for this model, each in its range. */
ldm_status pl_sched_config_json(pl_sched_config *s, const char *text, bool low, const char *file, ldm_error *err) {
  json_error_t je;
  json_t *root = json_loads(text, 0, &je);
  if (!json_is_object(root)) {
    json_decref(root);
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: %s (line %d)", file, root ? "not an object" : je.text, je.line);
  }
  double b0 = low ? s->low_beta_start : 0.00085, b1 = low ? s->low_beta_end : 0.012;
  ldm_status st = ldm_json_double_open(root, "beta_start", 0.0, 1.0, &b0, file, err);
  if (st == LDM_OK) st = ldm_json_double_open(root, "beta_end", 0.0, 1.0, &b1, file, err);
  bool betas = json_is_number(json_object_get(root, "beta_start")) && json_is_number(json_object_get(root, "beta_end"));
  json_t *v;
  if (st == LDM_OK && betas && low) {
    s->low_beta_start = b0;
    s->low_beta_end = b1;
    s->low_beta_schedule = parse_beta_schedule(json_string_value(json_object_get(root, "beta_schedule")));
  } else if (st == LDM_OK && betas) {
    s->has_betas = true;
    s->beta_start = b0;
    s->beta_end = b1;
    s->beta_schedule = parse_beta_schedule(json_string_value(json_object_get(root, "beta_schedule")));
  }
  if (st == LDM_OK && !low) {
    if ((v = json_object_get(root, "timestep_spacing")) && json_is_string(v)) {
      const char *t = json_string_value(v);
      s->has_spacing = true;
      s->spacing = !strcmp(t, "trailing") ? LDM_SPACING_TRAILING : !strcmp(t, "linspace") ? LDM_SPACING_LINSPACE
                                                                                          : LDM_SPACING_LEADING;
    }
    if (json_object_get(root, "steps_offset") && !json_is_null(json_object_get(root, "steps_offset"))) {
      st = ldm_json_int(root, "steps_offset", -1, 0, 1000, &s->steps_offset, file, err);
      s->has_offset = st == LDM_OK;
    }
    if ((v = json_object_get(root, "rescale_betas_zero_snr")) && json_is_boolean(v)) {
      s->has_zsnr = true;
      s->zsnr = json_is_true(v);
    }
  }
  json_decref(root);
  return st;
}

static ldm_status read_sched_file(ldm_model *m, const char *rel, bool low, ldm_error *err) {
  char path[4096], file[4200];
  if (!ldm_source_file(m->src, rel, path, sizeof path)) return LDM_OK;
  snprintf(file, sizeof file, "%s: %s", ldm_source_path(m->src), rel);
  FILE *f = fopen(path, "rb");
  if (!f) return ldm_fail(err, LDM_ERR_IO, "%s: cannot open", file);
  char *text = NULL;
  size_t cap = 0, len = 0, n;
  char buf[4096];
  ldm_status st = LDM_OK;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0 && st == LDM_OK) {
    if (len + n + 1 > cap || !text) {
      cap = (len + n + 1) * 2;
      char *t = cap <= ((size_t)16 << 20) ? realloc(text, cap) : NULL;
      if (!t) st = ldm_fail(err, LDM_ERR_FORMAT, "%s: too large or out of memory", file);
      else text = t;
    }
    if (st == LDM_OK) {
      memcpy(text + len, buf, n);
      len += n;
    }
  }
  fclose(f);
  if (st == LDM_OK && text) text[len] = '\0';
  if (st == LDM_OK) st = pl_sched_config_json(&m->sched, text ? text : "", low, file, err);
  free(text);
  return st;
}

static ldm_status read_sched_config(ldm_model *m, ldm_error *err) {
  pl_sched_config *s = &m->sched;
  s->low_beta_start = 0.0001;
  s->low_beta_end = 0.02;
  s->low_beta_schedule = LDM_BETAS_SCALED_LINEAR;
  LDM_TRY(read_sched_file(m, "scheduler/scheduler_config.json", false, err));
  return read_sched_file(m, "low_res_scheduler/scheduler_config.json", true, err);
}

/* "unet.heads=2,vae.groups=4,...": the settings a checkpoint's yaml holds
 * (from ldm_model_params.options or the file's "ldm.options" metadata; the
 * eval runners read the same metadata, core/eval_options.h). */
static ldm_status parse_model_options(ldm_model *m, const char *opts, bool from_file, ldm_error *err) {
  char where[4200];
  if (from_file)
    snprintf(where, sizeof where, "%s: metadata ldm.options", ldm_source_path(m->src));
  else
    snprintf(where, sizeof where, "model options");
  LDM_TRY(ldm_kv_check_keys(opts, "unet.heads, unet.head_dim, unet.groups, vae.groups, text.heads", where, err));
  LDM_TRY(ldm_kv_int(opts, "unet.heads", 1, 4096, 0, &m->unet_ov.num_heads, where, err));
  LDM_TRY(ldm_kv_int(opts, "unet.head_dim", 1, 4096, 0, &m->unet_ov.head_dim, where, err));
  LDM_TRY(ldm_kv_int(opts, "unet.groups", 1, 4096, 0, &m->unet_ov.groups, where, err));
  LDM_TRY(ldm_kv_int(opts, "vae.groups", 1, 4096, 0, &m->vae_groups, where, err));
  return ldm_kv_int(opts, "text.heads", 1, 4096, 0, &m->text_heads, where, err);
}

ldm_status pl_model_ensure(ldm_model *m, ldm_error *err) {
  if (pl_model_is_sr(m)) return m->sr ? LDM_OK : ldm_sr_load(&m->sr, m->src, err);
  if (!m->unet) LDM_TRY(ldm_unet_load(&m->unet, m->src, &m->unet_ov, err));
  if (!m->vae) {
    ldm_vae_load_opts o = {0};
    o.family = m->fam.family;
    o.groups = m->vae_groups;
    LDM_TRY(ldm_vae_load(&m->vae, m->vae_src ? m->vae_src : m->src, &o, err));
  }
  if (!m->text) LDM_TRY(ldm_text_cond_load(&m->text, m->src, m->text_heads, err));
  if (!m->taesd && m->taesd_src) {
    LDM_TRY(ldm_taesd_load(&m->taesd, m->taesd_src, NULL, err));
    if (!ldm_taesd_has_decoder(m->taesd))
      return ldm_fail(err, LDM_ERR_MISSING, "%s: this TAESD file has no decoder (previews need taesd_decoder)",
                      ldm_source_path(m->taesd_src));
  }
  return LDM_OK;
}

void ldm_model_params_init(ldm_model_params *p) {
  memset(p, 0, sizeof *p);
}

ldm_status ldm_model_load(ldm_model **out, const ldm_model_params *p, ldm_error *err) {
  *out = NULL;
  ldm_error_clear(err);
  if (!p || !p->path) return ldm_fail(err, LDM_ERR_INVALID_ARG, "model: no path given");
  ldm_model *m = calloc(1, sizeof *m);
  if (!m) return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", p->path);
  ldm_status st = ldm_source_open(&m->src, p->path, err);
  /* ESRGAN-class upscalers first: their files hold no UNet */
  if (st == LDM_OK) st = ldm_sr_probe(m->src, &m->sr_cfg, err);
  bool sr = st == LDM_OK && m->sr_cfg.arch != LDM_SR_NONE;
  if (sr) {
    m->fam.family = m->sr_cfg.arch == LDM_SR_RRDB ? LDM_FAMILY_ESRGAN : LDM_FAMILY_SRVGG;
    if (p->family && ldm_family_from_name(p->family) != m->fam.family)
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: family '%s' asked for, but the file holds an %s upscaler", p->path,
                    p->family, ldm_family_name(m->fam.family));
    if (st == LDM_OK && (p->vae_path || p->taesd_path))
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: an %s upscaler takes no VAE or TAESD", p->path,
                    ldm_family_name(m->fam.family));
  } else if (st == LDM_OK) {
    st = ldm_family_detect(m->src, &m->fam, err);
  }
  if (st == LDM_OK && !sr && p->family &&
      (ldm_family_from_name(p->family) == LDM_FAMILY_ESRGAN || ldm_family_from_name(p->family) == LDM_FAMILY_SRVGG))
    st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: family '%s' asked for, but the file holds no such upscaler",
                  p->path, p->family);
  if (sr) goto sr_done;
  if (st == LDM_OK && p->vae_path) st = ldm_source_open(&m->vae_src, p->vae_path, err);
  if (st == LDM_OK && p->taesd_path) st = ldm_source_open(&m->taesd_src, p->taesd_path, err);
  if (st == LDM_OK) st = read_sched_config(m, err);
  if (st == LDM_OK) st = pl_model_read_settings(m, err);
  if (st == LDM_OK)
    st = parse_model_options(m, p->options ? p->options : ldm_source_metadata(m->src, "ldm.options"),
                             !p->options, err);
  if (st == LDM_OK && p->family) {
    ldm_family f = ldm_family_from_name(p->family);
    if (f == LDM_FAMILY_UNKNOWN)
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "model: unknown family '%s'", p->family);
    else
      m->fam.family = f;
  }
  if (st == LDM_OK && p->prediction) {
    if (strcmp(p->prediction, "epsilon") == 0) m->fam.prediction = LDM_PRED_EPSILON;
    else if (strcmp(p->prediction, "v") == 0) m->fam.prediction = LDM_PRED_V;
    else if (strcmp(p->prediction, "sample") == 0) m->fam.prediction = LDM_PRED_SAMPLE;
    else st = ldm_fail(err, LDM_ERR_INVALID_ARG, "model: unknown prediction type '%s' (epsilon, v, sample)", p->prediction);
  }
sr_done:
  if (st != LDM_OK) {
    ldm_model_free(m);
    return st;
  }
  m->threads = p->threads > 0 ? p->threads : ldm_default_threads();
  m->precision = p->precision;
  if ((unsigned)p->precision > LDM_PRECISION_BF16_EMULATED)
    st = ldm_fail(err, LDM_ERR_INVALID_ARG, "model: precision = %d, expected 0 (f32), 1 (bf16) or 2 (bf16-emulated)",
                  (int)p->precision);
  else if (p->weight_cache_mb < -1)
    st = ldm_fail(err, LDM_ERR_INVALID_ARG, "weight cache = %d MiB, expected -1 (no limit), 0 (off) or more",
                  p->weight_cache_mb);
  else if (p->weight_cache_mb != 0 &&
           !(m->wcache = ldm_wcache_new(m->wcache_limit = p->weight_cache_mb < 0 ? SIZE_MAX
                                                                                 : (size_t)p->weight_cache_mb << 20)))
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", p->path);
  /* an upscaler's tiles all run the same convolutions: its prepared
   * (Winograd-transformed) weights are kept by default */
  else if (sr && p->weight_cache_mb == 0 && !(m->wcache = ldm_wcache_new(SIZE_MAX)))
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", p->path);
  /* bf16 on AMX: the weights' bf16 panels (the size of an f16 file) are
   * made on first use and kept, not remade at every step */
  else if (!sr && p->weight_cache_mb == 0 && p->precision == LDM_PRECISION_BF16 && ldm_bf16_amx() &&
           !(m->wcache = ldm_wcache_new(m->wcache_limit = SIZE_MAX)))
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", p->path);
  if (st != LDM_OK) {
    ldm_model_free(m);
    return st;
  }
  *out = m;
  return LDM_OK;
}

void ldm_model_free(ldm_model *m) {
  if (!m) return;
  ldm_sr_free(m->sr);
  ldm_unet_free(m->unet);
  ldm_vae_free(m->vae);
  ldm_taesd_free(m->taesd);
  ldm_text_cond_free(m->text);
  ldm_source_close(m->taesd_src);
  ldm_source_close(m->vae_src);
  ldm_source_close(m->src);
  pl_model_free_controlnets(m);
  pl_text_memo_clear(m);
  ldm_wcache_free(m->wcache);
  ldm_pool_free(m->job_pool);
  ldm_arena_free(m->job_scratch);
  free(m->lora_sig);
  free(m);
}

ldm_status ldm_model_get_info(const ldm_model *m, ldm_model_info *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->family, sizeof out->family, "%s", ldm_family_name(m->fam.family));
  snprintf(out->prediction, sizeof out->prediction, "%s", ldm_prediction_name(m->fam.prediction));
  out->unet_in_channels = m->fam.unet_in_channels;
  out->native_size = m->fam.native_size;
  out->n_params = m->fam.unet_params;
  out->file_bytes = ldm_source_bytes(m->src);
  out->native_size_stated = m->settings.native_size > 0;
  out->rec_steps = m->settings.steps;
  out->rec_cfg = m->settings.cfg;
  snprintf(out->rec_sampler, sizeof out->rec_sampler, "%s", m->settings.sampler);
  if (pl_model_is_sr(m)) {
    out->feed_forward = true;
    out->scale = m->sr_cfg.scale;
    out->n_params = m->sr_cfg.n_params;
    snprintf(out->prediction, sizeof out->prediction, "none");
    ldm_sr_describe(&m->sr_cfg, out->arch, sizeof out->arch);
  } else if (m->fam.family == LDM_FAMILY_X4_UPSCALER) {
    out->scale = 4;
    snprintf(out->arch, sizeof out->arch, "UNet (SD x4 upscaler), %d input channels", m->fam.unet_in_channels);
  } else {
    snprintf(out->arch, sizeof out->arch, "UNet, %d input channels", m->fam.unet_in_channels);
  }
  return LDM_OK;
}

void ldm_job_params_init(ldm_job_params *p, ldm_task task) {
  memset(p, 0, sizeof *p);
  p->task = task;
  p->steps = 20;
  p->cfg_scale = 7.0f;
  p->sampler = "euler_a";
  p->rng = LDM_RNG_CPU;
  /* outpainting fills new canvas: it needs the full denoise */
  p->strength = task == LDM_TASK_TXT2IMG || task == LDM_TASK_OUTPAINT ? 1.0f : 0.75f;
  p->batch_count = 1;
  p->clip_skip = 1;
  p->mask_blur = 4.0f;
  p->only_masked_padding = 32;
  p->noise_level = 20;
  p->output_type = LDM_PIXEL_U8;
}

ldm_status ldm_job_new(ldm_job **out, ldm_model *m, const ldm_job_params *p, ldm_error *err) {
  *out = NULL;
  ldm_error_clear(err);
  if (!m || !p) return ldm_fail(err, LDM_ERR_INVALID_ARG, "job: no model or parameters");
  /* Every number is checked here, whatever the caller read it from; the
   * float checks are written so that NaN fails them (and Inf is out of
   * every range). */
  if (p->steps < 1 || p->steps > 1000)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "steps = %d, expected 1..1000", p->steps);
  if (p->batch_count < 1 || p->batch_count > 64)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "batch count = %d, expected 1..64", p->batch_count);
  if (!(p->strength >= 0.0f && p->strength <= 1.0f))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "strength = %g, expected 0..1", (double)p->strength);
  if (p->width < 0 || p->height < 0 || p->width % 8 || p->height % 8)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "size %dx%d: width and height must be multiples of 8",
                    p->width, p->height);
  if (p->width > LDM_MAX_IMAGE_SIDE || p->height > LDM_MAX_IMAGE_SIDE)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "size %dx%d: width and height are at most %d", p->width, p->height,
                    LDM_MAX_IMAGE_SIDE);
  if (p->task != LDM_TASK_TXT2IMG && !p->init)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "this task needs an init image");
  if ((p->task == LDM_TASK_INPAINT) && !p->mask)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "inpaint needs a mask");
  if (!(p->cfg_scale >= 0.0f && p->cfg_scale <= 100.0f))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "cfg scale = %g, expected 0..100", (double)p->cfg_scale);
  if (!(p->guidance_rescale >= 0.0f && p->guidance_rescale <= 1.0f))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "guidance rescale = %g, expected 0..1", (double)p->guidance_rescale);
  if (!(p->mask_blur >= 0.0f && p->mask_blur <= 256.0f))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "mask blur = %g, expected 0..256", (double)p->mask_blur);
  if (p->only_masked_padding < 0 || p->only_masked_padding > LDM_MAX_IMAGE_SIDE)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "only-masked padding = %d, expected 0..%d", p->only_masked_padding,
                    LDM_MAX_IMAGE_SIDE);
  if (p->clip_skip < 0 || p->clip_skip > 12)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "clip skip = %d, expected 1..12", p->clip_skip);
  if (p->noise_level < 0 || p->noise_level > 350)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "noise level = %d, expected 0..350", p->noise_level);
  /* the VAE works in tiles of at least 4 latent pixels, the upscaler of 16 */
  if (!pl_model_is_sr(m) && p->tile_size != 0 && (p->tile_size < 32 || p->tile_size > LDM_MAX_IMAGE_SIDE))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "tile size = %d, expected 0 (automatic) or 32..%d", p->tile_size,
                    LDM_MAX_IMAGE_SIDE);
  if ((unsigned)p->masked_content > LDM_FILL_LATENT_NOTHING)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "masked content = %d, expected 0..2", (int)p->masked_content);
  if ((unsigned)p->rng > LDM_RNG_CUDA)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "rng = %d, expected 0 (cpu) or 1 (cuda)", (int)p->rng);
  if (p->max_memory_mb < -1)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "memory limit = %lld MiB, expected -1 (no check), 0 (the memory "
                    "available) or more", (long long)p->max_memory_mb);
  const char *sampler = p->sampler ? p->sampler : "euler_a";
  if (ldm_sampler_kind_from_name(sampler) < 0)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "unknown sampler '%s' (see ldm_sampler_names)", sampler);
  if (p->task == LDM_TASK_OUTPAINT &&
      (p->outpaint_left < 0 || p->outpaint_top < 0 || p->outpaint_right < 0 || p->outpaint_bottom < 0 ||
       p->outpaint_left > LDM_MAX_IMAGE_SIDE || p->outpaint_top > LDM_MAX_IMAGE_SIDE ||
       p->outpaint_right > LDM_MAX_IMAGE_SIDE || p->outpaint_bottom > LDM_MAX_IMAGE_SIDE ||
       p->outpaint_left + p->outpaint_top + p->outpaint_right + p->outpaint_bottom == 0))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "outpaint needs margins of 0..%d pixels, positive on at least one side",
                    LDM_MAX_IMAGE_SIDE);
  if (p->taesd_decode && !m->taesd_src)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "TAESD decode asked for, but the model was loaded without a TAESD "
                    "(taesd_path)");
  if (p->taesd_encode && !m->taesd_src)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "TAESD encode asked for, but the model was loaded without a TAESD "
                    "(taesd_path)");
  if (p->taesd_encode && p->task == LDM_TASK_UPSCALE)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "TAESD encode is for img2img, inpaint and outpaint, not the x4 "
                    "upscaler");
  if (p->taesd_decode && p->task == LDM_TASK_UPSCALE)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "TAESD decode is for txt2img, img2img, inpaint and outpaint, not the "
                    "x4 upscaler");
  if ((unsigned)p->output_type > LDM_PIXEL_F32)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "output type = %d, expected 0 (U8) or 1 (F32)", (int)p->output_type);
  if (p->init && (p->init->width < 1 || p->init->height < 1 || !p->init->data))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "the init image is empty");
  if (p->init && (p->init->width > LDM_MAX_IMAGE_SIDE || p->init->height > LDM_MAX_IMAGE_SIDE))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "the init image is %dx%d: at most %d pixels a side", p->init->width,
                    p->init->height, LDM_MAX_IMAGE_SIDE);
  if (p->task == LDM_TASK_UPSCALE && !pl_model_is_sr(m) && (p->init->width > LDM_MAX_IMAGE_SIDE / 4 || p->init->height > LDM_MAX_IMAGE_SIDE / 4))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "the init image is %dx%d: the x4 upscaler takes at most %d pixels a side",
                    p->init->width, p->init->height, LDM_MAX_IMAGE_SIDE / 4);
  if (p->task == LDM_TASK_OUTPAINT &&
      (p->init->width + p->outpaint_left + p->outpaint_right > LDM_MAX_IMAGE_SIDE ||
       p->init->height + p->outpaint_top + p->outpaint_bottom > LDM_MAX_IMAGE_SIDE))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "outpainting %dx%d by %d/%d/%d/%d pixels: the canvas would pass %d pixels "
                    "a side", p->init->width, p->init->height, p->outpaint_left, p->outpaint_top, p->outpaint_right,
                    p->outpaint_bottom, LDM_MAX_IMAGE_SIDE);
  if (pl_model_is_sr(m)) {
    if (p->task != LDM_TASK_UPSCALE)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: an %s upscaler (feed-forward) runs only the upscale task",
                      ldm_source_path(m->src), ldm_family_name(m->fam.family));
    if (p->upscale_factor < 0 || p->upscale_factor > m->sr_cfg.scale)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "upscale factor = %d, expected 0 (the model's) or 1..%d",
                      p->upscale_factor, m->sr_cfg.scale);
    if (p->tile_size < 0 || p->tile_size > 65536)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "tile size = %d, expected 0 (auto) or 1..65536", p->tile_size);
  } else if (p->upscale_factor != 0) {
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "upscale factor = %d: only feed-forward (ESRGAN-class) upscalers take "
                    "one", p->upscale_factor);
  }
  if (p->refine_model) {
    const ldm_model *r = p->refine_model;
    if (!pl_model_is_sr(m))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "the refine stage follows a feed-forward (ESRGAN-class) upscale; "
                      "this job's model is %s", ldm_family_name(m->fam.family));
    if (pl_model_is_sr(r) || r->fam.family == LDM_FAMILY_X4_UPSCALER)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: the refine model must be an img2img checkpoint, not an %s "
                      "model", ldm_source_path(r->src), ldm_family_name(r->fam.family));
    if (!(p->refine_strength >= 0.0f && p->refine_strength <= 1.0f))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "refine strength = %g, expected 0..1 (0 = 0.3)",
                      (double)p->refine_strength);
    if (p->refine_tile != 0 && (p->refine_tile < 64 || p->refine_tile > 4096 || p->refine_tile % 8))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "refine tile = %d, expected 0 (native) or a multiple of 8 in "
                      "64..4096", p->refine_tile);
    if (p->refine_overlap < 0 || p->refine_overlap > 1024)
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "refine overlap = %d, expected 0 (64) .. 1024", p->refine_overlap);
  }
  LDM_TRY(pl_job_check_controls(m, p, err));
  ldm_job *j = calloc(1, sizeof *j);
  if (!j) return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  j->model = m;
  j->p = *p;
  j->prompt = strdup(p->prompt ? p->prompt : "");
  j->negative = strdup(p->negative_prompt ? p->negative_prompt : "");
  j->sampler = strdup(sampler);
  if (!j->prompt || !j->negative || !j->sampler) {
    ldm_job_free(j);
    return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  }
  if (p->model_dirs && !(j->model_dirs = strdup(p->model_dirs))) {
    ldm_job_free(j);
    return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  }
  ldm_status st = pl_job_copy_controls(j, p, err);
  if (st == LDM_OK) st = pl_job_resolve_loras(j, p, err);
  if (st != LDM_OK) {
    ldm_job_free(j);
    return st;
  }
  j->p.prompt = j->prompt;
  j->p.negative_prompt = j->negative;
  j->p.sampler = j->sampler;
  j->p.model_dirs = j->model_dirs;
  /* the resolved list (params and prompt tags) as params again, for the
   * jobs this one runs (the refine stage of an upscale) */
  j->p.loras = NULL;
  j->p.n_loras = 0;
  if (j->n_loras > 0) {
    if (!(j->lora_params = calloc((size_t)j->n_loras, sizeof *j->lora_params))) {
      ldm_job_free(j);
      return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
    }
    for (int i = 0; i < j->n_loras; i++) {
      j->lora_params[i].path = j->loras[i].path;
      j->lora_params[i].multiplier = j->loras[i].unet_multiplier;
    }
    j->p.loras = j->lora_params;
    j->p.n_loras = j->n_loras;
    if (pl_model_is_sr(m) && !p->refine_model) {
      ldm_job_free(j);
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "LoRAs change diffusion models: this upscaler has none "
                      "(with a refine model they apply to its img2img stage)");
    }
  }
  if (j->p.threads <= 0) j->p.threads = m->threads;
  atomic_init(&j->cancel, 0);
  *out = j;
  return LDM_OK;
}

ldm_status ldm_job_run(ldm_job *job, ldm_image ***images, int *n_images, ldm_error *err) {
  *images = NULL;
  *n_images = 0;
  ldm_error_clear(err);
  if (atomic_load(&job->cancel)) return ldm_fail(err, LDM_ERR_CANCELLED, "job cancelled");
  /* the networks load here, on the first job, so that the runners below
   * find them loaded and never call back into this file */
  LDM_TRY(pl_model_ensure(job->model, err));
  if (pl_model_is_sr(job->model)) {
    if (job->p.refine_model) LDM_TRY(pl_model_ensure(job->p.refine_model, err));
    return pl_sr_job_run(job, images, n_images, err);
  }
  return pl_job_run(job, images, n_images, err);
}

ldm_status ldm_job_memory_estimate(ldm_job *job, int64_t *bytes, ldm_error *err) {
  ldm_error_clear(err);
  if (!job || !bytes) return ldm_fail(err, LDM_ERR_INVALID_ARG, "job: no job or result pointer");
  *bytes = 0;
  if (pl_model_is_sr(job->model))
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: no memory estimate for feed-forward (ESRGAN-class) upscalers",
                    ldm_source_path(job->model->src));
  LDM_TRY(pl_model_ensure(job->model, err));
  return pl_job_estimate(job, bytes, err);
}

void ldm_job_cancel(ldm_job *job) {
  if (job) atomic_store(&job->cancel, 1);
}

void ldm_job_free(ldm_job *job) {
  if (!job) return;
  free(job->prompt);
  free(job->negative);
  free(job->sampler);
  free(job->model_dirs);
  free(job->lora_params);
  pl_job_free_loras(job);
  pl_job_free_controls(job);
  free(job);
}
