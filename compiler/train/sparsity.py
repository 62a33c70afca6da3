"""Pruning masks during training: which weights of a layer are zero at a step.

- Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune: exploring
  the efficacy of pruning for model compression", ICLR workshop 2018, eq. 1): the
  sparsity at progress p ∈ [0, 1] of training rises from 0 to the layer's target
  s_f as s_f · (1 − (1 − p')^3), p' = p / RAMP clipped to 1, so the last
  (1 − RAMP) of training runs at the target and the weights recover from the
  last cut. The mask zeroes the round(s · n) smallest |w| of the layer (ties
  broken by position), as nnc's prune pass does.
- N:M (`pattern`): in every group of M consecutive weights of an output
  channel, all but the N largest |w| are zero, from the first step (the
  pattern has no intermediate sparsity); recomputed from |w| at every update,
  so a weight can win its place back.

Masks are numpy bool arrays in the IR weight layout, True where the weight is
*kept*. Only what the forward pass multiplies by the mask learns; a pruned
weight keeps its latent value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnc.passes.prune import pattern_mask, smallest_mask

RAMP = 0.75  # share of training over which the sparsity rises to its target


def scheduled(target: float, progress: float) -> float:
    """The sparsity at `progress` (0 at the start of training, 1 at the end)."""
    p = min(max(progress / RAMP, 0.0), 1.0)
    return target * (1.0 - (1.0 - p) ** 3)


@dataclass(frozen=True)
class MaskRule:
    """How one layer is pruned: `target` sparsity by magnitude, or the N:M `pattern`
    (then target is 1 − N/M); `out_axis` is the output-channel axis of the IR
    weight layout (N:M groups run along each output channel's weights)."""

    target: float = 0.0
    pattern: tuple[int, int] | None = None
    out_axis: int = 0

    @property
    def prunes(self) -> bool:
        return self.target > 0

    def keep(self, w: np.ndarray, progress: float) -> np.ndarray:
        """The keep-mask of weights `w` at `progress`."""
        magnitude = np.abs(np.asarray(w, np.float64))
        if self.pattern is not None:
            rows = np.moveaxis(magnitude, self.out_axis, 0)
            pruned = pattern_mask(rows.reshape(rows.shape[0], -1), *self.pattern).reshape(rows.shape)
            return ~np.moveaxis(pruned, 0, self.out_axis)
        pruned = smallest_mask(magnitude, scheduled(self.target, progress))
        return ~pruned.reshape(w.shape)
