/* CLIP BPE tokenizer, as transformers' CLIPTokenizer (slow, with ftfy):
 * ftfy.fix_text (HTML entities, C1 controls, ligatures, character width,
 * curly quotes, line breaks, terminal escapes, control characters, NFC;
 * mojibake repair is not done), whitespace_clean, str.lower, the split
 * pattern <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|
 * [^\s\p{L}\p{N}]+, then byte-level BPE by merge rank. */
#include "text/tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "text/unicode_data.h"

/* Generated at build time from clip_merges.bin: 48894 pairs of
 * little-endian u16 ids (merge i joins them into id 512 + i). */
extern const unsigned char ldm_clip_merges[];
extern const unsigned long ldm_clip_merges_size;

#define CLIP_N_MERGES 48894
#define LDM_TOK_MAX_SPLIT 16

typedef struct merge_slot {
  uint64_t key;    /* (a << 32 | b) + 1; 0 = empty */
  int32_t rank;
  int32_t id;
} merge_slot;

struct ldm_tokenizer {
  int32_t byte_id[256];     /* id of byte b as a symbol */
  int32_t byte_id_w[256];   /* id of byte b + "</w>" */
  merge_slot *slots;
  size_t mask;              /* capacity - 1 */
  int32_t bos, eos, pad, n_vocab;
  /* transformers splits the text on its added/special tokens before the
   * clean-up (files only; e.g. SD2's pad "!" then always becomes id 0) */
  char *split[LDM_TOK_MAX_SPLIT];
  int32_t split_id[LDM_TOK_MAX_SPLIT];
  int n_split;
};

/* ---- small growable u32 buffer ------------------------------------------ */
typedef struct u32buf {
  uint32_t *p;
  size_t n, cap;
} u32buf;

static bool u32_reserve(u32buf *b, size_t extra) {
  if (b->n + extra <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->n + extra) {
    if (cap > ((size_t)1 << 40)) return false;
    cap *= 2;
  }
  uint32_t *p = realloc(b->p, cap * sizeof *p);
  if (!p) return false;
  b->p = p;
  b->cap = cap;
  return true;
}

static bool u32_push(u32buf *b, uint32_t c) {
  if (!u32_reserve(b, 1)) return false;
  b->p[b->n++] = c;
  return true;
}

static bool u32_append(u32buf *b, const uint32_t *s, size_t n) {
  if (!u32_reserve(b, n)) return false;
  if (n) memcpy(b->p + b->n, s, n * sizeof *s);
  b->n += n;
  return true;
}

/* ---- table lookups ------------------------------------------------------ */
static bool in_ranges(const ldm_u_range *r, int n, uint32_t c) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (c < r[mid].lo) hi = mid - 1;
    else if (c > r[mid].hi) lo = mid + 1;
    else return true;
  }
  return false;
}

static const ldm_u_map *find_map(const ldm_u_map *m, int n, uint32_t c) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (c < m[mid].cp) hi = mid - 1;
    else if (c > m[mid].cp) lo = mid + 1;
    else return &m[mid];
  }
  return NULL;
}

static uint32_t ccc_of(uint32_t c) {
  int lo = 0, hi = ldm_u_ccc_ranges_n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (c < ldm_u_ccc_ranges[mid].lo) hi = mid - 1;
    else if (c > ldm_u_ccc_ranges[mid].hi) lo = mid + 1;
    else return ldm_u_ccc_ranges[mid].ccc;
  }
  return 0;
}

static bool is_letter(uint32_t c) { return in_ranges(ldm_u_letter, ldm_u_letter_n, c); }
static bool is_number(uint32_t c) { return in_ranges(ldm_u_number, ldm_u_number_n, c); }
static bool is_space_re(uint32_t c) { return in_ranges(ldm_u_space_re, ldm_u_space_re_n, c); }
static bool is_space_py(uint32_t c) { return in_ranges(ldm_u_space_py, ldm_u_space_py_n, c); }

/* ---- UTF-8 --------------------------------------------------------------- */
/* Decodes UTF-8; each maximal invalid sequence becomes U+FFFD. */
static bool utf8_decode(const char *s, size_t len, u32buf *out) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    uint32_t c = p[i];
    int need = 0;
    uint32_t min = 0;
    if (c < 0x80) { need = 0; }
    else if (c >= 0xC2 && c <= 0xDF) { need = 1; c &= 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; c &= 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; c &= 0x07; min = 0x10000; }
    else { if (!u32_push(out, 0xFFFD)) return false; i++; continue; }
    size_t j = 1;
    for (; j <= (size_t)need; j++) {
      if (i + j >= len || (p[i + j] & 0xC0) != 0x80) break;
      c = (c << 6) | (p[i + j] & 0x3F);
    }
    if (j <= (size_t)need || c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      if (!u32_push(out, 0xFFFD)) return false;
      i += j > 1 ? j : 1;
      continue;
    }
    if (!u32_push(out, c)) return false;
    i += (size_t)need + 1;
  }
  return true;
}

static int utf8_encode(uint32_t c, unsigned char *o) {
  if (c < 0x80) { o[0] = (unsigned char)c; return 1; }
  if (c < 0x800) {
    o[0] = (unsigned char)(0xC0 | (c >> 6));
    o[1] = (unsigned char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (c >> 12));
    o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (c & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (c >> 18));
  o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (c & 0x3F));
  return 4;
}

/* ---- ftfy.fix_text subset -------------------------------------------------- */
static bool is_ascii_alnum(uint32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int entity_cmp(const void *key, const void *elem) {
  return strcmp((const char *)key, ((const ldm_u_entity *)elem)->name);
}

/* ftfy.fixes._unescape_fixup for a numeric reference "&#...;": the decoded
 * code points (0 or 1) or -1 to keep the text as it is. */
static int numeric_ref(const uint32_t *s, size_t n, uint32_t *outc) {
  /* s = "&#" body ";" */
  size_t i = 2, end = n - 1;
  bool hex = false;
  if (s[i] == 'x' || s[i] == 'X') { hex = true; i++; }
  if (i >= end) return -1;
  uint64_t v = 0;
  for (size_t k = i; k < end; k++) {
    uint32_t c = s[k];
    int d;
    if (c >= '0' && c <= '9') d = (int)(c - '0');
    else if (hex && c >= 'a' && c <= 'f') d = (int)(c - 'a' + 10);
    else if (hex && c >= 'A' && c <= 'F') d = (int)(c - 'A' + 10);
    else return -1;
    v = v * (hex ? 16 : 10) + (uint64_t)d;
    if (v > 0x7FFFFFFF) v = 0x7FFFFFFF; /* saturate: beyond U+10FFFF anyway */
  }
  for (int k = 0; k < ldm_u_invalid_charrefs_n; k++)
    if (ldm_u_invalid_charrefs[k].a == v) {
      *outc = ldm_u_invalid_charrefs[k].b;
      return *outc == ';' ? -1 : 1;
    }
  if ((v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) { *outc = 0xFFFD; return 1; }
  for (int k = 0; k < ldm_u_invalid_codepoints_n; k++)
    if (ldm_u_invalid_codepoints[k] == v) return 0;
  *outc = (uint32_t)v;
  return v == ';' ? -1 : 1;
}

/* ftfy.fixes.unescape_html: &#?[0-9A-Za-z]{1,24}; replaced when known. */
static bool unescape_html(const u32buf *in, u32buf *out) {
  out->n = 0;
  for (size_t i = 0; i < in->n;) {
    if (in->p[i] == '&') {
      size_t j = i + 1;
      if (j < in->n && in->p[j] == '#') j++;
      size_t k = j;
      while (k < in->n && k - j < 25 && is_ascii_alnum(in->p[k])) k++;
      if (k > j && k - j <= 24 && k < in->n && in->p[k] == ';') {
        size_t n = k + 1 - i;
        const uint32_t *s = in->p + i;
        if (s[1] == '#') {
          uint32_t c;
          int r = numeric_ref(s, n, &c);
          if (r >= 0) {
            if (r == 1 && !u32_push(out, c)) return false;
            i += n;
            continue;
          }
        } else {
          char name[32];
          for (size_t q = 0; q < n; q++) name[q] = (char)s[q];
          name[n] = 0;
          const ldm_u_entity *e = bsearch(name, ldm_u_entities, (size_t)ldm_u_entities_n,
                                          sizeof *ldm_u_entities, entity_cmp);
          if (e) {
            if (!u32_append(out, ldm_u_entities_pool + e->start, e->len)) return false;
            i += n;
            continue;
          }
        }
        if (!u32_append(out, s, n)) return false;
        i += n;
        continue;
      }
    }
    if (!u32_push(out, in->p[i])) return false;
    i++;
  }
  return true;
}

/* fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes,
 * fix_line_breaks (per character, composed in the generator), then
 * remove_terminal_escapes, then remove_control_chars. */
static bool char_fixes(const u32buf *in, u32buf *tmp, u32buf *out) {
  tmp->n = 0;
  for (size_t i = 0; i < in->n; i++) {
    uint32_t c = in->p[i];
    if (c == '\r' && i + 1 < in->n && in->p[i + 1] == '\n') continue; /* \r\n -> \n */
    const ldm_u_map *m = find_map(ldm_u_ftfy_premap, ldm_u_ftfy_premap_n, c);
    if (m) {
      if (!u32_append(tmp, ldm_u_ftfy_premap_pool + m->start, m->len)) return false;
    } else if (!u32_push(tmp, c)) {
      return false;
    }
  }
  out->n = 0;
  for (size_t i = 0; i < tmp->n; i++) {
    uint32_t c = tmp->p[i];
    if (c == 0x1B && i + 1 < tmp->n && tmp->p[i + 1] == '[') {
      size_t k = i + 2;
      while (k < tmp->n && ((tmp->p[k] >= '0' && tmp->p[k] <= '9') || tmp->p[k] == ';')) k++;
      if (k < tmp->n && tmp->p[k] < 128 && ((tmp->p[k] | 0x20) >= 'a' && (tmp->p[k] | 0x20) <= 'z')) {
        i = k;
        continue;
      }
    }
    if (in_ranges(ldm_u_ftfy_control, ldm_u_ftfy_control_n, c)) continue;
    if (!u32_push(out, c)) return false;
  }
  return true;
}

/* ---- NFC (unicodedata.normalize("NFC")) ----------------------------------- */
enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7,
       LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT,
       SCOUNT = LCOUNT * NCOUNT };

static bool decompose(uint32_t c, u32buf *out, int depth) {
  if (c >= SBASE && c < SBASE + SCOUNT) {
    uint32_t s = c - SBASE;
    if (!u32_push(out, LBASE + s / NCOUNT)) return false;
    if (!u32_push(out, VBASE + (s % NCOUNT) / TCOUNT)) return false;
    if (s % TCOUNT && !u32_push(out, TBASE + s % TCOUNT)) return false;
    return true;
  }
  const ldm_u_map *m = depth < 8 ? find_map(ldm_u_decomp, ldm_u_decomp_n, c) : NULL;
  if (!m) return u32_push(out, c);
  for (uint32_t k = 0; k < m->len; k++)
    if (!decompose(ldm_u_decomp_pool[m->start + k], out, depth + 1)) return false;
  return true;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
    return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
  if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
      b < TBASE + TCOUNT)
    return a + (b - TBASE);
  int lo = 0, hi = ldm_u_compose_n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    const ldm_u_comp *e = &ldm_u_compose[mid];
    if (a < e->a || (a == e->a && b < e->b)) hi = mid - 1;
    else if (a > e->a || b > e->b) lo = mid + 1;
    else return e->c;
  }
  return 0;
}

static bool nfc(const u32buf *in, u32buf *out) {
  out->n = 0;
  for (size_t i = 0; i < in->n; i++)
    if (!decompose(in->p[i], out, 0)) return false;
  /* canonical ordering: stable sort of each run of non-starters by ccc */
  for (size_t i = 1; i < out->n; i++) {
    uint32_t c = out->p[i], cc = ccc_of(c);
    if (!cc) continue;
    size_t j = i;
    while (j > 0 && ccc_of(out->p[j - 1]) > cc) {
      out->p[j] = out->p[j - 1];
      j--;
    }
    out->p[j] = c;
  }
  if (out->n == 0) return true;
  /* canonical composition (UAX #15) */
  size_t starter = 0, w = 1;
  uint32_t last = ccc_of(out->p[0]);
  if (last) last = 256;
  for (size_t i = 1; i < out->n; i++) {
    uint32_t c = out->p[i], cc = ccc_of(c);
    uint32_t comp = compose_pair(out->p[starter], c);
    if (comp && (last < cc || last == 0)) {
      out->p[starter] = comp;
      continue;
    }
    if (cc == 0) starter = w;
    last = cc;
    out->p[w++] = c;
  }
  out->n = w;
  return true;
}

/* ---- lower-casing (str.lower, with the final-sigma rule) ------------------ */
static bool cased(uint32_t c) { return in_ranges(ldm_u_cased, ldm_u_cased_n, c); }
static bool case_ignorable(uint32_t c) {
  return in_ranges(ldm_u_case_ignorable, ldm_u_case_ignorable_n, c);
}

static bool final_sigma(const uint32_t *s, size_t n, size_t i) {
  size_t j = i;
  bool before = false;
  while (j > 0) {
    uint32_t c = s[--j];
    if (case_ignorable(c)) continue;
    before = cased(c);
    break;
  }
  if (!before) return false;
  for (j = i + 1; j < n; j++) {
    if (case_ignorable(s[j])) continue;
    return !cased(s[j]);
  }
  return true;
}

static bool lower(const u32buf *in, u32buf *out) {
  out->n = 0;
  for (size_t i = 0; i < in->n; i++) {
    uint32_t c = in->p[i];
    if (c < 128) {
      if (!u32_push(out, (c >= 'A' && c <= 'Z') ? c + 32 : c)) return false;
      continue;
    }
    if (c == 0x3A3) {
      if (!u32_push(out, final_sigma(in->p, in->n, i) ? 0x3C2 : 0x3C3)) return false;
      continue;
    }
    const ldm_u_map *m = find_map(ldm_u_lower, ldm_u_lower_n, c);
    if (m) {
      if (!u32_append(out, ldm_u_lower_pool + m->start, m->len)) return false;
    } else if (!u32_push(out, c)) {
      return false;
    }
  }
  return true;
}

static bool same(const u32buf *a, const u32buf *b) {
  return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n * sizeof *a->p) == 0);
}

/* ftfy.fix_text (segments end at '\n'; "<" in a segment turns HTML
 * unescaping off from there on), whitespace_clean, lower(). */
static ldm_status clean(const char *text, size_t len, u32buf *res, ldm_error *err) {
  u32buf in = {0}, seg = {0}, a = {0}, b = {0}, t = {0}, out = {0};
  ldm_status st = LDM_ERR_NOMEM;
  if (!utf8_decode(text, len, &in)) goto done;
  bool html = true;
  for (size_t pos = 0; pos < in.n;) {
    size_t end = pos;
    while (end < in.n && in.p[end] != '\n') end++;
    if (end < in.n) end++;
    seg.n = 0;
    if (!u32_append(&seg, in.p + pos, end - pos)) goto done;
    for (size_t i = 0; i < seg.n && html; i++)
      if (seg.p[i] == '<') html = false;
    for (int iter = 0; iter < 32; iter++) {
      if (html) {
        if (!unescape_html(&seg, &a)) goto done;
      } else {
        a.n = 0;
        if (!u32_append(&a, seg.p, seg.n)) goto done;
      }
      if (!char_fixes(&a, &t, &b)) goto done;
      if (!nfc(&b, &a)) goto done;
      if (same(&a, &seg)) break;
      u32buf swap = seg;
      seg = a;
      a = swap;
    }
    if (!u32_append(&out, seg.p, seg.n)) goto done;
    pos = end;
  }
  /* whitespace_clean: regex \s+ -> " ", then str.strip() */
  a.n = 0;
  for (size_t i = 0; i < out.n;) {
    if (is_space_re(out.p[i])) {
      while (i < out.n && is_space_re(out.p[i])) i++;
      if (!u32_push(&a, ' ')) goto done;
    } else {
      if (!u32_push(&a, out.p[i])) goto done;
      i++;
    }
  }
  size_t s0 = 0, s1 = a.n;
  while (s0 < s1 && is_space_py(a.p[s0])) s0++;
  while (s1 > s0 && is_space_py(a.p[s1 - 1])) s1--;
  b.n = 0;
  if (s1 > s0 && !u32_append(&b, a.p + s0, s1 - s0)) goto done; /* a.p is NULL for an empty text */
  if (!lower(&b, res)) goto done;
  st = LDM_OK;
done:
  free(in.p); free(seg.p); free(a.p); free(b.p); free(t.p); free(out.p);
  if (st != LDM_OK) return ldm_fail(err, st, "tokenizer: out of memory");
  return LDM_OK;
}

ldm_status ldm_text_clean(const char *text, size_t len, char **out, ldm_error *err) {
  u32buf r = {0};
  *out = NULL;
  LDM_TRY(clean(text, len, &r, err));
  char *s = malloc(r.n * 4 + 1);
  if (!s) {
    free(r.p);
    return ldm_fail(err, LDM_ERR_NOMEM, "tokenizer: out of memory");
  }
  size_t k = 0;
  for (size_t i = 0; i < r.n; i++) k += (size_t)utf8_encode(r.p[i], (unsigned char *)s + k);
  s[k] = 0;
  free(r.p);
  *out = s;
  return LDM_OK;
}

/* ---- merges ------------------------------------------------------------- */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static ldm_status merges_alloc(ldm_tokenizer *t, size_t n, ldm_error *err) {
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  t->slots = calloc(cap, sizeof *t->slots);
  if (!t->slots) return ldm_fail(err, LDM_ERR_NOMEM, "tokenizer: out of memory");
  t->mask = cap - 1;
  return LDM_OK;
}

/* The first occurrence of a pair keeps its rank (as dict(zip(merges, range))
 * would keep the last; merges files have no duplicate pairs). */
static void merges_put(ldm_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
  uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  size_t i = (size_t)mix64(key) & t->mask;
  while (t->slots[i].key && t->slots[i].key != key) i = (i + 1) & t->mask;
  t->slots[i].key = key;
  t->slots[i].rank = rank;
  t->slots[i].id = id;
}

static const merge_slot *merges_get(const ldm_tokenizer *t, int32_t a, int32_t b) {
  uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  size_t i = (size_t)mix64(key) & t->mask;
  while (t->slots[i].key) {
    if (t->slots[i].key == key) return &t->slots[i];
    i = (i + 1) & t->mask;
  }
  return NULL;
}

/* bytes_to_unicode(): printable bytes map to themselves, the rest to
 * 256 + n in order; the symbol id of byte b is its position in that list. */
static void byte_order(int32_t pos[256], uint32_t ch[256]) {
  int k = 0, extra = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    if (printable) { pos[b] = k++; ch[b] = (uint32_t)b; }
  }
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    if (!printable) { pos[b] = k++; ch[b] = (uint32_t)(256 + extra++); }
  }
}

ldm_status ldm_tokenizer_new_embedded(ldm_tokenizer **out, int pad_id, ldm_error *err) {
  *out = NULL;
  if (ldm_clip_merges_size != (unsigned long)CLIP_N_MERGES * 4)
    return ldm_fail(err, LDM_ERR_INTERNAL, "tokenizer: embedded merges have %lu bytes, expected %d",
                    ldm_clip_merges_size, CLIP_N_MERGES * 4);
  ldm_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return ldm_fail(err, LDM_ERR_NOMEM, "tokenizer: out of memory");
  uint32_t ch[256];
  byte_order(t->byte_id, ch);
  for (int b = 0; b < 256; b++) t->byte_id_w[b] = t->byte_id[b] + 256;
  ldm_status st = merges_alloc(t, CLIP_N_MERGES, err);
  if (st != LDM_OK) {
    free(t);
    return st;
  }
  const unsigned char *p = ldm_clip_merges;
  for (int i = 0; i < CLIP_N_MERGES; i++, p += 4) {
    int32_t a = p[0] | (p[1] << 8), b = p[2] | (p[3] << 8);
    merges_put(t, a, b, i, 512 + i);
  }
  t->n_vocab = 512 + CLIP_N_MERGES + 2;
  t->bos = t->n_vocab - 2;
  t->eos = t->n_vocab - 1;
  t->pad = pad_id < 0 ? t->eos : pad_id;
  *out = t;
  return LDM_OK;
}

static int32_t vocab_id(json_t *vocab, const char *s) {
  json_t *v = json_object_get(vocab, s);
  return json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 65536 + 1 > cap) {
      cap = cap ? cap * 2 : 1 << 20;
      char *nb = realloc(buf, cap);
      if (!nb) { free(buf); fclose(f); return NULL; }
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) { free(buf); return NULL; }
  buf[n] = 0;
  *len = n;
  return buf;
}

static const char *token_content(json_t *v) {
  if (json_is_object(v)) v = json_object_get(v, "content");
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static void add_split(ldm_tokenizer *t, const char *content, int32_t id) {
  if (!content || !*content || id < 0) return;
  for (int i = 0; i < t->n_split; i++)
    if (!strcmp(t->split[i], content)) return;
  if (t->n_split == LDM_TOK_MAX_SPLIT) return;
  char *c = strdup(content);
  if (!c) return;
  t->split[t->n_split] = c;
  t->split_id[t->n_split++] = id;
}

/* special_tokens_map.json / tokenizer_config.json: pad_token (a string or
 * {"content": ...}) and every special/added token transformers would split
 * the text on. */
static void read_special(ldm_tokenizer *t, json_t *vocab, const char *path) {
  if (!path) return;
  json_t *j = json_load_file(path, 0, NULL);
  if (!json_is_object(j)) {
    json_decref(j);
    return;
  }
  static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
  for (int k = 0; k < 4; k++) {
    const char *c = token_content(json_object_get(j, keys[k]));
    if (!c) continue;
    add_split(t, c, vocab_id(vocab, c));
    if (k == 3 && vocab_id(vocab, c) >= 0) t->pad = vocab_id(vocab, c);
  }
  json_t *added = json_object_get(j, "added_tokens_decoder");
  const char *key;
  json_t *val;
  if (json_is_object(added))
    json_object_foreach(added, key, val) add_split(t, token_content(val), (int32_t)atol(key));
  json_decref(j);
}

ldm_status ldm_tokenizer_new_files(ldm_tokenizer **out, const char *vocab_json,
                                   const char *merges_txt, const char *special_map,
                                   const char *tok_config, ldm_error *err) {
  *out = NULL;
  json_error_t jerr;
  json_t *vocab = json_load_file(vocab_json, 0, &jerr);
  if (!vocab || !json_is_object(vocab)) {
    json_decref(vocab);
    return ldm_fail(err, LDM_ERR_FORMAT, "%s: not a JSON object (line %d: %s)", vocab_json,
                    jerr.line, jerr.text);
  }
  ldm_status st = LDM_OK;
  size_t len = 0;
  char *text = read_all(merges_txt, &len);
  ldm_tokenizer *t = calloc(1, sizeof *t);
  if (!text || !t) {
    st = text ? ldm_fail(err, LDM_ERR_NOMEM, "tokenizer: out of memory")
              : ldm_fail(err, LDM_ERR_IO, "%s: cannot read", merges_txt);
    goto done;
  }
  int32_t pos[256];
  uint32_t ch[256];
  byte_order(pos, ch);
  for (int b = 0; b < 256; b++) {
    unsigned char u[8];
    int k = utf8_encode(ch[b], u);
    char s[16];
    memcpy(s, u, (size_t)k);
    s[k] = 0;
    t->byte_id[b] = vocab_id(vocab, s);
    memcpy(s + k, "</w>", 5);
    t->byte_id_w[b] = vocab_id(vocab, s);
    if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0) {
      st = ldm_fail(err, LDM_ERR_FORMAT, "%s: byte symbol '%s' missing", vocab_json, s);
      goto done;
    }
  }
  t->n_vocab = (int32_t)json_object_size(vocab);
  { /* ids are 0..n-1, as the text encoder's embedding rows */
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
      if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= t->n_vocab) {
        char *dump = json_dumps(val, JSON_ENCODE_ANY);
        st = ldm_fail(err, LDM_ERR_FORMAT, "%s: token '%.64s' has id %.32s, expected an integer in 0..%d (the file "
                      "has %d tokens)", vocab_json, key, dump ? dump : "?", t->n_vocab - 1, t->n_vocab);
        free(dump);
        goto done;
      }
    }
  }
  t->bos = vocab_id(vocab, "<|startoftext|>");
  t->eos = vocab_id(vocab, "<|endoftext|>");
  if (t->bos < 0 || t->eos < 0) {
    st = ldm_fail(err, LDM_ERR_FORMAT, "%s: no <|startoftext|> / <|endoftext|>", vocab_json);
    goto done;
  }
  t->pad = -1;
  read_special(t, vocab, special_map);
  read_special(t, vocab, tok_config);
  if (t->pad < 0) t->pad = t->eos;
  /* as CLIPTokenizer: read().strip().split("\n")[1:48895] */
  char *s = text, *e = text + len;
  while (s < e && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t')) e--;
  *e = 0;
  char *nl = strchr(s, '\n');
  s = nl ? nl + 1 : e;
  if ((st = merges_alloc(t, CLIP_N_MERGES, err)) != LDM_OK) goto done;
  int line = 2;
  for (int rank = 0; rank < CLIP_N_MERGES && s < e; rank++, line++) {
    nl = strchr(s, '\n');
    if (nl) *nl = 0;
    char *sp = strchr(s, ' ');
    char joined[512];
    size_t l1 = sp ? (size_t)(sp - s) : 0, l2 = sp ? strlen(sp + 1) : 0;
    if (!sp || l1 + l2 + 1 > sizeof joined) {
      st = ldm_fail(err, LDM_ERR_FORMAT, "%s: line %d is not 'a b'", merges_txt, line);
      goto done;
    }
    memcpy(joined, s, l1);
    memcpy(joined + l1, sp + 1, l2 + 1);
    *sp = 0;
    int32_t a = vocab_id(vocab, s), b = vocab_id(vocab, sp + 1), c = vocab_id(vocab, joined);
    if (a < 0 || b < 0 || c < 0) {
      st = ldm_fail(err, LDM_ERR_FORMAT, "%s: line %d: '%s' not in %s", merges_txt, line,
                    a < 0 ? s : b < 0 ? sp + 1 : joined, vocab_json);
      goto done;
    }
    if (!merges_get(t, a, b)) merges_put(t, a, b, rank, c);
    s = nl ? nl + 1 : e;
  }
done:
  free(text);
  json_decref(vocab);
  if (st != LDM_OK) {
    ldm_tokenizer_free(t);
    return st;
  }
  *out = t;
  return LDM_OK;
}

ldm_status ldm_tokenizer_from_source(ldm_tokenizer **out, const ldm_source *src,
                                     const char *part, int default_pad, ldm_error *err) {
  char rel[64], vocab[4096], merges[4096], special[4096], config[4096];
  if (src && ldm_source_is_folder(src)) {
    snprintf(rel, sizeof rel, "%s/vocab.json", part);
    const char *v = ldm_source_file(src, rel, vocab, sizeof vocab);
    snprintf(rel, sizeof rel, "%s/merges.txt", part);
    const char *m = ldm_source_file(src, rel, merges, sizeof merges);
    if (v && m) {
      snprintf(rel, sizeof rel, "%s/special_tokens_map.json", part);
      const char *sp = ldm_source_file(src, rel, special, sizeof special);
      snprintf(rel, sizeof rel, "%s/tokenizer_config.json", part);
      const char *tc = ldm_source_file(src, rel, config, sizeof config);
      return ldm_tokenizer_new_files(out, v, m, sp, tc, err);
    }
  }
  return ldm_tokenizer_new_embedded(out, default_pad, err);
}

void ldm_tokenizer_free(ldm_tokenizer *t) {
  if (!t) return;
  for (int i = 0; i < t->n_split; i++) free(t->split[i]);
  free(t->slots);
  free(t);
}

int32_t ldm_tokenizer_bos(const ldm_tokenizer *t) { return t->bos; }
int32_t ldm_tokenizer_eos(const ldm_tokenizer *t) { return t->eos; }
int32_t ldm_tokenizer_pad(const ldm_tokenizer *t) { return t->pad; }
int32_t ldm_tokenizer_vocab_size(const ldm_tokenizer *t) { return t->n_vocab; }

/* ---- split + BPE ----------------------------------------------------------- */
static bool push_id(int32_t **ids, int64_t *n, int64_t *cap, int32_t id) {
  if (*n >= *cap) {
    int64_t nc = *cap ? *cap * 2 : 128;
    int32_t *p = realloc(*ids, (size_t)nc * sizeof *p);
    if (!p) return false;
    *ids = p;
    *cap = nc;
  }
  (*ids)[(*n)++] = id;
  return true;
}

/* bpe(): merge the lowest-ranked adjacent pair (all its non-overlapping
 * occurrences, left to right) until none is in the merges. */
static bool bpe_word(const ldm_tokenizer *t, const uint32_t *cps, size_t ncp, int32_t **ids,
                     int64_t *n, int64_t *cap) {
  unsigned char bytes[4 * 64];
  int32_t local[4 * 64];
  int32_t *w = local;
  size_t nb = 0, wcap = sizeof local / sizeof *local;
  for (size_t i = 0; i < ncp; i++) {
    if (nb + 4 > wcap) {
      size_t ncap = wcap * 2;
      int32_t *nw = w == local ? malloc(ncap * sizeof *nw) : realloc(w, ncap * sizeof *nw);
      if (!nw) { if (w != local) free(w); return false; }
      if (w == local) memcpy(nw, local, nb * sizeof *nw);
      w = nw;
      wcap = ncap;
    }
    int k = utf8_encode(cps[i], bytes);
    for (int q = 0; q < k; q++) w[nb++] = t->byte_id[bytes[q]];
  }
  if (nb == 0) {
    if (w != local) free(w);
    return true;
  }
  /* the last symbol carries the end-of-word marker */
  for (int b = 0; b < 256; b++)
    if (t->byte_id[b] == w[nb - 1]) { w[nb - 1] = t->byte_id_w[b]; break; }
  size_t len = nb;
  while (len > 1) {
    int32_t best = INT32_MAX, ba = 0, bb = 0, bid = 0;
    for (size_t i = 0; i + 1 < len; i++) {
      const merge_slot *m = merges_get(t, w[i], w[i + 1]);
      if (m && m->rank < best) { best = m->rank; ba = w[i]; bb = w[i + 1]; bid = m->id; }
    }
    if (best == INT32_MAX) break;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
      if (i + 1 < len && w[i] == ba && w[i + 1] == bb) { w[o++] = bid; i += 2; }
      else w[o++] = w[i++];
    }
    len = o;
  }
  bool ok = true;
  for (size_t i = 0; i < len && ok; i++) ok = push_id(ids, n, cap, w[i]);
  if (w != local) free(w);
  return ok;
}

static bool match_lit(const uint32_t *s, size_t n, const char *lit) {
  size_t k = strlen(lit);
  if (k > n) return false;
  for (size_t i = 0; i < k; i++)
    if (s[i] != (unsigned char)lit[i]) return false;
  return true;
}

static ldm_status tokenize_segment(const ldm_tokenizer *t, const char *text, size_t len,
                                   int32_t **ids, int64_t *n, int64_t *cap, ldm_error *err) {
  u32buf s = {0};
  LDM_TRY(clean(text, len, &s, err));
  static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  bool ok = true;
  for (size_t i = 0; i < s.n && ok;) {
    const uint32_t *p = s.p + i;
    size_t rest = s.n - i, m = 0;
    if (match_lit(p, rest, "<|startoftext|>")) {
      ok = push_id(ids, n, cap, t->bos);
      i += 15;
      continue;
    }
    if (match_lit(p, rest, "<|endoftext|>")) {
      ok = push_id(ids, n, cap, t->eos);
      i += 13;
      continue;
    }
    for (size_t c = 0; c < sizeof contractions / sizeof *contractions && !m; c++)
      if (match_lit(p, rest, contractions[c])) m = strlen(contractions[c]);
    if (!m && is_letter(p[0])) {
      while (m < rest && is_letter(p[m])) m++;
    } else if (!m && is_number(p[0])) {
      m = 1;
    } else if (!m && !is_space_re(p[0])) {
      while (m < rest && !is_space_re(p[m]) && !is_letter(p[m]) && !is_number(p[m])) m++;
    }
    if (!m) { i++; continue; }
    ok = bpe_word(t, p, m, ids, n, cap);
    i += m;
  }
  free(s.p);
  if (!ok) return ldm_fail(err, LDM_ERR_NOMEM, "tokenizer: out of memory");
  return LDM_OK;
}

/* Splits on the added tokens (leftmost, longest first) as transformers'
 * Trie.split does, and tokenizes the pieces in between on their own. */
ldm_status ldm_tokenizer_tokenize(const ldm_tokenizer *t, const char *text, size_t len,
                                  int32_t **ids, int64_t *n, int64_t *cap, ldm_error *err) {
  size_t seg = 0;
  for (size_t i = 0; i < len && t->n_split;) {
    int best = -1;
    size_t best_len = 0;
    for (int k = 0; k < t->n_split; k++) {
      size_t l = strlen(t->split[k]);
      if (l > best_len && l <= len - i && memcmp(text + i, t->split[k], l) == 0) {
        best = k;
        best_len = l;
      }
    }
    if (best < 0) {
      i++;
      continue;
    }
    LDM_TRY(tokenize_segment(t, text + seg, i - seg, ids, n, cap, err));
    if (!push_id(ids, n, cap, t->split_id[best]))
      return ldm_fail(err, LDM_ERR_NOMEM, "tokenizer: out of memory");
    i += best_len;
    seg = i;
  }
  return tokenize_segment(t, text + seg, len - seg, ids, n, cap, err);
}

/* ---- public API (ldm.h) ------------------------------------------------- */
ldm_status ldm_tokenizer_load(ldm_tokenizer **out, const char *model_path, ldm_error *err) {
  *out = NULL;
  if (!model_path) return ldm_tokenizer_new_embedded(out, -1, err);
  ldm_source *src = NULL;
  LDM_TRY(ldm_source_open(&src, model_path, err));
  /* OpenCLIP (SD2) pads with id 0, as open_clip: a single file with its
   * keys, or a folder whose text encoder uses exact GELU */
  int pad = -1;
  if (ldm_source_find(src, NULL, "cond_stage_model.model.token_embedding.weight")) pad = 0;
  const char *cfg = ldm_source_is_folder(src) ? ldm_source_config(src, "text_encoder") : NULL;
  json_t *j = cfg ? json_loads(cfg, 0, NULL) : NULL;
  json_t *act = j ? json_object_get(j, "hidden_act") : NULL;
  if (json_is_string(act) && strcmp(json_string_value(act), "gelu") == 0) pad = 0;
  json_decref(j);
  ldm_status st = ldm_tokenizer_from_source(out, src, "tokenizer", pad, err);
  ldm_source_close(src);
  return st;
}

ldm_status ldm_tokenizer_encode(const ldm_tokenizer *tok, const char *text, int32_t *ids,
                                int n_ctx, int pad_id, ldm_error *err) {
  if (!tok || !ids || n_ctx < 2)
    return ldm_fail(err, LDM_ERR_INVALID_ARG, "tokenizer: n_ctx %d (need >= 2 and a tokenizer)",
                    n_ctx);
  int32_t *raw = NULL;
  int64_t n = 0, cap = 0;
  LDM_TRY(ldm_tokenizer_tokenize(tok, text ? text : "", text ? strlen(text) : 0, &raw, &n, &cap,
                                 err));
  int64_t keep = n < n_ctx - 2 ? n : n_ctx - 2;
  ids[0] = tok->bos;
  for (int64_t i = 0; i < keep; i++) ids[1 + i] = raw[i];
  ids[1 + keep] = tok->eos;
  int32_t pad = pad_id < 0 ? tok->pad : pad_id;
  for (int64_t i = keep + 2; i < n_ctx; i++) ids[i] = pad;
  free(raw);
  return LDM_OK;
}
