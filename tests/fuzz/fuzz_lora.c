/* Fuzzing the add-on inputs (deterministic mutation loop, run under ASan in
 * CI): (1) LoRA files: the header of a real kohya LoRA (tests/golden/lora/
 * sd1_kohya.safetensors) mutated (names, shapes, dtypes, offsets, alpha
 * bytes) and merged into the tiny SD1 UNet and text encoder; every accepted
 * file's merged weights are read back whole and the tables restored, every
 * refusal must carry a message. (2) Prompt <tag:...> extraction: random
 * strings of '<', '>', ':', names, numbers, te=/unet= through ldm_job_new
 * (no crash; an error always has a message), and 200 000 unclosed tags in one
 * prompt must take well under a second (the extraction is one pass). */
#include "ldm_test.h"

#include <time.h>
#include <unistd.h>

#include "core/status.h"
#include "io/lora.h"
#include "io/source.h"
#include "models/unet/unet.h"
#include "text/clip_text.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static uint8_t *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long l = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)l + 64);
  if (b && fread(b, 1, (size_t)l, f) != (size_t)l) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *n = (size_t)l;
  return b;
}

static int fuzz_files(int iters) {
  char seed_path[4096], model[4096], tmp[256];
  ldm_test_golden("lora/sd1_kohya.safetensors", seed_path, sizeof seed_path);
  ldm_test_golden("pipeline/sd1", model, sizeof model);
  snprintf(tmp, sizeof tmp, "/tmp/ldm-fuzz-lora-%d.safetensors", (int)getpid());
  size_t seed_len;
  uint8_t *seed = read_file(seed_path, &seed_len);
  CHECK(seed != NULL, "cannot read %s", seed_path);
  if (!seed) return 0;
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | seed[i];
  ldm_error err = {0};
  ldm_source *src = NULL;
  ldm_unet *u = NULL;
  ldm_clip_text *te = NULL;
  CHECK(ldm_source_open(&src, model, &err) == LDM_OK && ldm_unet_load(&u, src, NULL, &err) == LDM_OK &&
            ldm_clip_text_load(&te, src, 0, 0, &err) == LDM_OK,
        "%s: %s", model, err.msg);
  uint8_t *buf = malloc(seed_len * 2 + 64);
  ldm_lora_table *tables[2] = {u ? &u->lora : NULL, te ? &te->lora : NULL};
  ldm_ctx ctx = {.threads = 1, .err = &err};
  int accepted = 0;
  static const char *tokens[] = {"lora_down", "lora_up", "lora_A", "lora_B", ".alpha", "hada_w1_a", "lora_te2_",
                                 "unet.", "\"F16\"", "\"F32\"", "\"BF16\"", "\"I8\"", "[]", "[0]", "[1,1]",
                                 "99999999", "-1", ".", "_", "processor.to_q_lora.down.weight"};
  for (int it = 0; u && te && it < iters; it++) {
    size_t len = seed_len;
    memcpy(buf, seed, seed_len);
    int n_mut = 1 + (int)(next() % 3);
    for (int m = 0; m < n_mut; m++) {
      size_t pos = 8 + (size_t)(next() % hl); /* mostly the JSON header */
      switch (next() % 5) {
        case 0: buf[pos] ^= (uint8_t)(1u << (next() % 8)); break;
        case 1:
          if (buf[pos] >= '0' && buf[pos] <= '9') buf[pos] = (uint8_t)('0' + next() % 10);
          break;
        case 2: { /* token splice (the header length grows with it) */
          const char *t = tokens[next() % (sizeof tokens / sizeof *tokens)];
          size_t tl = strlen(t);
          if (len + tl > seed_len * 2) break;
          memmove(buf + pos + tl, buf + pos, len - pos);
          memcpy(buf + pos, t, tl);
          len += tl;
          uint64_t h = 0;
          for (int i = 7; i >= 0; i--) h = h << 8 | buf[i];
          h += tl;
          for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(h >> (8 * i));
          break;
        }
        case 3: buf[8 + hl + next() % (seed_len - 8 - hl)] = (uint8_t)next(); break; /* data (alpha, values) */
        default: { /* swap two digits' places */
          size_t q = 8 + (size_t)(next() % hl);
          uint8_t c = buf[pos];
          buf[pos] = buf[q];
          buf[q] = c;
        }
      }
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) break;
    fwrite(buf, 1, len, f);
    fclose(f);
    ldm_lora_ref ref = {.path = tmp, .mult_te = 0.7f, .mult_unet = -0.3f};
    ldm_error_clear(&err);
    if (ldm_lora_merge(&ctx, &ref, 1, tables, 2, "sd1", false, &err) == LDM_OK) {
      accepted++;
      volatile float acc = 0; /* every merged weight readable, whole */
      for (int t = 0; t < 2; t++)
        for (int i = 0; i < tables[t]->n; i++)
          if (tables[t]->mods[i].merged)
            for (int64_t k = 0; k < ldm_tensor_numel(&tables[t]->mods[i].orig); k++) acc += tables[t]->mods[i].merged[k];
      for (int t = 0; t < 2; t++) ldm_lora_table_restore(tables[t]);
    } else if (!err.msg[0]) {
      CHECK(0, "iteration %d: refused without a message", it);
    }
    for (int t = 0; t < 2; t++)
      for (int i = 0; i < tables[t]->n; i++)
        if (tables[t]->mods[i].merged) CHECK(0, "iteration %d: a merged copy left after restore", it);
  }
  unlink(tmp);
  printf("fuzz-lora files: %d inputs, %d accepted, no crash\n", iters, accepted);
  free(buf);
  free(seed);
  ldm_clip_text_free(te);
  ldm_unet_free(u);
  ldm_source_close(src);
  return accepted;
}

static void fuzz_prompts(int iters) {
  char model[4096], dir[4096];
  ldm_test_golden("pipeline/sd1", model, sizeof model);
  ldm_test_golden("lora", dir, sizeof dir);
  ldm_model_params mp;
  ldm_model_params_init(&mp);
  mp.path = model;
  ldm_model *m = NULL;
  ldm_error err = {0};
  CHECK(ldm_model_load(&m, &mp, &err) == LDM_OK, "%s", err.msg);
  if (!m) return;
  static const char *parts[] = {"<", ">", ":", "lora", "lyco", "sd1_kohya", "sd1_peft", "0.5", "-1", "te=", "unet=",
                                "dyn=", " ", "a", "\\", "(", ")", "embedding:", "1e9", "nan"};
  char p[512];
  int ok = 0;
  for (int it = 0; it < iters; it++) {
    size_t k = 0;
    int n = 1 + (int)(next() % 24);
    for (int i = 0; i < n; i++) {
      const char *s = parts[next() % (sizeof parts / sizeof *parts)];
      size_t l = strlen(s);
      if (k + l + 1 >= sizeof p) break;
      memcpy(p + k, s, l);
      k += l;
    }
    p[k] = '\0';
    ldm_job_params jp;
    ldm_job_params_init(&jp, LDM_TASK_TXT2IMG);
    jp.prompt = p;
    jp.model_dirs = dir;
    ldm_job *j = NULL;
    if (ldm_job_new(&j, m, &jp, &err) == LDM_OK) {
      ok++;
      CHECK(strlen(ldm_job_prompt(j)) <= strlen(p), "the prompt grew: '%s' -> '%s'", p, ldm_job_prompt(j));
      ldm_job_free(j);
    } else {
      CHECK(err.msg[0] != 0, "'%s' refused without a message", p);
    }
  }
  /* one pass: 200 000 unclosed tags */
  size_t big = 200000 * 3;
  char *s = malloc(big + 1);
  for (size_t i = 0; i < big; i += 3) memcpy(s + i, "<a:", 3);
  s[big] = '\0';
  ldm_job_params jp;
  ldm_job_params_init(&jp, LDM_TASK_TXT2IMG);
  jp.prompt = s;
  jp.model_dirs = dir;
  ldm_job *j = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ldm_status st = ldm_job_new(&j, m, &jp, &err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  CHECK(st == LDM_OK && strlen(ldm_job_prompt(j)) == big, "unclosed tags: %s", err.msg);
  CHECK(dt < 1.0, "200000 unclosed tags took %.3f s", dt);
  printf("fuzz-lora prompts: %d inputs, %d accepted; 200000 unclosed tags in %.4f s (limit 1 s)\n", iters, ok, dt);
  ldm_job_free(j);
  free(s);
  ldm_model_free(m);
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 3000;
  fuzz_files(iters);
  fuzz_prompts(iters);
  return ldm_test_finish("fuzz-lora");
}
