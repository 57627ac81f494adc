/* `ldm samplers`: placeholder until the samplers land. */
#include "cli.h"
int ldm_cmd_samplers(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return cli_fail(LDM_EXIT_RUNTIME, "samplers: not available in this build yet");
}
