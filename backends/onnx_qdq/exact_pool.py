"""Average pools whose window means can fall exactly half-way between two steps.

nnc's QAveragePool (docs/numerics.md §5) rounds acc · M once, half up. When M
is a power of two (the same scale in and out, a window of 2^k positions, as
TFLite's int8 AVERAGE_POOL_2D has it), acc · M lands exactly on k + 1/2 for one
window sum in 2^k. There ONNX's QuantizeLinear rounds half to even, and
onnxruntime, which sums the dequantized values s · (x − z) in float32, lands a
few ulps either side of the half: its result at such a tie is nnc's or one
step off, whichever way the float rounding fell. A one-step difference in a
pooled feature is a step of every logit it weighs into (several steps after a
Softmax scaled by 1/256).

`exact_average_pools` rewrites such a group, DequantizeLinear(s_x, z_x) →
AveragePool → QuantizeLinear(s_y, z_y), so that onnxruntime computes nnc's
integer exactly:

- the input is dequantized at scale 1 with zero point z' = the type's minimum:
  every value x − z' is a non-negative integer, so the window sum is exact in
  float32 (below 2^24) and so is its mean when the count is a power of two
  (otherwise the mean is within 2^-24 of exact);
- the output is quantized at s' = (1 − ε) / (c · M), M = m · 2^-n nnc's
  multiplier, and zero point z_y − K with K = c · (z_x − z') · M (an integer):
  a mean exactly half-way now lies ε above the half, so round-half-to-even
  rounds it up as nnc does, while ε · (largest mean) stays below the distance
  of every other mean from a half.

A group is rewritten only if the written parameters are proved on every
possible window sum (`_proved`): onnxruntime's float32 arithmetic (the mean by
division or by the reciprocal, the quantization likewise) and the integer op
nnc lowers the written group to when it reads the file back give nnc's
integer. The rewritten group's integer op has another zero point and
multiplier than nnc's, and computes the same integers on every input.
Groups where no mean can be half-way (any other multiplier, an odd count) are
left as they are: onnxruntime's float rounding then matters only within float
noise of a half (the per-layer check's 1 LSB).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np

from nnc import dtypes
from nnc.ir import Graph, Node
from nnc.numerics import quantize_multiplier, requantize
from nnc.quantizer.params import ACTIVATION_TYPES

# ε = 2^-(span_bits + 1..3) must exceed float32's relative rounding (2^-24) a few
# times over: windows of up to 2^20 / 255 positions (window sums below 2^20, so
# exact in float32).
_MAX_SPAN_BITS = 20
_UNPROVED = ()  # _plan's answer where half-way means are possible but no parameters are proved


def exact_average_pools(graph: Graph) -> dict[str, bool]:
    """Rewrite (in place) every average-pool group of `graph` (in QDQ form)
    whose means can be half-way and whose parameters are proved, as the module
    docstring says. Returns, per pool whose means can be half-way, whether it
    was rewritten (False: written as given, its half-way means rounded by
    onnxruntime's rule, possibly a step from nnc's)."""
    found = {}
    for node in graph.nodes():
        if node.op in ("AveragePool", "GlobalAveragePool"):
            group = _group(graph, node)
            plan = _plan(*group[2:]) if group else None
            if plan is not None:
                found[node.name] = plan is not _UNPROVED
                if plan is not _UNPROVED:
                    _rewrite(graph, node, group[0], group[1], plan)
    return found


def _group(graph: Graph, pool: Node):
    """(dequantize, quantize, x dtype, count, (s_x, z_x), (s_y, z_y)) of a
    per-tensor 8-bit group around `pool` with uniform windows and no padding,
    or None."""
    attrs, shape = pool.attrs, graph.tensor(pool.inputs[0]).shape
    if attrs.channels_last:
        return None
    if pool.op == "AveragePool":
        if any(attrs.pads) or attrs.ceil_mode or any(d != 1 for d in attrs.dilations):
            return None
        count = math.prod(attrs.kernel_shape)
    else:
        count = math.prod(shape[2:])
    dequantize, readers = graph.producer(pool.inputs[0]), graph.consumers(pool.outputs[0])
    if dequantize is None or len(readers) != 1 or pool.outputs[0] in graph.outputs:
        return None
    quantize = readers[0]
    if quantize.op != "QuantizeLinear" or dequantize.op != "DequantizeLinear":
        return None
    x = graph.tensor(dequantize.inputs[0])
    params = [_per_tensor(graph, n) for n in (dequantize, quantize)]
    if x.is_constant or x.dtype not in ACTIVATION_TYPES or quantize.attrs.dtype != x.dtype or None in params:
        return None
    return dequantize, quantize, x.dtype, count, params[0], params[1]


def _per_tensor(graph: Graph, node: Node) -> tuple[float, int] | None:
    """(scale, zero point) of a Q/DQ node with constant per-tensor parameters."""
    scale = graph.constant(node.inputs[1])
    zero_name = node.inputs[2] if len(node.inputs) > 2 else ""
    zero = graph.constant(zero_name) if zero_name else np.zeros(1)
    if node.attrs.axis is not None or scale is None or zero is None or scale.size != 1 or zero.size != 1:
        return None
    return float(scale.reshape(-1)[0]), int(zero.reshape(-1)[0])


def _plan(dtype: str, count: int, x_params, y_params):
    """(z', s', z_y − K) proved for the group; None where no mean can be
    half-way; _UNPROVED where one can but no parameters are proved (a window too
    large to enumerate, K not an integer or z_y − K out of range, or the proof
    failing)."""
    (s_x, z_x), (s_y, z_y) = x_params, y_params
    lo, hi = dtypes.integer_range(dtype)
    m, n = quantize_multiplier(s_x / (s_y * count))  # as nnc's lowering (compiler/quantizer/rules.py)
    if m == 0 or not _can_be_half_way(count * (hi - lo), count * (z_x - lo), m, n):
        return None
    span_bits = math.ceil(math.log2(count * (hi - lo)))
    if span_bits > _MAX_SPAN_BITS:
        return _UNPROVED
    sums = np.arange(count * (hi - lo) + 1, dtype=np.int64)  # Σ (x − z') over a window, z' = lo
    acc = sums - count * (z_x - lo)  # Σ (x − z_x)
    offset = Fraction(count * (z_x - lo) * m, 1 << n)
    if offset.denominator != 1 or not lo <= z_y - int(offset) <= hi:
        return _UNPROVED
    target = requantize(acc, m, n, z_y, lo, hi)
    for bits in range(span_bits + 1, span_bits + 4):
        scale = float(np.float32((1.0 - 2.0 ** -bits) * (1 << n) / (count * m)))
        plan = (lo, scale, z_y - int(offset))
        if _proved(plan, sums, count, target, lo, hi):
            return plan
    return _UNPROVED


def _can_be_half_way(span: int, shift: int, m: int, n: int) -> bool:
    """Whether some window sum acc = t − shift, t in [0, span], has acc·m ≡
    2^(n−1) (mod 2^n), i.e. a mean exactly half-way. With g = gcd(m, 2^n) that
    congruence has solutions iff g divides 2^(n−1), and then they are
    acc ≡ a (mod P), P = 2^n / g, a = (2^(n−1) / g)·(m / g)^−1 mod P; the least
    such t is (a + shift) mod P."""
    if n < 1:
        return False
    g = math.gcd(m, 1 << n)
    if (1 << (n - 1)) % g:
        return False
    period = (1 << n) // g
    solution = (1 << (n - 1)) // g * pow(m // g, -1, period) % period
    return (solution + shift) % period <= span


def _proved(plan, sums: np.ndarray, count: int, target: np.ndarray, lo: int, hi: int) -> bool:
    """On every window sum Σ (x − z'): onnxruntime's float32 result of the
    rewritten group and the integer op nnc reads it back as both equal `target`.
    onnxruntime's results: unfused (DequantizeLinear, AveragePool, QuantizeLinear:
    the mean by division or by the reciprocal, then scaled likewise and rounded),
    and the kernels its default optimization level fuses the group into:
    QLinearAveragePool rounds mean / s' + z' (the zero point added before
    rounding, in float32), QLinearGlobalAveragePool rounds sum · (1 / (s' · c))."""
    _, scale, zero = plan
    total, c, s = sums.astype(np.float32), np.float32(count), np.float32(scale)
    means = (total / c, total * (np.float32(1) / c))
    rounded = [np.rint(scaled).astype(np.int64) + zero
               for mean in means for scaled in (mean / s, mean * (np.float32(1) / s))]
    rounded.append(np.rint(total / c / s + np.float32(zero)).astype(np.int64))  # QLinearAveragePool
    rounded.append(np.rint(total * (np.float32(1) / (s * c))).astype(np.int64) + zero)  # QLinearGlobalAveragePool
    if not all(np.array_equal(np.clip(r, lo, hi), target) for r in rounded):
        return False
    m, n = quantize_multiplier(1.0 / (scale * count))  # the read-back group's multiplier
    return bool(np.array_equal(requantize(sums, m, n, zero, lo, hi), target))


def _rewrite(graph: Graph, pool: Node, dequantize: Node, quantize: Node, plan) -> None:
    """Point the pool at a DequantizeLinear(1, z') of its 8-bit input (the
    group's own one when the pool is its only reader) and give the
    QuantizeLinear the parameters of `plan`."""
    zero_in, scale, zero_out = plan
    x = dequantize.inputs[0]
    dtype = dtypes.to_numpy(graph.tensor(x).dtype)
    unit = graph.add_constant(f"{pool.name}.unit_scale", np.array(1.0, np.float32)).name
    low = graph.add_constant(f"{pool.name}.unit_zero_point", np.array(zero_in, dtype)).name
    if graph.consumers(dequantize.outputs[0]) == [pool] and dequantize.outputs[0] not in graph.outputs:
        graph.set_inputs(dequantize, [x, unit, low])
    else:
        name = graph.unique_tensor_name(f"{pool.inputs[0]}.unit")
        centred = graph.add_tensor(dataclasses.replace(graph.tensor(pool.inputs[0]), name=name, quant=None))
        graph.add_node(Node(graph.unique_node_name(f"{pool.name}.dequantize"), "DequantizeLinear",
                            [x, unit, low], [centred.name], dequantize.attrs))
        graph.set_inputs(pool, [centred.name, *pool.inputs[1:]])
    out_scale = graph.add_constant(f"{pool.name}.exact_scale", np.array(scale, np.float32)).name
    out_zero = graph.add_constant(f"{pool.name}.exact_zero_point", np.array(zero_out, dtype)).name
    graph.set_inputs(quantize, [quantize.inputs[0], out_scale, out_zero])

