/* AUTOMATIC1111's parse_prompt_attention: the prompt is scanned with the
 * alternatives of its re_attention pattern, in order,
 *   \( \) \[ \] \\ \ ( [ :<ws><number><ws>) ) ] <run of other text> :
 * brackets record where they opened and multiply the weights of everything
 * after that on closing; text runs are split on BREAK. */
#include "text/prompt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

typedef struct plist {
  ldm_prompt_piece *p;
  int n, cap;
  bool oom;
} plist;

static void push(plist *l, const char *s, size_t len, double w) {
  if (l->oom) return;
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 16;
    ldm_prompt_piece *np = realloc(l->p, (size_t)cap * sizeof *np);
    if (!np) { l->oom = true; return; }
    l->p = np;
    l->cap = cap;
  }
  char *t = malloc(len + 1);
  if (!t) { l->oom = true; return; }
  memcpy(t, s, len);
  t[len] = 0;
  l->p[l->n].text = t;
  l->p[l->n].weight = w;
  l->n++;
}

typedef struct istack {
  int *v;
  int n, cap;
} istack;

static bool ipush(istack *s, int x) {
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 16;
    int *nv = realloc(s->v, (size_t)cap * sizeof *nv);
    if (!nv) return false;
    s->v = nv;
    s->cap = cap;
  }
  s->v[s->n++] = x;
  return true;
}

static void multiply_range(plist *l, int start, double m) {
  for (int i = start; i < l->n; i++) l->p[i].weight *= m;
}

static bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static bool is_word(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '_' || c >= 0x80;
}

/* :\s*([+-]?[.\d]+)\s*\) at s; on a match returns its length and the value
 * (only when Python's float() would accept the number). */
static size_t match_weight(const char *s, double *w) {
  if (*s != ':') return 0;
  size_t i = 1;
  while (is_ws(s[i])) i++;
  size_t n0 = i;
  if (s[i] == '+' || s[i] == '-') i++;
  size_t d0 = i;
  int digits = 0, dots = 0;
  while ((s[i] >= '0' && s[i] <= '9') || s[i] == '.') {
    if (s[i] == '.') dots++; else digits++;
    i++;
  }
  if (i == d0) return 0;
  size_t n1 = i;
  while (is_ws(s[i])) i++;
  if (s[i] != ')') return 0;
  if (digits == 0 || dots > 1) return 0; /* float() would raise: literal text */
  char num[64];
  size_t len = n1 - n0 < sizeof num - 1 ? n1 - n0 : sizeof num - 1;
  memcpy(num, s + n0, len);
  num[len] = 0;
  *w = strtod(num, NULL);
  return i + 1;
}

/* A text run split on \s*\bBREAK\b\s*, each part appended with weight 1. */
static void add_text(plist *l, const char *s, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i + 5 <= len; i++) {
    if (memcmp(s + i, "BREAK", 5) != 0) continue;
    if (i > 0 && is_word((unsigned char)s[i - 1])) continue;
    if (i + 5 < len && is_word((unsigned char)s[i + 5])) continue;
    size_t a = i, b = i + 5;
    while (a > start && is_ws(s[a - 1])) a--;
    while (b < len && is_ws(s[b])) b++;
    push(l, s + start, a - start, 1.0);
    push(l, "BREAK", 5, -1.0);
    start = b;
    i = b - 1;
  }
  push(l, s + start, len - start, 1.0);
}

ldm_status ldm_prompt_parse(const char *text, ldm_prompt_piece **out, int *n, ldm_error *err) {
  plist l = {0};
  istack round = {0}, square = {0};
  bool ok = true;
  const double round_mul = 1.1, square_mul = 1 / 1.1;
  const char *s = text ? text : "";
  size_t len = strlen(s);
  for (size_t i = 0; i < len && ok && !l.oom;) {
    char c = s[i];
    double w;
    size_t m;
    if (c == '\\') {
      char e = i + 1 < len ? s[i + 1] : 0;
      if (e == '(' || e == ')' || e == '[' || e == ']' || e == '\\') {
        push(&l, s + i + 1, 1, 1.0);
        i += 2;
      } else {
        push(&l, "", 0, 1.0); /* a lone backslash: text[1:] is empty */
        i += 1;
      }
    } else if (c == '(') {
      ok = ipush(&round, l.n);
      i++;
    } else if (c == '[') {
      ok = ipush(&square, l.n);
      i++;
    } else if ((m = match_weight(s + i, &w)) != 0) {
      if (round.n) multiply_range(&l, round.v[--round.n], w);
      else add_text(&l, s + i, m);
      i += m;
    } else if (c == ')') {
      if (round.n) multiply_range(&l, round.v[--round.n], round_mul);
      else add_text(&l, s + i, 1);
      i++;
    } else if (c == ']') {
      if (square.n) multiply_range(&l, square.v[--square.n], square_mul);
      else add_text(&l, s + i, 1);
      i++;
    } else if (c == ':') {
      add_text(&l, s + i, 1);
      i++;
    } else {
      size_t j = i;
      while (j < len && !strchr("\\()[]:", s[j])) j++;
      add_text(&l, s + i, j - i);
      i = j;
    }
  }
  for (int k = 0; k < round.n; k++) multiply_range(&l, round.v[k], round_mul);
  for (int k = 0; k < square.n; k++) multiply_range(&l, square.v[k], square_mul);
  free(round.v);
  free(square.v);
  if (ok && !l.oom && l.n == 0) push(&l, "", 0, 1.0);
  /* merge runs of identical weights */
  for (int i = 0; ok && !l.oom && i + 1 < l.n;) {
    if (l.p[i].weight == l.p[i + 1].weight) {
      size_t a = strlen(l.p[i].text), b = strlen(l.p[i + 1].text);
      char *t = realloc(l.p[i].text, a + b + 1);
      if (!t) { l.oom = true; break; }
      memcpy(t + a, l.p[i + 1].text, b + 1);
      l.p[i].text = t;
      free(l.p[i + 1].text);
      memmove(&l.p[i + 1], &l.p[i + 2], (size_t)(l.n - i - 2) * sizeof *l.p);
      l.n--;
    } else {
      i++;
    }
  }
  if (!ok || l.oom) {
    ldm_prompt_pieces_free(l.p, l.n);
    *out = NULL;
    *n = 0;
    return ldm_fail(err, LDM_ERR_NOMEM, "prompt: out of memory");
  }
  *out = l.p;
  *n = l.n;
  return LDM_OK;
}

void ldm_prompt_pieces_free(ldm_prompt_piece *p, int n) {
  if (!p) return;
  for (int i = 0; i < n; i++) free(p[i].text);
  free(p);
}
