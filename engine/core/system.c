/* Machine facts: physical core count (the default thread budget), peak RSS
 * and the CPU features the kernels dispatch on. */
#include "ldm.h"
#include "core/cpu.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ldm_default_threads(void) {
  /* Count distinct (package, core) pairs; fall back to online CPUs. */
  long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (n_cpu < 1) n_cpu = 1;
  int seen[1024][2];
  int n_seen = 0;
  for (long c = 0; c < n_cpu && c < 1024; c++) {
    char path[128];
    int pkg = 0, core = -1;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/core_id", c);
    FILE *f = fopen(path, "r");
    if (!f) return (int)n_cpu;
    if (fscanf(f, "%d", &core) != 1) core = (int)c;
    fclose(f);
    snprintf(path, sizeof path,
             "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", c);
    f = fopen(path, "r");
    if (f) {
      if (fscanf(f, "%d", &pkg) != 1) pkg = 0;
      fclose(f);
    }
    int dup = 0;
    for (int i = 0; i < n_seen; i++)
      if (seen[i][0] == pkg && seen[i][1] == core) dup = 1;
    if (!dup) {
      seen[n_seen][0] = pkg;
      seen[n_seen][1] = core;
      n_seen++;
    }
  }
  return n_seen > 0 ? n_seen : (int)n_cpu;
}

size_t ldm_peak_rss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmHWM:", 6) == 0) {
      unsigned long long v = 0;
      if (sscanf(line + 6, "%llu", &v) == 1) kb = (size_t)v;
      break;
    }
  }
  fclose(f);
  return kb * 1024;
}

/* MemAvailable, lowered to what a cgroup v2 limit (memory.max less
 * memory.current) leaves, when there is one. */
size_t ldm_memory_available_bytes(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  unsigned long long kb = 0;
  if (f) {
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "MemAvailable:", 13) == 0) {
        if (sscanf(line + 13, "%llu", &kb) != 1) kb = 0;
        break;
      }
    fclose(f);
  }
  unsigned long long avail = kb * 1024ull, max = 0, cur = 0;
  f = fopen("/sys/fs/cgroup/memory.max", "r");
  bool limited = f && fscanf(f, "%llu", &max) == 1;
  if (f) fclose(f);
  f = limited ? fopen("/sys/fs/cgroup/memory.current", "r") : NULL;
  if (f) {
    if (fscanf(f, "%llu", &cur) == 1 && max > cur && (avail == 0 || max - cur < avail)) avail = max - cur;
    fclose(f);
  }
  return (size_t)avail;
}

const char *ldm_cpu_features(void) {
#if defined(__x86_64__) || defined(__i386__)
  static char buf[128];
  __builtin_cpu_init();
  buf[0] = '\0';
  if (__builtin_cpu_supports("avx2")) strcat(buf, "avx2 ");
  if (__builtin_cpu_supports("fma")) strcat(buf, "fma ");
  if (ldm_cpu_has_f16c()) strcat(buf, "f16c ");
  if (ldm_cpu_has_avx512()) strcat(buf, "avx512f ");
  if (ldm_cpu_has_avx512bf16()) strcat(buf, "avx512bf16 ");
  if (ldm_cpu_has_amx_bf16()) strcat(buf, "amx-bf16 ");
  size_t n = strlen(buf);
  if (n) buf[n - 1] = '\0';
  return buf;
#else
  return "";
#endif
}
