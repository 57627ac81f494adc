/* The generation pipelines, step for step as diffusers' StableDiffusion
 * (txt2img), Img2Img, Inpaint (9-channel UNet, or any UNet with latent
 * blending) and Upscale (x4) pipelines run them, so the same seed gives the
 * same image: the same random draws in the same order from a torch-compatible
 * generator, the same scheduler, CFG as one batch of 2 (uncond, cond).
 * On top: AUTOMATIC1111's mask blur, "only masked" crop and the overlay that
 * keeps unmasked pixels bit-identical, and outpainting. */
#include "pipeline/pipeline.h"
#include "pipeline/imageproc.h"
#include "core/arena.h"
#include "ops/ops.h"
#include "core/status.h"
#include "core/threads.h"
#include "sample/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct run {
  ldm_job *job;
  ldm_model *m;
  const ldm_job_params *p;
  ldm_ctx ctx;
  ldm_error *err;
  ldm_sampler *sampler;
  ldm_rng_state rng;
  int H, W;                 /* image size the model works at */
  int h, w, lc;             /* latent size and channels */
  int64_t n;                /* latent numel of one image */
  bool cfg;
  int T, D;                 /* tokens and width of the text conditioning */
  float *context;           /* [B, T, D]: uncond then cond when cfg */
  float *pooled;            /* SDXL [B, P] and time ids [B, 6], else NULL */
  float *time_ids;
  int extra_c;              /* channels concatenated to the latent */
  float *extra;             /* [extra_c, h, w] NCHW */
  float class_label;        /* x4 noise level */
  bool has_class;
  float *in_nhwc, *out_nhwc, *tmp;
  /* 4-channel inpainting: latent blending */
  const float *blend_x0, *blend_noise, *blend_mask;
  /* progress */
  struct timespec t0;
  ldm_image *preview;
  float *preview_planar;    /* TAESD decode of the preview, [3, h*f, w*f] */
  float *x0_est;            /* [lc, h, w]: the last model call's denoised estimate */
  bool x0_valid;
  int n_train;              /* num_train_timesteps of the sampler's schedule */
  /* ControlNets: each with its embedded control image [B, h*w, C0]; the
   * summed residuals; the step the next model call belongs to */
  int n_cn;
  ldm_controlnet *cn[LDM_MAX_CONTROLS];
  float *cn_emb[LDM_MAX_CONTROLS];
  double cn_start[LDM_MAX_CONTROLS], cn_end[LDM_MAX_CONTROLS];
  float *cn_in; /* [B, h*w, lc]: the latent alone when the UNet takes extra channels */
  ldm_controlnet_res cn_res;
  int cn_step, cn_steps;
  int step_base, step_total;
  bool release; /* drop each finished stage's mapped weights (release_min_bytes) */
} run;

static double seconds_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void *xcalloc(size_t n, size_t size) { return n && size ? calloc(n, size) : NULL; }

/* ---- the denoiser the sampler calls ----------------------------------------- */

/* alpha_bar at a (possibly fractional, k-diffusion) UNet timestep: the
 * schedule's value, interpolated in log sigma between whole timesteps as
 * k-diffusion's t_to_sigma does. */
static double alpha_bar_at(const run *r, float t) {
  const float *acp = ldm_sampler_alphas_cumprod(r->sampler);
  int T = r->n_train;
  if (!(t > 0.0f)) return acp[0];
  if (t >= (float)(T - 1)) return acp[T - 1];
  int lo = (int)floorf(t);
  double w = (double)t - lo, a0 = acp[lo], a1 = acp[lo + 1];
  if (w == 0.0 || a1 <= 0.0) return w < 0.5 ? a0 : a1;
  double ls = (1.0 - w) * 0.5 * log((1.0 - a0) / a0) + w * 0.5 * log((1.0 - a1) / a1);
  return 1.0 / (1.0 + exp(2.0 * ls));
}

/* The denoised estimate of the final latent from one model call, for the
 * preview: every sampler here calls the UNet on the variance-preserving
 * sample x_t = sqrt(ab) x0 + sqrt(1 - ab) eps at timestep t (k-diffusion's
 * c_in = 1/sqrt(sigma^2 + 1) scaling gives the same), so x0 follows from
 * the (guided) output as in diffusers' schedulers' pred_original_sample. */
static void estimate_x0(run *r, const float *x_in, float t, const float *out) {
  double ab = alpha_bar_at(r, t);
  if (ab < 1e-6) ab = 1e-6; /* zero terminal SNR: x0 from epsilon is undefined there */
  float a = (float)sqrt(ab), b = (float)sqrt(1.0 - ab);
  ldm_prediction pred = r->m->fam.prediction;
  for (int64_t i = 0; i < r->n; i++)
    r->x0_est[i] = pred == LDM_PRED_V ? a * x_in[i] - b * out[i]
                   : pred == LDM_PRED_SAMPLE ? out[i]
                                             : (x_in[i] - b * out[i]) / a;
  r->x0_valid = true;
}

static ldm_status denoise(void *user, const float *x_in, float t, float *out, ldm_error *err) {
  run *r = user;
  int B = r->cfg ? 2 : 1, cin = r->lc + r->extra_c;
  int64_t hw = (int64_t)r->h * r->w;
  /* NCHW latent (+ extra channels) -> NHWC batch, the same input twice */
  for (int b = 0; b < B; b++)
    for (int64_t i = 0; i < hw; i++) {
      float *dst = r->in_nhwc + ((int64_t)b * hw + i) * cin;
      for (int c = 0; c < r->lc; c++) dst[c] = x_in[c * hw + i];
      for (int c = 0; c < r->extra_c; c++) dst[r->lc + c] = r->extra[c * hw + i];
    }
  float ts[2] = {t, t}, labels[2] = {r->class_label, r->class_label};
  ldm_unet_cond cond = {.context = r->context,
                        .n_tokens = r->T,
                        .text_embeds = r->pooled,
                        .n_text = ldm_text_cond_pooled_dim(r->m->text),
                        .time_ids = r->pooled ? r->time_ids : NULL,
                        .class_labels = r->has_class ? labels : NULL};
  r->ctx.err = err;
  ldm_unet_extra ex = {0};
  ldm_status st = LDM_OK;
  bool any = false;
  /* ControlNets (diffusers' controlnet_keep: active at step i of n when
   * start <= i/n and (i+1)/n <= end), on the latent model input alone */
  const float *cn_x = r->in_nhwc;
  if (r->n_cn > 0 && r->extra_c > 0) {
    for (int64_t k = 0; k < B * hw; k++)
      memcpy(r->cn_in + k * r->lc, r->in_nhwc + k * cin, (size_t)r->lc * sizeof(float));
    cn_x = r->cn_in;
  }
  for (int k = 0; k < r->n_cn && st == LDM_OK; k++) {
    double a = (double)r->cn_step / r->cn_steps, b = (double)(r->cn_step + 1) / r->cn_steps;
    float scale = a < r->cn_start[k] || b > r->cn_end[k] ? 0.0f : r->p->controls[k].scale;
    if (scale == 0.0f) continue; /* its residuals times 0 */
    if (!any) ldm_controlnet_res_zero(&r->cn_res);
    any = true;
    st = ldm_controlnet_forward(&r->ctx, r->cn[k], cn_x, B, r->h, r->w, ts, &cond, r->cn_emb[k], scale, &r->cn_res);
  }
  if (any) {
    ex.down_res = r->cn_res.down;
    ex.mid_res = r->cn_res.mid;
  }
  if (st == LDM_OK)
    st = ldm_unet_forward_ex(&r->ctx, r->m->unet, r->out_nhwc, r->in_nhwc, B, r->h, r->w, ts, &cond, &ex);
  r->ctx.err = r->err;
  if (st != LDM_OK) return st;
  float *dst = r->cfg ? r->tmp : out;
  for (int b = 0; b < B; b++)
    for (int64_t i = 0; i < hw; i++)
      for (int c = 0; c < r->lc; c++) dst[(int64_t)b * r->n + c * hw + i] = r->out_nhwc[((int64_t)b * hw + i) * r->lc + c];
  if (r->cfg) ldm_cfg_combine(out, r->tmp, r->tmp + r->n, r->n, 1, r->p->cfg_scale, r->p->guidance_rescale);
  if (r->x0_est) estimate_x0(r, x_in, t, out);
  return LDM_OK;
}

/* Whether n floats are all finite (one sum: NaN and Inf survive it). */
static bool all_finite(const float *x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += x[i];
  if (isfinite(s)) return true;
  for (int64_t i = 0; i < n; i++) /* a sum past the double range would be a false alarm */
    if (!isfinite(x[i])) return false;
  return true;
}

/* The model file the likely cause of a NaN lies in. */
static const char *weights_path(const run *r, bool vae) {
  return vae && r->m->vae_src ? ldm_source_path(r->m->vae_src) : ldm_source_path(r->m->src);
}

static ldm_status after_step(void *user, int i, int total, float *x, ldm_error *err) {
  run *r = user;
  r->cn_step = i + 1;
  if (r->blend_mask) ldm_inpaint_blend(r->sampler, ldm_sampler_begin(r->sampler) + i, x, r->blend_x0,
                                       r->blend_noise, r->blend_mask);
  if (!all_finite(x, r->n))
    return ldm_fail(err, LDM_ERR_FORMAT,
                    "step %d of %d: the latent holds NaN or Inf values (likely cause: NaN/Inf weights in %s, or "
                    "an extreme --cfg-scale or prompt weight)", r->step_base + i + 1, r->step_total,
                    weights_path(r, false));
  if (atomic_load(&r->job->cancel)) return ldm_fail(err, LDM_ERR_CANCELLED, "job cancelled");
  if (r->p->progress) {
    const ldm_image *prev = NULL;
    /* the prediction of the final image; the latent itself if no model call
     * gave one (cannot happen with the samplers here) */
    float *z = r->x0_valid ? r->x0_est : x;
    if (r->x0_valid && r->blend_mask) /* 4-channel inpaint: the original outside the mask */
      for (int64_t k = 0; k < r->n; k++) z[k] = r->blend_mask[k] * z[k] + (1.0f - r->blend_mask[k]) * r->blend_x0[k];
    if (r->preview && r->preview_planar) { /* TAESD: a real small decode */
      if (ldm_taesd_decode(&r->ctx, r->m->taesd, r->preview_planar, z, 1, r->h, r->w) == LDM_OK) {
        pl_planar_to_u8(r->preview_planar, r->preview->width, r->preview->height, r->preview);
        prev = r->preview;
      }
    } else if (r->preview &&
               ldm_latent_preview(r->m->fam.family, r->preview->data, z, r->h, r->w, NULL) == LDM_OK) {
      prev = r->preview;
    }
    if (r->p->progress(r->p->progress_user, r->step_base + i + 1, r->step_total, seconds_since(&r->t0), prev)) {
      atomic_store(&r->job->cancel, 1);
      return ldm_fail(err, LDM_ERR_CANCELLED, "job cancelled");
    }
  }
  (void)total;
  return LDM_OK;
}

/* ---- VAE helpers ------------------------------------------------------------- */

/* Whether the VAE works in tiles (images over 1 megapixel, or when the job
 * names a tile size) and the tile in latent pixels (0 = the VAE's default). */
static bool vae_tiling(const run *r, int *tile) {
  *tile = r->p->tile_size > 0 ? r->p->tile_size / ldm_vae_factor(r->m->vae) : 0;
  return (int64_t)r->H * r->W > 1024 * 1024 || r->p->tile_size > 0;
}

/* image [3, H, W] in [-1, 1] -> scaled latent sample [lc, h, w]: diffusers'
 * retrieve_latents(vae.encode(x), generator): mean + std * randn, then the
 * scaling factor. */
static ldm_status encode_taesd(run *r, const float *image, float *z) {
  const ldm_taesd *t = r->m->taesd;
  int f = t ? ldm_taesd_factor(t) : 0;
  if (!t || !ldm_taesd_has_encoder(t))
    return ldm_fail(r->err, LDM_ERR_MISSING,
                    "%s: this TAESD has no encoder (TAESD encode needs taesd_encoder or "
                    "a whole AutoencoderTiny)",
                    r->m->taesd_src ? ldm_source_path(r->m->taesd_src) : "TAESD");
  if (ldm_taesd_latent_channels(t) != r->lc || r->h * f != r->H || r->w * f != r->W)
    return ldm_fail(r->err, LDM_ERR_SHAPE,
                    "%s: this TAESD (%d latent channels, factor %d) does not fit the model's "
                    "latent (%d channels, %dx%d for %dx%d pixels)",
                    ldm_source_path(r->m->taesd_src), ldm_taesd_latent_channels(t), f, r->lc, r->w, r->h, r->W, r->H);
  return ldm_taesd_encode(&r->ctx, t, z, image, 1, r->H, r->W);
}

static ldm_status encode_sample(run *r, const float *image, float *z) {
  if (r->p->taesd_encode) return encode_taesd(r, image, z);
  float *logvar = malloc((size_t)r->n * sizeof(float)), *eps = malloc((size_t)r->n * sizeof(float));
  ldm_status st = LDM_OK;
  if (!logvar || !eps) st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory encoding the image");
  if (st == LDM_OK) {
    int tile;
    bool big = vae_tiling(r, &tile);
    st = big ? ldm_vae_encode_tiled(&r->ctx, r->m->vae, z, logvar, image, 1, r->H, r->W, tile, 0)
             : ldm_vae_encode(&r->ctx, r->m->vae, z, logvar, image, 1, r->H, r->W);
  }
  if (st == LDM_OK) {
    ldm_rng_randn(&r->rng, eps, r->n);
    for (int64_t i = 0; i < r->n; i++) z[i] += expf(0.5f * logvar[i]) * eps[i];
    ldm_vae_scale_latent(r->m->vae, z, r->n);
  }
  free(logvar);
  free(eps);
  return st;
}

/* scaled latent [lc, h, w] -> image [3, H, W] through the model's TAESD */
static ldm_status decode_taesd(run *r, const float *z, float *image) {
  const ldm_taesd *t = r->m->taesd;
  int f = ldm_taesd_factor(t);
  if (ldm_taesd_latent_channels(t) != r->lc || r->h * f < r->H || r->w * f < r->W)
    return ldm_fail(r->err, LDM_ERR_SHAPE, "%s: this TAESD (%d latent channels, factor %d) does not fit the model's "
                    "latent (%d channels, %dx%d for %dx%d pixels)", ldm_source_path(r->m->taesd_src),
                    ldm_taesd_latent_channels(t), f, r->lc, r->w, r->h, r->W, r->H);
  int DH = r->h * f, DW = r->w * f;
  if (DH == r->H && DW == r->W) return ldm_taesd_decode(&r->ctx, t, image, z, 1, r->h, r->w);
  float *full = malloc((size_t)3 * DH * DW * sizeof(float));
  if (!full) return ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for the TAESD decode (%dx%d)", DW, DH);
  ldm_status st = ldm_taesd_decode(&r->ctx, t, full, z, 1, r->h, r->w);
  if (st == LDM_OK) pl_crop(full, 3, DW, DH, 0, 0, image, r->W, r->H); /* to the requested size */
  free(full);
  return st;
}

/* Jobs whose working memory (job_estimate) reaches this drop the mapped
 * weights of each finished stage from resident memory: the text encoders
 * once the prompts are encoded, the UNet and ControlNets before the VAE
 * decode. A process's peak is then its largest stage's weights plus that
 * stage's activations instead of all the weights plus the largest
 * activations (SDXL 1024x1024: the VAE decode's ~2 GiB beside the 6.6 GB
 * file). The pages stay in the page cache and the next read faults them
 * back in (~0.1 s per GB), which smaller jobs, a 256x256 live frame among
 * them, are spared. */
static const int64_t release_min_bytes = (int64_t)512 << 20;

/* scaled latent [lc, h, w] -> image [3, H, W] */
static ldm_status decode(run *r, float *z, float *image) {
  if (r->p->taesd_decode) return decode_taesd(r, z, image);
  if (r->release) { /* the denoiser's weights are done with until the next image */
    ldm_unet_release(r->m->unet, r->m->src);
    for (int i = 0; i < r->m->n_cnets; i++) ldm_source_release(r->m->cnets[i].src, NULL, NULL);
  }
  ldm_vae_unscale_latent(r->m->vae, z, r->n);
  int tile;
  bool big = vae_tiling(r, &tile);
  if (big) return ldm_vae_decode_tiled(&r->ctx, r->m->vae, image, z, 1, r->h, r->w, r->H, r->W, tile, 0);
  return ldm_vae_decode(&r->ctx, r->m->vae, image, z, 1, r->h, r->w, r->H, r->W);
}

/* ---- one image ----------------------------------------------------------------- */

typedef struct image_inputs {
  const float *init;        /* [3, H, W] in [-1, 1] or NULL */
  const float *mask;        /* [H, W] 0..1 (binarized inside) or NULL */
} image_inputs;

static ldm_sampler_config sampler_config(run *r) {
  ldm_sampler_config c;
  ldm_sampler_config_preset(&c, r->p->sampler, NULL);
  const pl_sched_config *s = &r->m->sched;
  c.steps = r->p->steps;
  c.prediction = r->m->fam.prediction == LDM_PRED_V ? LDM_PRED_VPRED
                 : r->m->fam.prediction == LDM_PRED_SAMPLE ? LDM_PRED_X0 : LDM_PRED_EPS;
  if (r->m->fam.family == LDM_FAMILY_X4_UPSCALER) {
    c.beta_start = 0.0001;
    c.beta_end = 0.02;
    c.beta_schedule = LDM_BETAS_SCALED_LINEAR;
  }
  if (s->has_betas) {
    c.beta_start = s->beta_start;
    c.beta_end = s->beta_end;
    c.beta_schedule = s->beta_schedule;
  }
  if (s->has_spacing) c.spacing = s->spacing;
  if (s->has_offset) c.steps_offset = s->steps_offset;
  if (s->has_zsnr) c.rescale_zero_terminal_snr = s->zsnr;
  return c;
}

/* Generates one image at r->W x r->H into out (planar [3, H, W]). */
static ldm_status run_one(run *r, uint64_t seed, const image_inputs *in, float *out) {
  ldm_status st = LDM_OK;
  ldm_task task = r->p->task;
  bool inpaint = in->mask != NULL;
  bool unet9 = r->m->fam.unet_in_channels == 9;
  int64_t n = r->n, hw = (int64_t)r->h * r->w;
  float *x = xcalloc((size_t)n, sizeof(float)), *noise = xcalloc((size_t)n, sizeof(float));
  float *x0 = NULL, *masked = NULL, *mask_lat = NULL, *mlat = NULL, *img3 = NULL;
  if (!x || !noise) {
    st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for a %dx%d latent", r->w, r->h);
    goto done;
  }
  ldm_rng_seed(&r->rng, r->p->rng, seed);
  r->x0_valid = false;
  r->cn_step = 0;
  int begin = ldm_sampler_begin(r->sampler);
  /* diffusers' is_strength_max; with A1111's k_ samplers begin is 0 for
   * strengths just under 1 too, and they still start from x0 + noise */
  bool full_strength = r->p->strength >= 1.0f || task == LDM_TASK_TXT2IMG;
  r->blend_mask = NULL;

  if (task == LDM_TASK_UPSCALE) {
    /* StableDiffusionUpscalePipeline: noise the low-res image at noise_level
     * (low_res_scheduler.add_noise), then draw the latent. */
    int64_t n3 = 3 * hw;
    img3 = malloc((size_t)n3 * sizeof(float));
    float *e = malloc((size_t)n3 * sizeof(float));
    if (!img3 || !e) {
      free(e);
      st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    ldm_rng_randn(&r->rng, e, n3);
    ldm_sampler_config lc;
    ldm_sampler_config_preset(&lc, "ddim", NULL);
    lc.steps = 1;
    lc.beta_start = r->m->sched.low_beta_start;
    lc.beta_end = r->m->sched.low_beta_end;
    lc.beta_schedule = r->m->sched.low_beta_schedule;
    ldm_sampler *low = NULL;
    st = ldm_sampler_new(&low, &lc, 1, r->err);
    if (st != LDM_OK) {
      free(e);
      goto done;
    }
    double acp = ldm_sampler_alphas_cumprod(low)[r->p->noise_level];
    float a = (float)sqrt(acp), b = (float)sqrt(1.0 - acp);
    for (int64_t i = 0; i < n3; i++) img3[i] = a * in->init[i] + b * e[i];
    ldm_sampler_free(low);
    free(e);
    r->extra = img3;
    r->extra_c = 3;
    r->class_label = (float)r->p->noise_level;
    r->has_class = true;
    ldm_rng_randn(&r->rng, noise, n);
    float s0 = ldm_sampler_init_noise_sigma(r->sampler);
    for (int64_t i = 0; i < n; i++) x[i] = noise[i] * s0;
  } else if (!inpaint) {
    if (task == LDM_TASK_TXT2IMG || !in->init) {
      ldm_rng_randn(&r->rng, noise, n);
      float s0 = ldm_sampler_init_noise_sigma(r->sampler);
      for (int64_t i = 0; i < n; i++) x[i] = noise[i] * s0;
    } else { /* img2img */
      x0 = malloc((size_t)n * sizeof(float));
      if (!x0) {
        st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory");
        goto done;
      }
      if ((st = encode_sample(r, in->init, x0)) != LDM_OK) goto done;
      ldm_rng_randn(&r->rng, noise, n);
      ldm_sampler_add_noise(r->sampler, begin, x0, noise, x);
    }
  } else {
    /* StableDiffusionInpaintPipeline: binarized mask, masked image. */
    int64_t HW = (int64_t)r->H * r->W;
    masked = malloc((size_t)(3 * HW) * sizeof(float));
    mask_lat = malloc((size_t)hw * sizeof(float));
    mlat = malloc((size_t)n * sizeof(float));
    x0 = malloc((size_t)n * sizeof(float));
    if (!masked || !mask_lat || !mlat || !x0) {
      st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    for (int c = 0; c < 3; c++)
      for (int64_t i = 0; i < HW; i++) masked[c * HW + i] = in->mask[i] >= 0.5f ? 0.0f : in->init[c * HW + i];
    for (int y = 0; y < r->h; y++) /* F.interpolate(mode='nearest') to the latent size */
      for (int xx = 0; xx < r->w; xx++) {
        int sy = (int)floorf((float)y * ((float)r->H / r->h)), sx = (int)floorf((float)xx * ((float)r->W / r->w));
        if (sy >= r->H) sy = r->H - 1;
        if (sx >= r->W) sx = r->W - 1;
        mask_lat[(int64_t)y * r->w + xx] = in->mask[(int64_t)sy * r->W + sx] >= 0.5f ? 1.0f : 0.0f;
      }
    bool need_image_latents = !unet9 || !full_strength;
    if (need_image_latents && (st = encode_sample(r, in->init, x0)) != LDM_OK) goto done;
    ldm_rng_randn(&r->rng, noise, n);
    if (full_strength) {
      float s0 = ldm_sampler_init_noise_sigma(r->sampler);
      for (int64_t i = 0; i < n; i++) x[i] = noise[i] * s0;
    } else if (r->p->masked_content == LDM_FILL_ORIGINAL) {
      ldm_sampler_add_noise(r->sampler, begin, x0, noise, x);
    } else {
      /* A1111's masked content "latent noise" / "latent nothing": the start
       * latent under the mask is fresh noise or zero; the blend keeps x0. */
      float *start = malloc((size_t)n * sizeof(float)), *fill = malloc((size_t)n * sizeof(float));
      if (!start || !fill) {
        free(start);
        free(fill);
        st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory");
        goto done;
      }
      if (r->p->masked_content == LDM_FILL_LATENT_NOISE) ldm_rng_randn(&r->rng, fill, n);
      else memset(fill, 0, (size_t)n * sizeof(float));
      for (int c = 0; c < r->lc; c++)
        for (int64_t i = 0; i < hw; i++) {
          int64_t k = c * hw + i;
          start[k] = mask_lat[i] > 0.0f ? fill[k] : x0[k];
        }
      ldm_sampler_add_noise(r->sampler, begin, start, noise, x);
      free(start);
      free(fill);
    }
    if ((st = encode_sample(r, masked, mlat)) != LDM_OK) goto done;
    if (unet9) {
      r->extra = malloc((size_t)(5 * hw) * sizeof(float));
      if (!r->extra) {
        st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory");
        goto done;
      }
      memcpy(r->extra, mask_lat, (size_t)hw * sizeof(float));
      memcpy(r->extra + hw, mlat, (size_t)n * sizeof(float));
      r->extra_c = 5;
    } else {
      /* the mask broadcast over the latent channels */
      for (int c = r->lc - 1; c >= 0; c--) memcpy(mlat + c * hw, mask_lat, (size_t)hw * sizeof(float));
      r->blend_x0 = x0;
      r->blend_noise = noise;
      r->blend_mask = mlat;
    }
  }

  if (!all_finite(x, n)) { /* an image that could not be encoded (the VAE's weights) */
    st = ldm_fail(r->err, LDM_ERR_FORMAT, "the starting latent holds NaN or Inf values (likely cause: NaN/Inf "
                  "weights in the VAE encoder of %s)", weights_path(r, true));
    goto done;
  }
  st = ldm_sampler_run(r->sampler, x, denoise, r, &r->rng, 1, after_step, r, r->err);
  if (r->ctx.scratch != r->m->job_scratch) /* kept arenas keep their pages for the next job */
    ldm_arena_trim(r->ctx.scratch);        /* the decoder's peak must not add to the UNet's */
  if (st == LDM_OK) st = decode(r, x, out);
  if (st == LDM_OK && !all_finite(out, (int64_t)3 * r->W * r->H))
    st = ldm_fail(r->err, LDM_ERR_FORMAT, "the decoded image holds NaN or Inf values (likely cause: NaN/Inf weights "
                  "or a bad scaling factor in the %s of %s)", r->p->taesd_decode ? "TAESD" : "VAE",
                  r->p->taesd_decode && r->m->taesd_src ? ldm_source_path(r->m->taesd_src) : weights_path(r, true));
done:
  if (r->extra != img3) free(r->extra);
  r->extra = NULL;
  r->extra_c = 0;
  r->has_class = false;
  r->blend_mask = NULL;
  free(img3);
  free(x);
  free(noise);
  free(x0);
  free(masked);
  free(mask_lat);
  free(mlat);
  return st;
}

/* ---- job --------------------------------------------------------------------------- */

/* Region of the image the model works on ("only masked": the mask's bounding
 * box plus padding, grown to the output aspect ratio, clamped). */
static void crop_region(const float *mask, int W, int H, int pad, int tw, int th, int *x0, int *y0, int *x1,
                        int *y1) {
  if (!pl_mask_bbox(mask, W, H, x0, y0, x1, y1)) {
    *x0 = *y0 = 0;
    *x1 = W;
    *y1 = H;
    return;
  }
  *x0 -= pad;
  *y0 -= pad;
  *x1 += pad;
  *y1 += pad;
  /* grow the shorter side to the target ratio (as A1111's expand_crop_region) */
  double ratio = (double)tw / th, cw = *x1 - *x0, ch = *y1 - *y0;
  if (cw / ch < ratio) {
    double grow = ch * ratio - cw;
    *x0 -= (int)floor(grow / 2);
    *x1 += (int)ceil(grow / 2);
  } else {
    double grow = cw / ratio - ch;
    *y0 -= (int)floor(grow / 2);
    *y1 += (int)ceil(grow / 2);
  }
  if (*x0 < 0) { *x1 -= *x0; *x0 = 0; }
  if (*y0 < 0) { *y1 -= *y0; *y0 = 0; }
  if (*x1 > W) { *x0 -= *x1 - W; *x1 = W; }
  if (*y1 > H) { *y0 -= *y1 - H; *y1 = H; }
  if (*x0 < 0) *x0 = 0;
  if (*y0 < 0) *y0 = 0;
}

static ldm_status setup_run(run *r, ldm_job *job, ldm_error *err) {
  memset(r, 0, sizeof *r);
  r->job = job;
  r->m = job->model;
  r->p = &job->p;
  r->err = err;
  int threads = r->p->threads > 0 ? r->p->threads : r->m->threads;
  ldm_model *m = r->m;
  if (m->wcache && m->job_pool && ldm_pool_size(m->job_pool) != threads) {
    ldm_pool_free(m->job_pool);
    m->job_pool = NULL;
  }
  if (m->wcache && !m->job_pool) m->job_pool = ldm_pool_new(threads);
  /* a small first block: it outlives ldm_arena_trim (it holds the job's
   * latents), the phases' large temporaries get blocks of their own */
  if (m->wcache && !m->job_scratch) m->job_scratch = ldm_arena_new((size_t)4 << 20);
  r->ctx.pool = m->wcache ? m->job_pool : ldm_pool_new(threads);
  r->ctx.threads = threads;
  r->ctx.scratch = m->wcache ? m->job_scratch : ldm_arena_new((size_t)4 << 20);
  r->ctx.wcache = r->m->wcache;
  r->ctx.precision = r->m->precision;
  r->ctx.err = err;
  r->ctx.cancel = &job->cancel;
  if (!r->ctx.pool || !r->ctx.scratch) return ldm_fail(err, LDM_ERR_NOMEM, "out of memory starting the job");
  clock_gettime(CLOCK_MONOTONIC, &r->t0);
  return LDM_OK;
}

static void teardown_run(run *r) {
  ldm_sampler_free(r->sampler);
  if (r->ctx.pool != r->m->job_pool) ldm_pool_free(r->ctx.pool);
  if (r->ctx.scratch != r->m->job_scratch)
    ldm_arena_free(r->ctx.scratch);
  else if (r->ctx.scratch)
    ldm_arena_reset(r->ctx.scratch, (ldm_arena_mark){0, 0});
  free(r->context);
  free(r->pooled);
  free(r->time_ids);
  free(r->in_nhwc);
  free(r->out_nhwc);
  free(r->tmp);
  ldm_image_free(r->preview);
  free(r->preview_planar);
  free(r->x0_est);
  for (int k = 0; k < r->n_cn; k++) free(r->cn_emb[k]);
  free(r->cn_in);
  ldm_controlnet_res_free(&r->cn_res);
}

/* The job's ControlNets for a WW x WH run: loaded (kept by the model), each
 * control image made at the working size and embedded once. */
static ldm_status setup_controls(run *r, int FW, int FH, int rx0, int ry0, int RW, int RH, int WW, int WH,
                                 const float *work_init, const float *work_mask) {
  const ldm_job_params *p = r->p;
  int B = r->cfg ? 2 : 1, C0 = r->m->unet->cfg.channels[0];
  int64_t hw = (int64_t)r->h * r->w;
  r->cn_steps = ldm_sampler_timestep_count(r->sampler) - ldm_sampler_begin(r->sampler);
  if (r->cn_steps < 1) r->cn_steps = 1;
  float *img = malloc((size_t)3 * WW * WH * sizeof(float));
  r->cn_in = malloc((size_t)B * hw * r->lc * sizeof(float));
  if (!img || !r->cn_in) {
    free(img);
    return ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for the control images");
  }
  ldm_status st = LDM_OK;
  for (int k = 0; k < p->n_controls && st == LDM_OK; k++) {
    const ldm_control *c = &p->controls[k];
    /* start / end as the decimal numbers they were written as (diffusers
     * compares Python floats) */
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)c->start);
    r->cn_start[k] = strtod(buf, NULL);
    snprintf(buf, sizeof buf, "%.7g", (double)c->end);
    r->cn_end[k] = strtod(buf, NULL);
    st = pl_model_controlnet(r->m, c->model_path, &r->cn[k], r->err);
    if (st == LDM_OK)
      st = pl_control_image(r->job, k, FW, FH, rx0, ry0, RW, RH, WW, WH, work_init, work_mask, img, r->err);
    if (st != LDM_OK) break;
    r->n_cn = k + 1;
    if (!(r->cn_emb[k] = malloc((size_t)B * hw * C0 * sizeof(float)))) {
      st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for the control images");
      break;
    }
    int eh = 0, ew = 0;
    st = ldm_controlnet_embed(&r->ctx, r->cn[k], r->cn_emb[k], img, 1, WH, WW, &eh, &ew);
    if (st == LDM_OK && (eh != r->h || ew != r->w))
      st = ldm_fail(r->err, LDM_ERR_INVALID_ARG,
                    "control %d: %s embeds a %dx%d image to %dx%d, but the latent is "
                    "%dx%d (sizes that are multiples of 8 fit)",
                    k, c->model_path, WW, WH, ew, eh, r->w, r->h);
    for (int b = 1; b < B && st == LDM_OK; b++) /* the same image for both halves of the CFG batch */
      memcpy(r->cn_emb[k] + (int64_t)b * hw * C0, r->cn_emb[k], (size_t)hw * C0 * sizeof(float));
  }
  free(img);
  return st;
}

void pl_text_memo_clear(ldm_model *m) {
  for (int i = 0; i < PL_TEXT_MEMO_SLOTS; i++) {
    pl_text_memo *s = &m->memo[i];
    free(s->prompt);
    free(s->cond);
    free(s->pooled);
    memset(s, 0, sizeof *s);
  }
  m->memo_next = 0;
}

static float *floats_dup(const float *x, size_t n) {
  float *y = x ? malloc(n * sizeof(float)) : NULL;
  if (y) memcpy(y, x, n * sizeof(float));
  return y;
}

/* ldm_text_cond_encode through the model's memo (memo = false: neither read
 * nor kept). The results are the caller's, as ldm_text_cond_encode's. */
static ldm_status encode_prompt(run *r, const char *prompt, int chunks, bool memo, float **cond, int *T,
                                float **pooled) {
  ldm_model *m = r->m;
  size_t D = (size_t)ldm_text_cond_dim(m->text), P = (size_t)ldm_text_cond_pooled_dim(m->text);
  for (int i = 0; memo && i < PL_TEXT_MEMO_SLOTS; i++) {
    const pl_text_memo *s = &m->memo[i];
    if (!s->prompt || strcmp(s->prompt, prompt) || s->clip_skip != r->p->clip_skip || s->chunks != chunks) continue;
    *cond = floats_dup(s->cond, (size_t)s->T * D);
    *pooled = floats_dup(s->pooled, P);
    *T = s->T;
    if (!*cond || (s->pooled && !*pooled))
      return ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for the text conditioning");
    return LDM_OK;
  }
  LDM_TRY(ldm_text_cond_encode(m->text, &r->ctx, prompt, r->p->clip_skip, chunks, cond, T, pooled));
  if (!memo) return LDM_OK;
  pl_text_memo n = {
      strdup(prompt), r->p->clip_skip, chunks, floats_dup(*cond, (size_t)*T * D), floats_dup(*pooled, P), *T};
  if (!n.prompt || !n.cond || (*pooled && !n.pooled)) { /* not kept: no harm */
    free(n.prompt);
    free(n.cond);
    free(n.pooled);
    return LDM_OK;
  }
  pl_text_memo *s = &m->memo[m->memo_next];
  free(s->prompt);
  free(s->cond);
  free(s->pooled);
  *s = n;
  m->memo_next = (m->memo_next + 1) % PL_TEXT_MEMO_SLOTS;
  return LDM_OK;
}

/* Prompt and negative prompt -> r->context [B, T, D] (uncond first), with
 * A1111 emphasis and 75-token chunks (both padded to the same count), and
 * SDXL's pooled embeddings and time ids (original = target = the output
 * size, no crop, as diffusers' defaults). */
static ldm_status encode_text_inner(run *r, bool memo) {
  ldm_text_cond *tc = r->m->text;
  const char *neg = r->job->negative;
  int nc = 1, nu = 1;
  LDM_TRY(ldm_text_cond_count_chunks(tc, r->job->prompt, &nc, r->err));
  if (r->cfg) LDM_TRY(ldm_text_cond_count_chunks(tc, neg, &nu, r->err));
  int n = nc > nu ? nc : nu, B = r->cfg ? 2 : 1;
  float *c = NULL, *u = NULL, *pc = NULL, *pu = NULL;
  int T = 0, Tu = 0;
  ldm_status st = encode_prompt(r, r->job->prompt, n, memo, &c, &T, &pc);
  if (st == LDM_OK && r->cfg) st = encode_prompt(r, neg, n, memo, &u, &Tu, &pu);
  int D = ldm_text_cond_dim(tc), P = ldm_text_cond_pooled_dim(tc);
  if (st == LDM_OK && r->cfg && Tu != T) st = ldm_fail(r->err, LDM_ERR_INTERNAL, "prompt and negative prompt token counts differ");
  if (st == LDM_OK) {
    r->T = T;
    r->D = D;
    r->context = malloc((size_t)B * T * D * sizeof(float));
    if (!r->context) st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for the text conditioning");
  }
  /* SDXL pipelines zero the negative conditioning when it is empty
   * (force_zeros_for_empty_prompt). */
  bool zero_neg = P > 0 && neg[0] == '\0';
  if (st == LDM_OK) {
    if (r->cfg) {
      if (zero_neg) memset(r->context, 0, (size_t)T * D * sizeof(float));
      else memcpy(r->context, u, (size_t)T * D * sizeof(float));
    }
    memcpy(r->context + (r->cfg ? (int64_t)T * D : 0), c, (size_t)T * D * sizeof(float));
  }
  if (st == LDM_OK && P > 0) {
    r->pooled = calloc((size_t)B * P, sizeof(float));
    r->time_ids = malloc((size_t)B * 6 * sizeof(float));
    if (!r->pooled || !r->time_ids) {
      st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory");
    } else {
      if (r->cfg && !zero_neg && pu) memcpy(r->pooled, pu, (size_t)P * sizeof(float));
      if (pc) memcpy(r->pooled + (r->cfg ? P : 0), pc, (size_t)P * sizeof(float));
      for (int b = 0; b < B; b++) {
        float ids[6] = {(float)r->H, (float)r->W, 0.0f, 0.0f, (float)r->H, (float)r->W};
        memcpy(r->time_ids + 6 * b, ids, sizeof ids);
      }
    }
  }
  free(c);
  free(u);
  free(pc);
  free(pu);
  return st;
}

/* The prompts with the textual-inversion embeddings they name (found in the
 * job's model folders) known to the text encoders for this job only. */
static ldm_status encode_text(run *r) {
  ldm_text_embed *emb = NULL;
  int n_emb = 0;
  LDM_TRY(pl_job_load_embeds(r->job, r->m, &emb, &n_emb, r->err));
  ldm_status st = ldm_text_cond_set_embeds(r->m->text, emb, n_emb, r->err);
  /* a prompt that names embeddings is encoded afresh (their files may change) */
  if (st == LDM_OK) st = encode_text_inner(r, n_emb == 0);
  ldm_text_cond_set_embeds(r->m->text, NULL, 0, NULL);
  for (int i = 0; i < n_emb; i++) ldm_text_embed_deinit(&emb[i]);
  free(emb);
  return st;
}

/* Sizes, conditioning, sampler and buffers for a W x H run. */
static ldm_status prepare(run *r, int W, int H) {
  ldm_model *m = r->m;
  r->W = W;
  r->H = H;
  if (r->p->task == LDM_TASK_UPSCALE) { /* the latent has the low-res image's size */
    r->h = H;
    r->w = W;
  } else {
    ldm_vae_latent_size(m->vae, H, W, &r->h, &r->w);
  }
  r->lc = ldm_vae_get_config(m->vae)->latent_channels;
  r->n = (int64_t)r->lc * r->h * r->w;
  r->cfg = ldm_cfg_needs_uncond(r->p->cfg_scale);
  int B = r->cfg ? 2 : 1;
  int64_t hw = (int64_t)r->h * r->w, cin_max = r->lc + 5;
  r->in_nhwc = malloc((size_t)(B * hw * cin_max) * sizeof(float));
  r->out_nhwc = malloc((size_t)(B * hw * r->lc) * sizeof(float));
  r->tmp = malloc((size_t)(2 * r->n) * sizeof(float));
  if (r->p->want_preview && r->m->taesd) {
    int f = ldm_taesd_factor(r->m->taesd);
    r->preview = ldm_image_new(r->w * f, r->h * f, 3, LDM_PIXEL_U8);
    r->preview_planar = malloc((size_t)3 * r->w * f * r->h * f * sizeof(float));
  } else if (r->p->want_preview) {
    r->preview = ldm_image_new(r->w, r->h, 3, LDM_PIXEL_U8);
  }
  if (r->p->want_preview && r->p->progress && !(r->x0_est = malloc((size_t)r->n * sizeof(float))))
    return ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for the preview");
  if (!r->in_nhwc || !r->out_nhwc || !r->tmp)
    return ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for a %dx%d image", W, H);
  LDM_TRY(encode_text(r));
  if (r->release) ldm_text_cond_release(m->text);
  ldm_sampler_config c = sampler_config(r);
  r->n_train = c.num_train_timesteps;
  LDM_TRY(ldm_sampler_new(&r->sampler, &c, r->n, r->err));
  ldm_task task = r->p->task;
  ldm_sampler_set_strength(r->sampler, task == LDM_TASK_TXT2IMG || task == LDM_TASK_UPSCALE ? 1.0f : r->p->strength);
  return LDM_OK;
}

static ldm_image *planar_to_image(const float *planar, int W, int H, ldm_pixel_type type) {
  ldm_image *img = ldm_image_new(W, H, 3, type);
  if (img) pl_planar_to_image(planar, W, H, img);
  return img;
}

/* Inpaint / outpaint result at the full image's size: the generated work
 * image gen [3, WH, WW] resampled back to the region (rx0, ry0, RW, RH),
 * the input elsewhere, then (unless no_composite) overlaid on the input
 * through the blurred mask, so that unmasked pixels keep the input's
 * values. NULL when out of memory. */
static ldm_image *paste_back(const ldm_image *src, const float *gen, int WW, int WH, int rx0, int ry0, int RW, int RH,
                             const float *mask, const ldm_job_params *p) {
  int FW = src->width, FH = src->height;
  ldm_pixel_type type = p->output_type;
  const float *rs = gen;
  float *resized = NULL;
  if (!(RW == WW && RH == WH)) {
    resized = malloc((size_t)3 * RW * RH * sizeof(float));
    if (!resized || pl_resize(gen, 3, WW, WH, resized, RW, RH) != 0) {
      free(resized);
      return NULL;
    }
    rs = resized;
  }
  ldm_image *region = ldm_image_new(RW, RH, 3, type), *big = ldm_image_new(FW, FH, 3, type);
  ldm_image *full = p->no_composite ? big : ldm_image_new(FW, FH, 3, type);
  float *m2 = p->no_composite ? NULL : malloc((size_t)FW * FH * sizeof(float));
  bool ok = region && big && full && (p->no_composite || m2);
  if (ok) {
    pl_planar_to_image(rs, RW, RH, region);
    /* generated pixels placed at the region, the input elsewhere */
    pl_copy_rgb(src, big);
    size_t px = type == LDM_PIXEL_F32 ? sizeof(float) : 1;
    for (int y = 0; y < RH; y++)
      memcpy((char *)big->data + (size_t)(ry0 + y) * big->stride + (size_t)rx0 * 3 * px,
             (char *)region->data + (size_t)y * region->stride, (size_t)RW * 3 * px);
  }
  if (ok && !p->no_composite) {
    for (int y = 0; y < FH; y++)
      for (int x = 0; x < FW; x++) {
        bool in_region = x >= rx0 && x < rx0 + RW && y >= ry0 && y < ry0 + RH;
        m2[(size_t)y * FW + x] = in_region ? mask[(size_t)y * FW + x] : 0.0f;
      }
    if (type == LDM_PIXEL_F32) pl_composite_f32(src, big, m2, full);
    else pl_composite(src, big, m2, full);
  }
  free(resized);
  free(m2);
  ldm_image_free(region);
  if (full != big) ldm_image_free(big);
  if (!ok) {
    ldm_image_free(full);
    return NULL;
  }
  return full;
}

/* Blend weight of pixel x in a tile of size t at origin o of an image of size
 * n: a linear ramp over `ramp` pixels on sides that touch another tile. */
static float tile_weight(int x, int t, int o, int n, int ramp) {
  float w = 1.0f;
  if (o > 0 && x < ramp) w = fminf(w, (x + 0.5f) / ramp);
  if (o + t < n && x >= t - ramp) w = fminf(w, (t - x - 0.5f) / ramp);
  return w;
}

/* x4 upscale of the whole low-res image [3, FH, FW], in overlapping tiles of
 * at most `lt` low-res pixels when it is larger (each tile is one diffusion
 * run; overlaps are cross-faded), so memory depends on the tile size only.
 * Auto (tile_size 0): an image of at most UPSCALE_WHOLE_PX low-res pixels
 * in one piece, larger ones in tiles of UPSCALE_TILE. One piece saves the
 * overlaps' work (256x256 -> 1024x1024 with the SD x4 upscaler, 2 steps,
 * 2 threads: 116.6 s and 4.4 GiB peak in one piece, 214.6 s and 2.3 GiB in
 * nine 128-pixel tiles); past it the decoder's attention, quadratic in the
 * tile's pixels, makes smaller tiles the faster choice. */
enum { UPSCALE_WHOLE_PX = 256 * 256, UPSCALE_TILE = 128 };

static ldm_status upscale_all(run *r, const float *init, int FW, int FH, ldm_image **out, int count) {
  const ldm_job_params *p = r->p;
  int f = ldm_vae_factor(r->m->vae);
  int lt = p->tile_size > 0                        ? p->tile_size / f
           : (int64_t)FW * FH <= UPSCALE_WHOLE_PX ? (FW > FH ? FW : FH)
                                                  : UPSCALE_TILE;
  if (lt < 16) lt = 16;
  int tw = FW < lt ? FW : lt, th = FH < lt ? FH : lt, ov = lt / 4;
  int ox[64], oy[64];
  int nx = ldm_tile_origins(FW, tw, ov, ox, 64), ny = ldm_tile_origins(FH, th, ov, oy, 64);
  LDM_TRY(prepare(r, tw, th));
  r->W = tw * f; /* decode to the 4x size */
  r->H = th * f;
  int OW = FW * f, OH = FH * f, TW = tw * f, TH = th * f;
  size_t tile_px = (size_t)TW * TH, out_px = (size_t)OW * OH;
  float *tile_in = malloc((size_t)3 * tw * th * sizeof(float)), *tile_out = malloc(3 * tile_px * sizeof(float));
  float *acc = malloc(3 * out_px * sizeof(float)), *wsum = malloc(out_px * sizeof(float));
  ldm_status st = LDM_OK;
  if (!tile_in || !tile_out || !acc || !wsum) st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory for a %dx%d upscale", OW, OH);
  int steps = ldm_sampler_timestep_count(r->sampler);
  r->step_total = count * nx * ny * steps;
  for (int b = 0; b < count && st == LDM_OK; b++) {
    memset(acc, 0, 3 * out_px * sizeof(float));
    memset(wsum, 0, out_px * sizeof(float));
    for (int ty = 0; ty < ny && st == LDM_OK; ty++)
      for (int tx = 0; tx < nx && st == LDM_OK; tx++) {
        r->step_base = ((b * ny + ty) * nx + tx) * steps;
        for (int c = 0; c < 3; c++)
          for (int y = 0; y < th; y++)
            memcpy(tile_in + ((size_t)c * th + y) * tw, init + ((size_t)c * FH + oy[ty] + y) * FW + ox[tx],
                   (size_t)tw * sizeof(float));
        image_inputs in = {tile_in, NULL};
        st = run_one(r, p->seed + (uint64_t)b, &in, tile_out);
        for (int y = 0; y < TH && st == LDM_OK; y++) {
          float wy = tile_weight(y, TH, oy[ty] * f, OH, ov * f);
          for (int x = 0; x < TW; x++) {
            float w = wy * tile_weight(x, TW, ox[tx] * f, OW, ov * f);
            size_t o = (size_t)(oy[ty] * f + y) * OW + (size_t)(ox[tx] * f + x);
            for (int c = 0; c < 3; c++) acc[c * out_px + o] += w * tile_out[c * tile_px + (size_t)y * TW + x];
            wsum[o] += w;
          }
        }
      }
    if (st != LDM_OK) break;
    for (size_t i = 0; i < out_px; i++)
      for (int c = 0; c < 3; c++) acc[c * out_px + i] /= wsum[i] > 0 ? wsum[i] : 1.0f;
    out[b] = planar_to_image(acc, OW, OH, p->output_type);
    if (!out[b]) st = ldm_fail(r->err, LDM_ERR_NOMEM, "out of memory");
  }
  free(tile_in);
  free(tile_out);
  free(acc);
  free(wsum);
  return st;
}

/* ---- memory admission ------------------------------------------------------------ */

/* The job's peak working memory in bytes, from the sizes pl_job_run will use:
 * the UNet's activations at the latent size (skip connections of every
 * level, a few full-width temporaries, the CFG batch of 2), the VAE decode at
 * full resolution (or one tile), and the full-size float and byte buffers of
 * the pipeline. Weights are not counted: they are loaded (mapped) already. */
static int64_t job_estimate(const ldm_job *job) {
  const ldm_job_params *p = &job->p;
  const ldm_model *m = job->model;
  const ldm_unet_config *uc = &m->unet->cfg;
  const ldm_vae_config *vc = ldm_vae_get_config(m->vae);
  int f = ldm_vae_factor(m->vae);
  int64_t FW = p->init ? p->init->width : 0, FH = p->init ? p->init->height : 0;
  if (p->task == LDM_TASK_OUTPAINT) {
    FW += p->outpaint_left + p->outpaint_right;
    FH += p->outpaint_top + p->outpaint_bottom;
  }
  int64_t WW, WH, OW, OH;
  if (p->task == LDM_TASK_UPSCALE) {
    int lt = p->tile_size > 0 ? p->tile_size / f : FW * FH <= UPSCALE_WHOLE_PX ? (FW > FH ? FW : FH) : UPSCALE_TILE;
    if (lt < 16) lt = 16;
    WW = (FW < lt ? FW : lt) * f; /* one tile, decoded at 4x */
    WH = (FH < lt ? FH : lt) * f;
    OW = FW * f;
    OH = FH * f;
  } else if (p->task == LDM_TASK_TXT2IMG || (p->task == LDM_TASK_INPAINT && p->only_masked)) {
    WW = p->width ? p->width : m->fam.native_size;
    WH = p->height ? p->height : m->fam.native_size;
    OW = p->task == LDM_TASK_TXT2IMG ? WW : FW;
    OH = p->task == LDM_TASK_TXT2IMG ? WH : FH;
  } else {
    WW = p->width ? p->width : FW;
    WH = p->height ? p->height : FH;
    OW = FW;
    OH = FH;
  }
  /* the latent: 1/f of the working size (the x4's is the low-res tile) */
  int64_t hw = ((WH + f - 1) / f) * ((WW + f - 1) / f);
  int64_t B = ldm_cfg_needs_uncond(p->cfg_scale) ? 2 : 1;
  /* UNet: skips of every level plus temporaries at level 0 */
  double unet = 0;
  for (int l = 0; l < uc->n_levels; l++)
    unet += (double)(uc->layers_per_block + 1) * uc->channels[l] * (double)hw / (double)(1ll << (2 * l));
  unet += 6.0 * uc->channels[0] * (double)hw;
  if (p->n_controls > 0) unet *= 2.0; /* the ControlNets' activations and the residuals they add */
  unet *= 4.0 * (double)B;
  /* VAE decode: the full-resolution levels hold two levels' widths */
  int64_t vpx = WW * WH;
  if (p->tile_size > 0 || vpx > 1024 * 1024) {
    int64_t t = p->tile_size > 0 ? p->tile_size : 64 * f;
    if (vpx > t * t) vpx = t * t;
  }
  int cmax = vc->levels > 1 ? vc->ch[1] : vc->ch[0];
  double vae = 3.0 * cmax * (double)vpx * 4.0;
  /* pipeline buffers: full-size init, masks, canvas (floats) and the
   * outputs (bytes); working-size copies */
  double bufs = (double)FW * FH * 4.0 * 10.0 + (double)OW * OH * (3.0 * p->batch_count + 16.0) +
                (double)WW * WH * 4.0 * 8.0;
  return (int64_t)(unet > vae ? unet : vae) + (int64_t)bufs;
}

ldm_status pl_job_estimate(ldm_job *job, int64_t *bytes, ldm_error *err) {
  *bytes = job_estimate(job);
  return LDM_OK;
}

/* Refuses a job whose estimate passes the limit (max_memory_mb, or the
 * memory available now). */
static ldm_status admit(ldm_job *job, ldm_error *err) {
  const ldm_job_params *p = &job->p;
  if (p->max_memory_mb < 0 || p->max_memory_mb > (INT64_MAX >> 20)) return LDM_OK;
  int64_t need = job_estimate(job);
  int64_t limit = p->max_memory_mb > 0 ? p->max_memory_mb << 20 : (int64_t)ldm_memory_available_bytes();
  if (limit <= 0 || need <= limit) return LDM_OK;
  return ldm_fail(err, LDM_ERR_NOMEM,
                  "this job needs an estimated %lld MiB of working memory, more than the %lld MiB %s (a smaller "
                  "size, fewer pixels to add, --tile, or a higher --max-memory)",
                  (long long)(need >> 20), (long long)(limit >> 20),
                  p->max_memory_mb > 0 ? "allowed" : "available (MemAvailable)");
}

ldm_status pl_job_run(ldm_job *job, ldm_image ***images, int *n_images, ldm_error *err) {
  const ldm_job_params *p = &job->p;
  ldm_model *m = job->model;
  bool x4 = m->fam.family == LDM_FAMILY_X4_UPSCALER;
  if ((p->task == LDM_TASK_UPSCALE) != x4)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: a %s model cannot %s%s", ldm_source_path(m->src),
                    ldm_family_name(m->fam.family), p->task == LDM_TASK_UPSCALE ? "upscale" : "generate",
                    x4 ? " (it is an x4 upscaler: use the upscale task)" : " (use an x4 upscaler model)");
  LDM_TRY(admit(job, err));

  run r;
  ldm_status st = setup_run(&r, job, err);
  r.release = job_estimate(job) >= release_min_bytes;
  if (st == LDM_OK) st = pl_model_apply_loras(m, job, &r.ctx, err);
  int count = p->batch_count;
  ldm_image **out = calloc((size_t)count, sizeof *out);
  float *init = NULL, *mask = NULL, *work_init = NULL, *work_mask = NULL, *gen = NULL, *blur_tmp = NULL;
  ldm_image *canvas = NULL;
  if (!out && st == LDM_OK) st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  if (st != LDM_OK) goto done;

  /* The full-size inputs: init (planar, [-1, 1]) and mask (0..1). */
  const ldm_image *src_img = p->init;
  int FW = src_img ? src_img->width : 0, FH = src_img ? src_img->height : 0;
  if (p->task == LDM_TASK_OUTPAINT) {
    /* Extend the canvas: edge pixels stretched into the new area, mask = new area. */
    int nw = FW + p->outpaint_left + p->outpaint_right, nh = FH + p->outpaint_top + p->outpaint_bottom;
    canvas = ldm_image_new(nw, nh, 3, LDM_PIXEL_F32);
    mask = malloc((size_t)nw * nh * sizeof(float));
    if (!canvas || !mask) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory for a %dx%d canvas", nw, nh);
      goto done;
    }
    for (int y = 0; y < nh; y++)
      for (int x = 0; x < nw; x++) {
        int sx = x - p->outpaint_left, sy = y - p->outpaint_top;
        bool inside = sx >= 0 && sy >= 0 && sx < FW && sy < FH;
        sx = sx < 0 ? 0 : sx >= FW ? FW - 1 : sx;
        sy = sy < 0 ? 0 : sy >= FH ? FH - 1 : sy;
        float *d = (float *)((char *)canvas->data + (size_t)y * canvas->stride) + 3 * x;
        ldm_image one = *src_img;
        one.data = (char *)src_img->data + (size_t)sy * src_img->stride;
        for (int c = 0; c < 3; c++) {
          int ch = src_img->channels == 1 ? 0 : c;
          d[c] = src_img->type == LDM_PIXEL_F32 ? ((const float *)one.data)[(size_t)sx * src_img->channels + ch]
                                                : ((const unsigned char *)one.data)[(size_t)sx * src_img->channels + ch] / 255.0f;
        }
        mask[(size_t)y * nw + x] = inside ? 0.0f : 1.0f;
      }
    src_img = canvas;
    FW = nw;
    FH = nh;
  }
  if (src_img) {
    init = malloc((size_t)3 * FW * FH * sizeof(float));
    if (!init) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    pl_image_to_planar(src_img, init);
  }
  if (p->mask && p->task != LDM_TASK_OUTPAINT) {
    if (p->mask->width != FW || p->mask->height != FH) {
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "mask is %dx%d but the image is %dx%d", p->mask->width,
                    p->mask->height, FW, FH);
      goto done;
    }
    mask = malloc((size_t)FW * FH * sizeof(float));
    if (!mask) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    pl_mask_to_float(p->mask, mask);
  }
  if (p->task == LDM_TASK_UPSCALE) {
    st = upscale_all(&r, init, FW, FH, out, count);
    goto done;
  }
  bool inpaint = mask != NULL;
  if (inpaint) {
    int x0, y0, x1, y1;
    if (!pl_mask_bbox(mask, FW, FH, &x0, &y0, &x1, &y1)) {
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "the mask is empty: nothing to repaint");
      goto done;
    }
  }
  /* The blurred mask used for the final composite (the model sees it too). */
  float *comp_mask = NULL;
  if (inpaint) {
    comp_mask = malloc((size_t)FW * FH * sizeof(float));
    blur_tmp = malloc((size_t)FW * FH * sizeof(float));
    if (!comp_mask || !blur_tmp) {
      free(comp_mask);
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    memcpy(comp_mask, mask, (size_t)FW * FH * sizeof(float));
    pl_blur(comp_mask, FW, FH, p->mask_blur, blur_tmp);
    /* The blur feathers the edge inwards only: wherever the caller's mask is
     * 0 (and the original area of an outpaint) the result keeps the input. */
    for (size_t i = 0; i < (size_t)FW * FH; i++)
      if (mask[i] == 0.0f) comp_mask[i] = 0.0f;
    free(mask);
    mask = comp_mask;
  }

  /* Working region and size. */
  int rx0 = 0, ry0 = 0, rx1 = FW, ry1 = FH;
  int WW, WH;
  if (p->task == LDM_TASK_TXT2IMG) {
    WW = p->width ? p->width : m->fam.native_size;
    WH = p->height ? p->height : m->fam.native_size;
  } else if (inpaint && p->only_masked) {
    int tw = p->width ? p->width : m->fam.native_size, th = p->height ? p->height : m->fam.native_size;
    crop_region(mask, FW, FH, p->only_masked_padding, tw, th, &rx0, &ry0, &rx1, &ry1);
    WW = tw;
    WH = th;
  } else {
    /* the image's own size: the VAE pads odd sides by reflection and crops */
    WW = p->width ? p->width : FW;
    WH = p->height ? p->height : FH;
  }
  int RW = rx1 - rx0, RH = ry1 - ry0;
  if (src_img) {
    work_init = malloc((size_t)3 * WW * WH * sizeof(float));
    if (!work_init) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    float *crop = malloc((size_t)3 * RW * RH * sizeof(float));
    if (!crop) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    pl_crop(init, 3, FW, FH, rx0, ry0, crop, RW, RH);
    bool ok = true;
    if (RW == WW && RH == WH) memcpy(work_init, crop, (size_t)3 * WW * WH * sizeof(float));
    else ok = pl_resize(crop, 3, RW, RH, work_init, WW, WH) == 0;
    free(crop);
    if (!ok) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
  }
  if (inpaint) {
    work_mask = malloc((size_t)WW * WH * sizeof(float));
    float *crop = malloc((size_t)RW * RH * sizeof(float));
    if (!work_mask || !crop) {
      free(crop);
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
    pl_crop(mask, 1, FW, FH, rx0, ry0, crop, RW, RH);
    bool ok = true;
    if (RW == WW && RH == WH) memcpy(work_mask, crop, (size_t)WW * WH * sizeof(float));
    else ok = pl_resize(crop, 1, RW, RH, work_mask, WW, WH) == 0;
    free(crop);
    if (!ok) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
      goto done;
    }
  }
  if ((st = prepare(&r, WW, WH)) != LDM_OK) goto done;
  if (p->n_controls > 0 &&
      (st = setup_controls(&r, src_img ? FW : 0, FH, rx0, ry0, RW, RH, WW, WH, work_init, work_mask)) != LDM_OK)
    goto done;
  int OW = WW, OH = WH;
  gen = malloc((size_t)3 * OW * OH * sizeof(float));
  if (!gen) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    goto done;
  }
  r.step_total = count * (ldm_sampler_timestep_count(r.sampler) - ldm_sampler_begin(r.sampler));
  image_inputs in = {work_init, inpaint ? work_mask : NULL};
  for (int b = 0; b < count && st == LDM_OK; b++) {
    r.step_base = b * (ldm_sampler_timestep_count(r.sampler) - ldm_sampler_begin(r.sampler));
    st = run_one(&r, p->seed + (uint64_t)b, &in, gen);
    if (st != LDM_OK) break;
    if (!inpaint) {
      out[b] = planar_to_image(gen, OW, OH, p->output_type);
    } else {
      out[b] = paste_back(src_img, gen, WW, WH, rx0, ry0, RW, RH, mask, p);
    }
    if (!out[b]) st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  }
done:
  teardown_run(&r);
  free(init);
  free(mask);
  free(blur_tmp);
  free(work_init);
  free(work_mask);
  free(gen);
  ldm_image_free(canvas);
  if (st != LDM_OK) {
    for (int i = 0; out && i < count; i++) ldm_image_free(out[i]);
    free(out);
    return st;
  }
  *images = out;
  *n_images = count;
  return LDM_OK;
}
