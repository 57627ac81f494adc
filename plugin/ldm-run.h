/* ldm-run.h: carries out one LdmSpec on an image: checks the inputs, reads
 * the pixels, runs the engine, and adds the result as a new layer in one
 * undo group. Nothing in the image changes unless the engine succeeded.
 */
#ifndef LDM_RUN_H
#define LDM_RUN_H

#include <libgimp/gimp.h>

#include "ldm-pixels.h"
#include "ldm-spec.h"

typedef struct
{
  /* live preview (RGB float at the working size), may be NULL */
  void   (*preview) (gpointer user, const LdmPixels *rgb);
  /* status line for the dialog, may be NULL */
  void   (*status)  (gpointer user, const gchar *text, gdouble fraction);
  gpointer user;
  gboolean interactive;   /* display new images */
} LdmRunUi;

/* Minimum side of a selection the plug-in works on, in pixels. */
#define LDM_MIN_SELECTION 8

/* Returns the new layer (in `image`, or in a new image for upscale with
 * new-image) or NULL with `error` set. `model_folders` is the configured
 * search path (may be NULL). */
GimpLayer *ldm_execute (LdmSpec        *spec,
                        GimpImage      *image,
                        GimpDrawable   *drawable,
                        const gchar    *model_folders,
                        const LdmRunUi *ui,
                        GError        **error);

/* Seconds per step per megapixel measured on this machine (0 = unknown). */
gdouble    ldm_speed_get (void);

#endif /* LDM_RUN_H */
