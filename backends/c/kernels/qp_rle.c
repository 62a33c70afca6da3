/* ---- qp_rle: a run-length-packed row (FORMAT_RLE entries) ---------------- */
/* Entries of run_bits + bits bits up to the row's end (the next row's offset):
   a run of zeros (low run_bits bits), then a b-bit two's complement value.
   Per entry the position advances by run, the value lands there (a filler's 0
   is skipped) and the position advances by one. No entry is all zero bits, so
   a zero field is the padding at the row's end. Yields the nonzero values. */
static void qp_begin_rle(qp_iter *it, const qpacked *w, int32_t r)
{
    const uint8_t *row = qp_row(w, r);
    qp_start(it, w, row);
    it->left = (int32_t)(qp_row(w, r + 1) - row) * 8;
}

static int qp_next_rle(qp_iter *it, int32_t *index, int32_t *value)
{
    const int32_t width = it->run_bits + it->bits;
    const uint32_t sign = 1u << (it->bits - 1);
    while (it->left >= width) {
        const uint32_t entry = qp_read(&it->s, width);
        it->left -= width;
        if (entry == 0) {
            break;
        }
        const int32_t i = it->i + (int32_t)(entry & ((1u << it->run_bits) - 1u));
        const uint32_t field = entry >> it->run_bits;
        it->i = i + 1;
        if (field != 0) {
            *value = (int32_t)(field ^ sign) - (int32_t)sign;
            *index = i;
            return 1;
        }
    }
    it->left = 0;
    return 0;
}
