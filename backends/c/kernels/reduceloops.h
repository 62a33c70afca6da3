
/* ---- reduceloops: the index walk of the reductions (docs/c-target.md) ------ */

/* Up to four kept and four reduced axis groups (adjacent axes of one kind
   merged, extents of 1 dropped, outermost first, unused groups of extent 1):
   output element (k0..k3) reads x at sum k_i * ks[i] + sum r_j * rs[j]. */
typedef struct {
    int32_t kd[4], ks[4], rd[4], rs[4];
} reduce_loops;

/* Advance the odometer idx over extents dims (innermost last) and return the
   offset of the next position (strides st); wraps to 0 after the last. */
static int32_t reduce_next(int32_t idx[4], const int32_t dims[4], const int32_t st[4], int32_t off)
{
    for (int32_t a = 3; a >= 0; --a) {
        if (++idx[a] < dims[a]) {
            return off + st[a];
        }
        off -= (dims[a] - 1) * st[a];
        idx[a] = 0;
    }
    return off;
}
