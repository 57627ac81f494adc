/* safetensors reader/writer. The whole file is mmapped read-only; the JSON
 * header is parsed by jansson with strict UTF-8 and duplicate-key rejection,
 * then every entry is validated (dtype, shape, offsets inside the data
 * section, byte size == numel * dtype size, no two tensors overlapping)
 * before any tensor is handed out, so no later read can leave the mapping. */
#include "io/safetensors.h"
#include "core/status.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct st_entry {
  ldm_tensor t;
  uint64_t begin, end; /* offsets in the data section */
} st_entry;

struct ldm_st_file {
  char *path;
  unsigned char *map;
  size_t size;
  st_entry *entries;
  int64_t n;
  int64_t *hash; /* open addressing over entries, -1 = empty */
  size_t hash_cap;
  char **meta; /* key, value, key, value ... */
  int64_t n_meta;
  char *names; /* all tensor names, NUL-separated */
};

static const struct {
  const char *name;
  ldm_dtype dtype;
  int supported;
} st_dtypes[] = {
    {"F32", LDM_DTYPE_F32, 1},  {"F16", LDM_DTYPE_F16, 1},
    {"BF16", LDM_DTYPE_BF16, 1}, {"F64", LDM_DTYPE_F64, 1},
    {"I64", LDM_DTYPE_I64, 1},  {"I32", LDM_DTYPE_I32, 1},
    {"I16", LDM_DTYPE_I16, 1},  {"I8", LDM_DTYPE_I8, 1},
    {"U8", LDM_DTYPE_U8, 1},    {"BOOL", LDM_DTYPE_BOOL, 1},
    {"U16", 0, 0}, {"U32", 0, 0}, {"U64", 0, 0}, {"F8_E4M3", 0, 0},
    {"F8_E5M2", 0, 0}, {"F8_E8M0", 0, 0}, {"F4", 0, 0}, {"F6_E2M3", 0, 0},
    {"F6_E3M2", 0, 0}, {"C64", 0, 0},
};

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int cmp_begin(const void *a, const void *b) {
  const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1
         : x->end < y->end   ? -1 : x->end > y->end;
}

void ldm_st_close(ldm_st_file *f) {
  if (!f) return;
  if (f->map && f->size) munmap(f->map, f->size);
  if (f->meta)
    for (int64_t i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
  free(f->meta);
  free(f->entries);
  free(f->hash);
  free(f->names);
  free(f->path);
  free(f);
}

/* Validates one header entry and fills e (name set by the caller). */
static ldm_status parse_entry(const char *path, const char *name, json_t *v,
                              uint64_t data_size, st_entry *e, ldm_error *err) {
  if (!json_is_object(v))
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
  json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
         *jo = json_object_get(v, "data_offsets");
  if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
    return ldm_fail(err, LDM_ERR_FORMAT,
                    "%s: tensor '%s': header entry needs string 'dtype', array 'shape' and array 'data_offsets'",
                    path, name);
  const char *ds = json_string_value(jd);
  int found = -1;
  for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
    if (strcmp(ds, st_dtypes[i].name) == 0) found = (int)i;
  if (found < 0)
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, ds);
  if (!st_dtypes[found].supported)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (use F32, F16 or BF16 weights)",
                    path, name, ds);
  e->t.dtype = st_dtypes[found].dtype;
  size_t nd = json_array_size(js);
  if (nd > LDM_MAX_DIMS)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions, at most %d are supported",
                    path, name, nd, LDM_MAX_DIMS);
  e->t.ndim = (int)nd;
  size_t numel = 1;
  for (size_t i = 0; i < nd; i++) {
    json_t *d = json_array_get(js, i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s': shape entry %zu is not a non-negative integer",
                      path, name, i);
    e->t.shape[i] = (int64_t)json_integer_value(d);
    if (!ldm_mul_size(numel, (size_t)e->t.shape[i], &numel))
      return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
  }
  size_t bytes;
  if (!ldm_mul_size(numel, ldm_dtype_size(e->t.dtype), &bytes))
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, name);
  if (json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
      !json_is_integer(json_array_get(jo, 1)))
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s': data_offsets must be two integers", path, name);
  json_int_t b = json_integer_value(json_array_get(jo, 0));
  json_int_t en = json_integer_value(json_array_get(jo, 1));
  if (b < 0 || en < b)
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] are invalid", path,
                    name, (long long)b, (long long)en);
  if ((uint64_t)en > data_size)
    return ldm_fail(err, LDM_ERR_FORMAT,
                    "%s: tensor '%s': data_offsets [%lld, %lld] run past the data section (%llu bytes; truncated file?)",
                    path, name, (long long)b, (long long)en, (unsigned long long)data_size);
  if ((uint64_t)(en - b) != bytes)
    return ldm_fail(err, LDM_ERR_FORMAT,
                    "%s: tensor '%s': %lld bytes stored but shape x %s needs %zu", path, name,
                    (long long)(en - b), ds, bytes);
  e->begin = (uint64_t)b;
  e->end = (uint64_t)en;
  return LDM_OK;
}

/* What a file that is not safetensors is, by its first bytes, and what to
 * do about it; NULL when it is none of the files people mistake for one. */
static const char *not_safetensors(const unsigned char *m, size_t n) {
  if (n >= 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8))
    return "this is a PNG image, not a model (pass a .safetensors checkpoint or a diffusers folder; a PNG made "
           "by ldm or A1111 goes to --from-png, an input image to --init)";
  if (n >= 3 && m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff)
    return "this is a JPEG image, not a model (pass a .safetensors checkpoint or a diffusers folder)";
  /* zip / pickle (.ckpt, .pth, .pt): ldm_st_open's own message says how to convert them */
  if (n >= 4 && !memcmp(m, "GGUF", 4))
    return "this is a GGUF file (quantized weights for llama.cpp / stable-diffusion.cpp); ldm reads .safetensors "
           "with F32, F16 or BF16 weights";
  if (n >= 24 && !memcmp(m, "version https://git-lfs", 23))
    return "this is a Git LFS pointer, not the model itself (run `git lfs pull` where it came from)";
  if (n >= 5 && (!memcmp(m, "<!DOC", 5) || !memcmp(m, "<html", 5) || !memcmp(m, "<HTML", 5)))
    return "this is a web page, not a model (a download that fetched a page instead of the file?)";
  return NULL;
}

ldm_status ldm_st_open(ldm_st_file **out, const char *path, ldm_error *err) {
  *out = NULL;
  ldm_status st = LDM_OK;
  json_t *root = NULL;
  st_entry **order = NULL;
  int fd = -1;
  ldm_st_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    st = ldm_fail(err, LDM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto done;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    st = ldm_fail(err, LDM_ERR_IO, "%s: not a regular file", path);
    goto done;
  }
  if (sb.st_size < 9) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: file is %lld bytes, too short for a safetensors header", path,
                  (long long)sb.st_size);
    goto done;
  }
  f->size = (size_t)sb.st_size;
  f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (f->map == MAP_FAILED) {
    f->map = NULL;
    st = ldm_fail(err, LDM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    goto done;
  }
  const char *what = f->map[8] != '{' ? not_safetensors(f->map, f->size) : NULL;
  if (what) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: %s", path, what);
    goto done;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
  /* torch.save's zip container (PK\3\4) or a bare pickle (0x80, protocol
   * 2..5): what .pth / .ckpt / .pt files hold. Pickles run code when
   * loaded; the engine reads only safetensors. */
  bool bad_len = hlen > LDM_ST_MAX_HEADER || hlen > f->size - 8;
  if (bad_len && (memcmp(f->map, "PK\3\4", 4) == 0 || (f->map[0] == 0x80 && f->map[1] >= 2 && f->map[1] <= 5))) {
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED,
                  "%s: a PyTorch pickle (.pth/.ckpt), not safetensors; convert it once: python3 -c \"import sys, "
                  "torch, safetensors.torch as st; d = torch.load(sys.argv[1], map_location='cpu', "
                  "weights_only=True); d = d.get('params_ema', d.get('params', d.get('state_dict', d))); "
                  "st.save_file({k: v.contiguous() for k, v in d.items()}, sys.argv[2])\" IN.pth OUT.safetensors "
                  "(or chaiNNer's / ComfyUI's model converters)", path);
    goto done;
  }
  if (hlen > LDM_ST_MAX_HEADER) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: header length %llu exceeds the %llu byte limit", path,
                  (unsigned long long)hlen, (unsigned long long)LDM_ST_MAX_HEADER);
    goto done;
  }
  if (hlen > f->size - 8) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: header length %llu runs past the end of the %zu-byte file", path,
                  (unsigned long long)hlen, f->size);
    goto done;
  }
  if (hlen < 2) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: header of %llu bytes cannot hold a JSON object", path,
                  (unsigned long long)hlen);
    goto done;
  }
  uint64_t data_size = f->size - 8 - hlen;
  json_error_t jerr;
  root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: header is not valid JSON (%s at byte %d)", path, jerr.text,
                  jerr.position);
    goto done;
  }
  if (!json_is_object(root)) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: header is not a JSON object", path);
    goto done;
  }
  size_t n_keys = json_object_size(root);
  f->entries = calloc(n_keys ? n_keys : 1, sizeof *f->entries);
  order = calloc(n_keys ? n_keys : 1, sizeof *order);
  size_t names_len = 0;
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) names_len += strlen(key) + 1;
  f->names = malloc(names_len ? names_len : 1);
  if (!f->entries || !order || !f->names) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory for %zu header entries", path, n_keys);
    goto done;
  }
  char *np = f->names;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "__metadata__") == 0) {
      if (!json_is_object(val)) {
        st = ldm_fail(err, LDM_ERR_FORMAT, "%s: __metadata__ is not an object", path);
        goto done;
      }
      size_t nm = json_object_size(val);
      f->meta = calloc(2 * nm + 1, sizeof *f->meta);
      if (!f->meta) {
        st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
        goto done;
      }
      const char *mk;
      json_t *mv;
      json_object_foreach(val, mk, mv) {
        if (!json_is_string(mv)) {
          st = ldm_fail(err, LDM_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path, mk);
          goto done;
        }
        f->meta[2 * f->n_meta] = strdup(mk);
        f->meta[2 * f->n_meta + 1] = strdup(json_string_value(mv));
        f->n_meta++;
        if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1]) {
          st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
          goto done;
        }
      }
      continue;
    }
    st_entry *e = &f->entries[f->n];
    if ((st = parse_entry(path, key, val, data_size, e, err)) != LDM_OK) goto done;
    size_t kl = strlen(key) + 1;
    memcpy(np, key, kl);
    e->t.name = np;
    np += kl;
    e->t.data = f->map + 8 + hlen + e->begin;
    order[f->n] = e;
    f->n++;
  }
  /* No two tensors may share bytes (empty tensors take no space). */
  qsort(order, (size_t)f->n, sizeof *order, cmp_begin);
  const st_entry *prev = NULL;
  for (int64_t i = 0; i < f->n; i++) {
    const st_entry *e = order[i];
    if (e->begin == e->end) continue;
    if (prev && e->begin < prev->end) {
      st = ldm_fail(err, LDM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", path,
                    prev->t.name, e->t.name);
      goto done;
    }
    prev = e;
  }
  /* File order = data offset order. */
  {
    st_entry *sorted = malloc((size_t)(f->n ? f->n : 1) * sizeof *sorted);
    if (!sorted) {
      st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
      goto done;
    }
    for (int64_t i = 0; i < f->n; i++) sorted[i] = *order[i];
    free(f->entries);
    f->entries = sorted;
  }
  f->hash_cap = 16;
  while (f->hash_cap < (size_t)f->n * 2) f->hash_cap *= 2;
  f->hash = malloc(f->hash_cap * sizeof *f->hash);
  if (!f->hash) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  for (size_t i = 0; i < f->hash_cap; i++) f->hash[i] = -1;
  for (int64_t i = 0; i < f->n; i++) {
    size_t h = hash_str(f->entries[i].t.name) & (f->hash_cap - 1);
    while (f->hash[h] >= 0) h = (h + 1) & (f->hash_cap - 1);
    f->hash[h] = i;
  }
done:
  if (fd >= 0) close(fd);
  free(order);
  json_decref(root);
  if (st != LDM_OK) {
    ldm_st_close(f);
    return st;
  }
  *out = f;
  return LDM_OK;
}

const char *ldm_st_path(const ldm_st_file *f) { return f->path; }
size_t ldm_st_file_size(const ldm_st_file *f) { return f->size; }
int64_t ldm_st_count(const ldm_st_file *f) { return f->n; }

const ldm_tensor *ldm_st_at(const ldm_st_file *f, int64_t i) {
  return i >= 0 && i < f->n ? &f->entries[i].t : NULL;
}

const ldm_tensor *ldm_st_find(const ldm_st_file *f, const char *name) {
  if (!f->hash) return NULL;
  size_t h = hash_str(name) & (f->hash_cap - 1);
  while (f->hash[h] >= 0) {
    const ldm_tensor *t = &f->entries[f->hash[h]].t;
    if (strcmp(t->name, name) == 0) return t;
    h = (h + 1) & (f->hash_cap - 1);
  }
  return NULL;
}

/* madvise(MADV_DONTNEED) on the pages inside [b, e) of the mapping (whole:
 * all of it): the mapping is read-only and file-backed, so this only unmaps
 * clean page-cache pages, and a later read faults the same bytes back in. */
static void release_span(const ldm_st_file *f, const unsigned char *b, const unsigned char *e, bool whole) {
#ifdef MADV_DONTNEED
  long ps = sysconf(_SC_PAGESIZE);
  if (ps <= 0) return;
  uintptr_t base = (uintptr_t)f->map, lo = (uintptr_t)b, hi = (uintptr_t)e;
  if (!whole) { /* only the pages that hold nothing else */
    lo = base + (lo - base + (uintptr_t)ps - 1) / (uintptr_t)ps * (uintptr_t)ps;
    hi = base + (hi - base) / (uintptr_t)ps * (uintptr_t)ps;
  }
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: a failure changes nothing */
#else
  (void)f, (void)b, (void)e, (void)whole;
#endif
}

void ldm_st_release(const ldm_st_file *f, const char *prefix) {
  if (!f || !f->map) return;
  size_t np = prefix ? strlen(prefix) : 0;
  if (!np) {
    release_span(f, f->map, f->map + f->size, true);
    return;
  }
  /* runs of matching tensors in file order, so the pages between two of
   * them go too */
  const unsigned char *b = NULL, *e = NULL;
  for (int64_t i = 0; i <= f->n; i++) {
    const st_entry *x = i < f->n ? &f->entries[i] : NULL;
    bool match = x && strncmp(x->t.name, prefix, np) == 0;
    if (match && x->begin == x->end) continue; /* takes no bytes: neither starts nor breaks a run */
    if (match) {
      const unsigned char *d = x->t.data;
      if (!b) b = d;
      e = d + (x->end - x->begin);
    } else if (b) {
      release_span(f, b, e, false);
      b = e = NULL;
    }
  }
}

int64_t ldm_st_metadata_count(const ldm_st_file *f) { return f->n_meta; }

void ldm_st_metadata_at(const ldm_st_file *f, int64_t i, const char **key, const char **value) {
  *key = i >= 0 && i < f->n_meta ? f->meta[2 * i] : NULL;
  *value = i >= 0 && i < f->n_meta ? f->meta[2 * i + 1] : NULL;
}

const char *ldm_st_metadata_get(const ldm_st_file *f, const char *key) {
  for (int64_t i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
  return NULL;
}

ldm_status ldm_st_require(const ldm_st_file *f, const char *name, const ldm_tensor **out, ldm_error *err) {
  *out = ldm_st_find(f, name);
  if (*out) return LDM_OK;
  return ldm_fail(err, LDM_ERR_MISSING, "%s: no tensor named '%s'", f->path, name);
}

static int write_all(int fd, const void *buf, size_t n) {
  const unsigned char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

ldm_status ldm_st_write(const char *path, const ldm_tensor *tensors, int n, const char *const *metadata,
                        ldm_error *err) {
  ldm_status st = LDM_OK;
  char *header = NULL, *tmp = NULL;
  int fd = -1;
  json_t *root = json_object();
  if (!root) return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
  if (metadata && metadata[0]) {
    json_t *m = json_object();
    for (int i = 0; m && metadata[i] && metadata[i + 1]; i += 2)
      json_object_set_new(m, metadata[i], json_string(metadata[i + 1]));
    json_object_set_new(root, "__metadata__", m);
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const ldm_tensor *t = &tensors[i];
    size_t bytes;
    if (!t->name || !ldm_mul_size((size_t)ldm_tensor_numel(t), ldm_dtype_size(t->dtype), &bytes)) {
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: tensor %d has no name or an overflowing size", path, i);
      goto done;
    }
    json_t *e = json_object(), *shape = json_array();
    for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
    json_object_set_new(e, "dtype", json_string(ldm_dtype_name(t->dtype)));
    json_object_set_new(e, "shape", shape);
    json_t *offs = json_array();
    json_array_append_new(offs, json_integer((json_int_t)off));
    json_array_append_new(offs, json_integer((json_int_t)(off + bytes)));
    json_object_set_new(e, "data_offsets", offs);
    if (json_object_set_new(root, t->name, e) != 0) {
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "%s: cannot add tensor '%s'", path, t->name);
      goto done;
    }
    off += bytes;
  }
  header = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!header) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: cannot serialise header", path);
    goto done;
  }
  size_t hl = strlen(header), padded = (hl + 7) & ~(size_t)7;
  size_t plen = strlen(path);
  tmp = malloc(plen + 16);
  if (!tmp) {
    st = ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
  fd = mkstemp(tmp);
  if (fd < 0) {
    st = ldm_fail(err, LDM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    goto done;
  }
  unsigned char lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xff);
  int bad = write_all(fd, lenb, 8) || write_all(fd, header, hl) ||
            write_all(fd, "        ", padded - hl);
  for (int i = 0; i < n && !bad; i++)
    bad = write_all(fd, tensors[i].data, (size_t)ldm_tensor_numel(&tensors[i]) * ldm_dtype_size(tensors[i].dtype));
  if (bad || close(fd) != 0) {
    fd = -1;
    st = ldm_fail(err, LDM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    goto done;
  }
  fd = -1;
  if (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
    st = ldm_fail(err, LDM_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    goto done;
  }
  free(tmp);
  tmp = NULL;
done:
  if (fd >= 0) close(fd);
  if (tmp) {
    unlink(tmp);
    free(tmp);
  }
  free(header);
  json_decref(root);
  return st;
}
