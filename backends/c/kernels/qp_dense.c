/* ---- qp_dense: a dense-packed row (FORMAT_DENSE) ------------------------- */
/* len b-bit two's complement fields; every position, zeros included. */
static void qp_begin_dense(qp_iter *it, const qpacked *w, int32_t r)
{
    qp_start(it, w, qp_row(w, r));
}

static int qp_next_dense(qp_iter *it, int32_t *index, int32_t *value)
{
    if (it->i >= it->len) {
        return 0;
    }
    const uint32_t sign = 1u << (it->bits - 1);
    *value = (int32_t)(qp_read(&it->s, it->bits) ^ sign) - (int32_t)sign;  /* sign-extended */
    *index = it->i++;
    return 1;
}
