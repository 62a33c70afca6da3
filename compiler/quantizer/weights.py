"""Weights and biases of multiply-accumulate layers (docs/numerics.md §1–2).

- Float weights become int8, symmetric, per output channel, on a b-bit grid
  (b = 2..8, L = 2^(b−1) − 1): s_w[c] = max|w[c]| / L (1 for an all-zero
  channel), q = round_half_even(w / s_w) with q ∈ [−L, L], so zero stays exactly
  zero. Below 8 bits max|w[c]| is first clipped to the α · max|w[c]| (α on a
  grid in [0.3, 1]) that minimizes the channel's squared quantization error:
  the outliers lose less than the bulk of the weights gains. A channel whose
  bias would not fit gets a larger scale (`bias_floor`).
  Codebook quantization keeps the 8-bit scales and snaps q to 2^b values
  (codebook.py).
- A float constant operand of a MatMul between activations (docs/numerics.md §12)
  becomes int8 symmetric per tensor: s = max|w| / 127 as a float32 value (1 for
  all zeros), q = round_half_even(w / s) in [−127, 127] (`symmetric_per_tensor`).
- Float biases become int32 with scale s_x · s_w[c]: q = round(b / (s_x · s_w[c])).
- Quantized models feed int8 weights and int32 biases through DequantizeLinear of
  constants; `dequantized_constant` reads them back unchanged (zero points must be 0).
  A bias whose f32 scale is not the f32 rounding of s_x · s_w[c] is requantized
  to s_x · s_w[c] (`layer_bias`); otherwise it is reused as it is, and the integer
  layer treats its scale as exactly s_x · s_w[c].
- `check_accumulator` is the overflow proof: Σ|w[c]|·255 + |bias[c]| < 2^31 for
  every output channel, or an UnsupportedError naming the layer.
"""

from __future__ import annotations


import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph
from ..numerics import accumulator_bound
from ..records import record

INT32_MAX = (1 << 31) - 1
BIAS_LIMIT = float(1 << 30)  # leaves 2^30 of the accumulator for Σ|w|·255
CLIP_GRID = np.linspace(1.0, 0.3, 36)  # clipping ratios tried below 8 bits; largest first wins ties


@record
class QuantizedConstant:
    """Integer data with its scales: r = scale[c] · q along `axis` (None: one scale)."""

    data: np.ndarray
    scale: np.ndarray  # float64, one value per channel of `axis`, or one value
    axis: int | None
    name: str  # the constant tensor holding `data`

    def scales_along(self, axis: int) -> np.ndarray:
        """One scale per index of `axis` (a per-tensor scale is broadcast)."""
        if self.axis is None:
            return np.full(self.data.shape[axis], float(self.scale.reshape(-1)[0]))
        if self.axis != axis:
            raise UnsupportedError(f"constant {self.name!r} is quantized along axis {self.axis}, "
                                   f"expected the output-channel axis {axis}")
        return self.scale


WEIGHT_LIMIT = 127


def symmetric_per_tensor(w: np.ndarray) -> tuple[np.ndarray, float]:
    """(int8 q, scale) with scale = max|w| / 127 (a float32 value; 1 for all zeros)."""
    peak = float(np.abs(w).max()) if w.size else 0.0
    scale = float(np.float32(peak / WEIGHT_LIMIT)) if peak > 0 else 1.0
    return np.clip(np.rint(w / scale), -WEIGHT_LIMIT, WEIGHT_LIMIT).astype(np.int8), scale


def quantize_weights(w: np.ndarray, axis: int, floor: np.ndarray | None = None,
                     bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(int8 q, float32 scales) of float weights, symmetric per channel along `axis`
    on the b-bit grid q ∈ [−(2^(b−1)−1), 2^(b−1)−1]. `floor` (per channel) raises
    scales below it: see `bias_floor`."""
    limit = (1 << (bits - 1)) - 1
    moved = np.moveaxis(np.asarray(w, np.float64), axis, 0)
    rows = moved.reshape(moved.shape[0], -1)
    peak = np.abs(rows).max(axis=1, initial=0.0) * (_best_clip(rows, limit) if bits < 8 else 1.0)
    scale = np.where(peak > 0, peak / limit, 1.0)
    if floor is not None:
        scale = np.maximum(scale, floor)
    scale = scale.astype(np.float32)
    q = np.clip(np.rint(w / per_channel(scale, w.ndim, axis)), -limit, limit)
    return q.astype(np.int8), scale


def _best_clip(rows: np.ndarray, limit: int) -> np.ndarray:
    """Per row, the fraction α of max|w| (on CLIP_GRID) whose grid of scale
    α · max|w| / limit quantizes the row with the smallest squared error."""
    peak = np.abs(rows).max(axis=1, initial=0.0)
    errors = []
    for alpha in CLIP_GRID:
        scale = np.where(peak > 0, alpha * peak / limit, 1.0)[:, None]
        errors.append(np.sum((np.clip(np.rint(rows / scale), -limit, limit) * scale - rows) ** 2, axis=1))
    return CLIP_GRID[np.argmin(np.stack(errors), axis=0)]


def codebook_weights(w: np.ndarray, axis: int, floor: np.ndarray | None, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 q, float32 scales): the int8 per-channel grid, then at most 2^bits
    distinct values per tensor (codebook.snap)."""
    from . import codebook  # codebook compression only

    _, scale = quantize_weights(w, axis, floor)
    return codebook.snap(w / per_channel(scale, w.ndim, axis), 1 << bits), scale


def per_channel(scale: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """`scale` (one per channel) as float64, shaped to broadcast along `axis`."""
    shape = [1] * ndim
    shape[axis] = -1
    return scale.astype(np.float64).reshape(shape)


def bias_floor(b: np.ndarray, x_scale: float) -> np.ndarray:
    """Smallest weight scales that keep |round(b / (s_x · s_w))| within BIAS_LIMIT.
    A channel whose weights are all but zero (|w| ~ 1e-30 happens in trained
    models) would otherwise need a bias beyond int32; its weights then quantize
    to 0 and the channel computes its bias alone (TFLite's converter does the same)."""
    return np.abs(np.asarray(b, np.float64)) / (x_scale * BIAS_LIMIT)


def quantize_bias(b: np.ndarray, scale: np.ndarray, layer: str) -> np.ndarray:
    """int32 round_half_even(b / scale), or UnsupportedError when it overflows."""
    q = np.rint(np.asarray(b, np.float64) / scale)
    if np.any(np.abs(q) > INT32_MAX):
        raise UnsupportedError(f"layer {layer!r}: its bias does not fit int32 at scale s_x·s_w")
    return q.astype(np.int32)


def dequantized_constant(graph: Graph, name: str, what: str, layer: str) -> QuantizedConstant:
    """The integer constant and scales behind tensor `name`, which must be the
    output of a DequantizeLinear of constants with zero points 0."""
    dq = graph.producer(name)
    if dq is None or dq.op != "DequantizeLinear" or not all(graph.tensor(t).is_constant for t in dq.inputs if t):
        raise UnsupportedError(f"layer {layer!r}: its {what} is not a quantized constant")
    zp = dq.inputs[2] if len(dq.inputs) > 2 else ""
    if zp and np.any(graph.constant(zp) != 0):
        raise UnsupportedError(f"layer {layer!r}: its {what} has non-zero zero points (weights and biases "
                               "must be symmetric)")
    scale = graph.constant(dq.inputs[1]).astype(np.float64).reshape(-1)
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise UnsupportedError(f"layer {layer!r}: its {what} has a non-positive scale")
    return QuantizedConstant(graph.constant(dq.inputs[0]), scale, dq.attrs.axis, dq.inputs[0])


def layer_bias(bias: QuantizedConstant, channels: int, accumulator_scale: np.ndarray,
               layer: str) -> np.ndarray:
    """The bias as int32[channels] at scale s_x · s_w[c] (`accumulator_scale`).
    A QDQ bias stored at another scale s_b is requantized: round(q · s_b / (s_x · s_w[c]))."""
    data = bias.data.astype(np.int64)
    if data.size == 1:
        data = np.broadcast_to(data.reshape(-1), (channels,))
    data = data.reshape(-1)
    if data.size != channels:
        raise UnsupportedError(f"layer {layer!r}: bias of shape {list(bias.data.shape)} is not one value "
                               f"per output channel ({channels})")
    scale = bias.scale if bias.scale.size == channels else np.full(channels, float(bias.scale[0]))
    if bias.data.dtype == np.int32 and np.array_equal(scale.astype(np.float32), accumulator_scale.astype(np.float32)):
        return data.astype(np.int32)
    return quantize_bias(data * scale, accumulator_scale, layer)


def check_accumulator(weights: np.ndarray, bias: np.ndarray | None, layer: str) -> None:
    """Overflow proof (axis 0 = output channels): Σ|w|·255 + |bias| < 2^31."""
    bound = accumulator_bound(weights, axis=0)
    if bias is not None:
        bound = bound + np.abs(bias.astype(np.int64))
    worst = int(np.argmax(bound))
    if bound[worst] > INT32_MAX:
        raise UnsupportedError(f"layer {layer!r}: the int32 accumulator can overflow in output channel "
                               f"{worst} (Σ|w|·255 + |bias| = {int(bound[worst])} ≥ 2^31)")
