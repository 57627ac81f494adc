/* Convolution with a residual block's tail fused in: the add of the skip
 * path and the ReLU that follow a conv in TAESD's AutoencoderTinyBlock
 * (and other conv + add + ReLU chains), without extra passes over memory
 * where the convolution runs as Winograd. */
#ifndef LDM_OPS_CONV_FUSED_H
#define LDM_OPS_CONV_FUSED_H

#include <stdbool.h>

#include "core/tensor.h"
#include "core/threads.h"

/* y = relu?(ldm_conv2d(x, w, b) + res): ldm_conv2d's arguments, then res
 * [B, Ho*Wo, Cout] (channels-last like y; NULL: no add) and relu. res must
 * not overlap y or x. The add and ReLU happen in Winograd's output
 * transform; the other algorithms take one parallel pass after the
 * convolution. */
ldm_status ldm_conv2d_fused(ldm_ctx *ctx, float *y, const float *x, int B, int H, int W, int Cin,
                            const ldm_tensor *w, const ldm_tensor *b, int stride, int pad,
                            const float *res, bool relu);

#endif
