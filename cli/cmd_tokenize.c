/* `ldm tokenize`: placeholder until the tokenizer lands. */
#include "cli.h"
int ldm_cmd_tokenize(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return cli_fail(LDM_EXIT_RUNTIME, "tokenize: not available in this build yet");
}
