/* ---- rnn_f32_dir: RNN, float32, one direction ----------------------------- */
static void rnn_f32_dir(const frnn_params *p, const float *x, float *y, const float *h0, const float *unused,
                        float *yh, float *yc, void *scratch)
{
    const int32_t H = p->hidden;
    float *h = (float *)scratch;
    float *hn = h + H;
    (void)unused;
    (void)yc;
    for (int32_t b = 0; b < p->batch; ++b) {
        frnn_start(p, b, h0, h);
        for (int32_t s = 0; s < p->steps; ++s) {
            const int32_t t = frnn_time(p, s);
            const float *xt = x + (size_t)t * p->x_t + (size_t)b * p->x_b;
            for (int32_t j = 0; j < H; ++j) {
                hn[j] = frnn_act(p, 0, frnn_clip(p, frnn_wx(p, j, xt) + frnn_rh(p, j, h)));
            }
            frnn_emit(p, b, t, s == p->steps - 1, hn, h, y, yh);
        }
    }
}
