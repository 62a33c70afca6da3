"""C lowering of the element-wise ops of docs/numerics.md §18 (QMul, QAffine)
and of the float math ops Erf, Gelu, Silu, Sqrt, Exp, Log, Neg, Abs, Reciprocal, Sign, Sin, Cos,
Softplus, Softsign, Mish and Pow
(compiler/ops/math_unary.py; float32 C99 <math.h>, within the float parity
tolerance of the float64 reference).

Each integer handler re-checks the bounds its kernel relies on (kernels/qmul.c.j2,
kernels/qaffine.c.j2) and refuses the layer otherwise.
"""

from __future__ import annotations

import numpy as np

from .cformat import float_literal
from .geometry import broadcast_strides, loop6
from .lowering import Ctx, Refused, lowers
from .ops_float import _unary, need_f32
from .ops_int import INT32_LIMIT, _check_multipliers, _span

# ln(1 + e^v) in float32: v itself past 20, where e^-v is below float32's precision of v
_SOFTPLUS = "(({0}) > 20.0f ? ({0}) : log1pf(expf({0})))"
# y for v = x[i] (float32)
_FLOAT_EXPR = {
    "Erf": "erff(v)",
    "Sqrt": "sqrtf(v)",
    "Exp": "expf(v)",
    "Log": "logf(v)",
    "Neg": "-v",
    "Abs": "fabsf(v)",
    "Reciprocal": "1.0f / v",
    "Sign": "(float)((v > 0.0f) - (v < 0.0f))",
    "Sin": "sinf(v)",
    "Cos": "cosf(v)",
    "Silu": "v / (1.0f + expf(-v))",
    "Softplus": _SOFTPLUS.format("v"),
    "Softsign": "v / (1.0f + fabsf(v))",
    "Mish": f"v * tanhf({_SOFTPLUS.format('v')})",
}
_GELU_EXPR = {
    "none": "0.5f * v * (1.0f + erff(v * 0.70710678118654752f))",
    "tanh": "0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)))",
}


@lowers(*_FLOAT_EXPR, in_place=(0,))
def float_math(ctx: Ctx, node):
    need_f32(ctx, node.inputs[0])
    return _unary(ctx, node, node.op.lower(), _FLOAT_EXPR[node.op], [])


@lowers("Gelu", in_place=(0,))
def float_gelu(ctx: Ctx, node):
    need_f32(ctx, node.inputs[0])
    return _unary(ctx, node, f"gelu_{node.attrs.approximate}", _GELU_EXPR[node.attrs.approximate], [])


@lowers("Pow", in_place=(0,))
def float_pow(ctx: Ctx, node):
    """A constant scalar exponent: powf(v, e) (v * v for e = 2); else element pairs."""
    x, e = node.inputs
    need_f32(ctx, x)
    if ctx.is_const(e) and ctx.data(e).size == 1 and ctx.shape(node.outputs[0]) == ctx.shape(x):
        value = float(ctx.data(e).reshape(-1)[0])
        if value == 2.0:
            return _unary(ctx, node, "square", "v * v", [])
        return _unary(ctx, node, "pow", "powf(v, e)", [("e", "float", float_literal(value))])
    need_f32(ctx, e)
    y = node.outputs[0]
    out = ctx.shape(y)
    fn = ctx.kernel("binary", fn="pow_pairs_f32", op="Pow", t="float", expr="powf(va, vb)")
    loop = ctx.struct("loop", "loop6", loop6(list(out), [broadcast_strides(ctx.shape(x), out),
                                                         broadcast_strides(ctx.shape(e), out)]))
    return [f"{fn}({loop}, {ctx.ptr(x)}, {ctx.ptr(e)}, {ctx.ptr(y)});"]


def _eight_bit(ctx: Ctx, x: str, zero_point: int) -> None:
    if _span(ctx.dtype(x), zero_point) > 255:
        raise Refused(f"{ctx.dtype(x)} activations are not supported (8-bit only)")


@lowers("QMul", in_place=(0, 1))
def qmul(ctx: Ctx, node):
    a_in, b_in = node.inputs
    y = node.outputs[0]
    a = node.attrs
    _eight_bit(ctx, a_in, a.a_zero_point)
    _eight_bit(ctx, b_in, a.b_zero_point)
    _check_multipliers(np.array([a.multiplier]), np.array([a.shift]))
    sfx = f"{ctx.dtype(a_in)}_{ctx.dtype(b_in)}_{a.out_dtype}"
    fn = ctx.kernel("qmul", fn=f"qmul_{sfx}", sfx=sfx, ta=ctx.ctype(a_in), tb=ctx.ctype(b_in),
                    ty=ctx.ctype_of(a.out_dtype))
    out = ctx.shape(y)
    loop = ctx.struct("loop", "loop6", loop6(list(out), [broadcast_strides(ctx.shape(a_in), out),
                                                         broadcast_strides(ctx.shape(b_in), out)]))
    q = ctx.struct("q", "qmul_params", dict(a_zero=a.a_zero_point, b_zero=a.b_zero_point, y_zero=a.y_zero_point,
                                            mult=a.multiplier, shift=a.shift, out_min=a.out_min,
                                            out_max=a.out_max))
    return [f"{fn}({loop}, {q}, {ctx.ptr(a_in)}, {ctx.ptr(b_in)}, {ctx.ptr(y)});"]


@lowers("QAffine", in_place=(0,))
def qaffine(ctx: Ctx, node):
    x, mult, offset = node.inputs[:3]
    mult_neg = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] else mult
    y = node.outputs[0]
    a = node.attrs
    _eight_bit(ctx, x, a.x_zero_point)  # |d * mult| < 2^39, |offset| < 2^31: the sum fits int64
    coefficients = [ctx.data(t).astype(np.int64) for t in (mult, mult_neg, offset)]
    if any(c.size and np.abs(c).max() >= INT32_LIMIT for c in coefficients) or not 1 <= a.shift <= 62:
        raise Refused("coefficients must lie inside int32 and the shift in [1, 62]")
    sfx = f"{ctx.dtype(x)}_{a.out_dtype}"
    fn = ctx.kernel("qaffine", fn=f"qaffine_{sfx}", sfx=sfx, tx=ctx.ctype(x), ty=ctx.ctype_of(a.out_dtype))
    out = ctx.shape(y)
    loop = ctx.struct("loop", "loop6", loop6(list(out), [broadcast_strides(ctx.shape(x), out),
                                                         broadcast_strides(ctx.shape(mult), out)]))
    q = ctx.struct("q", "qaffine_params", dict(mult=ctx.const(mult, "mult"), mult_neg=ctx.const(mult_neg, "mult"),
                                               offset=ctx.const(offset, "offset"), x_zero=a.x_zero_point,
                                               y_zero=a.y_zero_point, shift=a.shift, out_min=a.out_min,
                                               out_max=a.out_max))
    return [f"{fn}({loop}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
