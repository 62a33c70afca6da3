"""fold_gemm_scale (a canonicalize rule): a constant scalar factor after a Gemm,
or after the Reshape fuse-bias puts behind a Linear over a sequence's rows,
becomes the Gemm's alpha and beta; a per-element factor, a clamped Gemm or an
output read elsewhere keeps its Mul."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from pass_testing import apply, build, ops, randn

RNG = np.random.default_rng(7)


def _graph(factor=np.float32(0.5), x_shape=(2, 6, 8), extra=(), outputs=None, relu=False):
    """x -> MatMul + Add (fuse-bias: Gemm over rows) [-> Relu] -> Mul(factor) -> y."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"])]
    nodes += [helper.make_node("Relu", ["a"], ["r"])] if relu else []
    nodes += [helper.make_node("Mul", ["r" if relu else "a", "k"], ["y"]), *extra]
    out_shape = [*x_shape[:-1], 5]
    constants = {"w": randn(RNG, 8, 5), "b": randn(RNG, 5), "k": factor}
    return build(nodes, {"x": list(x_shape)}, outputs or {"y": out_shape}, constants)


@pytest.mark.parametrize("x_shape", [(2, 6, 8), (6, 8)])
@pytest.mark.parametrize("factor", [0.5, -1.5])
def test_a_scalar_factor_joins_the_gemm(x_shape, factor):
    after = apply(_graph(factor=np.float32(factor), x_shape=x_shape), "fuse-bias,canonicalize", exact=False)
    assert "Mul" not in ops(after)
    (gemm,) = [n for n in after.nodes() if n.op == "Gemm"]
    assert (gemm.attrs.alpha, gemm.attrs.beta) == (factor, factor)


@pytest.mark.parametrize("target", ["c", "az-sim"])
def test_a_folded_factor_compiles_bit_exact(target, tmp_path):
    """Through the quantizer, which folds alpha and beta into the int8 weights."""
    import nnc
    from nnc.verification import synthetic_samples

    graph = apply(_graph(factor=np.float32(-1.5)), "fuse-bias,canonicalize", exact=False)
    (tmp_path / "g.nnir").write_text(nnc.print_ir(graph), encoding="utf-8")
    result = nnc.compile(tmp_path / "g.nnir", target, tmp_path / "out",
                         calib={"x": np.stack([s["x"] for s in synthetic_samples(graph, 8)])})
    assert result.report["verification"]["vs_reference"]["bit_exact"]


def _qdq_gemm():
    """A QDQ model's Gemm on int8 weights (behind DequantizeLinear), then a float Mul."""
    nodes = [helper.make_node("DequantizeLinear", ["wq", "sw"], ["w"]),
             helper.make_node("Gemm", ["x", "w"], ["g"]), helper.make_node("Mul", ["g", "k"], ["y"])]
    constants = {"wq": RNG.integers(-127, 128, (8, 5)).astype(np.int8), "sw": np.float32(0.01),
                 "k": np.float32(0.5)}
    return build(nodes, {"x": [2, 8]}, {"y": [2, 5]}, constants)


@pytest.mark.parametrize("graph", [
    pytest.param(lambda: _graph(factor=randn(RNG, 5)), id="per-column-factor"),
    pytest.param(_qdq_gemm, id="gemm-on-int8-weights"),
    pytest.param(lambda: _graph(relu=True, x_shape=(6, 8)), id="clamped-gemm"),
    pytest.param(lambda: _graph(factor=np.full((1, 1, 1, 1), 0.5, np.float32), outputs={"y": [1, 2, 6, 5]}),
                 id="factor-adds-an-axis"),
    pytest.param(lambda: _graph(extra=[helper.make_node("Relu", ["a"], ["z"])],
                                outputs={"y": [2, 6, 5], "z": [2, 6, 5]}), id="gemm-output-read-twice"),
])
def test_other_products_keep_their_mul(graph):
    assert "Mul" in ops(apply(graph(), "fuse-bias,fuse-activation,canonicalize", exact=False))
