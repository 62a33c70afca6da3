"""QMul, QAffine and QAdd with a negative multiplier through the C target, and
the float math kernels (Erf, Gelu, Sqrt, Exp, Log, Neg, Abs, Reciprocal, Sign, Sin, Cos, Softplus,
Softsign, Elu, Selu, Mish, Pow): built
with gcc and clang (-Werror, ASan/UBSan); integers bit-exact with the reference
interpreter over every 8-bit input value, floats within the float parity."""

from __future__ import annotations

import numpy as np
from c_testing import GraphBuilder, check_graph
from elementwise_graphs import corner_graph, corner_samples

from nnc.ops.elementwise import AlphaAttrs, SeluAttrs
from nnc.ops.math_unary import GeluAttrs


def _graph():
    """The integer corner graph plus float math on a third input x."""
    b = GraphBuilder()
    b.graph = corner_graph()
    x = b.input("x", "f32", (3, 40))
    pos = b.op("Abs", [x])
    outs = [b.op(op, [x]) for op in ("Erf", "Exp", "Neg", "Softplus", "Softsign", "Mish", "Sign", "Sin", "Cos")]
    outs += [b.op("Selu", [x], SeluAttrs())]
    outs += [b.op("Log", [b.op("Add", [b.op("Abs", [x]), b.const("eps", np.float32(0.01))])])]
    outs += [b.op("Elu", [x], AlphaAttrs(0.6))]
    outs += [b.op("Gelu", [x], GeluAttrs(mode)) for mode in ("none", "tanh")]
    outs += [b.op("Sqrt", [pos]), b.op("Reciprocal", [b.op("Add", [pos, b.const("one", np.float32(1))])])]
    outs += [b.op("Pow", [x, b.const(f"e{e}", np.float32(e))]) for e in (2.0, 3.0)]
    outs += [b.op("Pow", [pos, b.const("e_row", np.linspace(0.5, 2, 40, dtype=np.float32))])]
    return b.output(*outs)


def test_elementwise_kernels(tmp_path):
    rng = np.random.default_rng(5)
    samples = [s | {"x": (rng.standard_normal((3, 40)) * 2).astype(np.float32)} for s in corner_samples()]
    check_graph(_graph(), tmp_path, samples)
