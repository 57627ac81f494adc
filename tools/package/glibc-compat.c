/* Linked into ldm and the plug-in of a -Dstatic_deps=true build (the portable
 * package): the static archives of Debian 13 were compiled against glibc 2.41
 * and call the C23 entry points of strtol and strtoll (jansson's number
 * parser, OpenBLAS's environment reader, both in base 10), which exist only
 * from glibc 2.38 on. These hidden definitions satisfy them with the classic
 * functions, identical for every input without a "0b" prefix, so the
 * binaries run on every glibc from 2.34 on. Hidden: nothing outside the
 * program sees them, even where the program exports its symbols (the
 * plug-in links with --export-dynamic). See glibc-compat.h. */
#include <stdlib.h>

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN long __isoc23_strtol(const char *s, char **end, int base);
HIDDEN long long __isoc23_strtoll(const char *s, char **end, int base);
HIDDEN unsigned long __isoc23_strtoul(const char *s, char **end, int base);
HIDDEN unsigned long long __isoc23_strtoull(const char *s, char **end, int base);

long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
long long __isoc23_strtoll(const char *s, char **end, int base) { return strtoll(s, end, base); }
unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }
unsigned long long __isoc23_strtoull(const char *s, char **end, int base) { return strtoull(s, end, base); }
