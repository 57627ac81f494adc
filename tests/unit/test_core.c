/* Core: f16/bf16 conversion (exact against known bit patterns, scalar vs
 * dispatched bulk path), arena marks/peak, thread pool coverage, status. */
#include "ldm_test.h"
#include "core/arena.h"
#include "core/half.h"
#include "core/threads.h"

#include <stdatomic.h>

static void test_half(void) {
  /* Known encodings (IEEE 754 binary16 / bfloat16). */
  struct { float f; uint16_t h; } cases[] = {
      {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
      {6.103515625e-05f, 0x0400}, {5.960464477539063e-08f, 0x0001}, {0.333251953125f, 0x3555},
      {1e9f, 0x7c00}, {2.98023223876953125e-08f, 0x0000} /* ties to even -> 0 */,
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    CHECK(ldm_f32_to_f16(cases[i].f) == cases[i].h, "f32->f16 %g: got %04x want %04x", cases[i].f,
          ldm_f32_to_f16(cases[i].f), cases[i].h);
    if (cases[i].h != 0x7c00 && i != 9)
      CHECK(ldm_f16_to_f32(cases[i].h) == cases[i].f, "f16->f32 %04x", cases[i].h);
  }
  CHECK(ldm_f32_to_bf16(1.0f) == 0x3f80 && ldm_f32_to_bf16(-2.0f) == 0xc000, "bf16 encode");
  CHECK(ldm_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 ties to even"); /* 1 + 2^-8 */
  CHECK(ldm_bf16_to_f32(0x4049) == 3.140625f, "bf16 decode");
  /* Every f16 pattern: bulk (dispatched) path == scalar path, round trip exact. */
  static uint16_t all[65536];
  static float fl[65536];
  for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
  ldm_convert_f16_to_f32(fl, all, 65536);
  int mism = 0, rt = 0;
  for (int i = 0; i < 65536; i++) {
    float s = ldm_f16_to_f32(all[i]);
    /* F16C quiets signalling NaNs; any NaN is fine for a NaN input. */
    if (s != s ? fl[i] == fl[i] : memcmp(&s, &fl[i], 4) != 0) mism++;
    if (((i >> 10) & 0x1f) != 0x1f && ldm_f32_to_f16(s) != all[i]) rt++;
  }
  CHECK(mism == 0, "f16 bulk vs scalar: %d mismatches", mism);
  CHECK(rt == 0, "f16 round trip: %d mismatches", rt);
  static uint16_t back[65536];
  ldm_convert_f32_to_f16(back, fl, 65536);
  mism = 0;
  for (int i = 0; i < 65536; i++)
    if (((i >> 10) & 0x1f) != 0x1f && back[i] != all[i]) mism++;
  CHECK(mism == 0, "f16 bulk encode: %d mismatches", mism);
  ldm_convert_bf16_to_f32(fl, all, 65536);
  mism = 0;
  for (int i = 0; i < 65536; i++) {
    float s = ldm_bf16_to_f32(all[i]);
    if (memcmp(&s, &fl[i], 4) != 0) mism++;
  }
  CHECK(mism == 0, "bf16 bulk vs scalar: %d mismatches", mism);
  printf("half: all 65536 f16/bf16 patterns checked\n");
}

static void test_arena(void) {
  ldm_arena *a = ldm_arena_new(1024);
  CHECK(a != NULL, "arena");
  ldm_arena_mark m0 = ldm_arena_get_mark(a);
  char *p1 = ldm_arena_alloc(a, 100);
  char *p2 = ldm_arena_alloc(a, 5000); /* new block */
  CHECK(p1 && p2 && ((uintptr_t)p1 % 64) == 0 && ((uintptr_t)p2 % 64) == 0, "aligned");
  memset(p2, 1, 5000);
  size_t peak = ldm_arena_peak(a);
  CHECK(peak >= 5100, "peak %zu", peak);
  ldm_arena_reset(a, m0);
  CHECK(ldm_arena_in_use(a) == 0, "reset");
  size_t reserved = ldm_arena_reserved(a);
  for (int pass = 0; pass < 3; pass++) { /* same pattern: no new blocks */
    ldm_arena_mark m = ldm_arena_get_mark(a);
    CHECK(ldm_arena_alloc(a, 100) && ldm_arena_alloc(a, 5000), "realloc");
    ldm_arena_reset(a, m);
  }
  CHECK(ldm_arena_reserved(a) == reserved, "blocks reused: %zu vs %zu", ldm_arena_reserved(a), reserved);
  /* trim: blocks past the current one go, what is in use stays valid */
  char *keep = ldm_arena_alloc(a, 100);
  CHECK(keep != NULL, "alloc before trim");
  memset(keep, 7, 100);
  ldm_arena_mark mk = ldm_arena_get_mark(a);
  ldm_arena_trim(a);
  CHECK(ldm_arena_reserved(a) == 1024, "trim kept %zu bytes (want the first 1024-byte block)", ldm_arena_reserved(a));
  CHECK(keep[0] == 7 && keep[99] == 7 && ldm_arena_in_use(a) == 128, "trim kept the data in use");
  char *p3 = ldm_arena_alloc(a, 5000); /* a new block again */
  CHECK(p3 != NULL && ldm_arena_reserved(a) > 1024, "alloc after trim");
  ldm_arena_reset(a, mk);
  ldm_arena_reset(a, m0);
  CHECK(ldm_arena_alloc(a, SIZE_MAX - 10) == NULL, "overflow returns NULL");
  CHECK(ldm_arena_floats(a, SIZE_MAX / 2) == NULL, "float overflow returns NULL");
  ldm_arena_free(a);
  ldm_arena_free(NULL);
}

static atomic_int hits[1000];
static void touch(void *u, int64_t i) {
  (void)u;
  atomic_fetch_add(&hits[i], 1);
}

static void test_pool(void) {
  for (int nt = 1; nt <= 4; nt++) {
    ldm_pool *p = ldm_pool_new(nt);
    CHECK(p && ldm_pool_size(p) == nt, "pool %d", nt);
    for (int rep = 0; rep < 50; rep++) {
      for (int i = 0; i < 1000; i++) atomic_store(&hits[i], 0);
      int n = 1 + rep * 19 % 1000;
      ldm_pool_for(p, n, touch, NULL);
      int bad = 0;
      for (int i = 0; i < 1000; i++) bad += atomic_load(&hits[i]) != (i < n ? 1 : 0);
      CHECK(bad == 0, "pool %d rep %d: %d wrong", nt, rep, bad);
    }
    ldm_pool_free(p);
  }
  ldm_pool_for(NULL, 10, touch, NULL);
  CHECK(ldm_default_threads() >= 1, "threads");
}

static void test_status(void) {
  ldm_error err;
  ldm_error_clear(&err);
  CHECK(err.status == LDM_OK && err.msg[0] == 0, "clear");
  for (int s = LDM_OK; s <= LDM_ERR_INTERNAL; s++) CHECK(strlen(ldm_status_str((ldm_status)s)) > 0, "str %d", s);
  ldm_eval_params p = {.component = "nope", .model_path = "m", .in_path = "i", .out_path = "o"};
  CHECK(ldm_eval_run(&p, &err) == LDM_ERR_INVALID_ARG && strstr(err.msg, "nope") && strstr(err.msg, "unet"),
        "eval unknown component: %s", err.msg);
  p.component = "unet";
  p.model_path = NULL;
  CHECK(ldm_eval_run(&p, &err) == LDM_ERR_INVALID_ARG, "eval without model");
  ldm_image *img = ldm_image_new(3, 2, 4, LDM_PIXEL_F32);
  CHECK(img && img->stride == 3 * 4 * sizeof(float), "image");
  ldm_image_free(img);
  CHECK(ldm_image_new(0, 2, 3, LDM_PIXEL_U8) == NULL && ldm_image_new(2, 2, 2, LDM_PIXEL_U8) == NULL, "bad image");
  CHECK(ldm_peak_rss_bytes() > 0, "rss");
}

int main(void) {
  test_half();
  test_arena();
  test_pool();
  test_status();
  return ldm_test_finish("core");
}
