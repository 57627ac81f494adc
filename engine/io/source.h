/* A model source: either one single-file checkpoint (.safetensors with the
 * original LDM key names, or a component-only file such as a standalone VAE)
 * or a diffusers folder (model_index.json, unet/, vae/, text_encoder/,
 * text_encoder_2/, tokenizer/, scheduler/, each with config.json and one or
 * more *.safetensors shards). Components look tensors up here and map the
 * diffusers names onto the canonical (original single-file) names. */
#ifndef LDM_IO_SOURCE_H
#define LDM_IO_SOURCE_H

#include <stdbool.h>
#include "io/safetensors.h"

typedef struct ldm_source ldm_source;

ldm_status ldm_source_open(ldm_source **out, const char *path, ldm_error *err);
void ldm_source_close(ldm_source *s);

bool ldm_source_is_folder(const ldm_source *s);
const char *ldm_source_path(const ldm_source *s);
/* Total bytes of all mapped files. */
int64_t ldm_source_bytes(const ldm_source *s);

/* `part` selects a diffusers subfolder ("unet", "vae", "text_encoder", ...);
 * for a single file it is ignored (pass NULL). Returns NULL when absent. */
const ldm_tensor *ldm_source_find(const ldm_source *s, const char *part,
                                  const char *name);
/* Drops the mapped pages of the part's tensors whose names begin with
 * prefix (NULL: all of them; part NULL: every part) from the process's
 * resident memory, as ldm_st_release: a finished stage's weights stop
 * counting against the next stage's memory and are faulted back in from the
 * page cache when read again. */
void ldm_source_release(const ldm_source *s, const char *part, const char *prefix);

int64_t ldm_source_count(const ldm_source *s, const char *part);
const ldm_tensor *ldm_source_at(const ldm_source *s, const char *part,
                                int64_t i);
/* True if the folder has this subfolder with weights (always false for a
 * single file). */
bool ldm_source_has_part(const ldm_source *s, const char *part);
/* The part's config.json as text (NUL-terminated, owned by the source), or
 * NULL. For a single file: NULL. */
const char *ldm_source_config(const ldm_source *s, const char *part);
/* ldm_source_config, and when there is one its name for messages
 * ("<path>: <part>/config.json") in file (n bytes). */
const char *ldm_source_config_named(const ldm_source *s, const char *part, char *file, size_t n);
/* Path of a file inside the folder (e.g. "tokenizer/vocab.json") if it
 * exists, written to buf; NULL otherwise. */
const char *ldm_source_file(const ldm_source *s, const char *relpath,
                            char *buf, size_t n);
/* Metadata value of the (first) single file, or NULL. */
const char *ldm_source_metadata(const ldm_source *s, const char *key);

#endif
