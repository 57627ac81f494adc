/* The `parameters` text AUTOMATIC1111 and ldm store in a PNG (see cli.h):
 * split into prompt, negative prompt and settings, each setting handed to
 * the caller as key and value (its one validation is the caller's). The
 * settings line is read as A1111's re_param reads it:
 *   \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)
 * in one pass. */
#include "cli.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static bool word_char(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }
static bool key_char(unsigned char c) { return word_char(c) || c == ' ' || c == '-' || c == '/'; }

int recipe_parse(const char *text, char **prompt, char **negative, recipe_setting_fn fn, void *user) {
  *prompt = *negative = NULL;
  const char *last = strrchr(text, '\n');
  if (!last) return -1;
  const char *settings = last + 1;
  if (!strstr(settings, "Steps: ")) return -1;
  const char *neg = strstr(text, "\nNegative prompt: ");
  if (neg && neg >= last) neg = NULL;
  *prompt = strndup(text, (size_t)((neg ? neg : last) - text));
  *negative = strndup(neg ? neg + 18 : "", neg ? (size_t)(last - (neg + 18)) : 0);
  size_t n = strlen(settings);
  char *key = malloc(n + 1), *val = malloc(n + 1);
  int rc = *prompt && *negative && key && val ? 0 : -1;
  const char *s = settings;
  while (rc == 0 && *s) {
    while (isspace((unsigned char)*s)) s++;
    if (!*s) break;
    /* key: a word character, then word characters, spaces, '-' or '/' */
    const char *k0 = s;
    if (!word_char((unsigned char)*s)) {
      s++; /* not a setting: skip a character, as re.findall does */
      continue;
    }
    while (key_char((unsigned char)*s)) s++;
    if (*s != ':' || s - k0 < 2) {
      if (s == k0) s++;
      continue;
    }
    size_t kl = (size_t)(s - k0);
    while (kl > 0 && k0[kl - 1] == ' ') kl--; /* "Key :" is not A1111's, but harmless */
    memcpy(key, k0, kl);
    key[kl] = '\0';
    s++;
    while (isspace((unsigned char)*s)) s++;
    size_t vl = 0;
    if (*s == '"') { /* quoted: \" and \\ escapes, commas allowed */
      const char *q = s + 1;
      while (*q && *q != '"') q += q[0] == '\\' && q[1] ? 2 : 1;
      if (*q == '"') {
        for (const char *c = s + 1; c < q; c++) {
          if (*c == '\\' && c + 1 < q) c++;
          val[vl++] = *c;
        }
        s = q + 1;
        while (*s && *s != ',') s++; /* anything after the quote up to the comma is dropped */
      } else { /* no closing quote: the text up to the comma */
        while (*s && *s != ',') val[vl++] = *s++;
      }
    } else {
      while (*s && *s != ',') val[vl++] = *s++;
    }
    while (vl > 0 && isspace((unsigned char)val[vl - 1])) vl--;
    val[vl] = '\0';
    if (*s == ',') s++;
    rc = fn(user, key, val);
  }
  free(key);
  free(val);
  if (rc == -1 && (!*prompt || !*negative)) rc = -2; /* out of memory: not "no settings" */
  if (rc != 0) {
    free(*prompt);
    free(*negative);
    *prompt = *negative = NULL;
  }
  return rc;
}
