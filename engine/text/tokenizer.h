/* CLIP BPE tokenizer, internal interface (the public one is in ldm.h).
 * Mirrors transformers' CLIPTokenizer (slow) with ftfy installed, which is
 * what diffusers and AUTOMATIC1111 run: ftfy.fix_text, whitespace clean-up,
 * lower-casing, CLIP's split pattern, byte-level BPE. */
#ifndef LDM_TEXT_TOKENIZER_H
#define LDM_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "ldm.h"
#include "io/source.h"

#define LDM_CLIP_N_CTX 77
#define LDM_CLIP_EOT 49407

/* The embedded OpenAI CLIP vocabulary (49408 ids); pad_id < 0 = end-of-text. */
ldm_status ldm_tokenizer_new_embedded(ldm_tokenizer **out, int pad_id,
                                      ldm_error *err);
/* transformers' files: vocab.json + merges.txt (first line is a header and,
 * as CLIPTokenizer does, at most 48894 merges are read). special_map and
 * tok_config (each NULL ok): special_tokens_map.json, tokenizer_config.json,
 * for pad_token and the special/added tokens the text is split on (as
 * transformers does: with SD2's pad "!", every "!" becomes id 0). */
ldm_status ldm_tokenizer_new_files(ldm_tokenizer **out, const char *vocab_json,
                                   const char *merges_txt, const char *special_map,
                                   const char *tok_config, ldm_error *err);
/* The tokenizer of a model: a diffusers folder's `part` ("tokenizer",
 * "tokenizer_2") when it has vocab.json + merges.txt, else the embedded one
 * with default_pad (< 0: end-of-text). */
ldm_status ldm_tokenizer_from_source(ldm_tokenizer **out, const ldm_source *src,
                                     const char *part, int default_pad,
                                     ldm_error *err);

/* Appends the BPE ids of `text` (len bytes of UTF-8; no start/end tokens,
 * no truncation) to *ids (realloc'd; *n ids used of *cap). */
ldm_status ldm_tokenizer_tokenize(const ldm_tokenizer *t, const char *text,
                                  size_t len, int32_t **ids, int64_t *n,
                                  int64_t *cap, ldm_error *err);

int32_t ldm_tokenizer_bos(const ldm_tokenizer *t);
int32_t ldm_tokenizer_eos(const ldm_tokenizer *t);
int32_t ldm_tokenizer_pad(const ldm_tokenizer *t);
int32_t ldm_tokenizer_vocab_size(const ldm_tokenizer *t);

/* The clean-up alone (ftfy subset, whitespace, lower-case), as UTF-8 into a
 * malloc'd string; exposed for tests. */
ldm_status ldm_text_clean(const char *text, size_t len, char **out,
                          ldm_error *err);

#endif
