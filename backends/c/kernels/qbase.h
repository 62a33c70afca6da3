/* ---- qbase: integer rounding (docs/numerics.md §1) and parameter types --- */

/* round_shift(v, n) = floor(v / 2^n + 1/2), half up, for 1 <= n <= 62 and
   |v| < 2^62. C99 leaves the right shift of a negative value
   implementation-defined, so only non-negative values are shifted: with
   t = v + 2^(n-1), floor(t / 2^n) is t >> n for t >= 0 and, for t < 0,
   -ceil(-t / 2^n) = -((-t + 2^n - 1) >> n), where -t + 2^n - 1 < 2^63. */
static int64_t round_shift(int64_t v, int32_t n)
{
    const int64_t t = v + ((int64_t)1 << (n - 1));
    if (t >= 0) {
        return t >> n;
    }
    return -((-t + (((int64_t)1 << n) - 1)) >> n);
}

/* Zero points, clamp bounds and per-output-channel multipliers of an integer
   multiply-accumulate layer (QConv, QGemm), docs/numerics.md §2. */
typedef struct {
    int32_t x_zero, y_zero, out_min, out_max;
    const int32_t *mult;
    const int32_t *shift;
} qlayer;

/* Requantize (§3). */
typedef struct {
    int32_t x_zero, y_zero, mult, shift, out_min, out_max;
} requant_params;

/* QAveragePool (§5). */
typedef struct {
    int32_t x_zero, y_zero, out_min, out_max, mult, shift;
} qpool_params;

/* QAdd (§4). */
typedef struct {
    int32_t a_zero, b_zero, y_zero, a_mult, b_mult, shift, out_min, out_max;
} qadd_params;

/* QSoftmax (§6). */
typedef struct {
    const int32_t *table;
    int32_t mult, shift, y_zero, out_min, out_max;
} qsoftmax_params;

