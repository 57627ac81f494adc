/* `ldm eval vae-encode|vae-decode|taesd-encode|taesd-decode`: runs the VAE
 * or TAESD on tensors from a safetensors file (NCHW f32 as in PyTorch) and
 * writes the outputs. Options: groups=N (norm groups when the file has no
 * config), tile=N,overlap=N (tiled, latent pixels), height=H,width=W (crop
 * of the decode), taesd=PATH (the other half of an original TAESD pair),
 * precision=f32|bf16|bf16-emulated (the matrix products' arithmetic). */
#include "models/vae/vae.h"
#include "core/arena.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "io/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_env {
  ldm_source *src, *src2;
  ldm_st_file *in;
  ldm_ctx ctx;
  float *x, *y, *z;
} eval_env;

/* known: the --options keys the runner reads (anything else is an error) */
static ldm_status env_open(eval_env *e, const ldm_eval_params *p, int threads, const char *known, ldm_error *err) {
  memset(e, 0, sizeof *e);
  e->ctx.threads = threads;
  e->ctx.err = err;
  LDM_TRY(ldm_eval_check_options(p, known, err));
  LDM_TRY(ldm_eval_precision(p, &e->ctx.precision, err));
  LDM_TRY(ldm_source_open(&e->src, p->model_path, err));
  LDM_TRY(ldm_st_open(&e->in, p->in_path, err));
  e->ctx.pool = ldm_pool_new(threads);
  e->ctx.scratch = ldm_arena_new(0);
  if (!e->ctx.pool || !e->ctx.scratch) return ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory");
  return LDM_OK;
}

static void env_close(eval_env *e) {
  ldm_pool_free(e->ctx.pool);
  ldm_arena_free(e->ctx.scratch);
  ldm_st_close(e->in);
  ldm_source_close(e->src);
  ldm_source_close(e->src2);
  free(e->x);
  free(e->y);
  free(e->z);
}

/* Reads a 4-D float input as f32 (malloc'd into *out). */
static ldm_status read_input(eval_env *e, const char *name, float **out, int64_t *shape,
                             ldm_error *err) {
  const ldm_tensor *t;
  LDM_TRY(ldm_st_require(e->in, name, &t, err));
  if (t->ndim != 4)
    return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s' has %d dims, expected 4 (NCHW)",
                    ldm_st_path(e->in), name, t->ndim);
  for (int i = 0; i < 4; i++) {
    shape[i] = t->shape[i];
    if (shape[i] < 1 || shape[i] > 65536)
      return ldm_fail(err, LDM_ERR_SHAPE, "%s: tensor '%s' dim %d is %lld", ldm_st_path(e->in),
                      name, i, (long long)shape[i]);
  }
  int64_t n = ldm_tensor_numel(t);
  *out = malloc((size_t)n * sizeof(float));
  if (!*out) return ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory for '%s'", name);
  ldm_status st = ldm_tensor_read_f32(t, 0, n, *out, err);
  if (st != LDM_OK) ldm_error_prefix(err, "%s", ldm_st_path(e->in));
  return st;
}

static float *alloc_out(int64_t a, int64_t b, int64_t c, int64_t d) {
  size_t n = (size_t)a * (size_t)b * (size_t)c * (size_t)d;
  return malloc((n ? n : 1) * sizeof(float));
}

static ldm_status load_vae(eval_env *e, const ldm_eval_params *p, ldm_vae **vae, ldm_error *err) {
  ldm_vae_load_opts o = {0};
  LDM_TRY(ldm_eval_int_option(p, "groups", 0, 4096, 0, &o.groups, err));
  /* else the file's own setting, as the jobs read it */
  char where[4200];
  snprintf(where, sizeof where, "%s: metadata ldm.options", p->model_path);
  if (!o.groups)
    LDM_TRY(ldm_kv_int(ldm_source_metadata(e->src, "ldm.options"), "vae.groups", 1, 4096, 0, &o.groups, where, err));
  return ldm_vae_load(vae, e->src, &o, err);
}

static ldm_tensor out_tensor(const char *name, float *data, int64_t b, int64_t c, int64_t h,
                             int64_t w) {
  ldm_tensor t = {.dtype = LDM_DTYPE_F32, .ndim = 4, .shape = {b, c, h, w}, .data = data,
                  .name = name};
  return t;
}

ldm_status ldm_eval_vae_encode(const ldm_eval_params *p, int threads, ldm_error *err) {
  eval_env e;
  ldm_vae *vae = NULL;
  int64_t s[4];
  ldm_status st = env_open(&e, p, threads, "precision, groups, tile, overlap", err);
  if (st == LDM_OK) st = load_vae(&e, p, &vae, err);
  if (st == LDM_OK) st = read_input(&e, "image", &e.x, s, err);
  if (st == LDM_OK && s[1] != ldm_vae_get_config(vae)->image_channels)
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: 'image' has %lld channels, the VAE takes %d",
                  p->in_path, (long long)s[1], ldm_vae_get_config(vae)->image_channels);
  if (st == LDM_OK) {
    int h, w, Cl = ldm_vae_get_config(vae)->latent_channels;
    ldm_vae_latent_size(vae, (int)s[2], (int)s[3], &h, &w);
    e.y = alloc_out(s[0], Cl, h, w);
    e.z = alloc_out(s[0], Cl, h, w);
    if (!e.y || !e.z) st = ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory");
    int tile = -1, overlap = 0;
    if (st == LDM_OK) st = ldm_eval_int_option(p, "tile", -1, 16384, -1, &tile, err);
    if (st == LDM_OK) st = ldm_eval_int_option(p, "overlap", 0, 16384, 0, &overlap, err);
    if (st == LDM_OK)
      st = ldm_vae_encode_tiled(&e.ctx, vae, e.y, e.z, e.x, (int)s[0], (int)s[2], (int)s[3],
                                tile, overlap);
    if (st == LDM_OK) {
      ldm_tensor t[2] = {out_tensor("mean", e.y, s[0], Cl, h, w),
                         out_tensor("logvar", e.z, s[0], Cl, h, w)};
      st = ldm_st_write(p->out_path, t, 2, NULL, err);
    }
  }
  ldm_vae_free(vae);
  env_close(&e);
  return st;
}

ldm_status ldm_eval_vae_decode(const ldm_eval_params *p, int threads, ldm_error *err) {
  eval_env e;
  ldm_vae *vae = NULL;
  int64_t s[4];
  ldm_status st = env_open(&e, p, threads, "precision, groups, height, width, tile, overlap", err);
  if (st == LDM_OK) st = load_vae(&e, p, &vae, err);
  if (st == LDM_OK) st = read_input(&e, "latent", &e.x, s, err);
  if (st == LDM_OK && s[1] != ldm_vae_get_config(vae)->latent_channels)
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: 'latent' has %lld channels, the VAE takes %d",
                  p->in_path, (long long)s[1], ldm_vae_get_config(vae)->latent_channels);
  if (st == LDM_OK) {
    int f = ldm_vae_factor(vae), C = ldm_vae_get_config(vae)->image_channels;
    int H = (int)s[2] * f, W = (int)s[3] * f, tile = -1, overlap = 0;
    st = ldm_eval_int_option(p, "height", 1, 65536, H, &H, err);
    if (st == LDM_OK) st = ldm_eval_int_option(p, "width", 1, 65536, W, &W, err);
    if (st == LDM_OK) st = ldm_eval_int_option(p, "tile", -1, 16384, -1, &tile, err);
    if (st == LDM_OK) st = ldm_eval_int_option(p, "overlap", 0, 16384, 0, &overlap, err);
    if (st == LDM_OK && (H < 1 || W < 1 || H > s[2] * f || W > s[3] * f))
      st = ldm_fail(err, LDM_ERR_INVALID_ARG, "eval vae-decode: height/width %d x %d outside 1..%lld x 1..%lld",
                    H, W, (long long)s[2] * f, (long long)s[3] * f);
    if (st == LDM_OK && !(e.y = alloc_out(s[0], C, H, W)))
      st = ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory");
    if (st == LDM_OK)
      st = ldm_vae_decode_tiled(&e.ctx, vae, e.y, e.x, (int)s[0], (int)s[2], (int)s[3], H, W,
                                tile, overlap);
    if (st == LDM_OK) {
      ldm_tensor t = out_tensor("image", e.y, s[0], C, H, W);
      st = ldm_st_write(p->out_path, &t, 1, NULL, err);
    }
  }
  ldm_vae_free(vae);
  env_close(&e);
  return st;
}

static ldm_status load_taesd(eval_env *e, const ldm_eval_params *p, ldm_taesd **t,
                             ldm_error *err) {
  char buf[4096];
  const char *other = ldm_eval_option(p, "taesd", buf, sizeof buf);
  if (other) LDM_TRY(ldm_source_open(&e->src2, other, err));
  return ldm_taesd_load(t, e->src, e->src2, err);
}

ldm_status ldm_eval_taesd_encode(const ldm_eval_params *p, int threads, ldm_error *err) {
  eval_env e;
  ldm_taesd *t = NULL;
  int64_t s[4];
  ldm_status st = env_open(&e, p, threads, "precision, taesd", err);
  if (st == LDM_OK) st = load_taesd(&e, p, &t, err);
  if (st == LDM_OK) st = read_input(&e, "image", &e.x, s, err);
  if (st == LDM_OK && !ldm_taesd_has_encoder(t))
    st = ldm_fail(err, LDM_ERR_MISSING, "%s: no TAESD encoder in this file", p->model_path);
  if (st == LDM_OK) {
    int f = ldm_taesd_factor(t), Cl = ldm_taesd_latent_channels(t);
    int64_t h = s[2] / f, w = s[3] / f;
    if (!(e.y = alloc_out(s[0], Cl, h, w))) st = ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory");
    if (st == LDM_OK) st = ldm_taesd_encode(&e.ctx, t, e.y, e.x, (int)s[0], (int)s[2], (int)s[3]);
    if (st == LDM_OK) {
      ldm_tensor o = out_tensor("latent", e.y, s[0], Cl, h, w);
      st = ldm_st_write(p->out_path, &o, 1, NULL, err);
    }
  }
  ldm_taesd_free(t);
  env_close(&e);
  return st;
}

ldm_status ldm_eval_taesd_decode(const ldm_eval_params *p, int threads, ldm_error *err) {
  eval_env e;
  ldm_taesd *t = NULL;
  int64_t s[4];
  ldm_status st = env_open(&e, p, threads, "precision, taesd", err);
  if (st == LDM_OK) st = load_taesd(&e, p, &t, err);
  if (st == LDM_OK) st = read_input(&e, "latent", &e.x, s, err);
  if (st == LDM_OK && !ldm_taesd_has_decoder(t))
    st = ldm_fail(err, LDM_ERR_MISSING, "%s: no TAESD decoder in this file", p->model_path);
  if (st == LDM_OK && s[1] != ldm_taesd_latent_channels(t))
    st = ldm_fail(err, LDM_ERR_SHAPE, "%s: 'latent' has %lld channels, TAESD takes %d", p->in_path,
                  (long long)s[1], ldm_taesd_latent_channels(t));
  if (st == LDM_OK) {
    int f = ldm_taesd_factor(t);
    if (!(e.y = alloc_out(s[0], 3, s[2] * f, s[3] * f)))
      st = ldm_fail(err, LDM_ERR_NOMEM, "eval: out of memory");
    if (st == LDM_OK) st = ldm_taesd_decode(&e.ctx, t, e.y, e.x, (int)s[0], (int)s[2], (int)s[3]);
    if (st == LDM_OK) {
      ldm_tensor o = out_tensor("image", e.y, s[0], 3, s[2] * f, s[3] * f);
      st = ldm_st_write(p->out_path, &o, 1, NULL, err);
    }
  }
  ldm_taesd_free(t);
  env_close(&e);
  return st;
}
