"""The ranges of the compression options `nnc compile` and `nnc finetune` share."""

from __future__ import annotations

from .errors import OptionError


def check_compression(weight_bits: int, first_last_bits: int | None, sparsity: float, prune_channels: float) -> None:
    """OptionError naming the flag unless bits are in 2..8 and fractions in [0, 1)."""
    for flag, bits in (("weight-bits", weight_bits), ("first-last-bits", first_last_bits or 8)):
        if not 2 <= bits <= 8:
            raise OptionError(f"{flag} must be in 2..8, got {bits}")
    for flag, fraction in (("sparsity", sparsity), ("prune-channels", prune_channels)):
        if not 0.0 <= fraction < 1.0:
            raise OptionError(f"{flag} must be in [0, 1), got {fraction}")
