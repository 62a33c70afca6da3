"""nnc's reference interpreter as an `onnx.backend.base.Backend`, so ONNX's own
backend node tests (onnx.backend.test) and any caller of ONNX's backend API can
run models through nnc's front end and op semantics. No passes run: this checks
lowering and the reference ops.

Shapes in nnc are static: an operand that fixes an output shape, an index
mapping or an iteration extent (Reshape's shape, Slice's starts, Resize's
scales, a Reduce's axes, an LSTM's sequence_lens, ...; see SHAPE_OPERANDS) must
be a constant. When a model feeds such an operand as a graph input, the
prepared model is specialized on its value at `run`: the value becomes an
initializer, the front end folds what it can, and the graph is lowered and kept
for that value. A later run with other values gets its own
graph, so every run computes what the ONNX model computes. Graph inputs in any
other position stay run-time inputs (a Clip bound or a quantization scale fed
at run time is refused, as nnc refuses it when compiling).

Invariants: `run` takes the model's inputs (without initializers) in order or
by name, and returns the model's outputs in order; a value fed for a frozen
operand must have the declared type and shape, else ShapeError.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep

from .errors import ShapeError
from .frontend.onnx_loader import lower_model
from .interpreter import run
from .ir import Graph

_REDUCE_OPS = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
               "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")

# op type -> positions of the inputs that fix output shapes, index mappings or
# iteration extents (a recurrent op's sequence_lens)
SHAPE_OPERANDS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Split": (1,),
    "Squeeze": (1,), "Unsqueeze": (1,), "Pad": (1, 3), "Resize": (1, 2, 3), "Upsample": (1,),
    "ConstantOfShape": (0,), "LSTM": (4,), "GRU": (4,), "RNN": (4,), "CumSum": (1,),
    **{op: (1,) for op in _REDUCE_OPS},
}


def shape_operand_inputs(model: onnx.ModelProto) -> list[str]:
    """The graph inputs (not initializers) that some node reads as a shape operand,
    in graph-input order."""
    initializers = {t.name for t in model.graph.initializer}
    operands = {node.input[i] for node in model.graph.node if node.domain in ("", "ai.onnx")
                for i in SHAPE_OPERANDS.get(node.op_type, ()) if i < len(node.input)}
    return [v.name for v in model.graph.input if v.name in operands and v.name not in initializers]


class NncBackendRep(BackendRep):
    def __init__(self, model: onnx.ModelProto):
        initializers = {t.name for t in model.graph.initializer}
        self.model = model
        self.inputs = [v.name for v in model.graph.input if v.name not in initializers]
        self.frozen = shape_operand_inputs(model)
        self._graphs: dict[tuple, Graph] = {}
        if not self.frozen:
            self._graphs[()] = lower_model(model, {})

    def run(self, inputs, **kwargs):
        feeds = self._feeds(inputs)
        graph = self._graph_for({name: feeds[name] for name in self.frozen})
        outputs = run(graph, {name: value for name, value in feeds.items() if name not in self.frozen})
        return tuple(outputs[name] for name in graph.outputs)

    def _feeds(self, inputs) -> dict[str, np.ndarray]:
        if isinstance(inputs, dict):
            return dict(inputs)
        inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        if len(inputs) != len(self.inputs):
            raise ShapeError(f"{len(inputs)} inputs given, the model has {len(self.inputs)}: {self.inputs}")
        return dict(zip(self.inputs, inputs))

    def _graph_for(self, values: dict[str, np.ndarray]) -> Graph:
        missing = [name for name in self.frozen if name not in values]
        if missing:
            raise ShapeError(f"inputs do not match the model: missing {missing}; expected {self.inputs}")
        values = {name: _declared(self.model, name, value) for name, value in values.items()}
        key = tuple((name, v.dtype.str, v.shape, v.tobytes()) for name, v in values.items())
        if key not in self._graphs:
            self._graphs[key] = lower_model(_frozen(self.model, values), {})
        return self._graphs[key]


class NncBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> NncBackendRep:
        return NncBackendRep(model)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


def _declared(model: onnx.ModelProto, name: str, value) -> np.ndarray:
    """`value` as the declared type of input `name`; ShapeError if it is not that type and shape."""
    tensor_type = next(v for v in model.graph.input if v.name == name).type.tensor_type
    value = np.asarray(value)
    expected = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    shape_ok = len(dims) == value.ndim and all(d in (None, n) for d, n in zip(dims, value.shape))
    if value.dtype != expected or not shape_ok:
        raise ShapeError(f"input {name!r} is {value.dtype}{list(value.shape)}, the model expects "
                         f"{expected}{['?' if d is None else d for d in dims]}")
    return value


def _frozen(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` whose inputs `values` are initializers of those values."""
    frozen = onnx.ModelProto()
    frozen.CopyFrom(model)
    kept = [v for v in frozen.graph.input if v.name not in values]
    del frozen.graph.input[:]
    frozen.graph.input.extend(kept)
    frozen.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())
    return frozen
