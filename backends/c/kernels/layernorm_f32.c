/* ---- layernorm_f32: LayerNormalization, float32 ----------------------------- */
/* Per row of n values: y = (x - mean) / sqrt(var + eps) * scale + bias, mean and
   variance accumulated in double. y may be x (in place): the statistics are
   complete before the row is written. */
static void layernorm_f32(int32_t rows, int32_t n, float eps, const float *scale, const float *bias,
                          const float *x, float *y)
{
    for (int32_t r = 0; r < rows; ++r) {
        const float *xp = x + r * n;
        float *yp = y + r * n;
        double mean = 0.0, var = 0.0;
        for (int32_t i = 0; i < n; ++i) {
            mean += xp[i];
        }
        mean /= n;
        for (int32_t i = 0; i < n; ++i) {
            var += (xp[i] - mean) * (xp[i] - mean);
        }
        const double inv = 1.0 / sqrt(var / n + eps);
        for (int32_t i = 0; i < n; ++i) {
            yp[i] = (float)((xp[i] - mean) * inv * scale[i] + bias[i]);
        }
    }
}
