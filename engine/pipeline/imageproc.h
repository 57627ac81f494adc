/* Pixel-side work of the pipelines: ldm_image <-> NCHW float in [-1, 1]
 * (diffusers' VaeImageProcessor conventions), masks, Gaussian blur,
 * antialiased resize, bounding boxes and the final composite that keeps
 * unmasked pixels bit-identical. */
#ifndef LDM_PIPELINE_IMAGEPROC_H
#define LDM_PIPELINE_IMAGEPROC_H

#include <stdint.h>
#include "ldm.h"

/* Image (any channels/type) -> planar RGB [3, H, W] in [-1, 1]: x/255*2-1.
 * Grey is replicated; alpha is ignored. */
void pl_image_to_planar(const ldm_image *img, float *out);
/* Planar RGB [3, H, W] in [-1, 1] -> RGB U8 as diffusers' postprocess:
 * round_half_even(clamp(x / 2 + 0.5, 0, 1) * 255). */
void pl_planar_to_u8(const float *in, int W, int H, ldm_image *out);
/* The same as F32 without rounding: clamp(x / 2 + 0.5, 0, 1). */
void pl_planar_to_f32(const float *in, int W, int H, ldm_image *out);
/* pl_planar_to_u8 or pl_planar_to_f32 by out->type. */
void pl_planar_to_image(const float *in, int W, int H, ldm_image *out);
/* Mask (1 channel, or the first channel of RGB/RGBA; U8 or F32) -> [H*W]
 * floats in 0..1. */
void pl_mask_to_float(const ldm_image *mask, float *out);

/* Separable Gaussian blur of a [H, W] plane, AUTOMATIC1111's mask blur:
 * sigma in pixels (0 = copy) over 2 * int(2.5 sigma + 0.5) + 1 taps (at most
 * 2 * PL_BLUR_MAX_RADIUS + 1, the radius of the CLI's largest blur, 256),
 * edges reflected as OpenCV's BORDER_REFLECT_101. tmp holds H*W floats. */
enum { PL_BLUR_MAX_RADIUS = 640 };
void pl_blur(float *plane, int W, int H, float sigma, float *tmp);
/* The w x h window at (x0, y0) of C planes [C, H, W] -> [C, h, w]; the
 * window lies inside. */
void pl_crop(const float *in, int C, int W, int H, int x0, int y0, float *out, int w, int h);
/* Antialiased (triangle filter) resize of C planes [C, H, W] -> [C, h, w],
 * as PIL's BILINEAR (see ldm_image_resize). Returns -1 when out of memory. */
int pl_resize(const float *in, int C, int W, int H, float *out, int w, int h);
/* Bounding box of mask > 0; returns 0 when the mask is empty. */
int pl_mask_bbox(const float *mask, int W, int H, int *x0, int *y0, int *x1, int *y1);

/* out = round(mask * gen + (1 - mask) * orig) per channel in 8-bit, with
 * out == orig exactly wherever mask == 0. gen: RGB U8 of the same size;
 * orig: the caller's image (any channels/type); out: RGB U8. */
void pl_composite(const ldm_image *orig, const ldm_image *gen, const float *mask, ldm_image *out);

/* orig's RGB (grey replicated, alpha dropped) into out of the same size, in
 * out's type: U8 rounds F32 input as pl_composite; F32 takes U8 as v / 255. */
void pl_copy_rgb(const ldm_image *orig, ldm_image *out);
/* Float composite: out = mask * gen + (1 - mask) * orig, orig's value
 * itself (F32, or U8 / 255) wherever mask == 0. gen and out RGB F32. */
void pl_composite_f32(const ldm_image *orig, const ldm_image *gen, const float *mask, ldm_image *out);

#endif
