"""Size limits that nnc checks before it allocates anything (docs/limits.md).

nnc targets microcontrollers and small edge processors; a tensor, shape or option
past these limits is a mistake or a hostile file, not a model. Each check raises
an NncError naming the limit, so a user sees one line instead of a MemoryError.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .errors import NncError, OptionError, ShapeError

# Elements in any one tensor (weights, activations, samples): 2^26 = 64 Mi,
# 256 MiB as float32. The largest tensor of the MLPerf Tiny models has 0.4 Mi.
MAX_TENSOR_ELEMENTS = 1 << 26
# Rank of any tensor.
MAX_RANK = 8
# Elements over all the values of one model (weights and every intermediate,
# each counted once): 2^28 = 256 Mi, 1 GiB as float32; nnc's reference
# interpreter may hold most of them at once.
MAX_MODEL_ELEMENTS = 1 << 28
# Elements over all the one-dimensional values of a model, past which ONNX shape
# inference runs without data propagation: it spends about 200 bytes on each
# element of a 1-D value that an Add, Mul, Cast, ... reads (2^20: about 200 MiB),
# while shape computations, what it is for, have a few elements each.
MAX_PROPAGATED_ELEMENTS = 1 << 20
# Magnitude of a value in a float weight tensor of more than one element: 1e15,
# as for samples below, so that a weight times a sample value stays within 1e30
# and a layer's sums of such products stay finite in float32. A single-element
# constant (a bound or fill value such as Clip's max, a mask's -inf or float32's
# lowest) is exempt.
MAX_WEIGHT_MAGNITUDE = 1e15
# Characters of a compiled model's name (--name, or the model file's stem, cut
# to this): the artifacts' file stem and the C symbol prefix.
MAX_NAME_LENGTH = 64
# M of an N:M sparsity pattern (Ampere's 2:4 and 4:8 patterns are the common ones).
MAX_PATTERN_BLOCK = 256
# Second-order compression (compiler/hessian.py, compiler/obs.py): inputs per
# output channel of a layer compressed by method obs (its H is K x K float64:
# 128 MiB at 4096, and the factorization costs K^3), and the bytes of input
# statistics held during one calibration run (layers that do not fit together
# are collected in further runs).
MAX_OBS_FAN_IN = 4096
MAX_HESSIAN_BYTES = 1 << 28

# Points of one `nnc explore` sweep (compression settings x hardware values):
# each is a simulation, and every distinct compression setting a compile.
MAX_EXPLORE_POINTS = 1024

# Magnitude of a sample value for a float input (--calib, --inputs, `nnc run
# --inputs`): 1e15, so that the sum of squares over the largest tensor nnc accepts
# stays finite in float32 (1e30 * 2^26 = 6.7e37 < 3.4e38: variances, norms and
# error energies cannot overflow). Real inputs (audio, pixels, features) are far smaller.
MAX_SAMPLE_MAGNITUDE = 1e15


def check_elements(shape, what: str | Callable[[], str], error: type[NncError] = ShapeError) -> int:
    """The element count of `shape`; `error` if a dim is negative, the rank passes
    MAX_RANK or the count passes MAX_TENSOR_ELEMENTS. `what` names the value, or
    is a function naming it that only the error calls."""
    dims = [int(d) for d in shape]
    if len(dims) > MAX_RANK:
        raise error(f"{_named(what)}: rank {len(dims)} passes nnc's limit of {MAX_RANK}")
    if dims and min(dims) < 0:
        raise error(f"{_named(what)}: negative dimension in {dims}")
    count = math.prod(dims)
    if count > MAX_TENSOR_ELEMENTS:
        raise error(f"{_named(what)}: shape {dims} has {count:,} elements, past nnc's limit of "
                    f"{MAX_TENSOR_ELEMENTS:,} per tensor (docs/limits.md)")
    return count


def _named(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def check_sample_elements(shape, what: str) -> int:
    """The element count of an array of samples (a sample file's, or given in
    memory); ShapeError unless `check_elements` accepts each sample: the array
    less its leading axis, which may count samples (a 0-d or 1-d array whole).
    The number of samples is bounded by the file's size or the caller's memory,
    not by MAX_TENSOR_ELEMENTS: a large file is mapped, a large iterable spilled
    to disk (sample_spool.py)."""
    dims = [int(d) for d in shape]
    if dims and dims[0] < 0:
        raise ShapeError(f"{what}: negative dimension in {dims}")
    check_elements(dims[1:] if len(dims) > 1 else dims, what)
    return math.prod(dims)


def check_dims(dims, what: str, error: type[NncError] = OptionError) -> tuple[int, ...]:
    """A shape the user gives (--input-shape, --stream, the API's input_shapes) as
    ints; `error` unless every dim is a positive integer and check_elements
    accepts the shape."""
    values = list(dims) if isinstance(dims, (tuple, list)) else None
    if values is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in values):
        raise error(f"{what}: expected a list of integer dims, got {dims!r}")
    shape = tuple(int(d) for d in values)
    if any(d <= 0 for d in shape):
        raise error(f"{what}: every dim must be a positive integer, got {list(shape)}")
    check_elements(shape, what, error)
    return shape
