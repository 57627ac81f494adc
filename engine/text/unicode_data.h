/* Unicode tables for the CLIP text clean-up (generated into unicode_data.c
 * by gen_unicode_data.py from the reference libraries: the `regex` module's
 * \p{L}, \p{N}, \s; Python's str.lower/isspace and unicodedata (NFC); ftfy's
 * character fixes and HTML entity table). */
#ifndef LDM_TEXT_UNICODE_DATA_H
#define LDM_TEXT_UNICODE_DATA_H

#include <stdint.h>

typedef struct { uint32_t lo, hi; } ldm_u_range;
typedef struct { uint32_t cp, start, len; } ldm_u_map;   /* cp -> pool[start..+len) */
typedef struct { uint32_t lo, hi, ccc; } ldm_u_ccc;
typedef struct { uint32_t a, b, c; } ldm_u_comp;         /* a + b -> c (NFC) */
typedef struct { const char *name; uint32_t start, len; } ldm_u_entity;
typedef struct { uint32_t a, b; } ldm_u_pair;

#define LDM_U_TABLE(t, name) extern const t name[]; extern const int name##_n;
LDM_U_TABLE(ldm_u_range, ldm_u_letter)
LDM_U_TABLE(ldm_u_range, ldm_u_number)
LDM_U_TABLE(ldm_u_range, ldm_u_space_re)
LDM_U_TABLE(ldm_u_range, ldm_u_space_py)
LDM_U_TABLE(ldm_u_range, ldm_u_cased)
LDM_U_TABLE(ldm_u_range, ldm_u_case_ignorable)
LDM_U_TABLE(ldm_u_range, ldm_u_ftfy_control)
LDM_U_TABLE(ldm_u_map, ldm_u_lower)
LDM_U_TABLE(ldm_u_map, ldm_u_ftfy_premap)
LDM_U_TABLE(ldm_u_map, ldm_u_decomp)
LDM_U_TABLE(ldm_u_ccc, ldm_u_ccc_ranges)
LDM_U_TABLE(ldm_u_comp, ldm_u_compose)
LDM_U_TABLE(ldm_u_entity, ldm_u_entities)
LDM_U_TABLE(ldm_u_pair, ldm_u_invalid_charrefs)
#undef LDM_U_TABLE
extern const uint32_t ldm_u_lower_pool[], ldm_u_ftfy_premap_pool[],
    ldm_u_decomp_pool[], ldm_u_entities_pool[], ldm_u_invalid_codepoints[];
extern const int ldm_u_invalid_codepoints_n;

#endif
