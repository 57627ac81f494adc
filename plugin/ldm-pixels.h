/* ldm-pixels.h: plain float pixel buffers of the plug-in and their
 * resampling (the edge between GIMP's buffers and the engine's images).
 */
#ifndef LDM_PIXELS_H
#define LDM_PIXELS_H

#include <glib.h>

/* Interleaved float pixels, `c` channels, rows packed (stride = w * c). */
typedef struct
{
  gint    w, h, c;
  gfloat *data;
} LdmPixels;

LdmPixels *ldm_pixels_new      (gint w, gint h, gint c);
void       ldm_pixels_free     (LdmPixels *p);
/* Resampled copy (triangle filter, widened when shrinking: area-like). */
LdmPixels *ldm_pixels_resample (const LdmPixels *src, gint w, gint h);

/* Working size for a w x h region and a model of native side `native`:
 * about native^2 pixels, same aspect, sides multiples of `multiple`. */
void       ldm_work_size       (gint w, gint h, gint native, gint multiple,
                                gint *work_w, gint *work_h);

#endif /* LDM_PIXELS_H */
