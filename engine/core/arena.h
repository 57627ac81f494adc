/* Scratch arena: bump allocation with marks. A forward pass takes a mark,
 * allocates its activations and resets to the mark when done; blocks stay
 * allocated, so from the second pass on a UNet step does no malloc.
 * Not thread-safe: allocate on one thread, compute in parallel. */
#ifndef LDM_CORE_ARENA_H
#define LDM_CORE_ARENA_H

#include <stddef.h>
#include "ldm.h"

typedef struct ldm_arena ldm_arena;

typedef struct ldm_arena_mark {
  int block;
  size_t offset;
} ldm_arena_mark;

/* block_bytes: size of the first block (0 = 64 MiB); later blocks are sized
 * to fit the request that needed them. */
ldm_arena *ldm_arena_new(size_t block_bytes);
void ldm_arena_free(ldm_arena *a);
/* 64-byte aligned; NULL on overflow or out of memory (never aborts). */
void *ldm_arena_alloc(ldm_arena *a, size_t bytes);
/* Typed helper: n floats, checked for overflow. */
float *ldm_arena_floats(ldm_arena *a, size_t n);
ldm_arena_mark ldm_arena_get_mark(const ldm_arena *a);
void ldm_arena_reset(ldm_arena *a, ldm_arena_mark m);
size_t ldm_arena_in_use(const ldm_arena *a);
size_t ldm_arena_peak(const ldm_arena *a);      /* bytes ever in use at once */
size_t ldm_arena_reserved(const ldm_arena *a);  /* bytes held in blocks */
/* Gives the blocks past the current one back to the system (they hold
 * nothing: allocation is a bump). Between phases with different needs (a
 * UNet's many mid-sized temporaries, then a VAE's few large activations)
 * the second phase would otherwise skip the first's blocks it cannot use
 * and add its own on top: peak memory is then the sum of both. */
void ldm_arena_trim(ldm_arena *a);

#endif
