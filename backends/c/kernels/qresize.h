/* ---- qresize_geom: QResize geometry (docs/numerics.md §17) ----------------- */

/* x and y are [n][h][w][c] (channels-first data is n*c images of one channel).
   Output row oh reads input rows y0[oh] and y1[oh] with weights one_h - wy[oh]
   and wy[oh]; output column ow reads columns x0[ow] and x1[ow] with weights
   one_w - wx[ow] and wx[ow]. one_h and one_w are 2^F, or 1 along the row axis of
   1-D data (then y0 = y1 = 0 and wy = 0). */
typedef struct {
    int32_t n, in_h, in_w, c, out_h, out_w, one_h, one_w;
    const int32_t *y0;
    const int32_t *y1;
    const int32_t *wy;
    const int32_t *x0;
    const int32_t *x1;
    const int32_t *wx;
} qresize_geom;
