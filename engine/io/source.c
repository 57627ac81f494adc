/* Model sources (see source.h): a single .safetensors file, or a diffusers
 * folder whose subfolders each hold config.json and *.safetensors shards.
 * A folder with weights at its top level (e.g. a standalone diffusers VAE)
 * serves every part from those top-level files. */
#include "io/source.h"
#include "core/status.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PARTS 16
#define MAX_SHARDS 16

typedef struct src_part {
  char name[32];             /* "" = top level */
  ldm_st_file *files[MAX_SHARDS];
  int n_files;
  char *config;
} src_part;

struct ldm_source {
  char *path;
  bool folder;
  src_part parts[MAX_PARTS];
  int n_parts;
};

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n >= 0 && n < (64L << 20) && fseek(f, 0, SEEK_SET) == 0) {
      buf = malloc((size_t)n + 1);
      if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
      } else if (buf) {
        buf[n] = '\0';
      }
    }
  }
  fclose(f);
  return buf;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Opens every *.safetensors in dir (sorted) into part. */
static ldm_status load_part(src_part *part, const char *dir, ldm_error *err) {
  DIR *d = opendir(dir);
  if (!d) return LDM_OK;
  char *names[MAX_SHARDS];
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l > 12 && strcmp(de->d_name + l - 12, ".safetensors") == 0 && n < MAX_SHARDS)
      names[n++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  /* Prefer fp32/unsuffixed weights over variant files (".fp16.safetensors")
   * when both exist, as diffusers does without a variant argument. */
  int have_plain = 0;
  for (int i = 0; i < n; i++)
    if (names[i] && !strstr(names[i], ".fp16.") && !strstr(names[i], ".bf16.")) have_plain = 1;
  ldm_status st = LDM_OK;
  char path[4096];
  for (int i = 0; i < n; i++) {
    if (!names[i]) continue;
    if (have_plain && (strstr(names[i], ".fp16.") || strstr(names[i], ".bf16."))) continue;
    if (st == LDM_OK) {
      snprintf(path, sizeof path, "%s/%s", dir, names[i]);
      st = ldm_st_open(&part->files[part->n_files], path, err);
      if (st == LDM_OK) part->n_files++;
    }
  }
  for (int i = 0; i < n; i++) free(names[i]);
  if (st != LDM_OK) return st;
  snprintf(path, sizeof path, "%s/config.json", dir);
  part->config = read_text(path);
  return LDM_OK;
}

void ldm_source_close(ldm_source *s) {
  if (!s) return;
  for (int i = 0; i < s->n_parts; i++) {
    for (int j = 0; j < s->parts[i].n_files; j++) ldm_st_close(s->parts[i].files[j]);
    free(s->parts[i].config);
  }
  free(s->path);
  free(s);
}

ldm_status ldm_source_open(ldm_source **out, const char *path, ldm_error *err) {
  *out = NULL;
  if (!path || !*path) return ldm_fail(err, LDM_ERR_INVALID_ARG, "no model path given");
  ldm_source *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", path);
  }
  ldm_status st = LDM_OK;
  struct stat sb;
  if (stat(path, &sb) != 0) {
    st = ldm_fail(err, LDM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto done;
  }
  if (!S_ISDIR(sb.st_mode)) {
    src_part *p = &s->parts[s->n_parts++];
    st = ldm_st_open(&p->files[0], path, err);
    if (st == LDM_OK) p->n_files = 1;
    goto done;
  }
  s->folder = true;
  /* Top-level weights (a single-component folder). */
  st = load_part(&s->parts[0], path, err);
  if (st != LDM_OK) goto done;
  if (s->parts[0].n_files > 0) s->n_parts = 1;
  else free(s->parts[0].config), s->parts[0].config = NULL;
  DIR *d = opendir(path);
  if (!d) {
    st = ldm_fail(err, LDM_ERR_IO, "%s: cannot list folder: %s", path, strerror(errno));
    goto done;
  }
  struct dirent *de;
  char sub[4096];
  while ((de = readdir(d)) != NULL && st == LDM_OK) {
    if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof s->parts[0].name) continue;
    snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
    if (!is_dir(sub) || s->n_parts >= MAX_PARTS) continue;
    src_part *p = &s->parts[s->n_parts];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", de->d_name);
    st = load_part(p, sub, err);
    if (st == LDM_OK && (p->n_files > 0 || p->config)) s->n_parts++;
    else if (st == LDM_OK) free(p->config);
  }
  closedir(d);
  if (st == LDM_OK && s->n_parts == 0)
    st = ldm_fail(err, LDM_ERR_MISSING, "%s: folder holds no .safetensors weights (diffusers layout expected)", path);
done:
  if (st != LDM_OK) {
    ldm_source_close(s);
    return st;
  }
  *out = s;
  return LDM_OK;
}

static const src_part *find_part(const ldm_source *s, const char *part) {
  if (!s->folder) return &s->parts[0];
  if (part)
    for (int i = 0; i < s->n_parts; i++)
      if (strcmp(s->parts[i].name, part) == 0) return &s->parts[i];
  /* Single-component folder: the top level serves any part. */
  if (s->n_parts > 0 && s->parts[0].name[0] == '\0') return &s->parts[0];
  return NULL;
}

bool ldm_source_is_folder(const ldm_source *s) { return s->folder; }
const char *ldm_source_path(const ldm_source *s) { return s->path; }

int64_t ldm_source_bytes(const ldm_source *s) {
  int64_t n = 0;
  for (int i = 0; i < s->n_parts; i++)
    for (int j = 0; j < s->parts[i].n_files; j++) n += (int64_t)ldm_st_file_size(s->parts[i].files[j]);
  return n;
}

const ldm_tensor *ldm_source_find(const ldm_source *s, const char *part, const char *name) {
  const src_part *p = find_part(s, part);
  if (!p) return NULL;
  for (int j = 0; j < p->n_files; j++) {
    const ldm_tensor *t = ldm_st_find(p->files[j], name);
    if (t) return t;
  }
  return NULL;
}

void ldm_source_release(const ldm_source *s, const char *part, const char *prefix) {
  if (!s) return;
  for (int i = 0; i < s->n_parts; i++) {
    const src_part *p = &s->parts[i];
    if (part && s->folder && p != find_part(s, part)) continue;
    for (int j = 0; j < p->n_files; j++) ldm_st_release(p->files[j], prefix);
  }
}

int64_t ldm_source_count(const ldm_source *s, const char *part) {
  const src_part *p = find_part(s, part);
  int64_t n = 0;
  for (int j = 0; p && j < p->n_files; j++) n += ldm_st_count(p->files[j]);
  return n;
}

const ldm_tensor *ldm_source_at(const ldm_source *s, const char *part, int64_t i) {
  const src_part *p = find_part(s, part);
  for (int j = 0; p && j < p->n_files; j++) {
    int64_t c = ldm_st_count(p->files[j]);
    if (i < c) return ldm_st_at(p->files[j], i);
    i -= c;
  }
  return NULL;
}

bool ldm_source_has_part(const ldm_source *s, const char *part) {
  if (!s->folder || !part) return false;
  for (int i = 0; i < s->n_parts; i++)
    if (strcmp(s->parts[i].name, part) == 0 && s->parts[i].n_files > 0) return true;
  return false;
}

const char *ldm_source_config(const ldm_source *s, const char *part) {
  if (!s->folder) return NULL;
  const src_part *p = find_part(s, part);
  return p ? p->config : NULL;
}

const char *ldm_source_config_named(const ldm_source *s, const char *part, char *file, size_t n) {
  const char *text = ldm_source_config(s, part);
  if (text) snprintf(file, n, "%s: %s/config.json", s->path, part);
  return text;
}

const char *ldm_source_file(const ldm_source *s, const char *relpath, char *buf, size_t n) {
  if (!s->folder) return NULL;
  snprintf(buf, n, "%s/%s", s->path, relpath);
  struct stat sb;
  return stat(buf, &sb) == 0 && S_ISREG(sb.st_mode) ? buf : NULL;
}

const char *ldm_source_metadata(const ldm_source *s, const char *key) {
  if (s->n_parts == 0 || s->parts[0].n_files == 0) return NULL;
  return ldm_st_metadata_get(s->parts[0].files[0], key);
}
