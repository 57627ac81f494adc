/* Tensors: a dtype, a shape of up to 4 dimensions (PyTorch order, outermost
 * first) and a pointer that either views mmapped file data (weights, never
 * copied) or points into an arena (activations, always f32). */
#ifndef LDM_CORE_TENSOR_H
#define LDM_CORE_TENSOR_H

#include <stdint.h>
#include <stddef.h>
#include "ldm.h"

#define LDM_MAX_DIMS 4

typedef enum ldm_dtype {
  LDM_DTYPE_F32 = 0,
  LDM_DTYPE_F16,
  LDM_DTYPE_BF16,
  LDM_DTYPE_F64,
  LDM_DTYPE_I64,
  LDM_DTYPE_I32,
  LDM_DTYPE_I16,
  LDM_DTYPE_I8,
  LDM_DTYPE_U8,
  LDM_DTYPE_BOOL,
  LDM_DTYPE_COUNT
} ldm_dtype;

typedef struct ldm_tensor {
  ldm_dtype dtype;
  int ndim;
  int64_t shape[LDM_MAX_DIMS];
  void *data;               /* borrowed: owned by a file mapping or arena.
                               File data may be unaligned (safetensors does
                               not align tensors): read non-f32 data through
                               ldm_tensor_read_* or memcpy, never by casting. */
  const char *name;         /* borrowed; may be NULL */
} ldm_tensor;

size_t ldm_dtype_size(ldm_dtype t);
const char *ldm_dtype_name(ldm_dtype t);        /* safetensors spelling */
int64_t ldm_tensor_numel(const ldm_tensor *t);
/* Formats "[2, 4, 64, 64]" into buf. */
const char *ldm_shape_str(const ldm_tensor *t, char *buf, size_t n);

/* True if t has exactly this shape (ndim given by n). */
bool ldm_tensor_has_shape(const ldm_tensor *t, int n, const int64_t *shape);
/* Error unless t has the shape; message names t->name and both shapes. */
ldm_status ldm_tensor_expect(const ldm_tensor *t, int n, const int64_t *shape,
                             ldm_error *err);

/* Converts n elements of a float tensor (f32/f16/bf16/f64) starting at
 * element `offset` to f32. Returns LDM_ERR_SHAPE for non-float dtypes. */
ldm_status ldm_tensor_read_f32(const ldm_tensor *t, int64_t offset, int64_t n,
                               float *dst, ldm_error *err);

/* Converts n elements of an integer tensor (i64/i32/i16/i8/u8/bool) to
 * int64. Returns LDM_ERR_SHAPE for float dtypes. */
ldm_status ldm_tensor_read_i64(const ldm_tensor *t, int64_t offset, int64_t n,
                               int64_t *dst, ldm_error *err);

#endif
