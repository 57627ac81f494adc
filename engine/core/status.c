/* Status codes and error messages (see status.h). */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ldm_status_str(ldm_status s) {
  switch (s) {
    case LDM_OK: return "ok";
    case LDM_ERR_INVALID_ARG: return "invalid argument";
    case LDM_ERR_IO: return "i/o error";
    case LDM_ERR_FORMAT: return "malformed file";
    case LDM_ERR_UNSUPPORTED: return "unsupported";
    case LDM_ERR_NOMEM: return "out of memory";
    case LDM_ERR_SHAPE: return "wrong shape or dtype";
    case LDM_ERR_MISSING: return "missing";
    case LDM_ERR_CANCELLED: return "cancelled";
    case LDM_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

void ldm_error_clear(ldm_error *err) {
  if (!err) return;
  err->status = LDM_OK;
  err->msg[0] = '\0';
}

const char *ldm_version(void) { return LDM_VERSION_STRING; }

ldm_status ldm_fail(ldm_error *err, ldm_status s, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = s;
  }
  return s;
}

void ldm_error_prefix(ldm_error *err, const char *fmt, ...) {
  if (!err) return;
  char old[sizeof err->msg];
  memcpy(old, err->msg, sizeof old);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof err->msg - 2) return;
  err->msg[n] = ':';
  err->msg[n + 1] = ' ';
  memcpy(err->msg + n + 2, old, sizeof err->msg - (size_t)n - 2);
  err->msg[sizeof err->msg - 1] = '\0';
}
