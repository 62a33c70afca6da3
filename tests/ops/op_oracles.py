"""Oracles for op tests: `run_nnc` lowers one ONNX node and runs nnc's reference
semantics on it, `run_onnx` runs the same node through onnx's ReferenceEvaluator
and `run_ort` through onnxruntime (for the corners the reference evaluator gets
wrong). Imported by module name (tests/ops has no __init__.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
from onnx import helper
from onnx.reference import ReferenceEvaluator

from nnc import dtypes
from nnc.ir import TensorType
from nnc.ops import OnnxNode, get_op, lowering

OPSET = 22
ORT_OPSET = 21  # the newest opset onnxruntime runs at IR version 10


def _type(a: np.ndarray) -> TensorType:
    return TensorType(dtypes.from_numpy(a.dtype), a.shape)


def _names(inputs) -> list[str]:
    return ["" if a is None else f"in{i}" for i, a in enumerate(inputs)]


def run_nnc(op_type, inputs, attrs=None, opset=OPSET, outputs=("y",), channels_last=False, **overrides):
    """Outputs of ONNX node `op_type` (None inputs are omitted) as nnc computes
    them; `overrides` replace IR attributes after lowering. With channels_last the
    op runs on channels-last data, transposed in and out here. Checks that `infer`
    predicts what `evaluate` returns."""
    names = _names(inputs)
    node = OnnxNode("node", op_type, names, list(outputs), dict(attrs or {}), opset, {},
                    [None if a is None else _type(a) for a in inputs])
    lowered = lowering(op_type)(node)
    op = get_op(lowered.op)
    ir_attrs = dataclasses.replace(lowered.attrs, **overrides)
    values = dict(zip(names, inputs))
    args = [values[name] if name else None for name in (names if lowered.inputs is None else lowered.inputs)]
    if channels_last:
        ir_attrs = dataclasses.replace(ir_attrs, channels_last=True)
        args[0] = np.ascontiguousarray(np.moveaxis(args[0], 1, -1))
    got = op.evaluate(ir_attrs, args)
    assert [_type(g) for g in got] == op.infer(ir_attrs, [None if a is None else _type(a) for a in args])
    return [np.moveaxis(g, -1, 1) for g in got] if channels_last else got


def _model(op_type, inputs, attrs, opset, outputs):
    names = _names(inputs)
    node = helper.make_node(op_type, names, list(outputs), **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in zip(names, inputs) if n],
        [helper.make_empty_tensor_value_info(o) for o in outputs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return model, {n: a for n, a in zip(names, inputs) if n}


def run_onnx(op_type, inputs, attrs=None, opset=OPSET, outputs=("y",)):
    """Outputs of the same node from onnx.reference.ReferenceEvaluator."""
    model, feeds = _model(op_type, inputs, attrs, opset, outputs)
    return ReferenceEvaluator(model).run(None, feeds)


def run_ort(op_type, inputs, attrs=None, opset=ORT_OPSET, outputs=("y",)):
    """Outputs of the same node from onnxruntime's CPU provider."""
    model, feeds = _model(op_type, inputs, attrs, opset, outputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)

