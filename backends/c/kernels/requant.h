/* ---- requant: the requantization of docs/numerics.md §2 ------------------ */

/* §2: clamp(zp + round_shift(acc * m, n), lo, hi); |acc| < 2^31 and m < 2^31
   keep acc * m inside int64. */
static int32_t requantize(int64_t acc, int32_t m, int32_t n, int32_t zp, int32_t lo, int32_t hi)
{
    const int64_t v = zp + round_shift(acc * m, n);
    return (int32_t)(v < lo ? lo : (v > hi ? hi : v));
}
