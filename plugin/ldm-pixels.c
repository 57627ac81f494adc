/* ldm-pixels.c: float pixel buffers and a separable triangle-filter
 * resampler (bilinear when enlarging, area-weighted when shrinking), used to
 * bring a region to the model's working size and the result back.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "ldm-pixels.h"

LdmPixels *
ldm_pixels_new (gint w,
                gint h,
                gint c)
{
  LdmPixels *p;

  g_return_val_if_fail (w > 0 && h > 0 && c > 0, NULL);
  p = g_new0 (LdmPixels, 1);
  p->w = w;
  p->h = h;
  p->c = c;
  p->data = g_try_new0 (gfloat, (gsize) w * (gsize) h * (gsize) c);
  if (! p->data)
    {
      g_free (p);
      return NULL;
    }
  return p;
}

void
ldm_pixels_free (LdmPixels *p)
{
  if (! p)
    return;
  g_free (p->data);
  g_free (p);
}

typedef struct
{
  gint    first;   /* first source index */
  gint    n;       /* number of taps */
  gfloat *w;       /* n normalised weights */
} Taps;

/* Weights mapping a line of `src` samples onto `dst` samples. */
static Taps *
make_taps (gint src,
           gint dst)
{
  Taps   *taps  = g_new0 (Taps, dst);
  gdouble scale = (gdouble) dst / src;
  gdouble support = scale < 1.0 ? 1.0 / scale : 1.0;
  gint    i;

  for (i = 0; i < dst; i++)
    {
      gdouble center = (i + 0.5) / scale - 0.5;
      gint    lo = (gint) floor (center - support) + 1;
      gint    hi = (gint) ceil (center + support) - 1;
      gdouble sum = 0.0;
      gint    k;

      if (lo > hi)
        lo = hi = (gint) floor (center + 0.5);
      taps[i].first = lo;
      taps[i].n = hi - lo + 1;
      taps[i].w = g_new (gfloat, taps[i].n);
      for (k = 0; k < taps[i].n; k++)
        {
          gdouble d = fabs ((lo + k) - center) / support;
          gdouble wt = d < 1.0 ? 1.0 - d : 0.0;

          taps[i].w[k] = (gfloat) wt;
          sum += wt;
        }
      if (sum <= 0.0)
        {
          taps[i].w[0] = 1.0f;
          sum = 1.0;
          for (k = 1; k < taps[i].n; k++)
            taps[i].w[k] = 0.0f;
        }
      for (k = 0; k < taps[i].n; k++)
        taps[i].w[k] /= (gfloat) sum;
    }
  return taps;
}

static void
free_taps (Taps *taps,
           gint  n)
{
  gint i;

  for (i = 0; i < n; i++)
    g_free (taps[i].w);
  g_free (taps);
}

LdmPixels *
ldm_pixels_resample (const LdmPixels *src,
                     gint             w,
                     gint             h)
{
  LdmPixels *tmp, *dst;
  Taps      *tx, *ty;
  gint       c = src->c;
  gint       x, y, k, ch;

  if (w == src->w && h == src->h)
    {
      dst = ldm_pixels_new (w, h, c);
      if (dst)
        memcpy (dst->data, src->data, sizeof (gfloat) * (gsize) w * h * c);
      return dst;
    }

  tmp = ldm_pixels_new (w, src->h, c);
  dst = ldm_pixels_new (w, h, c);
  if (! tmp || ! dst)
    {
      ldm_pixels_free (tmp);
      ldm_pixels_free (dst);
      return NULL;
    }
  tx = make_taps (src->w, w);
  ty = make_taps (src->h, h);

  /* horizontal pass: [src->h, src->w, c] -> [src->h, w, c] */
  for (y = 0; y < src->h; y++)
    {
      const gfloat *row = src->data + (gsize) y * src->w * c;
      gfloat       *out = tmp->data + (gsize) y * w * c;

      for (x = 0; x < w; x++)
        for (ch = 0; ch < c; ch++)
          {
            gfloat acc = 0.0f;

            for (k = 0; k < tx[x].n; k++)
              {
                gint sx = CLAMP (tx[x].first + k, 0, src->w - 1);

                acc += tx[x].w[k] * row[(gsize) sx * c + ch];
              }
            out[(gsize) x * c + ch] = acc;
          }
    }

  /* vertical pass: [src->h, w, c] -> [h, w, c] */
  for (y = 0; y < h; y++)
    {
      gfloat *out = dst->data + (gsize) y * w * c;

      for (x = 0; x < w * c; x++)
        {
          gfloat acc = 0.0f;

          for (k = 0; k < ty[y].n; k++)
            {
              gint sy = CLAMP (ty[y].first + k, 0, src->h - 1);

              acc += ty[y].w[k] * tmp->data[(gsize) sy * w * c + x];
            }
          out[x] = acc;
        }
    }

  free_taps (tx, w);
  free_taps (ty, h);
  ldm_pixels_free (tmp);
  return dst;
}

void
ldm_work_size (gint  w,
               gint  h,
               gint  native,
               gint  multiple,
               gint *work_w,
               gint *work_h)
{
  gdouble s = (gdouble) native / sqrt ((gdouble) w * h);
  gint    ww = (gint) floor (w * s / multiple + 0.5) * multiple;
  gint    wh = (gint) floor (h * s / multiple + 0.5) * multiple;

  *work_w = MAX (ww, multiple);
  *work_h = MAX (wh, multiple);
}
