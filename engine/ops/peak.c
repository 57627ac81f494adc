/* One core's instruction peaks (see ldm.h, ldm_cpu_peaks): independent
 * accumulator chains of one multiply-add instruction, timed in the thread's
 * CPU time so that a busy machine (the thread waiting for a core) does not
 * lower the figure. f32: VFMADD on zmm (ymm without AVX-512); bf16:
 * VDPBF16PS (two products per f32 lane) and AMX TDPBF16PS (16 x 16 f32
 * accumulators, 32 products each, four accumulator tiles). */
#include "ldm.h"
#include "core/cpu.h"
#include "ops/ops_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double thread_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

#define CHAINS(OP)                                                                                                     \
  a0 = OP(a0), a1 = OP(a1), a2 = OP(a2), a3 = OP(a3), a4 = OP(a4), a5 = OP(a5), a6 = OP(a6), a7 = OP(a7), a8 = OP(a8), \
  a9 = OP(a9), a10 = OP(a10), a11 = OP(a11)

/* GFLOP/s of `iters` rounds of 12 chained instructions. */
#define PEAK_FN(name, tgt, vec, zero, op, sum, flop_per_instr)                             \
  __attribute__((target(tgt))) static double name(long iters) {                            \
    vec a0 = zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0; \
    vec a9 = a0, a10 = a0, a11 = a0;                                                       \
    double t0 = thread_s();                                                                \
    for (long i = 0; i < iters; i++) {                                                     \
      CHAINS(op);                                                                          \
      __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));   \
      __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11)); \
    }                                                                                      \
    double t = thread_s() - t0;                                                            \
    volatile float sink = sum;                                                             \
    (void)sink;                                                                            \
    return t > 0 ? 12.0 * (double)iters * (flop_per_instr) / t * 1e-9 : 0.0;               \
  }

static __m256 x8, y8;
static __m512 x16, y16;
static __m512bh xb, yb;
#define FMA8(a)   _mm256_fmadd_ps(x8, y8, a)
#define FMA16(a)  _mm512_fmadd_ps(x16, y16, a)
#define DPBF16(a) _mm512_dpbf16_ps(a, xb, yb)
PEAK_FN(peak_fma_avx2, "avx2,fma", __m256, _mm256_setzero_ps(), FMA8, _mm256_cvtss_f32(_mm256_add_ps(a0, a11)), 16)
PEAK_FN(peak_fma_avx512, "avx512f", __m512, _mm512_setzero_ps(), FMA16, _mm512_cvtss_f32(_mm512_add_ps(a0, a11)), 32)
PEAK_FN(peak_dpbf16, "avx512f,avx512bf16", __m512, _mm512_setzero_ps(), DPBF16,
        _mm512_cvtss_f32(_mm512_add_ps(a0, a11)), 64)

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11))
#define PEAK_AMX 1
typedef struct amx_cfg {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_cfg;

/* A constant: GCC 12 may drop stores into a local configuration. */
static const _Alignas(64) amx_cfg tile_cfg = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

__attribute__((target("amx-tile,amx-bf16"))) static double peak_amx(long iters) {
  static _Alignas(64) uint16_t buf[16 * 32];
  _tile_loadconfig(&tile_cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, buf, 64);
  _tile_loadd(5, buf, 64);
  _tile_loadd(6, buf, 64);
  _tile_loadd(7, buf, 64);
  double t0 = thread_s();
  for (long i = 0; i < iters; i++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  double t = thread_s() - t0;
  static _Alignas(64) float out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  return t > 0 ? 4.0 * (double)iters * 16 * 16 * 32 * 2 / t * 1e-9 : 0.0;
}
#endif

void ldm_cpu_peaks(ldm_cpu_peak *p, double scale) {
  memset(p, 0, sizeof *p);
  long it = (long)(scale * 4e6); /* ~12 x 4e6 instructions: ~20 ms at 2.5 GHz */
  if (it < 1000) it = 1000;
  if (ldm_cpu_has_avx512()) {
    (void)peak_fma_avx512(it / 4); /* the core's clock settles */
    p->f32 = peak_fma_avx512(it);
  } else if (ldm_cpu_has_avx2() && ldm_cpu_has_fma()) {
    p->f32 = peak_fma_avx2(it);
  }
  if (ldm_cpu_has_avx512bf16()) p->bf16_dot = peak_dpbf16(it);
#ifdef PEAK_AMX
  if (ops_amx_built() && ldm_cpu_has_amx_bf16()) p->bf16_amx = peak_amx(it / 4);
#endif
}
#else
void ldm_cpu_peaks(ldm_cpu_peak *p, double scale) {
  (void)scale;
  memset(p, 0, sizeof *p);
}
#endif

/* CPU model string (CPUID brand) and features: the cache's key. */
static void cpu_key(char *buf, size_t n) {
  char brand[49] = "";
#if defined(__x86_64__) || defined(__i386__)
  unsigned r[12];
  if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
    for (unsigned i = 0; i < 3; i++)
      __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(brand, r, 48);
    brand[48] = '\0';
  }
#endif
  char *s = brand;
  while (*s == ' ') s++;
  snprintf(buf, n, "%s [%s]", *s ? s : "unknown CPU", ldm_cpu_features());
  for (char *p = buf; *p; p++)
    if (*p == '\t' || *p == '\n') *p = ' ';
}

static bool cache_read(const char *path, const char *key, ldm_cpu_peak *p) {
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) return false;
  char line[512];
  bool found = false;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *tab = strchr(line, '\t');
    ldm_cpu_peak q;
    if (!tab || strcmp(tab + 1, key) != 0 || sscanf(line, "%lf %lf %lf", &q.f32, &q.bf16_dot, &q.bf16_amx) != 3)
      continue;
    if (q.f32 >= 0 && q.bf16_dot >= 0 && q.bf16_amx >= 0) *p = q, found = true; /* the last line wins */
  }
  fclose(f);
  return found;
}

static void cache_write(const char *path, const char *key, const ldm_cpu_peak *p) {
  if (!path) return;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (mkdir(dir, 0755) != 0 && errno == ENOENT) { /* ~/.cache itself may be missing */
      char *up = strrchr(dir, '/');
      if (up && up != dir) {
        *up = '\0';
        mkdir(dir, 0755);
        *up = '/';
        mkdir(dir, 0755);
      }
    }
  }
  FILE *f = fopen(path, "a");
  if (!f) return;
  fprintf(f, "%.1f %.1f %.1f\t%s\n", p->f32, p->bf16_dot, p->bf16_amx, key);
  fclose(f);
}

ldm_precision ldm_precision_auto(const char *cache_file, ldm_precision_auto_info *info) {
  ldm_precision_auto_info tmp;
  if (!info) info = &tmp;
  memset(info, 0, sizeof *info);
  cpu_key(info->cpu, sizeof info->cpu);
  if (!(info->cached = cache_read(cache_file, info->cpu, &info->peak))) {
    ldm_cpu_peaks(&info->peak, 1.0);
    cache_write(cache_file, info->cpu, &info->peak);
  }
  const ldm_cpu_peak *p = &info->peak;
  bool amx = p->bf16_amx > p->bf16_dot;
  double best = amx ? p->bf16_amx : p->bf16_dot;
  ldm_precision r = LDM_PRECISION_F32;
  if (best <= 0 || !ldm_bf16_native())
    snprintf(info->reason, sizeof info->reason, "f32: no bf16 arithmetic on this CPU (f32 peak %.0f GFLOP/s per core)",
             p->f32);
  else if (p->f32 > 0 && best >= LDM_BF16_AUTO_RATIO * p->f32)
    r = LDM_PRECISION_BF16,
    snprintf(info->reason, sizeof info->reason, "bf16: %s peak %.0f GFLOP/s = %.1fx the f32 peak %.0f (>= %.1fx)",
             amx ? "AMX" : "VDPBF16PS", best, best / p->f32, p->f32, LDM_BF16_AUTO_RATIO);
  else
    snprintf(info->reason, sizeof info->reason,
             "f32: the best bf16 peak (%s, %.0f GFLOP/s) is %.2fx the f32 peak %.0f (bf16 from %.1fx on)",
             amx ? "AMX" : "VDPBF16PS", best, p->f32 > 0 ? best / p->f32 : 0.0, p->f32, LDM_BF16_AUTO_RATIO);
  return r;
}
