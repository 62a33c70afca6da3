"""`Einsum` (ONNX opset 12): numpy.einsum of the equation ("bhqd,bhkd->bhqk",
implicit forms and "..." too), in float64, cast back once. Research code writes
attention and bilinear pooling with it.

It runs in the reference; canonicalize writes a two-operand product of the
matrix-multiply kind (every index in both operands and the output is a batch
index of equal extent, every index in both operands alone is summed, every
other index in one operand and the output; explicit, letters only) as
Transpose → Reshape → MatMul → Reshape → Transpose, and a one-operand
permutation as a Transpose (passes/einsum.py), which every target runs. Other
equations (a diagonal, a sum over one operand's own index, broadcasting, "...")
stay in the reference only.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op


@record
class EinsumAttrs:
    """`equation`, as the model gives it ("ab,bc->ac", "ij,jk", "...ii->...i")."""

    equation: str


def parse(equation: str) -> tuple[list[str], str] | None:
    """(the operands' index strings, the output's) of an explicit equation of
    letters; None for any other form."""
    text = equation.replace(" ", "")
    if "->" not in text or "..." in text:
        return None
    left, output = text.split("->")
    operands = left.split(",")
    if not all(term.isalpha() for term in operands) or not (output.isalpha() or output == ""):
        return None
    return operands, output


@register_op
class Einsum(OpDef):
    name = "Einsum"
    Attrs = EinsumAttrs

    @staticmethod
    def infer(attrs, inputs):
        if any(x.dtype not in FLOAT_TYPES for x in inputs):
            raise ShapeError("needs float operands")
        empty = [np.broadcast_to(np.zeros((), np.float32), x.shape) for x in inputs]  # no memory: stride 0
        try:
            shape = np.einsum(attrs.equation.replace(" ", ""), *empty).shape
        except ValueError as exc:
            raise ShapeError(f"equation {attrs.equation!r} does not fit {[list(x.shape) for x in inputs]} ({exc})") \
                from None
        return [TensorType(inputs[0].dtype, tuple(shape))]

    @staticmethod
    def evaluate(attrs, xs):
        return [np.einsum(attrs.equation.replace(" ", ""), *(x.astype(np.float64) for x in xs))
                .astype(xs[0].dtype)]


@lowers("Einsum")
def _lower_einsum(n: OnnxNode):
    equation = n.attr("equation")
    if isinstance(equation, bytes):
        equation = equation.decode()
    return Lowered("Einsum", EinsumAttrs(str(equation)))
