/* ---- softmax_masked_f32: Softmax with a keep mask, float32 ---------------- */
/* softmax_f32 over the kept positions only: element e of x (row-major) is kept
   when bit e % period of `keep` is set (bit b at keep[b >> 3], bit b & 7); a
   hidden one gets 0 and takes no part in the max and the sum. Every row keeps
   a position. y may be x (in place). */
static int keep_bit_f32(const uint8_t *keep, int32_t period, int64_t e)
{
    const int32_t b = (int32_t)(e % period);
    return (keep[b >> 3] >> (b & 7)) & 1;
}

static void softmax_masked_f32(int32_t outer, int32_t n, int32_t inner, const uint8_t *keep, int32_t period,
                               const float *x, float *y)
{
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t i = 0; i < inner; ++i) {
            const int64_t base = (int64_t)o * n * inner + i;
            const float *xp = x + base;
            float *yp = y + base;
            float mx = -INFINITY;
            for (int32_t j = 0; j < n; ++j) {
                if (keep_bit_f32(keep, period, base + (int64_t)j * inner) && xp[j * inner] > mx) {
                    mx = xp[j * inner];
                }
            }
            float sum = 0.0f;
            for (int32_t j = 0; j < n; ++j) {
                const float e = keep_bit_f32(keep, period, base + (int64_t)j * inner) ? expf(xp[j * inner] - mx) : 0.0f;
                yp[j * inner] = e;
                sum += e;
            }
            for (int32_t j = 0; j < n; ++j) {
                yp[j * inner] /= sum;
            }
        }
    }
}
