/* ---- reduce_f32: ReduceSum, ReduceMean, ReduceMax, float32, any axes -------- */
/* Per output element (row-major over the kept axes), over its n_red reduced
   elements (reduceloops.h): mode 0 sums, 1 averages (the sum in double divided
   by n_red), 2 takes the maximum. */
static void reduce_f32(int32_t n_out, int32_t n_red, const reduce_loops *l, int32_t mode, const float *x,
                       float *y)
{
    int32_t kidx[4] = {0, 0, 0, 0};
    int32_t base = 0;
    for (int32_t o = 0; o < n_out; ++o) {
        int32_t ridx[4] = {0, 0, 0, 0};
        int32_t off = 0;
        double sum = 0.0;
        float mx = x[base];
        for (int32_t j = 0; j < n_red; ++j) {
            const float v = x[base + off];
            sum += v;
            mx = v > mx ? v : mx;
            off = reduce_next(ridx, l->rd, l->rs, off);
        }
        y[o] = mode == 2 ? mx : (float)(mode == 1 ? sum / n_red : sum);
        base = reduce_next(kidx, l->kd, l->ks, base);
    }
}
