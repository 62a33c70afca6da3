"""The ranges of the compression options `nnc compile` and `nnc finetune` share,
and how an option is named in an error: as the keyword in the Python API, as
its flag on the command line."""

from __future__ import annotations

from .errors import OptionError


def check_compression(weight_bits: int, first_last_bits: int | None, sparsity: float, prune_channels: float) -> None:
    """OptionError naming the option (out_of_range) unless bits are in 2..8 and
    fractions in [0, 1)."""
    for option, bits in (("weight_bits", weight_bits), ("first_last_bits", first_last_bits or 8)):
        if not 2 <= bits <= 8:
            raise out_of_range(option, f"must be in 2..8, got {bits}")
    for option, fraction in (("sparsity", sparsity), ("prune_channels", prune_channels)):
        if not 0.0 <= fraction < 1.0:
            raise out_of_range(option, f"must be in [0, 1), got {fraction}")


def out_of_range(option: str, rule: str) -> OptionError:
    """OptionError for option `option` (a CompileOptions field), named as the
    keyword in the API and as its flag on the command line."""
    return OptionError(f"{option} {rule}", cli=f"{flag_of(option)} {rule}")


def flag_of(option: str) -> str:
    """The `nnc compile` flag that sets CompileOptions field `option`
    (bias_correction: the flag that turns it off)."""
    return "--no-bias-correction" if option == "bias_correction" else "--" + option.replace("_", "-")
