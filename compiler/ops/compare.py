"""Comparisons: `Greater`, `Less`, `GreaterOrEqual`, `LessOrEqual`, `Equal` of
two tensors of one numeric type, numpy broadcasting, a bool result.

They run in the reference (float truth and shape folding of constants); the
integer targets have no rule for a comparison of run-time values, and refuse
one that canonicalize does not fuse away (passes/fuse_softplus.py removes the
threshold PyTorch's dynamo writes around Softplus).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from .elementwise import broadcast_shape
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

COMPARISONS = {"Greater": np.greater, "Less": np.less, "GreaterOrEqual": np.greater_equal,
               "LessOrEqual": np.less_equal, "Equal": np.equal}


class _Compare(OpDef):
    @staticmethod
    def infer(attrs, inputs):
        a, b = inputs
        if a.dtype != b.dtype:
            raise ShapeError(f"operand types differ: {a.dtype} vs {b.dtype}")
        return [TensorType("bool", broadcast_shape(a.shape, b.shape))]


def _register(name: str, fn) -> None:
    def evaluate(attrs, xs):
        return [np.asarray(fn(xs[0], xs[1]), dtype=bool)]

    register_op(type(name, (_Compare,), {"name": name, "evaluate": staticmethod(evaluate)}))


for _name, _fn in COMPARISONS.items():
    _register(_name, _fn)


@lowers(*COMPARISONS)
def _lower_compare(n: OnnxNode):
    return Lowered(n.op_type)
