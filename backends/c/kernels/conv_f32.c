/* ---- conv_f32: Conv, float32, NHWC, any group ----------------------------- */
/* x [n][in_h][in_w][in_c], w [out_c][k_h][k_w][in_c / groups] (repacked from
   ONNX's [out_c][in_c / groups][k_h][k_w] at compile time), bias [out_c] or
   NULL, y [n][out_h][out_w][out_c]:
   y = clamp(bias + sum over the window of x * w, lo, hi); padding adds nothing. */
static void conv_f32(const conv_geom *geom, const float *x, const float *w, const float *bias,
                     float lo, float hi, float *y)
{
    const conv_geom g = *geom;  /* a local copy: stores to y cannot alias it */
    const int32_t cg = g.in_c / g.groups;   /* input channels per group */
    const int32_t og = g.out_c / g.groups;  /* output channels per group */
    const int32_t w_step = g.k_h * g.k_w * cg;
    for (int32_t b = 0; b < g.n; ++b) {
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            for (int32_t ox = 0; ox < g.out_w; ++ox) {
                float *out = y + ((b * g.out_h + oy) * g.out_w + ox) * g.out_c;
                for (int32_t oc = 0; oc < g.out_c; ++oc) {
                    const int32_t c0 = (oc / og) * cg;
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
                            const float *xp = x + ((b * g.in_h + iy) * g.in_w + ix) * g.in_c + c0;
                            const float *wp = w + oc * w_step + (ky * g.k_w + kx) * cg;
                            for (int32_t c = 0; c < cg; ++c) {
                                acc += xp[c] * wp[c];
                            }
                        }
                    }
                    out[oc] = acc < lo ? lo : (acc > hi ? hi : acc);
                }
            }
        }
    }
}

