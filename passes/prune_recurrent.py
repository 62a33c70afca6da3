"""prune-channels on recurrent layers (LSTM, GRU, RNN): whole hidden units go.

As the pruned layer, a layer of hidden size H loses unit j in every gate and
direction (one hidden size covers both directions of a bidirectional layer):
rows g·H + j of W and R and entries of both halves of B, column j of R, entry
j of a constant initial state, and `hidden_size` shrinks. The units with the
smallest L1 norm of their W and R rows go. Its outputs Y, Y_h and Y_c (and the
IR's cell sequence) lose them on the last axis, where the cut continues.

A removed unit is not silent: its h and c settle where its gates' biases put
them (its weights taken as zero), which is what it carries on:
- LSTM: i, o, f, g of the biases, c = i·g / (1 − f) (the sum of at most T steps
  of a forget gate near 1), h = o·h_act(c);
- GRU: h = the candidate of the biases (z and r of the biases);
- RNN: h = act(b) (exact after one step).
The other units' R columns read that h (a GRU's candidate without
linear_before_reset reads r·h): it is folded into their recurrent bias. A
bidirectional layer's two directions carry the mean of their values past Y.
For a unit whose weights are zero and whose state is constant from the first
step (a forget or update gate near 0) the folds are exact, the recurrent one
when the initial state starts it there (else the first step reads the
initial state, and the cells remember that step).

As a consumer (its X loses channels), W loses those input columns and the
removed channels' constants go into the W half of B.

Refused (a reason, not an error): peepholes, input_forget, weights that are
not float constants, an initial state that is not a constant (a streaming
model's state input would change size), a hidden size of 1.
"""

from __future__ import annotations

import numpy as np

from nnc import dtypes
from nnc.ir import Graph, Node
from nnc.ops import rnn_activations
from nnc.ops.recurrent import GATES, sequence_dims

from .channel_edits import Cut, Edit, attrs_edit, bias_edit, f64, reinfer_edit, slice_edit

RECURRENT = tuple(GATES)
_W, _R, _B, _H0, _C0, _P = 1, 2, 3, 5, 6, 7  # input positions (ONNX order)


def producer_reason(graph: Graph, node: Node) -> str | None:
    """Why the hidden units of recurrent `node` cannot go, or None."""
    if _input(node, _P):
        return f"{node.op} {node.name!r} has peepholes"
    if node.attrs.input_forget:
        return f"{node.op} {node.name!r} couples its forget gate (input_forget)"
    if node.attrs.hidden_size < 2:
        return f"{node.op} {node.name!r} has one hidden unit"
    for index in (_W, _R, _B, _H0, _C0):
        name = _input(node, index)
        data = graph.constant(name) if name else None
        if name and (data is None or data.dtype.kind != "f"):
            what = "initial state" if index in (_H0, _C0) else "weights"
            return f"the {what} {name!r} of {node.op} {node.name!r} is not a float constant"
    return None


def unit_l1(graph: Graph, node: Node) -> np.ndarray:
    """[H]: the L1 norm of each hidden unit's W and R rows, over gates and directions."""
    return unit_norms(node, *(f64(graph.constant(node.inputs[i])) for i in (_W, _R)))


def unit_norms(node: Node, w: np.ndarray, r: np.ndarray) -> np.ndarray:
    """unit_l1 of recurrent `node` with weights `w` and `r` (float64)."""
    h = node.attrs.hidden_size
    return sum(np.abs(m).reshape(m.shape[0], GATES[node.op], h, -1).sum(axis=(0, 1, 3)) for m in (w, r))


def producer_cuts(graph: Graph, node: Node, removed: np.ndarray, edits: list[Edit]) -> list[tuple[str, Cut]]:
    """Append the edits that remove hidden units `removed` of `node`; return each
    used output with the cut it carries on (see the module docstring)."""
    h, gates = node.attrs.hidden_size, GATES[node.op]
    keep = np.setdiff1d(np.arange(h), removed)
    rows = (np.arange(gates)[:, None] * h + keep).reshape(-1)
    hidden, cell, fold = _settled(graph, node, removed)
    if np.any(fold):
        edits.append(bias_edit(node.name, np.concatenate([np.zeros_like(fold), fold], axis=1), _B))
    edits += [slice_edit(node.name, _W, 1, rows), slice_edit(node.name, _R, 1, rows),
              slice_edit(node.name, _R, 2, keep)]
    if _input(node, _B) or np.any(fold):  # the fold gives a layer without B one
        edits.append(slice_edit(node.name, _B, 1, np.concatenate([rows, gates * h + rows])))
    edits += [slice_edit(node.name, i, 2, keep) for i in (_H0, _C0) if _input(node, i)]
    edits += [attrs_edit(node.name, hidden_size=len(keep)), reinfer_edit(node.name, None)]
    values = {0: hidden, 1: hidden, 2: cell, 3: cell}  # Y, Y_h, Y_c, the IR's cell sequence
    cuts = []
    for index, name in enumerate(node.outputs):
        if name and (graph.consumers(name) or name in graph.outputs):
            tensor = graph.tensor(name)
            carried = values[index].mean(axis=0).astype(dtypes.to_numpy(tensor.dtype))
            cuts.append((name, Cut(len(tensor.shape) - 1, h, removed, carried)))
    return cuts


def into_recurrent(graph: Graph, node: Node, cut: Cut, edits, seen: set[str]) -> str | None:
    """`node` reads the channels as its X: W loses those columns and the W half
    of B absorbs their constants (the cut ends here: `seen` is unused, as for
    every consuming layer); the reason when it cannot."""
    if cut.axis != 2:
        return f"the channels are not the feature axis of {node.op} {node.name!r}'s input"
    for index in (_W, _B):
        name = _input(node, index)
        if name and (graph.constant(name) is None or graph.constant(name).dtype.kind != "f"):
            return f"the weights {name!r} of {node.op} {node.name!r} are not a float constant"
    w = f64(graph.constant(node.inputs[_W]))
    contribution = w[:, :, cut.removed] @ f64(cut.values)  # [D, G·H]
    if np.any(contribution):
        edits.append(bias_edit(node.name, np.concatenate([contribution, np.zeros_like(contribution)], axis=1), _B))
    edits.append(slice_edit(node.name, _W, 2, cut.keep))
    edits.ends[node.name] = cut.removed
    return None


def _settled(graph: Graph, node: Node, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """([D, k] h and [D, k] c where the removed units settle, [D, G·H] what the
    other units' R columns read of them, to fold into the recurrent bias)."""
    attrs, h, gates = node.attrs, node.attrs.hidden_size, GATES[node.op]
    dirs = attrs.num_directions
    b = f64(graph.constant(node.inputs[_B])) if _input(node, _B) else np.zeros((dirs, 2 * gates * h))
    r = f64(graph.constant(node.inputs[_R]))
    steps = sequence_dims(attrs, graph.tensor(node.inputs[0]).shape)[0]
    hidden, cell, fold = np.zeros((dirs, len(removed))), np.zeros((dirs, len(removed))), np.zeros((dirs, gates * h))
    for d in range(dirs):
        wb, rb = b[d, :gates * h], b[d, gates * h:]
        pre = [(wb + rb)[g * h + removed] for g in range(gates)]
        if attrs.clip is not None:
            pre = [np.clip(p, -attrs.clip, attrs.clip) for p in pre]
        act = lambda k, per, x: rnn_activations.apply(*attrs.activation(d, k, per), x)  # noqa: E731
        read = np.ones((gates, len(removed)))  # what each gate's R columns read, per unit of h
        if node.op == "LSTM":
            i, o, f, g = act(0, 3, pre[0]), act(0, 3, pre[1]), act(0, 3, pre[2]), act(1, 3, pre[3])
            cell[d] = i * g / np.maximum(1.0 - f, 1.0 / steps)
            hidden[d] = o * act(2, 3, cell[d])
        elif node.op == "GRU":
            reset = act(0, 2, pre[1])
            candidate = wb[2 * h + removed] + (reset * rb[2 * h + removed] if attrs.linear_before_reset
                                                else rb[2 * h + removed])
            hidden[d] = act(1, 2, candidate if attrs.clip is None else np.clip(candidate, -attrs.clip, attrs.clip))
            if not attrs.linear_before_reset:
                read[2] = reset
        else:
            hidden[d] = act(0, 1, pre[0])
        columns = r[d][:, removed].reshape(gates, h, len(removed))
        fold[d] = (columns * (read * hidden[d])[:, None, :]).sum(axis=2).reshape(-1)
    return hidden, cell, fold


def _input(node: Node, index: int) -> str:
    return node.inputs[index] if index < len(node.inputs) else ""
