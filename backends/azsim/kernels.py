"""az-sim layer kernels: the registry and what every kernel shares. The kernels
themselves live in mac.py (the MAC array: QConv, QGemm) and ppu.py (the
post-processing unit: everything else) and its companions (KERNEL_MODULES);
`build` imports the module of a layer's op on its first use.

Each kernel is built once per program (`build(ctx) -> Built`): it checks the
layer's shapes and parameters, prepares what the hardware keeps on chip (decoded
weights as a matrix, per-channel multipliers) and returns
- `run()`: computes the layer from its input arrays into its output arrays (views
  of activation SRAM) and returns the executed MACs when they depend on the data
  (activation zero-skipping), else None;
- `work`: the static counts the cost model needs (MACs, zero-skipped MACs,
  post-processing elements).

The arithmetic is docs/numerics.md, implemented independently of the reference
interpreter, with the shared primitives of nnc.numerics.

Operand conventions (LayerDesc.inputs, tensor indices, -1 for an omitted optional
operand; constants are TensorDescs with data):
    QConv, QGemm     (x, w, bias, multiplier, shift); the w slot is -1 (ignored):
                     weights come from the layer's stream, QConv [Cout, Cin/group,
                     *kernel], QGemm [N, K]
    QAdd (a, b)   Requantize, Clip, Reshape, Transpose, Pad, MaxPool,
    GlobalMaxPool, QAveragePool (x)   QLut (x, table)   QSoftmax (x, exp_table[, keep])
    QLogSoftmax (x, exp_table, log_table)
    Concat (x0, x1, ...)   QuantizeLinear, DequantizeLinear (x, scale[, zero_point])
    QMul (a, b)   QAffine (x, multiplier, offset[, multiplier_neg]) (ppu_elementwise.py)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import field

import numpy as np

from nnc.errors import BlobError, UnsupportedError

from .program import LayerDesc
from nnc.records import record

PAD_MODES = ("constant", "reflect", "edge", "wrap")  # Pad `mode` codes 0..3
CLIP = (np._core if hasattr(np, "_core") else np.core).umath.clip  # the ufunc behind np.clip, without its wrapper
_REQUIRED = object()


@record(frozen=False)
class Work:
    """Static counts of one layer. `macs_executed` counts weight zero-skipping only;
    `view`: the layer moves nothing (an aliased Reshape), so the chip runs nothing for it."""

    macs_total: int = 0
    macs_executed: int = 0
    ppu_elements: int = 0
    view: bool = False


@record(frozen=False)
class Built:
    run: Callable[[], int | None]
    work: Work = field(default_factory=Work)


@record(frozen=False)
class LayerContext:
    """What a kernel builder sees: the layer, its operand arrays (activation views
    or constants, None where omitted), output views and decoded weights."""

    desc: LayerDesc
    inputs: list[np.ndarray | None]
    outputs: list[np.ndarray]
    weights: np.ndarray | None
    zero_skip_group: int
    skip_zero_activations: bool
    aliased: bool = False  # the single output shares its bytes with input 0

    def param(self, key: str, default=_REQUIRED):
        if key in self.desc.params:
            return self.desc.params[key]
        if default is _REQUIRED:
            raise self.error(f"misses parameter {key!r}")
        return default

    def error(self, why: str) -> BlobError:
        return BlobError(f"layer {self.desc.name!r} ({self.desc.op}): {why}")

    def operand(self, index: int, what: str) -> np.ndarray:
        if index >= len(self.inputs) or self.inputs[index] is None:
            raise self.error(f"misses operand {what}")
        return self.inputs[index]


KERNELS: dict[str, Callable[[LayerContext], Built]] = {}


def kernel(*ops: str):
    def register(fn):
        for op in ops:
            KERNELS[op] = fn
        return fn
    return register


# The module (of this package) whose @kernel builds each op; tests/backends/azsim
# (test_kernel_modules.py) check that importing a module alone registers its ops.
KERNEL_MODULES: dict[str, str] = {
    "mac": "QGemm QConv",
    "ppu": "QAveragePool MaxPool GlobalMaxPool Requantize QAdd QLut QSoftmax QLogSoftmax Clip Reshape Transpose Concat "
           "Pad QuantizeLinear DequantizeLinear",
    "ppu_data": "Gather Slice Split Expand Tile Cast",
    "ppu_elementwise": "QMul QAffine",
    "ppu_resize": "ResizeNearest QResize",
    "ppu_transformer": "QReduce QMatMul QLayerNorm",
    "recurrent": "QLSTM QGRU QRNN",
}
_KERNEL_MODULE = {op: module for module, ops in KERNEL_MODULES.items() for op in ops.split()}


def build(ctx: LayerContext) -> Built:
    op = ctx.desc.op
    if op not in KERNELS and op in _KERNEL_MODULE:
        importlib.import_module(f"{__package__}.{_KERNEL_MODULE[op]}")
    builder = KERNELS.get(op)
    if builder is None:
        for module in KERNEL_MODULES:  # the full list for the message
            importlib.import_module(f"{__package__}.{module}")
        raise UnsupportedError(f"layer {ctx.desc.name!r}: az-sim has no {ctx.desc.op} unit "
                               f"(supported: {', '.join(sorted(KERNELS))})")
    return builder(ctx)


# -- geometry helpers (channels-last arrays [N, *spatial, C]) ------------------------
def channels_last(a: np.ndarray, flag) -> np.ndarray:
    return a if flag else np.moveaxis(a, 1, -1)


def pad_spatial(x: np.ndarray, begins, ends, value) -> np.ndarray:
    if not any(begins) and not any(ends):
        return x
    return np.pad(x, [(0, 0), *zip(begins, ends), (0, 0)], constant_values=value)


def taps(x: np.ndarray, kernel, strides, dilations, out) -> list[np.ndarray]:
    """One view per kernel position (row-major) of padded channels-last x:
    view[n, *o, c] = x[n, *(o·strides + tap·dilations), c]."""
    return [x[(slice(None), *(slice(t * d, t * d + (o - 1) * s + 1, s)
                               for t, d, o, s in zip(tap, dilations, out, strides)))]
            for tap in np.ndindex(*kernel)]


def padded_buffer(shape, begins, ends, dtype, fill=0) -> tuple[np.ndarray, np.ndarray]:
    """(buffer, interior): a channels-last buffer of `shape` grown by the pads and
    filled with `fill`, and the view of it where the unpadded input goes. Kernels
    keep one per layer and write only the interior, so the border stays `fill`."""
    full = (shape[0], *(s + b + e for s, b, e in zip(shape[1:-1], begins, ends)), shape[-1])
    buffer = np.full(full, fill, dtype)
    interior = buffer[(slice(None), *(slice(b, b + s) for s, b in zip(shape[1:-1], begins)))]
    return buffer, interior


def conv_out_size(size: int, k: int, s: int, d: int, pad_total: int) -> int:
    return (size + pad_total - (k - 1) * d - 1) // s + 1


def check_shape(ctx: LayerContext, what: str, actual, expected) -> None:
    if tuple(actual) != tuple(expected):
        raise ctx.error(f"{what} has shape {list(actual)}, expected {list(expected)}")


def clamp_params(ctx: LayerContext) -> tuple[int, int, int]:
    return int(ctx.param("y_zero_point")), int(ctx.param("out_min")), int(ctx.param("out_max"))


# -- the integer rescale tail shared by the MAC array and the PPU --------------------
INT64_SAFE = 2.0 ** 62  # float64 sums of magnitudes below this are far from int64's 2^63


class RoundShiftClamp:
    """out = clamp(z_y + ((s + offset) >> n), lo, hi) for an int64 array s (overwritten),
    per channel along s's last axis (offset and n vectors or scalars); `offset`
    holds the rounding term 2^(n−1), and |s| ≤ `bound` (per channel).

    z_y is folded into the offset as z_y·2^n, since ⌊(t + z_y·2^n) / 2^n⌋ = ⌊t / 2^n⌋ + z_y,
    when bound + |offset| + |z_y|·2^n < 2^62 on every channel (checked in float64,
    whose rounding is far below the 2^62..2^63 margin), so no int64 sum overflows;
    otherwise z_y is added after the shift. The per-channel constants are tiled
    `period` times along the second-to-last axis: on a contiguous s [..., period, C]
    one ufunc inner loop then covers period·C elements instead of C.
    """

    def __init__(self, offset, shift, zero_point: int, lo: int, hi: int, bound, period: int = 1):
        offset, shift = np.asarray(offset, np.int64).reshape(-1), np.asarray(shift, np.int64).reshape(-1)
        worst = np.asarray(bound, np.float64) + np.abs(offset.astype(np.float64)) \
            + abs(zero_point) * np.exp2(shift.astype(np.float64))
        folded = bool(worst.max(initial=0.0) < INT64_SAFE)
        self.offset = per_channel(offset + (np.int64(zero_point) << shift) if folded else offset, period)
        uniform = shift.size > 0 and bool((shift == shift[0]).all())
        self.shift = shift[0] if uniform else per_channel(shift, period)
        self.after = np.int64(0 if folded else zero_point)
        self.lo, self.hi = np.int64(lo), np.int64(hi)  # numpy scalars: no conversion per call

    def bind(self, s: np.ndarray, out: np.ndarray) -> Callable[[], None]:
        """The rescale of `s` into `out` as one call, everything it needs bound."""
        offset, shift, after, lo, hi = self.offset, self.shift, self.after, self.lo, self.hi
        add, right_shift, maximum, minimum = np.add, np.right_shift, np.maximum, np.minimum

        def rescale():
            add(s, offset, out=s)
            right_shift(s, shift, out=s)
            if after:
                add(s, after, out=s)
            maximum(s, lo, out=s)
            minimum(s, hi, out=s)
            out[...] = s  # cheaper than a casting `out=` in the minimum
        return rescale


def per_channel(values: np.ndarray, period: int) -> np.ndarray:
    """A per-channel vector [C] repeated as [period, C] (itself when period is 1)."""
    return np.tile(values, (period, 1)) if period > 1 else values
