"""ConvTranspose → one Conv computing every output phase, then depth-to-space,
so that the integer targets run it with the QConv kernels they already have
(docs/numerics.md §16).

Along a spatial axis with stride s, dilation d, kernel K and pads (p_b, p_e)
(an output_padding is a negative p_e), output o = q·s + r (phase r ∈ [0, s))
reads full position f = o + p_b, and

    y[q·s + r] = Σ over taps k with (r + p_b − k·d) ≡ 0 (mod s) of w[k] · x[q + e(r, k)],
    e(r, k) = (r + p_b − k·d) / s.

Every phase is a stride-1 correlation of x with a sub-kernel; placing the taps
of all phases in one window of offsets e_min..e_max (zeros where a phase has no
tap) makes them the output channels of ONE Conv: for each group g, phase
(row-major over the axes) and channel m of the group, channel
(g·P + phase)·Mg + m, with P = Π s. x is padded by −e_min at the begin (a
negative pad crops) so that the Conv yields Q = ceil(O / s) positions per phase.
Reshape → Transpose → Reshape then interleave the phases (depth-to-space), and a
Pad crops the Q·s − O positions past the output.

Each output element is the same sum of the same products as in the
ConvTranspose (no zero is inserted into x), so the int8 rewrite is exact, and
the Conv executes the direct ConvTranspose's MACs plus the zero taps of phases
with fewer taps than the window (none when s divides K and d = 1). Its output
channels are one tensor, so they share one set of quantization parameters.

In a QDQ model whose ConvTranspose output is read by a QuantizeLinear, the
phase Conv's output gets a QuantizeLinear → DequantizeLinear pair with the same
parameters, so the data movement after it needs no new ones.

Weights and bias must be float constants or a DequantizeLinear of constants
(weights per tensor or per axis 1, the channels within a group; bias per tensor
or per output channel).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node, Tensor
from ..ops.conv import ConvAttrs, join_shape, split_shape
from ..ops.shape import PadAttrs, ReshapeAttrs, TransposeAttrs
from ..records import record
from .annotate import insert_qdq
from .emit import add_node
from .groups import only_quantize
from .params import qdq_affine

_KERNEL, _PHASE, _TAP = "KLNO", "RSTU", "WXYZ"  # einsum letters per spatial axis (g, c, m are channels)


@record
class AxisPlan:
    """One spatial axis: `select[r, j, k]` = 1 when phase r reads kernel tap k at
    window offset j; x is padded by `begin`/`end` (negative: cropped) so that each
    phase yields `phases` positions; the ConvTranspose output has `out`."""

    stride: int
    out: int
    phases: int
    select: np.ndarray
    begin: int
    end: int


def axis_plan(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int) -> AxisPlan:
    out = (size - 1) * stride + (kernel - 1) * dilation + 1 - pad_begin - pad_end
    phases = -(-out // stride)
    offsets = {(r, k): (r + pad_begin - k * dilation) // stride for r in range(stride) for k in range(kernel)
               if (r + pad_begin - k * dilation) % stride == 0}
    lo, hi = min(offsets.values()), max(offsets.values())
    select = np.zeros((stride, hi - lo + 1, kernel), np.int64)
    for (r, k), e in offsets.items():
        select[r, e - lo, k] = 1
    return AxisPlan(stride, out, phases, select, -lo, phases + hi - size)  # Q + window − 1 − size − begin


def phase_weights(w: np.ndarray, group: int, plans: list[AxisPlan]) -> np.ndarray:
    """ConvTranspose weights [Cin, Cout/g, *K] as the phase Conv's
    [g·P·Mg, Cin/g, *window] (module docstring), in w's dtype."""
    nd, cin, mg = len(plans), w.shape[0], w.shape[1]
    wide = np.int64 if w.dtype.kind in "iu" else np.float64
    grouped = w.reshape(group, cin // group, mg, *w.shape[2:]).astype(wide)
    k, r, j = _KERNEL[:nd], _PHASE[:nd], _TAP[:nd]
    spec = f"gcm{k}," + ",".join(f"{r[a]}{j[a]}{k[a]}" for a in range(nd)) + f"->g{r}mc{j}"
    phased = np.einsum(spec, grouped, *(p.select for p in plans))
    window = phased.shape[3 + nd:]
    return np.ascontiguousarray(phased.reshape(-1, cin // group, *window).astype(w.dtype))


def phase_channels(v: np.ndarray, group: int, phases: int) -> np.ndarray:
    """A per-output-channel vector [Cout] for the phase Conv's channels [g·P·Mg]."""
    per_group = v.reshape(group, 1, -1)
    return np.ascontiguousarray(np.broadcast_to(per_group, (group, phases, per_group.shape[2])).reshape(-1))


def rewrite_conv_transposes(graph: Graph) -> None:
    """Replace every ConvTranspose of `graph` by its phase Conv (module docstring)."""
    for node in graph.nodes():
        if node.op == "ConvTranspose":
            _rewrite(graph, node)


def _rewrite(graph: Graph, node: Node) -> None:
    a = node.attrs
    if len(a.kernel_shape) > len(_KERNEL):
        raise UnsupportedError(f"ConvTranspose node {node.name!r}: {len(a.kernel_shape)} spatial axes "
                               f"(at most {len(_KERNEL)})")
    n, _, spatial = split_shape(graph.tensor(node.inputs[0]).shape, a.channels_last)
    nd = len(spatial)
    plans = [axis_plan(i, k, s, d, a.pads[x], a.pads[nd + x]) for x, (i, k, s, d)
             in enumerate(zip(spatial, a.kernel_shape, a.strides, a.dilations))]
    phases = math.prod(a.strides)
    weights = _rearranged(graph, node, 1, lambda w: phase_weights(w, a.group, plans),
                          lambda v: np.tile(v, a.group * phases))
    bias = "" if len(node.inputs) < 3 or not node.inputs[2] else _rearranged(
        graph, node, 2, lambda b: phase_channels(b, a.group, phases), lambda v: phase_channels(v, a.group, phases))
    x = node.inputs[0]
    pads = [p.begin for p in plans] + [p.end for p in plans]
    if min(pads) < 0:
        x = _pad(graph, node, x, _spatial_pads([min(0, p) for p in pads], nd + 2, a.channels_last), ".crop")
    channels = graph.tensor(weights).shape[0]
    window = graph.tensor(weights).shape[2:]
    attrs = ConvAttrs(tuple(window), (1,) * nd, tuple(max(0, p) for p in pads), (1,) * nd, a.group,
                      a.channels_last, a.act_min, a.act_max)
    out = graph.tensor(node.outputs[0])
    y = node.outputs[0] if phases == 1 else _declare(
        graph, out.name, f"{node.name}.phases", join_shape(n, channels, [p.phases for p in plans], a.channels_last),
        out.layout)
    quantize = only_quantize(graph, out.name)
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, "Conv", [x, weights, bias], [y], attrs))
    if phases > 1:
        _depth_to_space(graph, node, y, plans, out)
        if quantize is not None:  # a QDQ model: the phases get the output's parameters
            insert_qdq(graph, y, qdq_affine(graph, quantize))


# -- depth-to-space ----------------------------------------------------------------------
def _depth_to_space(graph: Graph, node: Node, y: str, plans: list[AxisPlan], out: Tensor) -> None:
    """Interleave the phase channels of y into the spatial axes, crop to `out`."""
    a, nd = node.attrs, len(plans)
    n, cout, _ = split_shape(out.shape, a.channels_last)
    g, mg = a.group, cout // a.group
    q, s = [p.phases for p in plans], [p.stride for p in plans]
    spaced = [label for x in range(1, nd) for label in (f"q{x}", f"s{x}")]
    if a.channels_last:
        labels = ["n", *(f"q{x}" for x in range(1, nd)), "g", *(f"s{x}" for x in range(nd)), "m"]
        sizes = [n * q[0], *q[1:], g, *s, mg]
        order = ["n", "s0", *spaced, "g", "m"]
    else:
        labels = ["n", *(f"s{x}" for x in range(nd)), "m", *(f"q{x}" for x in range(nd))]
        sizes = [n * g, *s, mg, *q]
        order = ["n", "m", "q0", "s0", *spaced]
    perm = tuple(labels.index(label) for label in order)
    split = _reshape(graph, node, y, tuple(sizes), ".split")
    moved = _declare(graph, y, f"{node.name}.interleave", tuple(sizes[p] for p in perm))
    add_node(graph, f"{node.name}.interleave", "Transpose", [split], [moved], TransposeAttrs(perm))
    crop = [0] * nd + [p.out - p.phases * p.stride for p in plans]
    whole = join_shape(n, cout, [p.phases * p.stride for p in plans], a.channels_last)
    merged = _reshape(graph, node, moved, whole, ".merge", out.layout, out.name if not any(crop) else None)
    if any(crop):
        _pad(graph, node, merged, _spatial_pads(crop, len(whole), a.channels_last), ".cropped", out.name)


# -- graph helpers ---------------------------------------------------------------------------
def _spatial_axes(rank: int, channels_last: bool) -> range:
    return range(1, rank - 1) if channels_last else range(2, rank)


def _spatial_pads(per_axis: list[int], rank: int, channels_last: bool) -> tuple[int, ...]:
    """Full-rank ONNX pads from nd begins then nd ends on the spatial axes."""
    nd = len(per_axis) // 2
    full = [0] * (2 * rank)
    for i, axis in enumerate(_spatial_axes(rank, channels_last)):
        full[axis], full[rank + axis] = per_axis[i], per_axis[nd + i]
    return tuple(full)


def _declare(graph: Graph, like: str, base: str, shape: tuple[int, ...], layout=None) -> str:
    name = graph.unique_tensor_name(base)
    graph.add_tensor(Tensor(name, graph.tensor(like).dtype, shape, layout=layout))
    return name


def _reshape(graph: Graph, node: Node, x: str, shape: tuple[int, ...], suffix: str, layout=None,
             out: str | None = None) -> str:
    out = out or _declare(graph, x, f"{node.name}{suffix}", shape, layout)
    add_node(graph, f"{node.name}{suffix}", "Reshape", [x], [out], ReshapeAttrs(tuple(shape)))
    return out


def _pad(graph: Graph, node: Node, x: str, pads: tuple[int, ...], suffix: str, out: str | None = None) -> str:
    t = graph.tensor(x)
    rank = len(t.shape)
    shape = tuple(d + b + e for d, b, e in zip(t.shape, pads[:rank], pads[rank:]))
    out = out or _declare(graph, x, f"{node.name}{suffix}", shape, t.layout)
    add_node(graph, f"{node.name}{suffix}", "Pad", [x], [out], PadAttrs(pads, "constant", 0.0))
    return out


# -- weights and bias ----------------------------------------------------------------------
def _rearranged(graph: Graph, node: Node, index: int, data_fn, scale_fn) -> str:
    """Input `index` (weights 1, bias 2) of `node` rearranged for the phase Conv:
    a float constant through `data_fn`, or a DequantizeLinear of constants whose
    integer data goes through `data_fn` and per-axis scales and zero points
    through `scale_fn` (per-axis along axis 1 for weights, 0 for the bias)."""
    name = node.inputs[index]
    what = "weights" if index == 1 else "bias"
    data = graph.constant(name)
    if data is not None:
        return graph.add_constant(f"{name}.phases", data_fn(data)).name
    dq = graph.producer(name)
    if dq is None or dq.op != "DequantizeLinear" or not all(graph.tensor(t).is_constant for t in dq.inputs if t):
        raise UnsupportedError(f"ConvTranspose node {node.name!r}: its {what} must be constants")
    q, scale = graph.constant(dq.inputs[0]), graph.constant(dq.inputs[1])
    zero = graph.constant(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else np.zeros_like(scale, q.dtype)
    axis = None if dq.attrs.axis is None else dq.attrs.axis % q.ndim
    if scale.size > 1:
        expected = 1 if index == 1 else 0
        if axis != expected:
            raise UnsupportedError(f"ConvTranspose node {node.name!r}: {what} quantized along axis {axis}; "
                                   f"only per-tensor or axis-{expected} scales have a phase form")
        scale, zero = scale_fn(scale.reshape(-1)), scale_fn(zero.reshape(-1))
    base = f"{dq.inputs[0]}.phases"
    names = [graph.add_constant(base, data_fn(q)).name, graph.add_constant(f"{base}.scale", scale).name,
             graph.add_constant(f"{base}.zero_point", zero).name]
    out = graph.unique_tensor_name(f"{base}.dq")
    graph.add_tensor(Tensor(out, graph.tensor(name).dtype, graph.tensor(names[0]).shape))
    attrs = dataclasses.replace(dq.attrs, axis=0 if scale.size > 1 else None)
    add_node(graph, f"{base}.dequantize", "DequantizeLinear", names, [out], attrs)
    return out
