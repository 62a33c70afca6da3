/* ---- qrecurrent: what QLSTM, QGRU and QRNN share ------------------------- */
/* docs/numerics.md §15. Each call runs one direction over every batch row and
   time step. Strides (in elements) place x, Y and the states for either ONNX
   layout; the caller offsets the pointers to the direction. Scratch (arena):
   QLSTM int16 c[H], int8 h[H], h_new[H]; QGRU int16 z[H], r[H], int8 h[H],
   h_new[H], rho[H]; QRNN int8 h[H], h_new[H]. The previous h stays intact
   until every row of the step has read it. */
typedef struct {
    int32_t steps, batch, input, hidden, reverse;
    int32_t x_t, x_b, y_t, y_b, s_b;
    int32_t x_zero, h_zero, shift, clip, out_mult, out_shift, aux_mult, cell_frac;
    int32_t c0_i8, c0_zero, c0_mult, c0_shift, lbr;
    const int8_t *w;
    const int8_t *r;
    const int32_t *bias;
    const int32_t *m_x;
    const int32_t *m_h;
    const int16_t *tables;
} qrnn_params;

#define QRNN_TABLE 513

static int64_t qrnn_sat(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* sum_k w[k] * (v[k] - zero), exact in int32 (the quantizer proved it). */
static int32_t qrnn_dot(const int8_t *w, const int8_t *v, int32_t n, int32_t zero)
{
    int32_t acc = 0;
    for (int32_t k = 0; k < n; ++k) {
        acc += (int32_t)w[k] * ((int32_t)v[k] - zero);
    }
    return acc;
}

/* Q3.12 -> Q0.15 through a 513-entry table with linear interpolation. */
static int32_t qrnn_lookup(const int16_t *table, int32_t q)
{
    const int32_t u = q + 32768;
    const int32_t i = u >> 7;
    const int32_t phi = u & 127;
    return table[i] + (int32_t)round_shift((int64_t)(table[i + 1] - table[i]) * phi, 7);
}

static int32_t qrnn_clip(const qrnn_params *p, int64_t g)
{
    g = qrnn_sat(g, -32768, 32767);
    return (int32_t)(p->clip >= 0 ? qrnn_sat(g, -p->clip, p->clip) : g);
}

/* Gate row `row`: sat16(round_shift(acc_x * m_x + acc_h * m_h, n) + b), then the clip. */
static int32_t qrnn_gate(const qrnn_params *p, int32_t row, const int8_t *xt, const int8_t *h)
{
    const int64_t ax = qrnn_dot(p->w + (size_t)row * p->input, xt, p->input, p->x_zero);
    const int64_t ah = qrnn_dot(p->r + (size_t)row * p->hidden, h, p->hidden, p->h_zero);
    return qrnn_clip(p, round_shift(ax * p->m_x[row] + ah * p->m_h[row], p->shift) + p->bias[row]);
}

static void qrnn_start(const qrnn_params *p, int32_t b, const int8_t *h0, int8_t *h)
{
    for (int32_t j = 0; j < p->hidden; ++j) {
        h[j] = h0 ? h0[(size_t)b * p->s_b + j] : (int8_t)p->h_zero;
    }
}

/* Copy h_new into h and into Y at step t; at the last step also into Y_h. */
static void qrnn_emit(const qrnn_params *p, int32_t b, int32_t t, int32_t last, const int8_t *hn, int8_t *h,
                      int8_t *y, int8_t *yh)
{
    for (int32_t j = 0; j < p->hidden; ++j) {
        h[j] = hn[j];
        y[(size_t)t * p->y_t + (size_t)b * p->y_b + j] = hn[j];
        if (last && yh) {
            yh[(size_t)b * p->s_b + j] = hn[j];
        }
    }
}

static int32_t qrnn_time(const qrnn_params *p, int32_t s)
{
    return p->reverse ? p->steps - 1 - s : s;
}
