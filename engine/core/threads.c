/* A small fork-join pool on pthreads. ldm_pool_for hands out chunks of the
 * index range through an atomic counter; the caller works too. Between jobs
 * the workers, and the caller waiting for them, spin for a short while
 * (POOL_SPIN) before they sleep on a condition variable: a UNet evaluation
 * is thousands of short parallel loops (an SD 2 img2img job at 256 x 256
 * made ~9000 futex calls), and waking a sleeping thread costs a futex call
 * and a reschedule each time (tens of microseconds under a hypervisor)
 * while the other core idles. Measured on an idle 2-core Emerald Rapids
 * guest (bench_live, median of 5 strokes, alternating runs): live_512
 * 3.24-3.33 s -> 2.97-3.17 s, live_256 0.88-0.89 s -> 0.82-0.86 s. On a
 * machine busy with other work spinning costs: a 256 stroke beside a
 * 2-thread torch job went 1.52 -> 1.63-1.80 s. */
#include "core/threads.h"

#include <pthread.h>
#include <stdlib.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_RELAX() _mm_pause()
#else
#define POOL_RELAX() ((void)0)
#endif

/* Spin iterations before sleeping: a pause is ~40-140 cycles, so 30-100
 * microseconds; long enough to bridge the serial work between two
 * parallel loops, short enough to give a busy machine its core back. */
enum { POOL_SPIN = 2000 };

struct ldm_pool {
  int n_threads; /* including the caller */
  pthread_t *workers;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  /* current job */
  ldm_task_fn fn;
  void *user;
  int64_t n, chunk;
  atomic_llong next;
  /* written under mu; read without it while spinning */
  atomic_int generation;
  atomic_int busy; /* workers still running the current job */
  atomic_int quit;
};

static void run_chunks(ldm_pool *p, ldm_task_fn fn, void *user, int64_t n,
                       int64_t chunk) {
  for (;;) {
    int64_t start = atomic_fetch_add(&p->next, chunk);
    if (start >= n) break;
    int64_t end = start + chunk < n ? start + chunk : n;
    for (int64_t i = start; i < end; i++) fn(user, i);
  }
}

static void *worker_main(void *arg) {
  ldm_pool *p = arg;
  int seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (!p->quit && p->generation == seen) { /* spin a while before sleeping */
      pthread_mutex_unlock(&p->mu);
      for (int s = 0; s < POOL_SPIN && atomic_load_explicit(&p->generation, memory_order_relaxed) == seen &&
                      !atomic_load_explicit(&p->quit, memory_order_relaxed);
           s++)
        POOL_RELAX();
      pthread_mutex_lock(&p->mu);
    }
    while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
    if (p->quit) break;
    seen = p->generation;
    ldm_task_fn fn = p->fn;
    void *user = p->user;
    int64_t n = p->n, chunk = p->chunk;
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, fn, user, n, chunk);
    pthread_mutex_lock(&p->mu);
    if (--p->busy == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

ldm_pool *ldm_pool_new(int n_threads) {
  if (n_threads < 1) n_threads = 1;
  ldm_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n_threads = n_threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  if (n_threads > 1) {
    p->workers = calloc((size_t)n_threads - 1, sizeof(pthread_t));
    if (!p->workers) {
      free(p);
      return NULL;
    }
    for (int i = 0; i < n_threads - 1; i++) {
      if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
        p->n_threads = i + 1; /* run with what we have */
        break;
      }
    }
  }
  return p;
}

void ldm_pool_free(ldm_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
  free(p->workers);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  free(p);
}

int ldm_pool_size(const ldm_pool *p) { return p ? p->n_threads : 1; }

void ldm_pool_for(ldm_pool *p, int64_t n, ldm_task_fn fn, void *user) {
  if (n <= 0) return;
  if (!p || p->n_threads == 1 || n == 1) {
    for (int64_t i = 0; i < n; i++) fn(user, i);
    return;
  }
  int64_t chunk = n / ((int64_t)p->n_threads * 4);
  if (chunk < 1) chunk = 1;
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->user = user;
  p->n = n;
  p->chunk = chunk;
  atomic_store(&p->next, 0);
  p->busy = p->n_threads - 1;
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  run_chunks(p, fn, user, n, chunk);
  for (int s = 0; s < POOL_SPIN && atomic_load_explicit(&p->busy, memory_order_acquire) > 0; s++) POOL_RELAX();
  pthread_mutex_lock(&p->mu);
  while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

/* Declared by OpenBLAS's cblas.h; weak so a BLAS without it still links. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

void ldm_blas_set_threads(int n) {
  static _Atomic int current; /* what was last set here (0: never) */
  if (openblas_set_num_threads && n > 0 && atomic_exchange(&current, n) != n)
    openblas_set_num_threads(n);
}
