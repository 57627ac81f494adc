/* ldm-ui-intl.h: gettext for the dialog pieces. The text domain is the
 * plug-in's, given by the build (-DGETTEXT_PACKAGE in ui/meson.build): ui/
 * sees GTK, GIMP and its own headers only, not the plug-in's config.h.
 */
#ifndef GIMP_LDM_UI_INTL_H
#define GIMP_LDM_UI_INTL_H

#ifndef GETTEXT_PACKAGE
#error "GETTEXT_PACKAGE must be defined by the build"
#endif

#include <glib/gi18n-lib.h>

#endif /* GIMP_LDM_UI_INTL_H */
