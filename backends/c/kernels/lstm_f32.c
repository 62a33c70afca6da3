/* ---- lstm_f32_dir: LSTM, float32, one direction --------------------------- */
static void lstm_f32_dir(const frnn_params *p, const float *x, float *y, const float *h0, const float *c0,
                         float *yh, float *yc, void *scratch)
{
    const int32_t H = p->hidden;
    float *h = (float *)scratch;
    float *hn = h + H;
    float *c = hn + H;
    for (int32_t b = 0; b < p->batch; ++b) {
        frnn_start(p, b, h0, h);
        frnn_start(p, b, c0, c);
        for (int32_t s = 0; s < p->steps; ++s) {
            const int32_t t = frnn_time(p, s);
            const float *xt = x + (size_t)t * p->x_t + (size_t)b * p->x_b;
            for (int32_t j = 0; j < H; ++j) {
                float i = frnn_wx(p, j, xt) + frnn_rh(p, j, h);
                float o = frnn_wx(p, H + j, xt) + frnn_rh(p, H + j, h);
                float f = frnn_wx(p, 2 * H + j, xt) + frnn_rh(p, 2 * H + j, h);
                const float g = frnn_wx(p, 3 * H + j, xt) + frnn_rh(p, 3 * H + j, h);
                if (p->peep) {
                    i += p->peep[j] * c[j];
                    f += p->peep[2 * H + j] * c[j];
                }
                i = frnn_act(p, 0, frnn_clip(p, i));
                f = p->input_forget ? 1.0f - i : frnn_act(p, 0, frnn_clip(p, f));
                c[j] = f * c[j] + i * frnn_act(p, 1, frnn_clip(p, g));
                if (p->peep) {
                    o += p->peep[H + j] * c[j];
                }
                hn[j] = frnn_act(p, 0, frnn_clip(p, o)) * frnn_act(p, 2, c[j]);
            }
            frnn_emit(p, b, t, s == p->steps - 1, hn, h, y, yh);
        }
        for (int32_t j = 0; yc && j < H; ++j) {
            yc[(size_t)b * p->s_b + j] = c[j];
        }
    }
}
