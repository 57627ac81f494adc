/* Scratch arena (see arena.h): a list of blocks, bump-allocated. */
#include "core/arena.h"
#include "core/status.h"

#include <stdbool.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdint.h>

#define ARENA_ALIGN 64
#define ARENA_MAX_BLOCKS 64

typedef struct arena_block {
  unsigned char *base;
  size_t size;
} arena_block;

struct ldm_arena {
  arena_block blocks[ARENA_MAX_BLOCKS];
  int n_blocks;
  int cur;            /* block being filled */
  size_t offset;      /* bytes used in blocks[cur] */
  size_t used_before; /* bytes used in blocks [0, cur) incl. their slack */
  size_t peak;
  size_t first_size;
};

ldm_arena *ldm_arena_new(size_t block_bytes) {
  ldm_arena *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->first_size = block_bytes ? block_bytes : ((size_t)64 << 20);
  return a;
}

void ldm_arena_free(ldm_arena *a) {
  if (!a) return;
  for (int i = 0; i < a->n_blocks; i++) free(a->blocks[i].base);
  free(a);
}

static size_t align_up(size_t x) {
  return (x + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
}

void *ldm_arena_alloc(ldm_arena *a, size_t bytes) {
  if (!a || bytes > SIZE_MAX / 2) return NULL;
  size_t need = align_up(bytes ? bytes : 1);
  for (;;) {
    if (a->cur < a->n_blocks) {
      arena_block *b = &a->blocks[a->cur];
      if (b->size - a->offset >= need) {
        void *p = b->base + a->offset;
        a->offset += need;
        size_t in_use = a->used_before + a->offset;
        if (in_use > a->peak) a->peak = in_use;
        return p;
      }
      if (a->cur + 1 < a->n_blocks) { /* move on to the next kept block */
        a->used_before += b->size;
        a->cur++;
        a->offset = 0;
        continue;
      }
    }
    /* Need a new block. */
    if (a->n_blocks == ARENA_MAX_BLOCKS) return NULL;
    size_t size = a->n_blocks == 0 ? a->first_size : a->blocks[a->n_blocks - 1].size;
    if (size < need) size = need;
    void *mem = NULL;
    if (posix_memalign(&mem, ARENA_ALIGN, size) != 0) return NULL;
    if (a->n_blocks > 0 && a->cur < a->n_blocks) {
      a->used_before += a->blocks[a->cur].size;
    }
    a->blocks[a->n_blocks].base = mem;
    a->blocks[a->n_blocks].size = size;
    a->cur = a->n_blocks;
    a->n_blocks++;
    a->offset = 0;
  }
}

float *ldm_arena_floats(ldm_arena *a, size_t n) {
  size_t bytes;
  if (!ldm_mul_size(n, sizeof(float), &bytes)) return NULL;
  return ldm_arena_alloc(a, bytes);
}

ldm_arena_mark ldm_arena_get_mark(const ldm_arena *a) {
  ldm_arena_mark m = {a->cur, a->offset};
  return m;
}

void ldm_arena_reset(ldm_arena *a, ldm_arena_mark m) {
  a->cur = m.block;
  a->offset = m.offset;
  a->used_before = 0;
  for (int i = 0; i < m.block && i < a->n_blocks; i++) a->used_before += a->blocks[i].size;
}

size_t ldm_arena_in_use(const ldm_arena *a) { return a->used_before + a->offset; }
size_t ldm_arena_peak(const ldm_arena *a) { return a->peak; }

void ldm_arena_trim(ldm_arena *a) {
  if (!a) return;
  bool freed = false;
  while (a->n_blocks > a->cur + 1) {
    a->n_blocks--;
    free(a->blocks[a->n_blocks].base);
    a->blocks[a->n_blocks].base = NULL;
    a->blocks[a->n_blocks].size = 0;
    freed = true;
  }
#ifdef __GLIBC__
  /* glibc raises its mmap threshold after freeing large chunks, so blocks of
   * up to 32 MiB come from the heap and stay resident once freed */
  if (freed) malloc_trim(0);
#else
  (void)freed;
#endif
}

size_t ldm_arena_reserved(const ldm_arena *a) {
  size_t s = 0;
  for (int i = 0; i < a->n_blocks; i++) s += a->blocks[i].size;
  return s;
}
