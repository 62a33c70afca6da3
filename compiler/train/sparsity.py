"""Pruning masks during training: which weights of a layer are zero at a step.

- Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune: exploring
  the efficacy of pruning for model compression", ICLR workshop 2018, eq. 1): the
  sparsity at progress p ∈ [0, 1] of training rises from 0 to the layer's target
  s_f as s_f · (1 − (1 − p')^3), p' = p / RAMP clipped to 1, so the last
  (1 − RAMP) of training runs at the target and the weights recover from the
  last cut. The mask zeroes the round(s · n) smallest |w| of the layer (ties
  broken by position), as nnc's prune pass does.
- Channels (`channels`): the output channels with the smallest L1 norm go
  whole, on the same schedule (their bias is masked with them); export then
  removes them from the graph with nnc's prune-channels plan (Li et al.,
  "Pruning Filters for Efficient ConvNets", ICLR 2017, ranked and removed
  gradually instead of at once).
- N:M (`pattern`): in every group of M consecutive weights of an output
  channel, all but the N largest |w| are zero, from the first step (the
  pattern has no intermediate sparsity); recomputed from |w| at every update,
  so a weight can win its place back.

Masks are numpy bool arrays in the IR weight layout, True where the weight is
*kept*. Only what the forward pass multiplies by the mask learns; a pruned
weight keeps its latent value.
"""

from __future__ import annotations


import numpy as np

from ..records import record
from nnc.passes.prune import pattern_mask, smallest_mask

RAMP = 0.75  # share of training over which the sparsity rises to its target


def scheduled(target: float, progress: float) -> float:
    """The sparsity at `progress` (0 at the start of training, 1 at the end)."""
    p = min(max(progress / RAMP, 0.0), 1.0)
    return target * (1.0 - (1.0 - p) ** 3)


@record
class MaskRule:
    """How one layer is pruned: `channels` whole output channels (the smallest L1
    norms, gradually, as nnc's prune-channels pass ranks them), then `target`
    sparsity by magnitude among the weights of the other channels, or the N:M
    `pattern` (target is then 1 − N/M); `out_axis` is the output-channel axis of
    the IR weight layout (N:M groups run along each output channel's weights)."""

    target: float = 0.0
    pattern: tuple[int, int] | None = None
    out_axis: int = 0
    channels: int = 0

    @property
    def prunes(self) -> bool:
        return self.target > 0 or self.channels > 0

    def keep(self, w: np.ndarray, progress: float, norms: np.ndarray | None = None) -> np.ndarray:
        """The keep-mask of weights `w` at `progress`; `norms`: the per-channel L1
        norms the channels are ranked by (a group of tied layers' sum; default
        the layer's own)."""
        magnitude = np.abs(np.asarray(w, np.float64))
        keep = self._channel_keep(magnitude, progress, norms)
        if self.pattern is not None:
            rows = np.moveaxis(magnitude, self.out_axis, 0)
            pruned = pattern_mask(rows.reshape(rows.shape[0], -1), *self.pattern).reshape(rows.shape)
            return keep & ~np.moveaxis(pruned, 0, self.out_axis)
        if self.target:
            kept = np.where(keep, magnitude, np.inf)
            count = round(scheduled(self.target, progress) * int(keep.sum()))
            keep &= ~smallest_mask(kept, count / kept.size).reshape(w.shape)
        return keep

    def _channel_keep(self, magnitude: np.ndarray, progress: float, norms: np.ndarray | None) -> np.ndarray:
        """Mask zeroing the scheduled share of the `channels` smallest-L1 output channels."""
        keep = np.ones(magnitude.shape, bool)
        if not self.channels:
            return keep
        if norms is None:
            norms = channel_norms(magnitude, self.out_axis)
        count = round(scheduled(self.channels / len(norms), progress) * len(norms))
        dropped = np.argsort(norms, kind="stable")[:count]
        np.moveaxis(keep, self.out_axis, 0)[dropped] = False
        return keep


def channel_norms(w: np.ndarray, out_axis: int) -> np.ndarray:
    """The L1 norm of each output channel's weights."""
    magnitude = np.abs(np.asarray(w, np.float64))
    return np.moveaxis(magnitude, out_axis, 0).reshape(magnitude.shape[out_axis], -1).sum(axis=1)
