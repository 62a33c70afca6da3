/* ---- frecurrent: what float LSTM, GRU and RNN share ---------------------- */
/* ONNX semantics in float32 (compiler/ops/recurrent.py; the reference computes
   in float64). Each call runs one direction over every batch row and time
   step. Strides (in elements) place x, Y and the states for either ONNX
   layout; the caller offsets the pointers to the direction. Activation codes
   follow compiler/ops/rnn_activations.py's PARAMETERS. Scratch (arena):
   LSTM float h[H], h_new[H], c[H]; GRU h[H], h_new[H], z[H], rho[H];
   RNN h[H], h_new[H]. The previous h stays intact until every row of the step
   has read it. */
typedef struct {
    int32_t gates, steps, batch, input, hidden, reverse;
    int32_t x_t, x_b, y_t, y_b, s_b;
    int32_t has_clip, input_forget, lbr;
    float clip;
    int32_t act[3];
    float alpha[3], beta[3];
    const float *w;    /* [G*H][I] */
    const float *r;    /* [G*H][H] */
    const float *bias; /* [2*G*H], W's then R's; NULL: zeros */
    const float *peep; /* LSTM [3*H]: i, o, f; NULL: none */
} frnn_params;

static float frnn_act(const frnn_params *p, int32_t k, float v)
{
    const float a = p->alpha[k], b = p->beta[k];
    float y;
    switch (p->act[k]) {
    case 0: return v > 0.0f ? v : 0.0f;                      /* Relu */
    case 1: return tanhf(v);                                 /* Tanh */
    case 2: return 1.0f / (1.0f + expf(-v));                 /* Sigmoid */
    case 3: return a * v + b;                                /* Affine */
    case 4: return v >= 0.0f ? v : a * v;                    /* LeakyRelu */
    case 5: return v >= a ? v : 0.0f;                        /* ThresholdedRelu */
    case 6: return a * tanhf(b * v);                         /* ScaledTanh */
    case 7:                                                  /* HardSigmoid */
        y = a * v + b;
        return y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
    case 8: return v >= 0.0f ? v : a * expm1f(v);            /* Elu */
    case 9: return v / (1.0f + fabsf(v));                    /* Softsign */
    default: return v > 20.0f ? v : log1pf(expf(v));         /* Softplus, as the float kernel */
    }
}

static float frnn_clip(const frnn_params *p, float v)
{
    return !p->has_clip ? v : (v < -p->clip ? -p->clip : (v > p->clip ? p->clip : v));
}

static float frnn_dot(const float *w, const float *v, int32_t n)
{
    float acc = 0.0f;
    for (int32_t k = 0; k < n; ++k) {
        acc += w[k] * v[k];
    }
    return acc;
}

/* W·x_t + Wb and R·h + Rb of gate row `row` (of the G*H). */
static float frnn_wx(const frnn_params *p, int32_t row, const float *xt)
{
    return frnn_dot(p->w + (size_t)row * p->input, xt, p->input) + (p->bias ? p->bias[row] : 0.0f);
}

static float frnn_rh(const frnn_params *p, int32_t row, const float *h)
{
    return frnn_dot(p->r + (size_t)row * p->hidden, h, p->hidden)
           + (p->bias ? p->bias[(size_t)p->gates * p->hidden + row] : 0.0f);
}

static void frnn_start(const frnn_params *p, int32_t b, const float *h0, float *h)
{
    for (int32_t j = 0; j < p->hidden; ++j) {
        h[j] = h0 ? h0[(size_t)b * p->s_b + j] : 0.0f;
    }
}

/* Copy h_new into h and into Y at step t; at the last step also into Y_h. */
static void frnn_emit(const frnn_params *p, int32_t b, int32_t t, int32_t last, const float *hn, float *h,
                      float *y, float *yh)
{
    for (int32_t j = 0; j < p->hidden; ++j) {
        h[j] = hn[j];
        if (y) {
            y[(size_t)t * p->y_t + (size_t)b * p->y_b + j] = hn[j];
        }
        if (last && yh) {
            yh[(size_t)b * p->s_b + j] = hn[j];
        }
    }
}

static int32_t frnn_time(const frnn_params *p, int32_t s)
{
    return p->reverse ? p->steps - 1 - s : s;
}
