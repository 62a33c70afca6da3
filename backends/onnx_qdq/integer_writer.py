"""The integer form of `--target onnx` (`--onnx-form integer`): nnc's lowered
integer graph as ONNX integer arithmetic that onnxruntime computes bit for bit.

Every integer op of the graph (QConv, QGemm, QAdd, ...) has one writer here,
registered with `@integer_writes` (integer_layers.py, integer_elementwise.py,
integer_resize.py, integer_layernorm.py, integer_recurrent.py; GlobalMaxPool too,
as ReduceMax):
ConvInteger / MatMulInteger (or int64 MatMul) for the accumulators, then
int64 arithmetic for nnc's requantization (integer_arith.py states why it is
exact). Ops that only move or select integers (Reshape, Transpose, Concat,
Pad, MaxPool, ...) are written as in the QDQ form (writer.py's writers): ONNX
defines them on integers exactly as nnc's contract does (docs/numerics.md
§8). QuantizeLinear / DequantizeLinear at a float interface are ONNX's own
for int8/uint8 and written out for int16 (integer_boundary.py).

Every IR tensor keeps its name and type, so each int8 activation of nnc's
graph can be read from onnxruntime. A graph holding an op with no exact
integer writer, or a node a writer refuses, is refused with one
UnsupportedError naming it and suggesting the QDQ form.
"""

from __future__ import annotations

import onnx

from nnc.errors import UnsupportedError
from nnc.ir import Graph
from nnc.quantizer.groups import node_rule_for

from .writer import WRITERS, Writer, build_model, registrar

INTEGER_WRITERS: dict[str, Writer] = {}

# Ops that move or select values: the QDQ form's writer is exact on integers.
# (Cast between integer types: onnxruntime's static_cast keeps the value modulo
# 2^bits, as nnc's contract does, §8a.)
DATA_OPS = ("Reshape", "Transpose", "Concat", "Pad", "Slice", "Split", "Gather", "Expand", "Tile", "Identity",
            "MaxPool", "Clip", "Cast")


integer_writes = registrar(INTEGER_WRITERS)  # the integer form's writers
# Their writers of these also write int16, which the QDQ form's refuse (opset 17).
INT16_BOUNDARY = ("QuantizeLinear", "DequantizeLinear")


def recurrent_islands(graph: Graph) -> tuple[Graph, dict[str, Writer]]:
    """`graph` (QDQ form) with its recurrent nodes lowered to nnc's integer ops
    (QLSTM, QGRU, QRNN and what their states need, such as a Requantize), and
    the integer-form writers of those ops. A recurrent layer's integer rule
    (fixed-point gates, an int16 cell) has no QDQ form, so the QDQ model
    computes it as the integer form does, bit for bit, between the
    QuantizeLinear and DequantizeLinear around it. An LSTM's int16 cell state
    at the graph's interface (a streaming model's c0 and Y_c) is quantized and
    dequantized as the integer form writes int16 (integer_boundary.py). A
    float graph (--no-quantize) keeps its recurrent nodes float (ops_recurrent.py)."""
    float_graph = not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in graph.nodes())
    recurrent = [] if float_graph else [n.name for n in graph.nodes() if node_rule_for(n.op) is not None]
    if not recurrent:
        return graph, {}
    lowered = graph.copy()
    for name in recurrent:
        node = lowered.node(name)
        node_rule_for(node.op)(lowered, node)
    lowered.remove_dead()
    ops = {n.op for n in lowered.nodes() if n.op in INTEGER_WRITERS and n.op not in WRITERS}
    return lowered, {op: INTEGER_WRITERS[op] for op in sorted(ops | set(INT16_BOUNDARY))}


def to_integer_onnx(graph: Graph) -> onnx.ModelProto:
    """The ONNX model computing the integer graph `graph` with integer ops (module docstring)."""
    live = graph.copy()
    live.remove_dead()
    writers = {op: WRITERS[op] for op in DATA_OPS} | INTEGER_WRITERS
    missing = [n for n in live.nodes() if n.op not in writers]
    if missing:
        listed = ", ".join(f"{n.op} node {n.name!r}" for n in missing)
        said = f"the integer ONNX form has no exact form for {listed}"
        raise UnsupportedError(f"{said} (use onnx_form='qdq')", cli=f"{said} (use --onnx-form qdq)")
    try:
        return build_model(live, writers, "written by nnc --target onnx --onnx-form integer: nnc's integer graph "
                                          "as ONNX integer arithmetic (bit-exact with nnc's reference)")
    except UnsupportedError as exc:  # a writer's refusal of one node's attributes
        raise UnsupportedError(f"{exc} in the integer ONNX form (use onnx_form='qdq')",
                               cli=f"{exc} in the integer ONNX form (use --onnx-form qdq)") from None
