"""remove-identity, fold-constants, fold-batchnorm, fuse-bias and fuse-activation on
the MLPerf Tiny models: each pass alone and all in a row keep the graph valid and
its output on the reference sample (float: relative error <= 1e-4 against the
unoptimized graph; QDQ: <= 1 LSB)."""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import pytest

from nnc.frontend.onnx_loader import load
from nnc.interpreter import run
from nnc.passmanager import PassManager, parse_pipeline

from mlperf import MODEL_NAMES, MODELS_DIR, requires_models


CHAIN = "remove-identity,fold-constants,fold-batchnorm,fuse-bias,fuse-activation"
PIPELINES = [*CHAIN.split(","), CHAIN]


@functools.cache
def reference(name: str):
    """(graph, input feeds, output) of the unoptimized model on its sample."""
    graph = load(MODELS_DIR / f"{name}.onnx")
    feeds = {graph.inputs[0]: np.load(MODELS_DIR / f"{name}.io.npz")["input"]}
    return graph, feeds, run(graph, feeds)[graph.outputs[0]]


def optimize(name: str, pipeline: str):
    graph, feeds, want = reference(name)
    after = PassManager(parse_pipeline(pipeline), verify_each=True).run(graph.copy())
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    return after, run(after, feeds)[after.outputs[0]], want


@requires_models
@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_outputs_unchanged(name, pipeline):
    _, got, want = optimize(name, pipeline)
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind == "f":
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    else:
        assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1


@requires_models
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_layers_are_fused(name):
    graph = reference(name)[0]
    after = optimize(name, CHAIN)[0]
    before, now = Counter(n.op for n in graph.nodes()), Counter(n.op for n in after.nodes())
    assert "MatMul" not in now and now["Gemm"] == before["MatMul"]  # dense layers are one Gemm each
    assert now["DequantizeLinear"] == before["DequantizeLinear"]  # integer weights are kept
    for node in after.nodes():
        if node.op == "Relu":
            producer = after.producer(node.inputs[0])
            assert producer is None or producer.op not in ("Conv", "Gemm") or after.uses(node.inputs[0]) > 1
