"""Size limits that nnc checks before it allocates anything (docs/limits.md).

nnc targets microcontrollers and small edge processors; a tensor, shape or option
past these limits is a mistake or a hostile file, not a model. Each check raises
an NncError naming the limit, so a user sees one line instead of a MemoryError.
"""

from __future__ import annotations

import math

from .errors import NncError, ShapeError

# Elements in any one tensor (weights, activations, samples): 2^26 = 64 Mi,
# 256 MiB as float32. The largest tensor of the MLPerf Tiny models has 0.4 Mi.
MAX_TENSOR_ELEMENTS = 1 << 26
# Rank of any tensor.
MAX_RANK = 8
# M of an N:M sparsity pattern (Ampere's 2:4 and 4:8 patterns are the common ones).
MAX_PATTERN_BLOCK = 256


def check_elements(shape, what: str, error: type[NncError] = ShapeError) -> int:
    """The element count of `shape`; `error` if a dim is negative, the rank passes
    MAX_RANK or the count passes MAX_TENSOR_ELEMENTS."""
    dims = [int(d) for d in shape]
    if len(dims) > MAX_RANK:
        raise error(f"{what}: rank {len(dims)} passes nnc's limit of {MAX_RANK}")
    if any(d < 0 for d in dims):
        raise error(f"{what}: negative dimension in {dims}")
    count = math.prod(dims)
    if count > MAX_TENSOR_ELEMENTS:
        raise error(f"{what}: shape {dims} has {count:,} elements, past nnc's limit of "
                    f"{MAX_TENSOR_ELEMENTS:,} per tensor (docs/limits.md)")
    return count
