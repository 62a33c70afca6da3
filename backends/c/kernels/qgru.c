/* ---- qgru_dir: QGRU, one direction (docs/numerics.md §15) ------------------ */
/* z and r of every row (Q0.15), and rho = r (.) h requantized to h's parameters. */
static void qgru_gates(const qrnn_params *p, const int8_t *xt, const int8_t *h, int16_t *z, int16_t *r,
                       int8_t *rho)
{
    const int32_t H = p->hidden;
    for (int32_t j = 0; j < H; ++j) {
        z[j] = (int16_t)qrnn_lookup(p->tables, qrnn_gate(p, j, xt, h));
        r[j] = (int16_t)qrnn_lookup(p->tables, qrnn_gate(p, H + j, xt, h));
        rho[j] = (int8_t)qrnn_sat(p->h_zero + round_shift((int64_t)r[j] * (h[j] - p->h_zero), 15), -128, 127);
    }
}

/* The candidate's Q3.12 pre-activation of row j (docs/numerics.md §15, GRU). */
static int32_t qgru_candidate(const qrnn_params *p, int32_t j, const int8_t *xt, const int8_t *h, int32_t r,
                              const int8_t *rho)
{
    const int32_t H = p->hidden;
    const int32_t row = 2 * H + j;
    const int64_t ax = qrnn_dot(p->w + (size_t)row * p->input, xt, p->input, p->x_zero);
    if (p->lbr) {
        const int64_t ah = qrnn_dot(p->r + (size_t)row * H, h, H, p->h_zero);
        const int64_t u = qrnn_sat(round_shift(ah * p->m_h[row], p->shift) + p->bias[3 * H + j], -32768, 32767);
        return qrnn_clip(p, round_shift(ax * p->m_x[row], p->shift) + p->bias[row] + round_shift(r * u, 15));
    }
    const int64_t ah = qrnn_dot(p->r + (size_t)row * H, rho, H, p->h_zero);
    return qrnn_clip(p, round_shift(ax * p->m_x[row] + ah * p->m_h[row], p->shift)
                        + p->bias[row] + p->bias[3 * H + j]);
}

static void qgru_dir(const qrnn_params *p, const int8_t *x, int8_t *y, const int8_t *h0, const void *c0,
                     int8_t *yh, int16_t *yc, void *scratch)
{
    const int32_t H = p->hidden;
    int16_t *z = (int16_t *)scratch;
    int16_t *r = z + H;
    int8_t *h = (int8_t *)(r + H);
    int8_t *hn = h + H;
    int8_t *rho = hn + H;
    (void)c0;
    (void)yc;
    for (int32_t b = 0; b < p->batch; ++b) {
        qrnn_start(p, b, h0, h);
        for (int32_t s = 0; s < p->steps; ++s) {
            const int32_t t = qrnn_time(p, s);
            const int8_t *xt = x + (size_t)t * p->x_t + (size_t)b * p->x_b;
            qgru_gates(p, xt, h, z, r, rho);
            for (int32_t j = 0; j < H; ++j) {
                const int64_t cand = qrnn_lookup(p->tables + QRNN_TABLE, qgru_candidate(p, j, xt, h, r[j], rho));
                const int64_t mixed = (32768 - (int64_t)z[j]) * cand * p->out_mult
                                      + (int64_t)z[j] * (h[j] - p->h_zero) * p->aux_mult;
                hn[j] = (int8_t)qrnn_sat(p->h_zero + round_shift(mixed, p->out_shift), -128, 127);
            }
            qrnn_emit(p, b, t, s == p->steps - 1, hn, h, y, yh);
        }
    }
}
