"""Malformed model files: every one ends in one `nnc: error:` line, exit 2, and
no output folder (issue 10). Each case builds its model with onnx.helper (bytes
patched where protobuf itself would refuse to write them) and runs the CLI in
this process on `compile --target ir`, `compile --target az-sim` and `inspect`.
Sizes are far past the machine's memory, so that a check that stopped working
shows as a MemoryError, not as a slow test."""

from __future__ import annotations

import contextlib
import io
import os
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnc.cli import run_cli
from nnc.errors import ShapeError
from nnc.frontend.onnx_loader import lower_model

HUGE = 1 << 31
COMMANDS = {"ir": ["compile", "--target", "ir"], "az-sim": ["compile", "--target", "az-sim"], "inspect": ["inspect"]}


# -- model builders ------------------------------------------------------------------
def _value(name, shape, elem_type=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem_type, shape)


def _model(nodes, inputs, outputs, inits=(), value_info=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _add(weights=None):
    """y = x + w over 4 floats."""
    w = numpy_helper.from_array(np.ones(4, np.float32) if weights is None else weights, "w")
    return _model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [_value("x", [4])],
                  [_value("y", [4])], [w])


def _conv(x=(1, 4, 8, 8), w=(4, 4, 3, 3), weights=None, **attrs):
    data = np.full(w, 0.1, np.float32) if weights is None else weights
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)
    return _model([node], [_value("x", list(x))], [_value("y", ["n", "c", "h", "w"])],
                  [numpy_helper.from_array(data, "w")])


def _clip(low, high=None):
    inits = [numpy_helper.from_array(np.asarray(low, np.float32), "lo")]
    if high is not None:
        inits.append(numpy_helper.from_array(np.asarray(high, np.float32), "hi"))
    inputs = ["x", "lo"] + (["hi"] if high is not None else [])
    return _model([helper.make_node("Clip", inputs, ["y"], name="clip")], [_value("x", [4])], [_value("y", [4])],
                  inits)


def _unary_on(op, x_shape, y_rank=None, **attrs):
    y_shape = [f"d{i}" for i in range(y_rank or len(x_shape))]
    return _model([helper.make_node(op, ["x"], ["y"], name="node", **attrs)], [_value("x", x_shape)],
                  [_value("y", y_shape)])


def _with_constant(op, value, y_rank, x_shape=(1, 1, 4, 4), extra=()):
    """op(x, *extra, c) with a constant second input c (Reshape, Expand, Tile, Pad, Resize)."""
    inits = [numpy_helper.from_array(np.asarray(value), "c")]
    node = helper.make_node(op, ["x", *extra, "c"], ["y"], name="node")
    return _model([node], [_value("x", list(x_shape))], [_value("y", [f"d{i}" for i in range(y_rank)])], inits)


def _patched(model, old: bytes, new: bytes) -> bytes:
    data = model.SerializeToString()
    assert data.count(old) == 1, old
    return data.replace(old, new)


def _renamed_node():
    model = _add()
    model.graph.node[0].name = "NODE"
    return _patched(model, b"NODE", b"\xff\xfeDE")


def _renamed_tensor():
    model = _add()
    for item in (model.graph.node[0].input, model.graph.node[0].output):
        item[:] = ["TENSOR" if name == "x" else name for name in item]
    model.graph.input[0].name = "TENSOR"
    return model.SerializeToString().replace(b"TENSOR", b"TE\xc3(OR")


def _renamed_graph():
    model = _add()
    model.graph.name = "GRAPH"
    return _patched(model, b"GRAPH", b"GR\x80PH")


def _edited(edit, model=None):
    model = model or _add()
    edit(model)
    return model


def _as_float_data(tensor, values):
    tensor.ClearField("raw_data")
    tensor.float_data.extend(values)


def _set_dims(tensor, dims):
    del tensor.dims[:]
    tensor.dims.extend(dims)


def _abs_then_expand():
    """Expand(ones, Abs(shape)) feeding an Add: the Expand folds in the round its
    shape does, before graph-level shape inference knows its output."""
    inits = [numpy_helper.from_array(np.array([-HUGE, 1 << 10], np.int64), "s"),
             numpy_helper.from_array(np.ones(1 << 10, np.float32), "one")]
    nodes = [helper.make_node("Abs", ["s"], ["s2"], name="abs"),
             helper.make_node("Expand", ["one", "s2"], ["c"], name="expand"),
             helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    return _model(nodes, [_value("x", [1 << 10])], [_value("y", ["a", "b"])], inits)


# name -> (builder, fragment of the error line)
CASES = {
    "utf8-node-name": (_renamed_node, "node #0 (Add): field 'name' is not valid UTF-8"),
    "utf8-tensor-name": (_renamed_tensor, "field 'input' is not valid UTF-8"),
    "utf8-graph-name": (_renamed_graph, "the graph: field 'name' is not valid UTF-8"),
    "utf8-string-attribute": (lambda: _patched(_conv(auto_pad="NOTSET"), b"NOTSET", b"NOTS\xffT"),
                              "attribute 'auto_pad': the value is not valid UTF-8"),
    "raw-data-longer": (lambda: _edited(lambda m: setattr(m.graph.initializer[0], "raw_data", bytes(24))),
                        "initializer 'w': raw_data holds 24 bytes, but dims [4] of FLOAT need exactly 16"),
    "raw-data-shorter": (lambda: _edited(lambda m: setattr(m.graph.initializer[0], "raw_data", bytes(12))),
                         "raw_data holds 12 bytes"),
    "float-data-count": (lambda: _edited(lambda m: _as_float_data(m.graph.initializer[0], [1.0] * 5)),
                         "initializer 'w': float_data holds 5 values, but dims [4] of FLOAT need exactly 4"),
    "data-type-99": (lambda: _edited(lambda m: setattr(m.graph.initializer[0], "data_type", 99)),
                     "initializer 'w': data type 99 is not an ONNX data type"),
    "data-type-changed": (lambda: _edited(lambda m: setattr(m.graph.initializer[0], "data_type", TensorProto.DOUBLE)),
                          "dims [4] of DOUBLE need exactly 32"),
    "data-type-undefined": (lambda: _edited(lambda m: setattr(m.graph.initializer[0], "data_type", 0)),
                            "initializer 'w': the tensor has no data type"),
    "input-type-99": (lambda: _edited(lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", 99)),
                      "graph input 'x' declares element type 99"),
    "value-info-type-99": (lambda: _edited(lambda m: m.graph.value_info.append(_value("y", [4], 99))),
                           "value 'y' declares element type 99"),
    "no-outputs": (lambda: _edited(lambda m: m.graph.ClearField("output")), "the graph has no outputs"),
    "initializer-dims-huge": (lambda: _edited(lambda m: _set_dims(m.graph.initializer[0], [HUGE, HUGE])),
                              "initializer 'w': dims: shape [2147483648, 2147483648]"),
    "initializer-dims-negative": (lambda: _edited(lambda m: _set_dims(m.graph.initializer[0], [-4])),
                                  "negative dimension"),
    "conv-group-0": (lambda: _conv(group=0), "Conv node 'conv': group must be a positive divisor"),
    "conv-group-negative": (lambda: _conv(group=-1), "group must be a positive divisor"),
    "conv-group-not-dividing": (lambda: _conv(group=3), "do not fit 4 input channels, group 3"),
    "conv-negative-strides": (lambda: _conv(strides=[-1, 1]), "strides"),
    "conv-negative-dilations": (lambda: _conv(dilations=[1, -2]), "dilations"),
    "conv-negative-pads": (lambda: _conv(pads=[-1, 0, 0, 0]), "pads"),
    "conv-kernel-too-large": (lambda: _conv(w=(4, 4, 9, 9)), "the kernel does not fit the padded input"),
    "conv-pads-huge": (lambda: _conv(pads=[HUGE, 0, 0, 0]), "past nnc's limit"),
    "conv-pads-huge-strided": (lambda: _conv(pads=[HUGE, 0, HUGE, 0], strides=[HUGE, 1]),
                               "pads [2147483648, 0, 2147483648, 0] must stay within 67,108,864"),
    "conv-auto-pad-and-pads": (lambda: _conv(auto_pad="SAME_UPPER", pads=[1, 1, 1, 1]),
                               "auto_pad 'SAME_UPPER' and explicit pads [1, 1, 1, 1] exclude each other"),
    "conv-nan-weight": (lambda: _conv(weights=np.where(np.arange(144).reshape(4, 4, 3, 3) == 40, np.nan,
                                                       0.1).astype(np.float32)),
                        "constant 'w' (read by Conv node 'conv') holds nan at index [1, 0, 1, 1]"),
    "add-inf-weight": (lambda: _add(np.array([1, 1, np.inf, 1], np.float32)),
                       "constant 'w' (read by Add node 'add') holds inf at index [2]"),
    "add-weight-3e38": (lambda: _add(np.array([1, -3e38, 1, 1], np.float32)),
                        "constant 'w' (read by Add node 'add') holds -3e+38 at index [1]; weights must be finite "
                        "numbers within ±1e+15"),
    "constant-node-nan": (lambda: _model([helper.make_node("Constant", [], ["c"], name="const", value=numpy_helper.from_array(
        np.array([1, np.nan], np.float32))), helper.make_node("Mul", ["x", "c"], ["y"], name="mul")],
        [_value("x", [2])], [_value("y", [2])]), "constant 'c' (read by Mul node 'mul') holds nan at index [1]"),
    "gemm-alpha-nan": (lambda: _model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=float("nan"))],
                                      [_value("x", [1, 4])], [_value("y", [1, 4])],
                                      [numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")]),
                       "Gemm node 'fc': attribute 'alpha' holds nan"),
    "clip-min-nan": (lambda: _clip(np.nan), "constant 'lo' (read by Clip node 'clip') holds nan"),
    "clip-max-nan": (lambda: _clip(0.0, np.nan), "constant 'hi' (read by Clip node 'clip') holds nan"),
    "clip-max-minus-inf": (lambda: _clip(0.0, -np.inf), "Clip node 'clip': max is -inf; a bound must be a number"),
    "clip-min-two-elements": (lambda: _clip([0.0, 1.0]), "Clip node 'clip': min must be a scalar, got shape [2]"),
    "input-dim-2^31": (lambda: _unary_on("Relu", [HUGE, 4]), "input 'x': shape [2147483648, 4]"),
    "input-dim-2^62": (lambda: _unary_on("Relu", [1 << 62, 4]), "input 'x': shape [4611686018427387904, 4]"),
    "input-elements-over-limit": (lambda: _unary_on("Relu", [1 << 14, 1 << 13]), "134,217,728 elements"),
    "input-rank-20": (lambda: _unary_on("Relu", [1] * 20), "input 'x': rank 20 passes nnc's limit of 8"),
    "maxpool-pads-2^31": (lambda: _unary_on("MaxPool", [1, 1, 4, 4], kernel_shape=[2, 2], pads=[HUGE, 0, 0, 0]),
                          "(output of MaxPool node 'node')"),
    "reshape-impossible": (lambda: _with_constant("Reshape", np.array([3, 5]), 2, x_shape=[4]),
                           "cannot reshape [4] to [3, 5]"),
    "reshape-huge": (lambda: _with_constant("Reshape", np.array([HUGE, HUGE]), 2, x_shape=[4]), "past nnc's limit"),
    "expand-huge": (lambda: _with_constant("Expand", np.array([HUGE, 4]), 2, x_shape=[4]),
                    "tensor 'y' (output of Expand node 'node'): shape [2147483648, 4]"),
    "tile-huge": (lambda: _with_constant("Tile", np.array([HUGE]), 1, x_shape=[4]), "(output of Tile node 'node')"),
    "pad-huge": (lambda: _with_constant("Pad", np.array([0, HUGE]), 1, x_shape=[4]), "(output of Pad node 'node')"),
    "resize-scales-1e9": (lambda: _with_constant("Resize", np.array([1, 1, 1e9, 1e9], np.float32), 4, extra=[""]),
                          "(output of Resize node 'node'): shape [1, 1, 4000000000, 4000000000]"),
    "gather-axis-absurd": (lambda: _model([helper.make_node("Gather", ["x", "i"], ["y"], name="g", axis=1000)],
                                          [_value("x", [4])], [_value("y", ["a"])],
                                          [numpy_helper.from_array(np.array([0]), "i")]), "axis"),
    "slice-step-0": (lambda: _model([helper.make_node("Slice", ["x", "b", "e", "a", "s"], ["y"], name="s")],
                                    [_value("x", [4])], [_value("y", ["a"])],
                                    [numpy_helper.from_array(np.array([v]), n) for n, v in
                                     (("b", 0), ("e", 4), ("a", 0), ("s", 0))]), "step"),
    "folded-expand-huge": (_abs_then_expand, "Expand node 'expand': output 'c': shape [2147483648, 1024]"),
}


# -- external data ---------------------------------------------------------------------
def _external(entries, data: bytes | None = bytes(16), dims=None):
    """The Add model with w's 16 bytes in w.bin (unless data is None) and these
    entries (a dict, or (key, value) pairs where a key repeats)."""
    def build(folder):
        model = _add()
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        if dims is not None:
            _set_dims(tensor, dims)
        for key, value in entries.items() if isinstance(entries, dict) else entries:
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        if data is not None:
            (folder / "w.bin").write_bytes(data)
        return model
    return build


def _linked(target: str, location="link.bin"):
    def build(folder):
        os.symlink(target, folder / location)
        return _external({"location": location}, None)(folder)
    return build


def _loop(folder):
    os.symlink("b.bin", folder / "a.bin")
    os.symlink("a.bin", folder / "b.bin")
    return _external({"location": "a.bin"}, None)(folder)


def _directory(folder):
    (folder / "sub").mkdir()
    return _external({"location": "sub"}, None)(folder)


EXTERNAL_CASES = {
    "offset-negative": (_external({"location": "w.bin", "offset": "-4"}), "offset '-4' is not a decimal byte count"),
    "offset-huge": (_external({"location": "w.bin", "offset": str(1 << 62)}), "reaches past the end of the file"),
    "offset-not-a-number": (_external({"location": "w.bin", "offset": "abc"}), "offset 'abc' is not a decimal"),
    "offset-arabic-digit": (_external({"location": "w.bin", "offset": "\u0663"}), "is not a decimal byte count"),
    "length-negative": (_external({"location": "w.bin", "length": "-1"}), "length '-1' is not a decimal"),
    "length-huge": (_external({"location": "w.bin", "length": str(1 << 62)}), "differs from the 16 bytes"),
    "length-float": (_external({"location": "w.bin", "length": "1e3"}), "length '1e3' is not a decimal"),
    "past-the-end": (_external({"location": "w.bin", "offset": "8", "length": "16"}),
                     "offset 8 + 16 bytes reaches past the end of the file (16 bytes)"),
    "file-too-short": (_external({"location": "w.bin"}, bytes(8)), "reaches past the end of the file (8 bytes)"),
    "location-nul": (_external({"location": "w.bin\0x"}), "names no file"),
    "location-missing": (_external({"offset": "0"}), "location '' names no file"),
    "location-absolute": (_external({"location": "/etc/hostname"}), "is absolute"),
    "location-escapes": (_external({"location": "../w.bin"}), "is outside the model's folder"),
    "location-no-file": (_external({"location": "nope.bin"}), "is missing or not a regular file"),
    "location-directory": (_directory, "'sub' is missing or not a regular file"),
    "symlink-loop": (_loop, "symbolic"),
    "symlink-outside": (_linked("/etc/hostname"), "is outside the model's folder"),
    "unknown-key": (_external({"location": "w.bin", "bogus": "1"}), "unknown external data key 'bogus'"),
    "repeated-key": (_external([("location", "w.bin"), ("location", "../secret.bin")]),
                     "external data key 'location' appears twice"),
    "dims-huge": (_external({"location": "w.bin"}, dims=[1 << 40]), "past nnc's limit"),
}


# -- running the CLI -------------------------------------------------------------------
def _run(tmp_path, model, command: str):
    path = tmp_path / "m.onnx"
    path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    before = sorted(os.listdir(tmp_path))
    args = [*COMMANDS[command], str(path)] + (["-o", str(tmp_path / "out")] if command != "inspect" else [])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(args)
    return SimpleNamespace(exit_code=code, stdout=out.getvalue(), stderr=err.getvalue()), before


def _assert_refused(tmp_path, result, before, fragment: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("nnc: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == before  # no output folder, no staging left over


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_malformed_model_refused(tmp_path, case, command):
    build, fragment = CASES[case]
    result, before = _run(tmp_path, build(), command)
    _assert_refused(tmp_path, result, before, fragment)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", EXTERNAL_CASES)
def test_malformed_external_data_refused(tmp_path, case, command):
    build, fragment = EXTERNAL_CASES[case]
    result, before = _run(tmp_path, build(tmp_path), command)
    _assert_refused(tmp_path, result, before, fragment)


# -- what must keep loading ----------------------------------------------------------
def test_external_data_with_offset_and_length_loads(tmp_path):
    data = np.arange(4, dtype=np.float32).tobytes()
    model = _external({"location": "w.bin", "offset": "4", "length": "16", "checksum": "ignored"},
                      bytes(4) + data + bytes(8))(tmp_path)
    result, _ = _run(tmp_path, model, "inspect")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("model", [_clip(0.0, np.inf), _clip(-np.inf, 6.0), _add(np.array([0, 1, 2, 3], np.float32)),
                                   _add(np.array([np.finfo(np.float32).min], np.float32))],
                         ids=["clip-max-inf", "clip-min-minus-inf", "finite-weights", "lone-lowest-float"])
def test_valid_models_still_load(model):
    graph = lower_model(model, {})
    assert graph.outputs == ["y"]


def test_fold_guard_names_the_node():
    """The fold guard refuses before the evaluator allocates (2^41 elements here)."""
    with pytest.raises(ShapeError, match="Expand node 'expand': output 'c'"):
        lower_model(_abs_then_expand(), {})


@pytest.mark.parametrize("target", ["ir", "c", "az-sim", "onnx"])
def test_an_empty_output_compiles_and_verifies(tmp_path, target):
    """Slice past the end: ONNX allows an output with no elements, and the
    verification's metrics must not reduce over it."""
    import warnings

    import nnc

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Slice", ["r", "start", "end"], ["y"])], "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [0, 4])],
        [numpy_helper.from_array(np.array([1], np.int64), "start"), numpy_helper.from_array(np.array([3], np.int64), "end")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "e.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = nnc.compile(tmp_path / "e.onnx", target, tmp_path / "out", quantize=target != "ir",
                             calib={"x": np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 1, 4)})
    assert result.report["verification"]["vs_float"]["max_abs_diff"] == 0
    assert result.run(np.ones((2, 1, 4), np.float32))["y"].shape == (2, 0, 4)
