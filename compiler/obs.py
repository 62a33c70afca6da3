"""One-shot second-order compression of a layer: the Optimal Brain Surgeon family.

A layer's weights are W [G, R, C] and its inputs' Hessian H [G, C, C]
(compiler/layer_rows.py, compiler/hessian.py): changing W_g by Δ costs
Δ H_g Δᵀ in squared output error on the calibration rows. The first K columns
are weights; `frozen` trailing columns (the bias as the weight of an input
that is always 1) are never pruned or rounded but take their share of the
compensation. OBS (Hassibi & Stork, NeurIPS 1992) removes or moves one weight
w_j and updates the row's other weights by −(w_j − q_j) / [H⁻¹]_jj · H⁻¹_j,: —
the change that keeps the output error smallest.

- `inverse_factor`: U, upper triangular, with Uᵀ U = (H + λI)⁻¹ and
  λ = damping · mean(diag H). Processing columns left to right, row j of U is
  what the OBS update of column j needs once columns < j are fixed (Frantar et
  al., GPTQ, ICLR 2023, §3 "Cholesky reformulation"). Dead inputs (H_jj = 0)
  get λ on their diagonal and no coupling. If H + λI is not numerically
  positive definite λ grows tenfold (up to RETRIES times); after that the
  group falls back to the diagonal of H: no compensation, rounding or pruning
  by w²·H_jj alone.
- `prune` (SparseGPT: Frantar & Alistarh, "Massive Language Models Can Be
  Accurately Pruned in One-Shot", ICML 2023): sweeps the columns in blocks of
  BLOCK, at each block choosing the weights to zero by the saliency
  w² / U_jj², the smallest first; every zeroed weight's error moves into the
  columns to its right (lazily, one matrix product per block). Unstructured:
  exactly `count[g]` zeros per group, spread over the blocks by cumulative
  rounding; per row: round(fraction · K) zeros in every output channel; N:M:
  in each run of M consecutive columns of a row the M − N smallest saliencies,
  chosen when the sweep reaches the run. Weights already zero stay zero and
  count. Given a grid, the kept weights are rounded in the same sweep (joint
  prune + quantize), as for integer weights that must stay on their grid.
  Cost O(G·(C³ + R·C²)).
- `quantize` (GPTQ: Frantar et al., "GPTQ: Accurate Post-Training Quantization
  for Generative Pre-trained Transformers", ICLR 2023): the same sweep rounds
  each column to the grid (`snap`, per-row scales), columns in activation
  order (descending H_jj, which matters most when many inputs are weak);
  weights that are zero stay zero, so a pruned layer is compensated on the
  quantized grid. Same cost.
- `remove_inputs` (structured OBS, as in Kuznedelev et al., "CAP", and
  Frantar & Alistarh, "Optimal Brain Compression", NeurIPS 2022): removes whole
  groups of columns (an input channel's kernel taps), greedily the one whose
  removal costs least, tr(W_S [H⁻¹]_SS⁻¹ W_Sᵀ), updating W and H⁻¹ after each;
  the kept columns end at the least-squares fit of the original output. Cost
  O(C³ + steps · (groups · s³ + R·C·s)) for groups of s columns.

Everything is float64 and deterministic (stable sorts; ties go to the lower index).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .obs_options import DAMPING  # noqa: F401  (the default, defined with the options that take it)
from .records import record

BLOCK = 128
RETRIES = 8
Snap = Callable[[np.ndarray], np.ndarray]  # values in units of the scale -> grid values


@record
class Sparsity:
    """What `prune` removes: `count[g]` weights of group g (unstructured), or
    round(fraction · K) per output channel (`per_row`), or an N:M `pattern`."""

    count: np.ndarray | None = None
    fraction: float = 0.0
    per_row: bool = False
    pattern: tuple[int, int] | None = None


# -- the inverse Hessian ------------------------------------------------------------------
def inverse_factor(h: np.ndarray, damping: float = DAMPING) -> np.ndarray:
    """[G, C, C] upper-triangular U_g with U_gᵀ U_g = (H_g + λ_g I)⁻¹ (module docstring)."""
    return np.stack([_factor(hg, damping) for hg in np.asarray(h, np.float64)])


def _factor(h: np.ndarray, damping: float) -> np.ndarray:
    diag = np.diagonal(h)
    base = float(np.mean(diag)) if diag.size and np.all(np.isfinite(h)) else 0.0
    base = base if base > 0 else 1.0
    lam = damping * base
    eye = np.eye(len(h))
    for _ in range(RETRIES):
        try:
            lower_inv = np.linalg.inv(np.linalg.cholesky(h + lam * eye))
            u = np.linalg.cholesky(lower_inv.T @ lower_inv).T
            if np.all(np.isfinite(u)) and np.all(np.diagonal(u) > 0):
                return u
        except np.linalg.LinAlgError:
            pass
        lam = max(10.0 * lam, 1e-8 * base)
    return np.diag(1.0 / np.sqrt(np.maximum(np.where(np.isfinite(diag), diag, 0.0), 0.0) + lam))


# -- the column sweep ---------------------------------------------------------------------
def _sweep(w: np.ndarray, u: np.ndarray, k: int, block: int, begin, zero, rounding) -> np.ndarray:
    """W after fixing columns 0..k−1 in order: column i becomes rounding(col) (or
    stays) and 0 where zero(i, j, w1, d1) says, and its error moves right.
    `begin(i1, i2, w1, d1)` runs at each block start (w1: the block's columns as
    updated so far, d1: diag of U there)."""
    w = w.copy()
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, :, i1:i2].copy()
        u1 = u[:, i1:i2, i1:i2]
        d1 = np.diagonal(u1, axis1=1, axis2=2)
        errors = np.zeros_like(w1)
        begin(i1, i2, w1, d1)
        for j in range(i2 - i1):
            col = w1[:, :, j].copy()
            q = col if rounding is None else rounding(col)
            q = np.where(zero(i1 + j, j, w1, d1), 0.0, q)
            e = (col - q) / d1[:, j, None]
            w1[:, :, j:] -= e[:, :, None] * u1[:, None, j, j:]
            w1[:, :, j] = q
            errors[:, :, j] = e
        w[:, :, i1:i2] = w1
        w[:, :, i2:] -= errors @ u[:, i1:i2, i2:]
    return w


# -- pruning --------------------------------------------------------------------------------
def prune(w: np.ndarray, h: np.ndarray, sparsity: Sparsity, damping: float = DAMPING,
          frozen: int = 0, grid: tuple[np.ndarray, Snap] | None = None) -> np.ndarray:
    """SparseGPT: W [G, R, C] with the chosen weights exactly 0 and the others
    (and the frozen columns) compensated (module docstring). With `grid`
    (scales [G, R], snap) the kept weights are also rounded onto that grid in
    the same sweep (SparseGPT's joint mode): W then lies on the grid."""
    w = np.asarray(w, np.float64)
    k = w.shape[2] - frozen
    chooser = _Chooser(sparsity, w[:, :, :k] == 0)
    block = BLOCK if sparsity.pattern is None else max(1, BLOCK // sparsity.pattern[1]) * sparsity.pattern[1]
    rounding = None if grid is None else (lambda col: grid[1](col / grid[0]) * grid[0])
    return _sweep(w, inverse_factor(h, damping), k, block, chooser.begin, chooser.zero, rounding)


class _Chooser:
    """Which weights `prune` zeroes: `mask` [G, R, K] grows as the sweep goes."""

    def __init__(self, sparsity: Sparsity, zeros: np.ndarray):
        self.sparsity, self.mask = sparsity, zeros.copy()
        g, r, self.k = zeros.shape
        self.done = np.zeros((g, r) if sparsity.per_row else g, np.int64)
        self.total = np.full((g, r), round(sparsity.fraction * self.k)) if sparsity.per_row else \
            np.asarray(sparsity.count if sparsity.count is not None else np.zeros(g), np.int64)

    def begin(self, i1: int, i2: int, w1: np.ndarray, d1: np.ndarray) -> None:
        if self.sparsity.pattern is not None:
            return
        saliency = _saliency(w1, d1, self.mask[:, :, i1:i2])
        target = np.round(self.total * (i2 / self.k)).astype(np.int64)
        if self.sparsity.per_row:
            chosen = _smallest(saliency, target - self.done, self.mask[:, :, i1:i2].sum(axis=2))
        else:
            g, r, b = saliency.shape
            forced = self.mask[:, :, i1:i2].reshape(g, -1).sum(axis=1)
            chosen = _smallest(saliency.reshape(g, r * b), target - self.done, forced).reshape(g, r, b)
        self.mask[:, :, i1:i2] |= chosen
        self.done += chosen.sum(axis=2) if self.sparsity.per_row else chosen.reshape(len(chosen), -1).sum(axis=1)

    def zero(self, i: int, j: int, w1: np.ndarray, d1: np.ndarray) -> np.ndarray:
        pattern = self.sparsity.pattern
        if pattern is not None and i % pattern[1] == 0:
            n, m = pattern
            stop = min(j + m, w1.shape[2])  # blocks hold whole runs; the last run may be short
            saliency = _saliency(w1[:, :, j:stop], d1[:, j:stop], self.mask[:, :, i:i + stop - j])
            keep = min(n, stop - j)
            self.mask[:, :, i:i + stop - j] |= _smallest(saliency, stop - j - keep, 0)
        return self.mask[:, :, i]


def _saliency(w1: np.ndarray, d1: np.ndarray, forced: np.ndarray) -> np.ndarray:
    """w² / U_jj² (the OBS error of zeroing w), −1 where the weight must be zero."""
    return np.where(forced, -1.0, w1 ** 2 / d1[:, None, :] ** 2)


def _smallest(saliency: np.ndarray, need, forced) -> np.ndarray:
    """Mask of the max(need, forced) smallest entries along the last axis (need
    and forced broadcast over the leading axes); stable: ties take the lower index."""
    count = np.clip(np.maximum(need, forced), 0, saliency.shape[-1])
    order = np.argsort(saliency, axis=-1, kind="stable")
    chosen = np.zeros(saliency.shape, bool)
    np.put_along_axis(chosen, order, np.arange(saliency.shape[-1]) < np.expand_dims(count, -1), axis=-1)
    return chosen


# -- quantization ---------------------------------------------------------------------------
def quantize(w: np.ndarray, h: np.ndarray, scale: np.ndarray, snap: Snap, damping: float = DAMPING,
             frozen: int = 0, act_order: bool = True) -> np.ndarray:
    """GPTQ: the integers [G, R, K] (values of `snap`, units of `scale` [G, R])
    of W's first K columns; zero weights stay 0 (module docstring)."""
    w = np.asarray(w, np.float64)
    g, r, c = w.shape
    k = c - frozen
    order = np.argsort(-np.diagonal(h, axis1=1, axis2=2)[:, :k], axis=1, kind="stable") if act_order else \
        np.broadcast_to(np.arange(k), (g, k))
    full = np.concatenate([order, np.broadcast_to(np.arange(k, c), (g, c - k))], axis=1)
    wp = np.take_along_axis(w, full[:, None, :], axis=2)
    hp = np.take_along_axis(np.take_along_axis(h, full[:, :, None], axis=1), full[:, None, :], axis=2)
    zeros = wp[:, :, :k] == 0
    s = np.asarray(scale, np.float64).reshape(g, r)
    done = _sweep(wp, inverse_factor(hp, damping), k, BLOCK, lambda *a: None,
                  lambda i, j, w1, d1: zeros[:, :, i], lambda col: snap(col / s) * s)
    ints = np.rint(done[:, :, :k] / s[:, :, None])
    out = np.empty_like(ints)
    np.put_along_axis(out, order[:, None, :], ints, axis=2)
    return out


def uniform_snap(limit: int) -> Snap:
    """Round half to even onto the integers in [−limit, limit] (the b-bit grid)."""
    return lambda v: np.clip(np.rint(v), -limit, limit)


def nonzero_snap(limit: int) -> Snap:
    """uniform_snap, but a value that would round to 0 takes ±1 (its sign's; 0
    takes 1): kept weights of a pruned integer layer stay nonzero, so the
    pruning counts stay exact."""
    def snap(v: np.ndarray) -> np.ndarray:
        q = np.clip(np.rint(v), -limit, limit)
        return np.where(q == 0, np.where(v < 0, -1.0, 1.0), q)

    return snap


def table_snap(table: np.ndarray) -> Snap:
    """The nearest value of `table` (sorted; a tie takes the smaller)."""
    table = np.asarray(table, np.float64)

    def snap(v: np.ndarray) -> np.ndarray:
        above = np.clip(np.searchsorted(table, v), 0, len(table) - 1)
        below = np.maximum(above - 1, 0)
        return np.where(np.abs(v - table[below]) <= np.abs(v - table[above]), table[below], table[above])

    return snap


# -- structured: removing input channels -------------------------------------------------
def remove_inputs(w: np.ndarray, h: np.ndarray, groups: np.ndarray, count: int = 0,
                  chosen: np.ndarray | None = None, damping: float = DAMPING) -> tuple[np.ndarray, np.ndarray]:
    """(removed group indices, sorted; W [R, C] refit with their columns 0) for
    W [R, C], H [C, C] and column groups [n_groups, s]: the `chosen` groups, or
    greedily the `count` cheapest (module docstring)."""
    w = np.asarray(w, np.float64).copy()
    hinv = _inverse(np.asarray(h, np.float64), damping)
    remaining = list(range(len(groups)))
    order = [] if chosen is None else [int(c) for c in chosen]
    for step in range(len(order) if chosen is not None else count):
        if chosen is None:
            pick = remaining[int(np.argmin(_removal_costs(w, hinv, groups[remaining])))]
        else:
            pick = order[step]
        cols = groups[pick]
        solved = np.linalg.solve(hinv[np.ix_(cols, cols)], hinv[cols])
        w -= w[:, cols] @ solved
        hinv -= hinv[:, cols] @ solved
        remaining.remove(pick)
        w[:, np.setdiff1d(groups, groups[remaining])] = 0.0  # removed columns: exactly 0, also after later updates
    return np.sort(np.setdiff1d(np.arange(len(groups)), remaining)), w


def _inverse(h: np.ndarray, damping: float) -> np.ndarray:
    u = _factor(h, damping)
    return u.T @ u


def _removal_costs(w: np.ndarray, hinv: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """tr(W_S [H⁻¹]_SS⁻¹ W_Sᵀ) for each group S (rows of `groups`)."""
    blocks = hinv[groups[:, :, None], groups[:, None, :]]  # [n, s, s]
    ws = np.moveaxis(w[:, groups], 0, -1)  # [n, s, R]
    return np.einsum("nsr,nsr->n", ws, np.linalg.solve(blocks, ws))
