/* ---- qlstm_dir: QLSTM, one direction (docs/numerics.md §15) ---------------- */
static int32_t qlstm_cell_q12(int32_t c, int32_t frac)
{
    if (frac > 12) {
        return (int32_t)round_shift(c, frac - 12);
    }
    return (int32_t)qrnn_sat((int64_t)c * ((int64_t)1 << (12 - frac)), -32768, 32767);
}

static void qlstm_dir(const qrnn_params *p, const int8_t *x, int8_t *y, const int8_t *h0, const void *c0,
                      int8_t *yh, int16_t *yc, void *scratch)
{
    const int32_t H = p->hidden;
    int16_t *c = (int16_t *)scratch;
    int8_t *h = (int8_t *)(c + H);
    int8_t *hn = h + H;
    for (int32_t b = 0; b < p->batch; ++b) {
        qrnn_start(p, b, h0, h);
        for (int32_t j = 0; j < H; ++j) {
            const size_t at = (size_t)b * p->s_b + j;
            c[j] = !c0 ? 0 : (!p->c0_i8 ? ((const int16_t *)c0)[at]
                   : (int16_t)qrnn_sat(round_shift((int64_t)(((const int8_t *)c0)[at] - p->c0_zero) * p->c0_mult,
                                                   p->c0_shift), -32768, 32767));
        }
        for (int32_t s = 0; s < p->steps; ++s) {
            const int32_t t = qrnn_time(p, s);
            const int8_t *xt = x + (size_t)t * p->x_t + (size_t)b * p->x_b;
            for (int32_t j = 0; j < H; ++j) {
                const int64_t i = qrnn_lookup(p->tables, qrnn_gate(p, j, xt, h));
                const int64_t o = qrnn_lookup(p->tables, qrnn_gate(p, H + j, xt, h));
                const int64_t f = qrnn_lookup(p->tables, qrnn_gate(p, 2 * H + j, xt, h));
                const int64_t g = qrnn_lookup(p->tables + QRNN_TABLE, qrnn_gate(p, 3 * H + j, xt, h));
                const int64_t cj = qrnn_sat(round_shift(f * c[j], 15) + round_shift(i * g, 30 - p->cell_frac),
                                            -32768, 32767);
                const int64_t tau = qrnn_lookup(p->tables + 2 * QRNN_TABLE, qlstm_cell_q12((int32_t)cj, p->cell_frac));
                c[j] = (int16_t)cj;
                hn[j] = (int8_t)qrnn_sat(p->h_zero + round_shift(o * tau * p->out_mult, p->out_shift), -128, 127);
            }
            qrnn_emit(p, b, t, s == p->steps - 1, hn, h, y, yh);
        }
        for (int32_t j = 0; yc && j < H; ++j) {
            yc[(size_t)b * p->s_b + j] = c[j];
        }
    }
}
