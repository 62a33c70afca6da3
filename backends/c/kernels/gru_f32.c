/* ---- gru_f32_dir: GRU, float32, one direction ----------------------------- */
/* Gates z, r, h. With linear_before_reset the candidate is
   W_h·x + Wb_h + r ∘ (R_h·h + Rb_h), else W_h·x + Wb_h + R_h·(r ∘ h) + Rb_h. */
static void gru_f32_dir(const frnn_params *p, const float *x, float *y, const float *h0, const float *unused,
                        float *yh, float *yc, void *scratch)
{
    const int32_t H = p->hidden;
    float *h = (float *)scratch;
    float *hn = h + H;
    float *z = hn + H;
    float *rho = z + H; /* r ∘ h, or r itself with linear_before_reset */
    (void)unused;
    (void)yc;
    for (int32_t b = 0; b < p->batch; ++b) {
        frnn_start(p, b, h0, h);
        for (int32_t s = 0; s < p->steps; ++s) {
            const int32_t t = frnn_time(p, s);
            const float *xt = x + (size_t)t * p->x_t + (size_t)b * p->x_b;
            for (int32_t j = 0; j < H; ++j) {
                const float r = frnn_act(p, 0, frnn_clip(p, frnn_wx(p, H + j, xt) + frnn_rh(p, H + j, h)));
                z[j] = frnn_act(p, 0, frnn_clip(p, frnn_wx(p, j, xt) + frnn_rh(p, j, h)));
                rho[j] = p->lbr ? r : r * h[j];
            }
            for (int32_t j = 0; j < H; ++j) {
                const int32_t row = 2 * H + j;
                float cand;
                if (p->lbr) {
                    cand = frnn_wx(p, row, xt) + rho[j] * frnn_rh(p, row, h);
                } else {
                    cand = frnn_wx(p, row, xt) + frnn_rh(p, row, rho);
                }
                cand = frnn_act(p, 1, frnn_clip(p, cand));
                hn[j] = (1.0f - z[j]) * cand + z[j] * h[j];
            }
            frnn_emit(p, b, t, s == p->steps - 1, hn, h, y, yh);
        }
    }
}
