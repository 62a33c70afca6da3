"""Layer-by-layer parity of a written QDQ ONNX model with nnc's integer graph.

onnxruntime (graph optimizations off) computes each QDQ group in float32 and
rounds the result to the output grid; nnc's integer op rounds its exact
accumulator once, in fixed point. Given the same inputs the two differ by at
most one step, where the float result lies within rounding noise of a .5
boundary. Downstream that step is the next layer's input, so the outputs of a
deep model can differ by more (a Softmax turns one step of a logit into
several of a probability): the model's outputs bound nothing by themselves.

So each layer is checked on its own inputs: every tensor of the integer graph
that the ONNX graph also holds (each quantized activation keeps its name) is
read from onnxruntime, and each integer op is evaluated on onnxruntime's
values of its inputs (`probed_model` adds those tensors to the model's
outputs, `compare_layers` evaluates the ops). `LayerParity` keeps, per compared
tensor, the largest difference in steps of its grid (1 for an integer tensor,
the scale of the DequantizeLinear producing a float one).
"""

from __future__ import annotations

from dataclasses import field

import numpy as np
import onnx
from onnx import helper

from nnc import dtypes
from nnc.interpreter import check_inputs
from nnc.ir import Graph
from nnc.ops import get_op
from nnc.records import record


@record(frozen=False)
class LayerParity:
    """Per compared tensor: the producing op and the largest difference (LSB)."""

    ops: dict[str, str] = field(default_factory=dict)
    lsb: dict[str, float] = field(default_factory=dict)

    def worst(self) -> tuple[str, float] | None:
        """(tensor, LSB) of the largest difference; None when nothing was compared."""
        return max(self.lsb.items(), key=lambda item: item[1]) if self.lsb else None

    def add(self, op: str, tensor: str, lsb: float) -> None:
        self.ops[tensor] = op
        self.lsb[tensor] = max(self.lsb.get(tensor, 0.0), lsb)


def probed_model(reference: Graph, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of `model` whose outputs also include every non-constant tensor the
    integer graph shares with it (same name, type and shape); returns it and
    those tensors' names."""
    held = {info.name: (info.type.tensor_type.elem_type, [d.dim_value for d in info.type.tensor_type.shape.dim])
            for info in model.graph.value_info}
    shared = [name for name, t in reference.tensors.items()
              if held.get(name) == (dtypes.to_onnx(t.dtype), list(t.shape)) and not t.is_constant
              and name not in reference.inputs and name not in reference.outputs]
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    for name in shared:
        tensor = reference.tensor(name)
        probed.graph.output.append(helper.make_tensor_value_info(name, dtypes.to_onnx(tensor.dtype),
                                                                 list(tensor.shape)))
    return probed, shared


def compare_layers(reference: Graph, sample: dict, held: dict[str, np.ndarray], parity: LayerParity) -> None:
    """Evaluate each op of `reference` on onnxruntime's values (`held`) of its
    inputs where it has them, recording in `parity` how far each op's output is
    from onnxruntime's."""
    env = {name: t.data for name, t in reference.tensors.items() if t.is_constant}
    env.update(check_inputs(reference, sample))
    for node in reference.nodes():
        values = get_op(node.op).evaluate(node.attrs, [env[t] if t else None for t in node.inputs])
        for name, value in zip(node.outputs, values):
            if name in held:
                parity.add(node.op, name, _lsb(reference, name, value, held[name]))
                value = held[name]
            env[name] = value


def _lsb(graph: Graph, name: str, ours: np.ndarray, theirs: np.ndarray) -> float:
    diff = np.abs(np.asarray(ours, np.float64) - np.asarray(theirs, np.float64))
    producer = graph.producer(name)
    if graph.tensor(name).dtype in dtypes.FLOAT_TYPES and producer.op == "DequantizeLinear":
        diff = diff / float(graph.constant(producer.inputs[1]).reshape(-1)[0])
    return float(np.rint(np.max(diff, initial=0.0)))
