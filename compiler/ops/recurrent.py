"""Float recurrent ops `LSTM`, `GRU` and `RNN`, mirroring ONNX (opset 7-22).

One IR op per ONNX node, not unrolled (../shared/DESIGN.md, "Growing past CNNs").
Inputs, in ONNX order: X, W, R, B, sequence_lens, initial_h, initial_c (LSTM), P
(LSTM); "" for an omitted one. Outputs: Y, Y_h, Y_c (LSTM), any subset used.
Layout 0: X [T, B, I], Y [T, D, B, H], states [D, B, H]; layout 1: X [B, T, I],
Y [B, T, D, H], states [B, D, H]. Gate order in W/R/B: LSTM i, o, f, c; GRU
z, r, h; RNN one gate. Direction d reads W[d], R[d], B[d] (W biases then R
biases), its activations are attrs.activations[d·k : (d+1)·k] (k = 3, 2, 1).

`evaluate` computes in float64 and casts to X's type. Invariants of the IR op:
- LSTM has a fourth output that ONNX lacks, the cell sequence [T, D, B, H]
  (time first in either layout): every c_t, which the quantizer declares so
  that calibration observes the cell's range (docs/numerics.md §15); the ONNX
  lowering never uses it;
- sequence_lens is absent: the lowering accepts a constant one whose every
  entry is T and drops it; ragged batches are refused;
- activations are resolved to canonical names with one alpha/beta each
  (rnn_activations.resolve).
"""

from __future__ import annotations


import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from . import rnn_activations
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
DIRECTIONS = ("forward", "reverse", "bidirectional")


@record
class RecurrentAttrs:
    """`hidden_size` H; `direction` one of DIRECTIONS; `layout` 0 (time first) or 1
    (batch first); `activations` with one `activation_alpha`/`activation_beta`
    each (0.0 where unused), k per direction; `clip` bounds every gate
    pre-activation to [-clip, clip] (None: no clip); `input_forget` (LSTM) couples
    the forget gate to the input gate, f = 1 - i; `linear_before_reset` (GRU)
    applies r after R_h·h + Rb_h."""

    hidden_size: int
    direction: str = "forward"
    layout: int = 0
    activations: tuple[str, ...] = ()
    activation_alpha: tuple[float, ...] = ()
    activation_beta: tuple[float, ...] = ()
    clip: float | None = None
    input_forget: bool = False
    linear_before_reset: bool = False

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def activation(self, direction: int, index: int, per_direction: int) -> tuple[str, float, float]:
        k = direction * per_direction + index
        return self.activations[k], self.activation_alpha[k], self.activation_beta[k]


def sequence_dims(attrs: RecurrentAttrs, x_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(T, B, I) of input X."""
    if len(x_shape) != 3:
        raise ShapeError(f"X must have rank 3, got {list(x_shape)}")
    t, b, i = x_shape if attrs.layout == 0 else (x_shape[1], x_shape[0], x_shape[2])
    return t, b, i


def state_shape(attrs: RecurrentAttrs, batch: int) -> tuple[int, int, int]:
    d, h = attrs.num_directions, attrs.hidden_size
    return (d, batch, h) if attrs.layout == 0 else (batch, d, h)


def output_types(op: str, attrs: RecurrentAttrs, x: TensorType) -> list[TensorType]:
    t, b, _ = sequence_dims(attrs, x.shape)
    d, h = attrs.num_directions, attrs.hidden_size
    y = (t, d, b, h) if attrs.layout == 0 else (b, t, d, h)
    types = [TensorType(x.dtype, y)] + [TensorType(x.dtype, state_shape(attrs, b))] * (2 if op == "LSTM" else 1)
    if op == "LSTM":
        types.append(TensorType(x.dtype, (t, d, b, h)))  # the cell sequence (IR only)
    return types


def check_inputs(op: str, attrs: RecurrentAttrs, inputs: list[TensorType | None], dtypes) -> None:
    """ShapeError unless X, W, R, B, initial states and P have ONNX's shapes."""
    x, w, r = inputs[0], inputs[1], inputs[2]
    t, b, i = sequence_dims(attrs, x.shape)
    d, h, g = attrs.num_directions, attrs.hidden_size, GATES[op]
    expected = {1: (d, g * h, i), 2: (d, g * h, h), 3: (d, 2 * g * h), 5: state_shape(attrs, b),
                6: state_shape(attrs, b), 7: (d, 3 * h)}
    for index, shape in expected.items():
        given = inputs[index] if index < len(inputs) else None
        if given is not None and given.shape != shape:
            raise ShapeError(f"input #{index} has shape {list(given.shape)}, expected {list(shape)}")
    if len(inputs) > 4 and inputs[4] is not None:
        raise ShapeError("sequence_lens must have been removed by the lowering")
    if x.dtype not in dtypes or w.dtype != x.dtype or r.dtype != x.dtype:
        raise ShapeError(f"needs X, W and R of one float type, got {x.dtype}, {w.dtype}, {r.dtype}")
    if attrs.direction not in DIRECTIONS or attrs.layout not in (0, 1) or t < 1:
        raise ShapeError(f"bad direction {attrs.direction!r}, layout {attrs.layout} or sequence length {t}")


# -- float evaluation ------------------------------------------------------------
def to_time_major(attrs: RecurrentAttrs, x: np.ndarray) -> np.ndarray:
    return x if attrs.layout == 0 else np.swapaxes(x, 0, 1)


def initial_state(attrs: RecurrentAttrs, value: np.ndarray | None, batch: int) -> np.ndarray:
    """[D, B, H] float64 (zeros when omitted)."""
    if value is None:
        return np.zeros((attrs.num_directions, batch, attrs.hidden_size))
    value = np.asarray(value, np.float64)
    return value if attrs.layout == 0 else np.swapaxes(value, 0, 1)


def pack_outputs(attrs: RecurrentAttrs, ys: list[np.ndarray], finals: list[list[np.ndarray]], dtypes):
    """Y from per-direction [T, B, H] sequences, the final states from per-direction
    [B, H] lists, both in the op's layout; output k gets numpy type dtypes[k]."""
    y = np.stack(ys, axis=1)  # [T, D, B, H]
    states = [np.stack(per_direction, axis=0) for per_direction in zip(*finals)]  # [D, B, H] each
    if attrs.layout == 1:
        y = np.transpose(y, (2, 0, 1, 3))
        states = [np.swapaxes(s, 0, 1) for s in states]
    return [np.ascontiguousarray(v).astype(t) for v, t in zip((y, *states), dtypes)]


def time_steps(attrs: RecurrentAttrs, direction: int, length: int) -> range:
    reverse = attrs.direction == "reverse" or (attrs.direction == "bidirectional" and direction == 1)
    return range(length - 1, -1, -1) if reverse else range(length)


def _clip(attrs: RecurrentAttrs, v: np.ndarray) -> np.ndarray:
    return v if attrs.clip is None else np.clip(v, -attrs.clip, attrs.clip)


def _weights(inputs, d: int, gates: int, hidden: int):
    w, r = (np.asarray(inputs[k][d], np.float64) for k in (1, 2))
    given = len(inputs) > 3 and inputs[3] is not None
    b = np.asarray(inputs[3][d], np.float64) if given else np.zeros(2 * gates * hidden)
    return w, r, b[:gates * hidden], b[gates * hidden:]


def evaluate_float(op: str, attrs: RecurrentAttrs, inputs) -> list[np.ndarray]:
    x = to_time_major(attrs, np.asarray(inputs[0], np.float64))
    length, batch, _ = x.shape
    h0 = initial_state(attrs, inputs[5] if len(inputs) > 5 else None, batch)
    c0 = initial_state(attrs, inputs[6] if len(inputs) > 6 else None, batch)
    ys, cells, finals = [], [], []
    for d in range(attrs.num_directions):
        y, c, final = _direction(op, attrs, inputs, d, x, h0[d], c0[d])
        ys.append(y)
        cells.append(c)
        finals.append(final)
    outputs = pack_outputs(attrs, ys, finals, [inputs[0].dtype] * 3)
    if op == "LSTM":  # the IR-only cell sequence, for calibration
        outputs.append(np.stack(cells, axis=1).astype(inputs[0].dtype))
    return outputs


def _direction(op: str, attrs: RecurrentAttrs, inputs, d: int, x: np.ndarray, h: np.ndarray, c: np.ndarray):
    hidden = attrs.hidden_size
    w, r, wb, rb = _weights(inputs, d, GATES[op], hidden)
    p = inputs[7] if len(inputs) > 7 and inputs[7] is not None else None
    peep = None if p is None else np.asarray(p[d], np.float64).reshape(3, hidden)
    per_direction = len(DEFAULT_ACTIVATIONS[op])

    def act(k: int, v: np.ndarray, clip: bool) -> np.ndarray:
        return rnn_activations.apply(*attrs.activation(d, k, per_direction), _clip(attrs, v) if clip else v)

    y, cells = np.zeros((x.shape[0], *h.shape)), np.zeros((x.shape[0], *h.shape))
    for t in time_steps(attrs, d, x.shape[0]):
        xw = x[t] @ w.T + wb
        if op == "LSTM":
            h, c = lstm_step(attrs, xw, h @ r.T + rb, c, peep, act)
        elif op == "GRU":
            h = gru_step(attrs, xw, h, r, rb, act)
        else:
            h = act(0, xw + h @ r.T + rb, True)
        y[t], cells[t] = h, c
    return y, cells, ([h, c] if op == "LSTM" else [h])


def lstm_step(attrs: RecurrentAttrs, xw, hr, c, peep, act):
    """One LSTM step, on numpy arrays or torch tensors alike (nnc.train's twin
    runs it too): xw, hr the input and recurrent terms [B, 4H] (biases in),
    `act(k, v, clip)` the direction's activation k (f, g, h) of v, clipped to
    attrs.clip first when `clip`. Returns (h, c)."""
    hidden = attrs.hidden_size
    pre = xw + hr
    i, o, f, g = (pre[:, k * hidden:(k + 1) * hidden] for k in range(4))
    if peep is not None:
        i, f = i + peep[0] * c, f + peep[2] * c
    i = act(0, i, True)
    f = 1.0 - i if attrs.input_forget else act(0, f, True)
    c = f * c + i * act(1, g, True)
    if peep is not None:
        o = o + peep[1] * c
    return act(0, o, True) * act(2, c, False), c


def gru_step(attrs: RecurrentAttrs, xw, h, r, rb, act):
    """One GRU step, as lstm_step: xw [B, 3H] (W biases in), R [3H, H] and its
    biases rb apart (linear_before_reset applies r after R_h·h + Rb_h)."""
    hidden = attrs.hidden_size
    hr = h @ r[:2 * hidden].T + rb[:2 * hidden]
    z = act(0, xw[:, :hidden] + hr[:, :hidden], True)
    reset = act(0, xw[:, hidden:2 * hidden] + hr[:, hidden:], True)
    r_h, rb_h = r[2 * hidden:], rb[2 * hidden:]
    if attrs.linear_before_reset:
        candidate = xw[:, 2 * hidden:] + reset * (h @ r_h.T + rb_h)
    else:
        candidate = xw[:, 2 * hidden:] + (reset * h) @ r_h.T + rb_h
    return (1.0 - z) * act(1, candidate, True) + z * h


def _register(op: str):
    @register_op
    class Recurrent(OpDef):
        name = op
        Attrs = RecurrentAttrs
        param_inputs = (1, 2, 3, 7)

        @staticmethod
        def infer(attrs, inputs):
            check_inputs(op, attrs, inputs, FLOAT_TYPES)
            return output_types(op, attrs, inputs[0])

        @staticmethod
        def evaluate(attrs, inputs):
            return evaluate_float(op, attrs, inputs)

        @staticmethod
        def macs(attrs, inputs, outputs):
            t, b, i = sequence_dims(attrs, inputs[0].shape)
            h = attrs.hidden_size
            return t * b * attrs.num_directions * GATES[op] * h * (i + h)

    Recurrent.__name__ = Recurrent.__qualname__ = op
    return Recurrent


LSTM, GRU, RNN = (_register(op) for op in ("LSTM", "GRU", "RNN"))


# -- lowering from ONNX -------------------------------------------------------------
def recurrent_attrs(n: OnnxNode) -> RecurrentAttrs:
    op = n.op_type
    direction = n.attr("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else str(direction)
    if direction not in DIRECTIONS:
        raise n.unsupported(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    d = 2 if direction == "bidirectional" else 1
    names = n.attr("activations") or DEFAULT_ACTIVATIONS[op] * d
    if len(names) != len(DEFAULT_ACTIVATIONS[op]) * d:
        raise n.unsupported(f"needs {len(DEFAULT_ACTIVATIONS[op]) * d} activations, got {len(names)}")
    acts, alphas, betas = rnn_activations.resolve(names, n.attr("activation_alpha"), n.attr("activation_beta"),
                                                  f"{op} node {n.name!r}")
    hidden = n.attr("hidden_size")
    if hidden is None:
        hidden = n.input_types[2].shape[-1]
    clip = n.attr("clip")
    return RecurrentAttrs(int(hidden), direction, int(n.attr("layout", 0)), acts, alphas, betas,
                          None if clip is None else float(clip), bool(n.attr("input_forget", 0)),
                          bool(n.attr("linear_before_reset", 0)))


@lowers("LSTM", "GRU", "RNN")
def _lower_recurrent(n: OnnxNode):
    attrs = recurrent_attrs(n)
    inputs = list(n.inputs)
    if len(inputs) > 4 and inputs[4]:
        lengths = n.const_input(4, "sequence_lens")
        steps, _, _ = sequence_dims(attrs, n.input_types[0].shape)
        if np.any(np.asarray(lengths) != steps):
            raise n.unsupported(f"sequence_lens {np.asarray(lengths).tolist()} differ from the sequence length "
                                f"{steps} (ragged batches are not supported)")
        inputs[4] = ""
    while inputs and not inputs[-1]:
        inputs.pop()
    return Lowered(n.op_type, attrs, inputs)
