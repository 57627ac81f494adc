/* safetensors reader: round trip, metadata, lookup, and malformed files that
 * must each fail with an error naming the file (never crash, never read
 * outside the mapping; run under ASan in the sanitizer build); releasing the
 * mapped pages of a set of tensors. */
#include "ldm_test.h"
#include "io/source.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

/* Writes u64 header length (or `len_override` when non-zero) + header + data. */
static const char *make_file(const char *name, const char *header, uint64_t len_override, const void *data,
                             size_t data_len) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  uint64_t hl = len_override ? len_override : strlen(header);
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
  fwrite(b, 1, 8, f);
  fwrite(header, 1, strlen(header), f);
  if (data_len) fwrite(data, 1, data_len, f);
  fclose(f);
  return path;
}

static void expect_fail(const char *label, const char *path, ldm_status want) {
  ldm_error err = {0};
  ldm_st_file *f = NULL;
  ldm_status st = ldm_st_open(&f, path, &err);
  CHECK(st != LDM_OK && f == NULL, "%s: opened a malformed file", label);
  CHECK(want == LDM_OK || st == want, "%s: status %s, expected %s", label, ldm_status_str(st), ldm_status_str(want));
  CHECK(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", label, err.msg);
  printf("malformed %-28s -> %s\n", label, err.msg + strlen(path));
  ldm_st_close(f);
}

static void test_roundtrip(void) {
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint16_t h[3] = {0x3c00, 0x4000, 0xc000}; /* 1, 2, -2 in f16 */
  int64_t ids[2] = {49406, 49407};
  ldm_tensor ts[4] = {
      {.dtype = LDM_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = a, .name = "a.weight"},
      {.dtype = LDM_DTYPE_F16, .ndim = 1, .shape = {3}, .data = h, .name = "b"},
      {.dtype = LDM_DTYPE_I64, .ndim = 2, .shape = {1, 2}, .data = ids, .name = "ids"},
      {.dtype = LDM_DTYPE_F32, .ndim = 0, .shape = {0}, .data = a, .name = "scalar"},
  };
  char path[512];
  snprintf(path, sizeof path, "%s/ok.safetensors", dir);
  const char *meta[] = {"format", "pt", "family", "sd1", NULL};
  ldm_error err = {0};
  CHECK(ldm_st_write(path, ts, 4, meta, &err) == LDM_OK, "write: %s", err.msg);
  ldm_st_file *f = NULL;
  CHECK(ldm_st_open(&f, path, &err) == LDM_OK, "open: %s", err.msg);
  if (!f) return;
  CHECK(ldm_st_count(f) == 4, "count %lld", (long long)ldm_st_count(f));
  const ldm_tensor *t = ldm_st_find(f, "a.weight");
  CHECK(t && t->ndim == 2 && t->shape[1] == 3 && t->dtype == LDM_DTYPE_F32, "a.weight");
  if (t) CHECK(memcmp(t->data, a, sizeof a) == 0, "a.weight data");
  float got[3];
  t = ldm_st_find(f, "b");
  CHECK(t && ldm_tensor_read_f32(t, 0, 3, got, &err) == LDM_OK && got[0] == 1 && got[1] == 2 && got[2] == -2,
        "f16 read");
  CHECK(ldm_st_find(f, "nope") == NULL, "find missing");
  const ldm_tensor *req;
  CHECK(ldm_st_require(f, "nope", &req, &err) == LDM_ERR_MISSING && strstr(err.msg, "'nope'"), "require msg: %s",
        err.msg);
  CHECK(ldm_st_metadata_get(f, "family") && !strcmp(ldm_st_metadata_get(f, "family"), "sd1"), "metadata");
  t = ldm_st_find(f, "scalar");
  CHECK(t && t->ndim == 0 && ldm_tensor_numel(t) == 1, "0-d tensor");
  t = ldm_st_find(f, "ids");
  int64_t idv[2] = {0, 0};
  CHECK(t && t->dtype == LDM_DTYPE_I64 && ldm_tensor_read_i64(t, 0, 2, idv, &err) == LDM_OK && idv[1] == 49407,
        "i64");
  CHECK(ldm_tensor_read_f32(t, 0, 2, got, &err) == LDM_ERR_SHAPE, "i64 is not float");
  int64_t want[2] = {3, 2};
  CHECK(ldm_tensor_expect(ldm_st_find(f, "a.weight"), 2, want, &err) == LDM_ERR_SHAPE &&
            strstr(err.msg, "a.weight") && strstr(err.msg, "[2, 3]") && strstr(err.msg, "[3, 2]"),
        "expect msg: %s", err.msg);
  ldm_st_close(f);

  /* A model source over the same file. */
  ldm_source *s = NULL;
  CHECK(ldm_source_open(&s, path, &err) == LDM_OK, "source: %s", err.msg);
  if (s) {
    CHECK(!ldm_source_is_folder(s) && ldm_source_find(s, "unet", "b") != NULL, "source find");
    CHECK(ldm_source_count(s, NULL) == 4, "source count");
    ldm_source_close(s);
  }
  CHECK(ldm_source_open(&s, "/nonexistent/model.safetensors", &err) == LDM_ERR_IO &&
            strstr(err.msg, "/nonexistent/model.safetensors"),
        "source missing: %s", err.msg);
  char empty[600];
  snprintf(empty, sizeof empty, "%s/empty-folder", dir);
  mkdir(empty, 0755);
  CHECK(ldm_source_open(&s, empty, &err) == LDM_ERR_MISSING && strstr(err.msg, empty),
        "empty folder: %s", err.msg);
}

static void test_malformed(void) {
  char path[512];
  unsigned char data[64] = {0};

  snprintf(path, sizeof path, "%s/empty.safetensors", dir);
  fclose(fopen(path, "wb"));
  expect_fail("empty file", path, LDM_ERR_FORMAT);

  snprintf(path, sizeof path, "%s/short.safetensors", dir);
  FILE *f = fopen(path, "wb");
  fwrite("\x02\0\0\0\0\0\0", 1, 7, f);
  fclose(f);
  expect_fail("7-byte file", path, LDM_ERR_FORMAT);

  expect_fail("header past end", make_file("past.st", "{}", 4096, NULL, 0), LDM_ERR_FORMAT);
  {
    /* a header length 1..8 bytes past the end: refused before anything past
     * the file is read, with that reason (not a JSON error on what lies
     * beyond) */
    for (uint64_t over = 1; over <= 8; over++) {
      char name[32];
      snprintf(name, sizeof name, "over%llu.st", (unsigned long long)over);
      const char *p = make_file(name, "{}", 2 + over, NULL, 0);
      ldm_error e = {0};
      ldm_st_file *sf = NULL;
      ldm_status st = ldm_st_open(&sf, p, &e);
      CHECK(st == LDM_ERR_FORMAT && !sf && strstr(e.msg, "runs past the end"),
            "header length %llu bytes past the end: %s (%s)", (unsigned long long)over, ldm_status_str(st), e.msg);
      ldm_st_close(sf);
    }
    printf("malformed %-28s -> header length runs past the end\n", "header 1..8 bytes past end");
  }
  expect_fail("100 MB header", make_file("huge.st", "{}", 100u << 20, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("2^63 header length", make_file("h63.st", "{}", (uint64_t)1 << 63, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("zero header length", make_file("h0.st", "", 0, "xxxxxxxx", 8), LDM_ERR_FORMAT);
  expect_fail("not JSON", make_file("notjson.st", "{\"a\": [1, 2,}", 0, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("JSON array root", make_file("arr.st", "[1, 2, 3]", 0, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("non-UTF-8 name",
              make_file("utf8.st", "{\"a\xff\xfe\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                        0, data, 4),
              LDM_ERR_FORMAT);
  expect_fail("duplicate names",
              make_file("dup.st",
                        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                        " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                        0, data, 8),
              LDM_ERR_FORMAT);
  expect_fail("unknown dtype",
              make_file("dt.st", "{\"a\": {\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 0, data, 4),
              LDM_ERR_FORMAT);
  expect_fail("unsupported dtype F8",
              make_file("f8.st", "{\"a\": {\"dtype\": \"F8_E4M3\", \"shape\": [4], \"data_offsets\": [0, 4]}}", 0,
                        data, 4),
              LDM_ERR_UNSUPPORTED);
  expect_fail("dtype not a string",
              make_file("dtn.st", "{\"a\": {\"dtype\": 3, \"shape\": [1], \"data_offsets\": [0, 4]}}", 0, data, 4),
              LDM_ERR_FORMAT);
  expect_fail("negative dim",
              make_file("neg.st", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 0,
                        data, 4),
              LDM_ERR_FORMAT);
  expect_fail("fractional dim",
              make_file("frac.st", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 0,
                        data, 4),
              LDM_ERR_FORMAT);
  expect_fail("5-D tensor",
              make_file("5d.st",
                        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], \"data_offsets\": [0, 4]}}", 0, data,
                        4),
              LDM_ERR_UNSUPPORTED);
  expect_fail("shape overflow",
              make_file("ovf.st",
                        "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4], "
                        "\"data_offsets\": [0, 4]}}",
                        0, data, 4),
              LDM_ERR_FORMAT);
  expect_fail("missing data_offsets",
              make_file("nooff.st", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 0, data, 4), LDM_ERR_FORMAT);
  expect_fail("three data_offsets",
              make_file("off3.st", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 0,
                        data, 8),
              LDM_ERR_FORMAT);
  expect_fail("end before begin",
              make_file("rev.st", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 0, data,
                        8),
              LDM_ERR_FORMAT);
  expect_fail("offsets past data (truncated)",
              make_file("trunc.st", "{\"a\": {\"dtype\": \"F32\", \"shape\": [16], \"data_offsets\": [0, 64]}}", 0,
                        data, 32),
              LDM_ERR_FORMAT);
  /* The data section's last byte is the limit: a tensor ending one byte past
   * it is refused (the other truncations here are >= 32 bytes short), one
   * ending exactly on it opens. */
  expect_fail("data end 1 byte past the data section",
              make_file("past1.st",
                        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                        " \"b\": {\"dtype\": \"U8\", \"shape\": [5], \"data_offsets\": [4, 9]}}",
                        0, data, 8),
              LDM_ERR_FORMAT);
  {
    const char *p = make_file("end0.st",
                              "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                              " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]}}",
                              0, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    ldm_error e = {0};
    ldm_st_file *sf = NULL;
    ldm_status st = ldm_st_open(&sf, p, &e);
    CHECK(st == LDM_OK, "data end exactly at the data section's end: %s (%s)", ldm_status_str(st), e.msg);
    const ldm_tensor *tb = sf ? ldm_st_find(sf, "b") : NULL;
    CHECK(tb && ((const unsigned char *)tb->data)[3] == 8, "data end exactly at the end: last byte not read back");
    printf("accepted  %-28s -> b ends on the file's last byte\n", "data end at the data section");
    ldm_st_close(sf);
  }
  expect_fail("shape x dtype != bytes",
              make_file("size.st", "{\"a\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 0,
                        data, 8),
              LDM_ERR_FORMAT);
  expect_fail("overlapping tensors",
              make_file("overlap.st",
                        "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                        " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                        0, data, 12),
              LDM_ERR_FORMAT);
  expect_fail("metadata not strings",
              make_file("meta.st", "{\"__metadata__\": {\"k\": 3}}", 0, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("metadata not object", make_file("meta2.st", "{\"__metadata__\": [1]}", 0, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("entry not an object", make_file("entry.st", "{\"a\": 5}", 0, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("offsets negative",
              make_file("offneg.st", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 0,
                        data, 4),
              LDM_ERR_FORMAT);
  expect_fail("trailing garbage in header", make_file("garb.st", "{} xx", 0, NULL, 0), LDM_ERR_FORMAT);
  expect_fail("NUL inside header", make_file("nul.st", "{}", 3, "\0", 1), LDM_ERR_FORMAT);

  /* Cut a valid file in the middle of its data. */
  float a[64] = {0};
  ldm_tensor t = {.dtype = LDM_DTYPE_F32, .ndim = 1, .shape = {64}, .data = a, .name = "w"};
  snprintf(path, sizeof path, "%s/cut.safetensors", dir);
  ldm_error err = {0};
  CHECK(ldm_st_write(path, &t, 1, NULL, &err) == LDM_OK, "write: %s", err.msg);
  CHECK(truncate(path, 100) == 0, "truncate");
  expect_fail("truncated real file", path, LDM_ERR_FORMAT);

  expect_fail("a folder", dir, LDM_ERR_IO);
  snprintf(path, sizeof path, "%s/does-not-exist.safetensors", dir);
  expect_fail("missing file", path, LDM_ERR_IO);
}

/* Resident file-backed memory of this process in KiB (Linux), -1 where
 * /proc/self/status does not say. */
static long rss_file_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "RssFile: %ld", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

static unsigned touch(const ldm_tensor *t) {
  unsigned sum = 0;
  const unsigned char *p = t->data;
  size_t n = (size_t)ldm_tensor_numel(t) * ldm_dtype_size(t->dtype);
  for (size_t i = 0; i < n; i += 512) sum += p[i];
  return sum;
}

/* ldm_source_release: the pages of the named tensors leave the process's
 * resident memory (RssFile drops by their size: less the two part-pages at
 * the ends of a run and up to 64 KiB of other file pages the test may fault
 * in meanwhile, plus for the whole file the header and the part-pages that
 * earlier runs left); reading them again gives the same bytes. */
static void test_release(void) {
  enum { MI = 1 << 20 };
  static float text[MI], unet[2 * MI], vae[MI / 4];
  float bias[3] = {1, 2, 3};
  for (int i = 0; i < 2 * MI; i++) {
    unet[i] = (float)(i % 1021) * 0.5f;
    if (i < MI) text[i] = (float)(i % 509);
    if (i < MI / 4) vae[i] = -(float)(i % 251);
  }
  ldm_tensor ts[4] = {
      {.dtype = LDM_DTYPE_F32, .ndim = 1, .shape = {MI}, .data = text, .name = "text.w"},
      {.dtype = LDM_DTYPE_F32, .ndim = 1, .shape = {2 * MI}, .data = unet, .name = "unet.w"},
      {.dtype = LDM_DTYPE_F32, .ndim = 1, .shape = {3}, .data = bias, .name = "unet.b"},
      {.dtype = LDM_DTYPE_F32, .ndim = 1, .shape = {MI / 4}, .data = vae, .name = "vae.w"},
  };
  char path[512];
  snprintf(path, sizeof path, "%s/release.safetensors", dir);
  ldm_error err = {0};
  CHECK(ldm_st_write(path, ts, 4, NULL, &err) == LDM_OK, "write: %s", err.msg);
  ldm_source *s = NULL;
  CHECK(ldm_source_open(&s, path, &err) == LDM_OK, "source: %s", err.msg);
  if (!s) return;
  const ldm_tensor *t[4];
  unsigned sum = 0;
  for (int i = 0; i < 4; i++) {
    t[i] = ldm_source_find(s, NULL, ts[i].name);
    CHECK(t[i] != NULL, "%s", ts[i].name);
    if (!t[i]) goto done;
    sum += touch(t[i]);
  }
  struct {
    const char *prefix;
    long want_kib; /* bytes of the tensors released */
  } steps[] = {
      {"unet.", (long)(sizeof unet + sizeof bias) >> 10},
      {"nothing.", 0},
      {"text.", (long)sizeof text >> 10},
      {NULL, (long)sizeof vae >> 10}, /* the whole file: vae.w is all that is left resident */
  };
  (void)rss_file_kib(); /* its own code pages faulted in first */
  for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
    long before = rss_file_kib();
    ldm_source_release(s, NULL, steps[k].prefix);
    long after = rss_file_kib(), drop = before - after, want = steps[k].want_kib;
    if (before < 0) {
      printf("release %s: no RssFile in /proc/self/status, residency not checked\n", steps[k].prefix);
      continue;
    }
    bool ok = drop >= want - 8 - 64 && drop <= want + 16;
    printf("release %-8s: RssFile -%ld KiB, tensors %ld KiB (tol -72 / +16 KiB)%s\n",
           steps[k].prefix ? steps[k].prefix : "(all)", drop, want, ok ? "" : " FAIL");
    CHECK(ok, "release %s: RssFile dropped %ld KiB, expected %ld", steps[k].prefix ? steps[k].prefix : "(all)", drop,
          want);
  }
  /* faulted back in: the same bytes */
  CHECK(memcmp(t[0]->data, text, sizeof text) == 0 && memcmp(t[1]->data, unet, sizeof unet) == 0 &&
            memcmp(t[2]->data, bias, sizeof bias) == 0 && memcmp(t[3]->data, vae, sizeof vae) == 0,
        "data after release differs");
  unsigned sum2 = 0;
  for (int i = 0; i < 4; i++) sum2 += touch(t[i]);
  CHECK(sum2 == sum, "checksum after release %u, before %u", sum2, sum);
done:
  ldm_source_close(s);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/ldm-st-test-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_roundtrip();
  test_malformed();
  test_release();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
  return ldm_test_finish("safetensors");
}
