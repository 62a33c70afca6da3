/* ---- qround: integer rounding (docs/numerics.md §1) ----------------------- */

/* round_shift(v, n) = floor(v / 2^n + 1/2), half up, for 1 <= n <= 62 and
   -2^63 <= v < 2^63 - 2^(n-1) (|v| < 2^62 always qualifies). C99 leaves the right shift of a negative value
   implementation-defined, so the shift is done on an unsigned value without a
   branch: u = v + 2^(n-1) + 2^63 lies in (0, 2^64) (computed modulo 2^64, which
   is defined for unsigned types), and since 2^n divides 2^63,
   floor(u / 2^n) - 2^(63-n) = floor((v + 2^(n-1)) / 2^n). u >> n < 2^63, so it
   converts back to int64 exactly. */
static int64_t round_shift(int64_t v, int32_t n)
{
    const uint64_t u = (uint64_t)v + (((uint64_t)1 << (n - 1)) | ((uint64_t)1 << 63));
    return (int64_t)(u >> n) - ((int64_t)1 << (63 - n));
}
