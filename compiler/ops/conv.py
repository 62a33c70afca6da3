"""Convolutions: `Conv` and `ConvTranspose`, N-D, grouped and depthwise.

Both take x, w and an optional bias ("" when absent) and clamp the biased result
to [act_min, act_max] (None: unbounded; a fusion pass folds Relu/Clip into it).
Weights always keep the ONNX layout: Conv [Cout, Cin/group, *kernel],
ConvTranspose [Cin, Cout/group, *kernel]; `channels_last` only moves the channel
axis of x and y to the end. Geometry attributes are always explicit: the ONNX
lowering resolves auto_pad, output_shape and output_padding into `pads`.

The spatial helpers here (window views, pad resolution, layouts) are shared with
the pooling ops.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..dtypes import FLOAT_TYPES
from ..errors import ModelError, ShapeError
from ..ir import TensorType
from ..limits import MAX_TENSOR_ELEMENTS, check_elements
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

_OUT_AXES = "stuvwxyz"  # einsum letters of output/input spatial axes
_KERNEL_AXES = "STUVWXYZ"  # einsum letters of kernel axes


@record
class ConvAttrs:
    """Geometry of a convolution over nd = len(kernel_shape) spatial axes.

    pads: ONNX order, the nd begin pads then the nd end pads. Conv pads are >= 0;
    ConvTranspose pads crop its full output, and a negative pad extends it with
    positions that only the bias reaches (how ONNX's output_padding is expressed).
    """

    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int = 1
    channels_last: bool = False
    act_min: float | None = None
    act_max: float | None = None


# -- layout and geometry helpers (shared with pool.py) ------------------------------
def channels_first(x: np.ndarray, channels_last: bool) -> np.ndarray:
    """x [N, *spatial, C] viewed as [N, C, *spatial] when channels_last (np.moveaxis's
    view, without its per-call axis checks)."""
    return x.transpose(0, x.ndim - 1, *range(1, x.ndim - 1)) if channels_last else x


def restore_layout(y: np.ndarray, channels_last: bool) -> np.ndarray:
    """y [N, C, *spatial] viewed as [N, *spatial, C] when channels_last."""
    return y.transpose(0, *range(2, y.ndim), 1) if channels_last else y


def split_shape(shape: tuple[int, ...], channels_last: bool) -> tuple[int, int, tuple[int, ...]]:
    """(N, C, spatial) of a data shape in either layout; ShapeError below rank 3."""
    if len(shape) < 3:
        raise ShapeError(f"needs a (batch, channel, spatial...) input, got shape {list(shape)}")
    if channels_last:
        return shape[0], shape[-1], tuple(shape[1:-1])
    return shape[0], shape[1], tuple(shape[2:])


def join_shape(n: int, c: int, spatial, channels_last: bool) -> tuple[int, ...]:
    return (n, *spatial, c) if channels_last else (n, c, *spatial)


def check_geometry(kernel, strides, pads, dilations, nd: int) -> None:
    """ShapeError unless the geometry attributes fit nd spatial axes, kernel,
    strides and dilations are positive and no value's magnitude passes
    MAX_TENSOR_ELEMENTS (so index arithmetic stays within 32 bits)."""
    if not 1 <= nd <= len(_OUT_AXES):
        raise ShapeError(f"{nd} spatial axes are not supported (1 to {len(_OUT_AXES)})")
    if (len(kernel), len(strides), len(dilations), len(pads)) != (nd, nd, nd, 2 * nd):
        raise ShapeError(f"kernel_shape {list(kernel)}, strides {list(strides)}, dilations "
                         f"{list(dilations)} and pads {list(pads)} do not fit {nd} spatial axes")
    if min(*kernel, *strides, *dilations) < 1:
        raise ShapeError("kernel_shape, strides and dilations must be positive")
    if max(*kernel, *strides, *dilations, *map(abs, pads)) > MAX_TENSOR_ELEMENTS:
        raise ShapeError(f"kernel_shape {list(kernel)}, strides {list(strides)}, dilations {list(dilations)} "
                         f"and pads {list(pads)} must stay within {MAX_TENSOR_ELEMENTS:,} (docs/limits.md)")


def check_padded(n: int, c: int, spatial, pads) -> None:
    """ShapeError if the input padded by `pads` (begins, then ends) passes the
    element limit: the reference kernels materialize it."""
    nd = len(spatial)
    padded = [size + pads[a] + pads[a + nd] for a, size in enumerate(spatial)]
    check_elements((n, c, *padded), "the padded input")


def check_act(attrs) -> None:
    if attrs.act_min is not None and attrs.act_max is not None and attrs.act_min > attrs.act_max:
        raise ShapeError(f"act_min {attrs.act_min} exceeds act_max {attrs.act_max}")


def window_view(x: np.ndarray, kernel, strides, dilations, out_spatial) -> np.ndarray:
    """View [N, C, *out_spatial, *kernel] of x [N, C, *spatial] (already padded) with
    view[n, c, *o, *k] = x[n, c, *(o * strides + k * dilations)]."""
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    view = sliding_window_view(x, span, axis=tuple(range(2, x.ndim)))
    outs = tuple(slice(None, (o - 1) * s + 1, s) for o, s in zip(out_spatial, strides))
    return view[(..., *outs, *(slice(None, None, d) for d in dilations))]


def pad_spatial(x: np.ndarray, pads, value=0, dtype=None) -> np.ndarray:
    """x [N, C, *spatial] padded by pads (begins then ends, each >= 0) with `value`:
    np.pad's result (a new array, in C order unless x is F-contiguous only, `value`
    cast as an assignment casts it) without its per-call overhead; of `dtype`
    when given (x cast as an assignment casts it, in the same pass)."""
    spatial, nd = x.shape[2:], x.ndim - 2
    shape = (*x.shape[:2], *(size + begin + end for size, begin, end in zip(spatial, pads[:nd], pads[nd:])))
    padded = np.empty(shape, x.dtype if dtype is None else dtype,
                      "F" if x.flags.f_contiguous and not x.flags.c_contiguous else "C")
    for axis, (begin, end) in enumerate(zip(pads[:nd], pads[nd:]), 2):  # the border slabs only
        lead = (slice(None),) * axis
        if begin:
            padded[(*lead, slice(None, begin))] = value
        if end:
            padded[(*lead, slice(shape[axis] - end, None))] = value
    padded[(slice(None), slice(None), *(slice(begin, begin + size) for begin, size in zip(pads[:nd], spatial)))] = x
    return padded


def fused_clamp(y: np.ndarray, act_min: float | None, act_max: float | None) -> np.ndarray:
    if act_min is not None:
        y = np.maximum(y, act_min)
    if act_max is not None:
        y = np.minimum(y, act_max)
    return y


def same_pads(auto_pad: str, sizes, kernel, strides, dilations) -> tuple[int, ...]:
    """Explicit pads of ONNX auto_pad SAME_UPPER/SAME_LOWER (output = ceil(size /
    stride); the odd pad goes to the end for UPPER, the begin for LOWER) or VALID."""
    if auto_pad == "VALID":
        return (0,) * (2 * len(sizes))
    totals = [max(0, (math.ceil(i / s) - 1) * s + (k - 1) * d + 1 - i)
              for i, k, s, d in zip(sizes, kernel, strides, dilations)]
    small = [t // 2 for t in totals]
    large = [t - t // 2 for t in totals]
    return tuple(small + large) if auto_pad == "SAME_UPPER" else tuple(large + small)


def checked_auto_pad(n: OnnxNode) -> str:
    """The node's auto_pad; ModelError when it is set (not NOTSET) alongside
    explicit pads, which ONNX forbids."""
    auto_pad = n.attr("auto_pad", "NOTSET")
    if auto_pad != "NOTSET" and n.attr("pads") is not None:
        raise ModelError(f"{n.op_type} node {n.name!r}: auto_pad {auto_pad!r} and explicit pads "
                         f"{list(n.attr('pads'))} exclude each other (ONNX); keep one of them")
    return auto_pad


def int_attr(n: OnnxNode, key: str, default) -> tuple[int, ...]:
    """Integer-list attribute `key` of n as a tuple of ints."""
    return tuple(int(v) for v in n.attr(key, default))


def lowered_geometry(n: OnnxNode, kernel) -> dict:
    """kernel_shape, strides, dilations and explicit pads of an ONNX conv or pool
    node (not ConvTranspose); pads from auto_pad need the static input shape."""
    nd = len(kernel)
    strides = int_attr(n, "strides", (1,) * nd)
    dilations = int_attr(n, "dilations", (1,) * nd)
    auto_pad = checked_auto_pad(n)
    if auto_pad == "NOTSET":
        pads = int_attr(n, "pads", (0,) * (2 * nd))
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pads = same_pads(auto_pad, n.input_types[0].shape[2:], kernel, strides, dilations)
    else:
        raise n.unsupported(f"auto_pad {auto_pad!r} is not supported")
    return dict(kernel_shape=tuple(kernel), strides=strides, pads=pads, dilations=dilations)


# -- Conv ---------------------------------------------------------------------------
def _optional(inputs: list, index: int):
    return inputs[index] if index < len(inputs) else None


def _check_conv_types(x: TensorType, w: TensorType, bias: TensorType | None, cout: int) -> None:
    if x.dtype not in FLOAT_TYPES or w.dtype != x.dtype:
        raise ShapeError(f"needs x and w of one float type, got {x.dtype} and {w.dtype}")
    if bias is not None and (bias.dtype != x.dtype or bias.shape != (cout,)):
        raise ShapeError(f"bias must be {x.dtype}[{cout}], got {bias.dtype}{list(bias.shape)}")


def _infer_common(attrs: ConvAttrs, inputs):
    x, w, bias = inputs[0], inputs[1], _optional(inputs, 2)
    n, cin, spatial = split_shape(x.shape, attrs.channels_last)
    check_geometry(attrs.kernel_shape, attrs.strides, attrs.pads, attrs.dilations, len(spatial))
    check_act(attrs)
    if attrs.group < 1:
        raise ShapeError(f"group must be a positive divisor of the channels, got {attrs.group}")
    if len(w.shape) != len(spatial) + 2:
        raise ShapeError(f"weights {list(w.shape)} do not fit input {list(x.shape)}")
    return x, w, bias, n, cin, spatial


def _out_size(size: int, k: int, s: int, d: int, pad_total: int) -> int:
    return (size + pad_total - (k - 1) * d - 1) // s + 1


@register_op
class Conv(OpDef):
    """y[n, m, *o] = bias[m] + sum over c, k of
    x_padded[n, g*Cg + c, *(o * strides + k * dilations)] * w[m, c, *k]
    with g = m // (Cout / group), Cg = Cin / group; then the fused clamp."""

    name = "Conv"
    Attrs = ConvAttrs
    param_inputs = (1, 2)

    @staticmethod
    def infer(attrs, inputs):
        x, w, bias, n, cin, spatial = _infer_common(attrs, inputs)
        nd = len(spatial)
        if min(attrs.pads) < 0:
            raise ShapeError(f"Conv pads must be >= 0, got {list(attrs.pads)}")
        fits = w.shape[0] % attrs.group == 0 and w.shape[1] * attrs.group == cin
        if not fits or w.shape[2:] != attrs.kernel_shape:
            raise ShapeError(f"weights {list(w.shape)} do not fit {cin} input channels, group "
                             f"{attrs.group} and kernel_shape {list(attrs.kernel_shape)}")
        _check_conv_types(x, w, bias, w.shape[0])
        out = tuple(_out_size(i, k, s, d, attrs.pads[a] + attrs.pads[a + nd]) for a, (i, k, s, d)
                    in enumerate(zip(spatial, attrs.kernel_shape, attrs.strides, attrs.dilations)))
        if min(out) < 1:
            raise ShapeError(f"the kernel does not fit the padded input {list(x.shape)}")
        check_padded(n, cin, spatial, attrs.pads)
        check_elements((n * cin * math.prod(out) * math.prod(attrs.kernel_shape),), "its im2col windows "
                       "(batch x channels x output positions x kernel)")
        return [TensorType(x.dtype, join_shape(n, w.shape[0], out, attrs.channels_last))]

    @staticmethod
    def evaluate(attrs, inputs):
        x, w, bias = inputs[0], inputs[1], _optional(inputs, 2)
        xf = pad_spatial(channels_first(x, attrs.channels_last).astype(np.float64), attrs.pads)
        y = _conv(xf, w.astype(np.float64), attrs)
        return [_finish(y, bias, attrs, x.dtype)]

    @staticmethod
    def macs(attrs, inputs, outputs):
        w, y = inputs[1], outputs[0]
        n, cout, out = split_shape(y.shape, attrs.channels_last)
        return n * cout * math.prod(out) * w.shape[1] * math.prod(attrs.kernel_shape)


def _conv(x: np.ndarray, w: np.ndarray, attrs: ConvAttrs) -> np.ndarray:
    """Grouped correlation of padded x [N, Cin, *S] with w [Cout, Cin/g, *K]
    (float64, or float32 where the integer ops prove the sums exact in it). A
    1×1 kernel, or a small depthwise one, goes kernel position by position
    (_conv_by_position: several times faster there); others take every
    position at once through einsum. For integer-valued operands whose partial
    sums the type holds exactly both give exactly the same sums."""
    nd, g = len(attrs.kernel_shape), attrs.group
    n, cin, spatial = x.shape[0], x.shape[1], x.shape[2:]
    out = [_out_size(i, k, s, d, 0) for i, k, s, d
           in zip(spatial, attrs.kernel_shape, attrs.strides, attrs.dilations)]
    positions = math.prod(attrs.kernel_shape)
    if positions == 1 or (cin == g and positions <= BY_POSITION_DEPTHWISE):
        return _conv_by_position(x, w, attrs, out)
    cols = window_view(x, attrs.kernel_shape, attrs.strides, attrs.dilations, out)
    cols = cols.reshape(n, g, cin // g, *cols.shape[2:])
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    o, k = _OUT_AXES[:nd], _KERNEL_AXES[:nd]
    y = np.einsum(f"ngc{o}{k},gmc{k}->ngm{o}", cols, wg, optimize=True)
    return y.reshape(n, w.shape[0], *out)


BY_POSITION_DEPTHWISE = 9  # most kernel positions of a depthwise conv taken one by one (einsum wins above)


def _conv_by_position(x: np.ndarray, w: np.ndarray, attrs: ConvAttrs, out: list[int]) -> np.ndarray:
    """_conv as a sum over kernel positions k of w[:, :, k] times the input
    strided from k: per group one matmul [Cout/g, Cin/g] @ [Cin/g, positions
    out], or with one input channel a group (depthwise) a product of the
    strided view (no copy of it) by one weight per channel."""
    n, cin, g, cout = x.shape[0], x.shape[1], attrs.group, w.shape[0]
    per_group, places = cin // g, math.prod(out)
    if per_group == 1:
        acc = np.zeros((n, cout, *out), np.result_type(x, w))
        product = np.empty_like(acc)
        per_channel = w.reshape(g, cout // g, -1).transpose(2, 0, 1)  # [position, g, Cout/g]
        inputs = x if cout == g else np.repeat(x, cout // g, axis=1)  # each output channel's input channel
        taps = per_channel.reshape(len(per_channel), cout, *(1,) * len(out))
    else:
        weights = w.reshape(g, cout // g, per_group, -1)
        acc = np.zeros((n, g, cout // g, places), np.result_type(x, w))
    for index, position in enumerate(np.ndindex(*attrs.kernel_shape)):
        window = tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                       for k, d, o, s in zip(position, attrs.dilations, out, attrs.strides))
        if per_group == 1:
            np.multiply(inputs[(slice(None), slice(None), *window)], taps[index], out=product)
            acc += product
        else:
            shifted = x[(slice(None), slice(None), *window)].reshape(n, g, per_group, places)
            acc += weights[None, :, :, :, index] @ shifted
    return acc.reshape(n, cout, *out)


def _finish(y: np.ndarray, bias, attrs, dtype) -> np.ndarray:
    """Add the bias over channel axis 1, clamp, restore the layout, cast to dtype."""
    if bias is not None:
        y = y + bias.astype(np.float64).reshape(-1, *(1,) * (y.ndim - 2))
    y = fused_clamp(y, attrs.act_min, attrs.act_max)
    return restore_layout(y, attrs.channels_last).astype(dtype)


# -- ConvTranspose ------------------------------------------------------------------
@register_op
class ConvTranspose(OpDef):
    """The adjoint of Conv: full[n, g*Mg + m, *(i * strides + k * dilations)] +=
    x[n, g*Cg + c, *i] * w[g*Cg + c, m, *k]; y is `full` cropped by pads (extended
    with zeros where a pad is negative), plus bias, then the fused clamp."""

    name = "ConvTranspose"
    Attrs = ConvAttrs
    param_inputs = (1, 2)

    @staticmethod
    def infer(attrs, inputs):
        x, w, bias, n, cin, spatial = _infer_common(attrs, inputs)
        nd = len(spatial)
        if cin % attrs.group or w.shape[0] != cin or w.shape[2:] != attrs.kernel_shape:
            raise ShapeError(f"weights {list(w.shape)} do not fit {cin} input channels, group "
                             f"{attrs.group} and kernel_shape {list(attrs.kernel_shape)}")
        cout = w.shape[1] * attrs.group
        _check_conv_types(x, w, bias, cout)
        out = tuple(_transposed_size(i, k, s, d) - attrs.pads[a] - attrs.pads[a + nd] for a, (i, k, s, d)
                    in enumerate(zip(spatial, attrs.kernel_shape, attrs.strides, attrs.dilations)))
        if min(out) < 1:
            raise ShapeError(f"pads {list(attrs.pads)} crop the whole output")
        full = [_transposed_size(i, k, s, d) for i, k, s, d
                in zip(spatial, attrs.kernel_shape, attrs.strides, attrs.dilations)]
        check_elements((n, cout, *full), "its uncropped output")
        check_elements((n * cout * math.prod(spatial) * math.prod(attrs.kernel_shape),),
                       "its columns (batch x output channels x input positions x kernel)")
        return [TensorType(x.dtype, join_shape(n, cout, out, attrs.channels_last))]

    @staticmethod
    def evaluate(attrs, inputs):
        x, w, bias = inputs[0], inputs[1], _optional(inputs, 2)
        xf = channels_first(x, attrs.channels_last).astype(np.float64)
        full = _conv_transpose_full(xf, w.astype(np.float64), attrs)
        return [_finish(_crop(full, attrs.pads), bias, attrs, x.dtype)]

    @staticmethod
    def macs(attrs, inputs, outputs):
        x, w = inputs[0], inputs[1]
        n, cin, spatial = split_shape(x.shape, attrs.channels_last)
        return n * cin * math.prod(spatial) * w.shape[1] * math.prod(attrs.kernel_shape)


def _transposed_size(size: int, k: int, s: int, d: int) -> int:
    """Length of ConvTranspose's uncropped output along one axis."""
    return (size - 1) * s + (k - 1) * d + 1


def _conv_transpose_full(x: np.ndarray, w: np.ndarray, attrs: ConvAttrs) -> np.ndarray:
    """Uncropped output [N, Cout, *full] of x [N, Cin, *I] and w [Cin, Cout/g, *K]:
    one strided scatter-add per kernel position."""
    nd, g = len(attrs.kernel_shape), attrs.group
    n, cin, spatial = x.shape[0], x.shape[1], x.shape[2:]
    o, k = _OUT_AXES[:nd], _KERNEL_AXES[:nd]
    xg = x.reshape(n, g, cin // g, *spatial)
    wg = w.reshape(g, cin // g, *w.shape[1:])
    cols = np.einsum(f"ngc{o},gcm{k}->ngm{o}{k}", xg, wg, optimize=True)
    full_shape = [_transposed_size(i, kk, s, d) for i, kk, s, d
                  in zip(spatial, attrs.kernel_shape, attrs.strides, attrs.dilations)]
    full = np.zeros((*cols.shape[:3], *full_shape))
    for pos in np.ndindex(*attrs.kernel_shape):
        target = tuple(slice(p * d, p * d + (i - 1) * s + 1, s)
                       for p, d, i, s in zip(pos, attrs.dilations, spatial, attrs.strides))
        full[(..., *target)] += cols[(..., *pos)]
    return full.reshape(n, -1, *full_shape)


def _crop(y: np.ndarray, pads) -> np.ndarray:
    """Remove pads[a] positions from each spatial side; a negative pad adds zeros."""
    nd = y.ndim - 2
    y = pad_spatial(y, [max(0, -p) for p in pads])
    keep = tuple(slice(max(0, b), size - max(0, e))
                 for b, e, size in zip(pads[:nd], pads[nd:], y.shape[2:]))
    return y[(..., *keep)]


# -- ONNX lowering ------------------------------------------------------------------
def _conv_inputs(n: OnnxNode) -> list[str]:
    """x, w and bias ("" when absent), always three."""
    return (n.inputs + [""] * 3)[:3]


def _check_float(n: OnnxNode) -> None:
    dtype = n.input_types[0].dtype
    if dtype not in FLOAT_TYPES:
        raise n.unsupported(f"{dtype} data is not supported (float only)")


@lowers("Conv")
def _lower_conv(n: OnnxNode):
    _check_float(n)
    kernel = int_attr(n, "kernel_shape", n.input_types[1].shape[2:])
    attrs = ConvAttrs(**lowered_geometry(n, kernel), group=int(n.attr("group", 1)))
    return Lowered("Conv", attrs, inputs=_conv_inputs(n))


@lowers("ConvTranspose")
def _lower_conv_transpose(n: OnnxNode):
    _check_float(n)
    kernel = int_attr(n, "kernel_shape", n.input_types[1].shape[2:])
    nd = len(kernel)
    strides = int_attr(n, "strides", (1,) * nd)
    dilations = int_attr(n, "dilations", (1,) * nd)
    pads = _transposed_pads(n, kernel, strides, dilations)
    attrs = ConvAttrs(kernel, strides, pads, dilations, group=int(n.attr("group", 1)))
    return Lowered("ConvTranspose", attrs, inputs=_conv_inputs(n))


def _transposed_pads(n: OnnxNode, kernel, strides, dilations) -> tuple[int, ...]:
    """ConvTranspose pads with output_shape, auto_pad and output_padding folded in,
    following the ONNX spec: with output_shape (or SAME_*: output = size * stride)
    total = full + output_padding - output, split begin = total // 2 for SAME_UPPER
    and begin = total - total // 2 otherwise; else output_padding extends the end.
    `full` is the uncropped size, so the IR's end pad is total - begin - output_padding."""
    nd = len(kernel)
    sizes = n.input_types[0].shape[2:]
    auto_pad = checked_auto_pad(n)
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise n.unsupported(f"auto_pad {auto_pad!r} is not supported")
    output_padding = int_attr(n, "output_padding", (0,) * nd)
    output_shape = n.attr("output_shape")
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [i * s for i, s in zip(sizes, strides)]
    if output_shape is None:
        pads = int_attr(n, "pads", (0,) * (2 * nd)) if auto_pad == "NOTSET" else (0,) * (2 * nd)
        return (*pads[:nd], *(e - p for e, p in zip(pads[nd:], output_padding)))
    totals = [_transposed_size(i, k, s, d) + p - int(o) for i, k, s, d, p, o
              in zip(sizes, kernel, strides, dilations, output_padding, list(output_shape)[-nd:])]
    begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
    return (*begins, *(t - b - p for t, b, p in zip(totals, begins, output_padding)))
