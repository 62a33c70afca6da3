/* ---- qp_codebook: a codebook-packed row (FORMAT_CODEBOOK) ---------------- */
/* len b-bit indices into the tensor's table; every position, zeros included. */
static void qp_begin_codebook(qp_iter *it, const qpacked *w, int32_t r)
{
    qp_start(it, w, qp_row(w, r));
}

static int qp_next_codebook(qp_iter *it, int32_t *index, int32_t *value)
{
    if (it->i >= it->len) {
        return 0;
    }
    *value = it->table[qp_read(&it->s, it->bits)];
    *index = it->i++;
    return 1;
}
