/* Placeholder until the CLIP tokenizer lands. */
#include "ldm.h"
#include "core/status.h"
ldm_status ldm_tokenizer_load(ldm_tokenizer **out, const char *model_path, ldm_error *err) {
  *out = NULL;
  return ldm_fail(err, LDM_ERR_UNSUPPORTED, "tokenizer not implemented yet");
}
void ldm_tokenizer_free(ldm_tokenizer *tok) { (void)tok; }
ldm_status ldm_tokenizer_encode(const ldm_tokenizer *tok, const char *text, int32_t *ids,
                                int n_ctx, int pad_id, ldm_error *err) {
  return ldm_fail(err, LDM_ERR_UNSUPPORTED, "tokenizer not implemented yet");
}
