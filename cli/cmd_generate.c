/* `ldm txt2img|img2img|inpaint|outpaint|upscale`: option parsing (the long
 * option names are a contract), PNG in/out with the AUTOMATIC1111-style
 * `parameters` text chunk, progress bar on stderr, and `--from-png` to
 * re-run a recipe read back from such a PNG. */
#include "cli.h"
#include "png_io.h"

#include <ctype.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LDM_DATADIR
#define LDM_DATADIR "/usr/local/share/gimp-ldm"
#endif
#ifndef LDM_SOURCE_DIR
#define LDM_SOURCE_DIR "."
#endif

/* One --controlnet group (or a ControlNet unit read back from a PNG). */
typedef struct cli_control {
  char *model; /* as given: a path, or a name in the model folders */
  char *image; /* --control IMAGE (NULL: none given) */
  float scale, start, end;
  ldm_preprocess pre;
  int low, high;   /* --canny LOW,HIGH */
  bool exact;      /* model is the stored path (ldm's key), not the unit's Model name */
  char path[4096]; /* the model file resolved */
  ldm_image *img;  /* the control image read */
} cli_control;

typedef struct gen_opts {
  ldm_task task;
  const char *cmd;
  const char *model, *vae, *taesd, *family, *prediction;
  char *prompt, *negative;
  int width, height, steps, batch_count, clip_skip, threads, noise_level, tile, weight_cache;
  float cfg_scale, strength, mask_blur;
  char sampler[32];
  char sampler_from[512];   /* where the sampler name came from, for its message */
  uint64_t seed;
  bool seed_random;
  int max_memory;           /* MiB: -1 no check, 0 the memory available */
  ldm_rng rng;
  const char *init_path, *mask_path, *out_path, *from_png;
  bool only_masked, progress, taesd_decode;
  int padding;
  ldm_precision precision;
  bool precision_auto; /* --precision auto: resolved before the model loads */
  ldm_masked_content fill;
  int left, top, right, bottom;
  /* given on the command line or by --from-png: the model's stated
   * recommendations do not replace these */
  bool set_steps, set_cfg, set_sampler;
  /* feed-forward (ESRGAN-class) upscale and its refine stage */
  int scale, refine_tile, refine_overlap;
  float refine_strength;
  const char *refine_model;
  bool feed_forward;
  ldm_lora loras[32];         /* --lora FILE[:MULT] (paths owned) */
  int n_loras;
  char *lora_buf;             /* the --from-png list's strings */
  char model_dirs[8192];      /* --model-dir ..., then $LDM_MODEL_PATH */
  cli_control ctl[LDM_MAX_CONTROLS]; /* --controlnet groups (or the PNG's units) */
  int n_ctl;
  bool ctl_from_png; /* ctl[] holds the recipe's units: a --controlnet replaces them */
} gen_opts;

static void usage(FILE *f, const char *cmd) {
  fprintf(f,
          "usage: ldm %s [options]\n"
          "  --model PATH          checkpoint (.safetensors) or diffusers folder (default: bundled demo model)\n"
          "  --vae PATH            VAE replacing the checkpoint's\n"
          "  --taesd PATH          TAESD for previews (and --decoder taesd)\n"
          "  --decoder vae|taesd   final decode: the model's VAE (default) or the faster TAESD\n"
          "  --weight-cache MB     keep weights prepared for the matrix products after first use\n"
          "                        (faster steps, about 2-3.5x the file's f16 size in memory; -1 = no limit)\n"
          "  --precision auto|f32|bf16|bf16-emulated\n"
          "                        matrix products in f32 (default) or with bf16 operands (f32 sums) on CPUs\n"
          "                        with AMX-BF16 or AVX512-BF16 (f32 elsewhere); auto: bf16 where this CPU's\n"
          "                        bf16 peak is >= 1.8x its f32 peak (measured once, kept in\n"
          "                        $XDG_CACHE_HOME/gimp-ldm/cpu-peaks), else f32; bf16-emulated: the bf16\n"
          "                        rounding on any CPU (slower)\n"
          "  --prompt TEXT         what to draw (A1111 emphasis: (word:1.2), [word], BREAK)\n"
          "  --negative-prompt TEXT\n"
          "  --width N --height N  output size, multiples of 8 (default: model's native size)\n"
          "  --steps N             sampling steps (default: the model's recommended, else 20)\n"
          "  --cfg-scale X         classifier-free guidance scale (default: the model's recommended, else 7)\n"
          "  --sampler NAME        see `ldm samplers` (default: the model's recommended, else euler_a)\n"
          "  --seed N              0..2^64-1, -1 = random (default -1); image i uses seed + i\n"
          "  --rng cpu|cuda        noise as torch on CPU (diffusers, ComfyUI) or CUDA (A1111) (default cpu)\n"
          "  --strength X          denoising strength 0..1 (default 0.75; outpaint 1)\n"
          "  --init IMAGE          input image (img2img, inpaint, outpaint, upscale)\n"
          "  --mask IMAGE          inpaint mask, white = repaint, same size as --init\n"
          "  --mask-blur PX        (default 4)   --only-masked   --padding PX (default 32)\n"
          "  --masked-content original|noise|nothing (default original)\n"
          "  --left/--top/--right/--bottom PX   outpaint margins (default 64 on each side)\n"
          "  --noise-level N       x4 upscaler noise level (default 20)\n"
          "  --tile PX             work in tiles of PX output pixels: upscale (default: one piece up to\n"
          "                        256x256 in, else 512; ESRGAN-class: else 192 input pixels), VAE\n"
          "                        (default: tiles past 1 megapixel)\n"
          "  upscale with an ESRGAN-class model (RRDBNet / SRVGGNetCompact .safetensors; picked by\n"
          "  the file's tensors, the diffusion options above then do not apply):\n"
          "  --scale N             output scale, 1 .. the model's (default: the model's; smaller:\n"
          "                        the model's result resized, e.g. x2 from a x4 model)\n"
          "  --refine-model PATH   then redraw the result with this checkpoint's img2img in tiles\n"
          "                        (A1111 \"SD upscale\"), with --prompt, --steps, --cfg-scale, --sampler,\n"
          "                        --seed ...; --refine-strength X (default 0.3), --refine-tile PX\n"
          "                        (default: the checkpoint's native size), --refine-overlap PX (64)\n"
          "  --batch-count N       images to make (default 1)\n"
          "  --clip-skip N         1 = last CLIP layer (default 1)\n"
          "  --threads N           (default: physical cores)\n"
          "  --family NAME --prediction epsilon|v|sample   override detection\n"
          "  --lora FILE[:MULT]    merge a LoRA / LoCon / LCM-LoRA (.safetensors, kohya or diffusers naming)\n"
          "                        with multiplier MULT (default 1, negative allowed); repeatable.\n"
          "                        In the prompt, <lora:NAME:MULT> names NAME.safetensors in the model folders\n"
          "  --model-dir DIR       a model folder (AUTOMATIC1111 or ComfyUI root, or a plain folder) for\n"
          "                        <lora:...> tags and embeddings; repeatable, searched before $LDM_MODEL_PATH\n"
          "  --controlnet MODEL    steer with a ControlNet (.safetensors or diffusers folder, or the name of\n"
          "                        one in the model folders); each --controlnet starts a group of:\n"
          "  --control IMAGE       its control image (resized to the output size)\n"
          "  --control-scale X     its weight, 0..2 (default 1)\n"
          "  --control-start F --control-end F   the fraction of the steps it acts in (default 0 and 1)\n"
          "  --preprocess none|invert|scribble|canny|inpaint   what is made of IMAGE first (default none;\n"
          "                        inpaint: the --init image with the --mask area set to -1, no IMAGE needed)\n"
          "  --canny LOW,HIGH      canny thresholds 0..255 (default 100,200)\n"
          "                        (the group is repeatable: up to 8 ControlNets, their residuals summed)\n"
          "  --from-png PNG        reuse the parameters stored in a PNG made by ldm or A1111\n"
          "  --max-memory MB       refuse jobs (and input images) estimated to need more working memory\n"
          "                        (default 0: the memory available now; -1: no check)\n"
          "  --progress            show progress even when stderr is not a terminal\n"
          "  --out PATH            output PNG (default ldm-SEED.png; -N is added per image)\n",
          cmd);
}

/* A default model by file name: $LDM_MODEL_PATH (':'-separated folders, as
 * the plug-in), the installed data folder, then this source tree. */
static const char *find_model(const char *name, char *buf, size_t n) {
  const char *env = getenv("LDM_MODEL_PATH");
  if (env) {
    const char *s = env;
    while (*s) {
      size_t len = strcspn(s, ":");
      snprintf(buf, n, "%.*s/%s", (int)len, s, name);
      if (len && access(buf, R_OK) == 0) return buf;
      s += len;
      if (*s == ':') s++;
    }
  }
  const char *dirs[] = {LDM_DATADIR "/models", LDM_SOURCE_DIR "/models/demo"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    snprintf(buf, n, "%s/%s", dirs[i], name);
    if (access(buf, R_OK) == 0) return buf;
  }
  snprintf(buf, n, "%s/models/demo/%s", LDM_SOURCE_DIR, name);
  return buf;
}

/* Hashing a checkpoint reads all of it (1 s for 2 GiB here): the result is
 * kept in $XDG_CACHE_HOME/gimp-ldm/model-hashes (~/.cache without it), one
 * line "<hash> <size> <mtime s> <mtime ns> <absolute path>" per file, as
 * AUTOMATIC1111 keeps its cache.json; a line counts only while size and
 * modification time still match. */
/* $XDG_CACHE_HOME/gimp-ldm/NAME (~/.cache without it); -1 without a home. */
static int cache_file_path(char *buf, size_t n, const char *name) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int len;
  if (xdg && *xdg == '/')
    len = snprintf(buf, n, "%s/gimp-ldm/%s", xdg, name);
  else if (home && *home)
    len = snprintf(buf, n, "%s/.cache/gimp-ldm/%s", home, name);
  else
    return -1;
  return len < 0 || (size_t)len >= n ? -1 : 0;
}

static int hash_cache_path(char *buf, size_t n, bool make_dir) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int len;
  if (xdg && *xdg == '/') len = snprintf(buf, n, "%s/gimp-ldm", xdg);
  else if (home && *home) len = snprintf(buf, n, "%s/.cache/gimp-ldm", home);
  else return -1;
  if (len < 0 || (size_t)len + 16 >= n) return -1;
  if (make_dir) {
    char parent[4096];
    snprintf(parent, sizeof parent, "%.*s", (int)(strrchr(buf, '/') - buf), buf);
    mkdir(parent, 0755); /* ~/.cache may not exist yet */
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
  }
  strcat(buf, "/model-hashes");
  return 0;
}

static bool hash_cached(const char *abs, const struct stat *st, char out[11]) {
  char cpath[4096], line[4352], h[16];
  if (hash_cache_path(cpath, sizeof cpath, false) != 0) return false;
  FILE *f = fopen(cpath, "r");
  if (!f) return false;
  bool found = false;
  while (fgets(line, sizeof line, f)) {
    long long size, sec, nsec;
    int off = 0;
    if (sscanf(line, "%15s %lld %lld %lld %n", h, &size, &sec, &nsec, &off) != 4 || off <= 0) continue;
    line[strcspn(line, "\n")] = '\0';
    if (strlen(h) == 10 && !strcmp(line + off, abs) && size == (long long)st->st_size &&
        sec == (long long)st->st_mtim.tv_sec && nsec == (long long)st->st_mtim.tv_nsec) {
      memcpy(out, h, 11); /* the last matching line wins */
      found = true;
    }
  }
  fclose(f);
  return found;
}

/* First 10 hex digits of the file's SHA-256 (AUTOMATIC1111's model hash). */
static void model_hash(const char *path, char out[11]) {
  strcpy(out, "unknown");
  struct stat st;
  char abs[4096];
  bool cacheable = stat(path, &st) == 0 && S_ISREG(st.st_mode) && realpath(path, abs) && !strchr(abs, '\n');
  if (cacheable && hash_cached(abs, &st, out)) return;
  FILE *f = fopen(path, "rb");
  if (!f) return;
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  static unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&ctx, n, buf);
  fclose(f);
  unsigned char d[SHA256_DIGEST_SIZE];
  sha256_digest(&ctx, sizeof d, d);
  for (int i = 0; i < 5; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
  char cpath[4096];
  if (cacheable && hash_cache_path(cpath, sizeof cpath, true) == 0 && (f = fopen(cpath, "a"))) {
    fprintf(f, "%s %lld %lld %lld %s\n", out, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
            (long long)st.st_mtim.tv_nsec, abs);
    fclose(f);
  }
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* --lora FILE[:MULT]: MULT is what follows the last ':' when it is a number. */
static int add_lora_opt(gen_opts *o, const char *v) {
  if (o->n_loras == (int)(sizeof o->loras / sizeof *o->loras))
    return cli_fail(LDM_EXIT_USAGE, "--lora: at most %d LoRAs", (int)(sizeof o->loras / sizeof *o->loras));
  float mult = 1.0f;
  size_t len = strlen(v);
  const char *colon = strrchr(v, ':');
  if (colon) {
    char *end;
    errno = 0;
    double m = strtod(colon + 1, &end);
    if (end != colon + 1 && !*end && !errno && m >= -1e4 && m <= 1e4) {
      mult = (float)m;
      len = (size_t)(colon - v);
    }
  }
  if (len == 0) return cli_fail(LDM_EXIT_USAGE, "--lora: no file given in '%s'", v);
  char *path = strndup(v, len);
  if (!path) return cli_fail(LDM_EXIT_RUNTIME, "out of memory");
  o->loras[o->n_loras].path = path;
  o->loras[o->n_loras++].multiplier = mult;
  return 0;
}

static void json_quote(char *out, size_t n, const char *s) {
  size_t k = 0;
  if (n < 3) return;
  out[k++] = '"';
  for (; *s && k + 3 < n; s++) {
    if (*s == '"' || *s == '\\') out[k++] = '\\';
    out[k++] = *s;
  }
  out[k++] = '"';
  out[k] = '\0';
}

/* A1111's extra parameters for the job's LoRAs: Lora hashes: "NAME: HASH,
 * ..." (the name without ':' and ',', as extra_networks_lora.py writes it),
 * and the --lora files for --from-png. */
static char *lora_parameters(const ldm_job *job, const gen_opts *o) {
  int n = ldm_job_lora_count(job);
  if (n == 0) return NULL;
  size_t cap = 64;
  for (int i = 0; i < n; i++) cap += 2 * strlen(ldm_job_lora_at(job, i)->path) + 2 * strlen(ldm_job_lora_at(job, i)->name) + 64;
  char *hashes = malloc(cap), *files = malloc(cap), *out = malloc(3 * cap);
  if (!hashes || !files || !out) {
    free(hashes), free(files), free(out);
    return NULL;
  }
  size_t kh = 0, kf = 0;
  hashes[0] = files[0] = '\0';
  for (int i = 0; i < n; i++) {
    const ldm_job_lora *l = ldm_job_lora_at(job, i);
    char h[13];
    ldm_error err = {0};
    if (ldm_addon_hash(l->path, h, &err) != LDM_OK) snprintf(h, sizeof h, "unknown");
    kh += (size_t)snprintf(hashes + kh, cap - kh, "%s", kh ? ", " : "");
    for (const char *c = l->name; *c; c++)
      if (*c != ':' && *c != ',' && kh + 1 < cap) hashes[kh++] = *c;
    kh += (size_t)snprintf(hashes + kh, cap - kh, ": %s", h);
    if (!l->from_prompt)
      kf += (size_t)snprintf(files + kf, cap - kf, "%s%s:%.9g", kf ? ";" : "", l->path, (double)l->multiplier);
  }
  (void)o;
  char qh[8192], qf[8192];
  json_quote(qh, sizeof qh, hashes);
  json_quote(qf, sizeof qf, files);
  snprintf(out, 3 * cap, ", Lora hashes: %s%s%s", qh, kf ? ", ldm LoRAs: " : "", kf ? qf : "");
  free(hashes);
  free(files);
  return out;
}

/* One option of a job, from the command line (from = NULL: the label is the
 * option) or a stored recipe (from = "a.png: stored 'Steps'"): the one
 * place where each value is checked. Returns 0, or the exit code after
 * printing a one-line message. */
static int set_option(gen_opts *o, const char *a, const char *v, const char *from) {
  const char *l = from ? from : a;
  int bad = 0;
  if (!strcmp(a, "--model")) o->model = v;
  else if (!strcmp(a, "--vae")) o->vae = v;
  else if (!strcmp(a, "--taesd")) o->taesd = v;
  else if (!strcmp(a, "--decoder")) {
    if (!strcmp(v, "vae")) o->taesd_decode = false;
    else if (!strcmp(v, "taesd")) o->taesd_decode = true;
    else bad = cli_fail(LDM_EXIT_USAGE, "%s: '%s' is not vae or taesd", l, v);
  } else if (!strcmp(a, "--family")) o->family = v;
  else if (!strcmp(a, "--prediction")) o->prediction = v;
  else if (!strcmp(a, "--prompt")) { free(o->prompt); o->prompt = strdup(v); }
  else if (!strcmp(a, "--negative-prompt")) { free(o->negative); o->negative = strdup(v); }
  else if (!strcmp(a, "--width")) bad = cli_parse_int(l, v, 8, LDM_MAX_IMAGE_SIDE, &o->width);
  else if (!strcmp(a, "--height")) bad = cli_parse_int(l, v, 8, LDM_MAX_IMAGE_SIDE, &o->height);
  else if (!strcmp(a, "--steps")) bad = cli_parse_int(l, v, 1, 1000, &o->steps), o->set_steps = true;
  else if (!strcmp(a, "--cfg-scale")) bad = cli_parse_float(l, v, 0.0f, 100.0f, &o->cfg_scale), o->set_cfg = true;
  else if (!strcmp(a, "--sampler")) {
    snprintf(o->sampler, sizeof o->sampler, "%s", v);
    snprintf(o->sampler_from, sizeof o->sampler_from, "%s", l);
    o->set_sampler = true;
  } else if (!strcmp(a, "--seed")) bad = cli_parse_seed(l, v, &o->seed_random, &o->seed);
  else if (!strcmp(a, "--rng")) {
    if (!strcmp(v, "cpu")) o->rng = LDM_RNG_CPU;
    else if (!strcmp(v, "cuda")) o->rng = LDM_RNG_CUDA;
    else bad = cli_fail(LDM_EXIT_USAGE, "%s: '%s' is not cpu or cuda", l, v);
  } else if (!strcmp(a, "--strength")) bad = cli_parse_float(l, v, 0.0f, 1.0f, &o->strength);
  else if (!strcmp(a, "--init")) o->init_path = v;
  else if (!strcmp(a, "--mask")) o->mask_path = v;
  else if (!strcmp(a, "--mask-blur")) bad = cli_parse_float(l, v, 0.0f, 256.0f, &o->mask_blur);
  else if (!strcmp(a, "--padding")) bad = cli_parse_int(l, v, 0, 4096, &o->padding);
  else if (!strcmp(a, "--masked-content")) {
    if (!strcmp(v, "original")) o->fill = LDM_FILL_ORIGINAL;
    else if (!strcmp(v, "noise")) o->fill = LDM_FILL_LATENT_NOISE;
    else if (!strcmp(v, "nothing")) o->fill = LDM_FILL_LATENT_NOTHING;
    else bad = cli_fail(LDM_EXIT_USAGE, "%s: '%s' is not original, noise or nothing", l, v);
  } else if (!strcmp(a, "--left")) bad = cli_parse_int(l, v, 0, LDM_MAX_IMAGE_SIDE, &o->left);
  else if (!strcmp(a, "--top")) bad = cli_parse_int(l, v, 0, LDM_MAX_IMAGE_SIDE, &o->top);
  else if (!strcmp(a, "--right")) bad = cli_parse_int(l, v, 0, LDM_MAX_IMAGE_SIDE, &o->right);
  else if (!strcmp(a, "--bottom")) bad = cli_parse_int(l, v, 0, LDM_MAX_IMAGE_SIDE, &o->bottom);
  else if (!strcmp(a, "--noise-level")) bad = cli_parse_int(l, v, 0, 350, &o->noise_level);
  else if (!strcmp(a, "--tile")) {
    /* the VAE's tiles are at least 4 latent pixels (32 image pixels) */
    bad = cli_parse_int(l, v, 0, LDM_MAX_IMAGE_SIDE, &o->tile);
    if (!bad && o->tile > 0 && o->tile < 32)
      bad = cli_fail(LDM_EXIT_USAGE, "%s: '%s' is not 0 (automatic) or a tile of 32..%d pixels", l, v,
                     LDM_MAX_IMAGE_SIDE);
  } else if (!strcmp(a, "--scale")) bad = cli_parse_int(l, v, 1, 16, &o->scale);
  else if (!strcmp(a, "--refine-model")) o->refine_model = v;
  else if (!strcmp(a, "--refine-strength")) bad = cli_parse_float(l, v, 0.0f, 1.0f, &o->refine_strength);
  else if (!strcmp(a, "--refine-tile")) bad = cli_parse_int(l, v, 64, 4096, &o->refine_tile);
  else if (!strcmp(a, "--refine-overlap")) bad = cli_parse_int(l, v, 1, 1024, &o->refine_overlap);
  else if (!strcmp(a, "--batch-count")) bad = cli_parse_int(l, v, 1, 64, &o->batch_count);
  else if (!strcmp(a, "--clip-skip")) bad = cli_parse_int(l, v, 1, 12, &o->clip_skip);
  else if (!strcmp(a, "--threads")) bad = cli_parse_int(l, v, 0, 1024, &o->threads);
  else if (!strcmp(a, "--weight-cache")) bad = cli_parse_int(l, v, -1, 1 << 24, &o->weight_cache);
  else if (!strcmp(a, "--max-memory")) bad = cli_parse_int(l, v, -1, 1 << 30, &o->max_memory);
  else if (!strcmp(a, "--precision")) {
    o->precision_auto = !strcmp(v, "auto");
    if (!o->precision_auto && !ldm_precision_parse(v, &o->precision))
      bad = cli_fail(LDM_EXIT_USAGE, "%s: '%s' is not auto, f32, bf16 or bf16-emulated", l, v);
  } else if (!strcmp(a, "--controlnet")) {
    if (o->ctl_from_png && !from) { /* the command line's groups replace the recipe's */
      for (int i = 0; i < o->n_ctl; i++) free(o->ctl[i].model), free(o->ctl[i].image);
      o->n_ctl = 0;
      o->ctl_from_png = false;
    }
    if (o->n_ctl == LDM_MAX_CONTROLS)
      return cli_fail(LDM_EXIT_USAGE, "%s: at most %d ControlNets", l, LDM_MAX_CONTROLS);
    cli_control *c = &o->ctl[o->n_ctl];
    memset(c, 0, sizeof *c);
    c->scale = 1.0f;
    c->end = 1.0f;
    c->low = 100;
    c->high = 200;
    if (!(c->model = strdup(v))) return cli_fail(LDM_EXIT_RUNTIME, "out of memory");
    o->n_ctl++;
  } else if (!strcmp(a, "--control") || !strcmp(a, "--control-scale") || !strcmp(a, "--control-start") ||
             !strcmp(a, "--control-end") || !strcmp(a, "--preprocess") || !strcmp(a, "--canny")) {
    if (o->n_ctl == 0 || (o->ctl_from_png && !from))
      return cli_fail(LDM_EXIT_USAGE, "%s: give --controlnet MODEL first (%s belongs to its group)", a, a);
    cli_control *c = &o->ctl[o->n_ctl - 1];
    if (!strcmp(a, "--control")) {
      free(c->image);
      if (!(c->image = strdup(v))) return cli_fail(LDM_EXIT_RUNTIME, "out of memory");
    } else if (!strcmp(a, "--control-scale"))
      bad = cli_parse_float(l, v, 0.0f, 2.0f, &c->scale);
    else if (!strcmp(a, "--control-start"))
      bad = cli_parse_float(l, v, 0.0f, 1.0f, &c->start);
    else if (!strcmp(a, "--control-end"))
      bad = cli_parse_float(l, v, 0.0f, 1.0f, &c->end);
    else if (!strcmp(a, "--preprocess")) {
      if (!ldm_preprocess_parse(v, &c->pre))
        bad = cli_fail(LDM_EXIT_USAGE, "%s: '%s' is not none, invert, scribble, canny or inpaint", l, v);
    } else {
      const char *comma = strchr(v, ',');
      char lo[32];
      if (!comma || (size_t)(comma - v) >= sizeof lo) return cli_fail(LDM_EXIT_USAGE, "%s: '%s' is not LOW,HIGH", l, v);
      snprintf(lo, sizeof lo, "%.*s", (int)(comma - v), v);
      bad = cli_parse_int(l, lo, 0, 255, &c->low);
      if (!bad) bad = cli_parse_int(l, comma + 1, 0, 255, &c->high);
      if (!bad && c->low > c->high)
        bad = cli_fail(LDM_EXIT_USAGE, "%s: low threshold %d is above the high one %d", l, c->low, c->high);
    }
  } else if (!strcmp(a, "--out"))
    o->out_path = v;
  else if (!strcmp(a, "--lora")) bad = add_lora_opt(o, v);
  else if (!strcmp(a, "--model-dir")) {
    size_t k = strlen(o->model_dirs);
    if (k + strlen(v) + 2 >= sizeof o->model_dirs) bad = cli_fail(LDM_EXIT_USAGE, "--model-dir: too many folders");
    else snprintf(o->model_dirs + k, sizeof o->model_dirs - k, "%s%s", k ? ":" : "", v);
  } else {
    fprintf(stderr, "ldm: %s: unknown option '%s'\n", o->cmd, a);
    return cli_fail(LDM_EXIT_USAGE, "(see `ldm %s --help`)", o->cmd);
  }
  return bad ? LDM_EXIT_USAGE : 0;
}

typedef struct recipe_ctx {
  gen_opts *o;
  const char *path;
  char label[512];
  char ldm_sampler[32];     /* "ldm sampler: " wins over A1111's "Sampler: " */
  char a1111_sampler[32];
} recipe_ctx;

/* The ControlNet unit index N of "ControlNet N..." / "ldm ControlNet N ..."
 * (a new unit with the defaults when first seen), or -1 past the limit. */
static cli_control *recipe_unit(gen_opts *o, const char *digits) {
  char *end;
  long i = strtol(digits, &end, 10);
  if (end == digits || i < 0 || i >= LDM_MAX_CONTROLS) return NULL;
  if (!o->ctl_from_png) { /* the first stored unit: the recipe's set replaces nothing given yet */
    o->n_ctl = 0;
    o->ctl_from_png = true;
  }
  while (o->n_ctl <= i) {
    cli_control *c = &o->ctl[o->n_ctl++];
    memset(c, 0, sizeof *c);
    c->scale = 1.0f;
    c->end = 1.0f;
    c->low = 100;
    c->high = 200;
  }
  return &o->ctl[i];
}

/* sd-webui-controlnet's unit text "Module: canny, Model: NAME [HASH],
 * Weight: 1, ..., Guidance Start: 0, Guidance End: 1" (values hold no ','
 * or ':'), and ldm's "ldm ControlNet N model" / "... image" paths. */
static int recipe_control(recipe_ctx *rc, const char *key, const char *value) {
  gen_opts *o = rc->o;
  bool ours = !strncmp(key, "ldm ", 4);
  cli_control *c = recipe_unit(o, key + (ours ? 15 : 11));
  if (!c) return cli_fail(LDM_EXIT_USAGE, "%s: not a ControlNet unit 0..%d", rc->label, LDM_MAX_CONTROLS - 1);
  if (ours) {
    const char *what = strrchr(key, ' ') + 1;
    char **dst = !strcmp(what, "model") ? &c->model : !strcmp(what, "image") ? &c->image : NULL;
    if (!dst) return 0;
    free(*dst);
    if (!(*dst = strdup(value))) return cli_fail(LDM_EXIT_RUNTIME, "out of memory");
    if (dst == &c->model) c->exact = true; /* the unit's Model name does not replace it */
    return 0;
  }
  char item[512], label[1100];
  for (const char *s = value; *s;) {
    size_t len = strcspn(s, ",");
    snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item ? len : sizeof item - 1), s);
    s += len;
    if (*s == ',') s++;
    char *k = item;
    while (*k == ' ') k++;
    char *colon = strstr(k, ": ");
    if (!colon) continue;
    *colon = '\0';
    const char *v = colon + 2;
    snprintf(label, sizeof label, "%s %s", rc->label, k);
    int bad = 0;
    if (!strcmp(k, "Module")) {
      ldm_preprocess pre = LDM_PREPROCESS_NONE;
      if (!strncmp(v, "invert", 6))
        pre = LDM_PREPROCESS_INVERT;
      else if (!strncmp(v, "inpaint", 7))
        pre = LDM_PREPROCESS_INPAINT;
      else if (!ldm_preprocess_parse(v, &pre))
        return cli_fail(LDM_EXIT_USAGE,
                        "%s: preprocessor '%s' is not one ldm runs (none, invert, scribble, canny, "
                        "inpaint)",
                        label, v);
      c->pre = pre;
    } else if (!strcmp(k, "Model") && !c->exact) {
      char name[512];
      snprintf(name, sizeof name, "%s", v);
      char *br = strstr(name, " [");
      if (br) *br = '\0';
      free(c->model);
      if (!(c->model = strdup(name))) return cli_fail(LDM_EXIT_RUNTIME, "out of memory");
    } else if (!strcmp(k, "Weight"))
      bad = cli_parse_float(label, v, 0.0f, 2.0f, &c->scale);
    else if (!strcmp(k, "Guidance Start"))
      bad = cli_parse_float(label, v, 0.0f, 1.0f, &c->start);
    else if (!strcmp(k, "Guidance End"))
      bad = cli_parse_float(label, v, 0.0f, 1.0f, &c->end);
    else if (!strcmp(k, "Threshold A") && c->pre == LDM_PREPROCESS_CANNY) {
      float f;
      bad = cli_parse_float(label, v, 0.0f, 255.0f, &f);
      c->low = (int)f;
    } else if (!strcmp(k, "Threshold B") && c->pre == LDM_PREPROCESS_CANNY) {
      float f;
      bad = cli_parse_float(label, v, 0.0f, 255.0f, &f);
      c->high = (int)f;
    }
    if (bad) return LDM_EXIT_USAGE;
  }
  return 0;
}

/* One stored setting -> the option it stands for, through set_option. */
static int recipe_setting(void *user, const char *key, const char *value) {
  recipe_ctx *c = user;
  snprintf(c->label, sizeof c->label, "%s: stored '%s'", c->path, key);
  if (!strncmp(key, "ControlNet ", 11) || !strncmp(key, "ldm ControlNet ", 15)) return recipe_control(c, key, value);
  if (!strcmp(key, "Steps")) return set_option(c->o, "--steps", value, c->label);
  if (!strcmp(key, "CFG scale")) return set_option(c->o, "--cfg-scale", value, c->label);
  if (!strcmp(key, "Seed")) return set_option(c->o, "--seed", value, c->label);
  if (!strcmp(key, "Denoising strength")) return set_option(c->o, "--strength", value, c->label);
  if (!strcmp(key, "Clip skip")) return set_option(c->o, "--clip-skip", value, c->label);
  if (!strcmp(key, "Precision")) return set_option(c->o, "--precision", value, c->label);
  if (!strcmp(key, "Decoder")) return set_option(c->o, "--decoder", !strcmp(value, "TAESD") ? "taesd" : "vae", c->label);
  if (!strcmp(key, "RNG"))
    return set_option(c->o, "--rng", !strncmp(value, "NV", 2) || !strncmp(value, "GPU", 3) ? "cuda" : "cpu", c->label);
  if (!strcmp(key, "Size")) {
    char w[32], h[32];
    const char *x = strchr(value, 'x');
    size_t wl = x ? (size_t)(x - value) : 0;
    if (!x || wl >= sizeof w || strlen(x + 1) >= sizeof h)
      return cli_fail(LDM_EXIT_USAGE, "%s: '%.64s' is not WIDTHxHEIGHT", c->label, value);
    memcpy(w, value, wl);
    w[wl] = '\0';
    snprintf(h, sizeof h, "%s", x + 1);
    int rc = set_option(c->o, "--width", w, c->label);
    return rc ? rc : set_option(c->o, "--height", h, c->label);
  }
  if (!strcmp(key, "ldm LoRAs")) { /* the --lora files: "FILE:MULT;FILE:MULT" */
    free(c->o->lora_buf);
    if (!(c->o->lora_buf = strdup(value))) return cli_fail(LDM_EXIT_RUNTIME, "out of memory");
    for (char *item = c->o->lora_buf, *next; item && *item; item = next) {
      next = strchr(item, ';');
      if (next) *next++ = '\0';
      int rc = add_lora_opt(c->o, item);
      if (rc) return rc;
    }
    return 0;
  }
  if (!strcmp(key, "ldm sampler")) snprintf(c->ldm_sampler, sizeof c->ldm_sampler, "%s", value);
  if (!strcmp(key, "Sampler")) snprintf(c->a1111_sampler, sizeof c->a1111_sampler, "%s", value);
  return 0; /* settings that are not ldm's (Model hash, Version, ...) */
}

/* Reads the recipe stored in a PNG (no pixel decoded) into o. */
static int apply_recipe(gen_opts *o, const char *path) {
  char msg[1200], *text = NULL;
  if (png_read_meta(path, "parameters", NULL, NULL, &text, msg, sizeof msg) != 0)
    return cli_fail(LDM_EXIT_USAGE, "%s", msg);
  recipe_ctx c = {.o = o, .path = path};
  char *prompt = NULL, *negative = NULL;
  int rc = text ? recipe_parse(text, &prompt, &negative, recipe_setting, &c) : -1;
  free(text);
  if (rc == -1) return cli_fail(LDM_EXIT_USAGE, "%s: no generation parameters stored in this PNG", path);
  if (rc == -2) return cli_fail(LDM_EXIT_RUNTIME, "%s: out of memory", path);
  if (rc) return rc;
  free(o->prompt);
  free(o->negative);
  o->prompt = prompt;
  o->negative = negative;
  /* our own sampler name when we wrote the PNG, else A1111's label (the
   * engine resolves labels to the samplers A1111 runs) */
  const char *smp = c.ldm_sampler[0] ? c.ldm_sampler : c.a1111_sampler[0] ? c.a1111_sampler : NULL;
  if (smp) {
    snprintf(c.label, sizeof c.label, "%s: stored '%s'", path, c.ldm_sampler[0] ? "ldm sampler" : "Sampler");
    return set_option(o, "--sampler", smp, c.label);
  }
  return 0;
}

/* A1111's legacy model hash (sd_models.model_hash, which sd-webui-controlnet
 * shows as "NAME [HASH]"): the first 8 hex digits of the SHA-256 of the
 * 64 KiB at offset 1 MiB (of nothing for smaller files); a diffusers folder:
 * of its weights file. */
static void legacy_hash(const char *path, char out[9]) {
  char file[4200];
  struct stat sb;
  snprintf(file, sizeof file, "%s", path);
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", path);
  FILE *f = fopen(file, "rb");
  if (!f) {
    snprintf(out, 9, "NOFILE");
    return;
  }
  static unsigned char buf[0x10000];
  size_t n = fseek(f, 0x100000, SEEK_SET) == 0 ? fread(buf, 1, sizeof buf, f) : 0;
  fclose(f);
  struct sha256_ctx ctx;
  unsigned char d[SHA256_DIGEST_SIZE];
  sha256_init(&ctx);
  sha256_update(&ctx, n, buf);
  sha256_digest(&ctx, sizeof d, d);
  for (int i = 0; i < 4; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The ControlNet units as sd-webui-controlnet writes them ("ControlNet N:
 * \"Module: canny, Model: NAME [HASH], Weight: 1, ...\""), and ldm's
 * paths of each model and control image for --from-png. */
static char *control_parameters(const gen_opts *o) {
  if (o->n_ctl == 0) return NULL;
  size_t cap = 1024;
  for (int i = 0; i < o->n_ctl; i++)
    cap += 3 * (strlen(o->ctl[i].path) + (o->ctl[i].image ? strlen(o->ctl[i].image) : 0)) + 1024;
  char *out = malloc(cap), *unit = malloc(cap), *q = malloc(cap);
  if (!out || !unit || !q) {
    free(out), free(unit), free(q);
    return NULL;
  }
  size_t k = 0;
  out[0] = '\0';
  for (int i = 0; i < o->n_ctl; i++) {
    const cli_control *c = &o->ctl[i];
    char name[256], hash[9];
    size_t nl = 0;
    const char *stem = base_name(c->path);
    while (!*stem && stem > c->path) stem--; /* "folder/" */
    for (const char *ch = stem; *ch && *ch != '/' && nl + 1 < sizeof name; ch++)
      if (*ch != ',' && *ch != ':') name[nl++] = *ch;
    name[nl] = '\0';
    char *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".safetensors")) *dot = '\0';
    legacy_hash(c->path, hash);
    const char *module = c->pre == LDM_PREPROCESS_INVERT    ? "invert (from white bg & black line)"
                         : c->pre == LDM_PREPROCESS_INPAINT ? "inpaint_global_harmonious"
                                                            : ldm_preprocess_name(c->pre);
    int u = snprintf(unit, cap, "Module: %s, Model: %s [%s], Weight: %g, Resize Mode: Just Resize", module, name, hash,
                     (double)c->scale);
    if (c->pre == LDM_PREPROCESS_CANNY)
      u += snprintf(unit + u, cap - (size_t)u, ", Threshold A: %d, Threshold B: %d", c->low, c->high);
    snprintf(unit + u, cap - (size_t)u, ", Guidance Start: %g, Guidance End: %g, Control Mode: Balanced",
             (double)c->start, (double)c->end);
    json_quote(q, cap, unit);
    k += (size_t)snprintf(out + k, cap - k, ", ControlNet %d: %s", i, q);
    json_quote(q, cap, c->path);
    k += (size_t)snprintf(out + k, cap - k, ", ldm ControlNet %d model: %s", i, q);
    if (c->image) {
      json_quote(q, cap, c->image);
      k += (size_t)snprintf(out + k, cap - k, ", ldm ControlNet %d image: %s", i, q);
    }
  }
  free(unit);
  free(q);
  return out;
}

static char *format_parameters(const gen_opts *o, uint64_t seed, int w, int h, const char *hash, const char *extra) {
  const char *sampler = ldm_sampler_a1111_name(o->sampler);
  if (!sampler) sampler = o->sampler;
  char stem[256];
  snprintf(stem, sizeof stem, "%s", base_name(o->model));
  char *dot = strrchr(stem, '.');
  if (dot) *dot = '\0';
  size_t n = strlen(o->prompt) + strlen(o->negative) + (extra ? strlen(extra) : 0) + 1024;
  char *s = malloc(n);
  if (!s) return NULL;
  if (o->feed_forward && !o->refine_model) { /* as A1111's "Extras" tab writes it */
    snprintf(s, n, "Postprocess upscale to: %dx%d, Postprocess upscaler: %s, Version: ldm %s", w, h, stem,
             ldm_version());
    return s;
  }
  int k = snprintf(s, n, "%s\n", o->prompt);
  if (o->negative[0]) k += snprintf(s + k, n - (size_t)k, "Negative prompt: %s\n", o->negative);
  k += snprintf(s + k, n - (size_t)k,
                "Steps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model hash: %s, Model: %s", o->steps,
                sampler, (double)o->cfg_scale, (unsigned long long)seed, w, h, hash, stem);
  if (o->task != LDM_TASK_TXT2IMG && o->task != LDM_TASK_UPSCALE)
    k += snprintf(s + k, n - (size_t)k, ", Denoising strength: %g", (double)o->strength);
  if (o->clip_skip > 1) k += snprintf(s + k, n - (size_t)k, ", Clip skip: %d", o->clip_skip);
  if (o->taesd_decode) k += snprintf(s + k, n - (size_t)k, ", Decoder: TAESD");
  if (o->precision != LDM_PRECISION_F32) /* f32 (the default) is not written */
    k += snprintf(s + k, n - (size_t)k, ", Precision: %s", ldm_precision_name(o->precision));
  if (extra) k += snprintf(s + k, n - (size_t)k, "%s", extra);
  snprintf(s + k, n - (size_t)k, ", RNG: %s, ldm sampler: %s, Version: ldm %s", o->rng == LDM_RNG_CUDA ? "NV" : "CPU",
           o->sampler, ldm_version());
  return s;
}

typedef struct progress_state {
  bool show;
  int last_len;
} progress_state;

static int on_progress(void *user, int step, int total, double elapsed, const ldm_image *preview) {
  (void)preview;
  progress_state *ps = user;
  if (!ps->show) return 0;
  double per = step > 0 ? elapsed / step : 0, eta = per * (total - step);
  int width = 30, filled = total > 0 ? step * width / total : 0;
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\r[%s] %d/%d  %.2f s/step  ETA %.0f s ", bar, step, total, per, eta);
  if (step == total) fputc('\n', stderr);
  fflush(stderr);
  return 0;
}

static void out_name(const gen_opts *o, uint64_t seed, int i, int n, char *buf, size_t len) {
  if (!o->out_path) {
    snprintf(buf, len, "ldm-%llu.png", (unsigned long long)seed);
    return;
  }
  if (n == 1) {
    snprintf(buf, len, "%s", o->out_path);
    return;
  }
  const char *dot = strrchr(o->out_path, '.');
  if (!dot || strchr(dot, '/')) dot = o->out_path + strlen(o->out_path);
  snprintf(buf, len, "%.*s-%d%s", (int)(dot - o->out_path), o->out_path, i, dot);
}

/* Mask from an RGBA PNG: luminance times alpha, 0..1 (white = repaint). */
static ldm_image *mask_from_rgba(const ldm_image *m) {
  ldm_image *out = ldm_image_new(m->width, m->height, 1, LDM_PIXEL_F32);
  if (!out) return NULL;
  for (int y = 0; y < m->height; y++) {
    const unsigned char *s = (const unsigned char *)m->data + (size_t)y * m->stride;
    float *d = (float *)((char *)out->data + (size_t)y * out->stride);
    for (int x = 0; x < m->width; x++)
      d[x] = (0.299f * s[4 * x] + 0.587f * s[4 * x + 1] + 0.114f * s[4 * x + 2]) / 255.0f * (s[4 * x + 3] / 255.0f);
  }
  return out;
}

int ldm_cmd_generate(int argc, char **argv) {
  gen_opts o = {0};
  o.cmd = argv[0];
  const char *names[] = {"txt2img", "img2img", "inpaint", "outpaint", "upscale"};
  for (int t = 0; t < 5; t++)
    if (!strcmp(argv[0], names[t])) o.task = (ldm_task)t;
  ldm_job_params jp;
  ldm_job_params_init(&jp, o.task);
  o.prompt = strdup("");
  o.negative = strdup("");
  o.steps = jp.steps;
  o.cfg_scale = jp.cfg_scale;
  o.strength = jp.strength;
  o.batch_count = 1;
  o.clip_skip = 1;
  o.seed_random = true;
  o.mask_blur = jp.mask_blur;
  o.padding = jp.only_masked_padding;
  o.noise_level = jp.noise_level;
  o.left = o.top = o.right = o.bottom = o.task == LDM_TASK_OUTPAINT ? 64 : 0;
  snprintf(o.sampler, sizeof o.sampler, "%s", jp.sampler);
  snprintf(o.sampler_from, sizeof o.sampler_from, "--sampler");
  int rc = LDM_EXIT_OK;
  char msg[1200];

  /* --from-png first, so explicit options override what it stored. */
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--from-png")) o.from_png = argv[i + 1];
  if (o.from_png && (rc = apply_recipe(&o, o.from_png)) != 0) goto done;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout, o.cmd); goto done; }
    if (!strcmp(a, "--only-masked")) { o.only_masked = true; continue; }
    if (!strcmp(a, "--progress")) { o.progress = true; continue; }
    if (strncmp(a, "--", 2) != 0 || !v) {
      fprintf(stderr, "ldm: %s: %s '%s'\n", o.cmd, v ? "unexpected argument" : "missing value for", a);
      rc = cli_fail(LDM_EXIT_USAGE, "(see `ldm %s --help`)", o.cmd);
      goto done;
    }
    i++;
    if (!strcmp(a, "--from-png")) continue;
    if ((rc = set_option(&o, a, v, NULL)) != 0) goto done;
  }

  if (!ldm_sampler_reference(o.sampler)) { /* our names and A1111's labels */
    rc = cli_fail(LDM_EXIT_USAGE, "%s: unknown sampler '%s' (see `ldm samplers`)", o.sampler_from, o.sampler);
    goto done;
  }
  if ((o.width && o.width % 8) || (o.height && o.height % 8)) {
    rc = cli_fail(LDM_EXIT_USAGE, "size %dx%d: --width and --height must be multiples of 8", o.width, o.height);
    goto done;
  }
  if (o.task != LDM_TASK_TXT2IMG && !o.init_path) {
    rc = cli_fail(LDM_EXIT_USAGE, "%s needs --init IMAGE", o.cmd);
    goto done;
  }
  if (o.task == LDM_TASK_INPAINT && !o.mask_path) {
    rc = cli_fail(LDM_EXIT_USAGE, "inpaint needs --mask IMAGE");
    goto done;
  }
  char model_buf[4096];
  if (!o.model)
    o.model = find_model(o.task == LDM_TASK_INPAINT   ? "ldm-demo-inpaint.safetensors"
                         : o.task == LDM_TASK_UPSCALE ? "ldm-demo-x4.safetensors"
                                                      : "ldm-demo.safetensors",
                         model_buf, sizeof model_buf);

  /* the outputs are known before any work: refuse what a rename would
   * wreck (a device, a FIFO, a folder) now, not after the job */
  for (int i = 0; o.out_path && i < o.batch_count; i++) {
    char path[4096];
    out_name(&o, 0, i, o.batch_count, path, sizeof path);
    if (png_check_target(path, msg, sizeof msg) != 0) {
      rc = cli_fail(LDM_EXIT_USAGE, "--out %s", msg);
      goto done;
    }
  }
  png_io_set_memory_limit(o.max_memory < 0 ? -1 : (int64_t)o.max_memory << 20);

  ldm_image *init = NULL, *mask_rgba = NULL, *mask = NULL;
  ldm_model *model = NULL, *refine = NULL;
  char *extra = NULL;
  ldm_job *job = NULL;
  ldm_image **images = NULL;
  int n_images = 0;
  ldm_error err = {0};
  if (o.init_path && !(init = png_read_rgba(o.init_path, NULL, NULL, msg, sizeof msg))) {
    rc = cli_fail(LDM_EXIT_USAGE, "%s", msg);
    goto cleanup;
  }
  if (o.mask_path) {
    if (!(mask_rgba = png_read_rgba(o.mask_path, NULL, NULL, msg, sizeof msg))) {
      rc = cli_fail(LDM_EXIT_USAGE, "%s", msg);
      goto cleanup;
    }
    if (init && (mask_rgba->width != init->width || mask_rgba->height != init->height)) {
      rc = cli_fail(LDM_EXIT_USAGE, "%s: mask is %dx%d but the init image %s is %dx%d", o.mask_path,
                    mask_rgba->width, mask_rgba->height, o.init_path, init->width, init->height);
      goto cleanup;
    }
    if (!(mask = mask_from_rgba(mask_rgba))) {
      rc = cli_fail(LDM_EXIT_RUNTIME, "%s: out of memory", o.mask_path);
      goto cleanup;
    }
    bool any = false;
    for (int y = 0; y < mask->height && !any; y++)
      for (int x = 0; x < mask->width && !any; x++)
        any = ((const float *)((const char *)mask->data + (size_t)y * mask->stride))[x] > 0.0f;
    if (!any) {
      rc = cli_fail(LDM_EXIT_USAGE, "%s: the mask is empty: nothing to repaint (white = repaint; its alpha "
                    "multiplies, so a black or fully transparent mask selects nothing)", o.mask_path);
      goto cleanup;
    }
  }
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = o.model;
  mp.vae_path = o.vae;
  mp.taesd_path = o.taesd;
  mp.weight_cache_mb = o.weight_cache;
  if (o.precision_auto) {
    char cpath[4096];
    ldm_precision_auto_info pi;
    o.precision = ldm_precision_auto(cache_file_path(cpath, sizeof cpath, "cpu-peaks") == 0 ? cpath : NULL, &pi);
    fprintf(stderr, "ldm: precision %s (auto: %s%s)\n", ldm_precision_name(o.precision), pi.reason,
            pi.cached ? "; peaks from the cache" : "");
  } else if (o.precision != LDM_PRECISION_F32) {
    fprintf(stderr, "ldm: precision %s (products on %s)\n", ldm_precision_name(o.precision),
            o.precision == LDM_PRECISION_BF16 ? ldm_bf16_path() : "f32 instructions");
  }
  mp.precision = o.precision;
  if (o.precision == LDM_PRECISION_BF16 && !ldm_bf16_native())
    fprintf(stderr,
            "ldm: --precision bf16: this CPU has no AMX-BF16 or AVX512-BF16 (and the BLAS no sbgemm): "
            "using f32\n");
  mp.family = o.family;
  mp.prediction = o.prediction;
  mp.threads = o.threads;
  if (o.family) { /* an override that differs from what the file is: say so */
    ldm_model_params dp = mp;
    dp.family = NULL;
    ldm_model *dm = NULL;
    ldm_model_info di;
    if (ldm_model_load(&dm, &dp, &err) == LDM_OK && ldm_model_get_info(dm, &di) == LDM_OK &&
        strcmp(di.family, o.family) != 0)
      fprintf(stderr, "ldm: note: --family %s overrides the family detected in %s (%s)\n", o.family, o.model,
              di.family);
    ldm_model_free(dm);
    ldm_error_clear(&err);
  }
  if (ldm_model_load(&model, &mp, &err) != LDM_OK) {
    rc = cli_fail(err.status == LDM_ERR_INVALID_ARG ? LDM_EXIT_USAGE : LDM_EXIT_RUNTIME, "%s", err.msg);
    goto cleanup;
  }
  /* what the user left unset: the model's recommendations, if it states
   * any (the size: the engine takes the model's native size for 0) */
  ldm_model_info info;
  ldm_model_get_info(model, &info);
  if (!o.set_steps && info.rec_steps > 0) o.steps = info.rec_steps;
  if (!o.set_cfg && info.rec_cfg > 0.0f) o.cfg_scale = info.rec_cfg;
  if (!o.set_sampler && info.rec_sampler[0]) snprintf(o.sampler, sizeof o.sampler, "%s", info.rec_sampler);
  ldm_model_info minfo;
  ldm_model_get_info(model, &minfo);
  o.feed_forward = minfo.feed_forward;
  if (!o.feed_forward && (o.scale || o.refine_model)) {
    rc = cli_fail(LDM_EXIT_USAGE, "%s: --scale and --refine-model are for ESRGAN-class upscalers; this is a %s model",
                  o.model, minfo.family);
    goto cleanup;
  }
  if (o.feed_forward && o.task != LDM_TASK_UPSCALE) {
    rc = cli_fail(LDM_EXIT_USAGE, "%s: an ESRGAN-class upscaler (%s): use `ldm upscale`", o.model, minfo.arch);
    goto cleanup;
  }
  if (o.feed_forward && init) { /* an opaque image stays RGB */
    bool opaque = true;
    for (int y = 0; y < init->height && opaque; y++)
      for (int x = 0; x < init->width; x++)
        if (((unsigned char *)init->data)[(size_t)y * init->stride + 4 * (size_t)x + 3] != 255) {
          opaque = false;
          break;
        }
    ldm_image *rgb = opaque ? ldm_image_new(init->width, init->height, 3, LDM_PIXEL_U8) : NULL;
    if (rgb) {
      for (int y = 0; y < init->height; y++)
        for (int x = 0; x < init->width; x++)
          memcpy((unsigned char *)rgb->data + (size_t)y * rgb->stride + 3 * (size_t)x,
                 (unsigned char *)init->data + (size_t)y * init->stride + 4 * (size_t)x, 3);
      ldm_image_free(init);
      init = rgb;
    }
  }
  if (o.refine_model) {
    ldm_model_params rp;
    ldm_model_params_init(&rp);
    rp.path = o.refine_model;
    rp.threads = o.threads;
    rp.weight_cache_mb = o.weight_cache;
    rp.precision = o.precision;
    if (ldm_model_load(&refine, &rp, &err) != LDM_OK) {
      rc = cli_fail(err.status == LDM_ERR_INVALID_ARG ? LDM_EXIT_USAGE : LDM_EXIT_RUNTIME, "%s", err.msg);
      goto cleanup;
    }
  }
  if (o.seed_random) { /* a random 32-bit seed, as the other tools draw them */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long x = ((unsigned long long)ts.tv_sec * 1000000007ull) ^ (unsigned long long)ts.tv_nsec ^
                           ((unsigned long long)getpid() << 20);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    o.seed = x % 4294967296ull;
  }
  progress_state ps = {.show = o.progress || isatty(2)};
  jp.prompt = o.prompt;
  jp.negative_prompt = o.negative;
  jp.width = o.width;
  jp.height = o.height;
  jp.steps = o.steps;
  jp.cfg_scale = o.cfg_scale;
  jp.sampler = o.sampler;
  jp.seed = o.seed;
  jp.max_memory_mb = o.max_memory;
  jp.rng = o.rng;
  jp.strength = o.strength;
  jp.batch_count = o.batch_count;
  jp.clip_skip = o.clip_skip;
  jp.init = init;
  jp.mask = mask;
  jp.mask_blur = o.mask_blur;
  jp.only_masked = o.only_masked;
  jp.only_masked_padding = o.padding;
  jp.masked_content = o.fill;
  jp.outpaint_left = o.left;
  jp.outpaint_top = o.top;
  jp.outpaint_right = o.right;
  jp.outpaint_bottom = o.bottom;
  jp.noise_level = o.noise_level;
  jp.taesd_decode = o.taesd_decode;
  jp.tile_size = o.tile;
  jp.upscale_factor = o.scale;
  jp.refine_model = refine;
  jp.refine_strength = o.refine_strength;
  jp.refine_tile = o.refine_tile;
  jp.refine_overlap = o.refine_overlap;
  jp.threads = o.threads;
  jp.progress = on_progress;
  jp.progress_user = &ps;
  jp.loras = o.loras;
  jp.n_loras = o.n_loras;
  const char *env_dirs = getenv("LDM_MODEL_PATH");
  if (env_dirs && *env_dirs) {
    size_t k = strlen(o.model_dirs);
    snprintf(o.model_dirs + k, sizeof o.model_dirs - k, "%s%s", k ? ":" : "", env_dirs);
  }
  jp.model_dirs = o.model_dirs[0] ? o.model_dirs : NULL;
  /* the ControlNets: each model by path (or by name in the model folders),
   * each control image read */
  ldm_control controls[LDM_MAX_CONTROLS];
  for (int i = 0; i < o.n_ctl; i++) {
    cli_control *c = &o.ctl[i];
    struct stat sb;
    if (!c->model) {
      rc = cli_fail(LDM_EXIT_USAGE, "%s: ControlNet %d: no model stored", o.from_png ? o.from_png : "--controlnet", i);
      goto cleanup;
    }
    if (stat(c->model, &sb) == 0) {
      snprintf(c->path, sizeof c->path, "%s", c->model);
    } else if (!strchr(c->model, '/') && jp.model_dirs &&
               ldm_models_find(jp.model_dirs, LDM_KIND_CONTROLNET, c->model, c->path, sizeof c->path, &err) == LDM_OK) {
    } else {
      rc = cli_fail(LDM_EXIT_USAGE, "--controlnet %s: no such file%s", c->model,
                    strchr(c->model, '/') ? ""
                    : jp.model_dirs       ? ", nor a ControlNet of that name in the model folders"
                                          : " (a name needs --model-dir or $LDM_MODEL_PATH)");
      goto cleanup;
    }
    if (!c->image && c->pre != LDM_PREPROCESS_INPAINT) {
      rc = o.ctl_from_png ? cli_fail(LDM_EXIT_USAGE,
                                     "%s: no control image stored for ControlNet %d (%s): give "
                                     "--controlnet MODEL --control IMAGE",
                                     o.from_png, i, c->model)
                          : cli_fail(LDM_EXIT_USAGE, "--controlnet %s: no --control IMAGE given", c->model);
      goto cleanup;
    }
    if (c->image && !(c->img = png_read_rgba(c->image, NULL, NULL, msg, sizeof msg))) {
      rc = cli_fail(LDM_EXIT_USAGE, "--control %s", msg);
      goto cleanup;
    }
    ldm_control_init(&controls[i]);
    controls[i].model_path = c->path;
    controls[i].image = c->img;
    controls[i].scale = c->scale;
    controls[i].start = c->start;
    controls[i].end = c->end;
    controls[i].preprocess = c->pre;
    controls[i].canny_low = c->low;
    controls[i].canny_high = c->high;
  }
  jp.controls = o.n_ctl ? controls : NULL;
  jp.n_controls = o.n_ctl;
  if (ldm_job_new(&job, model, &jp, &err) != LDM_OK) {
    rc = cli_fail(err.status == LDM_ERR_INVALID_ARG ? LDM_EXIT_USAGE : LDM_EXIT_RUNTIME, "%s", err.msg);
    goto cleanup;
  }
  struct timespec t_start, t_end;
  clock_gettime(CLOCK_MONOTONIC, &t_start);
  ldm_status run_st = ldm_job_run(job, &images, &n_images, &err);
  clock_gettime(CLOCK_MONOTONIC, &t_end);
  if (ps.show && run_st == LDM_OK)
    fprintf(stderr, "total %.2f s, peak RSS %zu MiB\n",
            (double)(t_end.tv_sec - t_start.tv_sec) + 1e-9 * (double)(t_end.tv_nsec - t_start.tv_nsec),
            ldm_peak_rss_bytes() >> 20);
  if (run_st != LDM_OK) {
    rc = cli_fail(err.status == LDM_ERR_INVALID_ARG ? LDM_EXIT_USAGE : LDM_EXIT_RUNTIME, "%s", err.msg);
    goto cleanup;
  }
  char hash[11];
  model_hash(o.model, hash);
  extra = lora_parameters(job, &o);
  char *cextra = control_parameters(&o);
  if (cextra) {
    size_t n = (extra ? strlen(extra) : 0) + strlen(cextra) + 1;
    char *both = malloc(n);
    if (both) snprintf(both, n, "%s%s", extra ? extra : "", cextra);
    free(extra);
    free(cextra);
    extra = both;
  }
  for (int i = 0; i < n_images; i++) {
    char path[4096];
    uint64_t seed = o.seed + (uint64_t)i; /* wraps past 2^64 - 1 by definition */
    out_name(&o, seed, i, n_images, path, sizeof path);
    char *params = format_parameters(&o, seed, images[i]->width, images[i]->height, hash, extra);
    if (png_write(path, images[i], "parameters", params, msg, sizeof msg) != 0) {
      free(params);
      rc = cli_fail(LDM_EXIT_RUNTIME, "%s", msg);
      goto cleanup;
    }
    free(params);
    printf("%s (seed %llu)\n", path, (unsigned long long)seed);
  }
cleanup:
  free(extra);
  for (int i = 0; i < n_images; i++) ldm_image_free(images[i]);
  free(images);
  ldm_job_free(job);
  ldm_model_free(model);
  ldm_model_free(refine);
  ldm_image_free(init);
  ldm_image_free(mask_rgba);
  ldm_image_free(mask);
done:
  free(o.prompt);
  free(o.negative);
  for (int i = 0; i < o.n_loras; i++) free((char *)o.loras[i].path);
  free(o.lora_buf);
  for (int i = 0; i < o.n_ctl; i++) {
    free(o.ctl[i].model);
    free(o.ctl[i].image);
    ldm_image_free(o.ctl[i].img);
  }
  return rc;
}

/* `ldm info IMAGE.png`: prints the stored parameters. Returns -1 when the
 * file is not a PNG (the caller then treats it as a model). */
int cli_png_info(const char *path) {
  FILE *f = fopen(path, "rb");
  unsigned char sig[8];
  int is_png = f && fread(sig, 1, 8, f) == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0;
  if (f) fclose(f);
  if (!is_png) return -1;
  char msg[1200], *text = NULL;
  int w = 0, h = 0;
  /* the header and text chunks only: no pixel is decoded */
  if (png_read_meta(path, "parameters", &w, &h, &text, msg, sizeof msg) != 0)
    return cli_fail(LDM_EXIT_RUNTIME, "%s", msg);
  printf("image:      %s (%dx%d)\n", path, w, h);
  if (!text) return cli_fail(LDM_EXIT_RUNTIME, "%s: no generation parameters stored in this PNG", path);
  printf("parameters: %s\n", text);
  free(text);
  return LDM_EXIT_OK;
}
