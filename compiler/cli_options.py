"""The flags `nnc compile` and `nnc validate` share: compression, calibration,
hardware and quality gates. Each is an argparse argument defined once (a
`Flag`, added to a command's parser by `add`); `compression` maps the parsed
values onto CompileOptions' names."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

from .errors import OptionError


class Flag(NamedTuple):
    """The arguments of one `parser.add_argument` call."""

    names: tuple[str, ...]
    settings: dict


def flag(*names: str, **settings) -> Flag:
    """The argument `names` (a path's value shown as FILE or FOLDER in the help)."""
    if "metavar" not in settings and settings.get("type") in (FILE, FOLDER):
        settings["metavar"] = "FILE" if settings["type"] is FILE else "FOLDER"
    return Flag(names, settings)


def add(parser: argparse.ArgumentParser, *flags: Flag) -> None:
    for one in flags:
        parser.add_argument(*one.names, **one.settings)


class OnOff(argparse.Action):
    """`--name` sets True, `--no-name` False."""

    def __init__(self, option_strings, dest, default=None, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not option_string.startswith("--no-"))

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)


def switch(name: str, help: str) -> Flag:
    """A flag that is off unless given."""
    return flag(name, action="store_true", help=help)


def path_of(what: str):
    """An argparse type: a Path, refusing the empty string (which Path reads as
    the current folder)."""
    def parse(text: str) -> Path:
        if not text:
            raise argparse.ArgumentTypeError(f"the {what} is empty")
        return Path(text)
    return parse


FILE = path_of("file name")
FOLDER = path_of("folder name")


def text_of(what: str):
    """An argparse type: the text, refusing the empty string."""
    def parse(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"the {what} is empty")
        return text
    return parse


MACHINE = "MACHINE.toml|small|default|large"

CALIB = flag("--calib", type=FILE, help="Calibration samples (.npz/.npy) for quantization.")
QUANTIZE = flag("--quantize", "--no-quantize", action=OnOff, default=None,
                help="Quantize to int8 (default: c, az-sim and onnx do, ir does not).")
HW = flag("--hw", type=text_of("machine"), metavar=MACHINE,
          help="az-sim machine: a TOML file, or a preset: small, default, large.")
WEIGHT_BITS = flag("--weight-bits", type=int, default=8, metavar="BITS", help="Weight bit width 2..8 (default: 8).")
FIRST_LAST_BITS = flag("--first-last-bits", type=int, metavar="BITS",
                       help="Bit width of the first and last weighted layer (default: --weight-bits).")
CODEBOOK = switch("--codebook", "Snap each weight tensor to 2^weight-bits k-means centroids.")
BIAS_CORRECTION = flag("--bias-correction", "--no-bias-correction", action=OnOff, default=True,
                       help="Correct biases for the mean weight error (needs --calib; default: on).")
SPARSITY = flag("--sparsity", type=float, default=0.0, metavar="FRACTION",
                help="Fraction of each layer's weights pruned (default: 0).")
SPARSITY_PATTERN = flag("--sparsity-pattern", metavar="N:M", help="Keep the N largest of every M weights, e.g. 2:4.")
PRUNE_CHANNELS = flag("--prune-channels", type=float, default=0.0, metavar="FRACTION",
                      help="Fraction of output channels (recurrent layers: hidden units) removed per layer "
                           "(structured; default: 0).")
METHOD = flag("--method", metavar="magnitude|obs",
              help="Pruning/quantization method; obs = second-order (SparseGPT/GPTQ), the default with --calib.")
LAYER_BITS = flag("--layer-bits", metavar="ID:BITS,...",
                  help="Per-layer bits by layer id (#3), name or op type, e.g. '#1:8,#4:3'.")
LAYER_SPARSITY = flag("--layer-sparsity", metavar="ID:FRACTION,...",
                      help="Per-layer sparsity by layer id, name or op type, e.g. '#2:0.75'.")
FLASH_BUDGET = flag("--flash-budget", metavar="BYTES",
                    help="Pick per-layer bits and sparsity to fit the weights in BYTES (budget search; "
                         "K, M suffixes: 2^10, 2^20).")
RATIO = flag("--ratio", type=float, metavar="R", help="Budget search for weights R times smaller than fp32.")
PACK = flag("--pack", metavar="auto|dense|bitmask|rle|codebook|huffman",
            help="Weight encoding: auto (smallest exact; the default), dense, bitmask, rle, codebook, huffman.")
ONNX_FORM = flag("--onnx-form", metavar="qdq|integer",
                 help="Target onnx: standard QDQ ONNX (the default), or nnc's integer graph as ONNX integer ops "
                      "(bit-exact in onnxruntime).")
C_WEIGHTS = flag("--c-weights", metavar="dense|packed",
                 help="C target: dense int8 arrays (the default), or packed (decoded by the kernels).")
C_ARRAYS = flag("--c-arrays", metavar="strings|braces",
                help="C target: 8-bit arrays of 4096+ bytes as string literals (the default; fast to compile; "
                     "GCC, Clang), or brace lists (any C99 compiler).")
MIN_COSINE = flag("--min-cosine", type=float,
                  help="Quality gate: fail (exit 4) below this output cosine to float.")
MAX_ACCURACY_DROP = flag("--max-accuracy-drop", type=float, metavar="POINTS",
                         help="Quality gate (needs --labels): fail (exit 4) past this top-1 drop.")

# The flags of compile and validate, in their --help order.
SHARED = (CALIB, QUANTIZE, HW, WEIGHT_BITS, FIRST_LAST_BITS, CODEBOOK, BIAS_CORRECTION, SPARSITY, SPARSITY_PATTERN,
          PRUNE_CHANNELS, METHOD, LAYER_BITS, LAYER_SPARSITY, FLASH_BUDGET, RATIO, PACK, C_WEIGHTS, C_ARRAYS,
          MIN_COSINE, MAX_ACCURACY_DROP)

NAMES = ("calib", "quantize", "hw", "weight_bits", "first_last_bits", "codebook", "bias_correction", "sparsity",
         "sparsity_pattern", "prune_channels", "method", "layer_bits", "layer_sparsity", "flash_budget", "ratio",
         "pack", "c_weights", "c_arrays", "onnx_form", "min_cosine", "max_accuracy_drop")


def compression(parameters: dict) -> dict:
    """The shared flags among a command's parameters, as keyword arguments of
    nnc.compile; --flash-budget's K, M or G suffix read. A target flag not given
    is None, which nnc.compile reads as the target's default (and a value given
    for another target, as an OptionError)."""
    found = {name: parameters[name] for name in NAMES}
    if found["flash_budget"] is not None:
        from .explore_spec import size_value

        try:
            found["flash_budget"] = size_value(found["flash_budget"])
        except ValueError:
            raise OptionError(f"--flash-budget: expected bytes, a whole number with an optional K, M or G suffix, "
                              f"got {found['flash_budget']!r}") from None
    return found
