"""C lowering of the integer ops (docs/numerics.md) and of the float boundaries
QuantizeLinear/DequantizeLinear.

Before emitting a kernel call, each handler re-checks the bounds the C integer
arithmetic relies on (accumulators inside int32, products inside int64, shifts
in range) and refuses the layer otherwise, so the generated code never
overflows a signed type: the quantizer proves these bounds too, but the C
target does not take them on trust.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.dtypes import integer_range
from nnc.numerics import accumulator_bound
from nnc.ops.qsoftmax import EXP_BITS, LN2, MAX_SX, MULT_BITS, log_table_problem

from . import qfast
from .cformat import float_literal
from .geometry import around, broadcast_strides, conv_fields, loop6, pool_fields
from .lowering import Ctx, Refused, lowers

INT32_LIMIT = 1 << 31
INT64_LIMIT = 1 << 63
COL_WINDOW = 64  # the largest window qconv_col gathers (the size of its local row, kernels/qconvcol.c.j2)


def _span(dtype: str, zero_point: int) -> int:
    """The largest |x - zero_point| an input of `dtype` can have."""
    lo, hi = integer_range(dtype)
    return max(zero_point - lo, hi - zero_point)


def _check_multipliers(mult: np.ndarray, shift: np.ndarray) -> None:
    if mult.size and (mult.min() < 0 or mult.max() >= INT32_LIMIT or shift.min() < 1 or shift.max() > 62):
        raise Refused("multipliers must lie in [0, 2^31) and shifts in [1, 62]")


def _check_qlayer(ctx: Ctx, node, channels_axis_of_w: int) -> None:
    """Refuse a QConv/QGemm whose accumulator may leave int32 (docs/numerics.md
    §2) or whose x - x_zero does not fit int16, as the kernels keep it
    (qdot.c.j2, qdwconv.c.j2: |x - x_zero| <= 255, so each product with an int8
    weight lies within +-255 * 128)."""
    x, w, b, mult, shift = node.inputs
    a = node.attrs
    if _span(ctx.dtype(x), a.x_zero_point) > 255:
        raise Refused(f"{ctx.dtype(x)} activations are not supported (8-bit only)")
    wd, md, sd = ctx.data(w), ctx.data(mult), ctx.data(shift)
    bias = np.abs(ctx.data(b).astype(np.int64)) if b else 0
    worst = accumulator_bound(wd, channels_axis_of_w, _span(ctx.dtype(x), a.x_zero_point)) + bias
    if worst.size and worst.max() >= INT32_LIMIT:
        raise Refused("the accumulator may overflow int32")
    _check_multipliers(md, sd)


def _qlayer(ctx: Ctx, node, channels_axis_of_w: int) -> tuple[str, str, str]:
    """Struct `qlayer`, weights and bias (zeros when the node has none) of a
    QConv/QGemm after `_check_qlayer`."""
    _check_qlayer(ctx, node, channels_axis_of_w)
    x, _, b, mult, shift = node.inputs
    a = node.attrs
    md = ctx.data(mult)
    # shifts lie in [1, 62] (_check_multipliers): one byte each in flash
    mi = ctx.const(mult, "mult")
    si = ctx.array("shift", ctx.data(shift).astype(np.int8), "i8", f"constant {shift}", key=("i8", shift))
    q = ctx.struct("q", "qlayer", dict(x_zero=a.x_zero_point, y_zero=a.y_zero_point, out_min=a.out_min,
                                       out_max=a.out_max, mult=mi, shift=si))
    bias = ctx.const(b, "bias") if b else ctx.array("bias", np.zeros(md.size, np.int32), "i32", "zero bias",
                                                     key=("zero_bias", md.size))
    return q, bias, _sfx(ctx, x, a.out_dtype)


def _sfx(ctx: Ctx, x: str, out_dtype: str) -> str:
    return f"{ctx.dtype(x)}_{out_dtype}"


def _types(ctx: Ctx, x: str, out_dtype: str) -> dict:
    return dict(sfx=_sfx(ctx, x, out_dtype), tx=ctx.ctype(x), ty=ctx.ctype_of(out_dtype))


def _qdot(ctx: Ctx, x: str, rows: tuple[int, ...] = (8, 4)) -> dict:
    """Register the dot products of `x`'s type (qdot.c.j2: qdot1 and
    qdot<r> for r in `rows`); the kernel parameters naming them."""
    xd = ctx.dtype(x)
    ctx.kernel("qdot", fn=f"qdot_{xd}", sx=xd, tx=ctx.ctype(x), parts=rows)
    return dict(sx=xd)


def _fast(ctx: Ctx, node) -> list[str] | None:
    """The layer through the fast int8 kernels (qfast.py), when it takes their route."""
    prepared = qfast.plan(ctx.program, node)
    if prepared is None:
        return None
    _check_qlayer(ctx, node, 0)
    return qfast.lower(ctx, node, prepared)


@lowers("QConv", scratch=qfast.scratch_bytes)
def qconv(ctx: Ctx, node):
    fast = _fast(ctx, node)
    if fast is not None:
        return fast
    x, w = node.inputs[0], node.inputs[1]
    y = node.outputs[0]
    geom = conv_fields(ctx.shape(x), ctx.shape(y), node.attrs)
    q, bias, _ = _qlayer(ctx, node, 0)
    wd = ctx.data(w)
    if wd.ndim == 3:
        wd = wd[:, :, None, :]
    depthwise = node.attrs.group == geom["in_c"] and wd.shape[1] == 1
    window = math.prod(wd.shape[1:])  # k_h * k_w * in_c / groups
    types = _types(ctx, x, node.attrs.out_dtype)
    if depthwise:
        packed, layout, family = wd[:, 0].transpose(1, 2, 0), "[k_h][k_w][out_c]", "qdwconv"
    elif node.attrs.group == 1 and window <= COL_WINDOW and (wd.shape[3] * wd.shape[1]) % 16:
        # rows of the window whose dot products would end in a scalar tail: gather the window
        k_pad = -(-window // 16) * 16
        packed = np.zeros((wd.shape[0], k_pad), np.int8)
        packed[:, :window] = wd.transpose(0, 2, 3, 1).reshape(wd.shape[0], window)
        layout, family = f"[out_c][{k_pad}] ([k_h][k_w][in_c], zero-filled)", "qconv_col"
    else:
        packed, layout, family = wd.transpose(0, 2, 3, 1), "[out_c][k_h][k_w][in_c/groups]", "qconv"
    if family != "qdwconv":
        types.update(_qdot(ctx, x))
    fn = ctx.kernel(family, fn=f"{family}_{types['sfx']}", **types)
    wi = ctx.array("w", packed, "i8", f"weights {w} as {layout}", key=(family, w))
    ctx.record_weights("dense", 8, packed.nbytes)
    g = ctx.struct("geom", "conv_geom", geom)
    return [f"{fn}({g}, {q}, {ctx.ptr(x)}, {wi}, {bias}, {ctx.ptr(y)});"]


@lowers("QGemm")
def qgemm(ctx: Ctx, node):
    fast = _fast(ctx, node)
    if fast is not None:
        return fast
    x, w = node.inputs[0], node.inputs[1]
    y = node.outputs[0]
    q, bias, _ = _qlayer(ctx, node, 0)
    m, k = ctx.shape(x)
    n = ctx.shape(w)[0]
    types = _types(ctx, x, node.attrs.out_dtype) | _qdot(ctx, x)
    fn = ctx.kernel("qgemm", fn=f"qgemm_{types['sfx']}", **types)
    ctx.record_weights("dense", 8, ctx.data(w).nbytes)
    return [f"{fn}({m}, {n}, {k}, {q}, {ctx.ptr(x)}, {ctx.const(w, 'w')}, {bias}, {ctx.ptr(y)});"]


@lowers("Requantize", in_place=(0,))
def requantize(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    _check_multipliers(np.array([a.multiplier]), np.array([a.shift]))
    types = _types(ctx, x, a.out_dtype)
    fn = ctx.kernel("requantize", fn=f"requantize_{types['sfx']}", **types)
    q = ctx.struct("q", "requant_params", dict(x_zero=a.x_zero_point, y_zero=a.y_zero_point, mult=a.multiplier,
                                               shift=a.shift, out_min=a.out_min, out_max=a.out_max))
    return [f"{fn}({ctx.tensor(x).size}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("QAdd", in_place=(0, 1))
def qadd(ctx: Ctx, node):
    a_in, b_in = node.inputs
    y = node.outputs[0]
    a = node.attrs
    _check_multipliers(np.abs(np.array([a.a_multiplier, a.b_multiplier])), np.array([a.shift]))  # signed (Sub)
    if max(abs(a.a_multiplier) * _span(ctx.dtype(a_in), a.a_zero_point),
           abs(a.b_multiplier) * _span(ctx.dtype(b_in), a.b_zero_point)) >= 1 << 61:
        raise Refused("a rescaled input may overflow int64")
    fast = qfast.lower_add(ctx, node)
    if fast is not None:
        return fast
    sfx = f"{ctx.dtype(a_in)}_{ctx.dtype(b_in)}_{a.out_dtype}"
    fn = ctx.kernel("qadd", fn=f"qadd_{sfx}", sfx=sfx, ta=ctx.ctype(a_in), tb=ctx.ctype(b_in),
                    ty=ctx.ctype_of(a.out_dtype))
    out = ctx.shape(y)
    loop = ctx.struct("loop", "loop6", loop6(list(out), [broadcast_strides(ctx.shape(a_in), out),
                                                         broadcast_strides(ctx.shape(b_in), out)]))
    q = ctx.struct("q", "qadd_params", dict(a_zero=a.a_zero_point, b_zero=a.b_zero_point, y_zero=a.y_zero_point,
                                            a_mult=a.a_multiplier, b_mult=a.b_multiplier, shift=a.shift,
                                            out_min=a.out_min, out_max=a.out_max))
    return [f"{fn}({loop}, {q}, {ctx.ptr(a_in)}, {ctx.ptr(b_in)}, {ctx.ptr(y)});"]


@lowers("QLut", in_place=(0,))
def qlut(ctx: Ctx, node):
    x, table = node.inputs
    y = node.outputs[0]
    xd, yd = ctx.dtype(x), ctx.dtype(table)
    fn = ctx.kernel("qlut", fn=f"qlut_{xd}_{yd}", sfx=f"{xd}_{yd}", tx=ctx.ctype(x), ty=ctx.ctype(table),
                    tmin=str(integer_range(xd)[0]))
    return [f"{fn}({ctx.tensor(x).size}, {ctx.const(table, 'table')}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("QAveragePool")
def qaverage_pool(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    nd = len(a.kernel_shape)
    fields = pool_fields(ctx.shape(x), ctx.shape(y), a.kernel_shape, a.strides, (1,) * nd, a.pads,
                         a.channels_last)
    if math.prod(a.kernel_shape) * _span(ctx.dtype(x), a.x_zero_point) >= INT32_LIMIT:
        raise Refused("the window sum may overflow int32")
    _check_multipliers(np.array([a.multiplier]), np.array([a.shift]))
    fast = qfast.lower_pool(ctx, node, fields)
    if fast is not None:
        return fast
    types = _types(ctx, x, a.out_dtype)
    fn = ctx.kernel("qavgpool", fn=f"qavgpool_{types['sfx']}", **types)
    g = ctx.struct("geom", "pool_geom", fields)
    q = ctx.struct("q", "qpool_params", dict(x_zero=a.x_zero_point, y_zero=a.y_zero_point, out_min=a.out_min,
                                             out_max=a.out_max, mult=a.multiplier, shift=a.shift))
    return [f"{fn}({g}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("QSoftmax", in_place=(0,))
def qsoftmax(ctx: Ctx, node):
    x, table = node.inputs[:2]
    y = node.outputs[0]
    a = node.attrs
    shape = ctx.shape(x)
    n = shape[-1]
    td = ctx.data(table).astype(np.int64)
    _check_multipliers(np.array([a.multiplier]), np.array([a.shift]))
    if td.min() < 0 or td[0] <= 0 or n * int(td.max()) >= INT64_LIMIT or int(td.max()) << 31 >= INT64_LIMIT:
        raise Refused("the exp table must be non-negative with table[0] > 0 and small enough for int64 sums")
    types = _types(ctx, x, a.out_dtype)
    q = ctx.struct("q", "qsoftmax_params", dict(table=ctx.const(table, 'table'), mult=a.multiplier, shift=a.shift,
                                                y_zero=a.y_zero_point, out_min=a.out_min, out_max=a.out_max))
    if len(node.inputs) > 2:
        if not np.broadcast_to(ctx.data(node.inputs[2]), shape).any(axis=-1).all():
            raise Refused("the keep mask hides every position of a row")
        keep, period = ctx.keep_bits(node.inputs[2], shape)
        fn = ctx.kernel("qsoftmax_masked", fn=f"qsoftmax_masked_{types['sfx']}", **types)
        return [f"{fn}({math.prod(shape[:-1])}, {n}, {q}, {keep}, {period}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    fn = ctx.kernel("qsoftmax", fn=f"qsoftmax_{types['sfx']}", **types)
    return [f"{fn}({math.prod(shape[:-1])}, {n}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("QLogSoftmax", in_place=(0,))
def qlogsoftmax(ctx: Ctx, node):
    """The bounds §6a's kernel relies on: S = Σ exp_table[d_i] in (0, 2^47), so
    |L| < 2^29; 1 <= x_scale <= 2^27 and m < 2^27, so |N_i| < 2^36 and
    |N_i · m| < 2^62.01; the log table rises from 0 by steps below 2^16."""
    x, exp_table, log_table = node.inputs
    y = node.outputs[0]
    a = node.attrs
    shape = ctx.shape(x)
    n = shape[-1]
    _check_multipliers(np.array([a.multiplier]), np.array([a.shift]))
    problem = log_table_problem(ctx.data(exp_table), ctx.data(log_table))
    if problem:
        raise Refused(problem)
    if a.multiplier >= 1 << MULT_BITS:
        raise Refused(f"the multiplier must lie below 2^{MULT_BITS}")
    if not 1 <= a.x_scale <= MAX_SX:
        raise Refused(f"x_scale must lie in 1..{MAX_SX}")
    types = _types(ctx, x, a.out_dtype)
    q = ctx.struct("q", "qlogsoftmax_params", dict(
        exp_table=ctx.const(exp_table, "exp_table"), log_table=ctx.const(log_table, "log_table"),
        x_scale=a.x_scale, mult=a.multiplier, shift=a.shift, y_zero=a.y_zero_point, out_min=a.out_min,
        out_max=a.out_max))
    fn = ctx.kernel("qlogsoftmax", fn=f"qlogsoftmax_{types['sfx']}", ln2=LN2, exp_bits=EXP_BITS, **types)
    return [f"{fn}({math.prod(shape[:-1])}, {n}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


# -- float boundaries ------------------------------------------------------------------
def _affine_params(ctx: Ctx, node, x: str) -> tuple[int, int, int, str, str]:
    """(outer, channels, inner) of the quantization axis, scale and zero arrays."""
    scale = node.inputs[1]
    zero = node.inputs[2] if len(node.inputs) > 2 else ""
    axis = node.attrs.axis
    shape = ctx.shape(x)
    outer, c, inner = (1, 1, math.prod(shape)) if axis is None else around(shape, axis)
    si = ctx.array("scale", ctx.data(scale).reshape(-1), "f32", f"scales {scale}", key=("q_scale", scale))
    zd = ctx.data(zero).reshape(-1).astype(np.int64) if zero else np.zeros(c, np.int64)
    zi = ctx.array("zero", zd, "i32", f"zero points {zero or '(none)'}", key=("q_zero", zero or f"0x{c}"))
    return outer, c, inner, si, zi


@lowers("QuantizeLinear")
def quantize_linear(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    if ctx.dtype(x) != "f32":
        raise Refused(f"{ctx.dtype(x)} input is not supported (f32 only)")
    yd = ctx.dtype(y)
    lo, hi = integer_range(yd)
    fn = ctx.kernel("quantize", fn=f"quantize_{yd}", sfx=yd, ty=ctx.ctype(y), lo=float_literal(lo),
                    hi=float_literal(hi))
    outer, c, inner, si, zi = _affine_params(ctx, node, x)
    return [f"{fn}({outer}, {c}, {inner}, {si}, {zi}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("DequantizeLinear")
def dequantize_linear(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    xd = ctx.dtype(x)
    fn = ctx.kernel("dequantize", fn=f"dequantize_{xd}", sfx=xd, tx=ctx.ctype(x))
    outer, c, inner, si, zi = _affine_params(ctx, node, x)
    return [f"{fn}({outer}, {c}, {inner}, {si}, {zi}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
