/* Textual-inversion goldens vs diffusers (tests/reference/make_embed.py):
 * A1111 embeddings (emb_params f32, string_to_param f16, SDXL clip_l +
 * clip_g; 1 to 3 vectors) in prompt and negative prompt, through the text
 * conditioning, compared with diffusers' encode_prompt after
 * load_textual_inversion (SD1 in both layouts, SD2, SDXL with pooled).
 * Tolerance: max abs <= 1e-4. Also: without the embeddings the result is far
 * off (so the check can fail); ComfyUI's embedding:NAME gives the same
 * conditioning; emphasis scales the embedding's rows; the token budget
 * counts vectors; wrong-family and pickled embeddings are refused. */
#include "ldm_test.h"

#include "core/arena.h"
#include "core/status.h"
#include "io/source.h"
#include "text/text.h"

#define TOL 1e-4

typedef struct fam {
  const char *family, *model;
  int heads;
  const char *embeds[2];
} fam;

static const fam fams[] = {
    {"sd1", "pipeline/sd1", 0, {"sd1_style", "sd1_one"}},
    {"sd1", "pipeline/sd1.safetensors", 2, {"sd1_style", "sd1_one"}},
    {"sd2", "text/sd2", 0, {"sd2_style", NULL}},
    {"sdxl", "pipeline/sdxl", 0, {"sdxl_style", NULL}},
};

typedef struct env {
  ldm_source *src;
  ldm_text_cond *tc;
  ldm_text_embed emb[2];
  int n_emb;
  ldm_ctx ctx;
  ldm_error err;
} env;

static int open_env(env *e, const fam *f) {
  memset(e, 0, sizeof *e);
  char path[4096];
  e->ctx.err = &e->err;
  e->ctx.threads = 2;
  e->ctx.pool = ldm_pool_new(2);
  e->ctx.scratch = ldm_arena_new(0);
  ldm_test_golden(f->model, path, sizeof path);
  if (ldm_source_open(&e->src, path, &e->err) != LDM_OK ||
      ldm_text_cond_load(&e->tc, e->src, f->heads, &e->err) != LDM_OK) {
    CHECK(0, "%s: %s", f->model, e->err.msg);
    return 0;
  }
  for (int i = 0; i < 2 && f->embeds[i]; i++) {
    char p[4096], rel[1100];
    snprintf(rel, sizeof rel, "embed/%s.safetensors", f->embeds[i]);
    ldm_test_golden(rel, p, sizeof p);
    ldm_status st = ldm_text_embed_load(e->tc, p, f->embeds[i], &e->emb[e->n_emb], &e->err);
    CHECK(st == LDM_OK, "%s: %s", p, e->err.msg);
    if (st == LDM_OK) e->n_emb++;
  }
  return 1;
}

static void close_env(env *e) {
  for (int i = 0; i < e->n_emb; i++) ldm_text_embed_deinit(&e->emb[i]);
  ldm_text_cond_free(e->tc);
  ldm_source_close(e->src);
  ldm_pool_free(e->ctx.pool);
  ldm_arena_free(e->ctx.scratch);
}

static float *encode(env *e, const char *prompt, int *T, float **pooled) {
  float *c = NULL;
  ldm_status st = ldm_text_cond_encode(e->tc, &e->ctx, prompt, 1, 1, &c, T, pooled);
  CHECK(st == LDM_OK, "encode '%s': %s", prompt, e->err.msg);
  return c;
}

static double max_diff(const float *a, const float *b, long long n) {
  double m = 0;
  for (long long i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

static void goldens(void) {
  char path[4096];
  FILE *pf = fopen(ldm_test_golden("embed/prompts.txt", path, sizeof path), "r");
  CHECK(pf != NULL, "cannot open %s", path);
  if (!pf) return;
  char line[1024];
  int n_lines = 0;
  while (fgets(line, sizeof line, pf)) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, '|'), *c2 = c1 ? strchr(c1 + 1, '|') : NULL;
    if (!c2) continue;
    *c1 = *c2 = '\0';
    const char *family = line, *prompt = c1 + 1, *neg = c2 + 1;
    n_lines++;
    for (size_t k = 0; k < sizeof fams / sizeof *fams; k++) {
      if (strcmp(fams[k].family, family)) continue;
      env e;
      if (!open_env(&e, &fams[k])) {
        close_env(&e);
        continue;
      }
      char io[1100], label[1600];
      snprintf(io, sizeof io, "embed/%s_cond.safetensors", family);
      ldm_st_file *g = ldm_test_open_golden(io);
      ldm_tensor rs;
      float *rc = ldm_test_tensor_f32(g, "prompt_embeds", &rs), *ru = ldm_test_tensor_f32(g, "negative_prompt_embeds", NULL);
      long long n = ldm_tensor_numel(&rs);
      int T = 0;
      float *pc = NULL, *pu = NULL;
      /* without the embeddings: the names are plain words, far from diffusers' */
      float *plain = encode(&e, prompt, &T, NULL);
      double off = plain && T * (long long)ldm_text_cond_dim(e.tc) == n ? max_diff(plain, rc, n) : 0;
      CHECK(off > 100 * TOL, "%s (%s): without embeddings only %.3g off", family, fams[k].model, off);
      printf("%s (%s) without the embeddings: max_abs=%.3g (must exceed %.1g)\n", family, fams[k].model, off,
             100 * TOL);
      free(plain);
      CHECK(ldm_text_cond_set_embeds(e.tc, e.emb, e.n_emb, &e.err) == LDM_OK, "set: %s", e.err.msg);
      float *c = encode(&e, prompt, &T, &pc), *u = encode(&e, neg, &T, &pu);
      CHECK(c && u && T * (long long)ldm_text_cond_dim(e.tc) == n, "%s: size", family);
      if (c && u && T * (long long)ldm_text_cond_dim(e.tc) == n) {
        snprintf(label, sizeof label, "embed %s (%s) prompt", family, fams[k].model);
        ldm_test_close(label, c, rc, n, TOL, 0);
        snprintf(label, sizeof label, "embed %s (%s) negative", family, fams[k].model);
        ldm_test_close(label, u, ru, n, TOL, 0);
      }
      if (ldm_st_find(g, "pooled_prompt_embeds")) {
        ldm_tensor ps;
        float *rp = ldm_test_tensor_f32(g, "pooled_prompt_embeds", &ps);
        float *rn = ldm_test_tensor_f32(g, "negative_pooled_prompt_embeds", NULL);
        CHECK(pc && pu, "%s: no pooled output", family);
        if (pc && pu) {
          snprintf(label, sizeof label, "embed %s pooled", family);
          ldm_test_close(label, pc, rp, ldm_tensor_numel(&ps), TOL, 0);
          snprintf(label, sizeof label, "embed %s negative pooled", family);
          ldm_test_close(label, pu, rn, ldm_tensor_numel(&ps), TOL, 0);
        }
        free(rp);
        free(rn);
      }
      /* ComfyUI's spelling of the same prompt */
      char comfy[1200];
      const char *nm = fams[k].embeds[0];
      const char *at = strstr(prompt, nm);
      if (at && c) {
        snprintf(comfy, sizeof comfy, "%.*sembedding:%s", (int)(at - prompt), prompt, at);
        float *cc = encode(&e, comfy, &T, NULL);
        if (cc) {
          snprintf(label, sizeof label, "embed %s (%s) as embedding:NAME", family, fams[k].model);
          ldm_test_close(label, cc, c, n, 0, 0);
        }
        free(cc);
      }
      free(c);
      free(u);
      free(pc);
      free(pu);
      free(rc);
      free(ru);
      ldm_st_close(g);
      ldm_text_cond_set_embeds(e.tc, NULL, 0, NULL);
      close_env(&e);
    }
  }
  fclose(pf);
  CHECK(n_lines == 3, "%d families in prompts.txt", n_lines);
}

/* Emphasis and the token budget on SD1 (3-vector sd1_style). */
static void emphasis_and_budget(void) {
  env e;
  if (!open_env(&e, &fams[0])) {
    close_env(&e);
    return;
  }
  ldm_text_cond_set_embeds(e.tc, e.emb, e.n_emb, &e.err);
  const int D = ldm_text_cond_dim(e.tc);
  int T;
  float *a = encode(&e, "sd1_style x", &T, NULL), *b = encode(&e, "(sd1_style:1.3) x", &T, NULL);
  /* A1111: z *= mult per token, then one factor for all: so rows 1-3 (the
   * vectors) scale by 1.3 relative to row 4 ("x") */
  if (a && b) {
    double r_vec = b[1 * D] / a[1 * D], r_vec3 = b[3 * D + 1] / a[3 * D + 1], r_x = b[4 * D] / a[4 * D];
    CHECK(fabs(r_vec / r_x - 1.3) < 1e-4 && fabs(r_vec3 / r_x - 1.3) < 1e-4,
          "emphasis on the embedding's rows: %.6f, %.6f (expected 1.3)", r_vec / r_x, r_vec3 / r_x);
    printf("emphasis (sd1_style:1.3): rows 1 and 3 scale %.6f, %.6f relative to the next word (expected 1.3)\n",
           r_vec / r_x, r_vec3 / r_x);
  }
  free(a);
  free(b);
  /* 72 words + a 3-vector embedding = 75 tokens: one chunk; a 73rd word: two */
  char p[2048] = "";
  for (int i = 0; i < 72; i++) strcat(p, "cat ");
  strcat(p, "sd1_style");
  int n1 = 0, n2 = 0;
  CHECK(ldm_text_cond_count_chunks(e.tc, p, &n1, &e.err) == LDM_OK, "%s", e.err.msg);
  memmove(p + 4, p, strlen(p) + 1);
  memcpy(p, "cat ", 4);
  CHECK(ldm_text_cond_count_chunks(e.tc, p, &n2, &e.err) == LDM_OK, "%s", e.err.msg);
  CHECK(n1 == 1 && n2 == 2, "token budget: %d and %d chunks, expected 1 and 2", n1, n2);
  printf("token budget: 72 words + 3 vectors = %d chunk(s), 73 + 3 = %d\n", n1, n2);
  float *c = NULL;
  float *pool = NULL;
  CHECK(ldm_text_cond_encode(e.tc, &e.ctx, "embedding:nope x", 1, 1, &c, &T, &pool) != LDM_OK &&
            strstr(e.err.msg, "embedding:nope"),
        "unknown embedding:NAME: %s", e.err.msg);
  free(c);
  ldm_text_cond_set_embeds(e.tc, NULL, 0, NULL);
  close_env(&e);
}

static void refusals(void) {
  env e;
  if (!open_env(&e, &fams[3])) { /* SDXL */
    close_env(&e);
    return;
  }
  char p[4096];
  ldm_text_embed x;
  ldm_test_golden("embed/sd1_style.safetensors", p, sizeof p);
  ldm_status st = ldm_text_embed_load(e.tc, p, "sd1_style", &x, &e.err);
  CHECK(st == LDM_ERR_SHAPE && strstr(e.err.msg, "SDXL"), "SD1 embedding on SDXL: %s", e.err.msg);
  printf("SD1 embedding on SDXL: %s\n", e.err.msg);
  st = ldm_text_embed_load(e.tc, "/tmp/whatever.pt", "whatever", &x, &e.err);
  CHECK(st == LDM_ERR_UNSUPPORTED && strstr(e.err.msg, "pickle") && strstr(e.err.msg, ".safetensors"),
        ".pt: %s", e.err.msg);
  printf(".pt: %s\n", e.err.msg);
  close_env(&e);
}

int main(void) {
  goldens();
  emphasis_and_budget();
  refusals();
  return ldm_test_finish("embed");
}
