/* ---- channel_affine_f32: BatchNormalization (inference), float32 ---------- */
/* x viewed as [outer][channels][inner]: y = x * scale[c] + shift[c], with
   scale = gamma / sqrt(var + epsilon) and shift = beta - mean * scale folded at
   compile time. y may be x (in place). */
static void channel_affine_f32(int32_t outer, int32_t channels, int32_t inner, const float *scale,
                               const float *shift, const float *x, float *y)
{
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t c = 0; c < channels; ++c) {
            for (int32_t i = 0; i < inner; ++i) {
                *y = *x++ * scale[c] + shift[c];
                ++y;
            }
        }
    }
}

