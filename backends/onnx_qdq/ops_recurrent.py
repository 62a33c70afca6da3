"""ONNX writers of the float recurrent ops LSTM, GRU and RNN (a fine-tuned
model's recurrent layers: nnc.train exports them float, between Q/DQ pairs).

Inputs and outputs are ONNX's own order (compiler/ops/recurrent.py keeps it);
the IR-only fourth output of an LSTM, the cell sequence, is not written.
Its power-of-two scale, which the twin trained with, goes into the model's
metadata as `nnc.cell_scale.<node name>` (recurrent_plan.CELL_SCALE_KEY), where nnc's front
end reads it back so that the model compiles as the .nnir does; other tools
ignore it. Activation parameters are written for the activations that take
them, in order, as ONNX consumes the lists (ops/rnn_activations.py).
"""

from __future__ import annotations

from nnc.ir import Node
from nnc.ops import rnn_activations
from nnc.ops.recurrent import DEFAULT_ACTIVATIONS
from nnc.quantizer.recurrent_plan import CELL_SCALE_KEY

from .writer import OnnxBuilder, writes


@writes("LSTM", "GRU", "RNN")
def _recurrent(out: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    defaults = DEFAULT_ACTIVATIONS[node.op] * a.num_directions
    used = [(alpha, beta, *rnn_activations.PARAMETERS[name]) for name, alpha, beta
            in zip(a.activations, a.activation_alpha, a.activation_beta)]
    alphas = [alpha for alpha, _, default_alpha, _ in used if default_alpha is not None]
    betas = [beta for _, beta, _, default_beta in used if default_beta is not None]
    out.add(node.op, list(node.inputs), list(node.outputs[:3]), node.name, hidden_size=a.hidden_size,
            direction=a.direction, layout=a.layout or None, clip=a.clip,
            activations=None if tuple(a.activations) == defaults else list(a.activations),
            activation_alpha=alphas or None, activation_beta=betas or None,
            input_forget=int(a.input_forget) if a.input_forget else None,
            linear_before_reset=int(a.linear_before_reset) if a.linear_before_reset else None)
    cells = node.outputs[3] if len(node.outputs) > 3 else ""
    quant = out.graph.tensor(cells).quant if cells else None
    if quant is not None:
        out.metadata[CELL_SCALE_KEY + node.name] = repr(float(quant.scale[0]))
