"""Fake quantizers of the training twin: the forward pass sees the values nnc's
integers stand for, the backward pass gets straight-through gradients.

- `round_ste`: round half to even forward (np.rint, as nnc rounds), identity
  backward (Bengio et al., "Estimating or Propagating Gradients Through
  Stochastic Neurons", 2013).
- `WeightQuantizer`: symmetric per-output-channel weights on the b-bit grid
  q ∈ [−L, L], L = 2^(b−1) − 1, with learnable scales (LSQ: Esser et al.,
  "Learned Step Size Quantization", ICLR 2020, gradient scaled by
  1/√(n · L), n the weights per channel), times the layer's keep-mask.
  Scales start at nnc's one-shot scales, so step 0 is nnc's post-training result.
- `CodebookQuantizer`: nnc's codebook form (quantizer/codebook.py): the
  int8 per-channel scales stay fixed, the nonzero weights share k integer
  centroids per tensor. Centroids are learnable (each gets the summed gradient
  of the weights assigned to it, the weight-sharing fine-tuning of Han et al.,
  "Deep Compression", ICLR 2016) and the assignments are refreshed at every
  forward pass from the latent weights, which keep learning through the
  straight-through estimator: self-adjusting centroids. A pruned tensor
  stores 0 as one of its 2^b values, so there k − 1 centroids train and any
  weight may also take 0.
- `ActivationQuantizer`: int8 asymmetric per-tensor, the range [lo, hi] that
  nnc's affine_from_range turns into scale and zero point; the range starts
  at the calibration min/max and then follows an exponential moving average of
  each training batch's min/max (frozen in eval mode).
Invariant: `integers()` of a weight quantizer are exactly the int8 values the
forward pass multiplies by `scale()` (export relies on it).
"""

from __future__ import annotations

import numpy as np
import torch

from nnc.quantizer.codebook import LIMIT, cluster
from nnc.quantizer.params import Affine, affine_from_range

EMA_MOMENTUM = 0.99


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _scaled_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """x forward; its gradient multiplied by `factor` backward."""
    return (x - x * factor).detach() + x * factor


def _per_channel(values: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


class WeightQuantizer(torch.nn.Module):
    """b-bit symmetric per-channel fake quantization with learnable scales."""

    def __init__(self, scale: np.ndarray, bits: int, axis: int, shape: tuple[int, ...]):
        super().__init__()
        self.limit = (1 << (bits - 1)) - 1
        self.axis, self.ndim = axis, len(shape)
        self.log_scale = torch.nn.Parameter(torch.tensor(np.log(np.asarray(scale, np.float64)), dtype=torch.float32))
        per_channel = int(np.prod(shape)) // int(shape[axis])
        self.grad_factor = 1.0 / float(np.sqrt(max(per_channel, 1) * self.limit))

    def scale(self) -> torch.Tensor:
        return torch.exp(self.log_scale)

    def forward(self, w: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        s = _per_channel(_scaled_grad(self.scale(), self.grad_factor), self.ndim, self.axis)
        q = torch.clamp(round_ste(w / s), -self.limit, self.limit)
        return q * s * keep

    def integers(self, w: torch.Tensor, keep: torch.Tensor, scale: torch.Tensor | None = None) -> np.ndarray:
        """The int8 weights at `scale` (default: the learned scales)."""
        s = _per_channel(self.scale() if scale is None else scale, self.ndim, self.axis)
        q = torch.clamp(torch.round(w / s), -self.limit, self.limit) * keep
        return q.detach().numpy().astype(np.int8)

    def grid_penalty(self, w: torch.Tensor) -> torch.Tensor:
        """Mean squared distance of w / s to the nearest grid point (pulls the
        latent weights onto the grid; Nagel et al., "Overcoming Oscillations in
        Quantization-Aware Training", ICML 2022, dampening)."""
        u = w / _per_channel(self.scale().detach(), self.ndim, self.axis)
        return torch.mean((u - torch.round(torch.clamp(u, -self.limit, self.limit)).detach()) ** 2)


class CodebookQuantizer(torch.nn.Module):
    """k shared integer centroids per tensor over nnc's int8 per-channel scales."""

    def __init__(self, scale: np.ndarray, w: np.ndarray, keep: np.ndarray, entries: int, axis: int):
        super().__init__()
        self.axis, self.ndim = axis, w.ndim
        self.register_buffer("fixed_scale", torch.tensor(np.asarray(scale, np.float32)))
        units = np.asarray(w, np.float64) / _numpy_per_channel(scale, w.ndim, axis)
        nonzero = units[keep & (units != 0)]
        self.zero_entry = not keep.all() and entries > 1  # a pruned tensor stores 0 besides k − 1 centroids
        k = entries - 1 if self.zero_entry else entries
        centroids = np.clip(cluster(nonzero, k), -LIMIT, LIMIT) if nonzero.size else np.zeros(1)
        self.centroids = torch.nn.Parameter(torch.tensor(centroids, dtype=torch.float32))

    def scale(self) -> torch.Tensor:
        return self.fixed_scale

    def _assigned(self, u: torch.Tensor) -> torch.Tensor:
        """Integer centroid (rounded, straight-through to the centroids) nearest each unit value."""
        table = torch.clamp(round_ste(self.centroids), -LIMIT, LIMIT)
        if self.zero_entry:  # zero is a table entry anyway: unpruned weights may take it too
            table = torch.cat([table, torch.zeros(1)])
        nearest = torch.argmin(torch.abs(u.detach().reshape(-1, 1) - table.detach().reshape(1, -1)), dim=1)
        return table[nearest].reshape(u.shape)

    def forward(self, w: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        s = _per_channel(self.fixed_scale, self.ndim, self.axis)
        u = w / s
        return (self._assigned(u) + u - u.detach()) * s * keep

    def integers(self, w: torch.Tensor, keep: torch.Tensor, scale: torch.Tensor | None = None) -> np.ndarray:
        """The int8 weights (the scales are fixed: `scale` is ignored)."""
        u = w / _per_channel(self.fixed_scale, self.ndim, self.axis)
        return (self._assigned(u) * keep).detach().numpy().astype(np.int8)

    def grid_penalty(self, w: torch.Tensor) -> torch.Tensor:
        u = w / _per_channel(self.fixed_scale, self.ndim, self.axis)
        return torch.mean((u - self._assigned(u).detach()) ** 2)


def _numpy_per_channel(scale: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(scale, np.float64).reshape(shape)


class ActivationQuantizer(torch.nn.Module):
    """int8 asymmetric fake quantization over a tracked range [lo, hi] ∋ 0."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.register_buffer("range", torch.tensor([min(lo, 0.0), max(hi, 0.0)], dtype=torch.float64))

    def bounds(self) -> tuple[float, float]:
        lo, hi = self.range.tolist()
        return lo, hi

    def observe(self, x: torch.Tensor) -> None:
        """Move the range towards the batch's; a batch with NaN or infinite
        values leaves it alone (the loss shows them, and fit stops)."""
        batch = torch.stack([torch.clamp(x.detach().min(), max=0.0), torch.clamp(x.detach().max(), min=0.0)])
        if not torch.isfinite(batch).all():
            return
        self.range.mul_(EMA_MOMENTUM).add_(batch.to(torch.float64), alpha=1.0 - EMA_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.observe(x)
        return self.quantize(x)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """x fake-quantized at the current range, which it does not move."""
        return fake_quantize(x, affine_from_range(*self.bounds()))


def fake_quantize(x: torch.Tensor, affine: Affine) -> torch.Tensor:
    """x on `affine`'s grid (saturated to its integer type), straight-through."""
    q = torch.clamp(round_ste(x / affine.scale) + affine.zero_point, *affine.qrange)
    return (q - affine.zero_point) * affine.scale
