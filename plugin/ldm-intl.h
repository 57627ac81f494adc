/* ldm-intl.h: gettext macros of the gimp-ldm plug-in (own text domain,
 * catalogues installed beside the plug-in binary in <plug-in dir>/locale).
 */
#ifndef LDM_INTL_H
#define LDM_INTL_H

#include <glib/gi18n-lib.h>

#ifndef GETTEXT_PACKAGE
#error "GETTEXT_PACKAGE must be defined by the build"
#endif

#endif /* LDM_INTL_H */
