/* A1111 prompt emphasis (parse_prompt_attention) and chunking
 * (tokenize_line): expected piece/weight lists, several from A1111's own
 * docstring, malformed input taken as literal text, BREAK, 75-token chunks
 * with comma back-tracking, padding, and the mean-restoring emphasis.
 * Tolerance: texts exact, weights within 1e-12, token ids exact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ldm_test.h"
#include "text/prompt.h"
#include "text/text.h"

typedef struct piece { const char *text; double w; } piece;
typedef struct pcase { const char *prompt; int n; piece p[10]; } pcase;

#define R 1.1
#define S (1 / 1.1)

static const pcase cases[] = {
    /* A1111's docstring examples */
    {"normal text", 1, {{"normal text", 1}}},
    {"an (important) word", 3, {{"an ", 1}, {"important", R}, {" word", 1}}},
    {"(unbalanced", 1, {{"unbalanced", R}}},
    {"\\(literal\\]", 1, {{"(literal]", 1}}},
    {"(unnecessary)(parens)", 1, {{"unnecessaryparens", R}}},
    {"a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", 9,
     {{"a ", 1}, {"house", 1.3 * R * R}, {" ", R}, {"on", S * R}, {" a ", R}, {"hill", 0.5 * R},
      {", sun, ", R}, {"sky", R * R * R * R}, {".", R}}},
    /* brackets and weights */
    {"", 1, {{"", 1}}},
    {"((a))", 1, {{"a", R * R}}},
    {"[a]", 1, {{"a", S}}},
    {"[[a]]", 1, {{"a", S * S}}},
    {"(a:1.3)", 1, {{"a", 1.3}}},
    {"(a: 0.5 )", 1, {{"a", 0.5}}},
    {"(a:-1)", 1, {{"a", -1}}},
    {"(a:+2)", 1, {{"a", 2}}},
    {"(a:.5)", 1, {{"a", 0.5}}},
    {"(a)(b:1.5)", 2, {{"a", R}, {"b", 1.5}}},
    {"([a])", 1, {{"a", S * R}}},
    {"(a:1.5) and [b]", 3, {{"a", 1.5}, {" and ", 1}, {"b", S}}},
    {"a, (b:0), c", 3, {{"a, ", 1}, {"b", 0}, {", c", 1}}},
    {"((a)", 1, {{"a", R * R}}},
    {"\xe6\x97\xa5\xe6\x9c\xac (\xe3\x83\x86:1.2)", 2, {{"\xe6\x97\xa5\xe6\x9c\xac ", 1}, {"\xe3\x83\x86", 1.2}}},
    /* malformed: literal text, never an error */
    {"(a:abc)", 1, {{"a:abc", R}}},
    {"(x:1.2.3)", 1, {{"x:1.2.3", R}}},
    {"(x:.)", 1, {{"x:.", R}}},
    {"a:b", 1, {{"a:b", 1}}},
    {"a:1.2)", 1, {{"a:1.2)", 1}}},
    {"a)", 1, {{"a)", 1}}},
    {"a]", 1, {{"a]", 1}}},
    {"[a", 1, {{"a", S}}},
    {"(a:1.5", 1, {{"a:1.5", R}}},
    {"\\(a:1.5\\)", 1, {{"(a:1.5)", 1}}},
    {"\\\\", 1, {{"\\", 1}}},
    {"a \\ b", 1, {{"a  b", 1}}},
    {")(", 1, {{")", 1}}},
    /* BREAK */
    {"a BREAK b", 3, {{"a", 1}, {"BREAK", -1}, {"b", 1}}},
    {"aBREAK b", 1, {{"aBREAK b", 1}}},
    {"a BREAKb", 1, {{"a BREAKb", 1}}},
    {"BREAK", 3, {{"", 1}, {"BREAK", -1}, {"", 1}}},
    {"(a BREAK b)", 3, {{"a", R}, {"BREAK", -R}, {"b", R}}},
    {"a  BREAK  BREAK b", 5, {{"a", 1}, {"BREAK", -1}, {"", 1}, {"BREAK", -1}, {"b", 1}}},
};

static void test_parse(void) {
  int n_cases = (int)(sizeof cases / sizeof *cases);
  int bad = 0;
  for (int c = 0; c < n_cases; c++) {
    ldm_prompt_piece *p = NULL;
    int n = 0;
    ldm_error err = {0};
    if (ldm_prompt_parse(cases[c].prompt, &p, &n, &err) != LDM_OK) {
      CHECK(0, "parse '%s': %s", cases[c].prompt, err.msg);
      bad++;
      continue;
    }
    int ok = n == cases[c].n;
    for (int i = 0; ok && i < n; i++)
      ok = strcmp(p[i].text, cases[c].p[i].text) == 0 &&
           fabs(p[i].weight - cases[c].p[i].w) <= 1e-12 * (1 + fabs(cases[c].p[i].w));
    if (!ok) {
      bad++;
      fprintf(stderr, "FAIL parse '%s': got", cases[c].prompt);
      for (int i = 0; i < n; i++) fprintf(stderr, " ['%s', %.17g]", p[i].text, p[i].weight);
      fprintf(stderr, "\n");
    }
    ldm_prompt_pieces_free(p, n);
  }
  ldm_test_checks++;
  if (bad) ldm_test_failures++;
  printf("prompt-parse: %d cases, %d wrong (tol: exact text, weight 1e-12)\n", n_cases, bad);
}

static int32_t id_of(const ldm_tokenizer *tok, const char *word) {
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0;
  ldm_error err = {0};
  int32_t r = -1;
  if (ldm_tokenizer_tokenize(tok, word, strlen(word), &ids, &n, &cap, &err) == LDM_OK && n == 1)
    r = ids[0];
  free(ids);
  return r;
}

/* Checks chunk c against bos + toks (+ eos, then pad) and per-token weights. */
static void expect_chunk(const char *what, const ldm_text_chunks *ch, int c, const int32_t *toks,
                         const float *w, int n, int32_t pad) {
  const int32_t *ids = ch->ids + (size_t)c * 77;
  const float *m = ch->mult + (size_t)c * 77;
  int ok = ids[0] == 49406 && m[0] == 1.0f;
  for (int i = 0; ok && i < n; i++) ok = ids[1 + i] == toks[i] && m[1 + i] == w[i];
  ok = ok && ids[1 + n] == 49407;
  for (int i = 2 + n; ok && i < 77; i++) ok = ids[i] == (i == 76 && n == 75 ? 49407 : pad) && m[i] == 1.0f;
  CHECK(ok, "%s: chunk %d differs (ids %d %d %d ... %d)", what, c, ids[0], ids[1], ids[2], ids[76]);
}

static void test_chunks(void) {
  ldm_error err = {0};
  ldm_tokenizer *tok = NULL;
  if (ldm_tokenizer_new_embedded(&tok, -1, &err) != LDM_OK) {
    CHECK(0, "tokenizer: %s", err.msg);
    return;
  }
  const int32_t a = 320, photo = 1125, of = 539, cat = 2368, comma = 267;
  const int32_t dog = id_of(tok, "dog"), b = id_of(tok, "b");
  CHECK(dog > 0 && b > 0 && id_of(tok, ",") == comma, "single-token words");
  ldm_text_chunks ch;
  float ones[80];
  for (int i = 0; i < 80; i++) ones[i] = 1.0f;

  CHECK(ldm_text_chunk(tok, "a photo of a cat", -1, 20, &ch, &err) == LDM_OK && ch.n == 1, "plain");
  expect_chunk("plain", &ch, 0, (int32_t[]){a, photo, of, a, cat}, ones, 5, 49407);
  ldm_text_chunks_free(&ch);

  CHECK(ldm_text_chunk(tok, "a photo of a cat", 0, 20, &ch, &err) == LDM_OK && ch.n == 1, "pad0");
  expect_chunk("pad 0", &ch, 0, (int32_t[]){a, photo, of, a, cat}, ones, 5, 0);
  ldm_text_chunks_free(&ch);

  CHECK(ldm_text_chunk(tok, "a ((photo)) of [a] (cat:1.5)", -1, 20, &ch, &err) == LDM_OK && ch.n == 1,
        "weighted");
  expect_chunk("weighted", &ch, 0, (int32_t[]){a, photo, of, a, cat},
               (float[]){1, (float)(1.1 * 1.1), 1, (float)(1 / 1.1), 1.5f}, 5, 49407);
  ldm_text_chunks_free(&ch);

  CHECK(ldm_text_chunk(tok, "", -1, 20, &ch, &err) == LDM_OK && ch.n == 1, "empty");
  expect_chunk("empty", &ch, 0, NULL, ones, 0, 49407);
  ldm_text_chunks_free(&ch);

  CHECK(ldm_text_chunk(tok, "a BREAK b", -1, 20, &ch, &err) == LDM_OK && ch.n == 2, "BREAK");
  if (ch.n == 2) {
    expect_chunk("BREAK", &ch, 0, (int32_t[]){a}, ones, 1, 49407);
    expect_chunk("BREAK", &ch, 1, (int32_t[]){b}, ones, 1, 49407);
  }
  ldm_text_chunks_free(&ch);

  CHECK(ldm_text_chunk(tok, "BREAK a", -1, 20, &ch, &err) == LDM_OK && ch.n == 2, "leading BREAK");
  if (ch.n == 2) {
    expect_chunk("leading BREAK", &ch, 0, NULL, ones, 0, 49407);
    expect_chunk("leading BREAK", &ch, 1, (int32_t[]){a}, ones, 1, 49407);
  }
  ldm_text_chunks_free(&ch);

  /* 80 x "cat": 75 + 5; 150 x "cat": exactly 2 chunks */
  char buf[2048] = "";
  int32_t cats[80], mixed[80];
  for (int i = 0; i < 80; i++) cats[i] = cat;
  for (int i = 0; i < 80; i++) strcat(buf, "cat ");
  CHECK(ldm_text_chunk(tok, buf, -1, 20, &ch, &err) == LDM_OK && ch.n == 2, "80 tokens: %d chunks", ch.n);
  if (ch.n == 2) {
    expect_chunk("80 tokens", &ch, 0, cats, ones, 75, 49407);
    expect_chunk("80 tokens", &ch, 1, cats, ones, 5, 49407);
  }
  ldm_text_chunks_free(&ch);
  buf[0] = 0;
  for (int i = 0; i < 150; i++) strcat(buf, "cat ");
  CHECK(ldm_text_chunk(tok, buf, -1, 20, &ch, &err) == LDM_OK && ch.n == 2, "150 tokens: %d chunks",
        ch.n);
  ldm_text_chunks_free(&ch);

  /* 70 cats, a comma, 10 dogs: the 75-token boundary falls 5 after the
   * comma, so everything after the comma moves to chunk 2 */
  buf[0] = 0;
  for (int i = 0; i < 70; i++) strcat(buf, "cat ");
  strcat(buf, ",");
  for (int i = 0; i < 10; i++) strcat(buf, " dog");
  for (int i = 0; i < 70; i++) mixed[i] = cat;
  mixed[70] = comma;
  int32_t dogs[10];
  for (int i = 0; i < 10; i++) dogs[i] = dog;
  CHECK(ldm_text_chunk(tok, buf, -1, 20, &ch, &err) == LDM_OK && ch.n == 2, "comma: %d chunks", ch.n);
  if (ch.n == 2) {
    expect_chunk("comma backtrack", &ch, 0, mixed, ones, 71, 49407);
    expect_chunk("comma backtrack", &ch, 1, dogs, ones, 10, 49407);
  }
  ldm_text_chunks_free(&ch);
  /* same with back-tracking off: a plain split at 75 */
  CHECK(ldm_text_chunk(tok, buf, -1, 0, &ch, &err) == LDM_OK && ch.n == 2, "no backtrack");
  for (int i = 71; i < 75; i++) mixed[i] = dog;
  if (ch.n == 2) {
    expect_chunk("no backtrack", &ch, 0, mixed, ones, 75, 49407);
    expect_chunk("no backtrack", &ch, 1, dogs, ones, 6, 49407);
  }
  ldm_text_chunks_free(&ch);
  /* the window's edge (A1111: len(chunk.tokens) - last_comma <= 20): a
   * comma at index 55 of a full chunk is 20 back and moves the 19 dogs
   * after it; at index 54 (21 back) the chunk splits plainly at 75 */
  for (int back = 20; back <= 21; back++) {
    int at = 75 - back;
    buf[0] = 0;
    for (int i = 0; i < at; i++) strcat(buf, "cat ");
    strcat(buf, ",");
    for (int i = 0; i < 25; i++) strcat(buf, " dog");
    int32_t first[75], second[25];
    for (int i = 0; i < at; i++) first[i] = cat;
    first[at] = comma;
    for (int i = at + 1; i < 75; i++) first[i] = dog;
    for (int i = 0; i < 25; i++) second[i] = dog;
    CHECK(ldm_text_chunk(tok, buf, -1, 20, &ch, &err) == LDM_OK && ch.n == 2, "comma %d back: %d chunks", back,
          ch.n);
    char what[64];
    snprintf(what, sizeof what, "comma %d tokens back", back);
    if (ch.n == 2) {
      expect_chunk(what, &ch, 0, first, ones, back == 20 ? at + 1 : 75, 49407);
      expect_chunk(what, &ch, 1, second, ones, back == 20 ? 25 : 25 - (75 - at - 1), 49407);
    }
    ldm_text_chunks_free(&ch);
  }
  /* a comma further back than 20 tokens: plain split */
  buf[0] = 0;
  strcat(buf, "cat,");
  for (int i = 0; i < 79; i++) strcat(buf, " dog");
  CHECK(ldm_text_chunk(tok, buf, -1, 20, &ch, &err) == LDM_OK && ch.n == 2, "far comma");
  if (ch.n == 2) {
    int32_t t[75] = {cat, comma};
    for (int i = 2; i < 75; i++) t[i] = dog;
    expect_chunk("far comma", &ch, 0, t, ones, 75, 49407);
    expect_chunk("far comma", &ch, 1, dogs, ones, 6, 49407);
  }
  ldm_text_chunks_free(&ch);
  printf("prompt-chunks: done\n");
  ldm_tokenizer_free(tok);
}

static void test_emphasis(void) {
  enum { T = 77, D = 8 };
  float z[T * D], z0[T * D], mult[T];
  unsigned s = 1;
  for (int i = 0; i < T * D; i++) {
    s = s * 1103515245u + 12345u;
    z[i] = z0[i] = ((s >> 8) % 2000) / 1000.0f - 0.7f;
  }
  for (int t = 0; t < T; t++) mult[t] = t == 3 ? 1.5f : t == 5 ? 0.8f : 1.0f;
  ldm_text_emphasis(z, mult, T, D);
  double m0 = 0, m1 = 0;
  for (int i = 0; i < T * D; i++) {
    m0 += z0[i];
    m1 += z[i];
  }
  float r = z[0] / z0[0];
  float want[T * D];
  for (int t = 0; t < T; t++)
    for (int i = 0; i < D; i++) want[t * D + i] = z0[t * D + i] * mult[t] * r;
  ldm_test_close("emphasis shape", z, want, T * D, 1e-6, 1e-5);
  float mm[2] = {(float)(m1 / (T * D)), (float)(m0 / (T * D))};
  ldm_test_close("emphasis mean restored", mm, mm + 1, 1, 1e-6, 1e-5);
  /* all-ones multipliers leave z bit-identical */
  memcpy(z, z0, sizeof z);
  for (int t = 0; t < T; t++) mult[t] = 1.0f;
  ldm_text_emphasis(z, mult, T, D);
  CHECK(memcmp(z, z0, sizeof z) == 0, "unit multipliers changed z");
}

/* Random mixes of brackets, weights, escapes, BREAK, entities, invalid and
 * multi-byte UTF-8: chunking never fails and every id is in the vocabulary. */
static void test_robust(void) {
  static const char *bits[] = {"(", ")", "[", "]", ":", "\\", "BREAK", " BREAK ", "1.2", ":0.5)",
                               "&amp;", "&#x41;", "&#", "\xff", "\xe6\x97", "\xe6\x97\xa5",
                               "\xf0\x9f\x90\xb1", " ", ",", "a", "cat", "\x1b[3", "\xc3",
                               "\r\n", "\t", "<|endoftext|>", "'s", "9999999999999999999"};
  const int nb = (int)(sizeof bits / sizeof *bits);
  ldm_error err = {0};
  ldm_tokenizer *tok = NULL;
  if (ldm_tokenizer_new_embedded(&tok, -1, &err) != LDM_OK) {
    CHECK(0, "tokenizer: %s", err.msg);
    return;
  }
  unsigned s = 12345;
  int bad = 0;
  char buf[4096];
  for (int it = 0; it < 3000; it++) {
    size_t len = 0;
    s = s * 1103515245u + 12345u;
    int n = (int)((s >> 16) % 60);
    for (int k = 0; k < n; k++) {
      s = s * 1103515245u + 12345u;
      const char *b = bits[(s >> 16) % (unsigned)nb];
      size_t l = strlen(b);
      if (len + l >= sizeof buf) break;
      memcpy(buf + len, b, l);
      len += l;
    }
    buf[len] = 0;
    ldm_text_chunks ch;
    if (ldm_text_chunk(tok, buf, -1, 20, &ch, &err) != LDM_OK) {
      if (bad++ < 3) fprintf(stderr, "FAIL robust: '%s': %s\n", buf, err.msg);
      continue;
    }
    int ok = ch.n >= 1;
    for (int i = 0; ok && i < ch.n * 77; i++) ok = ch.ids[i] >= 0 && ch.ids[i] < 49408;
    if (!ok && bad++ < 3) fprintf(stderr, "FAIL robust: '%s': bad chunks\n", buf);
    ldm_text_chunks_free(&ch);
  }
  ldm_test_checks++;
  if (bad) ldm_test_failures++;
  printf("prompt-robust: 3000 random prompts, %d failed\n", bad);
  ldm_tokenizer_free(tok);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The parser is linear in the prompt: 256 KiB of colons (one piece per
 * colon before merging) and 64 Ki nested brackets (each closing bracket
 * multiplies every piece since its opening) parse in well under a second
 * (a quadratic parser takes tens of seconds on these); the nested case's
 * weights are 1.1^(k+1), as Python's multiply_range gives them (1e-12)
 * until they overflow to Inf,
 * and the whole prompt chunks (tokenizer included) in under a second too. */
static void test_long(void) {
  enum { N = 256 * 1024, D = 32 * 1024 };
  char *colons = malloc(N + 1), *nest = malloc(3 * D + 1);
  memset(colons, ':', N);
  colons[N] = 0;
  for (int i = 0; i < D; i++) memcpy(nest + 2 * i, "(a", 2);
  memset(nest + 2 * D, ')', D);
  nest[3 * D] = 0;
  ldm_error err = {0};
  ldm_prompt_piece *p = NULL;
  int n = 0;
  double t0 = now_s();
  ldm_status st = ldm_prompt_parse(colons, &p, &n, &err);
  double t1 = now_s() - t0;
  CHECK(st == LDM_OK && n == 1 && p[0].weight == 1.0 && strlen(p[0].text) == N, "colons: %d pieces, %s", n,
        err.msg);
  CHECK(t1 < 1.0, "256 KiB of colons took %.2f s to parse", t1);
  ldm_prompt_pieces_free(p, n);
  t0 = now_s();
  st = ldm_prompt_parse(nest, &p, &n, &err);
  double t2 = now_s() - t0;
  /* past 1.1^7447 the weights overflow to Inf (as in Python) and merge */
  CHECK(st == LDM_OK && n > 7000 && n < D && isinf(p[n - 1].weight), "nested: %d pieces, %s", n, err.msg);
  CHECK(t2 < 1.0, "32 Ki nested brackets took %.2f s to parse", t2);
  double worst = 0;
  for (int k = 0; st == LDM_OK && n > 7000 && k < 300; k++) {
    double want = pow(1.1, k + 1), e = fabs(p[k].weight - want) / want;
    if (e > worst) worst = e;
  }
  CHECK(worst <= 1e-12, "nested weights: max relative error %.3g (tol 1e-12)", worst);
  ldm_prompt_pieces_free(p, n);
  ldm_tokenizer *tok = NULL;
  double t3 = -1;
  if (ldm_tokenizer_new_embedded(&tok, -1, &err) == LDM_OK) {
    ldm_text_chunks ch;
    t0 = now_s();
    st = ldm_text_chunk(tok, colons, -1, 20, &ch, &err);
    t3 = now_s() - t0;
    CHECK(st == LDM_OK && ch.n >= 1, "chunking 256 KiB of colons: %s", err.msg);
    if (st == LDM_OK) ldm_text_chunks_free(&ch);
    ldm_tokenizer_free(tok);
  }
  CHECK(t3 >= 0 && t3 < 2.0, "256 KiB of colons took %.2f s to chunk", t3);
  printf("prompt-long: parse 256 KiB colons %.3f s, 32 Ki nested brackets %.3f s (weights max rel err %.2g, tol "
         "1e-12), chunk %.3f s\n", t1, t2, worst, t3);
  free(colons);
  free(nest);
}

int main(void) {
  test_long();
  test_parse();
  test_robust();
  test_chunks();
  test_emphasis();
  return ldm_test_finish("prompt");
}
