/* Prepared-weight cache: f32 copies of f16/bf16 weights, packed convolution
 * weights and Winograd-transformed 3x3 kernels, made once and kept for the
 * model's lifetime instead of being redone in scratch at every evaluation.
 * Optional (ldm_model_params.weight_cache_mb): it trades memory (f32 is twice
 * an f16 file; Winograd kernels 16/9 of that) for the conversion time.
 * Thread-safe: jobs on one model may share it. Entries are keyed by the
 * weights' addresses, so the weights must outlive the cache (the model owns
 * both, its mapped files and its cache). */
#ifndef LDM_CORE_WCACHE_H
#define LDM_CORE_WCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ldm_wcache ldm_wcache;

typedef enum ldm_wcache_kind {
  LDM_WCACHE_F32,            /* the weight as f32, PyTorch layout */
  LDM_WCACHE_CONV,           /* conv weight packed [Cout, kh*kw*Cin] */
  LDM_WCACHE_WINOGRAD,       /* 3x3 kernel transformed, [16, Cout, Cin] */
  LDM_WCACHE_BF16_PANELS,    /* bf16 pair-word panels for AMX (ops_amx_weight) */
  LDM_WCACHE_PANELS,         /* panels of 32 rows for few-row products (ops_weight_panels) */
  LDM_WCACHE_WINOGRAD_PANELS /* the Winograd kernel as f32 panels per point (ops_winograd_panels) */
} ldm_wcache_kind;

/* limit_bytes: most the cache holds; later weights are prepared per call. */
ldm_wcache *ldm_wcache_new(size_t limit_bytes);
void ldm_wcache_free(ldm_wcache *c);
/* The prepared form (n floats) of the weight whose data starts at key, or
 * NULL. A view of the first part of a tensor has the same key and another n. */
const float *ldm_wcache_get(ldm_wcache *c, const void *key, ldm_wcache_kind kind, size_t n);
/* A buffer of n floats to prepare into, or NULL when over the limit or out
 * of memory; hand it to ldm_wcache_add (or ldm_wcache_drop) when filled. */
float *ldm_wcache_reserve(ldm_wcache *c, size_t n);
/* Publishes a filled buffer; returns the cached one (buf, or the one another
 * thread published first); NULL when the table cannot grow. buf is freed
 * whenever it is not the one returned. */
const float *ldm_wcache_add(ldm_wcache *c, const void *key, ldm_wcache_kind kind, float *buf, size_t n);
void ldm_wcache_drop(ldm_wcache *c, float *buf, size_t n);
size_t ldm_wcache_bytes(const ldm_wcache *c);

#endif
