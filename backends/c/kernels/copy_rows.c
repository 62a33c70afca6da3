/* ---- copy_rows: Concat (one call per input) and copies -------------------- */
/* rows times: copy `bytes` bytes from src to dst, then advance src by
   src_stride and dst by dst_stride bytes. */
static void copy_rows(int32_t rows, int32_t bytes, const void *src, int32_t src_stride,
                      void *dst, int32_t dst_stride)
{
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    for (int32_t r = 0; r < rows; ++r) {
        memcpy(d + r * dst_stride, s + r * src_stride, (size_t)bytes);
    }
}

