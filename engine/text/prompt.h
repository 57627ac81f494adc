/* AUTOMATIC1111 prompt emphasis syntax (modules/prompt_parser.py,
 * parse_prompt_attention): (x) x1.1, ((x)), [x] /1.1, (x:1.3), \( \) \[ \]
 * \\ escapes, BREAK. Malformed input never fails: unbalanced brackets apply
 * to the end of the prompt and a weight that is not a number, as in
 * "(x:abc)" or "(x:1.2.3)", is literal text. */
#ifndef LDM_TEXT_PROMPT_H
#define LDM_TEXT_PROMPT_H

#include "ldm.h"

typedef struct ldm_prompt_piece {
  char *text;       /* owned; "BREAK" with weight -1 marks a chunk break */
  double weight;    /* products of 1.1, 1/1.1 and explicit weights, in double as Python */
} ldm_prompt_piece;

/* Parses text into pieces (at least one; runs of equal weight merged). */
ldm_status ldm_prompt_parse(const char *text, ldm_prompt_piece **out, int *n, ldm_error *err);
void ldm_prompt_pieces_free(ldm_prompt_piece *p, int n);

#endif
