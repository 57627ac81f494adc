/* LoRA merging (see lora.h). Key parsing mirrors what diffusers 0.31 accepts
 * (loaders/lora_conversion_utils.py for the kohya names, PEFT's lora_A /
 * lora_B) and what A1111's extensions-builtin/Lora/network_lora.py reads;
 * the arithmetic is PEFT's merge: W += scale * (B @ A) with scale =
 * multiplier * alpha / rank, convolution weights flattened to
 * [out, in * kh * kw]. */
#include "io/lora.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval_options.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "ops/ops.h"

/* ---- module table ----------------------------------------------------------- */
static void flatten(char *dst, size_t n, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < n; i++) dst[i] = src[i] == '.' ? '_' : src[i];
  dst[i] = '\0';
}

ldm_status ldm_lora_table_add(ldm_lora_table *t, ldm_lora_part part, const char *path, const char *alt,
                              ldm_tensor *w) {
  if (t->n == t->cap) {
    int cap = t->cap ? t->cap * 2 : 256;
    ldm_lora_module *m = realloc(t->mods, (size_t)cap * sizeof *m);
    if (!m) return LDM_ERR_NOMEM;
    t->mods = m;
    t->cap = cap;
  }
  ldm_lora_module *m = &t->mods[t->n++];
  memset(m, 0, sizeof *m);
  m->part = part;
  flatten(m->key, sizeof m->key, path);
  if (alt) flatten(m->alt, sizeof m->alt, alt);
  m->w = w;
  m->orig = *w;
  return LDM_OK;
}

void ldm_lora_table_restore(ldm_lora_table *t) {
  for (int i = 0; t && i < t->n; i++) {
    ldm_lora_module *m = &t->mods[i];
    if (!m->merged) continue;
    *m->w = m->orig;
    free(m->merged);
    m->merged = NULL;
  }
}

void ldm_lora_table_deinit(ldm_lora_table *t) {
  if (!t) return;
  /* the weights' structs may be gone already: only the copies are freed */
  for (int i = 0; i < t->n; i++) free(t->mods[i].merged);
  free(t->mods);
  memset(t, 0, sizeof *t);
}

size_t ldm_lora_table_bytes(const ldm_lora_table *t) {
  size_t b = 0;
  for (int i = 0; t && i < t->n; i++)
    if (t->mods[i].merged) b += (size_t)ldm_tensor_numel(&t->mods[i].orig) * sizeof(float);
  return b;
}

/* ---- LoRA file: tensors grouped by module ---------------------------------- */
typedef struct group {
  ldm_lora_part part;
  char key[176];             /* flattened module path */
  const char *first;         /* a tensor name of the module, for messages */
  int name_len;              /* its length without the suffix: the module's name in the file */
  const ldm_tensor *down, *up, *alpha;
} group;

typedef struct lora_file {
  ldm_st_file *st;
  group *g;
  int n, cap;
} lora_file;

static const struct {
  const char *needle, *type;
} lycoris[] = {
    {"hada_w1", "LoHa"},          {"hada_w2", "LoHa"},    {"lokr_w1", "LoKr"},  {"lokr_w2", "LoKr"},
    {"lora_mid", "LoCon with a Tucker mid weight (lora_mid)"}, {"oft_", "OFT"},  {"dora_scale", "DoRA"},
    {"lora_magnitude_vector", "DoRA"}, {"a1.weight", "GLoRA"}, {".on_input", "(IA)^3"},
    {".diff", "full-weight difference (diff)"}, {"w_norm", "norm"},
};

/* Suffixes after the module path; role 0 down, 1 up, 2 alpha. */
static const struct {
  const char *s;
  int role;
} suffixes[] = {
    {".lora_down.weight", 0}, {".lora_up.weight", 1}, {".lora_A.weight", 0}, {".lora_B.weight", 1},
    {".lora.down.weight", 0}, {".lora.up.weight", 1}, {".lora_linear_layer.down.weight", 0},
    {".lora_linear_layer.up.weight", 1}, {".alpha", 2},
};

/* diffusers' older attention-processor naming: <block>.processor.to_q_lora.down.weight
 * -> module <block>.to_q (to_out_lora -> to_out.0) */
static bool processor_name(const char *rest, char *key, size_t kn, int *role, int *name_len, const char *name) {
  const char *p = strstr(rest, ".processor.to_");
  if (!p) return false;
  static const struct {
    const char *tail, *mod;
  } t[] = {{"to_q_lora.", "to_q"}, {"to_k_lora.", "to_k"}, {"to_v_lora.", "to_v"}, {"to_out_lora.", "to_out.0"}};
  const char *q = p + 11;
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    size_t tl = strlen(t[i].tail);
    if (strncmp(q, t[i].tail, tl)) continue;
    const char *r = q + tl;
    int ro = !strcmp(r, "down.weight") ? 0 : !strcmp(r, "up.weight") ? 1 : -1;
    if (ro < 0) return false;
    char tmp[176];
    snprintf(tmp, sizeof tmp, "%.*s.%s", (int)(p - rest), rest, t[i].mod);
    flatten(key, kn, tmp);
    *role = ro;
    *name_len = (int)(strlen(name) - strlen(r) - 1);
    return true;
  }
  return false;
}

static bool ends_with(const char *s, size_t n, const char *suf) {
  size_t k = strlen(suf);
  return n >= k && memcmp(s + n - k, suf, k) == 0;
}

static ldm_status classify(const char *path, const char *name, ldm_lora_part *part, char *key, size_t kn,
                           int *role, int *name_len, ldm_error *err) {
  for (size_t i = 0; i < sizeof lycoris / sizeof *lycoris; i++)
    if (strstr(name, lycoris[i].needle))
      return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                      "%s: a LyCORIS %s network (tensor '%s'): only LoRA and LoCon (lora_down / lora_up) "
                      "are supported",
                      path, lycoris[i].type, name);
  static const struct {
    const char *prefix;
    ldm_lora_part part;
  } prefixes[] = {
      {"lora_unet_", LDM_LORA_UNET},      {"lora_te1_", LDM_LORA_TE1}, {"lora_te2_", LDM_LORA_TE2},
      {"lora_te_", LDM_LORA_TE1},         {"unet.", LDM_LORA_UNET},    {"text_encoder_2.", LDM_LORA_TE2},
      {"text_encoder.", LDM_LORA_TE1},
  };
  const char *rest = NULL;
  for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes && !rest; i++)
    if (!strncmp(name, prefixes[i].prefix, strlen(prefixes[i].prefix))) {
      rest = name + strlen(prefixes[i].prefix);
      *part = prefixes[i].part;
    }
  size_t n = rest ? strlen(rest) : 0;
  if (rest && processor_name(rest, key, kn, role, name_len, name)) return LDM_OK;
  for (size_t i = 0; rest && i < sizeof suffixes / sizeof *suffixes; i++)
    if (ends_with(rest, n, suffixes[i].s)) {
      size_t m = n - strlen(suffixes[i].s);
      if (m == 0 || m >= kn) break;
      char tmp[176];
      memcpy(tmp, rest, m);
      tmp[m] = '\0';
      flatten(key, kn, tmp);
      *role = suffixes[i].role;
      *name_len = (int)(strlen(name) - strlen(suffixes[i].s));
      return LDM_OK;
    }
  return ldm_fail(err, LDM_ERR_FORMAT,
                  "%s: tensor '%s' is not a LoRA weight (expected lora_unet_* / lora_te*_* with .lora_down / "
                  ".lora_up / .alpha, or unet.* / text_encoder*.* with .lora_A / .lora_B)",
                  path, name);
}

static void lora_file_close(lora_file *f) {
  if (!f) return;
  ldm_st_close(f->st);
  free(f->g);
  free(f);
}

static ldm_status lora_file_open(lora_file **out, const char *path, ldm_error *err) {
  *out = NULL;
  size_t len = strlen(path);
  if (ends_with(path, len, ".pt") || ends_with(path, len, ".ckpt") || ends_with(path, len, ".bin"))
    return ldm_fail(err, LDM_ERR_UNSUPPORTED,
                    "%s: a pickled PyTorch file: only .safetensors LoRAs are read (pickles can run code "
                    "when loaded); convert it to .safetensors first",
                    path);
  lora_file *f = calloc(1, sizeof *f);
  if (!f) return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
  ldm_status st = ldm_st_open(&f->st, path, err);
  for (int64_t i = 0; st == LDM_OK && i < ldm_st_count(f->st); i++) {
    const ldm_tensor *t = ldm_st_at(f->st, i);
    ldm_lora_part part = LDM_LORA_UNET;
    char key[176];
    int role = 0, name_len = 0;
    if ((st = classify(path, t->name, &part, key, sizeof key, &role, &name_len, err)) != LDM_OK) break;
    if (!(t->dtype == LDM_DTYPE_F32 || t->dtype == LDM_DTYPE_F16 || t->dtype == LDM_DTYPE_BF16)) {
      st = ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", path, t->name,
                    ldm_dtype_name(t->dtype));
      break;
    }
    group *g = NULL;
    for (int j = f->n - 1; j >= 0 && !g; j--)
      if (f->g[j].part == part && !strcmp(f->g[j].key, key)) g = &f->g[j];
    if (!g) {
      if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 64;
        group *ng = realloc(f->g, (size_t)cap * sizeof *ng);
        if (!ng) {
          st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
          break;
        }
        f->g = ng;
        f->cap = cap;
      }
      g = &f->g[f->n++];
      memset(g, 0, sizeof *g);
      g->part = part;
      snprintf(g->key, sizeof g->key, "%s", key);
      g->first = t->name;
      g->name_len = name_len;
    }
    const ldm_tensor **slot = role == 0 ? &g->down : role == 1 ? &g->up : &g->alpha;
    if (*slot) {
      st = ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s' repeats a weight of module '%s'", path, t->name, g->first);
      break;
    }
    *slot = t;
  }
  for (int j = 0; st == LDM_OK && j < f->n; j++) {
    group *g = &f->g[j];
    if (!g->down || !g->up)
      st = ldm_fail(err, LDM_ERR_MISSING, "%s: module of '%s' has no %s weight", path, g->first,
                    g->down ? "up (lora_up / lora_B)" : "down (lora_down / lora_A)");
  }
  if (st == LDM_OK && f->n == 0) st = ldm_fail(err, LDM_ERR_FORMAT, "%s: no LoRA weights in this file", path);
  if (st != LDM_OK) {
    lora_file_close(f);
    return st;
  }
  *out = f;
  return LDM_OK;
}

/* From the widths where they are the real models' (cross-attention 768 /
 * 1024 / 2048, text 768 / 1024), else from the block structure: SD1 and SD2
 * have attention at the first UNet level, SDXL does not and has a second
 * text encoder. */
static const char *guess_family(const lora_file *f) {
  bool te2 = false, attn0 = false, attn_later = false;
  int64_t ctx_dim = 0, te_dim = 0;
  for (int j = 0; j < f->n; j++) {
    const group *g = &f->g[j];
    size_t n = strlen(g->key);
    if (g->part == LDM_LORA_TE2) te2 = true;
    if (g->part == LDM_LORA_UNET && ends_with(g->key, n, "attn2_to_k") && g->down->ndim >= 2)
      ctx_dim = g->down->shape[1];
    if (g->part == LDM_LORA_TE1 && ends_with(g->key, n, "self_attn_q_proj") && g->down->ndim >= 2)
      te_dim = g->down->shape[1];
    if (g->part == LDM_LORA_UNET) {
      if (!strncmp(g->key, "down_blocks_0_attentions_", 25) || !strncmp(g->key, "input_blocks_1_1_", 17))
        attn0 = true;
      else if (strstr(g->key, "_attentions_") || strstr(g->key, "transformer_blocks"))
        attn_later = true;
    }
  }
  if (te2 || ctx_dim == 2048) return "sdxl";
  if (ctx_dim == 1024 || te_dim == 1024) return "sd2";
  if (ctx_dim == 768) return "sd1";
  if (attn0) return "sd1 or sd2";
  if (attn_later) return "sdxl";
  if (te_dim == 768) return "sd1 or sdxl";
  return "unknown";
}

ldm_status ldm_lora_file_family(const char *path, char *out, size_t n, ldm_error *err) {
  lora_file *f;
  LDM_TRY(lora_file_open(&f, path, err));
  snprintf(out, n, "%s", guess_family(f));
  lora_file_close(f);
  return LDM_OK;
}

/* ---- merging ------------------------------------------------------------------ */
#define READ_PIECE ((int64_t)1 << 18)

typedef struct read_job {
  const ldm_tensor *t;
  float *dst;
  int64_t n;
  atomic_int failed;
} read_job;

static void read_piece(void *user, int64_t i) {
  read_job *j = user;
  int64_t o = i * READ_PIECE, k = j->n - o < READ_PIECE ? j->n - o : READ_PIECE;
  if (ldm_tensor_read_f32(j->t, o, k, j->dst + o, NULL) != LDM_OK) atomic_store(&j->failed, 1);
}

/* t as f32 in a new buffer; large tensors converted (and their fresh pages
 * first touched) in pieces across the pool */
static float *read_all(ldm_ctx *ctx, const ldm_tensor *t, ldm_error *err) {
  int64_t n = ldm_tensor_numel(t);
  float *b = malloc((size_t)(n > 0 ? n : 1) * sizeof *b);
  if (!b) {
    ldm_fail(err, LDM_ERR_NOMEM, "LoRA: out of memory for '%s'", t->name ? t->name : "?");
    return NULL;
  }
  read_job j = {.t = t, .dst = b, .n = n};
  atomic_init(&j.failed, 0);
  if (n > 0) ldm_pool_for(ctx->pool, (n + READ_PIECE - 1) / READ_PIECE, read_piece, &j);
  if (atomic_load(&j.failed)) {
    free(b);
    ldm_fail(err, LDM_ERR_SHAPE, "LoRA: tensor '%s' is not a float tensor", t->name ? t->name : "?");
    return NULL;
  }
  return b;
}

static const char *part_name(ldm_lora_part p) {
  return p == LDM_LORA_UNET ? "UNet" : p == LDM_LORA_TE1 ? "text encoder" : "second text encoder";
}

static ldm_lora_module *find_module(ldm_lora_table *const *tables, int n_tables, const group *g, bool *part_seen) {
  *part_seen = false;
  for (int t = 0; t < n_tables; t++)
    for (int i = 0; i < tables[t]->n; i++) {
      ldm_lora_module *m = &tables[t]->mods[i];
      if (m->part != g->part) continue;
      *part_seen = true;
      if (!strcmp(m->key, g->key) || (m->alt[0] && !strcmp(m->alt, g->key))) return m;
    }
  return NULL;
}

/* W (f32 copy) += scale * up [out, r] @ down [r, K]. */
static ldm_status merge_group(ldm_ctx *ctx, const char *path, const group *g, ldm_lora_module *m, float mult,
                              const char *model_family, const char *lora_family, ldm_error *err) {
  const ldm_tensor *D = g->down, *U = g->up, *W = &m->orig;
  char b1[64], b2[64], b3[64];
  int64_t r = D->ndim >= 1 ? D->shape[0] : 0, out = W->shape[0];
  int64_t K = r > 0 ? ldm_tensor_numel(D) / r : 0;
  bool ok = D->ndim >= 2 && U->ndim >= 2 && r > 0 && U->shape[0] == out && U->shape[1] == r &&
            ldm_tensor_numel(U) == out * r && out * K == ldm_tensor_numel(W) && W->ndim >= 2 &&
            D->shape[1] == W->shape[1];
  if (ok && W->ndim == 4) /* conv: the down weight carries the kernel (LoCon) */
    ok = (D->ndim == 4 && D->shape[2] == W->shape[2] && D->shape[3] == W->shape[3]) ||
         (W->shape[2] == 1 && W->shape[3] == 1);
  if (!ok)
    return ldm_fail(err, LDM_ERR_SHAPE,
                    "%s: LoRA module '%.*s' (down %s, up %s) does not fit the %s weight %s of this %s model (the "
                    "LoRA looks made for %s)",
                    path, g->name_len, g->first, ldm_shape_str(D, b1, sizeof b1), ldm_shape_str(U, b2, sizeof b2),
                    part_name(g->part), ldm_shape_str(W, b3, sizeof b3), model_family, lora_family);
  float alpha = (float)r;
  if (g->alpha) {
    if (ldm_tensor_numel(g->alpha) != 1)
      return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s' should hold one value", path, g->alpha->name);
    LDM_TRY(ldm_tensor_read_f32(g->alpha, 0, 1, &alpha, err));
    if (!isfinite(alpha))
      return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s' is not a finite number", path, g->alpha->name);
  }
  const float scale = mult * alpha / (float)r;
  if (!m->merged) {
    float *w = read_all(ctx, W, err);
    if (!w) return err ? err->status : LDM_ERR_NOMEM;
    m->merged = w;
  }
  float *d = read_all(ctx, D, err), *u = d ? read_all(ctx, U, err) : NULL;
  ldm_status st = d && u ? LDM_OK : (err ? err->status : LDM_ERR_NOMEM);
  if (st == LDM_OK) st = ldm_gemm(ctx, false, false, out, K, r, scale, u, r, d, K, 1.0f, m->merged, K);
  free(d);
  free(u);
  if (st == LDM_OK) {
    ldm_tensor nt = m->orig;
    nt.dtype = LDM_DTYPE_F32;
    nt.data = m->merged;
    *m->w = nt;
  }
  return st;
}

ldm_status ldm_lora_merge(ldm_ctx *ctx, const ldm_lora_ref *loras, int n, ldm_lora_table *const *tables,
                          int n_tables, const char *model_family, bool skip_absent, ldm_error *err) {
  ldm_status st = LDM_OK;
  for (int i = 0; i < n && st == LDM_OK; i++) {
    lora_file *f = NULL;
    if ((st = lora_file_open(&f, loras[i].path, err)) != LDM_OK) break;
    const char *fam = guess_family(f);
    for (int j = 0; j < f->n && st == LDM_OK; j++) {
      const group *g = &f->g[j];
      bool part_seen;
      ldm_lora_module *m = find_module(tables, n_tables, g, &part_seen);
      if (!m) {
        if (!part_seen && skip_absent) continue;
        st = ldm_fail(err, LDM_ERR_SHAPE,
                      "%s: LoRA module '%.*s' matches no %s weight of this %s model (the LoRA looks made for %s)",
                      loras[i].path, g->name_len, g->first, part_name(g->part), model_family, fam);
        break;
      }
      float mult = g->part == LDM_LORA_UNET ? loras[i].mult_unet : loras[i].mult_te;
      st = merge_group(ctx, loras[i].path, g, m, mult, model_family, fam, err);
    }
    lora_file_close(f);
  }
  if (st != LDM_OK)
    for (int t = 0; t < n_tables; t++) ldm_lora_table_restore(tables[t]);
  return st;
}

ldm_status ldm_lora_parse_list(const char *spec, ldm_lora_ref **refs, int *n, char **buf, ldm_error *err) {
  *refs = NULL;
  *n = 0;
  *buf = NULL;
  if (!spec || !*spec) return LDM_OK;
  char *s = strdup(spec);
  int cap = 1;
  for (const char *p = spec; *p; p++) cap += *p == ';';
  ldm_lora_ref *r = calloc((size_t)cap, sizeof *r);
  if (!s || !r) {
    free(s);
    free(r);
    return ldm_fail(err, LDM_ERR_NOMEM, "LoRA list: out of memory");
  }
  int k = 0;
  for (char *item = s, *next; item; item = next) {
    next = strchr(item, ';');
    if (next) *next++ = '\0';
    if (!*item) continue;
    float mult = 1.0f;
    char *colon = strrchr(item, ':');
    if (colon) {
      char *end;
      float v = strtof(colon + 1, &end);
      if (end != colon + 1 && !*end) {
        mult = v;
        *colon = '\0';
      }
    }
    r[k].path = item;
    r[k].mult_te = r[k].mult_unet = mult;
    k++;
  }
  *refs = r;
  *n = k;
  *buf = s;
  return LDM_OK;
}

ldm_status ldm_eval_apply_loras(const ldm_eval_params *p, ldm_lora_table *tables, int n, const char *family,
                                ldm_error *err) {
  char buf[8192];
  const char *v = ldm_eval_option(p, "lora", buf, sizeof buf);
  if (!v) return LDM_OK;
  ldm_lora_ref *refs;
  int nr;
  char *mem;
  LDM_TRY(ldm_lora_parse_list(v, &refs, &nr, &mem, err));
  ldm_lora_table *tp[4];
  for (int i = 0; i < n && i < 4; i++) tp[i] = &tables[i];
  ldm_ctx ctx = {.threads = 1, .err = err};
  ldm_status st = ldm_lora_merge(&ctx, refs, nr, tp, n < 4 ? n : 4, family, true, err);
  free(refs);
  free(mem);
  return st;
}
