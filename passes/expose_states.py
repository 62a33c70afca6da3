"""expose-states: make the states of recurrent ops explicit graph inputs and
outputs, so that a caller can run a sequence in chunks (streaming).

Rewrites, for every LSTM, GRU and RNN node `n` (float IR, before quantize), and
each of its states s (h for all three, c for LSTM):
- the initial state (input 5 for h, 6 for c): when omitted or a constant of
  zeros, it becomes a new graph input `n.s_in` of the state's type
  ([num_directions, batch, hidden], or [batch, num_directions, hidden] with
  layout 1); an initial state that already is a graph input stays as it is;
- the final state (output 1 for h, 2 for c) becomes a graph output; when the
  model did not use it, it is produced under the new name `n.s_out`.
New graph inputs and outputs are appended in node order, h before c, and
each (initial, final) pair is recorded in `Graph.states`.

Running chunk after chunk, each chunk's `s_out` fed to the next chunk's `s_in`
and the first chunk's states zero, computes what one run over the whole
sequence computes: the recurrence only ever reads the previous step's state.
The pass refuses (UnsupportedError) reverse and bidirectional recurrences
(they read the sequence's future), an initial state that is a non-zero
constant or computed at run time (a reset to such a state is not a plain zero
fill), and `sequence_lens` (ragged batches).

Requires: a valid float graph. Guarantees: a valid graph whose original inputs
and outputs keep their names, types and order; with zero states fed in, the
original outputs are unchanged bit for bit.
"""

from __future__ import annotations


import numpy as np

from nnc.errors import UnsupportedError
from nnc.ir import Graph, Node, Tensor
from nnc.ops import get_op
from nnc.passmanager import Pass, register_pass
from nnc.records import record

# op -> (state name, initial-state input position, final-state output position)
STATES = {
    "LSTM": (("h", 5, 1), ("c", 6, 2)),
    "GRU": (("h", 5, 1),),
    "RNN": (("h", 5, 1),),
}
SEQUENCE_LENS = 4


@register_pass
@record
class ExposeStates(Pass):
    name = "expose-states"

    def run(self, graph: Graph) -> Graph:
        for node in graph.nodes():
            if node.op in STATES:
                _expose(graph, node)
        return graph


def _expose(graph: Graph, node: Node) -> None:
    inputs, outputs = list(node.inputs), list(node.outputs)
    if node.attrs.direction != "forward":
        raise UnsupportedError(f"{node.op} node {node.name!r}: streaming runs forward in time; a "
                               f"{node.attrs.direction} recurrence needs the whole sequence")
    if len(inputs) > SEQUENCE_LENS and inputs[SEQUENCE_LENS]:
        raise UnsupportedError(f"{node.op} node {node.name!r}: streaming needs equal-length sequences "
                               "(sequence_lens is given)")
    types = get_op(node.op).infer(node.attrs, [graph.tensor(t) if t else None for t in inputs])
    for state, in_pos, out_pos in STATES[node.op]:
        state_type = types[out_pos]
        inputs += [""] * (in_pos + 1 - len(inputs))
        inputs[in_pos] = _state_input(graph, node, state, inputs[in_pos], state_type)
        outputs += [""] * (out_pos + 1 - len(outputs))
        if not outputs[out_pos]:
            outputs[out_pos] = graph.add_tensor(Tensor(graph.unique_tensor_name(f"{node.name}.{state}_out"),
                                                       state_type.dtype, state_type.shape)).name
        if outputs[out_pos] not in graph.outputs:
            graph.outputs.append(outputs[out_pos])
        graph.states.append((inputs[in_pos], outputs[out_pos]))
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, node.op, inputs, outputs, node.attrs))
    for replaced in set(node.inputs) - set(inputs):
        if replaced and not graph.uses(replaced) and replaced not in graph.outputs:
            del graph.tensors[replaced]


def _state_input(graph: Graph, node: Node, state: str, current: str, state_type) -> str:
    """The graph input that carries the initial state (see the module docstring)."""
    if current and current in graph.inputs:
        return current
    if current:
        data = graph.constant(current)
        if data is None or np.any(data != 0):
            raise UnsupportedError(f"{node.op} node {node.name!r}: streaming needs a zero initial {state} "
                                   f"state or one given as a model input; {current!r} is "
                                   f"{'computed at run time' if data is None else 'a non-zero constant'}")
    name = graph.add_tensor(Tensor(graph.unique_tensor_name(f"{node.name}.{state}_in"), state_type.dtype,
                                   state_type.shape)).name
    graph.inputs.append(name)
    return name
