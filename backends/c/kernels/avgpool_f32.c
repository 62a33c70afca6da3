/* ---- avgpool_f32: AveragePool / GlobalAveragePool, float32, NHWC ---------- */
/* y = (sum of x in the window) / count, where count is the number of window
   positions inside the input, or with include_pad inside the input and its
   explicit pads (never positions past the end pad, which ceil_mode windows
   may reach). */
static void avgpool_f32(const pool_geom *geom, int32_t include_pad, const float *x, float *y)
{
    const pool_geom g = *geom;  /* a local copy: stores to y cannot alias it */
    for (int32_t b = 0; b < g.n; ++b) {
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            for (int32_t ox = 0; ox < g.out_w; ++ox) {
                for (int32_t c = 0; c < g.c; ++c) {
                    float sum = 0.0f;
                    int32_t count = 0;
                    for (int32_t ky = 0; ky < g.k_h; ++ky) {
                        const int32_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
                        if (iy >= g.in_h + g.pad_bottom) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < g.k_w; ++kx) {
                            const int32_t ix = ox * g.stride_w - g.pad_left + kx * g.dil_w;
                            if (ix >= g.in_w + g.pad_right) {
                                continue;
                            }
                            if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) {
                                count += include_pad;
                                continue;
                            }
                            sum += x[((b * g.in_h + iy) * g.in_w + ix) * g.c + c];
                            count += 1;
                        }
                    }
                    *y++ = sum / (float)count;
                }
            }
        }
    }
}

