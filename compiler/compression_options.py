"""The ranges of the compression options `nnc compile` and `nnc finetune` share."""

from __future__ import annotations

from .errors import OptionError


def check_compression(weight_bits: int, first_last_bits: int | None, sparsity: float, prune_channels: float) -> None:
    """OptionError naming the keyword (and, for the command line, the flag)
    unless bits are in 2..8 and fractions in [0, 1)."""
    for option, bits in (("weight_bits", weight_bits), ("first_last_bits", first_last_bits or 8)):
        if not 2 <= bits <= 8:
            raise _out_of_range(option, f"must be in 2..8, got {bits}")
    for option, fraction in (("sparsity", sparsity), ("prune_channels", prune_channels)):
        if not 0.0 <= fraction < 1.0:
            raise _out_of_range(option, f"must be in [0, 1), got {fraction}")


def _out_of_range(option: str, rule: str) -> OptionError:
    return OptionError(f"{option} {rule}", cli=f"--{option.replace('_', '-')} {rule}")
