/* CPU feature checks through CPUID (portable across gcc and clang, which do
 * not agree on the feature names __builtin_cpu_supports accepts), including
 * the OS's consent to save AVX state. */
#ifndef LDM_CORE_CPU_H
#define LDM_CORE_CPU_H

#include <stdbool.h>

bool ldm_cpu_has_avx2(void);      /* AVX2 with OS support */
bool ldm_cpu_has_f16c(void);      /* F16C with OS AVX support */
bool ldm_cpu_has_fma(void);
bool ldm_cpu_has_avx512bf16(void); /* AVX512F + AVX512_BF16, OS saves ZMM state */
bool ldm_cpu_has_avx512(void);     /* AVX512 F CD BW DQ VL, OS saves ZMM state */
bool ldm_cpu_is_amd(void);
/* AMX-TILE + AMX-BF16 usable: CPU, OS tile state and (Linux) the process's
 * tile-data permission, requested on the first call. Threads using the
 * tiles load a tile configuration first and release it after. */
bool ldm_cpu_has_amx_bf16(void);
/* "" when AMX is usable, else why not (for notes). */
const char *ldm_cpu_amx_note(void);

#endif
