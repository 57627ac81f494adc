/* `ldm`: the engine from the shell, for batch work and as the engine's test
 * harness. Subcommand dispatch and the shared helpers. */
#include "cli.h"
#include "png_io.h"

#include <signal.h>
#include <unistd.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} commands[] = {
    {"txt2img", ldm_cmd_generate, "generate images from a prompt"},
    {"img2img", ldm_cmd_generate, "refine an image (--init) with a prompt"},
    {"inpaint", ldm_cmd_generate, "repaint the masked part of an image"},
    {"outpaint", ldm_cmd_generate, "extend an image's canvas and fill it"},
    {"upscale", ldm_cmd_generate, "x4 super-resolution with the SD upscaler"},
    {"info", ldm_cmd_info, "describe a model file/folder or a generated PNG"},
    {"ls", ldm_cmd_ls, "list the tensors and metadata of a .safetensors file"},
    {"eval", ldm_cmd_eval, "run one model component on safetensors in/out"},
    {"tokenize", ldm_cmd_tokenize, "print CLIP token ids of prompts read from stdin"},
    {"samplers", ldm_cmd_samplers, "list samplers and the reference each mirrors"},
    {"models", ldm_cmd_models, "list the checkpoints, LoRAs, embeddings, ... in the model folders"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: ldm <command> [options]   (ldm <command> --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\nlibldm %s, cpu: %s, default threads: %d\nblas: %s\n", ldm_version(), ldm_cpu_features(),
          ldm_default_threads(), ldm_blas_info());
}

/* SIGINT / SIGTERM: remove a PNG being written (its temporary file), say
 * so in one line, exit 128 + the signal (130, 143). Nothing else is on
 * disk until an image is renamed into place. */
static void on_signal(int sig) {
  png_io_remove_partial();
  static const char i_msg[] = "\nldm: interrupted (SIGINT)\n", t_msg[] = "\nldm: terminated (SIGTERM)\n";
  ssize_t w = sig == SIGINT ? write(2, i_msg, sizeof i_msg - 1) : write(2, t_msg, sizeof t_msg - 1);
  (void)w;
  _exit(128 + sig);
}

int main(int argc, char **argv) {
  ldm_blas_tune(argv);
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  if (argc < 2) {
    usage(stderr);
    return LDM_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return LDM_EXIT_OK;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    printf("ldm %s\n", ldm_version());
    return LDM_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "ldm: unknown command '%s'\n", cmd);
  return cli_fail(LDM_EXIT_USAGE, "(see `ldm --help` for the commands)");
}
