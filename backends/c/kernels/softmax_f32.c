/* ---- softmax_f32: Softmax, float32 ---------------------------------------- */
/* Over axis j of x viewed as [outer][n][inner]:
   y = exp(x - max_j x) / sum_j exp(x - max_j x). y may be x (in place): each x is
   read before the y at its position is written. */
static void softmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y)
{
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t i = 0; i < inner; ++i) {
            const float *xp = x + o * n * inner + i;
            float *yp = y + o * n * inner + i;
            float mx = xp[0];
            for (int32_t j = 1; j < n; ++j) {
                mx = xp[j * inner] > mx ? xp[j * inner] : mx;
            }
            float sum = 0.0f;
            for (int32_t j = 0; j < n; ++j) {
                const float e = expf(xp[j * inner] - mx);
                yp[j * inner] = e;
                sum += e;
            }
            for (int32_t j = 0; j < n; ++j) {
                yp[j * inner] /= sum;
            }
        }
    }
}

