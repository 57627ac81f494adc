/* safetensors files: mmapped read with a bounds-checked header parse, and an
 * atomic writer (temp file + rename, so no partial output is left behind).
 * Format: u64 little-endian header length N, N bytes of UTF-8 JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [b, e]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data section. */
#ifndef LDM_IO_SAFETENSORS_H
#define LDM_IO_SAFETENSORS_H

#include <stdint.h>
#include <stddef.h>
#include "core/tensor.h"

typedef struct ldm_st_file ldm_st_file;

/* Header limit: files whose JSON header exceeds this are rejected. */
#define LDM_ST_MAX_HEADER ((uint64_t)64 << 20)

ldm_status ldm_st_open(ldm_st_file **out, const char *path, ldm_error *err);
void ldm_st_close(ldm_st_file *f);

const char *ldm_st_path(const ldm_st_file *f);
size_t ldm_st_file_size(const ldm_st_file *f);
int64_t ldm_st_count(const ldm_st_file *f);
/* Tensors in file order; the ldm_tensor (and its data, name) live as long
 * as the file is open. */
const ldm_tensor *ldm_st_at(const ldm_st_file *f, int64_t i);
const ldm_tensor *ldm_st_find(const ldm_st_file *f, const char *name);
/* __metadata__ (string values only, as the format defines). */
int64_t ldm_st_metadata_count(const ldm_st_file *f);
void ldm_st_metadata_at(const ldm_st_file *f, int64_t i, const char **key,
                        const char **value);
const char *ldm_st_metadata_get(const ldm_st_file *f, const char *key);

/* Drops the mapped pages that hold only tensors whose names begin with
 * prefix (NULL or "": the whole file) from this process's resident memory.
 * They stay in the page cache; a later read of those tensors faults them
 * back in with the same bytes, so it changes no result (the weight cache
 * and the tensors' pointers stay valid). Best effort: a no-op where the
 * system has no madvise(MADV_DONTNEED). */
void ldm_st_release(const ldm_st_file *f, const char *prefix);

/* Writes tensors (data taken from each tensor's data pointer in its dtype)
 * and optional metadata pairs {k0, v0, k1, v1, ..., NULL}. */
ldm_status ldm_st_write(const char *path, const ldm_tensor *tensors, int n,
                        const char *const *metadata, ldm_error *err);

/* Lookup helpers for eval harnesses: find `name` or fail naming the file. */
ldm_status ldm_st_require(const ldm_st_file *f, const char *name,
                          const ldm_tensor **out, ldm_error *err);

#endif
