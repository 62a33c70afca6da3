"""C lowering of the transformer ops: the integer QReduce, QMatMul, QLayerNorm
(docs/numerics.md §11, §12, §14) and the float32 ReduceSum/ReduceMean/ReduceMax
and LayerNormalization (y only; its Mean and InvStdDev outputs are refused).

Index arithmetic is resolved here, in Python: the reductions get their kept
and reduced axes as at most four merged groups each (`reduce_loops`); QMatMul a
table of the a and b offsets of each (broadcast) batch product. Each handler re-checks
the bounds its kernel's integer arithmetic relies on and refuses the layer
otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.dtypes import integer_range

from .cformat import float_literal, int_literal
from .geometry import broadcast_strides, c_array
from .lowering import Ctx, Refused, lowers
from .ops_float import need_f32
from .ops_int import INT32_LIMIT, _check_multipliers, _span

MAX_ROW = 1 << 15  # QLayerNorm rows (kernels/qlayernorm.c.j2)


def reduce_loops(shape: tuple[int, ...], axes) -> dict:
    """`reduce_loops` fields (kernels/reduceloops.h): adjacent axes of one kind
    (kept or reduced) merged, extents of 1 dropped, each kind padded to four groups."""
    strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    groups: dict[bool, list[list[int]]] = {False: [], True: []}
    last = None
    for axis in range(len(shape) - 1, -1, -1):
        if shape[axis] == 1:
            continue
        kind = axis in axes
        if kind == last:
            groups[kind][0][0] *= shape[axis]  # contiguous with the group just inside it
        else:
            groups[kind].insert(0, [shape[axis], strides[axis]])
        last = kind
    if max(len(g) for g in groups.values()) > 4:
        raise Refused("the reduced and kept axes interleave more than four times")
    fields = {}
    for kind, (extents, steps) in ((False, ("kd", "ks")), (True, ("rd", "rs"))):
        padded = [[1, 0]] * (4 - len(groups[kind])) + groups[kind]
        fields[extents], fields[steps] = c_array(g[0] for g in padded), c_array(g[1] for g in padded)
    return fields


def _rescale_check(ctx: Ctx, x: str, zero_point: int, attrs) -> None:
    if _span(ctx.dtype(x), zero_point) > 255:
        raise Refused(f"{ctx.dtype(x)} activations are not supported (8-bit only)")
    _check_multipliers(np.array([attrs.multiplier]), np.array([attrs.shift]))


@lowers("QReduce")
def qreduce(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    shape = ctx.shape(x)
    _rescale_check(ctx, x, a.x_zero_point, a)
    n_red = math.prod(shape[i] for i in a.axes)
    if not a.is_max and n_red * 255 >= INT32_LIMIT:
        raise Refused("the sum may overflow int32")
    sfx = f"{ctx.dtype(x)}_{a.out_dtype}"
    fn = ctx.kernel("qreduce", fn=f"qreduce_{sfx}", sfx=sfx, tx=ctx.ctype(x), ty=ctx.ctype_of(a.out_dtype))
    loops = ctx.struct("loops", "reduce_loops", reduce_loops(shape, a.axes))
    q = ctx.struct("q", "qreduce_params", dict(x_zero=a.x_zero_point, y_zero=a.y_zero_point, mult=a.multiplier,
                                               shift=a.shift, out_min=a.out_min, out_max=a.out_max,
                                               is_max=int(a.is_max)))
    n_out = ctx.tensor(y).size
    return [f"{fn}({n_out}, {n_red}, {loops}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def _batch_offsets(shape: tuple[int, ...], batch: tuple[int, ...]) -> np.ndarray:
    """Offset of each batch product's matrix of an operand of `shape` (numpy broadcasting)."""
    matrix = shape[-2] * shape[-1]
    strides = broadcast_strides(shape[:-2], batch)
    return np.array([matrix * sum(i * s for i, s in zip(index, strides)) for index in np.ndindex(*batch)],
                    np.int32).reshape(-1)


@lowers("QMatMul")
def qmatmul(ctx: Ctx, node):
    a_in, b_in = node.inputs
    y = node.outputs[0]
    a = node.attrs
    a_shape, b_shape, y_shape = ctx.shape(a_in), ctx.shape(b_in), ctx.shape(y)
    m, k, n = a_shape[-2], a_shape[-1], y_shape[-1]
    if max(_span(ctx.dtype(a_in), a.a_zero_point), _span(ctx.dtype(b_in), a.b_zero_point)) > 255:
        raise Refused("operands must be 8-bit")
    if k * 255 * 255 >= INT32_LIMIT:
        raise Refused("the accumulator may overflow int32")
    _check_multipliers(np.array([a.multiplier]), np.array([a.shift]))
    batch = tuple(y_shape[:-2])
    a_off, b_off = _batch_offsets(a_shape, batch), _batch_offsets(b_shape, batch)
    sfx = f"{'bt_' if a.b_transposed else ''}{ctx.dtype(a_in)}_{ctx.dtype(b_in)}_{a.out_dtype}"
    fn = ctx.kernel("qmatmul", fn=f"qmatmul_{sfx}", sfx=sfx, ta=ctx.ctype(a_in), tb=ctx.ctype(b_in),
                    ty=ctx.ctype_of(a.out_dtype), bt=a.b_transposed)
    ai = ctx.array("a_off", a_off, "i32", f"offset of each batch matrix of {a_in}")
    bi = ctx.array("b_off", b_off, "i32", f"offset of each batch matrix of {b_in}")
    q = ctx.struct("q", "qmatmul_params", dict(a_zero=a.a_zero_point, b_zero=a.b_zero_point, y_zero=a.y_zero_point,
                                               mult=a.multiplier, shift=a.shift, out_min=a.out_min,
                                               out_max=a.out_max))
    return [f"{fn}({math.prod(batch)}, {m}, {n}, {k}, {ai}, {bi}, {q}, {ctx.ptr(a_in, 'a')}, "
            f"{ctx.ptr(b_in, 'b')}, {ctx.ptr(y)});"]


@lowers("QLayerNorm", in_place=(0,))
def qlayer_norm(ctx: Ctx, node):
    x, g, b = node.inputs
    y = node.outputs[0]
    a = node.attrs
    shape = ctx.shape(x)
    n = math.prod(shape[a.axis:])
    gd, bd = ctx.data(g).astype(np.int64), ctx.data(b).astype(np.int64)
    if integer_range(ctx.dtype(x)) not in ((-128, 127), (0, 255)) or n > MAX_ROW:
        raise Refused(f"needs 8-bit rows of at most {MAX_ROW} values")
    if np.abs(gd).max() > 1 << 30 or np.abs(bd).max() >= 1 << 61 or not 0 <= a.eps_int < 1 << 61 \
            or not 1 <= a.shift <= 62:
        raise Refused("g, b, eps or shift lie outside the bounds of docs/numerics.md §14")
    sfx = f"{ctx.dtype(x)}_{a.out_dtype}"
    fn = ctx.kernel("qlayernorm", fn=f"qlayernorm_{sfx}", sfx=sfx, tx=ctx.ctype(x), ty=ctx.ctype_of(a.out_dtype))
    q = ctx.struct("q", "qlayernorm_params", dict(g=ctx.const(g, "g"), b=ctx.const(b, "b"),
                                                  eps=int_literal(a.eps_int), shift=a.shift, y_zero=a.y_zero_point,
                                                  out_min=a.out_min, out_max=a.out_max, step=int(gd.size == n)))
    return [f"{fn}({math.prod(shape[:a.axis])}, {n}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


# -- float32 ----------------------------------------------------------------------------
REDUCE_MODES = {"ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2}


@lowers("ReduceSum", "ReduceMean", "ReduceMax")
def reduce_f32(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    need_f32(ctx, x)
    shape, axes = ctx.shape(x), node.attrs.axes
    fn = ctx.kernel("reduce_f32")
    loops = ctx.struct("loops", "reduce_loops", reduce_loops(shape, axes))
    n_red = math.prod(shape[i] for i in axes)
    return [f"{fn}({ctx.tensor(y).size}, {n_red}, {loops}, {REDUCE_MODES[node.op]}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("LayerNormalization", in_place=(0,))
def layer_norm_f32(ctx: Ctx, node):
    x, scale = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    if len(node.outputs) > 1:
        raise Refused("the Mean and InvStdDev outputs are not supported")
    need_f32(ctx, x, scale, bias)
    shape, axis = ctx.shape(x), node.attrs.axis
    normalized = shape[axis:]
    gamma = np.broadcast_to(ctx.data(scale), normalized).reshape(-1)
    beta = np.broadcast_to(ctx.data(bias), normalized).reshape(-1) if bias else np.zeros(gamma.size, np.float32)
    fn = ctx.kernel("layernorm_f32")
    gi = ctx.array("scale", gamma, "f32", f"scale {scale} over {list(normalized)}")
    bi = ctx.array("bias", beta, "f32", f"bias {bias or '(none)'} over {list(normalized)}")
    y = node.outputs[0]
    return [f"{fn}({math.prod(shape[:axis])}, {gamma.size}, {float_literal(node.attrs.epsilon)}, {gi}, {bi}, "
            f"{ctx.ptr(x)}, {ctx.ptr(y)});"]
