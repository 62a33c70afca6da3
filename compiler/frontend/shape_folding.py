"""Static shape folding: once every input shape is bound, shape computations are
constants. This pass turns them into initializers so that the IR only ever sees
compute ops (both PyTorch exporters wrap reshapes, initial RNN states and
attention head splits in Shape -> Gather -> Unsqueeze -> Concat -> ... chains).

Folded, in the graph's topological order, until nothing changes:
- `Shape` (with `start`/`end`) and `Size` of a tensor whose shape ONNX shape
  inference knows fully;
- every other node whose inputs are all constants (initializers, Constant nodes
  or outputs folded before), evaluated with ONNX's reference evaluator
  (`onnx.reference`) at the model's opset: Gather/Slice/Concat/Unsqueeze/
  Squeeze/Cast on shapes, Range, ConstantOfShape, Expand, Where, Reshape, ...

Never folded: QuantizeLinear/DequantizeLinear (their constant inputs are the
model's quantized weights, which the quantizer reads as such), random and
control-flow ops, ops of other domains, and nodes that produce a graph output.
Shape inference runs again after each round, since a folded constant can make
a downstream shape (and so another `Shape`) known.

Before a node is evaluated, each of its outputs must pass the element limits of
compiler/limits.py, its shape taken from the graph's shape inference or, where
that does not know it, from ONNX's inference of the node alone on its constant
inputs; an output whose shape even that cannot tell (data-dependent, such as
NonZero's) is checked once computed. A constant Expand, Tile, ConstantOfShape,
Range, Pad or Resize asking for too large an output thus fails with a
ShapeError before anything allocates it.

Invariants: the model computes the same outputs; a folded node's outputs become
initializers of the same names and types; a node is folded at most once.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..limits import check_elements
from .onnx_proto import GraphProto, ModelProto, NodeProto, to_array

NEVER_FOLD = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "RandomNormal",
                        "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli",
                        "If", "Loop", "Scan"})
MAX_ROUNDS = 8
# Constant inputs of at most this many elements are shown to ONNX's per-node
# shape inference as values (shapes, repeats, pads, scales), larger ones as types.
MAX_INFERENCE_DATA = 4096


def fold_shapes(model: ModelProto, opset: int, infer) -> ModelProto:
    """The model with its shape computations folded (see the module docstring);
    `infer(model)` runs shape inference and returns the inferred model."""
    for _ in range(MAX_ROUNDS):
        folded = _fold_round(model, opset)
        if not folded:
            return model
        model = infer(model)
    return model


def _fold_round(model: ModelProto, opset: int) -> bool:
    """Fold what can be folded now, in place; True if anything was."""
    graph = model.graph
    known = {t.name: to_array(t) for t in graph.initializer}
    shapes = static_shapes(graph)
    outputs = {o.name for o in graph.output}
    kept, added = [], {}
    for node in graph.node:
        values = None
        if node.domain in ("", "ai.onnx") and node.op_type not in NEVER_FOLD and not outputs & set(node.output):
            values = _fold_node(node, known, shapes, opset)
        if values is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            if name:
                known[name] = added[name] = np.asarray(value)
    if not added:
        return False
    from onnx import numpy_helper  # imported only when something folds

    used = {name for node in kept for name in node.input} | outputs
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in added.items() if name in used)
    _drop_value_info(graph, set(added))
    return True


def _fold_node(node: NodeProto, known: dict, shapes: dict, opset: int) -> list[np.ndarray] | None:
    if node.op_type in ("Shape", "Size"):
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        if node.op_type == "Size":
            return [np.array(int(np.prod(shape)), np.int64)]
        attrs = {a.name: a.i for a in node.attribute}
        return [np.array(shape[_clamp(attrs.get("start", 0), len(shape)):
                               _clamp(attrs.get("end", len(shape)), len(shape))], np.int64)]
    inputs = [name for name in node.input if name]
    if not all(name in known for name in inputs):
        return None
    _check_outputs(node, [shapes.get(out) for out in node.output], known, opset)
    from onnx import helper
    from onnx.reference import ReferenceEvaluator  # 15 ms to import; most models fold nothing

    # The node inside a one-node function importing the model's opset: the evaluator
    # ignores `opsets` for a bare NodeProto and runs the newest version of the op.
    function = helper.make_function("nnc.fold", "fold", inputs, [out for out in node.output if out], [node],
                                    opset_imports=[helper.make_opsetid("", opset)])
    try:
        computed = iter(ReferenceEvaluator(function).run(None, {name: known[name] for name in inputs}, attributes={}))
        values = [next(computed) if out else None for out in node.output]
    except Exception as exc:  # the evaluator raises many unrelated types on bad constants
        raise ShapeError(f"{node.op_type} node {node.name!r}: cannot fold its constant inputs: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    _check_outputs(node, [np.shape(value) for value in values], known, opset)
    return values


def _check_outputs(node: NodeProto, shapes: list, known: dict, opset: int) -> None:
    """ShapeError if an output of `node` passes the element limits; a shape that
    is None is asked of ONNX's inference of the node alone (see the module docstring)."""
    if any(shape is None for shape in shapes):
        inferred = _infer_node(node, known, opset)
        shapes = [inferred.get(out) if shape is None else shape for out, shape in zip(node.output, shapes)]
    for out, shape in zip(node.output, shapes):
        if out and shape is not None:
            check_elements(shape, f"{node.op_type} node {node.name!r}: output {out!r}")


def _infer_node(node: NodeProto, known: dict, opset: int) -> dict[str, tuple[int, ...]]:
    """Output name -> static shape, as ONNX infers them for `node` from its
    constant inputs alone; outputs it cannot tell are left out."""
    from onnx import defs, helper, numpy_helper
    from onnx.shape_inference import infer_node_outputs

    names = [name for name in node.input if name]
    try:
        schema = defs.get_schema(node.op_type, opset, node.domain)
        types = {name: helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(known[name].dtype),
                                                     known[name].shape) for name in names}
        data = {name: numpy_helper.from_array(known[name], name) for name in names
                if known[name].size <= MAX_INFERENCE_DATA}
        outputs = infer_node_outputs(schema, node, types, data, opset_imports=[helper.make_opsetid("", opset)])
    except Exception:  # onnx raises several unrelated types; the computed outputs are checked instead
        return {}
    shapes = {}
    for name, type_proto in outputs.items():
        dims = type_proto.tensor_type.shape.dim
        if type_proto.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _clamp(index: int, rank: int) -> int:
    """ONNX Shape's start/end: negative counts from the back, then clamped to [0, rank]."""
    return min(max(index + rank if index < 0 else index, 0), rank)


def static_shapes(graph: GraphProto) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, for every value whose dims are all known."""
    shapes = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        value_type = value.type
        if not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value_type.tensor_type.shape.dim]
        if None not in dims:
            shapes[value.name] = tuple(dims)
    for tensor in graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return shapes


def _drop_value_info(graph: GraphProto, names: set[str]) -> None:
    keep = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(keep)
