/* LoRA add-ons: low-rank weight deltas W' = W + m * (alpha / rank) * up @ down
 * merged into a model's weights, as diffusers' load_lora_weights + fuse_lora
 * and AUTOMATIC1111's networks extension apply them. Reads the kohya-ss /
 * A1111 naming (lora_unet_*, lora_te_*, lora_te1_*, lora_te2_*; .lora_down /
 * .lora_up / .alpha; LoCon: 3x3 down, 1x1 up) and the diffusers / PEFT naming
 * (unet.*, text_encoder.*, text_encoder_2.*; .lora_A / .lora_B, optional
 * .alpha; the older .lora.down / .lora.up, .lora_linear_layer.down / .up and
 * .processor.to_q_lora.down / .up). Other LyCORIS types are refused by name.
 *
 * The model file is never touched: each network registers the weights a LoRA
 * may change in an ldm_lora_table (module name -> bound tensor); merging
 * makes an f32 copy of a weight the first time a LoRA touches it, adds the
 * deltas there and rebinds the tensor to the copy; restoring rebinds the
 * file's view and frees the copies. */
#ifndef LDM_IO_LORA_H
#define LDM_IO_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include "core/tensor.h"
#include "core/threads.h"

typedef enum ldm_lora_part {
  LDM_LORA_UNET = 0,   /* lora_unet_*, unet.* */
  LDM_LORA_TE1,        /* lora_te_*, lora_te1_*, text_encoder.* (CLIP-L, OpenCLIP-H) */
  LDM_LORA_TE2,        /* lora_te2_*, text_encoder_2.* (SDXL's OpenCLIP-bigG) */
  LDM_LORA_PARTS
} ldm_lora_part;

typedef struct ldm_lora_module {
  ldm_lora_part part;
  char key[176];       /* module path with '.' as '_': "down_blocks_0_attentions_0_proj_in" */
  char alt[176];       /* the original single-file path the same way, or "" */
  ldm_tensor *w;       /* the network's bound weight */
  ldm_tensor orig;     /* its view of the model file */
  float *merged;       /* f32 weight + deltas (owned), NULL while unchanged */
} ldm_lora_module;

typedef struct ldm_lora_table {
  ldm_lora_module *mods;
  int n, cap;
} ldm_lora_table;

/* Registers weight w (already bound) under a diffusers / transformers module
 * path ("down_blocks.0.attentions.0.proj_in") and optionally an original
 * one. */
ldm_status ldm_lora_table_add(ldm_lora_table *t, ldm_lora_part part, const char *path,
                              const char *alt, ldm_tensor *w);
/* Rebinds every weight to the file's view and frees the merged copies. */
void ldm_lora_table_restore(ldm_lora_table *t);
/* Frees the copies and the table (the owner is freeing its weights). */
void ldm_lora_table_deinit(ldm_lora_table *t);
/* Bytes held by merged copies. */
size_t ldm_lora_table_bytes(const ldm_lora_table *t);

/* One LoRA to merge: file and multipliers for the text encoders and the UNet
 * (A1111's <lora:name:te:unet>; both the same in the usual case). */
typedef struct ldm_lora_ref {
  const char *path;
  float mult_te, mult_unet;
} ldm_lora_ref;

/* Merges the LoRAs in order into the tables (each table's modules carry their
 * part). A module of a part that has a table but no matching weight, or a
 * weight of another shape, is an error naming the module, the model's
 * family (model_family, for the message) and the family the LoRA's shapes
 * point to. skip_absent: modules of parts no table covers are skipped (the
 * component harness loads one network); otherwise they are errors too.
 * On error the tables are restored. */
ldm_status ldm_lora_merge(ldm_ctx *ctx, const ldm_lora_ref *loras, int n, ldm_lora_table *const *tables,
                          int n_tables, const char *model_family, bool skip_absent, ldm_error *err);

/* "path[:mult][;path[:mult]...]" -> refs (paths point into *buf, which the
 * caller frees). mult defaults to 1. */
ldm_status ldm_lora_parse_list(const char *spec, ldm_lora_ref **refs, int *n, char **buf, ldm_error *err);

/* The family a LoRA file's shapes point to: "sd1", "sd2", "sdxl" or "unknown". */
ldm_status ldm_lora_file_family(const char *path, char *out, size_t n, ldm_error *err);

/* The eval harness's lora=PATH[:MULT][;PATH[:MULT]...] option
 * (core/eval_options.h): merges those LoRAs into the tables (modules of
 * networks not loaded are skipped). */
ldm_status ldm_eval_apply_loras(const ldm_eval_params *p, ldm_lora_table *tables, int n, const char *family,
                                ldm_error *err);

#endif
