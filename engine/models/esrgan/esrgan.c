/* RRDBNet and SRVGGNetCompact (esrgan.h): detection from the state dict as
 * spandrel's ESRGANArch / CompactArch do, loading by the original names, and
 * the forward passes step for step as spandrel's RRDB.py / SRVGG.py modules
 * (channels-last, one image per call). */
#include "models/esrgan/esrgan.h"
#include "core/arena.h"
#include "core/status.h"
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sr_conv {
  const ldm_tensor *w;      /* [Cout, Cin, 3, 3] */
  const ldm_tensor *b;      /* [Cout] */
} sr_conv;

struct ldm_sr {
  ldm_sr_config c;
  char path[512];
  /* RRDBNet */
  sr_conv first;            /* conv_first / model.0: [nf, in_nc, 3, 3] */
  sr_conv *rdb;             /* [n_blocks][3 RDBs][5 convs]: conv k in: nf + (k-1) gc, out: gc (k < 5) or nf */
  sr_conv body;             /* conv_body / model.1.sub.NB: [nf, nf, 3, 3] */
  sr_conv up[4];            /* conv_upK / model.3K: [nf, nf, 3, 3] after nearest x2 */
  sr_conv hr;               /* conv_hr: [nf, nf, 3, 3] */
  sr_conv last;             /* conv_last: [out_nc, nf, 3, 3] */
  /* SRVGGNetCompact */
  sr_conv *convs;           /* body.{2i}: n_blocks + 2 convs, the last [out_nc*s*s, nf, 3, 3] */
  float *prelu;             /* body.{2i+1}: [n_blocks + 1][nf] */
};

enum { RRDB_MAX_UP = 4 };
#define LRELU_SLOPE 0.2f  /* spandrel block.act("leakyrelu"), basicsr's RRDBNet */
#define RES_SCALE 0.2f    /* x5 * 0.2 + x, out * 0.2 + x */

/* ---- names ------------------------------------------------------------------ */

static void name_first(const ldm_sr_config *c, char *b, size_t n) {
  snprintf(b, n, "%s", c->keys == LDM_SR_KEYS_OLD ? "model.0" : "conv_first");
}
static void name_rdb(const ldm_sr_config *c, int blk, int r, int k, char *b, size_t n) {
  if (c->keys == LDM_SR_KEYS_OLD) snprintf(b, n, "model.1.sub.%d.RDB%d.conv%d.0", blk, r, k);
  else if (c->keys == LDM_SR_KEYS_REALESRGAN) snprintf(b, n, "body.%d.rdb%d.conv%d", blk, r, k);
  else snprintf(b, n, "RRDB_trunk.%d.RDB%d.conv%d", blk, r, k);
}
static void name_body(const ldm_sr_config *c, char *b, size_t n) {
  if (c->keys == LDM_SR_KEYS_OLD) snprintf(b, n, "model.1.sub.%d", c->n_blocks);
  else snprintf(b, n, "%s", c->keys == LDM_SR_KEYS_REALESRGAN ? "conv_body" : "trunk_conv");
}
static void name_up(const ldm_sr_config *c, int k, char *b, size_t n) { /* k from 0 */
  if (c->keys == LDM_SR_KEYS_OLD) snprintf(b, n, "model.%d", 3 * (k + 1));
  else snprintf(b, n, c->keys == LDM_SR_KEYS_REALESRGAN ? "conv_up%d" : "upconv%d", k + 1);
}
static void name_hr(const ldm_sr_config *c, char *b, size_t n) {
  if (c->keys == LDM_SR_KEYS_OLD) snprintf(b, n, "model.%d", 3 * c->n_up + 2);
  else snprintf(b, n, "%s", c->keys == LDM_SR_KEYS_REALESRGAN ? "conv_hr" : "HRconv");
}
static void name_last(const ldm_sr_config *c, char *b, size_t n) {
  if (c->keys == LDM_SR_KEYS_OLD) snprintf(b, n, "model.%d", 3 * c->n_up + 4);
  else snprintf(b, n, "conv_last");
}

static const ldm_tensor *find_w(const ldm_source *src, const char *base) {
  char n[192];
  snprintf(n, sizeof n, "%s.weight", base);
  return ldm_source_find(src, NULL, n);
}

/* Largest integer following `prefix` in any key (prefix "model.1.sub."
 * -> the N of model.1.sub.N.*), or -1. */
static int max_index(const ldm_source *src, const char *prefix, const char *must_contain) {
  int best = -1;
  size_t pl = strlen(prefix);
  int64_t n = ldm_source_count(src, NULL);
  for (int64_t i = 0; i < n; i++) {
    const ldm_tensor *t = ldm_source_at(src, NULL, i);
    if (!t->name || strncmp(t->name, prefix, pl) != 0) continue;
    const char *p = t->name + pl;
    if (*p < '0' || *p > '9') continue;
    char *end;
    long v = strtol(p, &end, 10);
    if (*end != '.' || v > 100000) continue;
    if (must_contain && !strstr(end, must_contain)) continue;
    if (v > best) best = (int)v;
  }
  return best;
}

static bool is_square(int64_t n, int *root) {
  int r = (int)llround(sqrt((double)n));
  if ((int64_t)r * r != n) return false;
  *root = r;
  return true;
}

/* ---- detection -------------------------------------------------------------- */

void ldm_sr_describe(const ldm_sr_config *c, char *buf, size_t n) {
  static const char *keys[] = {"old ESRGAN keys", "Real-ESRGAN keys", "BSRGAN keys", ""};
  if (c->arch == LDM_SR_RRDB)
    snprintf(buf, n, "RRDBNet (%s), %d blocks, %d features%s, x%d", keys[c->keys], c->n_blocks, c->nf,
             c->shuffle > 1 ? ", pixel-unshuffle" : "", c->scale);
  else if (c->arch == LDM_SR_COMPACT)
    snprintf(buf, n, "SRVGGNetCompact, %d convs, %d features, x%d", c->n_blocks, c->nf, c->scale);
  else
    snprintf(buf, n, "none");
}

static ldm_status probe_rrdb(const ldm_source *src, ldm_sr_config *c, ldm_error *err) {
  const char *path = ldm_source_path(src);
  char nm[160];
  const ldm_tensor *w;
  if (c->keys == LDM_SR_KEYS_OLD) {
    c->n_blocks = max_index(src, "model.1.sub.", ".RDB1.") + 1;
    int seq = max_index(src, "model.", NULL) + 1; /* spandrel: log2 scale = (seq - 5) / 3 */
    if (seq < 5 || (seq - 5) % 3)
      return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: RRDBNet with %d top-level layers (model.0 .. model.%d): not an "
                      "ESRGAN layout (5 + 3 per x2 stage expected)", path, seq, seq - 1);
    c->n_up = (seq - 5) / 3;
  } else {
    c->n_blocks = max_index(src, c->keys == LDM_SR_KEYS_REALESRGAN ? "body." : "RRDB_trunk.", NULL) + 1;
    c->n_up = 0;
    for (int k = 0; k < RRDB_MAX_UP + 1; k++) {
      name_up(c, k, nm, sizeof nm);
      if (!find_w(src, nm)) break;
      c->n_up = k + 1;
    }
  }
  if (c->n_up > RRDB_MAX_UP)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: RRDBNet with %d x2 stages (at most %d supported)", path, c->n_up,
                    RRDB_MAX_UP);
  if (c->n_blocks < 1) return ldm_fail(err, LDM_ERR_MISSING, "%s: RRDBNet without residual blocks", path);
  name_first(c, nm, sizeof nm);
  if (!(w = find_w(src, nm)) || w->ndim != 4)
    return ldm_fail(err, LDM_ERR_MISSING, "%s: tensor '%s.weight' missing or not 4-D", path, nm);
  c->nf = (int)w->shape[0];
  c->in_nc = (int)w->shape[1];
  name_rdb(c, 0, 1, 1, nm, sizeof nm);
  if (!(w = find_w(src, nm)) || w->ndim != 4)
    return ldm_fail(err, LDM_ERR_MISSING, "%s: tensor '%s.weight' missing or not 4-D", path, nm);
  c->gc = (int)w->shape[0];
  name_last(c, nm, sizeof nm);
  if (!(w = find_w(src, nm)) || w->ndim != 4)
    return ldm_fail(err, LDM_ERR_MISSING, "%s: tensor '%s.weight' missing or not 4-D (%d x2 stages)", path, nm,
                    c->n_up);
  c->out_nc = (int)w->shape[0];
  /* spandrel: a pixel-unshuffled input has 4 or 16 times the output's channels */
  c->shuffle = c->in_nc == 4 * c->out_nc ? 2 : c->in_nc == 16 * c->out_nc ? 4 : 1;
  int net_scale = 1 << c->n_up;
  if (net_scale % c->shuffle)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: RRDBNet upsamples x%d but unshuffles its input by %d", path,
                    net_scale, c->shuffle);
  c->scale = net_scale / c->shuffle;
  if (c->in_nc / (c->shuffle * c->shuffle) != 3 || c->out_nc != 3)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: RRDBNet with %d input / %d output channels (RGB nets only)", path,
                    c->in_nc, c->out_nc);
  return LDM_OK;
}

static ldm_status probe_compact(const ldm_source *src, ldm_sr_config *c, ldm_error *err) {
  const char *path = ldm_source_path(src);
  int highest = max_index(src, "body.", NULL);
  const ldm_tensor *w0 = ldm_source_find(src, NULL, "body.0.weight");
  char nm[64];
  snprintf(nm, sizeof nm, "body.%d.weight", highest);
  const ldm_tensor *wl = ldm_source_find(src, NULL, nm);
  if (!w0 || w0->ndim != 4 || !wl || wl->ndim != 4 || highest < 2 || highest % 2)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: body.0 .. body.%d do not form an SRVGGNetCompact (convs at even "
                    "indices, PReLU at odd ones)", path, highest);
  c->in_nc = (int)w0->shape[1];
  c->nf = (int)w0->shape[0];
  c->n_blocks = (highest - 2) / 2;
  c->n_up = 0;
  c->shuffle = 1;
  /* spandrel's get_scale_and_output_channels: x = scale^2 * out_nc, out_nc
   * tried as in_nc, 3, 4, 1 */
  int64_t x = wl->shape[0];
  int cand[4] = {c->in_nc, 3, 4, 1}, s = 0;
  c->out_nc = 0;
  for (int i = 0; i < 4 && !c->out_nc; i++)
    if (x % cand[i] == 0 && is_square(x / cand[i], &s)) {
      c->out_nc = cand[i];
      c->scale = s;
    }
  if (!c->out_nc || c->scale < 1 || c->scale > 8)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: SRVGGNetCompact's last conv has %lld outputs: no scale fits", path,
                    (long long)x);
  if (c->in_nc != 3 || c->out_nc != 3)
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: SRVGGNetCompact with %d input / %d output channels (RGB nets only)",
                    path, c->in_nc, c->out_nc);
  return LDM_OK;
}

ldm_status ldm_sr_probe(const ldm_source *src, ldm_sr_config *c, ldm_error *err) {
  memset(c, 0, sizeof *c);
  if (ldm_source_is_folder(src)) return LDM_OK;
  const char *path = ldm_source_path(src);
  /* spandrel ESRGANArch's key conditions, then CompactArch's */
  if (ldm_source_find(src, NULL, "model.0.weight") &&
      ldm_source_find(src, NULL, "model.1.sub.0.RDB1.conv1x1.weight"))
    return ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: an ESRGAN+ net (RDB conv1x1 paths): not supported, plain "
                    "ESRGAN / Real-ESRGAN RRDBNets are", path);
  if (ldm_source_find(src, NULL, "model.0.weight") && ldm_source_find(src, NULL, "model.1.sub.0.RDB1.conv1.0.weight")) {
    c->arch = LDM_SR_RRDB;
    c->keys = LDM_SR_KEYS_OLD;
  } else if (ldm_source_find(src, NULL, "conv_first.weight") &&
             ldm_source_find(src, NULL, "body.0.rdb1.conv1.weight") &&
             ldm_source_find(src, NULL, "conv_body.weight") && ldm_source_find(src, NULL, "conv_last.weight")) {
    c->arch = LDM_SR_RRDB;
    c->keys = LDM_SR_KEYS_REALESRGAN;
  } else if (ldm_source_find(src, NULL, "conv_first.weight") &&
             ldm_source_find(src, NULL, "RRDB_trunk.0.RDB1.conv1.weight") &&
             ldm_source_find(src, NULL, "trunk_conv.weight") && ldm_source_find(src, NULL, "conv_last.weight")) {
    c->arch = LDM_SR_RRDB;
    c->keys = LDM_SR_KEYS_BSRGAN;
  } else if (ldm_source_find(src, NULL, "body.0.weight") && ldm_source_find(src, NULL, "body.1.weight")) {
    c->arch = LDM_SR_COMPACT;
    c->keys = LDM_SR_KEYS_COMPACT;
  } else {
    return LDM_OK;
  }
  ldm_status st = c->arch == LDM_SR_RRDB ? probe_rrdb(src, c, err) : probe_compact(src, c, err);
  if (st != LDM_OK) return st;
  int64_t n = ldm_source_count(src, NULL);
  for (int64_t i = 0; i < n; i++) c->n_params += ldm_tensor_numel(ldm_source_at(src, NULL, i));
  return LDM_OK;
}

/* ---- loading ---------------------------------------------------------------- */

static ldm_status get_conv(const ldm_source *src, const char *base, int cout, int cin, sr_conv *out,
                           ldm_error *err) {
  char n[192];
  snprintf(n, sizeof n, "%s.weight", base);
  const ldm_tensor *w = ldm_source_find(src, NULL, n);
  snprintf(n, sizeof n, "%s.bias", base);
  const ldm_tensor *b = ldm_source_find(src, NULL, n);
  if (!w) return ldm_fail(err, LDM_ERR_MISSING, "%s: tensor '%s.weight' is missing", ldm_source_path(src), base);
  if (!b) return ldm_fail(err, LDM_ERR_MISSING, "%s: tensor '%s.bias' is missing", ldm_source_path(src), base);
  int64_t ws[4] = {cout, cin, 3, 3}, bs[1] = {cout};
  LDM_TRY(ldm_tensor_expect(w, 4, ws, err));
  LDM_TRY(ldm_tensor_expect(b, 1, bs, err));
  if (w->dtype != LDM_DTYPE_F32 && w->dtype != LDM_DTYPE_F16 && w->dtype != LDM_DTYPE_BF16)
    return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s.weight' is %s, expected F32, F16 or BF16",
                    ldm_source_path(src), base, ldm_dtype_name(w->dtype));
  out->w = w;
  out->b = b;
  return LDM_OK;
}

static ldm_status load_rrdb(ldm_sr *sr, const ldm_source *src, ldm_error *err) {
  const ldm_sr_config *c = &sr->c;
  char nm[160];
  sr->rdb = calloc((size_t)c->n_blocks * 15, sizeof *sr->rdb);
  if (!sr->rdb) return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", sr->path);
  name_first(c, nm, sizeof nm);
  LDM_TRY(get_conv(src, nm, c->nf, c->in_nc, &sr->first, err));
  for (int blk = 0; blk < c->n_blocks; blk++)
    for (int r = 1; r <= 3; r++)
      for (int k = 1; k <= 5; k++) {
        name_rdb(c, blk, r, k, nm, sizeof nm);
        LDM_TRY(get_conv(src, nm, k < 5 ? c->gc : c->nf, c->nf + (k - 1) * c->gc,
                         &sr->rdb[(blk * 3 + r - 1) * 5 + k - 1], err));
      }
  name_body(c, nm, sizeof nm);
  LDM_TRY(get_conv(src, nm, c->nf, c->nf, &sr->body, err));
  for (int k = 0; k < c->n_up; k++) {
    name_up(c, k, nm, sizeof nm);
    LDM_TRY(get_conv(src, nm, c->nf, c->nf, &sr->up[k], err));
  }
  name_hr(c, nm, sizeof nm);
  LDM_TRY(get_conv(src, nm, c->nf, c->nf, &sr->hr, err));
  name_last(c, nm, sizeof nm);
  return get_conv(src, nm, c->out_nc, c->nf, &sr->last, err);
}

static ldm_status load_compact(ldm_sr *sr, const ldm_source *src, ldm_error *err) {
  const ldm_sr_config *c = &sr->c;
  int nconv = c->n_blocks + 2, nact = c->n_blocks + 1;
  sr->convs = calloc((size_t)nconv, sizeof *sr->convs);
  sr->prelu = malloc((size_t)nact * c->nf * sizeof(float));
  if (!sr->convs || !sr->prelu) return ldm_fail(err, LDM_ERR_NOMEM, "%s: out of memory", sr->path);
  char nm[64];
  for (int i = 0; i < nconv; i++) {
    snprintf(nm, sizeof nm, "body.%d", 2 * i);
    int cout = i == nconv - 1 ? c->out_nc * c->scale * c->scale : c->nf;
    LDM_TRY(get_conv(src, nm, cout, i == 0 ? c->in_nc : c->nf, &sr->convs[i], err));
  }
  for (int i = 0; i < nact; i++) {
    snprintf(nm, sizeof nm, "body.%d.weight", 2 * i + 1);
    const ldm_tensor *a = ldm_source_find(src, NULL, nm);
    if (!a)
      return ldm_fail(err, LDM_ERR_MISSING, "%s: tensor '%s' (PReLU) is missing: only PReLU SRVGGNetCompacts "
                      "(as spandrel) are supported", sr->path, nm);
    int64_t s[1] = {c->nf};
    LDM_TRY(ldm_tensor_expect(a, 1, s, err));
    LDM_TRY(ldm_tensor_read_f32(a, 0, c->nf, sr->prelu + (size_t)i * c->nf, err));
  }
  return LDM_OK;
}

ldm_status ldm_sr_load(ldm_sr **out, const ldm_source *src, ldm_error *err) {
  *out = NULL;
  ldm_sr *sr = calloc(1, sizeof *sr);
  if (!sr) return ldm_fail(err, LDM_ERR_NOMEM, "out of memory");
  snprintf(sr->path, sizeof sr->path, "%s", ldm_source_path(src));
  ldm_status st = ldm_sr_probe(src, &sr->c, err);
  if (st == LDM_OK && sr->c.arch == LDM_SR_NONE)
    st = ldm_fail(err, LDM_ERR_UNSUPPORTED, "%s: no ESRGAN-class super-resolution net found (RRDBNet or "
                  "SRVGGNetCompact tensors)", sr->path);
  if (st == LDM_OK) st = sr->c.arch == LDM_SR_RRDB ? load_rrdb(sr, src, err) : load_compact(sr, src, err);
  if (st != LDM_OK) {
    ldm_sr_free(sr);
    return st;
  }
  *out = sr;
  return LDM_OK;
}

void ldm_sr_free(ldm_sr *sr) {
  if (!sr) return;
  free(sr->rdb);
  free(sr->convs);
  free(sr->prelu);
  free(sr);
}

const ldm_sr_config *ldm_sr_get_config(const ldm_sr *sr) { return &sr->c; }

/* ---- forward ---------------------------------------------------------------- */

static float *scratch(ldm_ctx *ctx, int64_t rows, int64_t cols) {
  size_t n;
  if (!ldm_mul_size((size_t)rows, (size_t)cols, &n)) return NULL;
  return ldm_arena_floats(ctx->scratch, n);
}

static ldm_status conv(ldm_ctx *ctx, float *y, const float *x, int H, int W, int Cin, const sr_conv *cv) {
  return ldm_conv2d(ctx, y, x, 1, H, W, Cin, cv->w, cv->b, 1, 1);
}

/* ResidualDenseBlock_5C: y = conv5(cat(x, x1..x4)) * 0.2 + x with
 * xk = lrelu(convk(cat(x, x1..x(k-1)))). cat_a / cat_b hold [hw, nf + 4 gc],
 * g [hw, gc]. y must not alias x. */
static ldm_status rdb_forward(ldm_ctx *ctx, const ldm_sr *sr, const sr_conv *cv, float *y, const float *x, int h,
                              int w, float *cat_a, float *cat_b, float *g) {
  const int nf = sr->c.nf, gc = sr->c.gc;
  int64_t hw = (int64_t)h * w;
  const float *in = x;
  float *cats[2] = {cat_a, cat_b};
  for (int k = 0; k < 4; k++) {
    int cin = nf + k * gc;
    LDM_TRY(conv(ctx, g, in, h, w, cin, &cv[k]));         // convk -> [hw, gc]
    ldm_leaky_relu(ctx, g, g, hw * gc, LRELU_SLOPE);
    ldm_concat_channels(ctx, cats[k & 1], in, cin, g, gc, 1, hw); // cat -> [hw, cin + gc]
    in = cats[k & 1];
  }
  LDM_TRY(conv(ctx, y, in, h, w, nf + 4 * gc, &cv[4])); // conv5 -> [hw, nf]
  ldm_scale_add(ctx, y, y, RES_SCALE, x, hw * nf);
  return LDM_OK;
}

/* Reflection padding of x [H*W, C] to [Hp*Wp, C] (right and bottom), as
 * F.pad(mode='reflect'). */
static void pad_reflect(float *y, const float *x, int H, int W, int Hp, int Wp, int C) {
  for (int yy = 0; yy < Hp; yy++) {
    int sy = yy < H ? yy : 2 * (H - 1) - yy;
    for (int xx = 0; xx < Wp; xx++) {
      int sx = xx < W ? xx : 2 * (W - 1) - xx;
      memcpy(y + ((int64_t)yy * Wp + xx) * C, x + ((int64_t)sy * W + sx) * C, (size_t)C * sizeof(float));
    }
  }
}

static ldm_status rrdb_forward(ldm_ctx *ctx, const ldm_sr *sr, float *y, const float *x, int H, int W) {
  const ldm_sr_config *c = &sr->c;
  const int nf = c->nf, gc = c->gc, r = c->shuffle;
  int Hp = (H + r - 1) / r * r, Wp = (W + r - 1) / r * r, h = Hp / r, w = Wp / r;
  int64_t hw = (int64_t)h * w;
  if (r > 1 && (Hp - H >= H || Wp - W >= W))
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: image %dx%d too small for this net (at least %dx%d)",
                    sr->path, W, H, r, r);
  float *xin = (float *)x, *fea = NULL, *trunk = NULL, *b1 = NULL, *b2 = NULL, *ca = NULL, *cb = NULL, *g = NULL;
  if (r > 1) { /* pad_to_multiple(reflect), pixel_unshuffle -> [hw, 3 r^2] */
    float *pad = scratch(ctx, (int64_t)Hp * Wp, 3);
    xin = scratch(ctx, hw, c->in_nc);
    if (!pad || !xin) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d image", sr->path, W, H);
    pad_reflect(pad, x, H, W, Hp, Wp, 3);
    ldm_pixel_unshuffle(ctx, xin, pad, Hp, Wp, 3, r);
  }
  fea = scratch(ctx, hw, nf);
  trunk = scratch(ctx, hw, nf);
  b1 = scratch(ctx, hw, nf);
  b2 = scratch(ctx, hw, nf);
  ca = scratch(ctx, hw, nf + 4 * gc);
  cb = scratch(ctx, hw, nf + 4 * gc);
  g = scratch(ctx, hw, gc > nf ? gc : nf);
  if (!fea || !trunk || !b1 || !b2 || !ca || !cb || !g)
    return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d image", sr->path, W, H);
  LDM_TRY(conv(ctx, fea, xin, h, w, c->in_nc, &sr->first));       // model.0 -> [hw, nf]
  memcpy(trunk, fea, (size_t)hw * nf * sizeof(float));
  for (int blk = 0; blk < c->n_blocks; blk++) {                     // RRDB: 3 RDBs, out * 0.2 + x
    const sr_conv *cv = sr->rdb + (size_t)blk * 15;
    LDM_TRY(rdb_forward(ctx, sr, cv, b1, trunk, h, w, ca, cb, g));
    LDM_TRY(rdb_forward(ctx, sr, cv + 5, b2, b1, h, w, ca, cb, g));
    LDM_TRY(rdb_forward(ctx, sr, cv + 10, b1, b2, h, w, ca, cb, g));
    ldm_scale_add(ctx, trunk, b1, RES_SCALE, trunk, hw * nf);
  }
  LDM_TRY(conv(ctx, b1, trunk, h, w, nf, &sr->body));              // lr conv -> [hw, nf]
  ldm_add(ctx, fea, fea, b1, hw * nf);                              // ShortcutBlock
  /* upsampling: nearest x2, conv, lrelu per stage; the activations at the
   * output size get blocks of their own (the trunk's are no longer needed
   * but stay below in the arena) */
  float *cur = fea;
  int ch = h, cw = w;
  for (int k = 0; k < c->n_up; k++) {
    float *up = scratch(ctx, (int64_t)4 * ch * cw, nf), *out = scratch(ctx, (int64_t)4 * ch * cw, nf);
    if (!up || !out) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d image", sr->path, W, H);
    ldm_upsample_nearest2x(ctx, up, cur, 1, ch, cw, nf);
    ch *= 2;
    cw *= 2;
    LDM_TRY(conv(ctx, out, up, ch, cw, nf, &sr->up[k]));            // -> [4 hw, nf]
    ldm_leaky_relu(ctx, out, out, (int64_t)ch * cw * nf, LRELU_SLOPE);
    cur = out;
  }
  int64_t HW = (int64_t)ch * cw;
  float *hr = scratch(ctx, HW, nf), *o = NULL;
  if (!hr) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d image", sr->path, W, H);
  LDM_TRY(conv(ctx, hr, cur, ch, cw, nf, &sr->hr));                 // hr conv0 + lrelu
  ldm_leaky_relu(ctx, hr, hr, HW * nf, LRELU_SLOPE);
  int s = c->scale, OH = H * s, OW = W * s;
  if (ch == OH && cw == OW) return conv(ctx, y, hr, ch, cw, nf, &sr->last); // hr conv1 -> [HW, 3]
  o = scratch(ctx, HW, c->out_nc);
  if (!o) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d image", sr->path, W, H);
  LDM_TRY(conv(ctx, o, hr, ch, cw, nf, &sr->last));
  for (int yy = 0; yy < OH; yy++)                                   // crop the padding away
    memcpy(y + (int64_t)yy * OW * c->out_nc, o + (int64_t)yy * cw * c->out_nc, (size_t)OW * c->out_nc * sizeof(float));
  return LDM_OK;
}

static ldm_status compact_forward(ldm_ctx *ctx, const ldm_sr *sr, float *y, const float *x, int H, int W) {
  const ldm_sr_config *c = &sr->c;
  const int nf = c->nf, s = c->scale, oc = c->out_nc;
  int64_t hw = (int64_t)H * W;
  int nconv = c->n_blocks + 2;
  float *a = scratch(ctx, hw, nf), *b = scratch(ctx, hw, nf > oc * s * s ? nf : oc * s * s);
  if (!a || !b) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d image", sr->path, W, H);
  const float *in = x;
  for (int i = 0; i < nconv - 1; i++) {                             // body.{2i} conv + body.{2i+1} PReLU
    float *o = (i & 1) ? b : a;
    LDM_TRY(conv(ctx, o, in, H, W, i == 0 ? c->in_nc : nf, &sr->convs[i]));
    ldm_prelu(ctx, o, o, hw, nf, sr->prelu + (size_t)i * nf);
    in = o;
  }
  float *last = in == a ? b : a;
  if (oc * s * s > nf && last == a) {
    last = scratch(ctx, hw, oc * s * s);
    if (!last) return ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %dx%d image", sr->path, W, H);
  }
  LDM_TRY(conv(ctx, last, in, H, W, nf, &sr->convs[nconv - 1]));   // -> [hw, oc s^2]
  ldm_pixel_shuffle(ctx, y, last, H, W, oc, s);                     // -> [HW s^2, oc]
  int OW = W * s;                                                   // + F.interpolate(x, s, 'nearest')
  for (int64_t yy = 0; yy < (int64_t)H * s; yy++)
    for (int xx = 0; xx < OW; xx++) {
      float *d = y + (yy * OW + xx) * oc;
      const float *src = x + ((yy / s) * W + xx / s) * c->in_nc;
      for (int ch = 0; ch < oc; ch++) d[ch] += src[ch];
    }
  return LDM_OK;
}

ldm_status ldm_sr_forward(ldm_ctx *ctx, const ldm_sr *sr, float *y, const float *x, int H, int W) {
  if (H < 1 || W < 1 || H > 65536 || W > 65536)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: image size %dx%d out of range", sr->path, W, H);
  ldm_arena_mark mark = ldm_arena_get_mark(ctx->scratch);
  ldm_status st = sr->c.arch == LDM_SR_RRDB ? rrdb_forward(ctx, sr, y, x, H, W) : compact_forward(ctx, sr, y, x, H, W);
  ldm_arena_reset(ctx->scratch, mark);
  return st;
}

/* ---- tiles ------------------------------------------------------------------ */

/* Blend weight of pixel x in a tile of size t at origin o of an image of
 * size n whose neighbours overlap it by ov pixels: on each side that meets
 * another tile, 0 over the first ov/4 pixels (their receptive field reaches
 * past the tile: zero padding there, not the image), then a linear ramp to
 * 1 over the next ov/2. Two overlapping tiles' weights sum to 1. */
float ldm_sr_tile_weight(int x, int t, int o, int n, int ov) {
  float w = 1.0f, cut = ov / 4, ramp = ov - 2 * (ov / 4);
  if (o > 0) w = fminf(w, fmaxf(0.0f, fminf(1.0f, (x + 0.5f - cut) / ramp)));
  if (o + t < n) w = fminf(w, fmaxf(0.0f, fminf(1.0f, (t - x - 0.5f - cut) / ramp)));
  return w;
}

enum { MAX_TILES_PER_SIDE = 1024 };

static void tile_plan(int W, int H, int *tile, int *overlap) {
  if (*tile <= 0 && (int64_t)W * H <= LDM_SR_WHOLE_PX) *tile = W > H ? W : H;
  else if (*tile <= 0) *tile = LDM_SR_TILE;
  if (*overlap <= 0) *overlap = *tile / 4 < LDM_SR_OVERLAP ? (*tile / 4 > 4 ? *tile / 4 : 4) : LDM_SR_OVERLAP;
  if (*tile < 2 * *overlap + 8) *tile = 2 * *overlap + 8;
}

int ldm_sr_tile_count(int H, int W, int tile, int overlap) {
  tile_plan(W, H, &tile, &overlap);
  int tw = W < tile ? W : tile, th = H < tile ? H : tile, o[MAX_TILES_PER_SIDE];
  return ldm_tile_origins(W, tw, overlap, o, MAX_TILES_PER_SIDE) *
         ldm_tile_origins(H, th, overlap, o, MAX_TILES_PER_SIDE);
}

ldm_status ldm_sr_upscale(ldm_ctx *ctx, const ldm_sr *sr, float *y, const float *x, int H, int W, int tile,
                          int overlap, ldm_sr_tile_fn fn, void *user) {
  const int s = sr->c.scale, C = 3;
  if (H < 1 || W < 1 || H > 65536 || W > 65536)
    return ldm_fail(ctx->err, LDM_ERR_INVALID_ARG, "%s: image size %dx%d out of range", sr->path, W, H);
  tile_plan(W, H, &tile, &overlap);
  int tw = W < tile ? W : tile, th = H < tile ? H : tile;
  if (tw == W && th == H) {
    ldm_status st = ldm_sr_forward(ctx, sr, y, x, H, W);
    if (st == LDM_OK && fn && fn(user, 1, 1)) st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "job cancelled");
    return st;
  }
  int *ox = malloc(MAX_TILES_PER_SIDE * sizeof(int)), *oy = malloc(MAX_TILES_PER_SIDE * sizeof(int));
  int64_t OW = (int64_t)W * s, OH = (int64_t)H * s, TW = (int64_t)tw * s, TH = (int64_t)th * s;
  float *tin = malloc((size_t)tw * th * C * sizeof(float)), *tout = malloc((size_t)(TW * TH * C) * sizeof(float));
  float *wsum = calloc((size_t)(OW * OH), sizeof(float));
  ldm_status st = LDM_OK;
  if (!ox || !oy || !tin || !tout || !wsum) {
    st = ldm_fail(ctx->err, LDM_ERR_NOMEM, "%s: out of memory for a %lldx%lld upscale", sr->path, (long long)OW,
                  (long long)OH);
    goto done;
  }
  int nx = ldm_tile_origins(W, tw, overlap, ox, MAX_TILES_PER_SIDE), ny = ldm_tile_origins(H, th, overlap, oy, MAX_TILES_PER_SIDE);
  memset(y, 0, (size_t)(OW * OH * C) * sizeof(float));
  for (int ty = 0; ty < ny && st == LDM_OK; ty++)
    for (int tx = 0; tx < nx && st == LDM_OK; tx++) {
      for (int r = 0; r < th; r++)
        memcpy(tin + (size_t)r * tw * C, x + ((size_t)(oy[ty] + r) * W + ox[tx]) * C, (size_t)tw * C * sizeof(float));
      st = ldm_sr_forward(ctx, sr, tout, tin, th, tw);
      if (st != LDM_OK) break;
      for (int64_t r = 0; r < TH; r++) {
        float wy = ldm_sr_tile_weight((int)r, (int)TH, oy[ty] * s, (int)OH, overlap * s);
        float *dst = y + ((oy[ty] * s + r) * OW + (int64_t)ox[tx] * s) * C;
        float *ws = wsum + (oy[ty] * s + r) * OW + (int64_t)ox[tx] * s;
        const float *src = tout + r * TW * C;
        for (int64_t q = 0; q < TW; q++) {
          float wt = wy * ldm_sr_tile_weight((int)q, (int)TW, ox[tx] * s, (int)OW, overlap * s);
          for (int ch = 0; ch < C; ch++) dst[q * C + ch] += wt * src[q * C + ch];
          ws[q] += wt;
        }
      }
      if (fn && fn(user, ty * nx + tx + 1, nx * ny)) st = ldm_fail(ctx->err, LDM_ERR_CANCELLED, "job cancelled");
    }
  if (st == LDM_OK)
    for (int64_t i = 0; i < OW * OH; i++) {
      float inv = wsum[i] > 0.0f ? 1.0f / wsum[i] : 1.0f;
      for (int ch = 0; ch < C; ch++) y[i * C + ch] *= inv;
    }
done:
  free(ox);
  free(oy);
  free(tin);
  free(tout);
  free(wsum);
  return st;
}
