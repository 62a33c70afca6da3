"""quantize: post-training int8 quantization of a float or QDQ graph.

Rewrites the graph into integer ops (QConv, QGemm, QAdd, QAveragePool, QSoftmax,
QLut, Requantize, and MaxPool/Reshape/Transpose/Concat/Pad/Clip on int8) that
compute docs/numerics.md exactly; see nnc.quantizer for the lowering rules.
- QDQ models keep their scales and zero points, int8 weights and int32 biases.
- Float activations get int8 asymmetric per-tensor parameters from calibration:
  the reference interpreter runs the samples of `calib` (.npz/.npy, matched to
  the inputs by name) or, when `calib` is empty, `samples` synthetic ones — with
  an NncWarning, given only when some activation actually needed calibration.
  `observer` picks the range: minmax, percentile (`percentile`), or mse.
- Float weights become int8 symmetric per output channel, float biases int32.

Requires: a valid graph after the CANONICAL pipeline (biases and activations
fused, layouts settled).

Guarantees: a valid integer graph (`driver.is_integer_graph`) with the same
input and output names and types: a float input gets a QuantizeLinear, a float
output a DequantizeLinear. Every multiply-accumulate layer is proved free of
int32 overflow. Quantization parameters are recorded on the tensors. Anything
that cannot be quantized raises one UnsupportedError naming the node and why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from nnc.calibration import OBSERVERS, calibrate
from nnc.errors import NncWarning, OptionError
from nnc.ir import Graph
from nnc.passmanager import Pass, register_pass
from nnc.quantizer import apply, check_supported, lower, plan
from nnc.verification import load_samples, synthetic_samples


@register_pass
@dataclass(frozen=True)
class Quantize(Pass):
    name = "quantize"
    calib: str = ""
    observer: str = "minmax"
    percentile: float = 99.99
    samples: int = 8

    def __post_init__(self):
        if self.observer not in OBSERVERS:
            raise OptionError(f"pass 'quantize': observer must be one of {', '.join(OBSERVERS)}, "
                              f"got {self.observer!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise OptionError(f"pass 'quantize': percentile must be in (50, 100], got {self.percentile}")
        if self.samples < 1:
            raise OptionError(f"pass 'quantize': samples must be at least 1, got {self.samples}")

    def run(self, graph: Graph) -> Graph:
        check_supported(graph)  # before calibrating: refuse early, warn for nothing
        the_plan = plan(graph)
        ranges = {}
        if the_plan.observed:
            ranges = calibrate(graph, self._samples(graph), the_plan.observed, self.observer, self.percentile)
        apply(graph, the_plan, ranges)
        lower(graph)
        return graph

    def _samples(self, graph: Graph):
        if self.calib:
            return load_samples(self.calib, graph)
        warnings.warn(f"quantization calibrated on {self.samples} synthetic random samples; "
                      "give --calib with real inputs for accurate activation ranges", NncWarning, stacklevel=2)
        return synthetic_samples(graph, self.samples)
