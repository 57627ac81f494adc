/* CPUID-based feature checks (see cpu.h). */
#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* LDM_CPU_NO_AVX512=1 hides AVX-512 (and AVX512-BF16) from the kernels'
 * dispatch: the AVX2 paths run, as on a CPU without it (the tests run the
 * ops both ways on AVX-512 machines). */
static bool avx512_hidden(void) {
  const char *e = getenv("LDM_CPU_NO_AVX512");
  return e && *e && strcmp(e, "0") != 0;
}

static bool os_avx(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  if (!(c & (1u << 27)) || !(c & (1u << 28))) return false; /* OSXSAVE, AVX */
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 6u) == 6u; /* XMM and YMM state enabled */
}

/* AVX with the OS saving the opmask and all 512-bit registers (XCR0 bits
 * 5-7 besides XMM/YMM); false while LDM_CPU_NO_AVX512 hides AVX-512. */
static bool os_zmm(void) {
  if (avx512_hidden() || !os_avx()) return false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0xe6u) == 0xe6u;
}

static bool leaf1_ecx(unsigned bit) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << bit));
}

static bool probe_avx2(void) {
  unsigned a, b, c, d;
  if (!os_avx() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (b & (1u << 5)) != 0;
}

/* AVX-512 F and BF16, with the OS saving the opmask and all 512-bit
 * registers (XCR0 bits 5-7 besides XMM/YMM). */
static bool probe_avx512bf16(void) {
  unsigned a, b, c, d;
  if (!os_zmm() || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16)) || a < 1) return false;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

/* AVX-512 F, CD, BW, DQ and VL (the Skylake-SP set), OS saving ZMM state. */
static bool probe_avx512(void) {
  unsigned a, b, c, d;
  const unsigned need = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31); /* F DQ CD BW VL */
  return os_zmm() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & need) == need;
}

static bool probe_amd(void) {
  unsigned a, b, c, d;
  return __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u; /* "Auth"enticAMD */
}

static bool probe_f16c(void) { return os_avx() && leaf1_ecx(29); }
static bool probe_fma(void) { return os_avx() && leaf1_ecx(12); }

/* CPUID traps to the hypervisor in a VM and ops ask per call: each answer
 * is probed once (racing threads compute and store the same value). */
static bool cached(atomic_int *slot, bool (*probe)(void)) {
  int v = atomic_load_explicit(slot, memory_order_relaxed);
  if (v < 0) {
    v = probe() ? 1 : 0;
    atomic_store_explicit(slot, v, memory_order_relaxed);
  }
  return v == 1;
}

/* AMX-TILE and AMX-BF16 (CPUID 7.0 EDX bits 24 and 22), the OS saving tile
 * state (XCR0 bits 17 XTILECFG and 18 XTILEDATA) and, on Linux, the
 * process's permission to use tile data (arch_prctl ARCH_REQ_XCOMP_PERM,
 * asked once per process: the grant covers all of its threads). The AMX
 * kernels convert with AVX-512, so LDM_CPU_NO_AVX512 hides AMX too, and
 * LDM_CPU_NO_AMX=1 hides AMX alone (the VDPBF16PS kernels then run). */
static bool amx_hidden(void) {
  const char *e = getenv("LDM_CPU_NO_AMX");
  return e && *e && strcmp(e, "0") != 0;
}

static bool amx_granted;

static void amx_request(void) {
#if defined(__linux__) && defined(__x86_64__)
  enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
  amx_granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
  amx_granted = false; /* other systems: no way to ask here */
#endif
}

static const char *amx_why = "not probed";

static bool probe_amx_bf16(void) {
  unsigned a, b, c, d;
  if (amx_hidden()) return amx_why = "hidden by LDM_CPU_NO_AMX", false;
  if (!ldm_cpu_has_avx512bf16()) return amx_why = "no AVX512-BF16 (or hidden by LDM_CPU_NO_AVX512)", false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24)))
    return amx_why = "the CPU has no AMX-BF16/AMX-TILE", false;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return amx_why = "the OS does not enable AMX tile state (XCR0)", false;
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, amx_request);
  if (!amx_granted) return amx_why = "the kernel refused tile-data permission (arch_prctl)", false;
  amx_why = "";
  return true;
}

const char *ldm_cpu_amx_note(void) { return ldm_cpu_has_amx_bf16() ? "" : amx_why; }

static atomic_int has_amx_bf16 = -1;
bool ldm_cpu_has_amx_bf16(void) { return cached(&has_amx_bf16, probe_amx_bf16); }

static atomic_int has_avx2 = -1, has_f16c = -1, has_fma = -1, has_avx512bf16 = -1, has_avx512 = -1, is_amd = -1;

bool ldm_cpu_has_avx2(void) { return cached(&has_avx2, probe_avx2); }
bool ldm_cpu_has_f16c(void) { return cached(&has_f16c, probe_f16c); }
bool ldm_cpu_has_fma(void) { return cached(&has_fma, probe_fma); }
bool ldm_cpu_has_avx512bf16(void) { return cached(&has_avx512bf16, probe_avx512bf16); }
bool ldm_cpu_has_avx512(void) { return cached(&has_avx512, probe_avx512); }
bool ldm_cpu_is_amd(void) { return cached(&is_amd, probe_amd); }
#else
bool ldm_cpu_has_amx_bf16(void) { return false; }
const char *ldm_cpu_amx_note(void) { return "not an x86-64 CPU"; }
bool ldm_cpu_has_avx2(void) { return false; }
bool ldm_cpu_has_f16c(void) { return false; }
bool ldm_cpu_has_fma(void) { return false; }
bool ldm_cpu_has_avx512bf16(void) { return false; }
bool ldm_cpu_has_avx512(void) { return false; }
bool ldm_cpu_is_amd(void) { return false; }
#endif
