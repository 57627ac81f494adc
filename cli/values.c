/* The one check every value of a job passes, whatever its source: the
 * command line (label "--steps"), or a recipe stored in a PNG (label
 * "a.png: stored 'Steps'"). Numbers must be complete, finite and in range;
 * the message names the label, the text and the range. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_quiet;

int cli_fail(int code, const char *fmt, ...) {
  if (cli_quiet) return code;
  va_list ap;
  va_start(ap, fmt);
  fputs("ldm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return code;
}

int cli_parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long long v = s ? strtoll(s, &end, 10) : 0;
  if (!s || !*s || *end || errno || v < lo || v > hi) {
    cli_fail(LDM_EXIT_USAGE, "%s: '%.64s' is not an integer in %d..%d", opt, s ? s : "", lo, hi);
    return -1;
  }
  *out = (int)v;
  return 0;
}

int cli_parse_float(const char *opt, const char *s, float lo, float hi, float *out) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 0;
  /* written so that NaN fails; Inf is outside every range */
  if (!s || !*s || *end || errno || !isfinite(v) || !(v >= lo && v <= hi)) {
    cli_fail(LDM_EXIT_USAGE, "%s: '%.64s' is not a finite number in %g..%g", opt, s ? s : "", (double)lo,
             (double)hi);
    return -1;
  }
  *out = (float)v;
  return 0;
}

int cli_parse_seed(const char *opt, const char *s, bool *random, uint64_t *out) {
  if (s && !strcmp(s, "-1")) {
    *random = true;
    *out = 0;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
  if (!s || !(*s >= '0' && *s <= '9') || *end || errno) {
    cli_fail(LDM_EXIT_USAGE, "%s: '%.64s' is not -1 (random) or an integer in 0..18446744073709551615", opt,
             s ? s : "");
    return -1;
  }
  *random = false;
  *out = (uint64_t)v;
  return 0;
}
