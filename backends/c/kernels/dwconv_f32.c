/* ---- dwconv_f32: depthwise Conv, float32, NHWC ---------------------------- */
/* groups == in_c; output channel oc reads input channel oc / (out_c / in_c).
   w [k_h][k_w][out_c] (repacked at compile time so that the channel loop is
   contiguous), bias [out_c] or NULL; otherwise as conv_f32. */
static void dwconv_f32(const conv_geom *geom, const float *x, const float *w, const float *bias,
                       float lo, float hi, float *y)
{
    const conv_geom g = *geom;  /* a local copy: stores to y cannot alias it */
    const int32_t mult = g.out_c / g.in_c;  /* depth multiplier */
    for (int32_t b = 0; b < g.n; ++b) {
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            for (int32_t ox = 0; ox < g.out_w; ++ox) {
                float *out = y + ((b * g.out_h + oy) * g.out_w + ox) * g.out_c;
                for (int32_t oc = 0; oc < g.out_c; ++oc) {
                    const int32_t ic = oc / mult;
                    float acc = bias ? bias[oc] : 0.0f;
                    for (int32_t ky = 0; ky < g.k_h; ++ky) {
                        const int32_t iy = oy * g.stride_h - g.pad_top + ky * g.dil_h;
                        if (iy < 0 || iy >= g.in_h) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < g.k_w; ++kx) {
                            const int32_t ix = ox * g.stride_w - g.pad_left + kx * g.dil_w;
                            if (ix < 0 || ix >= g.in_w) {
                                continue;
                            }
                            acc += x[((b * g.in_h + iy) * g.in_w + ix) * g.in_c + ic]
                                 * w[(ky * g.k_w + kx) * g.out_c + oc];
                        }
                    }
                    out[oc] = acc < lo ? lo : (acc > hi ? hi : acc);
                }
            }
        }
    }
}

