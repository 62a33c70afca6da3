/* ---- qrnn_dir: QRNN, one direction (docs/numerics.md §15) ------------------ */
static void qrnn_dir(const qrnn_params *p, const int8_t *x, int8_t *y, const int8_t *h0, const void *c0,
                     int8_t *yh, int16_t *yc, void *scratch)
{
    const int32_t H = p->hidden;
    int8_t *h = (int8_t *)scratch;
    int8_t *hn = h + H;
    (void)c0;
    (void)yc;
    for (int32_t b = 0; b < p->batch; ++b) {
        qrnn_start(p, b, h0, h);
        for (int32_t s = 0; s < p->steps; ++s) {
            const int32_t t = qrnn_time(p, s);
            const int8_t *xt = x + (size_t)t * p->x_t + (size_t)b * p->x_b;
            for (int32_t j = 0; j < H; ++j) {
                const int64_t act = qrnn_lookup(p->tables, qrnn_gate(p, j, xt, h));
                hn[j] = (int8_t)qrnn_sat(p->h_zero + round_shift(act * p->out_mult, p->out_shift), -128, 127);
            }
            qrnn_emit(p, b, t, s == p->steps - 1, hn, h, y, yh);
        }
    }
}
