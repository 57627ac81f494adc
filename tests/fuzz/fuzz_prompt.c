/* Fuzz target: the prompt parser (A1111 emphasis, weights, BREAK, escapes)
 * and the chunking behind it (CLIP tokenizer, 75-token chunks). Input: the
 * prompt's bytes (at most 16 KiB, so that a slow path shows as a timeout). */
#include "text/prompt.h"
#include "text/text.h"
#include "text/tokenizer.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static ldm_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ldm_error err = {0};
  if (!tok && ldm_tokenizer_new_embedded(&tok, -1, &err) != LDM_OK) abort();
  if (size > 16384) size = 16384;
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  ldm_prompt_piece *p = NULL;
  int n = 0;
  if (ldm_prompt_parse(s, &p, &n, &err) == LDM_OK) {
    if (n < 1) abort();
    for (int i = 0; i < n; i++)
      if (!p[i].text || isnan(p[i].weight)) abort(); /* products of finite factors */
    ldm_prompt_pieces_free(p, n);
  } else if (!err.msg[0]) {
    abort();
  }
  ldm_text_chunks ch;
  if (ldm_text_chunk(tok, s, -1, 20, &ch, &err) == LDM_OK) {
    for (int i = 0; i < ch.n * 77; i++)
      if (ch.ids[i] < 0 || ch.ids[i] >= 49408) abort();
    ldm_text_chunks_free(&ch);
  }
  free(s);
  return 0;
}
