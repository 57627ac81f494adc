/* Internal error helpers: every fallible internal function returns an
 * ldm_status and, on failure, writes a one-line message into an ldm_error.
 * The pattern is   return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s' ...", ...); */
#ifndef LDM_CORE_STATUS_H
#define LDM_CORE_STATUS_H

#include "ldm.h"

#if defined(__GNUC__)
#define LDM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LDM_PRINTF(a, b)
#endif

/* Sets err (if non-NULL) and returns s. */
ldm_status ldm_fail(ldm_error *err, ldm_status s, const char *fmt, ...)
    LDM_PRINTF(3, 4);

/* Prepends "prefix: " to an existing message (for context such as a file). */
void ldm_error_prefix(ldm_error *err, const char *fmt, ...) LDM_PRINTF(2, 3);

#define LDM_TRY(expr)                          \
  do {                                         \
    ldm_status ldm_try_s_ = (expr);            \
    if (ldm_try_s_ != LDM_OK) return ldm_try_s_; \
  } while (0)

/* Checked size arithmetic: return false on overflow. */
static inline bool ldm_mul_size(size_t a, size_t b, size_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
static inline bool ldm_add_size(size_t a, size_t b, size_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

#endif
