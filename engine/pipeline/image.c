/* ldm_image allocation (public). */
#include "ldm.h"
#include "core/status.h"

#include <stdlib.h>

ldm_image *ldm_image_new(int width, int height, int channels, ldm_pixel_type type) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3 && channels != 4)) return NULL;
  size_t px = type == LDM_PIXEL_F32 ? sizeof(float) : 1, stride, bytes;
  if (!ldm_mul_size((size_t)width * (size_t)channels, px, &stride) ||
      !ldm_mul_size(stride, (size_t)height, &bytes))
    return NULL;
  ldm_image *img = calloc(1, sizeof *img);
  if (!img) return NULL;
  img->data = calloc(bytes, 1);
  if (!img->data) {
    free(img);
    return NULL;
  }
  img->width = width;
  img->height = height;
  img->channels = channels;
  img->type = type;
  img->stride = stride;
  return img;
}

void ldm_image_free(ldm_image *img) {
  if (!img) return;
  free(img->data);
  free(img);
}
