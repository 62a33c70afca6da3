/* ---- qarm: the core-specific paths of the fast int8 kernels --------------- */
/* The kernels qmm, qmmconv, qdwf, qpoolf and qaddf (backends/c/qfast.py)
   choose their inner loops when compiled:
   for an Armv8.1-M core with Helium (__ARM_FEATURE_MVE: Cortex-M55, M85)
   vector instructions (arm_mve.h); for a core with the DSP extension
   (__ARM_FEATURE_DSP: Cortex-M4, M7, M33) dual 16-bit multiply-accumulates
   (arm_acle.h); elsewhere, the host included, portable C. Every path computes
   the same integers (docs/numerics.md §2): x is summed raw (int8, its zero point
   folded into the bias at compile time), and every partial sum of the terms lies
   within the compile-time bound, so any order of summation is exact in int32. */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define QARM_MVE 1
#include <arm_mve.h>
#elif defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#define QARM_DSP 1
#endif
#if defined(__ARM_FEATURE_SAT)
#define QARM_SAT 1
#include <arm_acle.h>
#endif

/* The kernels stay functions of their own: a kernel inlined into the model's
   invoke keeps its stack frame for the whole inference (frames of several
   kernels pile up there), and each is called once per layer anyway. */
#if defined(__GNUC__)
#define Q_KERNEL static __attribute__((noinline)) void
#else
#define Q_KERNEL static void
#endif

/* The small helpers the inner loops call: inlined at -Os too (gcc would
   otherwise call them, spilling the loop's vectors around each call). */
#if defined(__GNUC__)
#define Q_INLINE static inline __attribute__((always_inline))
#else
#define Q_INLINE static inline
#endif

/* Layer constants of the fast kernels, all prepared at compile time per output
   channel c: bias[c] - x_zero * sum(w[c]) (the folded bias) and the multiplier
   mantissa m[c], by groups of four channels (bias[4], m[4]: one pointer reaches
   a group), t[c] = shift[c] - 33, and rq_hi's k = 1 + 2 * y_zero. */
typedef struct {
    const int8_t *w;      /* weights, in the kernel's layout */
    const int32_t *c;     /* [channels / 4][2][4]: bias, m (channels rounded up to 4) */
    const int8_t *t;      /* [channels] */
    int32_t n;            /* output channels */
    int32_t k;
} qfast_layer;

/* A sparse layer (qmms): the nonzero weights of the output channels, channel
   after channel, as values (`l.w`) and their positions in the row (`idx`,
   0..k-1), each channel's list padded with value 0 at position 0 to a
   multiple of 8 entries; lists[o] = 8 * (channel o's entries / 8) + its
   padding entries, so that lists[o] >> 3 counts its steps of 8 and
   (lists[o] & ~7) - (lists[o] & 7) its nonzeros; l.c, l.t, l.n and l.k as in
   a dense layer. */
typedef struct {
    qfast_layer l;
    const uint16_t *idx;
    const uint16_t *lists;  /* [channels rounded up to 4] */
} qfast_sparse;

/* An average pool's constants: the window sum's offset -count * x_zero, and
   rq_hi's m, t and k (one set for the tensor). */
typedef struct {
    int32_t offset, m, t, k;
} qfast_pool;

/* A QAdd's constants: r = 2^(n-1) + y_zero * 2^n - a_zero * a_mult - b_zero * b_mult
   and the multipliers (qaddf). */
typedef struct {
    int64_t r;
    int32_t a_mult, b_mult;
} qfast_add;

/* The constants of channel o: bias at [0], m at [4]. */
static inline const int32_t *q_consts(const qfast_layer *p, int32_t o)
{
    return p->c + (o >> 2) * 8 + (o & 3);
}

/* docs/numerics.md §2's zp + round_shift(acc * m, n) for n >= 33, with
   t = n - 33 and k = 1 + 2 * zp: write acc * m = hi * 2^32 + lo
   (0 <= lo < 2^32); then
   floor((acc * m + 2^(n-1)) / 2^n) = floor((hi + 2^t + lo / 2^32) / 2^(t+1))
   = floor((hi + 2^t) / 2^(t+1)), since no multiple of 2^(t+1) lies in
   (hi + 2^t, hi + 2^t + 1), and adding zp * 2^(t+1) adds zp:
   zp + round_shift(acc * m, n) = floor((hi + k * 2^t) / 2^(t+1))
   = floor((floor(hi / 2^t) + k) / 2) (floors of floors). |hi| < 2^30 and
   |k| <= 257, so nothing overflows. Arm compilers shift signed values
   arithmetically (SMULL, ASR, ADD, ASR #1, which SSAT can do); the portable
   form shifts unsigned values offset by multiples of the divisors. */
static inline int32_t rq_hi(int32_t acc, int32_t m, int32_t t, int32_t k)
{
#if (defined(QARM_MVE) || defined(QARM_DSP) || defined(__GNUC__)) && !defined(QARM_PORTABLE_SHIFTS)
    /* >> of a negative value is an arithmetic shift on Arm's compilers, GCC and
       Clang (implementation-defined in C99, defined so in their manuals). GCC
       12.2 at -O3 vectorized the form below wrongly (tiny_cnn's pool saturated). */
    return (((int32_t)(((int64_t)acc * m) >> 32) >> t) + k) >> 1;
#else  /* only unsigned shifts: the same value from any C99 compiler (tested with -DQARM_PORTABLE_SHIFTS) */
    const uint64_t p = (uint64_t)((int64_t)acc * m) + ((uint64_t)1 << 63);  /* acc * m + 2^63, in [0, 2^64) */
    const int64_t v = (int64_t)(p >> 32) - ((int64_t)1 << 31) + (int64_t)k * ((int64_t)1 << t);  /* |v| < 2^40 */
    return (int32_t)((int64_t)(((uint64_t)v + ((uint64_t)1 << 40)) >> (t + 1)) - ((int64_t)1 << (39 - t)));
#endif
}

/* v clamped to int8's range (SSAT where the core has it). */
static inline int32_t q_sat8(int32_t v)
{
#if defined(QARM_SAT)
    return __ssat(v, 8);
#else
    v = v < -128 ? -128 : v;
    return v > 127 ? 127 : v;
#endif
}

/* clamp(v, lo, hi) as int8; lo and hi are literals where the kernels call it,
   so the comparisons with int8's own bounds fold away. */
static inline int8_t q_out_clamp(int32_t v, int32_t lo, int32_t hi)
{
    v = q_sat8(v);
    if (lo > -128) {
        v = v < lo ? lo : v;
    }
    if (hi < 127) {
        v = v > hi ? hi : v;
    }
    return (int8_t)v;
}

/* clamp(rq_hi(acc, m, t, k), lo, hi); lo and hi are literals where the
   kernels call it. */
static inline int8_t q_out(int32_t acc, int32_t m, int32_t t, int32_t k, int32_t lo, int32_t hi)
{
    return q_out_clamp(rq_hi(acc, m, t, k), lo, hi);
}

#if defined(QARM_MVE)
/* The constants of four channels c..c+3 (shift: -t). */
typedef struct {
    int32x4_t bias, m, shift;
} q_consts4;

Q_INLINE q_consts4 q_load_consts4(const qfast_layer *p, int32_t c)
{
    const int32_t *g = p->c + c * 2;  /* c is a multiple of 4 */
    q_consts4 k;
    k.bias = vldrwq_s32(g);
    k.m = vldrwq_s32(g + 4);
    k.shift = vnegq_s32(vldrbq_s32(p->t + c));
    return k;
}

/* The same for the lanes `e` enables (the others read nothing). */
Q_INLINE q_consts4 q_load_consts4_z(const qfast_layer *p, int32_t c, mve_pred16_t e)
{
    const int32_t *g = p->c + c * 2;
    q_consts4 k;
    k.bias = vldrwq_z_s32(g, e);
    k.m = vldrwq_z_s32(g + 4, e);
    k.shift = vnegq_s32(vldrbq_z_s32(p->t + c, e));
    return k;
}

/* q_out on four lanes, acc + bias being the accumulator: VMULH is
   floor(a * b / 2^32), VSHL by a negative amount and VSHR arithmetic right
   shifts. */
Q_INLINE int32x4_t q_rq4(int32x4_t acc, const q_consts4 *c, int32_t k, int32_t lo, int32_t hi)
{
    int32x4_t v = vmulhq_s32(vaddq_s32(acc, c->bias), c->m);
    v = vshrq_n_s32(vaddq_n_s32(vshlq_s32(v, c->shift), k), 1);
    return vminq_s32(vmaxq_s32(v, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}
#endif

/* Four int8 values from any address, as one 32-bit word (memory order). */
static inline int32_t q_load4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* dst[0, len) = src[0, len), a word at a time. */
static inline void q_copy(int8_t *dst, const int8_t *src, int32_t len)
{
    int32_t i = 0;
    for (; i + 4 <= len; i += 4) {
        const int32_t v = q_load4(src + i);
        memcpy(dst + i, &v, 4);
    }
    for (; i < len; ++i) {
        dst[i] = src[i];
    }
}

#if defined(QARM_DSP) || defined(QARM_MVE)
/* Between two steps of an unrolled inner loop: an empty volatile asm, which
   compilers do not move instructions across, so that their scheduler does not
   start the next step's loads early and run out of registers. */
#define Q_STEP() __asm__ volatile("")

/* A pointer the compiler must treat as unknown here, so that it neither keeps
   addresses computed from it in registers across loop iterations nor merges
   loads through it with earlier ones (both cost registers the inner loops need). */
#define Q_OPAQUE(p) __asm__ volatile("" : "+r"(p))
#endif

#if defined(QARM_MVE)
/* Four vectors the compiler must consider changed here: a chain of additions
   into them stays a chain (compilers would otherwise regroup it and keep every
   term alive at once). */
#define Q_KEEP4(a, b, c, d) __asm__ volatile("" : "+w"(a), "+w"(b), "+w"(c), "+w"(d))
#endif

#if defined(QARM_DSP)
/* Bytes 1 and 3 of v, sign-extended into two halfwords (SXTB16 with ROR #8,
   one instruction; __sxtb16 gives bytes 0 and 2). */
static inline int32_t q_sxtb16_ror8(int32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* acc + q_sxtb16_ror8(v), halfword by halfword (SXTAB16 with ROR #8). */
static inline int32_t q_sxtab16_ror8(int32_t acc, int32_t v)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(v));
    return r;
}
#endif
