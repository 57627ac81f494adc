/* Build-time helper: turns a binary file into a C source defining
 *   const unsigned char NAME[]; const unsigned long NAME_size;
 * so data such as the CLIP BPE merges is compiled into libldm without
 * needing xxd or Python on the build machine.
 * Usage: embed_bin INPUT OUTPUT NAME */
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s INPUT OUTPUT NAME\n", argv[0]);
    return 2;
  }
  FILE *in = fopen(argv[1], "rb");
  if (!in) {
    perror(argv[1]);
    return 1;
  }
  FILE *out = fopen(argv[2], "w");
  if (!out) {
    perror(argv[2]);
    fclose(in);
    return 1;
  }
  fprintf(out, "/* Generated from %s by embed_bin; do not edit. */\n", argv[1]);
  fprintf(out, "const unsigned char %s[] = {\n", argv[3]);
  unsigned long n = 0;
  int c;
  while ((c = fgetc(in)) != EOF) {
    fprintf(out, "%u,", (unsigned)c);
    if (++n % 24 == 0) fputc('\n', out);
  }
  if (n == 0) fprintf(out, "0");
  fprintf(out, "};\nconst unsigned long %s_size = %luUL;\n", argv[3], n);
  int bad = ferror(in) || ferror(out);
  fclose(in);
  if (fclose(out) != 0) bad = 1;
  return bad ? 1 : 0;
}
