"""C lowering of the float ops (models compiled without quantization), plus the
element-wise and pooling ops that also run on integers (Relu, Clip, MaxPool).

Float kernels compute in float32 with float accumulators; the reference
interpreter sums in float64, so results agree within quality.FLOAT_PARITY.
Constant weights are repacked here, at compile time, into the order the kernels
read them (docs/layout.md: NHWC activations, OHWI convolution weights).
"""

from __future__ import annotations

import math

import numpy as np

from nnc.dtypes import integer_range

from .cformat import float_literal, int_literal
from .geometry import broadcast_strides, conv_fields, global_pool_fields, loop6, pool_fields, around
from .lowering import Ctx, Refused, lowers


def need_f32(ctx: Ctx, *names: str) -> None:
    for name in names:
        if name and ctx.dtype(name) != "f32":
            raise Refused(f"{ctx.dtype(name)} data is not supported here (f32 only)")


def bound(value, default: str) -> str:
    return default if value is None else float_literal(value)


# -- convolution and matrix products ------------------------------------------------
@lowers("Conv")
def conv(ctx: Ctx, node):
    x, w, b = (node.inputs + ["", ""])[:3]
    y = node.outputs[0]
    need_f32(ctx, x, w, b)
    a = node.attrs
    geom = conv_fields(ctx.shape(x), ctx.shape(y), a)
    wd = ctx.data(w)
    if wd.ndim == 3:  # 1-D convolution: kernel height 1
        wd = wd[:, :, None, :]
    depthwise = a.group == geom["in_c"] and wd.shape[1] == 1
    if depthwise:  # [out_c, 1, kh, kw] -> [kh][kw][out_c]
        packed, layout = wd[:, 0].transpose(1, 2, 0), "[k_h][k_w][out_c]"
    else:  # [out_c, in_c/g, kh, kw] -> [out_c][kh][kw][in_c/g]
        packed, layout = wd.transpose(0, 2, 3, 1), "[out_c][k_h][k_w][in_c/groups]"
    fn = ctx.kernel("dwconv_f32" if depthwise else "conv_f32")
    wi = ctx.array("w", packed, "f32", f"weights {w} as {layout}", key=("conv", w))
    g = ctx.struct("geom", "conv_geom", geom)
    lo, hi = bound(a.act_min, "-INFINITY"), bound(a.act_max, "INFINITY")
    return [f"{fn}({g}, {ctx.ptr(x)}, {wi}, {ctx.ptr(b, 'bias')}, {lo}, {hi}, {ctx.ptr(y)});"]


def _gemm_call(ctx: Ctx, fields: dict, a: str, w_ptr: str, c: str, y: str) -> list[str]:
    fn = ctx.kernel("gemm_f32")
    g = ctx.struct("geom", "gemm_geom", fields)
    return [f"{fn}({g}, {ctx.ptr(a)}, {w_ptr}, {ctx.ptr(c, 'bias')}, {ctx.ptr(y)});"]


@lowers("Gemm")
def gemm(ctx: Ctx, node):
    a, b, c = (node.inputs + ["", ""])[:3]
    y = node.outputs[0]
    need_f32(ctx, a, b, c)
    at = node.attrs
    m, n = ctx.shape(y)
    k = ctx.shape(a)[0] if at.trans_a else ctx.shape(a)[1]
    a_sm, a_sk = (1, m) if at.trans_a else (k, 1)
    if ctx.is_const(b):  # repack B' to [n][k]
        packed = ctx.data(b) if at.trans_b else ctx.data(b).T
        w_ptr, b_sn, b_sk = ctx.array("w", packed, "f32", f"weights {b} as [n][k]", key=("gemm", b, at.trans_b)), k, 1
    else:
        w_ptr = ctx.ptr(b)
        b_sn, b_sk = (k, 1) if at.trans_b else (1, n)
    c_sm, c_sn = 0, 0
    if c:
        cm, cn = (1,) * (2 - len(ctx.shape(c))) + tuple(ctx.shape(c))
        c_sm, c_sn = (cn if cm > 1 else 0), (1 if cn > 1 else 0)
    fields = dict(batch=1, m=m, n=n, k=k, a_sb=0, a_sm=a_sm, a_sk=a_sk, b_sb=0, b_sn=b_sn, b_sk=b_sk,
                  c_sm=c_sm, c_sn=c_sn, alpha=float_literal(at.alpha), beta=float_literal(at.beta),
                  lo=bound(at.act_min, "-INFINITY"), hi=bound(at.act_max, "INFINITY"))
    return _gemm_call(ctx, fields, a, w_ptr, c, y)


@lowers("MatMul")
def matmul(ctx: Ctx, node):
    a, b = node.inputs
    y = node.outputs[0]
    need_f32(ctx, a, b)
    sa, sb = ctx.shape(a), ctx.shape(b)
    a2 = (1, *sa) if len(sa) == 1 else sa
    b2 = (*sb, 1) if len(sb) == 1 else sb
    m, k, n = a2[-2], a2[-1], b2[-1]
    batch_shape = np.broadcast_shapes(a2[:-2], b2[:-2])
    batch = math.prod(batch_shape)
    a_sb, b_sb = _batch_stride(a2, batch_shape, m * k), _batch_stride(b2, batch_shape, k * n)
    if ctx.is_const(b):  # repack to [batch][n][k]
        packed = np.swapaxes(ctx.data(b).reshape(b2), -1, -2)
        w_ptr, b_sn, b_sk = ctx.array("w", packed, "f32", f"weights {b} as [n][k]", key=("matmul", b)), k, 1
        b_sb = n * k if b_sb else 0
    else:
        w_ptr, b_sn, b_sk = ctx.ptr(b), 1, n
    fields = dict(batch=batch, m=m, n=n, k=k, a_sb=a_sb, a_sm=k, a_sk=1, b_sb=b_sb, b_sn=b_sn, b_sk=b_sk,
                  c_sm=0, c_sn=0, alpha="1.0f", beta="0.0f", lo="-INFINITY", hi="INFINITY")
    return _gemm_call(ctx, fields, a, w_ptr, "", y)


def _batch_stride(shape: tuple[int, ...], batch_shape: tuple[int, ...], matrix: int) -> int:
    """The batch stride of an operand: its matrix size when it has all batch
    axes, 0 when it has none (broadcast); partial broadcasting is refused."""
    own = shape[:-2]
    if math.prod(own) == 1:
        return 0
    if (1,) * (len(batch_shape) - len(own)) + tuple(own) == tuple(batch_shape):
        return matrix
    raise Refused(f"MatMul batch axes {list(own)} broadcast partially to {list(batch_shape)}")


# -- element-wise ---------------------------------------------------------------------
_BINARY = {"Add": "va + vb", "Sub": "va - vb", "Mul": "va * vb", "Div": "va / vb",
           "PRelu": "va < 0.0f ? va * vb : va"}


@lowers("Add", "Sub", "Mul", "Div", "PRelu", in_place=(0, 1))
def binary(ctx: Ctx, node):
    a, b = node.inputs
    y = node.outputs[0]
    need_f32(ctx, a, b)
    out = ctx.shape(y)
    fn = ctx.kernel("binary", fn=f"{node.op.lower()}_f32", op=node.op, t="float", expr=_BINARY[node.op])
    loop = ctx.struct("loop", "loop6", loop6(list(out), [broadcast_strides(ctx.shape(a), out),
                                                         broadcast_strides(ctx.shape(b), out)]))
    return [f"{fn}({loop}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(y)});"]


def _unary(ctx: Ctx, node, name: str, expr: str, params: list[tuple[str, str, str]]) -> list[str]:
    """A call of the `unary` template: params are (name, C type or "T" for the
    element type, value)."""
    x, y = node.inputs[0], node.outputs[0]
    dtype = ctx.dtype(x)
    decl = "".join(f"{ctx.ctype(x) if t == 'T' else t} {p}, " for p, t, _ in params)
    fn = ctx.kernel("unary", fn=f"{name}_{dtype}", op=node.op, t=ctx.ctype(x), params=decl, expr=expr)
    args = "".join(f"{v}, " for _, _, v in params)
    return [f"{fn}({ctx.tensor(x).size}, {args}{ctx.ptr(x)}, {ctx.ptr(y)});"]


def _int_bound(value, dtype: str, side: int) -> str:
    """An integer Clip bound as the reference computes it: the float bound limited
    to the type's range, then converted to the type (truncating)."""
    lo, hi = integer_range(dtype)
    limit = (lo, hi)[side]
    if value is None:
        return int_literal(limit)
    clamped = min(max(value, lo), hi)
    return int_literal(int(np.array(clamped).astype(np.dtype(_NP[dtype]))))


_NP = {"i8": "int8", "u8": "uint8", "i16": "int16", "i32": "int32"}
_UNARY_TYPES = ("f32", "i8", "u8", "i16", "i32")


@lowers("Relu", in_place=(0,))
def relu(ctx: Ctx, node):
    dtype = ctx.dtype(node.inputs[0])
    if dtype not in _UNARY_TYPES:
        raise Refused(f"{dtype} data is not supported")
    zero = "0.0f" if dtype == "f32" else "0"
    return _unary(ctx, node, "relu", f"v > {zero} ? v : {zero}", [])


@lowers("Clip", in_place=(0,))
def clip(ctx: Ctx, node):
    dtype = ctx.dtype(node.inputs[0])
    if dtype not in _UNARY_TYPES:
        raise Refused(f"{dtype} data is not supported")
    a = node.attrs
    if dtype == "f32":
        lo, hi = bound(a.min, "-INFINITY"), bound(a.max, "INFINITY")
    else:
        lo, hi = _int_bound(a.min, dtype, 0), _int_bound(a.max, dtype, 1)
    return _unary(ctx, node, "clip", "v < lo ? lo : (v > hi ? hi : v)", [("lo", "T", lo), ("hi", "T", hi)])


_CLAMP01 = "(({0}) < 0.0f ? 0.0f : (({0}) > 1.0f ? 1.0f : ({0})))"


@lowers("LeakyRelu", "ThresholdedRelu", "Elu", "Selu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", in_place=(0,))
def float_unary(ctx: Ctx, node):
    need_f32(ctx, node.inputs[0])
    op, a = node.op, node.attrs
    if op == "LeakyRelu":
        return _unary(ctx, node, "leaky_relu", "v < 0.0f ? v * alpha : v",
                      [("alpha", "float", float_literal(a.alpha))])
    if op == "ThresholdedRelu":
        return _unary(ctx, node, "thresholded_relu", "v > alpha ? v : 0.0f",
                      [("alpha", "float", float_literal(a.alpha))])
    if op == "Elu":
        return _unary(ctx, node, "elu", "v > 0.0f ? v : alpha * expm1f(v)", [("alpha", "float", float_literal(a.alpha))])
    if op == "Selu":
        return _unary(ctx, node, "selu", "gamma * (v > 0.0f ? v : alpha * expm1f(v))",
                      [("alpha", "float", float_literal(a.alpha)), ("gamma", "float", float_literal(a.gamma))])
    if op == "HardSigmoid":
        return _unary(ctx, node, "hard_sigmoid", _CLAMP01.format("v * alpha + beta"),
                      [("alpha", "float", float_literal(a.alpha)), ("beta", "float", float_literal(a.beta))])
    expr = {"Sigmoid": "1.0f / (1.0f + expf(-v))", "Tanh": "tanhf(v)",
            "HardSwish": "v * " + _CLAMP01.format("v * (1.0f / 6.0f) + 0.5f")}[op]
    return _unary(ctx, node, op.lower(), expr, [])


@lowers("Softmax", "LogSoftmax", in_place=(0,))
def softmax(ctx: Ctx, node):
    """Softmax (with or without a keep mask) or LogSoftmax (no mask) over one
    axis; a `scale` other than 1 multiplies x into y first (the kernel then
    runs on y in place)."""
    x, y = node.inputs[0], node.outputs[0]
    need_f32(ctx, x)
    shape, axis = ctx.shape(x), node.attrs.axis
    outer, n, inner = around(shape, axis)
    if node.attrs.coerce_2d:
        n, inner = math.prod(shape[axis:]), 1
    lines = []
    if node.attrs.scale != 1.0:
        lines = _unary(ctx, node, f"{node.op.lower()}_scale", "v * k", [("k", "T", float_literal(node.attrs.scale))])
        x = y
    if len(node.inputs) > 1:
        keep, period = ctx.keep_bits(node.inputs[1], shape)
        fn = ctx.kernel("softmax_masked_f32")
        return lines + [f"{fn}({outer}, {n}, {inner}, {keep}, {period}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    fn = ctx.kernel("softmax_f32" if node.op == "Softmax" else "logsoftmax_f32")
    return lines + [f"{fn}({outer}, {n}, {inner}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("BatchNormalization", in_place=(0,))
def batch_norm(ctx: Ctx, node):
    x, gamma, beta, mean, var = node.inputs
    y = node.outputs[0]
    need_f32(ctx, x)
    g, b, mu, v = (ctx.data(t).astype(np.float64) for t in (gamma, beta, mean, var))
    scale = g / np.sqrt(v + node.attrs.epsilon)
    shift = b - mu * scale
    axis = len(ctx.shape(x)) - 1 if node.attrs.channels_last else 1
    outer, c, inner = around(ctx.shape(x), axis)
    fn = ctx.kernel("channel_affine_f32")
    si = ctx.array("scale", scale, "f32", "gamma / sqrt(var + epsilon)")
    hi = ctx.array("shift", shift, "f32", "beta - mean * scale")
    return [f"{fn}({outer}, {c}, {inner}, {si}, {hi}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


# -- pooling ----------------------------------------------------------------------------
_LOWEST = {"f32": "-INFINITY", "i8": "-128", "u8": "0"}


def _maxpool_call(ctx: Ctx, node, fields: dict) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    dtype = ctx.dtype(x)
    if dtype not in _LOWEST:
        raise Refused(f"{dtype} data is not supported")
    fn = ctx.kernel("maxpool", fn=f"maxpool_{dtype}", sfx=dtype, t=ctx.ctype(x), lowest=_LOWEST[dtype])
    g = ctx.struct("geom", "pool_geom", fields)
    return [f"{fn}({g}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("MaxPool")
def max_pool(ctx: Ctx, node):
    a = node.attrs
    fields = pool_fields(ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0]), a.kernel_shape, a.strides,
                         a.dilations, a.pads, a.channels_last)
    return _maxpool_call(ctx, node, fields)


@lowers("GlobalMaxPool")
def global_max_pool(ctx: Ctx, node):
    return _maxpool_call(ctx, node, global_pool_fields(ctx.shape(node.inputs[0]), node.attrs.channels_last))


def _avgpool_call(ctx: Ctx, node, fields: dict, include_pad: bool) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    need_f32(ctx, x)
    fn = ctx.kernel("avgpool_f32")
    g = ctx.struct("geom", "pool_geom", fields)
    return [f"{fn}({g}, {int(include_pad)}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("AveragePool")
def average_pool(ctx: Ctx, node):
    a = node.attrs
    fields = pool_fields(ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0]), a.kernel_shape, a.strides,
                         a.dilations, a.pads, a.channels_last)
    return _avgpool_call(ctx, node, fields, a.count_include_pad)


@lowers("GlobalAveragePool")
def global_average_pool(ctx: Ctx, node):
    return _avgpool_call(ctx, node, global_pool_fields(ctx.shape(node.inputs[0]), node.attrs.channels_last),
                         False)
