"""Post-training int8 quantization: a float or QDQ graph becomes an integer graph
that computes docs/numerics.md exactly.

Two sources of activation parameters, one lowering:
1. `annotate` brings float parts into QDQ form: QuantizeLinear → DequantizeLinear
   at every float activation (parameters observed on calibration samples, fixed
   by the function, or shared with the input of an op that only moves values),
   int8 per-channel weights and int32 biases behind DequantizeLinear. Parts that
   a QDQ model already quantizes keep their scales and zero points.
2. `lowering` replaces each group DequantizeLinear → float op → [Relu/Clip] →
   QuantizeLinear by integer ops (rules.py, linear.py), checks every
   multiply-accumulate layer against int32 overflow, and records the parameters
   on the tensors (`Tensor.quant`) for the backends.

Modules: params (activation parameters), weights (weights, biases, overflow
proof), groups (what one integer op replaces, rule registry), emit (graph
building helpers), rules / linear (per-op lowering), annotate, lowering.
"""

from .annotate import Plan, apply, plan  # noqa: F401
from .layer_weights import WeightSpec  # noqa: F401
from .lowering import check_supported, lower  # noqa: F401
