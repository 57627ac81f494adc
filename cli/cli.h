/* The `ldm` command: one function per subcommand, each returning the exit
 * status (0 ok, 1 runtime error, 2 usage error). Uses only ldm.h. */
#ifndef LDM_CLI_H
#define LDM_CLI_H

#include "ldm.h"

#define LDM_EXIT_OK 0
#define LDM_EXIT_RUNTIME 1
#define LDM_EXIT_USAGE 2

int ldm_cmd_eval(int argc, char **argv);
int ldm_cmd_info(int argc, char **argv);
int ldm_cmd_ls(int argc, char **argv);
int ldm_cmd_tokenize(int argc, char **argv);
int ldm_cmd_samplers(int argc, char **argv);
int ldm_cmd_models(int argc, char **argv);
int ldm_cmd_generate(int argc, char **argv); /* txt2img|img2img|inpaint|outpaint|upscale */

/* `ldm info X.png`: prints its stored parameters; -1 if X is not a PNG. */
int cli_png_info(const char *path);
/* Prints "ldm: <msg>" to stderr (unless cli_quiet: the fuzz targets) and
 * returns code. */
extern bool cli_quiet;
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The value checks (values.c): each parses the whole of s into *out when
 * it is in range, else prints "ldm: <opt>: '<s>' is not ..." and returns
 * -1. `opt` names the source: "--steps", "a.png: stored 'Steps'". NaN and
 * Inf are never accepted. */
int cli_parse_int(const char *opt, const char *s, int lo, int hi, int *out);
int cli_parse_float(const char *opt, const char *s, float lo, float hi, float *out);
/* "-1" (*random = true) or an unsigned 64-bit integer. */
int cli_parse_seed(const char *opt, const char *s, bool *random, uint64_t *out);

/* AUTOMATIC1111's `parameters` text (recipe.c): the prompt, an optional
 * "Negative prompt: " part, and a last line of "Key: value" settings
 * (values in double quotes may hold commas). Calls fn for each setting in
 * order; stops at fn's first non-zero result and returns it. Returns -1
 * when the text has no settings line (no "Steps: " on the last line);
 * *prompt and *negative are malloc'd (NULL on -1). Linear in the text. */
typedef int (*recipe_setting_fn)(void *user, const char *key, const char *value);
int recipe_parse(const char *text, char **prompt, char **negative, recipe_setting_fn fn, void *user);

#endif
