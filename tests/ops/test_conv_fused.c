/* ldm_conv2d_fused (ops/conv_fused.h): y = relu?(conv2d(x) + res) against
 * the naive convolution followed by the add and the ReLU, on shapes that
 * take each path: Winograd F(4x4) and F(2x2) on the own kernel (epilogue in
 * the output transform) and through the GEMM (Cout not a multiple of 16),
 * im2col and a stride-2 conv (epilogue as a pass after).
 * Tolerance: the ops' |a - r| <= 1e-5 + 1e-4 |r| (STYLE.md). */
#include "ldm_test.h"
#include "core/arena.h"
#include "core/threads.h"
#include "ops/conv_fused.h"
#include "ops/ops.h"

static unsigned seed = 4242;
static float rnd(void) {
  seed = seed * 1103515245u + 12345u;
  return (float)((seed >> 16) & 0x7fff) / 16384.0f - 1.0f;
}

typedef struct fused_case {
  const char *name;
  int H, W, Cin, Cout, stride;
  bool res, relu;
} fused_case;

static void test_case(ldm_ctx *ctx, const fused_case *c) {
  int Ho = ldm_conv_out(c->H, 3, c->stride, 1), Wo = ldm_conv_out(c->W, 3, c->stride, 1);
  int64_t wn = (int64_t)c->Cout * c->Cin * 9, xn = (int64_t)c->H * c->W * c->Cin, yn = (int64_t)Ho * Wo * c->Cout;
  float *w = malloc((size_t)wn * sizeof(float)), *b = malloc((size_t)c->Cout * sizeof(float));
  float *x = malloc((size_t)xn * sizeof(float)), *r = malloc((size_t)yn * sizeof(float));
  float *y = malloc((size_t)yn * sizeof(float)), *ref = malloc((size_t)yn * sizeof(float));
  float scale = 1.0f / (3.0f * sqrtf((float)c->Cin));
  for (int64_t i = 0; i < wn; i++) w[i] = scale * rnd();
  for (int i = 0; i < c->Cout; i++) b[i] = 0.3f * rnd();
  for (int64_t i = 0; i < xn; i++) x[i] = rnd();
  for (int64_t i = 0; i < yn; i++) r[i] = rnd();
  ldm_tensor wt = {.dtype = LDM_DTYPE_F32, .ndim = 4, .shape = {c->Cout, c->Cin, 3, 3}, .data = w, .name = "w"};
  ldm_tensor bt = {.dtype = LDM_DTYPE_F32, .ndim = 1, .shape = {c->Cout}, .data = b, .name = "b"};
  CHECK(ldm_conv2d_naive(ctx, ref, x, 1, c->H, c->W, c->Cin, &wt, &bt, c->stride, 1) == LDM_OK, "%s: naive",
        c->name);
  for (int64_t i = 0; i < yn; i++) {
    float v = ref[i] + (c->res ? r[i] : 0.0f);
    ref[i] = c->relu && v < 0.0f ? 0.0f : v;
  }
  CHECK(ldm_conv2d_fused(ctx, y, x, 1, c->H, c->W, c->Cin, &wt, &bt, c->stride, 1, c->res ? r : NULL,
                         c->relu) == LDM_OK,
        "%s: %s", c->name, ctx->err->msg);
  ldm_test_close(c->name, y, ref, yn, 1e-5, 1e-4);
  free(w), free(b), free(x), free(r), free(y), free(ref);
}

int main(void) {
  ldm_error err = {0};
  ldm_ctx ctx = {.pool = ldm_pool_new(2), .threads = 2, .scratch = ldm_arena_new(0), .err = &err};
  /* F(4x4) from 256 tiles of 4x4 on (LDM_CONV_WINOGRAD4_MIN_TILES): 33 x 32; F(2x2) at 6 x 5 */
  const fused_case cases[] = {
      {"conv_fused winograd4 own kernel, +res relu", 130, 126, 32, 48, 1, true, true},
      {"conv_fused winograd4 own kernel, relu", 130, 126, 32, 48, 1, false, true},
      {"conv_fused winograd4 own kernel, +res", 130, 126, 32, 48, 1, true, false},
      {"conv_fused winograd4 gemm, +res relu", 130, 126, 32, 40, 1, true, true},
      {"conv_fused winograd2 own kernel, +res relu", 21, 19, 32, 48, 1, true, true},
      {"conv_fused winograd2 gemm, +res relu", 21, 19, 32, 40, 1, true, true},
      {"conv_fused im2col, +res relu", 21, 19, 8, 16, 1, true, true},
      {"conv_fused stride 2, relu", 21, 19, 16, 16, 2, false, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_case(&ctx, &cases[i]);
  ldm_arena_free(ctx.scratch);
  ldm_pool_free(ctx.pool);
  return ldm_test_finish("conv_fused");
}
