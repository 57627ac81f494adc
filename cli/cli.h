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
/* Prints "ldm: <msg>" to stderr and returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a non-negative int option value or fails with a usage message. */
int cli_parse_int(const char *opt, const char *s, int lo, int hi, int *out);

#endif
