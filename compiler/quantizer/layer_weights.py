"""Weights and biases of one multiply-accumulate layer → integer constants behind
DequantizeLinear, at the bit width its `WeightSpec` asks for.

- Float constant weights become int8 on the spec's b-bit grid, symmetric per
  output channel (weights.quantize_weights), or snapped to a 2^b-entry codebook
  (weights.codebook_weights); float biases become int32 at s_x · s_w[c].
- Weights a QDQ model already quantizes are left as they are at 8 bits; a
  narrower spec or a codebook re-quantizes them from their dequantized values
  (the bias then follows the new scale, also via its dequantized value).
- Bias correction (Nagel et al., "Data-Free Quantization Through Weight
  Equalization and Bias Correction", ICCV 2019, §4.2, empirical form): the
  quantized layer's output is shifted on average by E[Δy] = (w̃ − w) · E[x]
  per output channel, E[x] being the per-channel mean of the layer's input on
  the calibration samples; the bias absorbs −E[Δy] (a layer without a bias gets
  one). Zero padding at borders is ignored, as in the paper.
Gemm's alpha and beta are folded into weights and bias first.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node, Tensor
from ..obs_options import DAMPING
from ..ops.quantize import DequantizeAttrs
from ..records import record
from .emit import add_node
from .params import qdq_affine
from .weights import (bias_floor, codebook_weights, dequantized_constant, per_channel, quantize_bias,
                      quantize_weights, symmetric_per_tensor)

if TYPE_CHECKING:
    from ..hessian import Statistics


@record
class WeightSpec:
    """How one layer's weights are quantized: `bits` wide (2..8), or with a
    codebook of 2^bits entries; `method` "magnitude" rounds each weight to the
    nearest grid value, "obs" rounds by GPTQ (compiler/obs.py) with `damping`
    when the layer's input statistics are given."""

    bits: int = 8
    codebook: bool = False
    method: str = "magnitude"
    damping: float = DAMPING

    @property
    def is_default(self) -> bool:
        return self.bits == 8 and not self.codebook


def quantize_layer(graph: Graph, node: Node, spec: WeightSpec = WeightSpec(), mean: np.ndarray | None = None,
                   shared: dict | None = None, stats: Statistics | None = None) -> None:
    """Quantize `node`'s constant weights and bias as `spec` says (see the module
    docstring); `mean` is its input's per-channel mean for bias correction,
    `stats` its input statistics for method obs. Needs x dequantized; a layer
    whose weights are not constants is left alone.
    `shared` (one dict per graph) lets layers that read one weight tensor and
    quantize it to the same integers and scales read one int8 tensor, stored once
    (an exporter's unrolled recurrence reuses a weight at every step)."""
    x_producer = graph.producer(node.inputs[0])
    if x_producer is None or x_producer.op != "DequantizeLinear":
        return
    constants = _float_constants(graph, node, spec)
    if constants is None:
        return
    w, bias = constants
    x_scale = qdq_affine(graph, x_producer).scale
    axis = output_axis(node)
    floor = None if bias is None else bias_floor(bias, x_scale)
    quantizer = codebook_weights if spec.codebook else quantize_weights
    q, s_w = quantizer(w, axis, floor, spec.bits)
    bias_input = node.inputs[2] if len(node.inputs) > 2 else ""
    corrected = mean is not None and (bias is not None or not bias_input and node.op != "MatMul")
    if spec.method == "obs" and stats is not None:
        q = _gptq(node, w, q, s_w, spec, stats, corrected)
    if corrected:
        shift = output_shift(node, q * per_channel(s_w, w.ndim, axis) - w, mean, axis)
        bias = -shift if bias is None else bias - shift
    store_layer(graph, node, q, s_w, bias, x_scale, spec.bits, shared)


def quantize_matmul_operands(graph: Graph, node: Node, shared: dict) -> None:
    """Each float constant operand that MatMul `node` still reads after
    quantize_layer (a constant of rank != 2, or a constant left operand) becomes
    int8 symmetric per tensor behind DequantizeLinear (docs/numerics.md §12), so
    the QDQ graph holds the values the integer QMatMul multiplies. Only a MatMul
    whose run-time operands are all dequantized is touched; MatMuls reading one
    constant share its int8 copy (`shared`, as quantize_layer's)."""
    inputs = [graph.constant(name) for name in node.inputs]
    if all(value is not None for value in inputs) or any(
            value is None and (graph.producer(name) is None or graph.producer(name).op != "DequantizeLinear")
            for name, value in zip(node.inputs, inputs)):
        return
    names = list(node.inputs)
    for index, value in enumerate(inputs):
        if value is not None and value.dtype.kind == "f":
            q, scale = symmetric_per_tensor(np.asarray(value, np.float64))
            names[index] = _shared_weights(graph, names[index], q, np.array(scale, np.float32), None, 8, shared)
    graph.set_inputs(node, names)


def store_layer(graph: Graph, node: Node, q: np.ndarray, s_w: np.ndarray, bias: np.ndarray | None,
                x_scale: float, bits: int, shared: dict | None = None) -> None:
    """Make `node` read int8 weights `q` at per-channel scales `s_w` and the float
    `bias` (or none) as int32 at s_x · s_w[c], both behind DequantizeLinear."""
    axis = output_axis(node)
    inputs = list(node.inputs) + [""] * (3 - len(node.inputs))
    inputs[1] = _shared_weights(graph, node.inputs[1], q, s_w, axis, bits, {} if shared is None else shared)
    if bias is not None:
        s_b = (x_scale * s_w.astype(np.float64)).astype(np.float32)
        qb = quantize_bias(bias, s_b.astype(np.float64), node.name)
        inputs[2] = _dequantized(graph, f"{inputs[2] or node.name + '.bias'}.int32", qb, s_b, 0)
    graph.set_inputs(node, inputs if inputs[2] else inputs[:2])


def _gptq(node: Node, w: np.ndarray, q: np.ndarray, s_w: np.ndarray, spec: WeightSpec, stats: Statistics,
          corrected: bool) -> np.ndarray:
    """GPTQ integers on the grid of `q`, `s_w` (the b-bit grid, or the values of
    the codebook `q` took; zeros stay zeros). With bias correction to come, the
    bias joins the compensation as the weight of a constant input (its value is
    then set by the correction)."""
    from .. import obs
    from ..obs_layers import quantized_integers

    if spec.codebook:
        table = np.unique(q[q != 0])
        if table.size == 0:
            return q
        snap = obs.table_snap(table)
    else:
        snap = obs.uniform_snap((1 << (spec.bits - 1)) - 1)
    return quantized_integers(node, w, stats, s_w, snap, spec.damping, corrected).astype(np.int8)


def output_axis(node: Node) -> int:
    """The output-channel axis of the layer's weights."""
    return 0 if node.op == "Conv" or (node.op == "Gemm" and node.attrs.trans_b) else 1


def output_shift(node: Node, delta: np.ndarray, mean: np.ndarray, axis: int) -> np.ndarray:
    """E[Δy] per output channel: weight error `delta` (the layer's weight layout,
    output channels along `axis`) applied to the input's per-channel `mean`."""
    if node.op != "Conv":
        return np.moveaxis(delta, axis, 0) @ mean
    cout, cin_group = delta.shape[:2]
    per_group = cout // node.attrs.group
    channel = (np.arange(cout)[:, None] // per_group) * cin_group + np.arange(cin_group)[None, :]
    return np.sum(delta.reshape(cout, cin_group, -1).sum(axis=2) * mean[channel], axis=1)


def _float_constants(graph: Graph, node: Node, spec: WeightSpec):
    """(float64 weights, float64 bias [channels] or None) to quantize, or None when
    the layer is left alone (see the module docstring)."""
    if node.op == "MatMul" and len(graph.tensor(node.inputs[1]).shape) != 2:
        return None
    w = graph.constant(node.inputs[1])
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    if w is not None and w.dtype.kind == "f":
        bias = graph.constant(bias_name) if bias_name else None
        bias = None if bias is None or bias.dtype.kind != "f" else bias
    elif spec.is_default or (node.op == "Gemm" and (node.attrs.alpha != 1.0 or node.attrs.beta != 1.0)):
        return None
    else:
        w, bias = _dequantized_value(graph, node.inputs[1]), _dequantized_value(graph, bias_name)
        if w is None or (bias_name and bias is None):
            return None
    w = np.asarray(w, np.float64)
    channels = w.shape[output_axis(node)]
    if bias is not None and bias.size not in (1, channels):
        return None
    if node.op == "Gemm":  # only now: a layer left alone keeps its alpha and beta
        w, bias = _fold_gemm_scalars(node, w, bias)
    return w, None if bias is None else np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), (channels,))


def _dequantized_value(graph: Graph, name: str) -> np.ndarray | None:
    """The real value of a DequantizeLinear of constants with zero points 0, or None."""
    try:
        constant = dequantized_constant(graph, name, "constant", "") if name else None
    except UnsupportedError:
        return None
    if constant is None:
        return None
    q = constant.data.astype(np.float64)
    if constant.scale.size == 1:
        return q * float(constant.scale[0])
    return q * per_channel(constant.scale, q.ndim, (constant.axis or 0) % q.ndim)


def _fold_gemm_scalars(node: Node, w: np.ndarray, bias):
    """Gemm's alpha into the weights and beta into the bias; both become 1."""
    attrs = node.attrs
    w = w * attrs.alpha
    if bias is not None:
        bias = np.asarray(bias, np.float64) * attrs.beta
    node.attrs = dataclasses.replace(attrs, alpha=1.0, beta=1.0)
    return w, bias


def _shared_weights(graph: Graph, name: str, q: np.ndarray, scale: np.ndarray, axis: int, bits: int,
                    shared: dict) -> str:
    """The dequantized int8 weights of float constant `name`: an earlier layer's
    when it quantized `name` to the same integers and scales, else new."""
    earlier = shared.get((name, axis))
    if earlier is not None and np.array_equal(earlier[0], q) and np.array_equal(earlier[1], scale):
        return earlier[2]
    out = _dequantized(graph, f"{name}.int{bits}", q, scale, axis)
    shared[(name, axis)] = (q, scale, out)
    return out


def _dequantized(graph: Graph, base: str, q: np.ndarray, scale: np.ndarray, axis: int | None) -> str:
    """DequantizeLinear of constant q with per-channel `scale` along `axis` (None:
    one scale for the tensor)."""
    data = graph.add_constant(base, q).name
    scale_name = graph.add_constant(f"{base}.scale", scale.astype(np.float32)).name
    zero_point = graph.add_constant(f"{base}.zero_point", np.zeros(scale.shape, q.dtype)).name
    out = graph.unique_tensor_name(f"{base}.dq")
    graph.add_tensor(Tensor(out, "f32", q.shape))
    add_node(graph, f"{base}.dequantize", "DequantizeLinear", [data, scale_name, zero_point], [out],
             DequantizeAttrs(axis))
    return out
