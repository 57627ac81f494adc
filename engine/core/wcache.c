/* Prepared-weight cache (see wcache.h): an open-addressing hash map from
 * (weight data address, kind, size) to a malloc'd f32 buffer, behind one mutex.
 * Memory is counted when a buffer is reserved, so concurrent preparers
 * cannot overshoot the limit together. */
#include "core/wcache.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct slot {
  const void *key;
  int kind;
  size_t n;
  float *buf;
} slot;

struct ldm_wcache {
  pthread_mutex_t mu;
  slot *slots;
  size_t cap, used;        /* slots, occupied slots */
  size_t bytes, limit;     /* reserved or held, most allowed */
};

ldm_wcache *ldm_wcache_new(size_t limit_bytes) {
  ldm_wcache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  pthread_mutex_init(&c->mu, NULL);
  c->limit = limit_bytes;
  return c;
}

void ldm_wcache_free(ldm_wcache *c) {
  if (!c) return;
  for (size_t i = 0; i < c->cap; i++) free(c->slots[i].buf);
  free(c->slots);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static size_t hash(const void *key, int kind, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)key * 0x9E3779B97F4A7C15ull + (uint64_t)kind * 0xC2B2AE3D27D4EB4Full;
  return (size_t)(h >> 17) & (cap - 1);
}

/* The slot holding (key, kind) or the empty one where it would go; caller
 * holds the lock and cap > 0. */
static slot *find(ldm_wcache *c, const void *key, int kind, size_t n) {
  for (size_t i = hash(key, kind, c->cap);; i = (i + 1) & (c->cap - 1)) {
    slot *s = &c->slots[i];
    if (!s->buf || (s->key == key && s->kind == kind && s->n == n)) return s;
  }
}

static int grow(ldm_wcache *c) {
  size_t ncap = c->cap ? c->cap * 2 : 256;
  slot *old = c->slots, *ns = calloc(ncap, sizeof *ns);
  if (!ns) return -1;
  size_t ocap = c->cap;
  c->slots = ns;
  c->cap = ncap;
  for (size_t i = 0; i < ocap; i++)
    if (old[i].buf) *find(c, old[i].key, old[i].kind, old[i].n) = old[i];
  free(old);
  return 0;
}

const float *ldm_wcache_get(ldm_wcache *c, const void *key, ldm_wcache_kind kind, size_t n) {
  if (!c) return NULL;
  pthread_mutex_lock(&c->mu);
  const float *r = NULL;
  if (c->cap) r = find(c, key, (int)kind, n)->buf;
  pthread_mutex_unlock(&c->mu);
  return r;
}

float *ldm_wcache_reserve(ldm_wcache *c, size_t n) {
  if (!c || n == 0 || n > SIZE_MAX / sizeof(float)) return NULL;
  size_t b = n * sizeof(float);
  pthread_mutex_lock(&c->mu);
  int ok = c->bytes <= c->limit && b <= c->limit - c->bytes;
  if (ok) c->bytes += b;
  pthread_mutex_unlock(&c->mu);
  if (!ok) return NULL;
  float *buf = malloc(b);
  if (!buf) ldm_wcache_drop(c, NULL, n);
  return buf;
}

void ldm_wcache_drop(ldm_wcache *c, float *buf, size_t n) {
  free(buf);
  pthread_mutex_lock(&c->mu);
  c->bytes -= n * sizeof(float);
  pthread_mutex_unlock(&c->mu);
}

const float *ldm_wcache_add(ldm_wcache *c, const void *key, ldm_wcache_kind kind, float *buf, size_t n) {
  pthread_mutex_lock(&c->mu);
  const float *r = buf;
  if (c->used * 2 >= c->cap && grow(c) != 0) {
    r = NULL; /* no room in the table: the caller prepares in scratch */
  } else {
    slot *s = find(c, key, (int)kind, n);
    if (s->buf) {
      r = s->buf; /* another thread was first */
    } else {
      s->key = key, s->kind = (int)kind, s->n = n, s->buf = buf;
      c->used++;
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (r != buf) ldm_wcache_drop(c, buf, n);
  return r;
}

size_t ldm_wcache_bytes(const ldm_wcache *c) {
  if (!c) return 0;
  pthread_mutex_lock((pthread_mutex_t *)&c->mu);
  size_t b = c->bytes;
  pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
  return b;
}
