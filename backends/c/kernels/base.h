/* ---- base: types shared by the kernels ------------------------------------ */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

/* Geometry of a 2-D convolution on channels-last (NHWC) tensors; a 1-D one has
   in_h = out_h = k_h = 1. Output position (oy, ox) reads input row
   oy * stride_h - pad_top + ky * dil_h (likewise for columns). */
typedef struct {
    int32_t n, in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int32_t groups;
} conv_geom;

/* Geometry of a 2-D pooling window on NHWC tensors. Positions past
   in_h + pad_bottom (ceil_mode windows) are never part of a window. */
typedef struct {
    int32_t n, in_h, in_w, c;
    int32_t out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
} pool_geom;

/* Up to six nested loops over a row-major output: extents `dims` and, per
   operand, the element stride of each loop (0 where the operand broadcasts). */
typedef struct {
    int32_t dims[6];
    int32_t sa[6];
    int32_t sb[6];
} loop6;

/* Pad: output extents and, per axis, the input offset of each output index
   (-1 at a fill position). */
typedef struct {
    int32_t dims[6];
    const int32_t *map[6];
} pad_geom;

/* Gemm/MatMul geometry: see gemm_f32. */
typedef struct {
    int32_t batch, m, n, k;
    int32_t a_sb, a_sm, a_sk;
    int32_t b_sb, b_sn, b_sk;
    int32_t c_sm, c_sn;
    float alpha, beta, lo, hi;
} gemm_geom;

