/* CLIP tokenizer vs transformers' CLIPTokenizer (slow, ftfy), goldens from
 * tests/reference/make_text.py. Tolerance: exact ids on every prompt.
 *  - embedded vocabulary: 1200 prompts, pad <|endoftext|> (and pad 0);
 *  - tokenizer files (vocab.json + merges.txt, 2000 merges, pad "!" = 0,
 *    which transformers also splits the text on: "!!!" -> 0 0 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldm_test.h"
#include "text/tokenizer.h"

static char **read_lines(const char *name, int *n) {
  char path[4096];
  FILE *f = fopen(ldm_test_golden(name, path, sizeof path), "rb");
  if (!f) {
    fprintf(stderr, "FAIL: cannot open golden %s\n", path);
    exit(1);
  }
  char **lines = NULL, *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int count = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    if (len > 0 && line[len - 1] == '\n') line[len - 1] = 0;
    lines = realloc(lines, (size_t)(count + 1) * sizeof *lines);
    lines[count++] = strdup(line);
  }
  free(line);
  fclose(f);
  *n = count;
  return lines;
}

/* A golden line holds the ids through the first end-of-text; the rest of
 * the 77 is padding (fill). */
static void parse_ids(const char *s, int32_t *ids, int32_t fill) {
  int i = 0;
  char *end;
  for (; i < 77; i++) {
    long v = strtol(s, &end, 10);
    if (end == s) break;
    ids[i] = (int32_t)v;
    s = end;
  }
  for (; i < 77; i++) ids[i] = fill;
}

/* Returns the number of mismatching prompts; prints the first few. */
static int compare(const char *what, const ldm_tokenizer *tok, char **prompts, char **ref,
                   int n, int pad, int32_t fill) {
  int bad = 0;
  for (int i = 0; i < n; i++) {
    int32_t got[77], want[77];
    ldm_error err = {0};
    parse_ids(ref[i], want, pad >= 0 ? pad : fill);
    if (ldm_tokenizer_encode(tok, prompts[i], got, 77, pad, &err) != LDM_OK) {
      fprintf(stderr, "FAIL %s: prompt %d: %s\n", what, i + 1, err.msg);
      bad++;
      continue;
    }
    if (memcmp(got, want, sizeof got) != 0) {
      if (bad < 5) {
        int k = 0;
        while (got[k] == want[k]) k++;
        fprintf(stderr, "FAIL %s: prompt %d \"%s\": id[%d] = %d, expected %d\n", what, i + 1,
                prompts[i], k, got[k], want[k]);
      }
      bad++;
    }
  }
  printf("%s: %d prompts, %d mismatching (tol: exact)\n", what, n, bad);
  return bad;
}

int main(void) {
  int np, nr, nt;
  char **prompts = read_lines("text/prompts.txt", &np);
  char **ref = read_lines("text/tokens_clip.txt", &nr);
  char **tiny = read_lines("text/tokens_tiny.txt", &nt);
  CHECK(np >= 1000 && np == nr, "prompts %d, reference lines %d", np, nr);

  ldm_error err = {0};
  ldm_tokenizer *tok = NULL;
  CHECK(ldm_tokenizer_new_embedded(&tok, -1, &err) == LDM_OK, "embedded: %s", err.msg);
  if (tok) {
    CHECK(ldm_tokenizer_vocab_size(tok) == 49408, "vocab %d", ldm_tokenizer_vocab_size(tok));
    CHECK(compare("tokenizer-embedded", tok, prompts, ref, np < nr ? np : nr, -1, LDM_CLIP_EOT) == 0,
          "embedded tokenizer mismatches");
    CHECK(compare("tokenizer-embedded-pad0", tok, prompts, ref, 200, 0, 0) == 0,
          "pad 0 mismatches");
    /* multi-line text: prompts 3k..3k+2 joined by "\n" or "\r\n" */
    int nj;
    char **jref = read_lines("text/tokens_joined.txt", &nj);
    char **joined = calloc((size_t)nj, sizeof *joined);
    for (int k = 0; k < nj && 3 * k + 2 < np; k++) {
      const char *sep = k % 2 ? "\r\n" : "\n";
      size_t len = strlen(prompts[3 * k]) + strlen(prompts[3 * k + 1]) + strlen(prompts[3 * k + 2]) + 5;
      joined[k] = malloc(len);
      snprintf(joined[k], len, "%s%s%s%s%s", prompts[3 * k], sep, prompts[3 * k + 1], sep,
               prompts[3 * k + 2]);
    }
    CHECK(nj >= 100 && compare("tokenizer-multiline", tok, joined, jref, nj, -1, LDM_CLIP_EOT) == 0,
          "multi-line mismatches");
    for (int k = 0; k < nj; k++) {
      free(joined[k]);
      free(jref[k]);
    }
    free(joined);
    free(jref);
    /* the public API: NULL model = embedded, pad end-of-text */
    ldm_tokenizer *pub = NULL;
    CHECK(ldm_tokenizer_load(&pub, NULL, &err) == LDM_OK, "load(NULL): %s", err.msg);
    int32_t ids[77];
    CHECK(pub && ldm_tokenizer_encode(pub, "a photo of a cat", ids, 77, -1, &err) == LDM_OK &&
              ids[0] == 49406 && ids[1] == 320 && ids[5] == 2368 && ids[6] == 49407 &&
              ids[76] == 49407,
          "encode 'a photo of a cat': %d %d .. %d", ids[0], ids[1], ids[6]);
    CHECK(ldm_tokenizer_encode(pub, "x", ids, 1, -1, &err) == LDM_ERR_INVALID_ARG,
          "n_ctx 1 must be rejected");
    ldm_tokenizer_free(pub);
  }
  ldm_tokenizer_free(tok);

  char v[4096], m[4096], s[4096], c[4096];
  ldm_test_golden("text/sd2/tokenizer/vocab.json", v, sizeof v);
  ldm_test_golden("text/sd2/tokenizer/merges.txt", m, sizeof m);
  ldm_test_golden("text/sd2/tokenizer/special_tokens_map.json", s, sizeof s);
  ldm_test_golden("text/sd2/tokenizer/tokenizer_config.json", c, sizeof c);
  tok = NULL;
  CHECK(ldm_tokenizer_new_files(&tok, v, m, s, c, &err) == LDM_OK, "files: %s", err.msg);
  if (tok) {
    CHECK(ldm_tokenizer_pad(tok) == 0, "pad '!' -> %d, expected 0", ldm_tokenizer_pad(tok));
    CHECK(compare("tokenizer-files", tok, prompts, tiny, nt, -1, 0) == 0, "files mismatches");
  }
  ldm_tokenizer_free(tok);
  /* a malformed merges file names the file and line */
  tok = NULL;
  ldm_status st = ldm_tokenizer_new_files(&tok, v, v, NULL, NULL, &err);
  CHECK(st == LDM_ERR_FORMAT && strstr(err.msg, "vocab.json"), "bad merges: %s", err.msg);
  ldm_tokenizer_free(tok);

  for (int i = 0; i < np; i++) free(prompts[i]);
  for (int i = 0; i < nr; i++) free(ref[i]);
  for (int i = 0; i < nt; i++) free(tiny[i]);
  free(prompts);
  free(ref);
  free(tiny);
  return ldm_test_finish("tokenizer");
}
