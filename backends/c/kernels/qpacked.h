/* ---- qpacked: packed weight rows (docs/c-target.md, "Packed weights") ------ */

/* A QConv/QGemm weight tensor kept packed in flash: one row of `len` values per
   output channel, each row starting on a byte boundary, fields packed LSB-first
   (bit j of a row is bit j % 8 of its byte j / 8). Row r starts at
   data + off16[r], or data + off32[r], or (both NULL: rows of equal size)
   data + r * row_bytes; the offset tables have one entry per row and one more
   for the end. */
typedef struct {
    const uint8_t *data;
    const uint16_t *off16;  /* rows of varying size, data < 64 KiB */
    const uint32_t *off32;  /* rows of varying size, data >= 64 KiB */
    const int8_t *table;    /* codebook: the value of each index; else NULL */
    int32_t row_bytes;      /* rows of equal size: bytes per row */
    int32_t len;            /* values per row */
    int32_t bits;           /* width of a value field (codebook: of an index field) */
    int32_t run_bits;       /* rle: width of a run field; else 0 */
    int32_t nnz_max;        /* the most nonzero values in one row */
} qpacked;

/* Reads fields LSB-first; loads a byte only when the next field needs it, so
   it never reads past the byte holding a row's last field. */
typedef struct {
    const uint8_t *p;
    uint32_t acc;  /* loaded bits not yet consumed, the next one at bit 0 */
    int32_t have;  /* how many */
} qp_bits;

/* The nonzero values (or, for dense and codebook rows, all values) of one row in
   order: qp_begin_<format> then qp_next_<format> until it returns 0. */
typedef struct {
    qp_bits s;
    const uint8_t *mask;  /* bitmask: the row's mask */
    const int8_t *table;  /* codebook */
    int32_t i;            /* the next position */
    int32_t len, bits, run_bits;
    int32_t left;         /* rle: bits of the row not yet read */
} qp_iter;

static const uint8_t *qp_row(const qpacked *w, int32_t r)
{
    if (w->off16) {
        return w->data + w->off16[r];
    }
    if (w->off32) {
        return w->data + w->off32[r];
    }
    return w->data + r * w->row_bytes;
}

/* An iterator over the fields from `p` on. */
static void qp_start(qp_iter *it, const qpacked *w, const uint8_t *p)
{
    it->s.p = p;
    it->s.acc = 0;
    it->s.have = 0;
    it->mask = NULL;
    it->table = w->table;
    it->i = 0;
    it->len = w->len;
    it->bits = w->bits;
    it->run_bits = w->run_bits;
    it->left = 0;
}

/* The next `width`-bit field (1 <= width <= 16), unsigned. */
static uint32_t qp_read(qp_bits *s, int32_t width)
{
    while (s->have < width) {
        s->acc |= (uint32_t)*s->p++ << s->have;
        s->have += 8;
    }
    const uint32_t field = s->acc & ((1u << width) - 1u);
    s->acc >>= width;
    s->have -= width;
    return field;
}
