"""quantize: post-training int8 quantization of a float or QDQ graph.

Rewrites the graph into integer ops (QConv, QGemm, QAdd, QAveragePool, QSoftmax,
QLogSoftmax, QLut, Requantize, and MaxPool/Reshape/Transpose/Concat/Pad/Clip on int8) that
compute docs/numerics.md exactly; see nnc.quantizer for the lowering rules.
- ConvTranspose is first rewritten into one Conv over its output phases and
  a depth-to-space (quantizer/conv_transpose.py), exact, so it runs as a QConv.
- A Div of two activations is rewritten into a Reciprocal table and a Mul
  (quantizer/divide.py), and an AveragePool that does not count its padding
  into a uniform AveragePool and a Mul by K / count
  (quantizer/average_pool.py), before calibration, which ranges the new
  tensors too; a Mul and an Add by per-channel constants become one
  BatchNormalization (quantizer/channel_affine.py), one QAffine.
- QDQ models keep their scales and zero points, int8 weights and int32 biases.
- Float activations get int8 asymmetric per-tensor parameters from calibration:
  the reference interpreter runs the samples of `calib` (.npz/.npy, matched to
  the inputs by name) or, when `calib` is empty, `samples` synthetic ones — with
  an NncWarning, given only when some activation actually needed calibration.
  `observer` picks the range: minmax, percentile (`percentile`), or mse.
- Float weights become int8 symmetric per output channel, float biases int32.
  `weight_bits` (2..8) narrows the weight grid to ±(2^(b−1)−1); `first_last_bits`
  (0: the same) sets it for the first and last weighted layer; `overrides`
  ("conv1:8,Gemm:6", by layer name or op type) for any layer. `codebook`
  snaps each weight tensor to 2^b k-means centroids instead. QDQ models'
  weights are re-quantized only when a layer's setting asks for it.
- `ranges`: a JSON file of activation ranges that an earlier compile wrote
  with `save_ranges`; the tensors it names take those ranges instead of being
  calibrated (a streaming compile reuses the whole-sequence compile's ranges, so
  both quantize alike). `save_ranges` writes every calibrated range used,
  once calibrated (valid ranges: a later failing step leaves the file), over
  nothing but an earlier ranges file (checked before any work).
- `bias_correction` (with `calib` only: synthetic inputs have no meaningful
  mean) moves each layer's mean output error into its bias
  (quantizer/layer_weights.py).
- `method=obs` (with `calib`; per layer `method_overrides`): layers below 8
  bits or with a codebook are rounded by GPTQ (compiler/obs.py) on exactly the
  grid and scales rounding to nearest would use, from their inputs' statistics
  on the samples (one more interpreter run; `damping`); weights that are 0 (a
  pruned layer) stay 0. 8-bit layers keep rounding to nearest. Calibration and
  those statistics run with BLAS on one thread.
- `lower=false` stops after annotation: the graph stays in QDQ form (float ops
  between QuantizeLinear/DequantizeLinear, integer weights and biases behind
  DequantizeLinear), the form target onnx writes; `nnc.quantizer.lower` of it
  is the integer graph the pass would have produced.

Requires: a valid graph after the CANONICAL pipeline (biases and activations
fused, layouts settled).

Guarantees: a valid integer graph (`verify_step.is_integer_graph`) with the same
input and output names and types: a float input gets a QuantizeLinear, a float
output a DequantizeLinear. Every multiply-accumulate layer is proved free of
int32 overflow. Quantization parameters are recorded on the tensors. Anything
that cannot be quantized raises one UnsupportedError naming the node and why.
"""

from __future__ import annotations

import warnings

from nnc.calibration import (
    OBSERVERS,
    calibrate,
    check_ranges_destination,
    ranges_and_means,
    read_ranges,
    write_ranges,
)
from nnc.errors import NncWarning, OptionError
from nnc.ir import Graph, Node
from nnc.layer_select import parse_overrides, settings, warn_left_out, weighted_layers
from nnc.limits import MAX_OBS_FAN_IN
from nnc.obs_options import DAMPING, check_damping, fallback_warning, method_settings, parse_methods
from nnc.passmanager import Pass, register_pass
from nnc.quality import calibration_warning
from nnc.quantizer import WeightSpec, apply, check_supported, lower, plan
from nnc.quantizer.conv_transpose import rewrite_conv_transposes
from nnc.quantizer.average_pool import rewrite_partial_windows
from nnc.quantizer.channel_affine import rewrite_channel_affines
from nnc.quantizer.divide import rewrite_divisions
from nnc.records import record
from nnc.verification import load_samples, synthetic_samples


@register_pass
@record
class Quantize(Pass):
    name = "quantize"
    calib: str = ""
    observer: str = "minmax"
    percentile: float = 99.99
    samples: int = 8
    weight_bits: int = 8
    first_last_bits: int = 0
    overrides: str = ""
    codebook: bool = False
    bias_correction: bool = True
    ranges: str = ""
    save_ranges: str = ""
    method: str = "magnitude"
    method_overrides: str = ""
    damping: float = DAMPING
    lower: bool = True

    def __post_init__(self):
        for option, bits in (("weight_bits", self.weight_bits), ("first_last_bits", self.first_last_bits or 8)):
            _check_bits(f"pass 'quantize': {option}", bits)
        self._bits_overrides()
        if self.observer not in OBSERVERS:
            raise OptionError(f"pass 'quantize': observer must be one of {', '.join(OBSERVERS)}, "
                              f"got {self.observer!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise OptionError(f"pass 'quantize': percentile must be in (50, 100], got {self.percentile}")
        if self.samples < 1:
            raise OptionError(f"pass 'quantize': samples must be at least 1, got {self.samples}")
        check_damping("pass 'quantize'", self.damping)
        parse_methods("pass 'quantize'", self.method, self.method_overrides)
        if self.save_ranges:
            check_ranges_destination(self.save_ranges)

    def run(self, graph: Graph) -> Graph:
        rewrite_conv_transposes(graph)  # into a phase Conv, which has an integer lowering
        rewrite_divisions(graph)  # a / b of two activations: a · Reciprocal(b), two tables' worth of ops
        rewrite_partial_windows(graph)  # average pools not counting their padding: uniform pool · K / count
        rewrite_channel_affines(graph)  # x · k + c per channel: one BatchNormalization, one QAffine
        check_supported(graph)  # before calibrating: refuse early, warn for nothing
        the_plan = plan(graph)
        specs = self._specs(graph)
        asked = self._asked(specs)
        if asked:
            warn_left_out(graph, f"pass 'quantize' ({asked})", "at int8")
        ranges, means = ({} if not self.ranges else read_ranges(self.ranges)), {}
        unknown = [name for name in the_plan.observed if name not in ranges]
        if self.bias_correction and self.calib:  # one interpreter run per sample for both
            inputs = {n.name: (n.inputs[0], _channel_axis(n)) for n in weighted_layers(graph)}
            samples = self._samples(graph, calibrating=bool(unknown))
            found, by_tensor = ranges_and_means(graph, samples, unknown, self.observer, self.percentile,
                                                dict(inputs.values()))
            ranges.update(found)
            means = {name: by_tensor[tensor] for name, (tensor, _) in inputs.items() if tensor in by_tensor}
        elif unknown:
            samples = self._samples(graph)
            ranges.update(calibrate(graph, samples, unknown, self.observer, self.percentile))
        if self.save_ranges:
            write_ranges(self.save_ranges, {name: ranges[name] for name in the_plan.observed})
        apply(graph, the_plan, ranges, specs, means, self._statistics(graph, specs))
        if self.lower:
            lower(graph)
        return graph

    def _statistics(self, graph: Graph, specs: dict[str, WeightSpec]) -> dict:
        """Input statistics of the layers GPTQ quantizes: method obs, below 8 bits
        or by codebook (at 8 bits rounding to nearest loses nothing measurable)."""
        wanted = [n for n in weighted_layers(graph) if specs[n.name].method == "obs" and not specs[n.name].is_default]
        if not wanted:
            return {}
        if not self.calib:
            fallback_warning("pass 'quantize'", [n.name for n in wanted], "needs calibration samples (calib)")
            return {}
        from nnc.hessian import too_large
        from nnc.obs_layers import layer_statistics

        fallback_warning("pass 'quantize'", [n.name for n in wanted if too_large(graph, n)],
                         f"is limited to fan-in {MAX_OBS_FAN_IN}")
        return layer_statistics(graph, wanted, load_samples(self.calib, graph))

    def _asked(self, specs: dict[str, WeightSpec]) -> str:
        """What the pass asks for beyond int8, in words ("" for nothing): any of
        it on a graph without weighted layers, else what some layer got."""
        wanted = [f"{2 ** self.weight_bits}-entry codebooks" if self.codebook else f"{self.weight_bits}-bit weights"]
        if self.first_last_bits not in (0, 8):
            wanted.append(f"{self.first_last_bits}-bit first and last layers")
        if self.overrides:
            wanted.append("per-layer bits")
        if specs and all(spec.is_default for spec in specs.values()):
            return ""
        return ", ".join(wanted[0 if self.codebook or self.weight_bits != 8 else 1:])

    def _bits_overrides(self) -> dict[str, int]:
        def bits(text: str) -> int:
            value = int(text)
            _check_bits("bits", value)
            return value

        return parse_overrides(self.overrides, "pass 'quantize': overrides (--layer-bits)", bits)

    def _specs(self, graph: Graph) -> dict[str, WeightSpec]:
        """The WeightSpec of every weighted layer."""
        bits = settings(graph, self._bits_overrides(), self.weight_bits, "pass 'quantize': overrides (--layer-bits)",
                        self.first_last_bits or None)
        methods = method_settings(graph, "pass 'quantize'", self.method, self.method_overrides)
        return {name: WeightSpec(b, self.codebook, methods[name], self.damping) for name, b in bits.items()}

    def _samples(self, graph: Graph, calibrating: bool = True):
        """The calibration samples; warns when activations are calibrated on few or synthetic ones."""
        if self.calib:
            samples = load_samples(self.calib, graph)
            message = calibration_warning(len(samples)) if calibrating else None
            if message:
                warnings.warn(message, NncWarning, stacklevel=2)
            return samples
        warnings.warn(f"quantization calibrated on {self.samples} synthetic random samples; "
                      "give calib (--calib) with real inputs for accurate activation ranges", NncWarning, stacklevel=2)
        return synthetic_samples(graph, self.samples)


def _check_bits(what: str, bits: int) -> None:
    if not 2 <= bits <= 8:
        raise OptionError(f"{what} must be in 2..8, got {bits}")


def _channel_axis(node: Node) -> int:
    """The channel axis of a weighted layer's input: features last, except NCHW Conv
    and Gemm with trans_a (its input is [K, M], features first)."""
    if node.op == "Gemm" and node.attrs.trans_a:
        return 0
    return 1 if node.op == "Conv" and not node.attrs.channels_last else -1
