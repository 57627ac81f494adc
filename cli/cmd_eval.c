/* `ldm eval <component> --model M --in IN.safetensors --out OUT.safetensors`:
 * the harness every model component plugs into (see ldm_eval_run). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void eval_usage(FILE *f) {
  fprintf(f,
          "usage: ldm eval <component> --model PATH --in IN.safetensors --out OUT.safetensors\n"
          "                [--threads N] [--options k=v,...]\ncomponents:");
  for (const char *const *c = ldm_eval_components(); *c; c++) fprintf(f, " %s", *c);
  fprintf(f, "\n");
}

int ldm_cmd_eval(int argc, char **argv) {
  ldm_eval_params p = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      eval_usage(stdout);
      return LDM_EXIT_OK;
    } else if (a[0] != '-' && !p.component) {
      p.component = a;
      continue;
    } else if (!v) {
      eval_usage(stderr);
      return cli_fail(LDM_EXIT_USAGE, "eval: option '%s' needs a value", a);
    }
    if (!strcmp(a, "--model")) p.model_path = v;
    else if (!strcmp(a, "--in")) p.in_path = v;
    else if (!strcmp(a, "--out")) p.out_path = v;
    else if (!strcmp(a, "--options")) p.options = v;
    else if (!strcmp(a, "--threads")) {
      if (cli_parse_int("--threads", v, 0, 1024, &p.threads)) return LDM_EXIT_USAGE;
    } else {
      eval_usage(stderr);
      return cli_fail(LDM_EXIT_USAGE, "eval: unknown option '%s'", a);
    }
    i++;
  }
  if (!p.component || !p.model_path || !p.in_path || !p.out_path) {
    eval_usage(stderr);
    return cli_fail(LDM_EXIT_USAGE, "eval: a component, --model, --in and --out are required");
  }
  ldm_error err = {0};
  ldm_status st = ldm_eval_run(&p, &err);
  if (st == LDM_ERR_INVALID_ARG) return cli_fail(LDM_EXIT_USAGE, "%s", err.msg);
  if (st != LDM_OK) return cli_fail(LDM_EXIT_RUNTIME, "%s", err.msg);
  return LDM_EXIT_OK;
}
