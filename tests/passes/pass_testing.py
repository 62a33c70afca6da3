"""Shared helpers of the pass tests: build small graphs, run a pipeline on a copy
and check the result is valid, keeps the interface and computes the same outputs."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from nnc.frontend.onnx_loader import lower_model
from nnc.interpreter import run
from nnc.ir import Graph
from nnc.passmanager import parse_pipeline
from nnc.verifier import verify


def randn(rng: np.random.Generator, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def feeds_for(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs: standard normal for f32 inputs, int8 over its full range otherwise."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        if t.dtype == "f32":
            out[name] = rng.standard_normal(t.shape).astype(np.float32)
        else:
            out[name] = rng.integers(-128, 128, t.shape).astype(np.int8)
    return out


def build(nodes, inputs: dict, outputs: dict, constants: dict) -> Graph:
    """IR graph of an opset-17 model; inputs/outputs map f32 tensors to shapes."""
    model = helper.make_model(helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [numpy_helper.from_array(v, n) for n, v in constants.items()]),
        opset_imports=[helper.make_opsetid("", 17)])
    return lower_model(model, {})


def text_graph(*lines: str) -> str:
    """Text IR of a graph named "g" with the given statement lines."""
    return 'graph "g" {\n' + "".join(f"  {line}\n" for line in lines) + "}\n"


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes()]


def apply(graph: Graph, pipeline: str, *, exact: bool = True, tolerance: float = 1e-6,
          input_scale: float = 1.0, seed: int = 1) -> Graph:
    """Run `pipeline` on a copy of `graph`; check the result verifies, keeps the
    interface, and gives bit-identical outputs (`exact`) or outputs within
    `tolerance` (relative and absolute) on seeded random inputs."""
    after = graph.copy()
    for p in parse_pipeline(pipeline):
        after = p.run(after)
    verify(after)
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    rng = np.random.default_rng(seed)
    feeds = {n: randn(rng, *graph.tensor(n).shape) * input_scale for n in graph.inputs}
    want, got = run(graph, feeds), run(after, feeds)
    for name in want:
        if exact:
            assert got[name].dtype == want[name].dtype and got[name].tobytes() == want[name].tobytes()
        else:
            np.testing.assert_allclose(got[name], want[name], rtol=tolerance, atol=tolerance)
    return after
