/* `ldm txt2img|img2img|inpaint|outpaint|upscale`: placeholder until the
 * pipelines land; reports the engine's message. */
#include "cli.h"

#include <stdio.h>

int ldm_cmd_generate(int argc, char **argv) {
  (void)argc;
  return cli_fail(LDM_EXIT_RUNTIME, "%s: generation pipelines are not available in this build yet", argv[0]);
}
