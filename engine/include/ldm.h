/* libldm: latent diffusion inference on the CPU (Stable Diffusion family).
 *
 * The one public header of the engine. Conventions:
 *  - every fallible call returns an ldm_status; when it is not LDM_OK and the
 *    caller passed an ldm_error, err->msg holds a one-line message that names
 *    the file, tensor, parameter or value at fault;
 *  - handles are opaque, created by *_new or *_load and released by *_free
 *    (NULL-safe); parameters are borrowed unless documented otherwise;
 *  - images at this edge are row-major, interleaved channels, sRGB-encoded
 *    (non-linear) values; tensors in the `eval` harness are NCHW as in PyTorch.
 *  - the library never calls exit()/abort() and never prints.
 */
#ifndef LDM_H
#define LDM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LDM_BUILDING)
#define LDM_API __attribute__((visibility("default")))
#else
#define LDM_API
#endif

#define LDM_VERSION_STRING "0.1.0"

typedef enum ldm_status {
  LDM_OK = 0,
  LDM_ERR_INVALID_ARG,  /* a parameter value is out of range or inconsistent */
  LDM_ERR_IO,           /* a file could not be opened, mapped, read or written */
  LDM_ERR_FORMAT,       /* a file is malformed (header, offsets, JSON, PNG) */
  LDM_ERR_UNSUPPORTED,  /* valid input this build does not handle (yet) */
  LDM_ERR_NOMEM,        /* an allocation failed or a size overflowed */
  LDM_ERR_SHAPE,        /* a tensor has the wrong shape or dtype */
  LDM_ERR_MISSING,      /* a required tensor or file is absent */
  LDM_ERR_CANCELLED,    /* the job was cancelled by the caller */
  LDM_ERR_INTERNAL      /* a bug in libldm: please report */
} ldm_status;

/* Caller-owned error record; fill with ldm_error_clear() or zero it. */
typedef struct ldm_error {
  ldm_status status;
  char msg[1024];
} ldm_error;

LDM_API const char *ldm_status_str(ldm_status s);
LDM_API void ldm_error_clear(ldm_error *err);
LDM_API const char *ldm_version(void);

/* Number of physical cores (the default thread budget), at least 1. */
LDM_API int ldm_default_threads(void);
/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
LDM_API size_t ldm_peak_rss_bytes(void);
/* Memory the system can give without swapping (MemAvailable in
 * /proc/meminfo) in bytes, 0 if unknown. */
LDM_API size_t ldm_memory_available_bytes(void);
/* Human-readable list of CPU features libldm uses ("avx2 f16c fma ..."). */
LDM_API const char *ldm_cpu_features(void);
/* The BLAS and the kernels it runs here, e.g. "OpenBLAS 0.3.21, SkylakeX
 * kernels". */
LDM_API const char *ldm_blas_info(void);
/* Call first in main(), before any thread starts: OpenBLAS (DYNAMIC_ARCH
 * builds) picks its kernels when it is loaded, from a table of CPU models,
 * and gives a CPU newer than its table its generic SSE3 kernels (5x slower
 * than the AVX-512 ones on an AVX-512 CPU). When it did so, and the user
 * has not set OPENBLAS_CORETYPE, this sets OPENBLAS_CORETYPE to the kernel
 * set for this CPU's instructions (Cooperlake, SkylakeX, Haswell or Zen) and
 * executes the program again (/proc/self/exe, the same argv, open file
 * descriptors kept). Returns when nothing needed doing or that failed. */
LDM_API void ldm_blas_tune(char **argv);

/* ---- component harness -------------------------------------------------
 * Runs one model component on tensors read from a safetensors file and writes
 * the outputs to another. Components and their tensor names:
 *   text        input_ids [B,77] i32/i64 -> last_hidden_state,
 *               penultimate_hidden_state, pooled (when present)
 *   vae-encode  image [B,3,H,W] in [-1,1] -> mean, logvar
 *   vae-decode  latent [B,4,h,w] unscaled -> image
 *   taesd-encode / taesd-decode   as vae-*, for TAESD files
 *   unet        sample, timestep, encoder_hidden_states (+ text_embeds,
 *               time_ids, class_labels, timestep_cond) -> out
 *   controlnet  sample, timestep, encoder_hidden_states, controlnet_cond
 *               [B,3,8h,8w] in 0..1 (+ conditioning_scale [1], text_embeds,
 *               time_ids) -> down_0 .. down_N, mid (ControlNet file/folder)
 *   esrgan      image [B,3,H,W] RGB in 0..1 -> image [B,3,H*s,W*s] (RRDBNet or
 *               SRVGGNetCompact file; options tile=N,overlap=N, repeat=N)
 * `options` is a comma-separated key=value list or NULL; unet: repeat=N runs
 * N more forward passes on the same inputs and writes the seconds of each
 * into the output's metadata as forward_seconds ("1.23,0.98,..."). */
typedef struct ldm_eval_params {
  const char *component;
  const char *model_path;   /* checkpoint file or diffusers folder */
  const char *in_path;
  const char *out_path;
  const char *options;
  int threads;              /* 0 = ldm_default_threads() */
} ldm_eval_params;

LDM_API ldm_status ldm_eval_run(const ldm_eval_params *p, ldm_error *err);
/* NULL-terminated list of component names the harness knows. */
LDM_API const char *const *ldm_eval_components(void);

/* ---- safetensors inspection (used by `ldm info`) ----------------------- */
typedef struct ldm_file_summary {
  int64_t n_tensors;
  int64_t n_params;
  int64_t file_bytes;
  char dtypes[64];          /* e.g. "F16 F32" */
} ldm_file_summary;

LDM_API ldm_status ldm_file_summarize(const char *path, ldm_file_summary *out,
                                      ldm_error *err);
/* Calls fn for each tensor (name, dtype name, ndim, shape) in file order,
 * then for each __metadata__ entry with ndim = -1 and the value in dtype. */
typedef void (*ldm_tensor_visit_fn)(void *user, const char *name,
                                    const char *dtype, int ndim,
                                    const int64_t *shape);
LDM_API ldm_status ldm_file_list(const char *path, ldm_tensor_visit_fn fn,
                                 void *user, ldm_error *err);

/* ---- images ------------------------------------------------------------ */
typedef enum ldm_pixel_type {
  LDM_PIXEL_U8 = 0,         /* 0..255 */
  LDM_PIXEL_F32 = 1         /* 0..1 */
} ldm_pixel_type;

typedef struct ldm_image {
  int width, height;
  int channels;             /* 1 (grey/mask), 3 (RGB) or 4 (RGBA) */
  ldm_pixel_type type;
  size_t stride;            /* bytes from one row to the next */
  void *data;
} ldm_image;

/* Allocates an image owned by the caller (free with ldm_image_free). */
LDM_API ldm_image *ldm_image_new(int width, int height, int channels,
                                 ldm_pixel_type type);
LDM_API void ldm_image_free(ldm_image *img);
/* Resamples src to width x height into a new image *out (same channels and
 * pixel type; the caller frees it) with the filter the pipelines use for
 * their crops and paste-backs: a separable triangle (tent) filter, widened
 * by the scale factor when shrinking (antialiased), taps outside the image
 * dropped and the rest renormalised -- PIL's Image.resize(BILINEAR) and
 * torch's interpolate(mode="bilinear", antialias=True, align_corners=False).
 * Horizontal pass first, in float; F32 results are not rounded, U8 results
 * rounded to nearest once at the end. 1, 3 or 4 channels, each channel
 * (alpha included) filtered alone (not premultiplied). */
LDM_API ldm_status ldm_image_resize(const ldm_image *src, int width, int height,
                                    ldm_image **out, ldm_error *err);

/* The largest image side (pixels) a job takes or makes: output sizes, init
 * images and outpainted canvases. */
#define LDM_MAX_IMAGE_SIDE 16384


/* ---- models and jobs ------------------------------------------------------ */
typedef struct ldm_model ldm_model;
typedef struct ldm_job ldm_job;

typedef enum ldm_task {
  LDM_TASK_TXT2IMG = 0,
  LDM_TASK_IMG2IMG,
  LDM_TASK_INPAINT,
  LDM_TASK_OUTPAINT,
  LDM_TASK_UPSCALE
} ldm_task;

typedef enum ldm_rng {
  LDM_RNG_CPU = 0,          /* torch.randn on CPU (diffusers on CPU, ComfyUI) */
  LDM_RNG_CUDA = 1          /* torch.randn(device='cuda') (AUTOMATIC1111) */
} ldm_rng;

typedef enum ldm_masked_content {
  LDM_FILL_ORIGINAL = 0,
  LDM_FILL_LATENT_NOISE,
  LDM_FILL_LATENT_NOTHING
} ldm_masked_content;

/* Arithmetic of the matrix products: convolutions, linear layers and the
 * attention kernel's QK^T and PV (softmax, norms and element-wise ops stay
 * f32; products with few rows stream their weights in f32). */
typedef enum ldm_precision {
  LDM_PRECISION_F32 = 0,       /* f32 operands and sums (default) */
  /* Operands rounded to bf16, sums in f32, where the CPU has AVX512-BF16
   * (about twice the f32 rate) or the BLAS exports cblas_sbgemm; plain f32
   * on other CPUs (ldm_bf16_native() tells which). */
  LDM_PRECISION_BF16 = 1,
  /* The bf16 rounding on any CPU, summed with f32 instructions: shows what
   * bf16 does to a result on a machine without it; slower than f32. */
  LDM_PRECISION_BF16_EMULATED = 2
} ldm_precision;

/* True when LDM_PRECISION_BF16 runs in bf16 on this machine. */
LDM_API bool ldm_bf16_native(void);
/* One core's instruction peaks in GFLOP/s (0 where the CPU lacks the
 * instruction): f32 FMA on the widest vectors, AVX512-BF16's VDPBF16PS and
 * AMX-BF16's TDPBF16PS (the latter only where this build and the OS let the
 * process use AMX). Timed in the thread's CPU time; scale 1 takes about
 * 0.1 s in all. */
typedef struct ldm_cpu_peak {
  double f32, bf16_dot, bf16_amx;
} ldm_cpu_peak;
LDM_API void ldm_cpu_peaks(ldm_cpu_peak *p, double scale);
/* What LDM_PRECISION_BF16's products run on here ("AMX TDPBF16PS (own
 * kernel)", "cblas_sbgemm", "AVX512-BF16 VDPBF16PS (own kernel)" or f32);
 * why AMX is not used ("" when it is). */
LDM_API const char *ldm_bf16_path(void);
LDM_API bool ldm_bf16_amx(void); /* LDM_PRECISION_BF16 runs on AMX tiles */
LDM_API const char *ldm_amx_note(void);

/* "f32", "bf16", "bf16-emulated"; parse returns false for other names. */
LDM_API const char *ldm_precision_name(ldm_precision p);
LDM_API bool ldm_precision_parse(const char *name, ldm_precision *out);

/* The "auto" precision: bf16 where this CPU's best bf16 peak (AMX or
 * VDPBF16PS, ldm_cpu_peaks) is at least LDM_BF16_AUTO_RATIO times its f32
 * peak, f32 elsewhere. The peaks are measured once per machine (~0.1 s) and
 * kept in cache_file (NULL: measured every time), one line per CPU model
 * and feature set; the file's directory is made if missing. */
#define LDM_BF16_AUTO_RATIO 1.8
typedef struct ldm_precision_auto_info {
  ldm_cpu_peak peak; /* one core's peaks, GFLOP/s */
  bool cached;       /* read from cache_file */
  char cpu[192];     /* the cache key: CPU model string and features */
  char reason[256];  /* why, in one line */
} ldm_precision_auto_info;
LDM_API ldm_precision ldm_precision_auto(const char *cache_file, ldm_precision_auto_info *info);

typedef struct ldm_model_params {
  const char *path;         /* .safetensors file or diffusers folder */
  const char *vae_path;     /* optional VAE replacing the checkpoint's */
  const char *taesd_path;   /* optional TAESD for previews */
  const char *family;       /* NULL = detect; else "sd1", "sd2", "sdxl", ... */
  const char *prediction;   /* NULL = detect; "epsilon", "v", "sample" */
  int threads;              /* 0 = ldm_default_threads() */
  /* What an original checkpoint's yaml config would say, as
   * "unet.heads=8,unet.head_dim=64,unet.groups=32,vae.groups=32,text.heads=12"
   * (any subset). NULL = the file's "ldm.options" metadata, else the
   * family's defaults. */
  const char *options;
  /* Keep weights prepared for the matrix products (f32, packed, Winograd-
   * transformed) after first use, up to this many MiB: faster steps, more
   * memory (about 2-3.5x an f16 file). 0 = off (default), -1 = no limit.
   * With precision bf16 on AMX, 0 keeps the weights' bf16 panels (about
   * the size of an f16 file) anyway. A model with this cache also keeps its
   * jobs' worker threads and scratch memory (the largest job's activations)
   * from one job to the next, until ldm_model_free. */
  int weight_cache_mb;
  ldm_precision precision;  /* matrix products; default LDM_PRECISION_F32 */
} ldm_model_params;

typedef struct ldm_model_info {
  char family[32];          /* "sd1", "sd1-inpaint", "sd2", "sdxl", "x4" ... */
  char prediction[16];
  int unet_in_channels;
  int native_size;          /* pixels per side the model was trained at */
  int64_t n_params;
  char dtype[16];
  int64_t file_bytes;
  /* What the model states about itself (see "Model settings" below): the
   * native size above is the stated one when native_size_stated, else the
   * family's default. The recommended settings are 0 / 0.0 / "" when the
   * model states none. */
  bool native_size_stated;
  int rec_steps;            /* recommended sampling steps, 1..1000, or 0 */
  float rec_cfg;            /* recommended guidance scale, 0..100, or 0 */
  char rec_sampler[32];     /* a name ldm_sampler_reference() knows, or "" */
  /* Upscalers. feed_forward: an ESRGAN-class net (family "esrgan":
   * RRDBNet -- ESRGAN, Real-ESRGAN, BSRGAN, 4x-UltraSharp, NMKD; "srvgg":
   * SRVGGNetCompact -- realesr-general-x4v3, realesr-animevideov3): one pass
   * per tile, no prompt, steps, seed, VAE or text encoder; it runs only
   * LDM_TASK_UPSCALE (and the refine stage, see ldm_job_params). scale: the
   * output pixels per input pixel per side (1, 2, 4 ...) of an upscaler,
   * 4 for the SD x4 upscaler (family "x4-upscaler", feed_forward false),
   * 0 for the other families. arch: what was detected, e.g. "RRDBNet
   * (Real-ESRGAN keys), 23 blocks, 64 features, x4". prediction is "none"
   * and n_params counts all of the file's parameters for feed-forward nets. */
  bool feed_forward;
  int scale;
  char arch[96];
} ldm_model_info;

/* Model settings. A model may state its native size and recommended
 * settings; ldm_model_load reads and validates them (a bad value fails the
 * load with LDM_ERR_FORMAT naming the file, key and value):
 *  - single file, `__metadata__` strings: "ldm.native_size" (pixels per
 *    side, a multiple of 8, 8..16384), else Stability's ModelSpec
 *    "modelspec.resolution" ("512x512"; non-square: the side of the same
 *    area, rounded to a multiple of 8); "ldm.steps" (1..1000),
 *    "ldm.cfg_scale" (0..100), "ldm.sampler" (a sampler name or A1111
 *    label);
 *  - diffusers folder, model_index.json: an object "_ldm" with the members
 *    "native_size", "steps" (integers), "cfg_scale" (number), "sampler"
 *    (string); diffusers ignores keys that start with '_'. Without
 *    "native_size", the UNet's config.json sample_size times the VAE's
 *    downscaling (2^(levels - 1) from vae/config.json) when both are there.
 * A job's width/height 0 means this native size. The engine does not apply
 * the recommended steps, guidance or sampler by itself: callers (the CLI,
 * the plug-in) use them as defaults for what the user left unset. */

LDM_API void ldm_model_params_init(ldm_model_params *p);
/* Loads (mmaps) a model. Thread-safety: a model may serve many sequential
 * jobs; jobs on one model must not run concurrently.
 * ESRGAN-class upscalers (.safetensors holding an RRDBNet or
 * SRVGGNetCompact, in any of the key layouts users' files have) load here
 * too: ldm_model_info tells them apart (feed_forward, family "esrgan" /
 * "srvgg", scale). They keep their prepared weights (weight_cache_mb 0 means
 * no limit for them, about 4x the f32 weights). .pth / .ckpt pickles are
 * refused with LDM_ERR_UNSUPPORTED and a message that says how to convert. */
LDM_API ldm_status ldm_model_load(ldm_model **out, const ldm_model_params *p,
                                  ldm_error *err);
LDM_API void ldm_model_free(ldm_model *m);
LDM_API ldm_status ldm_model_get_info(const ldm_model *m, ldm_model_info *out);

/* Called on the thread that runs ldm_job_run after each step; `preview`
 * (NULL unless want_preview) is valid only during the call. It shows the
 * sampler's current prediction of the final image -- the denoised estimate
 * x0 of the step's model output (with CFG), as AUTOMATIC1111's live
 * previews do, not the noisy latent -- so the picture forms from the first
 * steps instead of out of noise. It is rendered through the model's TAESD
 * when one was loaded (ldm_model_params.taesd_path; RGB U8 at the TAESD's
 * full size), else by the fast latent->RGB approximation (RGB U8, one pixel
 * per latent pixel: 1/8 of the work size, 1/4 of the output for the x4
 * upscaler). With a 4-channel UNet inpainting, the unmasked latent shows
 * the original. Every task gives previews, upscale included (per tile when
 * tiled). Return non-zero to cancel. */
typedef int (*ldm_progress_fn)(void *user, int step, int total,
                               double elapsed_s, const ldm_image *preview);

/* A LoRA (LoCon, LCM-LoRA) to merge into the model for a job: a
 * .safetensors file in the kohya-ss / AUTOMATIC1111 naming (lora_unet_*,
 * lora_te_*, lora_te1_*, lora_te2_*) or the diffusers / PEFT naming (unet.*,
 * text_encoder.*, text_encoder_2.* with lora_A / lora_B). The weights become
 * W + multiplier * (alpha / rank) * up @ down in f32 copies held by the
 * model (the file is never changed); they are rebuilt only when a job asks
 * for another set or other multipliers. */
typedef struct ldm_lora {
  const char *path;
  float multiplier;         /* 1 = as trained; negative allowed */
} ldm_lora;

/* ---- ControlNet -----------------------------------------------------------
 * A ControlNet steers a job with a control image (a scribble, line art, an
 * edge, depth or pose map): its residuals are added to the UNet's skip
 * connections and middle block at every step of its start..end range, as
 * diffusers' StableDiffusion(XL)ControlNet(Img2Img|Inpaint)Pipeline do
 * (classifier-free guidance: the ControlNet runs on both halves of the
 * batch; no guess mode). Models: .safetensors only, a diffusers
 * ControlNetModel (folder with config.json, or its single file) or the
 * original layout (control_model.* / input_hint_block, zero_convs,
 * middle_block_out, with or without the control_model. prefix), for SD1.x,
 * SD2.x and SDXL; the family comes from the tensors and must match the
 * job's model (else LDM_ERR_INVALID_ARG naming both). */
typedef enum ldm_preprocess {
  LDM_PREPROCESS_NONE = 0,  /* the image is the control image as drawn */
  LDM_PREPROCESS_INVERT,    /* 1 - value (dark lines on white -> white on black) */
  LDM_PREPROCESS_SCRIBBLE,  /* threshold to a binary sketch */
  LDM_PREPROCESS_CANNY,     /* Canny edges (canny_low / canny_high) */
  /* the inpaint ControlNet's convention (control_v11p_sd15_inpaint): the
   * job's init image with the pixels its mask repaints (mask > 0.5) set to
   * -1; `image` may then be NULL (inpaint jobs only) */
  LDM_PREPROCESS_INPAINT
} ldm_preprocess;

/* "none", "invert", "scribble", "canny", "inpaint"; parse returns false for
 * other names. */
LDM_API const char *ldm_preprocess_name(ldm_preprocess k);
LDM_API bool ldm_preprocess_parse(const char *name, ldm_preprocess *out);

typedef struct ldm_control {
  const char *model_path;   /* ControlNet .safetensors file or diffusers folder */
  /* Any size, 1, 3 or 4 channels, U8 or F32; preprocessed at its own
   * size by ldm_control_preprocess (alpha composited as it says), then
   * resized to the job's working size by ldm_control_resize (the image
   * processor of diffusers' ControlNet pipelines: resize, values 0..1). */
  const ldm_image *image;
  float scale;              /* conditioning scale (A1111 "Control Weight"), 0..2 */
  float start, end;         /* fraction of the steps it acts in: 0 <= start < end <= 1 */
  ldm_preprocess preprocess;
  int canny_low, canny_high; /* LDM_PREPROCESS_CANNY thresholds, 0 <= low <= high <= 255 */
} ldm_control;

/* Defaults: scale 1, start 0, end 1, LDM_PREPROCESS_NONE, canny 100/200. */
LDM_API void ldm_control_init(ldm_control *c);

/* What a ControlNet file or folder is, read from its tensors (nothing is
 * run): LDM_ERR_INVALID_ARG when it is no ControlNet. */
typedef struct ldm_controlnet_info {
  char family[32];   /* "sd1", "sd2", "sdxl" (the checkpoints it fits) */
  char layout[16];   /* "diffusers" or "original" */
  int hint_channels; /* channels of the control image (3) */
  int64_t n_params;  /* its UNet part's parameters */
  int64_t file_bytes;
} ldm_controlnet_info;
LDM_API ldm_status ldm_controlnet_probe(const char *path, ldm_controlnet_info *out, ldm_error *err);

/* Control images. A ControlNet reads a control image: a map the
 * user brings (depth, pose, line art: LDM_PREPROCESS_NONE), or one made from
 * a drawing by a preprocessor. The rules of each, as ldm_control_preprocess
 * runs them:
 *  - NONE: the image as drawn (transparency over black);
 *  - INVERT: 1 - v per channel: dark lines on white -> white lines on
 *    black, as sd-webui-controlnet's "invert (from white bg & black line)";
 *  - SCRIBBLE: a binary sketch as ControlNet's scribble demos make it:
 *    white where min(R, G, B) < scribble_threshold (0..255 scale; 127:
 *    "< 127"), black elsewhere, then dilated by scribble_dilate pixels (a
 *    (2r+1) x (2r+1) square, cv2.dilate with np.ones; pixels outside the
 *    image ignored);
 *  - CANNY: edges as OpenCV 4's cv2.Canny(gray, low, high) (3x3 Sobel with
 *    replicated borders, L1 gradient (L2gradient=false), hysteresis;
 *    thresholds truncated to integers) on cv2.cvtColor(RGB2GRAY) of the
 *    8-bit image: white edges on black.
 * (LDM_PREPROCESS_INPAINT is the job's own: it needs the init image and
 * mask; ldm_control_preprocess refuses it.) */

/* The scribble's largest dilation (pixels). */
#define LDM_SCRIBBLE_MAX_DILATE 64

typedef struct ldm_preprocess_params {
  ldm_preprocess kind;
  float canny_low, canny_high;  /* 0 <= low <= high <= 2040; default 100, 200 */
  float scribble_threshold;     /* 0..256; default 127 */
  int scribble_dilate;          /* 0..LDM_SCRIBBLE_MAX_DILATE; default 0 */
} ldm_preprocess_params;

/* kind LDM_PREPROCESS_NONE and the defaults above. */
LDM_API void ldm_preprocess_params_init(ldm_preprocess_params *p);
/* Runs the preprocessor on src (1, 3 or 4 channels, U8 or F32, any size)
 * into a new RGB image *out of the same size and pixel type (the caller
 * frees it). Alpha is composited first: over black for NONE, over white
 * (paper) for the others. F32 values are clamped to 0..1; scribble compares
 * them unrounded, canny rounds them to 8 bits as OpenCV's input. Bad
 * parameters (negative, NaN, low above high, out of range) are
 * LDM_ERR_INVALID_ARG naming the parameter and value. */
LDM_API ldm_status ldm_control_preprocess(const ldm_image *src, const ldm_preprocess_params *p, ldm_image **out,
                                          ldm_error *err);
/* The control image at the generation size as diffusers' ControlNet
 * pipelines make it (control_image_processor: VaeImageProcessor with
 * do_convert_rgb, do_normalize=False): RGB (grey replicated, alpha
 * dropped), resized with PIL's Image.resize(LANCZOS) -- exactly, in PIL's
 * 8-bit fixed point, for U8 input; in double precision, clamped to 0..1, for
 * F32 -- into a new RGB F32 image *out in 0..1 (U8 results / 255). The
 * same size is a plain copy. diffusers rounds the size down to a multiple
 * of 8 first: pass the generation size. */
LDM_API ldm_status ldm_control_resize(const ldm_image *src, int width, int height, ldm_image **out,
                                      ldm_error *err);


typedef struct ldm_job_params {
  ldm_task task;
  const char *prompt;
  const char *negative_prompt;
  int width, height;        /* output size (txt2img); 0 = model native (stated, else family) */
  int steps;
  float cfg_scale;
  float guidance_rescale;
  const char *sampler;      /* "euler", "euler_a", "dpmpp_2m_karras", ... */
  uint64_t seed;
  ldm_rng rng;
  float strength;           /* img2img / inpaint denoising strength */
  int batch_count;
  int clip_skip;            /* 1 = last layer */
  const ldm_image *init;    /* img2img / inpaint / outpaint / upscale */
  const ldm_image *mask;    /* 1 channel, F32 0..1 or U8; 1 = repaint */
  float mask_blur;          /* pixels */
  bool only_masked;
  int only_masked_padding;  /* pixels around the mask's bounding box */
  ldm_masked_content masked_content;
  int outpaint_left, outpaint_top, outpaint_right, outpaint_bottom;
  int noise_level;          /* x4 upscaler */
  int tile_size;            /* tiles of this many output pixels, 0 = auto: upscale in one
                               piece up to a 256x256 input, else tiles of 512; the VAE in tiles
                               past 1 megapixel */
  int threads;              /* 0 = model's */
  bool want_preview;
  ldm_progress_fn progress;
  void *progress_user;
  /* Final images through the model's TAESD (ldm_model_params.taesd_path)
   * instead of its VAE: a fraction of the decode time, softer detail. */
  bool taesd_decode;
  /* The init image (img2img, inpaint, outpaint) encoded by the model's TAESD
   * encoder (ldm_model_params.taesd_path: a TAESD with its encoder half)
   * instead of its VAE encoder: a fraction of the encode time, a rougher
   * latent taken as it is (TAESD's latent has no distribution to sample).
   * For live painting, where the encode is a large part of a one-step job. */
  bool taesd_encode;
  /* Pixel type of the images ldm_job_run returns: LDM_PIXEL_U8 (default,
   * 0..255, rounded to nearest) or LDM_PIXEL_F32 (0..1, the decoder's values
   * clamped, never rounded to the 1/255 grid; the composite of inpaint and
   * outpaint in float too, so unmasked pixels equal the input's exactly,
   * U8 input as value/255). */
  ldm_pixel_type output_type;
  /* Inpaint / outpaint: skip the engine's paste-back composite. The result
   * (at the input's size; the grown canvas for outpaint) holds the decoded
   * generated image over the whole work region (the image, or the "only
   * masked" crop region, resampled back to its size with ldm_image_resize's
   * filter) and the input's pixels outside that region; the caller
   * composites, e.g. with a layer mask. Ignored by the other tasks. */
  bool no_composite;
  /* LDM_TASK_UPSCALE with a feed-forward (ESRGAN-class) model, see
   * ldm_model_info: the output scale, 0 = the model's; from 1 up to the
   * model's scale: the net's result resized to round(size * upscale_factor)
   * (x2 from a x4 model, as AUTOMATIC1111 and Real-ESRGAN's --outscale do).
   * tile_size above counts output pixels (0 = auto: one piece up to
   * 256x256 input pixels, else tiles of 192 input pixels overlapping by 32,
   * each tile's outer 8 dropped, the next 16 cross-faded). The output has
   * the init image's channels (1, 3 or 4): alpha goes through the net on
   * its own, replicated to RGB, and comes back as 0.299 R + 0.587 G + 0.114 B
   * (Real-ESRGAN's default alpha_upsampler); a fully opaque alpha stays 1
   * without a pass. F32 inputs are used unrounded; the result is clamped to
   * 0..1 and returned as output_type asks (F32: never rounded to 1/255).
   * One image (batch_count matters only with the refine stage: seeds seed,
   * seed + 1, ...). Progress: one step per tile and pass (RGB, alpha). */
  int upscale_factor;
  /* "Upscale and refine" (AUTOMATIC1111's "SD upscale" script, Krita AI
   * Diffusion's refine): with refine_model set (a txt2img/img2img
   * checkpoint; the upscale model is the job's), the upscaled image is
   * redrawn by img2img in tiles of refine_tile x refine_tile pixels
   * (0 = the checkpoint's native size) overlapping by refine_overlap (0 =
   * 64), cross-faded, each at refine_strength (0 = 0.3) with the job's
   * prompt, negative prompt, steps, cfg_scale, sampler, rng, clip_skip and
   * seed (the same seed for every tile, as A1111). Progress counts the
   * refine steps after the upscale's tiles. */
  ldm_model *refine_model;
  float refine_strength;
  int refine_tile;
  int refine_overlap;
  /* LoRAs for this job (copied by ldm_job_new), merged in this order before
   * those the prompt names with <lora:NAME:MULT>. */
  const ldm_lora *loras;
  int n_loras;
  /* ':'-separated model folders (see ldm_models_scan): where prompt tags
   * <lora:NAME:MULT> find NAME.safetensors and where textual-inversion
   * embeddings (used in prompts by file stem, or as embedding:NAME) are
   * found. NULL: no look-up; <lora:...> tags are then an error. */
  const char *model_dirs;
  /* Before any work, ldm_job_run estimates the job's peak working memory
   * (activations, latents, images; the model's weights are already loaded)
   * and refuses with LDM_ERR_NOMEM, the estimate in the message, when it
   * exceeds this many MiB. 0 = the memory available now
   * (ldm_memory_available_bytes), -1 = no check. */
  int64_t max_memory_mb;
  /* ControlNets for this job (copied by ldm_job_new, images borrowed until
   * ldm_job_free), txt2img, img2img and inpaint; at most LDM_MAX_CONTROLS.
   * Their residuals are summed (diffusers' MultiControlNetModel). */
  const ldm_control *controls;
  int n_controls;
} ldm_job_params;

#define LDM_MAX_CONTROLS 8

LDM_API void ldm_job_params_init(ldm_job_params *p, ldm_task task);
LDM_API ldm_status ldm_job_new(ldm_job **out, ldm_model *m,
                               const ldm_job_params *p, ldm_error *err);
/* Runs the job to completion on the calling thread. On success *images holds
 * *n_images images (RGB, of the job's output_type) that the caller frees with ldm_image_free and
 * the array with free(). A job whose memory estimate reaches 512 MiB drops
 * the text encoders' mapped weights from resident memory once the prompts
 * are encoded and the UNet's before the VAE decode (they stay in the page
 * cache and are read back when next needed; results do not change). */
LDM_API ldm_status ldm_job_run(ldm_job *job, ldm_image ***images,
                               int *n_images, ldm_error *err);
/* The peak working memory (bytes) ldm_job_run would need, as it estimates it
 * for max_memory_mb; loads the model's networks if they are not yet. */
LDM_API ldm_status ldm_job_memory_estimate(ldm_job *job, int64_t *bytes,
                                           ldm_error *err);
/* Safe from any thread; the running job returns LDM_ERR_CANCELLED within
 * one UNet evaluation. */
LDM_API void ldm_job_cancel(ldm_job *job);
LDM_API void ldm_job_free(ldm_job *job);

/* The LoRAs a job merges: ldm_job_params.loras first, then the prompt's
 * <lora:NAME:MULT> tags (resolved through model_dirs). Strings live as long
 * as the job. */
typedef struct ldm_job_lora {
  const char *path;         /* the file */
  const char *name;         /* its stem (A1111's LoRA name) */
  float multiplier;         /* the text encoders' and, unless unet_multiplier differs, the UNet's */
  float unet_multiplier;    /* <lora:NAME:TE:UNET> gives both */
  bool from_prompt;         /* named by a <lora:...> tag (false: ldm_job_params.loras) */
} ldm_job_lora;
LDM_API int ldm_job_lora_count(const ldm_job *job);
LDM_API const ldm_job_lora *ldm_job_lora_at(const ldm_job *job, int i);
/* The prompt without its <lora:...> tags (what the text encoder reads). */
LDM_API const char *ldm_job_prompt(const ldm_job *job);

/* AUTOMATIC1111's short hash of a .safetensors add-on (LoRA, embedding):
 * the first 12 hex digits of the SHA-256 of the file's bytes after the
 * safetensors header (modules/hashes.py addnet_hash_safetensors), as
 * "Lora hashes: \"NAME: HASH\"" in PNG parameters. out: 13 bytes. */
LDM_API ldm_status ldm_addon_hash(const char *path, char out[13], ldm_error *err);

/* ---- model folders --------------------------------------------------------
 * A model folder is a root in one of the layouts users have:
 *   AUTOMATIC1111  models/Stable-diffusion, models/Lora (and models/LyCORIS),
 *                  models/VAE, models/ControlNet, models/ESRGAN, embeddings
 *                  (and models/embeddings)
 *   ComfyUI        models/checkpoints, models/loras, models/embeddings,
 *                  models/vae, models/controlnet, models/upscale_models
 *   gimp-ldm       checkpoints, loras, embeddings, vae, controlnet, upscalers
 * or, when none of these sub-folders exists, a plain folder of files. Every
 * sub-folder is searched; a symbolic link is followed once (a folder is never
 * entered twice). Kind and family come from the tensors, not the names. */
typedef enum ldm_model_kind {
  LDM_KIND_ANY = -1,
  LDM_KIND_CHECKPOINT = 0,
  LDM_KIND_LORA,
  LDM_KIND_EMBEDDING,
  LDM_KIND_VAE,
  LDM_KIND_CONTROLNET,
  LDM_KIND_UPSCALER,
  LDM_KIND_UNKNOWN
} ldm_model_kind;

typedef struct ldm_model_entry {
  ldm_model_kind kind;
  const char *path;         /* the file (or diffusers folder) */
  const char *name;         /* file stem: the name prompts use */
  const char *family;       /* "sd1", "sd2", "sdxl", "sd1-inpaint", ... or "" */
  int64_t bytes;
  const char *error;        /* NULL, or why the file could not be read */
} ldm_model_entry;

/* Called for each file found; strings valid during the call. Non-zero stops. */
typedef int (*ldm_model_visit_fn)(void *user, const ldm_model_entry *e);

/* Scans the ':'-separated roots for files of `kind` (LDM_KIND_ANY: all) in
 * path order. Unreadable files are reported with entry->error set, never
 * an error of the call; a root that does not exist is LDM_ERR_IO. */
LDM_API ldm_status ldm_models_scan(const char *roots, ldm_model_kind kind, ldm_model_visit_fn fn,
                                   void *user, ldm_error *err);
/* The first file of `kind` whose stem is `name` under the roots (as prompt
 * tags <lora:NAME:...> are resolved; files with other stems are not
 * opened): its path into out (n bytes). LDM_ERR_MISSING when there is none,
 * LDM_ERR_IO when the one found cannot be read. */
LDM_API ldm_status ldm_models_find(const char *roots, ldm_model_kind kind, const char *name, char *out, size_t n,
                                   ldm_error *err);
/* "checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler",
 * "unknown"; parse returns false for other names. */
LDM_API const char *ldm_model_kind_name(ldm_model_kind k);
LDM_API bool ldm_model_kind_parse(const char *name, ldm_model_kind *out);

/* ---- tokenizer ------------------------------------------------------------
 * The CLIP BPE tokenizer. model_path NULL (or a single-file checkpoint) uses
 * the embedded OpenAI CLIP vocabulary; a diffusers folder with
 * tokenizer/vocab.json + merges.txt uses those files. `pad_id` < 0 means the
 * model's convention (end-of-text for CLIP-L). */
typedef struct ldm_tokenizer ldm_tokenizer;
LDM_API ldm_status ldm_tokenizer_load(ldm_tokenizer **out, const char *model_path,
                                      ldm_error *err);
LDM_API void ldm_tokenizer_free(ldm_tokenizer *tok);
/* Writes n_ctx ids (start, tokens truncated to n_ctx-2, end, padding). */
LDM_API ldm_status ldm_tokenizer_encode(const ldm_tokenizer *tok,
                                        const char *text, int32_t *ids,
                                        int n_ctx, int pad_id, ldm_error *err);

/* NULL-terminated sampler names and the reference each mirrors. */
LDM_API const char *const *ldm_sampler_names(void);
LDM_API const char *ldm_sampler_reference(const char *name);
/* The label AUTOMATIC1111 shows for a sampler ("DPM++ 2M Karras"), or NULL.
 * Sampler names passed to jobs may also be such labels. */
LDM_API const char *ldm_sampler_a1111_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
