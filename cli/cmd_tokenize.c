/* `ldm tokenize [--model PATH] [--pad ID]`: reads prompts one per line on
 * stdin and prints, per prompt, the 77 CLIP token ids (start, tokens
 * truncated to 75, end, padding) separated by spaces. Without --model the
 * embedded OpenAI CLIP vocabulary is used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f) {
  fprintf(f,
          "usage: ldm tokenize [--model PATH] [--pad ID] < prompts.txt\n"
          "  Prints 77 CLIP token ids per input line.\n"
          "  --model PATH  checkpoint or diffusers folder (its tokenizer/ files when present)\n"
          "  --pad ID      padding id (default: the model's; end-of-text for CLIP-L)\n");
}

int ldm_cmd_tokenize(int argc, char **argv) {
  const char *model = NULL;
  int pad = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      help(stdout);
      return LDM_EXIT_OK;
    } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
      model = argv[++i];
    } else if (!strcmp(argv[i], "--pad") && i + 1 < argc) {
      if (cli_parse_int("--pad", argv[++i], 0, 1 << 30, &pad) != 0) return LDM_EXIT_USAGE;
    } else {
      help(stderr);
      return cli_fail(LDM_EXIT_USAGE, "tokenize: unexpected argument '%s'", argv[i]);
    }
  }
  ldm_error err = {0};
  ldm_tokenizer *tok = NULL;
  if (ldm_tokenizer_load(&tok, model, &err) != LDM_OK)
    return cli_fail(LDM_EXIT_RUNTIME, "%s", err.msg);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int rc = LDM_EXIT_OK;
  int32_t ids[77];
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
    if (strlen(line) != (size_t)n) {
      rc = cli_fail(LDM_EXIT_RUNTIME, "tokenize: input line contains a NUL byte");
      break;
    }
    if (ldm_tokenizer_encode(tok, line, ids, 77, pad, &err) != LDM_OK) {
      rc = cli_fail(LDM_EXIT_RUNTIME, "%s", err.msg);
      break;
    }
    for (int i = 0; i < 77; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
  }
  free(line);
  ldm_tokenizer_free(tok);
  if (fflush(stdout) != 0 && rc == LDM_EXIT_OK) rc = cli_fail(LDM_EXIT_RUNTIME, "tokenize: write error");
  return rc;
}
