/* The BLAS library's kernels for this CPU (see ldm.h, ldm_blas_tune).
 *
 * OpenBLAS built with DYNAMIC_ARCH (as Debian ships it) picks its kernel set
 * once, when it is loaded, from a table of CPU family/model numbers. A CPU
 * newer than the table gets the generic SSE3 "Prescott" kernels: Debian 12's
 * OpenBLAS 0.3.21 on an Emerald Rapids Xeon (family 6, model 0xCF) ran
 * sgemm at 30 GFLOP/s per core, against 150 with the AVX-512 kernels it also
 * carries (bench_gemm, M=1024 N=640 K=5760). OpenBLAS reads the choice from
 * OPENBLAS_CORETYPE only while it initialises, before any code of ours runs
 * (a .preinit_array function is too early: libc resets the environment after
 * it), so the one way to correct it from inside the process is to set the
 * variable and execute the program again. */
#include "ldm.h"
#include "core/cpu.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REEXEC_ENV "LDM_BLAS_REEXEC" /* OpenBLAS's own choice, set before the second start */

typedef char *(*corename_fn)(void);
typedef char *(*config_fn)(void);

static const char *openblas_corename(void) {
  corename_fn f;
  /* Function pointers from dlsym: the POSIX-sanctioned conversion. */
  *(void **)&f = dlsym(RTLD_DEFAULT, "openblas_get_corename");
  return f ? f() : NULL;
}

/* OpenBLAS's x86 kernel sets below AVX2, and its name for no match. */
static bool weak_core(const char *name) {
  static const char *const weak[] = {"Unknown",  "Katmai",    "Coppermine", "Northwood", "Prescott",
                                     "Banias",   "Atom",      "Core2",      "Penryn",    "Dunnington",
                                     "Nehalem",  "Sandybridge", "Athlon",   "Opteron",   "Opteron_SSE3",
                                     "Barcelona", "Bobcat"};
  for (size_t i = 0; i < sizeof weak / sizeof *weak; i++)
    if (!strcasecmp(name, weak[i])) return true;
  return false;
}

/* The kernel set OpenBLAS has had since 0.3.11 for this CPU's instructions,
 * NULL when none is better than what it chose itself. */
static const char *better_core(void) {
  if (ldm_cpu_has_avx512()) return ldm_cpu_has_avx512bf16() ? "Cooperlake" : "SkylakeX";
  if (ldm_cpu_has_avx2() && ldm_cpu_has_fma()) return ldm_cpu_is_amd() ? "Zen" : "Haswell";
  return NULL;
}

void ldm_blas_tune(char **argv) {
  const char *core = openblas_corename();
  if (!argv || !argv[0] || !core || getenv("OPENBLAS_CORETYPE") || getenv(REEXEC_ENV) || !weak_core(core)) return;
  const char *better = better_core();
  if (!better) return;
  if (setenv("OPENBLAS_CORETYPE", better, 1) != 0 || setenv(REEXEC_ENV, core, 1) != 0) return;
  fflush(NULL);
  /* The program's own file by name (under valgrind the link is the
   * client's, where /proc/self/exe itself would start the tool). */
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len > 0) {
    self[len] = '\0';
    execv(self, argv);
  }
  execv("/proc/self/exe", argv);
  /* No /proc (or no permission): go on with the kernels there are. */
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(REEXEC_ENV);
}

const char *ldm_blas_info(void) {
  static char buf[256];
  config_fn config;
  *(void **)&config = dlsym(RTLD_DEFAULT, "openblas_get_config");
  const char *core = openblas_corename();
  if (!config || !core) return "not OpenBLAS (kernels chosen by the library)";
  const char *cfg = config(), *sp = cfg ? strchr(cfg, ' ') : NULL, *end = sp ? strchr(sp + 1, ' ') : NULL;
  int vlen = end ? (int)(end - cfg) : (cfg ? (int)strlen(cfg) : 0);
  const char *was = getenv(REEXEC_ENV), *forced = getenv("OPENBLAS_CORETYPE");
  if (was && forced)
    snprintf(buf, sizeof buf, "%.*s, %s kernels (chosen by libldm: the library took this CPU for %s)", vlen,
             cfg ? cfg : "OpenBLAS", core, was);
  else if (forced)
    snprintf(buf, sizeof buf, "%.*s, %s kernels (OPENBLAS_CORETYPE=%s)", vlen, cfg ? cfg : "OpenBLAS", core,
             forced);
  else
    snprintf(buf, sizeof buf, "%.*s, %s kernels", vlen, cfg ? cfg : "OpenBLAS", core);
  return buf;
}
