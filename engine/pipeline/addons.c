/* Add-ons of a job: the LoRAs of ldm_job_params and of the prompt's
 * AUTOMATIC1111 tags (<lora:NAME:MULT>, <lora:NAME:TE:UNET>, te= / unet=;
 * modules/extra_networks.py: every <word:args> tag leaves the prompt), their
 * merge into the model's weights (kept until another set is asked for), and
 * A1111's add-on hash. */
#include "ldm.h"
#include "core/status.h"
#include "core/wcache.h"
#include "io/lora.h"
#include "pipeline/pipeline.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void stem_of(const char *path, char *out, size_t n) {
  const char *b = strrchr(path, '/');
  snprintf(out, n, "%s", b ? b + 1 : path);
  char *dot = strrchr(out, '.');
  if (dot && dot != out) *dot = '\0';
}

static ldm_status add_lora(ldm_job *job, const char *path, const char *name, float te, float unet, bool from_prompt,
                           ldm_error *err) {
  ldm_job_lora *l = realloc(job->loras, (size_t)(job->n_loras + 1) * sizeof *l);
  if (!l) return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  job->loras = l;
  char stem[512];
  if (!name) stem_of(path, stem, sizeof stem);
  ldm_job_lora *e = &l[job->n_loras];
  e->path = strdup(path);
  e->name = strdup(name ? name : stem);
  e->multiplier = te;
  e->unet_multiplier = unet;
  e->from_prompt = from_prompt;
  job->n_loras++;
  if (!e->path || !e->name) return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  return LDM_OK;
}

void pl_job_free_loras(ldm_job *job) {
  for (int i = 0; i < job->n_loras; i++) {
    free((char *)job->loras[i].path);
    free((char *)job->loras[i].name);
  }
  free(job->loras);
  job->loras = NULL;
  job->n_loras = 0;
}

static bool parse_mult(const char *s, size_t n, float *out) {
  char buf[64];
  if (n == 0 || n >= sizeof buf) return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *end;
  errno = 0;
  double v = strtod(buf, &end);
  if (*end || errno || !isfinite(v) || fabs(v) > 1e4) return false;
  *out = (float)v;
  return true;
}

/* One <type:args> tag (args = the text between ':' and '>'). */
static ldm_status take_tag(ldm_job *job, const char *type, size_t tl, const char *args, size_t al, ldm_error *err) {
  if (!((tl == 4 && !memcmp(type, "lora", 4)) || (tl == 4 && !memcmp(type, "lyco", 4))))
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "prompt: <%.*s:%.*s>: only <lora:NAME:MULTIPLIER> add-ons are supported",
                    (int)tl, type, (int)al, args);
  /* positional NAME[:TE[:UNET]], or te= / unet= (dyn= is ignored) */
  char name[512] = "";
  float te = 1.0f, unet = 1.0f;
  bool have_unet = false;
  int pos = 0;
  size_t i = 0;
  while (i <= al) {
    size_t j = i;
    while (j < al && args[j] != ':') j++;
    const char *a = args + i;
    size_t n = j - i;
    while (n && isspace((unsigned char)*a)) a++, n--;
    while (n && isspace((unsigned char)a[n - 1])) n--;
    const char *eq = memchr(a, '=', n);
    if (pos > 0 && eq) {
      size_t kl = (size_t)(eq - a);
      float v;
      bool ok = parse_mult(eq + 1, n - kl - 1, &v);
      if (kl == 2 && !memcmp(a, "te", 2) && ok) te = v;
      else if (kl == 4 && !memcmp(a, "unet", 4) && ok) unet = v, have_unet = true;
      else if (!(kl == 3 && !memcmp(a, "dyn", 3)))
        return ldm_fail(err, LDM_ERR_INVALID_ARG, "prompt: <lora:%.*s>: '%.*s' is not te=, unet= with a number",
                        (int)al, args, (int)n, a);
    } else if (pos == 0) {
      if (n == 0 || n >= sizeof name)
        return ldm_fail(err, LDM_ERR_INVALID_ARG, "prompt: <lora:%.*s>: no LoRA name", (int)al, args);
      memcpy(name, a, n);
      name[n] = '\0';
      pos++;
    } else if (pos <= 2) {
      float v;
      if (!parse_mult(a, n, &v))
        return ldm_fail(err, LDM_ERR_INVALID_ARG, "prompt: <lora:%.*s>: multiplier '%.*s' is not a number",
                        (int)al, args, (int)n, a);
      if (pos == 1) te = v;
      else unet = v, have_unet = true;
      pos++;
    } else {
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "prompt: <lora:%.*s>: too many arguments", (int)al, args);
    }
    i = j + 1;
  }
  if (!have_unet) unet = te;
  if (!job->model_dirs)
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "prompt: <lora:%s>: no model folders to look it up in (LDM_MODEL_PATH, --model-dir)", name);
  char path[4096];
  bool found = false;
  LDM_TRY(pl_models_find(job->model_dirs, LDM_KIND_LORA, name, path, sizeof path, &found, err));
  if (!found)
    return ldm_fail(err, LDM_ERR_MISSING, "prompt: <lora:%s>: no LoRA named '%s' (%s.safetensors) in %s", name, name,
                    name, job->model_dirs);
  return add_lora(job, path, name, te, unet, true, err);
}

ldm_status pl_job_resolve_loras(ldm_job *job, const ldm_job_params *p, ldm_error *err) {
  if (p->n_loras < 0 || (p->n_loras > 0 && !p->loras))
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "job: n_loras = %d without a LoRA array", p->n_loras);
  for (int i = 0; i < p->n_loras; i++) {
    if (!p->loras[i].path || !p->loras[i].path[0])
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "job: LoRA %d has no path", i);
    if (!isfinite(p->loras[i].multiplier))
      return ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: LoRA multiplier is not a finite number", p->loras[i].path);
    LDM_TRY(add_lora(job, p->loras[i].path, NULL, p->loras[i].multiplier, p->loras[i].multiplier, false, err));
  }
  /* one pass over the prompt: <\w+:[^>]+> tags are taken out, as A1111's
   * re_extra_net does; `gt` (the next '>') only moves forward */
  const char *s = job->prompt;
  size_t n = strlen(s), o = 0;
  char *clean = malloc(n + 1);
  if (!clean) return ldm_fail(err, LDM_ERR_NOMEM, "job: out of memory");
  const char *gt = s;
  ldm_status st = LDM_OK;
  for (size_t i = 0; i < n && st == LDM_OK;) {
    if (s[i] == '<') {
      size_t w = i + 1;
      while (w < n && (isalnum((unsigned char)s[w]) || s[w] == '_')) w++;
      if (w > i + 1 && w < n && s[w] == ':') {
        if (gt < s + w + 1) gt = s + w + 1;
        if (gt) gt = strchr(gt, '>');
        if (gt && gt > s + w + 1) {
          st = take_tag(job, s + i + 1, w - i - 1, s + w + 1, (size_t)(gt - (s + w + 1)), err);
          i = (size_t)(gt - s) + 1;
          continue;
        }
        if (!gt) gt = s + n; /* no '>' anywhere after: no more tags */
      }
    }
    clean[o++] = s[i++];
  }
  clean[o] = '\0';
  if (st != LDM_OK) {
    free(clean);
    return st;
  }
  free(job->prompt);
  job->prompt = clean;
  return LDM_OK;
}

int ldm_job_lora_count(const ldm_job *job) { return job ? job->n_loras : 0; }
const ldm_job_lora *ldm_job_lora_at(const ldm_job *job, int i) {
  return job && i >= 0 && i < job->n_loras ? &job->loras[i] : NULL;
}
const char *ldm_job_prompt(const ldm_job *job) { return job ? job->prompt : NULL; }

/* ---- merging into the model --------------------------------------------------- */
/* What identifies a merged set: files (with size and modification time, so
 * a file rewritten in place counts as another LoRA) and multipliers, bit
 * for bit. */
static char *lora_signature(const ldm_job *job, ldm_error *err) {
  size_t cap = 1;
  for (int i = 0; i < job->n_loras; i++) cap += strlen(job->loras[i].path) + 128;
  char *s = malloc(cap);
  if (!s) {
    ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    return NULL;
  }
  size_t k = 0;
  s[0] = '\0';
  for (int i = 0; i < job->n_loras; i++) {
    const ldm_job_lora *l = &job->loras[i];
    struct stat sb;
    if (stat(l->path, &sb) != 0) {
      ldm_fail(err, LDM_ERR_IO, "%s: cannot open: %s", l->path, strerror(errno));
      free(s);
      return NULL;
    }
    k += (size_t)snprintf(s + k, cap - k, "%s\t%a\t%a\t%lld\t%lld.%09ld\n", l->path, (double)l->multiplier,
                          (double)l->unet_multiplier, (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
                          (long)sb.st_mtim.tv_nsec);
  }
  return s;
}

ldm_status pl_model_apply_loras(ldm_model *m, const ldm_job *job, ldm_ctx *ctx, ldm_error *err) {
  char *sig = lora_signature(job, err);
  if (!sig) return err ? err->status : LDM_ERR_NOMEM;
  const char *cur = m->lora_sig ? m->lora_sig : "";
  if (!strcmp(sig, cur)) {
    free(sig);
    return LDM_OK;
  }
  ldm_lora_table *tables[3];
  int nt = 0;
  tables[nt++] = &m->unet->lora;
  for (int e = 0; e < 2; e++) {
    ldm_clip_text *enc = ldm_text_cond_encoder(m->text, e);
    if (enc) tables[nt++] = &enc->lora;
  }
  for (int t = 0; t < nt; t++) ldm_lora_table_restore(tables[t]);
  pl_text_memo_clear(m); /* the text encoders' weights change */
  free(m->lora_sig);
  m->lora_sig = NULL;
  /* prepared weights are keyed by address: merged copies freed now may be
   * reallocated at the same address, so the cache starts again */
  if (m->wcache) {
    ldm_wcache_free(m->wcache);
    m->wcache = ldm_wcache_new(m->wcache_limit);
    ctx->wcache = m->wcache;
    if (!m->wcache) {
      free(sig);
      return ldm_fail(err, LDM_ERR_NOMEM, "out of memory for the weight cache");
    }
  }
  ldm_status st = LDM_OK;
  if (job->n_loras > 0) {
    ldm_lora_ref *refs = calloc((size_t)job->n_loras, sizeof *refs);
    if (!refs) st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    for (int i = 0; refs && i < job->n_loras; i++) {
      refs[i].path = job->loras[i].path;
      refs[i].mult_te = job->loras[i].multiplier;
      refs[i].mult_unet = job->loras[i].unet_multiplier;
    }
    if (st == LDM_OK)
      st = ldm_lora_merge(ctx, refs, job->n_loras, tables, nt, ldm_family_name(m->fam.family), false, err);
    free(refs);
  }
  if (st == LDM_OK) m->lora_sig = sig;
  else free(sig);
  return st;
}

/* ---- hash -------------------------------------------------------------------------- */
ldm_status ldm_addon_hash(const char *path, char out[13], ldm_error *err) {
  ldm_error_clear(err);
  out[0] = '\0';
  FILE *f = fopen(path, "rb");
  if (!f) return ldm_fail(err, LDM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char hdr[8];
  ldm_status st = LDM_OK;
  uint64_t n = 0;
  if (fread(hdr, 1, 8, f) != 8) st = ldm_fail(err, LDM_ERR_FORMAT, "%s: shorter than a safetensors header", path);
  for (int i = 7; st == LDM_OK && i >= 0; i--) n = n << 8 | hdr[i];
  if (st == LDM_OK && (n > ((uint64_t)1 << 40) || fseeko(f, (off_t)(8 + n), SEEK_SET) != 0))
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: safetensors header length %llu is past the file", path,
                  (unsigned long long)n);
  if (st == LDM_OK) {
    struct sha256_ctx c;
    sha256_init(&c);
    unsigned char *buf = malloc(1 << 20);
    size_t k;
    if (!buf) st = ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
    while (buf && (k = fread(buf, 1, 1 << 20, f)) > 0) sha256_update(&c, k, buf);
    if (buf && ferror(f)) st = ldm_fail(err, LDM_ERR_IO, "%s: read error", path);
    free(buf);
    unsigned char d[SHA256_DIGEST_SIZE];
    sha256_digest(&c, sizeof d, d);
    if (st == LDM_OK)
      for (int i = 0; i < 6; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
  }
  fclose(f);
  return st;
}

/* ---- embeddings ------------------------------------------------------------------ */
typedef struct embed_scan {
  const ldm_job *job;
  const ldm_model *m;
  ldm_text_embed *list;
  int n;
  ldm_status st;
  ldm_error *err;
} embed_scan;

static bool word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* name occurs in s as a whole word (case-insensitive: CLIP lowercases) */
static bool names_word(const char *s, const char *name) {
  size_t n = strlen(name);
  if (!n) return false;
  for (const char *p = s; (p = strcasestr(p, name)) != NULL; p++) {
    bool left = p == s || !word_char(p[-1]) || !word_char(name[0]);
    bool right = !word_char(p[n]) || !word_char(name[n - 1]);
    if (left && right) return true;
  }
  return false;
}

static bool embed_wanted(void *user, const char *name) {
  const embed_scan *e = user;
  return names_word(e->job->prompt, name) || names_word(e->job->negative, name);
}

static int embed_visit(void *user, const ldm_model_entry *en) {
  embed_scan *e = user;
  for (int i = 0; i < e->n; i++)
    if (!strcmp(e->list[i].name, en->name)) return 0; /* the first folder wins */
  if (en->error) {
    e->st = ldm_fail(e->err, LDM_ERR_UNSUPPORTED, "embedding %s: %s: %s", en->name, en->path, en->error);
    return 1;
  }
  ldm_text_embed *l = realloc(e->list, (size_t)(e->n + 1) * sizeof *l);
  if (!l) {
    e->st = ldm_fail(e->err, LDM_ERR_NOMEM, "out of memory");
    return 1;
  }
  e->list = l;
  ldm_error lerr = {0};
  ldm_status st = ldm_text_embed_load(e->m->text, en->path, en->name, &l[e->n], &lerr);
  if (st == LDM_OK) e->n++;
  /* another family's embedding: its name stays plain text, as A1111 skips it */
  else if (st != LDM_ERR_SHAPE) {
    if (e->err) *e->err = lerr;
    e->st = st;
    return 1;
  }
  return 0;
}

ldm_status pl_job_load_embeds(const ldm_job *job, const ldm_model *m, ldm_text_embed **out, int *n, ldm_error *err) {
  *out = NULL;
  *n = 0;
  if (!job->model_dirs) return LDM_OK;
  embed_scan e = {.job = job, .m = m, .err = err};
  ldm_status st = pl_models_scan_filtered(job->model_dirs, LDM_KIND_EMBEDDING, embed_wanted, &e, embed_visit, &e, err);
  if (st == LDM_OK) st = e.st;
  if (st != LDM_OK) {
    for (int i = 0; i < e.n; i++) ldm_text_embed_deinit(&e.list[i]);
    free(e.list);
    return st;
  }
  *out = e.list;
  *n = e.n;
  return LDM_OK;
}
