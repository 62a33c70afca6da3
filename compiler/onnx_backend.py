"""nnc's reference interpreter as an `onnx.backend.base.Backend`, so ONNX's own
backend node tests (onnx.backend.test) can run against nnc's front end and op
semantics. No passes run: this checks lowering and the reference ops."""

from __future__ import annotations

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from .frontend.onnx_loader import lower_model
from .interpreter import run


class NncBackendRep(BackendRep):
    def __init__(self, graph):
        self.graph = graph

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            feeds = dict(zip(self.graph.inputs, inputs))
        outputs = run(self.graph, feeds)
        return tuple(outputs[name] for name in self.graph.outputs)


class NncBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> NncBackendRep:
        return NncBackendRep(lower_model(model, {}))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
