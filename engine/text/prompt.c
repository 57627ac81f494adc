/* AUTOMATIC1111's parse_prompt_attention: the prompt is scanned with the
 * alternatives of its re_attention pattern, in order,
 *   \( \) \[ \] \\ \ ( [ :<ws><number><ws>) ) ] <run of other text> :
 * brackets record where they opened and multiply the weights of everything
 * after that on closing; text runs are split on BREAK.
 * Linear in the prompt's length (a 128 KiB prompt of brackets or colons
 * parses in milliseconds): the multiplications are recorded as ranges and
 * applied in one sweep at the end (the ranges of one bracket kind nest, so a
 * stack of running products per kind covers them), and runs of equal
 * weights are merged in one pass. The products differ from Python's
 * left-to-right ones by rounding only (1e-15 relative). */
#include "text/prompt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

typedef struct plist {
  ldm_prompt_piece *p;
  size_t *len;              /* text length of each piece */
  int n, cap;
  bool oom;
} plist;

static void push(plist *l, const char *s, size_t len, double w) {
  if (l->oom) return;
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 16;
    ldm_prompt_piece *np = realloc(l->p, (size_t)cap * sizeof *np);
    if (np) l->p = np;
    size_t *nl = np ? realloc(l->len, (size_t)cap * sizeof *nl) : NULL;
    if (!np || !nl) { l->oom = true; return; }
    l->len = nl;
    l->cap = cap;
  }
  char *t = malloc(len + 1);
  if (!t) { l->oom = true; return; }
  memcpy(t, s, len);
  t[len] = 0;
  l->p[l->n].text = t;
  l->p[l->n].weight = w;
  l->len[l->n] = len;
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

/* "multiply the weights of pieces [start, end) by m", recorded for the sweep;
 * kind 0 = round brackets (and explicit weights), 1 = square. */
typedef struct range {
  int start, end;
  double m;
  int next;                 /* the range recorded before it with the same start and kind, -1 */
} range;

typedef struct rlist {
  range *r;
  int n, cap;
  bool oom;
} rlist;

static void record(rlist *l, int start, int end, double m) {
  if (l->oom || end <= start) return; /* an empty range multiplies nothing */
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 16;
    range *nr = realloc(l->r, (size_t)cap * sizeof *nr);
    if (!nr) { l->oom = true; return; }
    l->r = nr;
    l->cap = cap;
  }
  l->r[l->n++] = (range){start, end, m, -1};
}

/* Applies one kind's ranges to the weights: they nest (LIFO), so going
 * through the pieces with a stack of open ranges and the product of their
 * multipliers touches each range twice. Returns false when out of memory. */
static bool apply_ranges(plist *l, rlist *rl) {
  if (rl->n == 0) return true;
  int *head = malloc((size_t)l->n * sizeof *head), *stack = malloc((size_t)rl->n * sizeof *stack);
  double *prod = malloc((size_t)(rl->n + 1) * sizeof *prod);
  bool ok = head && stack && prod;
  if (ok) {
    for (int i = 0; i < l->n; i++) head[i] = -1;
    /* a range closed later with the same start encloses one closed before:
     * linking each in front of the ones recorded before it lists the outer
     * first */
    for (int k = 0; k < rl->n; k++) {
      rl->r[k].next = head[rl->r[k].start];
      head[rl->r[k].start] = k;
    }
    int top = 0;
    prod[0] = 1.0;
    for (int i = 0; i < l->n; i++) {
      while (top > 0 && rl->r[stack[top - 1]].end <= i) top--;
      for (int k = head[i]; k >= 0; k = rl->r[k].next) {
        stack[top] = k;
        prod[top + 1] = prod[top] * rl->r[k].m;
        top++;
      }
      if (top > 0) l->p[i].weight *= prod[top];
    }
  }
  free(head);
  free(stack);
  free(prod);
  return ok;
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
  rlist rr = {0}, rs = {0}; /* the ranges of round and of square brackets */
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
      if (round.n) record(&rr, round.v[--round.n], l.n, w);
      else add_text(&l, s + i, m);
      i += m;
    } else if (c == ')') {
      if (round.n) record(&rr, round.v[--round.n], l.n, round_mul);
      else add_text(&l, s + i, 1);
      i++;
    } else if (c == ']') {
      if (square.n) record(&rs, square.v[--square.n], l.n, square_mul);
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
  /* unclosed brackets reach the end; the innermost was opened last */
  for (int k = round.n - 1; k >= 0; k--) record(&rr, round.v[k], l.n, round_mul);
  for (int k = square.n - 1; k >= 0; k--) record(&rs, square.v[k], l.n, square_mul);
  free(round.v);
  free(square.v);
  if (ok && !l.oom && !rr.oom && !rs.oom) ok = apply_ranges(&l, &rr) && apply_ranges(&l, &rs);
  ok = ok && !rr.oom && !rs.oom;
  free(rr.r);
  free(rs.r);
  if (ok && !l.oom && l.n == 0) push(&l, "", 0, 1.0);
  /* merge runs of identical weights in one pass: texts grow by doubling */
  if (ok && !l.oom && l.n > 1) {
    int w = 0;
    size_t cap = l.len[0] + 1;
    for (int i = 1; i < l.n; i++) {
      if (l.p[i].weight != l.p[w].weight) {
        l.p[++w] = l.p[i];
        l.len[w] = l.len[i];
        cap = l.len[w] + 1;
        continue;
      }
      size_t need = l.len[w] + l.len[i] + 1;
      if (need > cap) {
        size_t nc = cap * 2 > need ? cap * 2 : need;
        char *t = realloc(l.p[w].text, nc);
        if (!t) {
          l.oom = true;
          /* pieces w+1..i-1 were moved or freed: keep the list consistent for the free below */
          for (int k = i; k < l.n; k++) l.p[++w] = l.p[k];
          break;
        }
        l.p[w].text = t;
        cap = nc;
      }
      memcpy(l.p[w].text + l.len[w], l.p[i].text, l.len[i] + 1);
      l.len[w] += l.len[i];
      free(l.p[i].text);
    }
    l.n = w + 1;
  }
  free(l.len);
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
