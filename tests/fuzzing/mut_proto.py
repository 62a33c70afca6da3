"""ONNX model mutators, part 2: protobuf field edits of tensors, names, graph
structure and versions (family onnx-proto)."""

from __future__ import annotations

import random
import struct

import onnx
from onnx import TensorProto

from .case import Case
from .mut_onnx import EDGE_INTS, UTF8_PLACEHOLDER, bad_utf8, load_model, pick_initializer, save_model
from .registry import mutator

OTHER_TYPES = [TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.INT8, TensorProto.UINT8,
               TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING, TensorProto.COMPLEX64,
               TensorProto.UNDEFINED, TensorProto.FLOAT8E4M3FN, TensorProto.UINT4]


@mutator("onnx-proto")
def initializer_dims(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    tensor = pick_initializer(rng, model)
    dims = list(tensor.dims)
    how = rng.choice(["drop", "add", "double", "zero", "negative", "huge"])
    if how == "drop" and dims:
        dims.pop(rng.randrange(len(dims)))
    elif how == "add":
        dims.insert(rng.randrange(len(dims) + 1), rng.choice([1, 2, 3]))
    elif dims:
        i = rng.randrange(len(dims))
        dims[i] = {"double": dims[i] * 2, "zero": 0, "negative": -dims[i] or -1,
                   "huge": rng.choice(EDGE_INTS[2:])}.get(how, dims[i])
    case.note(f"initializer {tensor.name!r} dims {list(tensor.dims)} -> {dims} ({how})")
    del tensor.dims[:]
    tensor.dims.extend(dims)
    return save_model(case, model)


@mutator("onnx-proto")
def initializer_data_type(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    tensor = pick_initializer(rng, model)
    new = rng.choice(OTHER_TYPES)
    case.note(f"initializer {tensor.name!r} data_type {tensor.data_type} -> {new}")
    tensor.data_type = new
    return save_model(case, model)


@mutator("onnx-proto")
def initializer_type_99(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    tensor = pick_initializer(rng, model, min_elements=0)
    case.note(f"initializer {tensor.name!r} data_type -> 99 (no such type)")
    tensor.data_type = 99
    return save_model(case, model)


@mutator("onnx-proto")
def raw_data_size(rng: random.Random, case: Case) -> Case:
    case.use_seed(rng.choice(["cnn", "mlp", "two"]))
    model = load_model(case)
    tensor = pick_initializer(rng, model)
    raw = tensor.raw_data
    if rng.random() < 0.5:
        tensor.raw_data = raw + rng.randbytes(rng.choice([1, 3, 4, 64, 4096]))
    else:
        tensor.raw_data = raw[:rng.randrange(len(raw))]
    case.note(f"initializer {tensor.name!r} raw_data {len(raw)} -> {len(tensor.raw_data)} bytes")
    return save_model(case, model)


@mutator("onnx-proto")
def typed_data_count(rng: random.Random, case: Case) -> Case:
    """Weights moved from raw_data to float_data with one value too many or too few."""
    case.use_seed(rng.choice(["cnn", "mlp", "two"]))
    model = load_model(case)
    tensor = pick_initializer(rng, model)
    values = list(struct.unpack(f"<{len(tensor.raw_data) // 4}f", tensor.raw_data))
    values = values + [0.5] if rng.random() < 0.5 else values[:-1]
    tensor.ClearField("raw_data")
    tensor.float_data.extend(values)
    case.note(f"initializer {tensor.name!r} as float_data with {len(values)} values for dims {list(tensor.dims)}")
    return save_model(case, model)


def _set_weights(rng: random.Random, case: Case, values: list[float]) -> Case:
    """Put `values` at 1..3 random places of a random weight tensor (not a scalar:
    Clip's max may well be +inf)."""
    case.use_seed(rng.choice(["cnn", "mlp", "two"]))
    model = load_model(case)
    tensor = pick_initializer(rng, model, min_elements=2)
    weights = list(struct.unpack(f"<{len(tensor.raw_data) // 4}f", tensor.raw_data))
    bad = rng.choice(values)
    spots = sorted({rng.randrange(len(weights)) for _ in range(rng.randint(1, 3))})
    for spot in spots:
        weights[spot] = bad
    tensor.raw_data = struct.pack(f"<{len(weights)}f", *weights)
    case.note(f"initializer {tensor.name!r} values at {spots} set to {bad}")
    return save_model(case, model)


@mutator("onnx-proto", must_reject=True)
def nonfinite_weights(rng: random.Random, case: Case) -> Case:
    return _set_weights(rng, case, [float("nan"), float("inf"), float("-inf")])


@mutator("onnx-proto")
def extreme_weights(rng: random.Random, case: Case) -> Case:
    return _set_weights(rng, case, [3e38, -3e38, 1e-45])


@mutator("onnx-proto")
def graph_input_dims(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    value = rng.choice(list(model.graph.input))
    dims = value.type.tensor_type.shape.dim
    how = rng.choice(["edge", "edge", "symbolic", "rank+", "rank-", "no-shape"])
    if how == "edge":
        dim = rng.choice(list(dims))
        dim.dim_value = rng.choice(EDGE_INTS + [100_000_000])
    elif how == "symbolic":
        rng.choice(list(dims)).dim_param = rng.choice(["batch", "", "N M", "T"])
    elif how == "rank+":
        for _ in range(rng.choice([1, 8, 20])):
            dims.add().dim_value = 1
    elif how == "rank-" and len(dims) > 1:
        del dims[0]
    else:
        value.type.tensor_type.ClearField("shape")
    case.note(f"graph input {value.name!r} shape ({how}) -> {onnx.helper.printable_type(value.type)}")
    return save_model(case, model)


@mutator("onnx-proto")
def graph_input_type(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    value = rng.choice(list(model.graph.input))
    new = rng.choice([TensorProto.INT64, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.UINT8,
                      TensorProto.STRING, 99, 0])
    value.type.tensor_type.elem_type = new
    case.note(f"graph input {value.name!r} elem_type -> {new}")
    return save_model(case, model)


@mutator("onnx-proto")
def invalid_utf8_name(rng: random.Random, case: Case) -> Case:
    """A node, tensor, graph or input name whose bytes are not UTF-8 (written raw)."""
    model = load_model(case)
    where = rng.choice(["node", "tensor", "graph", "input", "output", "domain"])
    graph = model.graph
    if where == "node":
        rng.choice(list(graph.node)).name = UTF8_PLACEHOLDER
    elif where == "graph":
        graph.name = UTF8_PLACEHOLDER
    elif where == "domain":
        rng.choice(list(graph.node)).domain = UTF8_PLACEHOLDER
    else:
        pool = {"tensor": [t for n in graph.node for t in n.output if t not in {o.name for o in graph.output}],
                "input": [i.name for i in graph.input], "output": [o.name for o in graph.output]}[where]
        _rename_everywhere(model, rng.choice(pool), UTF8_PLACEHOLDER)
    raw = bad_utf8(rng, len(UTF8_PLACEHOLDER))
    case.note(f"{where} name set to the non-UTF-8 bytes {raw!r}")
    return save_model(case, model, {UTF8_PLACEHOLDER.encode(): raw})


def _rename_everywhere(model: onnx.ModelProto, old: str, new: str) -> None:
    graph = model.graph
    for node in graph.node:
        node.input[:] = [new if t == old else t for t in node.input]
        node.output[:] = [new if t == old else t for t in node.output]
    for item in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if item.name == old:
            item.name = new


@mutator("onnx-proto")
def no_outputs(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    del model.graph.output[:]
    case.note("removed every graph output")
    return save_model(case, model)


@mutator("onnx-proto")
def broken_reference(rng: random.Random, case: Case) -> Case:
    """A graph output, node input or initializer that names what is not there, or a cycle."""
    model = load_model(case)
    graph = model.graph
    how = rng.choice(["output", "input", "initializer", "cycle", "duplicate", "empty-name"])
    node = rng.choice(list(graph.node))
    if how == "output":
        graph.output[0].name = "no_such_tensor"
    elif how == "input":
        node.input[rng.randrange(len(node.input))] = "no_such_tensor"
    elif how == "initializer" and len(graph.initializer):
        del graph.initializer[rng.randrange(len(graph.initializer))]
    elif how == "cycle":
        graph.node[0].input[0] = graph.node[-1].output[0]
    elif how == "duplicate":
        node.output[0] = graph.node[0].output[0]
    else:
        node.output[0] = ""
    case.note(f"broken reference ({how}) at node {node.name!r}")
    return save_model(case, model)


@mutator("onnx-proto")
def node_op(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    node = rng.choice(list(model.graph.node))
    how = rng.choice(["unknown-op", "domain", "empty-op", "no-nodes"])
    if how == "unknown-op":
        node.op_type = rng.choice(["FancyOp", "conv", "Conv2D", "Relu6"])
    elif how == "domain":
        node.domain = rng.choice(["com.bogus", "ai.onnx.ml", "com.microsoft"])
    elif how == "empty-op":
        node.op_type = ""
    else:
        del model.graph.node[:]
    case.note(f"node {node.name!r}: {how} -> op {node.op_type!r} domain {node.domain!r}")
    return save_model(case, model)


@mutator("onnx-proto")
def versions(rng: random.Random, case: Case) -> Case:
    model = load_model(case)
    how = rng.choice(["opset", "opset", "no-opset", "ir_version", "opset-domain"])
    if how == "opset":
        model.opset_import[0].version = rng.choice([0, 1, 6, 99, -1, 1 << 40])
    elif how == "no-opset":
        del model.opset_import[:]
    elif how == "ir_version":
        model.ir_version = rng.choice([0, 1, 99, -1])
    else:
        model.opset_import[0].domain = "com.bogus"
    case.note(f"versions ({how}): ir_version {model.ir_version}, "
              f"opsets {[(o.domain, o.version) for o in model.opset_import]}")
    return save_model(case, model)
