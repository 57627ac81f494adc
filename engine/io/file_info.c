/* Public inspection of safetensors files (ldm_file_summarize/ldm_file_list),
 * used by `ldm info` and `ldm ls`. */
#include "io/safetensors.h"
#include "core/status.h"

#include <string.h>

ldm_status ldm_file_summarize(const char *path, ldm_file_summary *out, ldm_error *err) {
  memset(out, 0, sizeof *out);
  ldm_st_file *f;
  LDM_TRY(ldm_st_open(&f, path, err));
  bool seen[LDM_DTYPE_COUNT] = {0};
  out->n_tensors = ldm_st_count(f);
  out->file_bytes = (int64_t)ldm_st_file_size(f);
  for (int64_t i = 0; i < out->n_tensors; i++) {
    const ldm_tensor *t = ldm_st_at(f, i);
    out->n_params += ldm_tensor_numel(t);
    seen[t->dtype] = true;
  }
  for (int d = 0; d < LDM_DTYPE_COUNT; d++) {
    if (!seen[d]) continue;
    if (out->dtypes[0]) strncat(out->dtypes, " ", sizeof out->dtypes - strlen(out->dtypes) - 1);
    strncat(out->dtypes, ldm_dtype_name((ldm_dtype)d), sizeof out->dtypes - strlen(out->dtypes) - 1);
  }
  ldm_st_close(f);
  return LDM_OK;
}

ldm_status ldm_file_list(const char *path, ldm_tensor_visit_fn fn, void *user, ldm_error *err) {
  ldm_st_file *f;
  LDM_TRY(ldm_st_open(&f, path, err));
  for (int64_t i = 0; i < ldm_st_count(f); i++) {
    const ldm_tensor *t = ldm_st_at(f, i);
    fn(user, t->name, ldm_dtype_name(t->dtype), t->ndim, t->shape);
  }
  for (int64_t i = 0; i < ldm_st_metadata_count(f); i++) {
    const char *k, *v;
    ldm_st_metadata_at(f, i, &k, &v);
    fn(user, k, v, -1, NULL);
  }
  ldm_st_close(f);
  return LDM_OK;
}
