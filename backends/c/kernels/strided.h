/* ---- strided: geometry of strided copies (Slice, Expand, Tile, Transpose) -- */
/* An output of `rank` axes (row-major extents dims[0..rank-1]) whose element
   (i_0, ..., i_{rank-1}) is input element offset + sum_d i_d * strides[d].
   Strides may be negative (a reversed Slice) or 0 (a broadcast axis). */
typedef struct {
    int32_t rank;
    int32_t offset;
    const int32_t *dims;
    const int32_t *strides;
} strided_geom;
