/* Fuzzing the safetensors reader. Built two ways: with clang
 * -fsanitize=fuzzer it is a libFuzzer target (LLVMFuzzerTestOneInput); in
 * the default build a deterministic mutation loop (seeded xorshift) feeds
 * thousands of corrupted files and touches every byte of every tensor the
 * reader accepts, so an out-of-mapping read crashes (or trips ASan). */
#include "io/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_path[256];

static unsigned touch_all(const ldm_st_file *f) {
  unsigned acc = 0;
  for (int64_t i = 0; i < ldm_st_count(f); i++) {
    const ldm_tensor *t = ldm_st_at(f, i);
    size_t n = (size_t)ldm_tensor_numel(t) * ldm_dtype_size(t->dtype);
    const unsigned char *p = t->data;
    for (size_t j = 0; j < n; j++) acc += p[j];
  }
  for (int64_t i = 0; i < ldm_st_metadata_count(f); i++) {
    const char *k, *v;
    ldm_st_metadata_at(f, i, &k, &v);
    acc += (unsigned)strlen(k) + (unsigned)strlen(v);
  }
  return acc;
}

/* Returns 1 if the reader accepted the bytes. */
static int one_input(const uint8_t *data, size_t size) {
  FILE *fp = fopen(tmp_path, "wb");
  if (!fp) return 0;
  if (size) fwrite(data, 1, size, fp);
  fclose(fp);
  ldm_error err = {0};
  ldm_st_file *f = NULL;
  if (ldm_st_open(&f, tmp_path, &err) != LDM_OK) {
    if (!err.msg[0]) {
      fprintf(stderr, "FAIL: rejected without a message\n");
      abort();
    }
    return 0;
  }
  volatile unsigned sink = touch_all(f);
  (void)sink;
  ldm_st_close(f);
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!tmp_path[0]) snprintf(tmp_path, sizeof tmp_path, "/tmp/ldm-fuzz-%d.safetensors", (int)getpid());
  one_input(data, size);
  return 0;
}

#ifndef LDM_LIBFUZZER
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 20000;
  snprintf(tmp_path, sizeof tmp_path, "/tmp/ldm-fuzz-%d.safetensors", (int)getpid());
  /* Seed file: three tensors and metadata. */
  const char *hdr =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
      "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
      "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[32,40]}}";
  size_t hl = strlen(hdr), seed_len = 8 + hl + 40;
  uint8_t *seed = calloc(1, seed_len), *buf = malloc(seed_len * 2 + 64);
  for (int i = 0; i < 8; i++) seed[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(seed + 8, hdr, hl);
  for (size_t i = 8 + hl; i < seed_len; i++) seed[i] = (uint8_t)i;
  int accepted = one_input(seed, seed_len);
  if (!accepted) {
    fprintf(stderr, "FAIL: the valid seed file was rejected\n");
    return 1;
  }
  const char *tokens[] = {"\"", "{", "}", "[", "]", ",", ":", "-1", "99999999999", "1e400", "\"F16\"",
                          "\"BF16\"", "null", "\\u0000", "\xff", "\"data_offsets\"", "0"};
  for (int it = 0; it < iters; it++) {
    size_t len = seed_len;
    memcpy(buf, seed, seed_len);
    int n_mut = 1 + (int)(next() % 4);
    for (int m = 0; m < n_mut; m++) {
      if (len == 0) break;
      size_t pos = (size_t)(next() % len);
      switch (next() % 6) {
        case 0: buf[pos] ^= (uint8_t)(1u << (next() % 8)); break;              /* bit flip */
        case 1: buf[pos] = (uint8_t)next(); break;                              /* byte */
        case 2: len = pos; break;                                               /* truncate */
        case 3: buf[next() % 8] = (uint8_t)next(); break;                       /* header length */
        case 4: {                                                               /* token splice */
          const char *t = tokens[next() % (sizeof tokens / sizeof *tokens)];
          size_t tl = strlen(t);
          if (pos < 8 || len + tl > seed_len * 2) break;
          memmove(buf + pos + tl, buf + pos, len - pos);
          memcpy(buf + pos, t, tl);
          len += tl;
          break;
        }
        default:                                                                /* digit change */
          if (pos >= 8 && buf[pos] >= '0' && buf[pos] <= '9') buf[pos] = (uint8_t)('0' + next() % 10);
      }
    }
    accepted += one_input(buf, len);
  }
  unlink(tmp_path);
  free(seed);
  free(buf);
  printf("fuzz-safetensors: %d inputs, %d accepted, no crash\n", iters + 1, accepted);
  return 0;
}
#endif
