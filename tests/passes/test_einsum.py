"""einsum_to_matmul (a canonicalize rule): an Einsum of the matrix-multiply
kind becomes Transpose/Reshape/MatMul with the same values, and compiles on
every target; a permutation becomes a Transpose; other equations stay."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import nnc
from nnc.interpreter import run

from pass_testing import apply, build, ops

CASES = [("bhqd,bhkd->bhqk", [1, 2, 5, 4], [1, 2, 6, 4], [1, 2, 5, 6]),  # attention scores
         ("bhqk,bhkd->bhqd", [1, 2, 5, 6], [1, 2, 6, 4], [1, 2, 5, 4]),  # attention values
         ("bi,bj->bij", [2, 3], [2, 4], [2, 3, 4]),                       # outer product (bilinear pooling)
         ("nct,cd->ndt", [1, 3, 7], [3, 5], [1, 5, 7])]                  # a 1x1 conv written as einsum


@pytest.mark.parametrize("equation, a, b, out", CASES)
def test_matmul_kind_einsum_becomes_a_matmul(equation, a, b, out):
    before = build([helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)], {"a": a, "b": b},
                   {"y": out}, {})
    after = apply(before, "canonicalize", exact=False)
    assert "Einsum" not in ops(after) and "MatMul" in ops(after)
    rng = np.random.default_rng(1)
    feeds = {"a": rng.standard_normal(a).astype(np.float32), "b": rng.standard_normal(b).astype(np.float32)}
    np.testing.assert_allclose(run(after, feeds)["y"], np.einsum(equation, feeds["a"], feeds["b"]), rtol=1e-5,
                               atol=1e-5)


def test_permutation_is_a_transpose_and_other_forms_stay():
    perm = build([helper.make_node("Einsum", ["a"], ["y"], equation="abc->cab")], {"a": [2, 3, 4]},
                 {"y": [4, 2, 3]}, {})
    assert ops(apply(perm, "canonicalize", exact=False)) == ["Transpose"]
    diagonal = build([helper.make_node("Einsum", ["a"], ["y"], equation="ii->i")], {"a": [3, 3]}, {"y": [3]}, {})
    assert ops(apply(diagonal, "canonicalize", exact=False)) == ["Einsum"]


@pytest.mark.parametrize("target", ["c", "az-sim", "onnx"])
def test_einsum_attention_scores_compile(target, tmp_path):
    equation, a, b, out = CASES[0]
    graph = helper.make_graph([helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)], "scores",
                              [helper.make_tensor_value_info("a", 1, a), helper.make_tensor_value_info("b", 1, b)],
                              [helper.make_tensor_value_info("y", 1, out)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "e.onnx")
    rng = np.random.default_rng(2)
    calib = {"a": rng.standard_normal([16, *a]).astype(np.float32), "b": rng.standard_normal([16, *b]).astype(np.float32)}
    result = nnc.compile(tmp_path / "e.onnx", target, tmp_path / "out", calib=calib)
    assert result.report["verification"]["vs_float"]["cosine"] > 0.999
