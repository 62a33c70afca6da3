/* ---- resize_f32: linear Resize, float32 ---------------------------------- */
/* x and y are [n][h][w][c] (channels-first data is n*c images of one channel).
   Output row oh reads input rows y0[oh] and y1[oh], y1 with weight wy[oh];
   output column ow reads columns x0[ow] and x1[ow], x1 with weight wx[ow]
   (1-D data: one row, y0 = y1 = 0, wy = 0). Along the rows first, then the
   columns, as the reference interpolates axis by axis. */
typedef struct {
    int32_t n, in_h, in_w, c, out_h, out_w;
    const int32_t *y0;
    const int32_t *y1;
    const float *wy;
    const int32_t *x0;
    const int32_t *x1;
    const float *wx;
} fresize_geom;

static void resize_f32(const fresize_geom *g, const float *x, float *y)
{
    for (int32_t b = 0; b < g->n; ++b) {
        const float *image = x + (size_t)b * g->in_h * g->in_w * g->c;
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const float *r0 = image + (size_t)g->y0[oh] * g->in_w * g->c;
            const float *r1 = image + (size_t)g->y1[oh] * g->in_w * g->c;
            const float fy = g->wy[oh];
            for (int32_t ow = 0; ow < g->out_w; ++ow) {
                const float fx = g->wx[ow];
                const size_t c0 = (size_t)g->x0[ow] * g->c, c1 = (size_t)g->x1[ow] * g->c;
                for (int32_t ch = 0; ch < g->c; ++ch) {
                    const float left = r0[c0 + ch] * (1.0f - fy) + r1[c0 + ch] * fy;
                    const float right = r0[c1 + ch] * (1.0f - fy) + r1[c1 + ch] * fy;
                    *y++ = left * (1.0f - fx) + right * fx;
                }
            }
        }
    }
}
