/* `ldm samplers`: lists every sampler name the engine accepts (--sampler)
 * with the reference implementation it mirrors. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int ldm_cmd_samplers(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      printf("usage: ldm samplers\n"
             "Lists the sampler names accepted by --sampler and the reference\n"
             "(diffusers scheduler or k-diffusion function) each one mirrors.\n");
      return LDM_EXIT_OK;
    }
    return cli_fail(LDM_EXIT_USAGE, "samplers: unexpected argument '%s'", argv[i]);
  }
  const char *const *names = ldm_sampler_names();
  if (!names || !names[0])
    return cli_fail(LDM_EXIT_RUNTIME, "samplers: none in this build");
  printf("%-20s %s\n", "name", "mirrors");
  for (int i = 0; names[i]; i++) {
    const char *ref = ldm_sampler_reference(names[i]);
    printf("%-20s %s\n", names[i], ref ? ref : "?");
  }
  printf("\nRows marked \"as A1111's\" run k-diffusion on the discrete schedule as\n"
         "AUTOMATIC1111 does (its labels, e.g. \"DPM++ 2M Karras\", select them);\n"
         "\"A1111 label\" rows follow the diffusers scheduler, whose sigmas differ.\n");
  return LDM_EXIT_OK;
}
