"""Matrix products: `Gemm` (2-D, with bias and a fused clamp) and `MatMul`
(numpy matmul semantics: 1-D operands and broadcast batch axes)."""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .conv import check_act, fused_clamp
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

_MATMUL_TYPES = (*FLOAT_TYPES, "i32", "i64")


@record
class GemmAttrs:
    """y = clamp(alpha * A' @ B' + beta * C) with A' = A.T if trans_a, B' = B.T if
    trans_b; the clamp bounds act_min/act_max are None when unbounded."""

    alpha: float = 1.0
    beta: float = 1.0
    trans_a: bool = False
    trans_b: bool = False
    act_min: float | None = None
    act_max: float | None = None


def _gemm_dims(attrs: GemmAttrs, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int]:
    """(M, N, K) of the product; ShapeError unless A' is [M, K] and B' is [K, N]."""
    if len(a) != 2 or len(b) != 2:
        raise ShapeError(f"Gemm needs 2-D operands, got {list(a)} and {list(b)}")
    m, k = a[::-1] if attrs.trans_a else a
    kb, n = b[::-1] if attrs.trans_b else b
    if k != kb:
        raise ShapeError(f"inner dimensions differ: A' is {[m, k]}, B' is {[kb, n]}")
    return m, n, k


@register_op
class Gemm(OpDef):
    """Inputs A, B and an optional C ("" when absent) that broadcasts to [M, N]."""

    name = "Gemm"
    Attrs = GemmAttrs

    @staticmethod
    def infer(attrs, inputs):
        a, b = inputs[0], inputs[1]
        c = inputs[2] if len(inputs) > 2 else None
        m, n, _ = _gemm_dims(attrs, a.shape, b.shape)
        check_act(attrs)
        if a.dtype not in FLOAT_TYPES or b.dtype != a.dtype or (c is not None and c.dtype != a.dtype):
            raise ShapeError(f"needs operands of one float type, got {[t.dtype for t in inputs if t]}")
        if c is not None and not _broadcasts_to(c.shape, (m, n)):
            raise ShapeError(f"C {list(c.shape)} does not broadcast to {[m, n]}")
        return [TensorType(a.dtype, (m, n))]

    @staticmethod
    def evaluate(attrs, inputs):
        a, b = inputs[0], inputs[1]
        c = inputs[2] if len(inputs) > 2 else None
        a64 = a.astype(np.float64).T if attrs.trans_a else a.astype(np.float64)
        b64 = b.astype(np.float64).T if attrs.trans_b else b.astype(np.float64)
        y = attrs.alpha * (a64 @ b64)
        if c is not None:
            y = y + attrs.beta * c.astype(np.float64)
        return [fused_clamp(y, attrs.act_min, attrs.act_max).astype(a.dtype)]

    @staticmethod
    def macs(attrs, inputs, outputs):
        return math.prod(_gemm_dims(attrs, inputs[0].shape, inputs[1].shape))


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Output shape and inner dimension K of numpy's matmul(a, b)."""
    if not a or not b:
        raise ShapeError("MatMul operands must have rank >= 1")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeError(f"inner dimensions differ: {list(a)} @ {list(b)}")
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        raise ShapeError(f"batch dimensions of {list(a)} and {list(b)} do not broadcast") from None
    rows = (a2[-2],) if len(a) > 1 else ()
    cols = (b2[-1],) if len(b) > 1 else ()
    return (*batch, *rows, *cols), a2[-1]


@register_op
class MatMul(OpDef):
    """numpy.matmul; floats accumulate in f64, integers in i64 (wrapping to the type)."""

    name = "MatMul"

    @staticmethod
    def infer(attrs, inputs):
        a, b = inputs
        if a.dtype not in _MATMUL_TYPES or b.dtype != a.dtype:
            raise ShapeError(f"needs operands of one type of {', '.join(_MATMUL_TYPES)}, "
                             f"got {a.dtype} and {b.dtype}")
        return [TensorType(a.dtype, matmul_shape(a.shape, b.shape)[0])]

    @staticmethod
    def evaluate(attrs, inputs):
        a, b = inputs
        wide = np.float64 if a.dtype.kind == "f" else np.int64
        return [np.asarray(np.matmul(a.astype(wide), b.astype(wide))).astype(a.dtype)]

    @staticmethod
    def macs(attrs, inputs, outputs):
        shape, k = matmul_shape(inputs[0].shape, inputs[1].shape)
        return math.prod(shape) * k


# -- ONNX lowering ------------------------------------------------------------------
@lowers("Gemm")
def _lower_gemm(n: OnnxNode):
    if n.input_types[0].dtype not in FLOAT_TYPES:
        raise n.unsupported(f"{n.input_types[0].dtype} Gemm is not supported (float only)")
    attrs = GemmAttrs(alpha=float(n.attr("alpha", 1.0)), beta=float(n.attr("beta", 1.0)),
                      trans_a=bool(n.attr("transA", 0)), trans_b=bool(n.attr("transB", 0)))
    return Lowered("Gemm", attrs, inputs=(n.inputs + [""] * 3)[:3])


@lowers("MatMul")
def _lower_matmul(n: OnnxNode):
    if n.input_types[0].dtype not in _MATMUL_TYPES:
        raise n.unsupported(f"{n.input_types[0].dtype} MatMul is not supported")
    return Lowered("MatMul")
