/* Thread budget: one pool of worker threads per job does all the work,
 * GEMMs included (ldm_gemm gives each pool thread a piece and runs OpenBLAS
 * single-threaded in it), so no other threads compete for the cores. */
#ifndef LDM_CORE_THREADS_H
#define LDM_CORE_THREADS_H

#include <stdatomic.h>
#include <stdint.h>
#include "ldm.h"

typedef struct ldm_pool ldm_pool;

/* fn(user, i) is called once for every i in [0, n) across the pool. */
typedef void (*ldm_task_fn)(void *user, int64_t i);

ldm_pool *ldm_pool_new(int n_threads);
void ldm_pool_free(ldm_pool *p);
int ldm_pool_size(const ldm_pool *p);
/* Runs fn over [0, n); the calling thread takes part. A NULL pool runs
 * serially. Tasks are handed out in contiguous chunks. */
void ldm_pool_for(ldm_pool *p, int64_t n, ldm_task_fn fn, void *user);

/* Sets OpenBLAS's thread count (no-op when the library lacks the call). */
void ldm_blas_set_threads(int n);

struct ldm_arena;
struct ldm_wcache;

/* What every op receives: the thread pool, the scratch arena for temporary
 * buffers (ops reset it to where they found it), and the error record. */
typedef struct ldm_ctx {
  ldm_pool *pool;
  int threads;
  struct ldm_arena *scratch;
  ldm_error *err;
  atomic_int *cancel;       /* optional: non-zero asks the work to stop */
  ldm_precision precision;  /* ldm_gemm's arithmetic (LDM_PRECISION_F32 = 0) */
  struct ldm_wcache *wcache; /* optional: prepared weights kept across calls */
} ldm_ctx;

#endif
