/* ---- rqchannel: requantization with per-channel constants (docs/numerics.md §2) */

/* §2's clamp(zp + round_shift(acc * m, n), lo, hi) for an output channel
   whose (m, n, zp) serves many outputs, the constants that depend on n
   computed once (rq_prepare): as in round_shift (qround.h),
   zp + round_shift(acc * m, n) = (u >> n) - 2^(63-n) + zp for
   u = acc * m + 2^63 + 2^(n-1) modulo 2^64, |acc * m| < 2^62. */
typedef struct {
    int64_t m;
    uint64_t round;  /* 2^63 + 2^(n-1) */
    int64_t offset;  /* zp - 2^(63-n) */
    int32_t n;
} rq_channel;

static rq_channel rq_prepare(int32_t m, int32_t n, int32_t zp)
{
    rq_channel c;
    c.m = m;
    c.round = ((uint64_t)1 << 63) | ((uint64_t)1 << (n - 1));
    c.offset = zp - ((int64_t)1 << (63 - n));
    c.n = n;
    return c;
}

static int32_t rq_apply(int32_t acc, const rq_channel *c, int32_t lo, int32_t hi)
{
    const uint64_t u = (uint64_t)(acc * c->m) + c->round;
    int64_t v = (int64_t)(u >> c->n) + c->offset;
    v = v < lo ? lo : v;
    return (int32_t)(v > hi ? hi : v);
}
