/* ---- qelementwise: parameter types of QMul and QAffine -------------------- */

/* QMul (docs/numerics.md §18): y = clamp(y_zero + round_shift((a - a_zero) *
   (b - b_zero) * mult, shift), out_min, out_max). */
typedef struct {
    int32_t a_zero, b_zero, y_zero, mult, shift, out_min, out_max;
} qmul_params;

/* QAffine (§18): per coefficient element j, mult[j] (mult_neg[j] where
   x < x_zero) and offset[j]; mult_neg is mult when the op has none. */
typedef struct {
    const int32_t *mult;
    const int32_t *mult_neg;
    const int32_t *offset;
    int32_t x_zero, y_zero, shift, out_min, out_max;
} qaffine_params;
