/* Model folders (ldm_models_scan): the AUTOMATIC1111, ComfyUI and own
 * layouts under a root, or a plain folder; every file classified by its
 * tensors (kind and family), never by its name or folder, except pickles,
 * which are listed under their folder's kind and not opened. */
#include "ldm.h"
#include "core/status.h"
#include "io/lora.h"
#include "io/safetensors.h"
#include "io/source.h"
#include "models/family.h"
#include "models/esrgan/esrgan.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

static const char *const kind_names[] = {"checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler",
                                         "unknown"};

const char *ldm_model_kind_name(ldm_model_kind k) {
  return k >= LDM_KIND_CHECKPOINT && k <= LDM_KIND_UNKNOWN ? kind_names[k] : "any";
}

bool ldm_model_kind_parse(const char *name, ldm_model_kind *out) {
  for (int k = LDM_KIND_CHECKPOINT; k < LDM_KIND_UNKNOWN; k++)
    if (name && !strcmp(name, kind_names[k])) {
      *out = (ldm_model_kind)k;
      return true;
    }
  return false;
}

/* Sub-folders of a root per kind, A1111 first, then ComfyUI, then ours. */
static const struct {
  ldm_model_kind kind;
  const char *dir;
} layout_dirs[] = {
    {LDM_KIND_CHECKPOINT, "models/Stable-diffusion"}, {LDM_KIND_CHECKPOINT, "models/checkpoints"},
    {LDM_KIND_CHECKPOINT, "checkpoints"},              {LDM_KIND_LORA, "models/Lora"},
    {LDM_KIND_LORA, "models/LyCORIS"},                 {LDM_KIND_LORA, "models/loras"},
    {LDM_KIND_LORA, "loras"},                          {LDM_KIND_EMBEDDING, "embeddings"},
    {LDM_KIND_EMBEDDING, "models/embeddings"},         {LDM_KIND_VAE, "models/VAE"},
    {LDM_KIND_VAE, "models/vae"},                      {LDM_KIND_VAE, "vae"},
    {LDM_KIND_CONTROLNET, "models/ControlNet"},        {LDM_KIND_CONTROLNET, "models/controlnet"},
    {LDM_KIND_CONTROLNET, "controlnet"},               {LDM_KIND_UPSCALER, "models/ESRGAN"},
    {LDM_KIND_UPSCALER, "models/RealESRGAN"},          {LDM_KIND_UPSCALER, "models/upscale_models"},
    {LDM_KIND_UPSCALER, "upscalers"},
};
#define N_LAYOUT (sizeof layout_dirs / sizeof *layout_dirs)

#define MAX_SEEN 4096
#define MAX_DEPTH 16

typedef struct scan {
  ldm_model_kind want;
  const char *only_name;     /* look-up by stem: other files are not opened */
  bool (*filter)(void *, const char *); /* or this says which stems to open */
  void *filter_user;
  ldm_model_visit_fn fn;
  void *user;
  bool stop;
  struct {
    dev_t dev;
    ino_t ino;
  } seen[MAX_SEEN];
  int n_seen;
} scan;

static bool ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && !strcmp(s + n - k, suf);
}

static bool any_name(const ldm_st_file *f, const char *needle, int64_t *at) {
  for (int64_t i = 0; i < ldm_st_count(f); i++)
    if (strstr(ldm_st_at(f, i)->name, needle)) {
      if (at) *at = i;
      return true;
    }
  return false;
}

static const char *dim_family(int64_t d) {
  return d == 768 ? "sd1" : d == 1024 ? "sd2" : d == 2048 || d == 1280 ? "sdxl" : "";
}

/* Kind and family of a safetensors file from its tensor names and shapes. */
static ldm_model_kind classify(const char *path, ldm_st_file *f, char *family, size_t fn, ldm_error *err) {
  family[0] = '\0';
  int64_t i;
  if (any_name(f, "lora_down", NULL) || any_name(f, "lora_A.", NULL) || any_name(f, ".lora.down.", NULL) ||
      any_name(f, "hada_w1", NULL) || any_name(f, "lokr_w1", NULL)) {
    if (ldm_lora_file_family(path, family, fn, err) != LDM_OK) snprintf(family, fn, "%s", "");
    if (!strcmp(family, "unknown")) family[0] = '\0';
    return LDM_KIND_LORA;
  }
  const ldm_tensor *t;
  if ((t = ldm_st_find(f, "emb_params")) || any_name(f, "string_to_param", &i)) {
    if (!t) t = ldm_st_at(f, i);
    snprintf(family, fn, "%s", t->ndim >= 1 ? dim_family(t->shape[t->ndim - 1]) : "");
    return LDM_KIND_EMBEDDING;
  }
  if (ldm_st_find(f, "clip_g") && ldm_st_find(f, "clip_l")) {
    snprintf(family, fn, "sdxl");
    return LDM_KIND_EMBEDDING;
  }
  if (any_name(f, "control_model.", NULL) || any_name(f, "controlnet_cond_embedding", NULL) ||
      any_name(f, "input_hint_block", NULL)) {
    /* as the job's fit check tells it (ldm_unet_guess_family: also for
     * small ControlNets like the demo's, whose context width names no family) */
    ldm_controlnet_info ci;
    if (ldm_controlnet_probe(path, &ci, NULL) == LDM_OK && strcmp(ci.family, "unknown") != 0) {
      snprintf(family, fn, "%s", ci.family);
    } else if (any_name(f, "attn2.to_k.weight", &i)) {
      t = ldm_st_at(f, i);
      snprintf(family, fn, "%s", t->ndim == 2 ? dim_family(t->shape[1]) : "");
    }
    return LDM_KIND_CONTROLNET;
  }
  if (any_name(f, "model.diffusion_model.", NULL) || ldm_st_find(f, "conv_in.weight") ||
      any_name(f, "down_blocks.0.resnets.0.conv1.weight", NULL)) {
    if (!ldm_st_find(f, "decoder.conv_in.weight")) {
      ldm_source *src = NULL;
      ldm_family_info fi;
      if (ldm_source_open(&src, path, NULL) == LDM_OK && ldm_family_detect(src, &fi, NULL) == LDM_OK)
        snprintf(family, fn, "%s", ldm_family_name(fi.family));
      ldm_source_close(src);
      return LDM_KIND_CHECKPOINT;
    }
  }
  if (ldm_st_find(f, "decoder.conv_in.weight") || ldm_st_find(f, "first_stage_model.decoder.conv_in.weight") ||
      any_name(f, "decoder.layers.", NULL)) {
    if ((t = ldm_st_find(f, "encoder.conv_out.weight")) || (t = ldm_st_find(f, "first_stage_model.encoder.conv_out.weight")))
      snprintf(family, fn, "%s", t->shape[0] == 8 ? "sd" : t->shape[0] == 32 ? "sd3" : "");
    return LDM_KIND_VAE;
  }
  /* the rest: ESRGAN-class upscalers, as ldm_model_load tells them (the
   * UNet's family detection knows no such files) */
  ldm_source *src = NULL;
  ldm_sr_config sc;
  ldm_model_kind k = LDM_KIND_UNKNOWN;
  if (ldm_source_open(&src, path, NULL) == LDM_OK && ldm_sr_probe(src, &sc, NULL) == LDM_OK &&
      sc.arch != LDM_SR_NONE) {
    snprintf(family, fn, "%s", ldm_family_name(sc.arch == LDM_SR_RRDB ? LDM_FAMILY_ESRGAN : LDM_FAMILY_SRVGG));
    k = LDM_KIND_UPSCALER;
  }
  ldm_source_close(src);
  return k;
}

static void stem_of(const char *path, char *out, size_t n) {
  const char *b = strrchr(path, '/');
  snprintf(out, n, "%s", b ? b + 1 : path);
  char *dot = strrchr(out, '.');
  if (dot && dot != out) *dot = '\0';
}

static void visit_file(scan *s, const char *path, ldm_model_kind folder_kind, const struct stat *sb) {
  bool st_file = ends_with(path, ".safetensors");
  bool pickle = ends_with(path, ".ckpt") || ends_with(path, ".pt") || ends_with(path, ".pth") ||
                ends_with(path, ".bin");
  if (!st_file && !pickle) return;
  char name[4096], family[64] = "", why[1100];
  stem_of(path, name, sizeof name);
  if (s->only_name && strcmp(s->only_name, name) != 0) return;
  if (s->filter && !s->filter(s->filter_user, name)) return;
  ldm_model_entry e = {.kind = folder_kind, .path = path, .name = name, .family = family,
                       .bytes = (int64_t)sb->st_size};
  if (pickle) {
    e.error = "a pickled PyTorch file: not opened (pickles can run code when loaded); use a .safetensors version";
  } else {
    ldm_st_file *f = NULL;
    ldm_error err = {0};
    if (ldm_st_open(&f, path, &err) != LDM_OK) {
      snprintf(why, sizeof why, "%s", err.msg);
      e.error = why;
      if (e.kind == LDM_KIND_UNKNOWN) e.kind = folder_kind;
    } else {
      e.kind = classify(path, f, family, sizeof family, &err);
      ldm_st_close(f);
    }
  }
  if (s->want != LDM_KIND_ANY && e.kind != s->want) return;
  if (s->fn(s->user, &e)) s->stop = true;
}

static bool seen_before(scan *s, const struct stat *sb) {
  for (int i = 0; i < s->n_seen; i++)
    if (s->seen[i].dev == sb->st_dev && s->seen[i].ino == sb->st_ino) return true;
  if (s->n_seen < MAX_SEEN) {
    s->seen[s->n_seen].dev = sb->st_dev;
    s->seen[s->n_seen].ino = sb->st_ino;
    s->n_seen++;
  }
  return false;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void walk(scan *s, const char *dir, ldm_model_kind folder_kind, int depth) {
  struct stat sb;
  if (s->stop || depth > MAX_DEPTH || stat(dir, &sb) != 0 || seen_before(s, &sb)) return;
  /* a diffusers folder is one checkpoint */
  char p[4096];
  snprintf(p, sizeof p, "%s/model_index.json", dir);
  if (depth > 0 && access(p, R_OK) == 0) {
    ldm_model_entry e = {.kind = LDM_KIND_CHECKPOINT, .path = dir, .family = ""};
    char name[4096], family[64] = "";
    stem_of(dir, name, sizeof name);
    e.name = name;
    ldm_source *src = NULL;
    ldm_family_info fi;
    ldm_error err = {0};
    if (ldm_source_open(&src, dir, &err) == LDM_OK && ldm_family_detect(src, &fi, &err) == LDM_OK) {
      snprintf(family, sizeof family, "%s", ldm_family_name(fi.family));
      e.bytes = ldm_source_bytes(src);
    } else {
      snprintf(p, sizeof p, "%s/unet", dir);
      struct stat ub;
      if (stat(p, &ub) == 0) e.error = err.msg;   /* a pipeline whose UNet cannot be read */
      else e.kind = LDM_KIND_UNKNOWN;             /* a VAE, TAESD, ... folder */
      if (src) e.bytes = ldm_source_bytes(src);
    }
    e.family = family;
    if (s->want == LDM_KIND_ANY || s->want == e.kind)
      if (s->fn(s->user, &e)) s->stop = true;
    ldm_source_close(src);
    return;
  }
  DIR *d = opendir(dir);
  if (!d) {
    ldm_model_entry e = {.kind = folder_kind, .path = dir, .name = "", .family = "", .error = strerror(errno)};
    if (s->want == LDM_KIND_ANY || s->want == folder_kind)
      if (s->fn(s->user, &e)) s->stop = true;
    return;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) break;
      names = nn;
    }
    if (!(names[n] = strdup(de->d_name))) break;
    n++;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    if (!s->stop) {
      snprintf(p, sizeof p, "%s/%s", dir, names[i]);
      if (stat(p, &sb) != 0) {
        struct stat lb;
        if (lstat(p, &lb) == 0 && (ends_with(p, ".safetensors") || ends_with(p, ".ckpt"))) {
          char name[4096];
          stem_of(p, name, sizeof name);
          ldm_model_entry e = {.kind = folder_kind, .path = p, .name = name, .family = "",
                               .error = strerror(errno)};
          if (s->want == LDM_KIND_ANY || s->want == folder_kind)
            if (s->fn(s->user, &e)) s->stop = true;
        }
      } else if (S_ISDIR(sb.st_mode)) {
        walk(s, p, folder_kind, depth + 1);
      } else if (S_ISREG(sb.st_mode)) {
        visit_file(s, p, folder_kind, &sb);
      }
    }
    free(names[i]);
  }
  free(names);
}

static ldm_status scan_roots(const char *roots, ldm_model_kind kind, const char *only_name,
                             bool (*filter)(void *, const char *), void *filter_user, ldm_model_visit_fn fn,
                             void *user, ldm_error *err) {
  if (!roots || !fn) return ldm_fail(err, LDM_ERR_INVALID_ARG, "model folders: no folder given");
  scan *s = calloc(1, sizeof *s);
  if (!s) return ldm_fail(err, LDM_ERR_NOMEM, "model folders: out of memory");
  s->want = kind;
  s->only_name = only_name;
  s->filter = filter;
  s->filter_user = filter_user;
  s->fn = fn;
  s->user = user;
  ldm_status st = LDM_OK;
  const char *r = roots;
  while (*r && !s->stop && st == LDM_OK) {
    size_t len = strcspn(r, ":");
    char root[4096], sub[4200];
    snprintf(root, sizeof root, "%.*s", (int)len, r);
    r += len + (r[len] == ':');
    if (!root[0]) continue;
    struct stat sb;
    if (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      st = ldm_fail(err, LDM_ERR_IO, "model folder %s: %s", root, errno ? strerror(errno) : "not a folder");
      break;
    }
    bool layout = false;
    for (size_t i = 0; i < N_LAYOUT; i++) {
      snprintf(sub, sizeof sub, "%s/%s", root, layout_dirs[i].dir);
      if (stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode)) layout = true;
    }
    if (!layout) {
      walk(s, root, LDM_KIND_UNKNOWN, 0);
      continue;
    }
    for (size_t i = 0; i < N_LAYOUT && !s->stop; i++) {
      /* a kind's folders only when that kind is asked for: the classification
       * by tensors may still move a file to another kind */
      if (kind != LDM_KIND_ANY && layout_dirs[i].kind != kind) continue;
      snprintf(sub, sizeof sub, "%s/%s", root, layout_dirs[i].dir);
      if (stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode)) walk(s, sub, layout_dirs[i].kind, 0);
    }
  }
  free(s);
  return st;
}

ldm_status ldm_models_scan(const char *roots, ldm_model_kind kind, ldm_model_visit_fn fn, void *user,
                           ldm_error *err) {
  ldm_error_clear(err);
  return scan_roots(roots, kind, NULL, NULL, NULL, fn, user, err);
}

typedef struct find_state {
  char *out;
  size_t n;
  bool found;
  char why[600];
} find_state;

static int find_one(void *user, const ldm_model_entry *e) {
  find_state *f = user;
  if (e->error) {
    if (!f->why[0]) snprintf(f->why, sizeof f->why, "%s: %s", e->path, e->error);
    return 0;
  }
  snprintf(f->out, f->n, "%s", e->path);
  f->found = true;
  return 1;
}

ldm_status pl_models_find(const char *roots, ldm_model_kind kind, const char *name, char *out, size_t n,
                          bool *found, ldm_error *err) {
  find_state f = {.out = out, .n = n};
  *found = false;
  LDM_TRY(scan_roots(roots, kind, name, NULL, NULL, find_one, &f, err));
  if (!f.found && f.why[0]) return ldm_fail(err, LDM_ERR_IO, "%s", f.why);
  *found = f.found;
  return LDM_OK;
}

ldm_status pl_models_scan_filtered(const char *roots, ldm_model_kind kind, bool (*filter)(void *, const char *),
                                   void *filter_user, ldm_model_visit_fn fn, void *user, ldm_error *err) {
  return scan_roots(roots, kind, NULL, filter, filter_user, fn, user, err);
}

ldm_status ldm_models_find(const char *roots, ldm_model_kind kind, const char *name, char *out, size_t n,
                           ldm_error *err) {
  ldm_error_clear(err);
  if (!roots || !name || !out || n == 0) return ldm_fail(err, LDM_ERR_INVALID_ARG, "model folders: nothing to find");
  bool found = false;
  LDM_TRY(pl_models_find(roots, kind, name, out, n, &found, err));
  if (!found)
    return ldm_fail(err, LDM_ERR_MISSING, "no %s named '%s' (%s.safetensors) in %s", ldm_model_kind_name(kind), name,
                    name, roots);
  return LDM_OK;
}
