"""int8 vs float cosine of the transformer building blocks on random data
(docs/numerics.md §11–14): one small onnx.helper model per op, calibrated and
verified on the same 16 standard-normal samples (seed 0), compiled for the `ir`
target with quantization; the cosine is the report's vs_float cosine (all
samples' outputs flattened together). Prints a markdown table.

    python benchmarks/transformer_cosine.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

import nnc

RNG = np.random.default_rng(0)
SAMPLES = 16


def _model(nodes, x_shape, inits, opset=18):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return shape_inference.infer_shapes(model)


def _w(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _n(op, inputs, output="y", **attrs):
    return helper.make_node(op, inputs, [output], **attrs)


def _reduce(op, axes, keepdims=1):
    return _model([_n(op, ["x", "a"], keepdims=keepdims)], [1, 16, 32], {"a": np.array(axes, np.int64)})


def _attention(t=16, d=32):
    inits = {"wq": _w(d, d) / np.float32(np.sqrt(d)), "wk": _w(d, d), "wv": _w(d, d)}
    nodes = [_n("MatMul", ["x", "wq"], "q"), _n("MatMul", ["x", "wk"], "k"), _n("MatMul", ["x", "wv"], "v"),
             _n("Transpose", ["k"], "kt", perm=[0, 2, 1]), _n("MatMul", ["q", "kt"], "s"),
             _n("Softmax", ["s"], "p", axis=-1), _n("MatMul", ["p", "v"])]
    return _model(nodes, [1, t, d], inits)


def _layer_norm():
    inits = {"g": 1 + _w(64, scale=0.2), "b": _w(64, scale=0.2)}
    return _model([_n("LayerNormalization", ["x", "g", "b"], axis=-1)], [1, 16, 64], inits, opset=17)


def _outliers(x: np.ndarray) -> np.ndarray:
    """Two feature channels 20x larger, as transformer activations often have."""
    x = x.copy()
    x[..., :2] *= 20
    return x


CASES = {
    "ReduceMean axis -1 [1,16,32]": (lambda: _reduce("ReduceMean", [-1]), [1, 16, 32], None),
    "ReduceSum axis 1 [1,16,32]": (lambda: _reduce("ReduceSum", [1]), [1, 16, 32], None),
    "ReduceMax axes 0,2 [1,16,32]": (lambda: _reduce("ReduceMax", [0, 2], 0), [1, 16, 32], None),
    "Softmax axis -1 [1,4,16,16]": (lambda: _model([_n("Softmax", ["x"], axis=-1)], [1, 4, 16, 16], {}),
                                    [1, 4, 16, 16], None),
    "Softmax axis 1 [1,4,16,16]": (lambda: _model([_n("Softmax", ["x"], axis=1)], [1, 4, 16, 16], {}),
                                   [1, 4, 16, 16], None),
    "MatMul act x act [1,2,16,32]@[1,2,32,16]": (
        lambda: _model([_n("Reshape", ["x", "s1"], "a"), _n("Transpose", ["a"], "b", perm=[0, 1, 3, 2]),
                        _n("MatMul", ["a", "b"])], [1, 1024], {"s1": np.array([1, 2, 16, 32])}), [1, 1024], None),
    "MatMul x [2,8,16] @ const [2,16,8]": (lambda: _model([_n("MatMul", ["x", "w"])], [2, 8, 16], {"w": _w(2, 16, 8)}),
                                           [2, 8, 16], None),
    "LayerNorm axis -1 [1,16,64]": (_layer_norm, [1, 16, 64], None),
    "LayerNorm, 2 outlier channels x20": (_layer_norm, [1, 16, 64], _outliers),
    "attention block t=16 d=32": (_attention, [1, 16, 32], None),
    "attention block t=64 d=64": (lambda: _attention(64, 64), [1, 64, 64], None),
}


def cosine(build, shape, transform, folder: Path) -> float:
    onnx.save(build(), folder / "m.onnx")
    x = RNG.standard_normal((SAMPLES, *shape)).astype(np.float32)
    np.savez(folder / "s.npz", x=transform(x) if transform else x)
    result = nnc.compile(folder / "m.onnx", target="ir", output_dir=folder / "out", calib=folder / "s.npz",
                         quantize=True)
    return float(result.report["verification"]["vs_float"]["cosine"])


def main() -> int:
    print("| op | int8 vs float cosine |\n|---|---|")
    for name, (build, shape, transform) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            print(f"| {name} | {cosine(build, shape, transform, Path(tmp)):.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
