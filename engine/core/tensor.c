/* Tensor helpers: dtype sizes and names (safetensors spelling), shape
 * checks with messages that name the tensor, and conversion to f32. */
#include "core/tensor.h"
#include "core/half.h"
#include "core/status.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  size_t size;
} dtype_info[LDM_DTYPE_COUNT] = {
    [LDM_DTYPE_F32] = {"F32", 4}, [LDM_DTYPE_F16] = {"F16", 2},
    [LDM_DTYPE_BF16] = {"BF16", 2}, [LDM_DTYPE_F64] = {"F64", 8},
    [LDM_DTYPE_I64] = {"I64", 8}, [LDM_DTYPE_I32] = {"I32", 4},
    [LDM_DTYPE_I16] = {"I16", 2}, [LDM_DTYPE_I8] = {"I8", 1},
    [LDM_DTYPE_U8] = {"U8", 1}, [LDM_DTYPE_BOOL] = {"BOOL", 1},
};

size_t ldm_dtype_size(ldm_dtype t) {
  return (unsigned)t < LDM_DTYPE_COUNT ? dtype_info[t].size : 0;
}

const char *ldm_dtype_name(ldm_dtype t) {
  return (unsigned)t < LDM_DTYPE_COUNT ? dtype_info[t].name : "?";
}

int64_t ldm_tensor_numel(const ldm_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

const char *ldm_shape_str(const ldm_tensor *t, char *buf, size_t n) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, n - off, "[");
  for (int i = 0; i < t->ndim && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld",
                            (long long)t->shape[i]);
  if (off < n) snprintf(buf + off, n - off, "]");
  return buf;
}

bool ldm_tensor_has_shape(const ldm_tensor *t, int n, const int64_t *shape) {
  if (t->ndim != n) return false;
  for (int i = 0; i < n; i++)
    if (t->shape[i] != shape[i]) return false;
  return true;
}

ldm_status ldm_tensor_expect(const ldm_tensor *t, int n, const int64_t *shape,
                             ldm_error *err) {
  if (ldm_tensor_has_shape(t, n, shape)) return LDM_OK;
  ldm_tensor want = {.ndim = n};
  for (int i = 0; i < n && i < LDM_MAX_DIMS; i++) want.shape[i] = shape[i];
  char a[96], b[96];
  return ldm_fail(err, LDM_ERR_SHAPE, "tensor '%s' has shape %s, expected %s",
                  t->name ? t->name : "?", ldm_shape_str(t, a, sizeof a),
                  ldm_shape_str(&want, b, sizeof b));
}

static ldm_status check_range(const ldm_tensor *t, int64_t offset, int64_t n,
                              ldm_error *err) {
  if (offset < 0 || n < 0 || offset + n > ldm_tensor_numel(t))
    return ldm_fail(err, LDM_ERR_INVALID_ARG,
                    "tensor '%s': read of %lld elements at %lld out of range",
                    t->name ? t->name : "?", (long long)n, (long long)offset);
  return LDM_OK;
}

ldm_status ldm_tensor_read_f32(const ldm_tensor *t, int64_t offset, int64_t n,
                               float *dst, ldm_error *err) {
  LDM_TRY(check_range(t, offset, n, err));
  switch (t->dtype) {
    case LDM_DTYPE_F32:
      memcpy(dst, (const float *)t->data + offset, (size_t)n * sizeof(float));
      return LDM_OK;
    case LDM_DTYPE_F16:
      ldm_convert_f16_to_f32(dst, (const uint16_t *)t->data + offset, (size_t)n);
      return LDM_OK;
    case LDM_DTYPE_BF16:
      ldm_convert_bf16_to_f32(dst, (const uint16_t *)t->data + offset, (size_t)n);
      return LDM_OK;
    case LDM_DTYPE_F64:
      for (int64_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, (const char *)t->data + (offset + i) * 8, 8);
        dst[i] = (float)d;
      }
      return LDM_OK;
    default:
      return ldm_fail(err, LDM_ERR_SHAPE,
                      "tensor '%s' has dtype %s, expected a float type",
                      t->name ? t->name : "?", ldm_dtype_name(t->dtype));
  }
}

ldm_status ldm_tensor_read_i64(const ldm_tensor *t, int64_t offset, int64_t n,
                               int64_t *dst, ldm_error *err) {
  LDM_TRY(check_range(t, offset, n, err));
  const unsigned char *p = t->data;
  size_t es = ldm_dtype_size(t->dtype);
  for (int64_t i = 0; i < n; i++) {
    const unsigned char *e = p + (size_t)(offset + i) * es;
    switch (t->dtype) {
      case LDM_DTYPE_I64: memcpy(&dst[i], e, 8); break;
      case LDM_DTYPE_I32: { int32_t v; memcpy(&v, e, 4); dst[i] = v; break; }
      case LDM_DTYPE_I16: { int16_t v; memcpy(&v, e, 2); dst[i] = v; break; }
      case LDM_DTYPE_I8: dst[i] = (int8_t)*e; break;
      case LDM_DTYPE_U8:
      case LDM_DTYPE_BOOL: dst[i] = *e; break;
      default:
        return ldm_fail(err, LDM_ERR_SHAPE,
                        "tensor '%s' has dtype %s, expected an integer type",
                        t->name ? t->name : "?", ldm_dtype_name(t->dtype));
    }
  }
  return LDM_OK;
}
