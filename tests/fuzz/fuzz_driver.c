/* main() for the fuzz targets outside libFuzzer (gcc builds, the `fuzz`
 * test suite): runs LLVMFuzzerTestOneInput on every seed file of the
 * folders given, then on ITERS deterministic mutations (seeded xorshift:
 * bit flips, byte sets, truncation, duplication and splices of other
 * seeds). A crash, a sanitizer report or an abort() in a target fails it.
 * usage: fuzz_X ITERS SEED_DIR... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

typedef struct seed {
  uint8_t *d;
  size_t n;
} seed;

static int load_dir(const char *dir, seed **seeds, int *n) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "fuzz: cannot open seed folder %s\n", dir);
    return -1;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > (1 << 24)) {
      fclose(f);
      continue;
    }
    uint8_t *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) == (size_t)len) {
      *seeds = realloc(*seeds, (size_t)(*n + 1) * sizeof **seeds);
      (*seeds)[(*n)++] = (seed){b, (size_t)len};
    } else {
      free(b);
    }
    fclose(f);
  }
  closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s ITERS SEED_DIR...\n", argv[0]);
    return 2;
  }
  long iters = atol(argv[1]);
  seed *seeds = NULL;
  int n = 0;
  for (int i = 2; i < argc; i++)
    if (load_dir(argv[i], &seeds, &n) != 0) return 1;
  if (n == 0) {
    fprintf(stderr, "fuzz: no seeds\n");
    return 1;
  }
  for (int i = 0; i < n; i++) LLVMFuzzerTestOneInput(seeds[i].d, seeds[i].n);
  size_t cap = 1 << 16;
  uint8_t *buf = malloc(cap);
  for (long it = 0; it < iters; it++) {
    const seed *s = &seeds[next() % (uint64_t)n];
    size_t len = s->n < cap ? s->n : cap;
    memcpy(buf, s->d, len);
    int muts = 1 + (int)(next() % 6);
    for (int m = 0; m < muts; m++) {
      size_t pos = len ? (size_t)(next() % len) : 0;
      switch (next() % 7) {
        case 0: if (len) buf[pos] ^= (uint8_t)(1u << (next() % 8)); break;
        case 1: if (len) buf[pos] = (uint8_t)next(); break;
        case 2: len = pos; break;
        case 3: { /* duplicate a slice */
          size_t l = len ? (size_t)(next() % (len - pos + 1)) : 0;
          if (len + l <= cap) {
            memmove(buf + pos + l, buf + pos, len - pos);
            len += l;
          }
          break;
        }
        case 4: { /* splice in part of another seed */
          const seed *o = &seeds[next() % (uint64_t)n];
          size_t off = o->n ? (size_t)(next() % o->n) : 0, l = o->n - off;
          if (l > 64) l = (size_t)(next() % 64);
          if (len + l <= cap) {
            memmove(buf + pos + l, buf + pos, len - pos);
            memcpy(buf + pos, o->d + off, l);
            len += l;
          }
          break;
        }
        case 5: if (len) buf[pos] = "0123456789-.:()[],\"\\\n "[next() % 22]; break;
        default: if (len >= 4) { uint32_t v = (uint32_t)next(); memcpy(buf + (pos > len - 4 ? len - 4 : pos), &v, 4); }
      }
    }
    LLVMFuzzerTestOneInput(buf, len);
  }
  printf("%s: %d seeds and %ld mutations, no crash\n", argv[0], n, iters);
  free(buf);
  for (int i = 0; i < n; i++) free(seeds[i].d);
  free(seeds);
  return 0;
}
