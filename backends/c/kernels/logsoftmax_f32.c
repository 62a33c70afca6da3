/* ---- logsoftmax_f32: LogSoftmax, float32 ---------------------------------- */
/* Over axis j of x viewed as [outer][n][inner]:
   y = (x - max_j x) - log(sum_j exp(x - max_j x)). The sum lies in [1, n] (its
   largest term is exp(0) = 1), so y stays finite where the probability
   underflows, and is within a few ulps of the larger of |x - max| and the log.
   y may be x (in place): the max and the sum are complete before the first y
   is written, and each x is read before the y at its position. */
static void logsoftmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y)
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
                sum += expf(xp[j * inner] - mx);
            }
            const float log_sum = logf(sum);
            for (int32_t j = 0; j < n; ++j) {
                yp[j * inner] = (xp[j * inner] - mx) - log_sum;
            }
        }
    }
}
