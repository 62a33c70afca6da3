"""Lowering rules of the element-wise arithmetic with broadcasting and of the
math functions (docs/numerics.md §18):

    Mul of two activations          → QMul, M = s_a · s_b / s_y
    Add of two activations          → QAdd (§4)
    Sub of two activations          → QAdd with a negative b multiplier (one rounding)
    Mul, Add, Sub, Div with one
    constant operand C              → QAffine (x·C, x + C, x − C, C − x, x / C) when C
                                      varies along at most one axis; a constant tensor
                                      is stored as int8 and read by QMul / QAdd
    BatchNormalization (standalone) → QAffine per channel
    PRelu with a constant slope     → QAffine with a negative-side multiplier per
                                      element of the slope (a single slope: a table)
    Erf, Gelu, Silu, Sqrt, Exp, Log, Neg, Abs,
    Reciprocal, Sign, Sin, Cos, Softplus, Softsign, Mish, Pow(x, constant e),
    Div(constant c, x)              → QLut, a 256-entry table (§7); a NaN entry
                                      (√ of a negative value) holds the zero point

Division by an activation other than a constant scalar numerator is refused:
an int8 quotient of two int8 values has no one-rounding integer form here.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph
from ..numerics import quantize_multiplier
from ..ops import get_op
from ..ops.math_unary import erf, gelu, mish, silu, softplus, softsign
from ..ops.qbinary import COEFFICIENT_LIMIT, QAffineAttrs, QProductAttrs
from ..ops.qelementwise import QAddAttrs
from . import rules
from .emit import add_node, constant
from .groups import Group, Operand, rule
from .params import Affine, affine_from_range

AFFINE_MAX_SHIFT = 53


def _unsupported(group: Group, why: str) -> UnsupportedError:
    return UnsupportedError(f"{group.node.op} node {group.name!r}: {why}")


def _float_constant(graph: Graph, group: Group, index: int) -> np.ndarray | None:
    """Input `index` of the group's op as float64 when it is a constant (not an operand)."""
    if group.operands[index] is not None:
        return None
    data = graph.constant(group.node.inputs[index])
    return None if data is None else np.asarray(data, np.float64)


# -- QAffine ----------------------------------------------------------------------------
def affine_coefficients(x: Affine, out: Affine, k, c, k_neg=None) -> tuple[list[np.ndarray], int]:
    """Integer (m, o[, mn]) of one shape and the shared shift n for the real map
    y = s_x·d·k + c (k_neg instead of k where d < 0): m = rint(s_x·k/s_y · 2^n),
    o = rint(c/s_y · 2^n), n the largest shift <= 53 keeping every |value| < 2^31."""
    reals = [x.scale * np.asarray(k, np.float64) / out.scale, np.asarray(c, np.float64) / out.scale]
    if k_neg is not None:
        reals.append(x.scale * np.asarray(k_neg, np.float64) / out.scale)
    reals = [np.array(r) for r in np.broadcast_arrays(*reals)]
    if not all(np.isfinite(r).all() for r in reals):
        raise UnsupportedError("its constant operand holds values that are not finite")
    largest = max(float(np.abs(r).max(initial=0.0)) for r in reals)
    for shift in range(AFFINE_MAX_SHIFT, 0, -1):
        if abs(round(largest * 2.0 ** shift)) < COEFFICIENT_LIMIT:
            return [np.rint(r * 2.0 ** shift).astype(np.int32) for r in reals], shift
    raise UnsupportedError(f"its constant scaled to the output reaches {largest:g} output steps (at most 2^30)")


def emit_affine(graph: Graph, group: Group, x: Operand, k, c, k_neg=None) -> None:
    """QAffine computing the real map of `affine_coefficients` into the group's output."""
    try:
        coefficients, shift = affine_coefficients(x.affine, group.out, k, c, k_neg)
    except UnsupportedError as exc:
        raise _unsupported(group, str(exc)) from None
    names = [constant(graph, f"{group.name}.{role}", data)
             for role, data in zip(("multiplier", "offset", "multiplier_neg"), coefficients)]
    lo, hi = group.bounds()
    attrs = QAffineAttrs(x.affine.zero_point, group.out.zero_point, shift, lo, hi, group.out.dtype)
    add_node(graph, group.name, "QAffine", [x.tensor, *names], [group.output], attrs)


def _constant_side(graph: Graph, group: Group) -> tuple[Operand, np.ndarray, int] | None:
    """(activation operand, constant data, index of the constant) of a binary op
    with exactly one constant input, else None."""
    for index in (0, 1):
        data = _float_constant(graph, group, index)
        if data is not None:
            return group.operand(1 - index), data, index
    return None


# -- binary arithmetic --------------------------------------------------------------------
def _is_vector(data: np.ndarray) -> bool:
    """True when `data` varies along at most one axis (per-channel or per-feature)."""
    return sum(d > 1 for d in data.shape) <= 1


def _constant_operand(graph: Graph, group: Group, data: np.ndarray) -> Operand:
    """A constant tensor stored as int8 with its own per-tensor parameters (its
    range, §1), read like a second activation: as QAffine coefficients it would
    take 8 bytes per element."""
    affine = affine_from_range(float(data.min()), float(data.max()))
    q = np.rint(data.astype(np.float32) / np.float32(affine.scale)) + affine.zero_point
    values = np.clip(q, *affine.qrange).astype(np.int8)
    return Operand(constant(graph, f"{group.name}.constant", values, affine.quant_params()), affine)


def _qmul(graph: Graph, group: Group, a: Operand, b: Operand) -> None:
    """QMul with M = s_a · s_b / s_y."""
    try:
        m, n = quantize_multiplier(a.affine.scale * b.affine.scale / group.out.scale)
    except UnsupportedError as exc:
        raise _unsupported(group, str(exc)) from None
    lo, hi = group.bounds()
    attrs = QProductAttrs(a.affine.zero_point, b.affine.zero_point, group.out.zero_point, m, n, lo, hi,
                      group.out.dtype)
    add_node(graph, group.name, "QMul", [a.tensor, b.tensor], [group.output], attrs)


def _qadd(graph: Graph, group: Group, a: Operand, b: Operand, negate_b: bool = False) -> None:
    """QAdd of a ± b: both rescaled to the output with one shared shift (§4)."""
    try:
        ma, mb, n = rules.add_multipliers(a.affine.scale / group.out.scale, b.affine.scale / group.out.scale)
    except UnsupportedError as exc:
        raise _unsupported(group, str(exc)) from None
    lo, hi = group.bounds()
    attrs = QAddAttrs(a.affine.zero_point, b.affine.zero_point, group.out.zero_point, ma, -mb if negate_b else mb,
                      n, lo, hi, group.out.dtype)
    add_node(graph, group.name, "QAdd", [a.tensor, b.tensor], [group.output], attrs)


def _scale_by(graph: Graph, group: Group, x: Operand, factor: np.ndarray) -> None:
    """x · factor: QAffine for a vector factor, else QMul with the factor in int8."""
    if _is_vector(factor):
        emit_affine(graph, group, x, factor, 0.0)
    else:
        _qmul(graph, group, x, _constant_operand(graph, group, factor))


def _add_constant(graph: Graph, group: Group, x: Operand, data: np.ndarray, sign_x: int, sign_c: int) -> None:
    """sign_x · x + sign_c · C: QAffine for a vector C, else QAdd with C in int8."""
    if _is_vector(data):
        emit_affine(graph, group, x, float(sign_x), sign_c * data)
    elif sign_x > 0:
        _qadd(graph, group, x, _constant_operand(graph, group, data), negate_b=sign_c < 0)
    else:
        _qadd(graph, group, _constant_operand(graph, group, data), x, negate_b=True)


@rule("Mul")
def lower_mul(graph: Graph, group: Group) -> None:
    side = _constant_side(graph, group)
    if side is None:
        _qmul(graph, group, group.operand(0), group.operand(1))
    else:
        _scale_by(graph, group, side[0], side[1])


@rule("Add")
def lower_add(graph: Graph, group: Group) -> None:
    side = _constant_side(graph, group)
    if side is None:
        _qadd(graph, group, group.operand(0), group.operand(1))
    else:
        _add_constant(graph, group, side[0], side[1], 1, 1)


@rule("Sub")
def lower_sub(graph: Graph, group: Group) -> None:
    side = _constant_side(graph, group)
    if side is None:
        _qadd(graph, group, group.operand(0), group.operand(1), negate_b=True)
    elif side[2] == 1:
        _add_constant(graph, group, side[0], side[1], 1, -1)  # x − C
    else:
        _add_constant(graph, group, side[0], side[1], -1, 1)  # C − x


@rule("Div")
def lower_div(graph: Graph, group: Group) -> None:
    divisor = _float_constant(graph, group, 1)
    if divisor is not None:
        if not np.all(divisor != 0):
            raise _unsupported(group, "division by a constant that holds 0")
        _scale_by(graph, group, group.operand(0), 1.0 / divisor)
        return
    numerator = _float_constant(graph, group, 0)
    if numerator is not None and numerator.size == 1:
        value = float(numerator.reshape(-1)[0])
        _table(graph, group, lambda r: value / r, operand=1)
        return
    raise _unsupported(group, "division by a quantized constant (a DequantizeLinear of one) has no int8 form "
                              "(x / float constant, scalar constant / x and x / activation do)")


# -- per-channel affine ops ---------------------------------------------------------------
@rule("BatchNormalization")
def lower_batch_norm(graph: Graph, group: Group) -> None:
    """k = γ / √(var + ε), c = β − mean · k per channel, broadcast along the channel axis."""
    stats = [_float_constant(graph, group, i) for i in range(1, 5)]
    if any(s is None for s in stats):
        raise _unsupported(group, "scale, B, mean and var must be constants")
    gamma, beta, mean, var = stats
    k = gamma / np.sqrt(var + group.node.attrs.epsilon)
    rank = len(graph.tensor(group.node.inputs[0]).shape)
    shape = (-1,) if group.node.attrs.channels_last else (-1, *(1,) * (rank - 2))
    emit_affine(graph, group, group.operand(0), k.reshape(shape), (beta - mean * k).reshape(shape))


@rule("PRelu")
def lower_prelu(graph: Graph, group: Group) -> None:
    slope = _float_constant(graph, group, 1)
    if slope is None:
        raise _unsupported(group, "the slope must be a constant")
    if slope.size == 1:
        alpha = float(slope.reshape(-1)[0])
        _table(graph, group, lambda r: np.where(r < 0, r * alpha, r))
        return
    emit_affine(graph, group, group.operand(0), np.ones_like(slope), 0.0, slope)


# -- tables -------------------------------------------------------------------------------
def _table(graph: Graph, group: Group, fn, operand: int = 0) -> None:
    """QLut of f = fn(real value of input `operand`) (docs/numerics.md §7); NaN
    entries get the zero point."""
    x, out = group.operand(operand), group.out
    qmin, qmax = x.affine.qrange
    real = x.affine.scale * (np.arange(qmin, qmax + 1, dtype=np.float64) - x.affine.zero_point)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = np.asarray(fn(real), np.float64)
        q = np.rint(values / out.scale) + out.zero_point
    lo, hi = group.bounds()
    table = np.clip(np.where(np.isnan(q), out.zero_point, q), lo, hi)
    name = constant(graph, f"{group.name}.table", table.astype(np.int8 if out.dtype == "i8" else np.uint8))
    add_node(graph, group.name, "QLut", [x.tensor, name], [group.output], get_op("QLut").Attrs())


_FUNCTIONS = {"Erf": erf, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log, "Neg": np.negative, "Abs": np.abs,
              "Reciprocal": lambda r: 1.0 / r, "Sign": np.sign, "Sin": np.sin, "Cos": np.cos, "Silu": silu, "Softplus": softplus,
              "Softsign": softsign, "Mish": mish}


@rule(*_FUNCTIONS)
def lower_function(graph: Graph, group: Group) -> None:
    _table(graph, group, _FUNCTIONS[group.node.op])


@rule("Gelu")
def lower_gelu(graph: Graph, group: Group) -> None:
    approximate = group.node.attrs.approximate
    _table(graph, group, lambda r: gelu(r, approximate))


@rule("Pow")
def lower_pow(graph: Graph, group: Group) -> None:
    exponent = _float_constant(graph, group, 1)
    if exponent is None or exponent.size != 1:
        raise _unsupported(group, "the exponent must be a constant scalar")
    e = float(exponent.reshape(-1)[0])
    _table(graph, group, lambda r: np.power(r, e))

