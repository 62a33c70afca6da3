/* ---- gemm_f32: Gemm and MatMul, float32 ----------------------------------- */
/* For each batch b: y[b][i][j] = clamp(alpha * sum_k A(b, i, k) * B(b, j, k)
   + beta * C(i, j), lo, hi), with A(b, i, k) = a[b * a_sb + i * a_sm + k * a_sk],
   B(b, j, k) = w[b * b_sb + j * b_sn + k * b_sk] and C(i, j) = c[i * c_sm +
   j * c_sn] (c may be NULL); a stride of 0 broadcasts. Constant weights are
   repacked at compile time to [n][k] so that the k loop is contiguous. */
static void gemm_f32(const gemm_geom *geom, const float *a, const float *w, const float *c, float *y)
{
    const gemm_geom g = *geom;  /* a local copy: stores to y cannot alias it */
    for (int32_t b = 0; b < g.batch; ++b) {
        for (int32_t i = 0; i < g.m; ++i) {
            const float *ap = a + b * g.a_sb + i * g.a_sm;
            for (int32_t j = 0; j < g.n; ++j) {
                const float *wp = w + b * g.b_sb + j * g.b_sn;
                float acc = 0.0f;
                for (int32_t k = 0; k < g.k; ++k) {
                    acc += ap[k * g.a_sk] * wp[k * g.b_sk];
                }
                acc *= g.alpha;
                if (c) {
                    acc += g.beta * c[i * g.c_sm + j * g.c_sn];
                }
                *y++ = acc < g.lo ? g.lo : (acc > g.hi ? g.hi : acc);
            }
        }
    }
}

