/* ---- qp_bitmask: a bitmask-packed row (FORMAT_BITMASK) ------------------- */
/* A mask of len bits (1 = nonzero) in (len + 7) / 8 bytes, then the nonzero
   values as b-bit two's complement fields; yields the nonzero values only,
   skipping a mask byte with no bit left in one step. */
static void qp_begin_bitmask(qp_iter *it, const qpacked *w, int32_t r)
{
    const uint8_t *row = qp_row(w, r);
    qp_start(it, w, row + (w->len + 7) / 8);
    it->mask = row;
}

static int qp_next_bitmask(qp_iter *it, int32_t *index, int32_t *value)
{
    int32_t i = it->i;
    while (i < it->len) {
        const uint32_t rest = (uint32_t)it->mask[i >> 3] >> (i & 7);  /* mask bits i.. of this byte */
        if (rest == 0) {
            i = (i | 7) + 1;
            continue;
        }
        if (rest & 1u) {
            const uint32_t sign = 1u << (it->bits - 1);
            *value = (int32_t)(qp_read(&it->s, it->bits) ^ sign) - (int32_t)sign;
            *index = i;
            it->i = i + 1;
            return 1;
        }
        ++i;
    }
    it->i = i;
    return 0;
}
