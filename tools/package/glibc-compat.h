/* Force-included into every file of a -Dstatic_deps=true build (the
 * portable package, tools/package.sh). glibc 2.38 and later send strtol,
 * sscanf and their kin to new C23 entry points (__isoc23_strtol, ...) under
 * _GNU_SOURCE; their only difference is that they also read a "0b" binary
 * prefix, which nothing here parses. The classic entry points keep the
 * package's binaries loadable on every glibc from 2.34 on (its pthread and
 * start-up symbols set that floor). */
#include <features.h>
#undef __GLIBC_USE_C23_STRTOL
#define __GLIBC_USE_C23_STRTOL 0
