"""The flags `nnc compile` and `nnc validate` share: compression, calibration,
hardware and quality gates. Each is a typer.Option defined once; `compression`
maps the parsed values onto CompileOptions' names."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .errors import OptionError

CALIB = typer.Option(None, "--calib", help="Calibration samples (.npz/.npy) for quantization.")
QUANTIZE = typer.Option(None, "--quantize/--no-quantize", help="Quantize to int8 (default: c, az-sim and onnx do, ir does not).")
HW = typer.Option(None, "--hw", help="az-sim machine: a TOML file, or a preset: small, default, large.")
WEIGHT_BITS = typer.Option(8, "--weight-bits", help="Weight bit width 2..8.")
FIRST_LAST_BITS = typer.Option(None, "--first-last-bits",
                               help="Bit width of the first and last weighted layer (default: --weight-bits).")
CODEBOOK = typer.Option(False, "--codebook", help="Snap each weight tensor to 2^weight-bits k-means centroids.")
BIAS_CORRECTION = typer.Option(True, "--bias-correction/--no-bias-correction",
                               help="Correct biases for the mean weight error (needs --calib).")
SPARSITY = typer.Option(0.0, "--sparsity", help="Fraction of each layer's weights pruned.")
SPARSITY_PATTERN = typer.Option(None, "--sparsity-pattern", metavar="N:M",
                                help="Keep the N largest of every M weights, e.g. 2:4.")
PRUNE_CHANNELS = typer.Option(0.0, "--prune-channels", help="Fraction of output channels removed per layer (structured).")
METHOD = typer.Option(None, "--method", metavar="magnitude|obs",
                      help="Pruning/quantization method; obs = second-order (SparseGPT/GPTQ), the default with --calib.")
LAYER_BITS = typer.Option(None, "--layer-bits", metavar="ID:BITS,...",
                          help="Per-layer bits by layer id (#3), name or op type, e.g. '#1:8,#4:3'.")
LAYER_SPARSITY = typer.Option(None, "--layer-sparsity", metavar="ID:FRACTION,...",
                              help="Per-layer sparsity by layer id, name or op type, e.g. '#2:0.75'.")
FLASH_BUDGET = typer.Option(None, "--flash-budget", metavar="BYTES",
                            help="Pick per-layer bits and sparsity to fit the weights in BYTES (budget search; "
                                 "K, M suffixes: 2^10, 2^20).")
RATIO = typer.Option(None, "--ratio", metavar="R", help="Budget search for weights R times smaller than fp32.")
PACK = typer.Option("auto", "--pack", help="Weight encoding: auto (smallest exact), dense, bitmask, rle, codebook, huffman.")
ONNX_FORM = typer.Option("qdq", "--onnx-form", metavar="qdq|integer",
                         help="Target onnx: standard QDQ ONNX, or nnc's integer graph as ONNX integer ops "
                              "(bit-exact in onnxruntime).")
C_WEIGHTS = typer.Option("dense", "--c-weights", help="C target: dense int8 arrays, or packed (decoded by the kernels).")
C_ARRAYS = typer.Option("strings", "--c-arrays", metavar="strings|braces",
                        help="C target: 8-bit arrays of 4096+ bytes as string literals (fast to compile; GCC, "
                             "Clang), or brace lists (any C99 compiler).")
MIN_COSINE = typer.Option(None, "--min-cosine", help="Quality gate: fail (exit 4) below this output cosine to float.")
MAX_ACCURACY_DROP = typer.Option(None, "--max-accuracy-drop", metavar="POINTS",
                                 help="Quality gate (needs --labels): fail (exit 4) past this top-1 drop.")


NAMES = ("calib", "quantize", "hw", "weight_bits", "first_last_bits", "codebook", "bias_correction", "sparsity",
         "sparsity_pattern", "prune_channels", "method", "layer_bits", "layer_sparsity", "flash_budget", "ratio",
         "pack", "c_weights", "c_arrays", "onnx_form", "min_cosine", "max_accuracy_drop")


def compression(parameters: dict) -> dict:
    """The shared flags among a command's parameters (its `locals()`), as
    keyword arguments of nnc.compile; --flash-budget's K, M or G suffix read."""
    found = {name: parameters[name] for name in NAMES}
    if found["flash_budget"] is not None:
        from .explore_spec import size_value

        try:
            found["flash_budget"] = size_value(found["flash_budget"])
        except ValueError:
            raise OptionError(f"--flash-budget: expected bytes, a whole number with an optional K, M or G suffix, "
                              f"got {found['flash_budget']!r}") from None
    return found
