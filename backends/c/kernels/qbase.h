/* ---- qbase: parameter types of the integer kernels ------------------------ */

/* Zero points, clamp bounds and per-output-channel multipliers of an integer
   multiply-accumulate layer (QConv, QGemm), docs/numerics.md §2; the shifts,
   in [1, 62], take one byte each. */
typedef struct {
    int32_t x_zero, y_zero, out_min, out_max;
    const int32_t *mult;
    const int8_t *shift;
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

/* QLogSoftmax (§6a). */
typedef struct {
    const int32_t *exp_table;
    const int32_t *log_table;
    int32_t x_scale, mult, shift, y_zero, out_min, out_max;
} qlogsoftmax_params;

