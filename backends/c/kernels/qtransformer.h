
/* ---- qtransformer: parameter types of the transformer kernels ------------- */

/* QReduce (docs/numerics.md §11): is_max selects max(x) - x_zero over the
   reduced elements instead of their sum of x - x_zero. */
typedef struct {
    int32_t x_zero, y_zero, mult, shift, out_min, out_max, is_max;
} qreduce_params;

/* QMatMul (§12). */
typedef struct {
    int32_t a_zero, b_zero, y_zero, mult, shift, out_min, out_max;
} qmatmul_params;

/* QLayerNorm (§14): g (|g| <= 2^30) and b (|b| < 2^61) per element (step 1),
   or one value of each for every element (step 0). */
typedef struct {
    const int32_t *g;
    const int64_t *b;
    int64_t eps;
    int32_t shift, y_zero, out_min, out_max, step;
} qlayernorm_params;
