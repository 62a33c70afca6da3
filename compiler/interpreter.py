"""Reference interpreter: executes any IR graph with the ops' numpy semantics.

It defines correctness for nnc: every backend must reproduce its outputs (bit for
bit on integer graphs). Inputs are checked against the graph's declared input
types; every op result is checked against the tensor type the IR declares, so a
shape-inference bug surfaces here as an IRError instead of a wrong answer.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import dtypes
from .errors import IRError, ShapeError
from .ir import Graph
from .ops import get_op


def run(graph: Graph, inputs: dict[str, np.ndarray],
        observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Execute `graph` on `inputs` (name -> array) and return its outputs.
    `observe(tensor_name, value)` is called for every value computed or fed in."""
    env = {name: t.data for name, t in graph.tensors.items() if t.is_constant}
    env.update(check_inputs(graph, inputs))
    if observe:
        for name in graph.inputs:
            observe(name, env[name])
    for node in graph.nodes():
        args = [env[t] if t else None for t in node.inputs]
        try:
            results = get_op(node.op).evaluate(node.attrs, args)
        except ShapeError as exc:  # a value the op refuses (a constant table, a run-time shape)
            raise ShapeError(f"{node.op} node {node.name!r}: {exc}") from None
        for name, value in zip(node.outputs, results):
            if not name:
                continue
            _check_result(graph, node.name, name, value)
            env[name] = value
            if observe:
                observe(name, value)
    return {name: env[name] for name in graph.outputs}


def check_inputs(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs converted to the declared dtypes; ShapeError on missing or
    unknown names, wrong shapes, or values the declared type cannot hold."""
    missing = [n for n in graph.inputs if n not in inputs]
    extra = [n for n in inputs if n not in graph.inputs]
    if missing or extra:
        raise ShapeError(f"inputs do not match the model: missing {missing}, unknown {extra}; "
                         f"expected {graph.inputs}")
    converted = {}
    for name in graph.inputs:
        tensor = graph.tensors[name]
        value = np.asarray(inputs[name])
        if tuple(value.shape) != tensor.shape:
            raise ShapeError(f"input {name!r} has shape {list(value.shape)}, the model expects {list(tensor.shape)}")
        converted[name] = _convert(name, value, tensor.dtype)
    return converted


def _convert(name: str, value: np.ndarray, dtype: str) -> np.ndarray:
    target = dtypes.to_numpy(dtype)
    if value.dtype == target:
        return value
    if target.kind == "f" and value.dtype.kind in "fiu":
        return value.astype(target)
    if target.kind in "iu" and value.dtype.kind in "iu":
        lo, hi = dtypes.integer_range(dtype)
        if value.size == 0 or (value.min() >= lo and value.max() <= hi):
            return value.astype(target)
    raise ShapeError(f"input {name!r} has dtype {value.dtype}, the model expects {dtype}")


def _check_result(graph: Graph, node: str, name: str, value: np.ndarray) -> None:
    tensor = graph.tensors[name]
    if tuple(value.shape) != tensor.shape or value.dtype != dtypes.to_numpy(tensor.dtype):
        raise IRError(f"node {node!r} produced {value.dtype}{list(value.shape)} for {name!r}, "
                      f"the IR declares {tensor.dtype}{list(tensor.shape)}")
