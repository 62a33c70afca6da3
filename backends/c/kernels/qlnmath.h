
/* ---- qlnmath: the integer helpers of QLayerNorm (docs/numerics.md §14) ---- */

/* The number of bits of v (0 for v = 0). */
static int32_t qln_bit_length(uint64_t v)
{
    int32_t bits = 0;
    while (v) {
        ++bits;
        v >>= 1;
    }
    return bits;
}

/* ceil(d / 2) for any sign of d (C's division truncates toward zero). */
static int32_t qln_half_up(int32_t d)
{
    return d >= 0 ? (d + 1) / 2 : -((-d) / 2);
}

/* floor(sqrt(v)), exactly: the digit-by-digit method, two bits of v per step. */
static uint64_t qln_isqrt(uint64_t v)
{
    uint64_t root = 0;
    uint64_t bit = (uint64_t)1 << 62;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit) {
        if (v >= root + bit) {
            v -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}
