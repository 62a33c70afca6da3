"""The options of a compile (`nnc.compile`'s keywords, `nnc compile`'s flags),
checked as a whole when made, and the default pipeline they ask for."""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import re
from collections.abc import Mapping
from pathlib import Path

from .budget import BudgetChoice
from .compression_options import check_compression, flag_of, out_of_range
from .errors import OptionError
from .limits import MAX_NAME_LENGTH
from .obs_options import check_method
from .packing import FORMAT_NAMES
from .records import record

# option -> (its default, the targets it belongs to); pack with target c only with c_weights="packed"
TARGET_DEFAULTS = {"c_weights": ("dense", ("c",)), "c_arrays": ("strings", ("c",)), "onnx_form": ("qdq", ("onnx",)),
                   "pack": ("auto", ("az-sim", "c"))}


@record(frozen=False)
class CompileOptions:
    """Options of `compile` (and of `nnc compile`'s flags).

    pipeline: replaces the target's default pipeline when given.
    calib: calibration samples (.npz/.npy) for post-training quantization.
        calib, inputs and labels also take data in memory: {input: array},
        one array, or an iterable of {input: array} (compiler/sample_sources.py).
    quantize: run the quantize pass; None lets the target decide (c and az-sim
        quantize, ir does not).
    inputs: verification samples; default: the calibration samples, else synthetic.
    hw: hardware description (TOML) for az-sim; default: the shipped machine.
    Compression (docs/compression.md), each adding a pass to the default pipeline:
    weight_bits (2..8), first_last_bits (bits of the first and last weighted
        layer; None: weight_bits), codebook (k-means, 2^weight_bits centroids),
        bias_correction: options of the quantize pass;
    sparsity (fraction of weights zeroed by magnitude, per layer),
        sparsity_pattern ("N:M"): the prune pass;
    prune_channels (fraction of output channels removed): the prune-channels pass.
    method: "magnitude" or "obs" (second-order: SparseGPT, GPTQ below 8 bits,
        least-squares refit after channel pruning; needs calib) for those three
        passes; None: obs when calib is given, else magnitude. A streaming
        compile always uses magnitude (the chunk graph has no samples).
    pack: weight encoding, "auto" (smallest exact) or one of PACK_FORMATS
        (az-sim, and c with c_weights="packed");
    c_weights: "dense" (int8 arrays) or "packed" (the C target keeps the
        encoded weights and decodes them in its kernels).
    c_arrays: how the C target spells 8-bit arrays of 4096 bytes or more:
        "strings" (string literals, fast to compile; GCC and Clang) or
        "braces" (brace lists, for any C99 compiler; docs/c-target.md).
    onnx_form: target onnx's file: "qdq" (standard QDQ ONNX) or "integer"
        (nnc's integer graph as ONNX integer arithmetic, bit-exact with the
        reference; docs/onnx-export.md).
    These four belong to targets (TARGET_DEFAULTS): left None they take the
    target's default (the first value listed), and a value given for another
    target, its default included, is an OptionError.
    name: the compiled model's name: its artifacts' file stem and the C symbol
        prefix (default: the model file's stem).
    layer_bits, layer_sparsity: per-layer settings "KEY:VALUE,..." (KEY a
        layer id #i, a layer name or an op type) over weight_bits / sparsity.
    flash_budget (bytes) or ratio (× smaller than fp32): budget search
        (compiler/budget.py) picks each layer's bits and sparsity; it replaces
        weight_bits, sparsity and their per-layer settings.
    labels: class ids (.npy, or .npz with one array) of the `inputs` samples:
        verification then reports top-1/top-k accuracy of the float model and
        of the compiled one, and the drop (compiler/accuracy.py).
    min_cosine, max_accuracy_drop (points; needs labels): quality gates
        (compiler/quality.py); a compile that misses one writes its artifacts,
        then raises QualityGateError.
    stream: chunk shapes of the streamed inputs ({name: shape}); the artifact
        then runs a sequence chunk by chunk with its recurrent states as
        inputs and outputs (compiler/streaming.py, docs/streaming.md).
    """

    target: str = "ir"
    pipeline: str | None = None
    input_shapes: dict[str, tuple[int, ...]] | None = None
    calib: str | Path | None = None
    quantize: bool | None = None
    inputs: str | Path | None = None
    verify: bool = True
    verify_each: bool = False
    print_ir_after: tuple[str, ...] = ()
    synthetic_samples: int = 4  # verification samples drawn when no inputs or calib are given
    hw: str | Path | None = None
    weight_bits: int = 8
    first_last_bits: int | None = None
    codebook: bool = False
    bias_correction: bool = True
    sparsity: float = 0.0
    sparsity_pattern: str | None = None
    prune_channels: float = 0.0
    method: str | None = None
    pack: str | None = None
    c_weights: str | None = None
    c_arrays: str | None = None
    onnx_form: str | None = None
    stream: dict[str, tuple[int, ...]] | None = None
    name: str | None = None
    layer_bits: str | None = None
    layer_sparsity: str | None = None
    flash_budget: int | None = None
    ratio: float | None = None
    labels: str | Path | None = None
    min_cosine: float | None = None
    max_accuracy_drop: float | None = None
    top_k: int = 5

    def __post_init__(self):
        self._check_types()
        check_compression(self.weight_bits, self.first_last_bits, self.sparsity, self.prune_channels)
        if self.pack not in (None, "auto", *PACK_FORMATS):
            raise out_of_range("pack", f"must be auto or one of {', '.join(PACK_FORMATS)}, got {self.pack!r}")
        if self.c_weights not in (None, "dense", "packed"):
            raise out_of_range("c_weights", f"must be dense or packed, got {self.c_weights!r}")
        if self.c_arrays not in (None, "strings", "braces"):
            raise out_of_range("c_arrays", f"must be strings or braces, got {self.c_arrays!r}")
        if self.onnx_form not in (None, "qdq", "integer"):
            raise out_of_range("onnx_form", f"must be qdq or integer, got {self.onnx_form!r}")
        self._check_target_options()
        self._take_target_defaults()
        if self.name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            said = f"must be a C identifier (letters, digits, _), got {self.name!r}"
            raise OptionError(f"name {said}", cli=f"--name {said}")
        if self.name is not None and len(self.name) > MAX_NAME_LENGTH:
            said = f"must be at most {MAX_NAME_LENGTH} characters, got {len(self.name)}"
            raise OptionError(f"name {said}", cli=f"--name {said}")
        if self.stream and self.pipeline is not None:
            raise OptionError("stream builds its own pipelines; it cannot be combined with pipeline",
                              cli="--stream builds its own pipelines; it cannot be combined with --pipeline")
        from .limits import check_dims
        from .passmanager import available_passes, pass_class

        for flag, shapes in (("input-shape", self.input_shapes), ("stream", self.stream)):
            for input_name, dims in (shapes or {}).items():
                check_dims(dims, f"{flag} {input_name}")
        if self.sparsity_pattern is not None:
            from nnc.passes.prune import parse_pattern

            parse_pattern(self.sparsity_pattern, "sparsity-pattern")
        unknown = sorted(name for name in self.print_ir_after if name != "all" and pass_class(name) is None)
        if unknown:
            said = (f"{unknown[0]!r} is not a pass; give a pass of the pipeline or all "
                    f"(passes: {', '.join(sorted(available_passes()))})")
            raise OptionError(f"print_ir_after {said}", cli=f"--print-ir-after {said}")
        if self.method is not None:
            check_method("method", self.method)
        if self.method == "obs" and self.stream:
            why = "(the chunk graph has no calibration samples)"
            raise OptionError(f"method='obs' cannot be combined with stream {why}; use method='magnitude'",
                              cli=f"--method obs cannot be combined with --stream {why}; use --method magnitude")
        self._check_quality_options()
        self._check_budget_options()
        self._check_pipeline_options()

    def _check_pipeline_options(self):
        """OptionError for compression options next to a pipeline, which sets
        every pass's options itself (they were ignored without a word)."""
        if self.pipeline is None:
            return
        given = [option for option, asked in (("weight_bits", self.weight_bits != 8),
                                              ("first_last_bits", self.first_last_bits is not None),
                                              ("codebook", self.codebook), ("sparsity", bool(self.sparsity)),
                                              ("sparsity_pattern", bool(self.sparsity_pattern)),
                                              ("prune_channels", bool(self.prune_channels)),
                                              ("layer_bits", bool(self.layer_bits)),
                                              ("layer_sparsity", bool(self.layer_sparsity)),
                                              ("method", self.method is not None)) if asked]
        if given:
            said = "a pipeline sets its passes' options itself (quantize{weight_bits=4}, prune{sparsity=0.5}); drop "
            raise OptionError(said + ", ".join(given), cli=said + ", ".join(map(flag_of, given)))

    def _check_target_options(self):
        """OptionError for an option the target would ignore."""
        if self.hw is not None and self.target != "az-sim":
            raise OptionError(f"hw applies to target az-sim, not {self.target}",
                              cli=f"--hw applies to --target az-sim, not {self.target}")
        for name in ("c_arrays", "c_weights", "onnx_form"):
            value, targets = getattr(self, name), TARGET_DEFAULTS[name][1]
            if value is not None and self.target not in targets:
                raise OptionError(f"{name}={value!r} applies to target {' or '.join(targets)}, not {self.target}",
                                  cli=f"--{name.replace('_', '-')} {value} applies to --target "
                                      f"{' or '.join(targets)}, not {self.target}")
        if self.pack is not None and not (self.target == "az-sim" or (self.target, self.c_weights) == ("c", "packed")):
            dense = " with dense weights" if self.target == "c" else ""
            raise OptionError(f"pack applies to target az-sim, and to target c with c_weights='packed'; "
                              f"not to target {self.target}{dense}",
                              cli=f"--pack applies to --target az-sim, and to --target c with --c-weights packed; "
                                  f"not to --target {self.target}{dense}")

    def _take_target_defaults(self):
        """Each target option left None takes its default where its target is this one."""
        for name, (default, targets) in TARGET_DEFAULTS.items():
            packed = name != "pack" or self.target == "az-sim" or self.c_weights == "packed"
            if getattr(self, name) is None and self.target in targets and packed:
                setattr(self, name, default)

    def _check_types(self):
        """OptionError unless each option has its annotated type (the sample
        options, checked by sample_sources, aside); a lone pass name for
        print_ir_after and lists for tuples are taken as tuples."""
        if isinstance(self.print_ir_after, str):
            self.print_ir_after = (self.print_ir_after,)
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            if option.name in SAMPLE_OPTIONS:
                continue
            if _has_type(value, option.type):
                setattr(self, option.name, _plain(value))
                continue
            raise OptionError(f"{option.name} must be {option.type.replace(' | ', ' or ')}, "
                              f"got {type(value).__name__} {value!r:.80}")
        self.print_ir_after = tuple(self.print_ir_after)
        for shapes in ("input_shapes", "stream"):
            if getattr(self, shapes) is not None:
                setattr(self, shapes, {name: tuple(int(d) for d in dims) for name, dims in getattr(self, shapes).items()})

    def _check_budget_options(self):
        if self.flash_budget is None and self.ratio is None:
            return
        if self.flash_budget is not None and self.ratio is not None:
            raise OptionError("give flash_budget or ratio, not both", cli="give --flash-budget or --ratio, not both")
        if self.flash_budget is not None and self.flash_budget < 1:
            raise out_of_range("flash_budget", f"must be a positive number of bytes, got {self.flash_budget}")
        if self.ratio is not None and not 1.0 <= self.ratio <= 1e6:
            raise out_of_range("ratio", f"must be in [1, 1e6] (× smaller than fp32), got {self.ratio}")
        clashing = [option for option, given in (("weight_bits", self.weight_bits != 8),
                                                 ("first_last_bits", self.first_last_bits is not None),
                                                 ("sparsity", bool(self.sparsity)),
                                                 ("sparsity_pattern", bool(self.sparsity_pattern)),
                                                 ("layer_bits", bool(self.layer_bits)),
                                                 ("layer_sparsity", bool(self.layer_sparsity)),
                                                 ("pipeline", self.pipeline is not None),
                                                 ("stream", bool(self.stream))) if given]
        if clashing:
            said = "the budget search chooses bits and sparsity itself; drop "
            raise OptionError(said + ", ".join(clashing), cli=said + ", ".join(map(flag_of, clashing)))
        given = "ratio" if self.ratio is not None else "flash_budget"
        int8 = {"c": ("target c with c_weights='dense' stores one int8 per weight whatever the bits; give "
                      "c_weights='packed'",
                      "target c with --c-weights dense stores one int8 per weight whatever the bits; give "
                      "--c-weights packed"),
                "onnx": ("target onnx stores int8 weights (opset 17)",) * 2}.get(self.target)
        if int8 and self.c_weights != "packed":
            said = "a weight budget counts packed weights, and"
            raise OptionError(f"{given}: {said} {int8[0]}", cli=f"{flag_of(given)}: {said} {int8[1]}")

    def _check_quality_options(self):
        if self.labels is not None and self.inputs is None:
            raise OptionError("labels needs inputs (the samples they label)",
                              cli="--labels needs --inputs (the samples they label)")
        if self.labels is not None and self.stream:
            raise OptionError("labels cannot be combined with stream: a streaming compile measures no accuracy",
                              cli="--labels cannot be combined with --stream: a streaming compile measures no "
                                  "accuracy")
        if self.max_accuracy_drop is not None and self.labels is None:
            raise OptionError("max_accuracy_drop needs labels: accuracy needs labelled samples",
                              cli="--max-accuracy-drop needs --labels: accuracy needs labelled samples")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise out_of_range("min_cosine", f"must be in [-1, 1], got {self.min_cosine}")
        if self.max_accuracy_drop is not None and not 0.0 <= self.max_accuracy_drop <= 100.0:
            raise out_of_range("max_accuracy_drop", f"must be in [0, 100] points, got {self.max_accuracy_drop}")
        if (self.min_cosine is not None or self.max_accuracy_drop is not None) and not self.verify:
            raise OptionError("quality gates need verification; drop verify=False",
                              cli="quality gates need verification; drop --no-verify")
        if not 1 <= self.synthetic_samples <= MAX_SYNTHETIC_SAMPLES:
            raise OptionError(f"synthetic_samples must be in 1..{MAX_SYNTHETIC_SAMPLES}, got {self.synthetic_samples}")
        if not 1 <= self.top_k <= 1000:
            raise OptionError(f"top_k must be in 1..1000, got {self.top_k}")  # API only: no flag sets it


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _numpy_bool(value) -> bool:
    return type(value).__name__ == "bool_"  # numpy's, without importing numpy here


def _plain(value):
    """A numpy scalar as the Python bool, int or float it stands for (options end
    up in pipeline strings and report.json); anything else as it is."""
    if _numpy_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral) and type(value) not in (int, bool):
        return int(value)
    if isinstance(value, numbers.Real) and type(value) not in (int, float, bool):
        return float(value)
    return value


# what each part of a CompileOptions annotation accepts; numpy scalars count as
# Python numbers, bools are neither int nor float
_TYPE_CHECKS = {
    "None": lambda v: v is None,
    "bool": lambda v: isinstance(v, bool) or _numpy_bool(v),
    "int": _integer,
    "float": lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and not _numpy_bool(v),
    "str": lambda v: isinstance(v, str),
    "Path": lambda v: isinstance(v, os.PathLike),
    "tuple[str, ...]": lambda v: isinstance(v, (tuple, list)) and all(isinstance(x, str) for x in v),
    "dict[str, tuple[int, ...]]": lambda v: isinstance(v, Mapping) and all(
        isinstance(k, str) and isinstance(dims, (tuple, list)) and all(_integer(d) for d in dims)
        for k, dims in v.items()),
}


def _has_type(value, annotation: str) -> bool:
    """Whether `value` is of the type a CompileOptions annotation names ("int",
    "str | Path | None", "dict[str, tuple[int, ...]] | None", ...)."""
    return any(_TYPE_CHECKS[part](value) for part in annotation.split(" | "))


PACK_FORMATS = tuple(FORMAT_NAMES)
MAX_SYNTHETIC_SAMPLES = 4096
# options that take samples: a path, or arrays in memory (sample_sources.py)
SAMPLE_OPTIONS = ("calib", "inputs", "labels")


def default_pipeline(target, opts: CompileOptions, stream_role: str | None = None, ranges: str | None = None,
                     budget: BudgetChoice | None = None) -> str:
    """The target's pipeline, then the compression passes the options ask for:
    prune-channels, prune, quantize (see CompileOptions). A streaming compile
    runs it twice: `stream_role` "whole" saves the calibrated ranges to file
    `ranges`, "chunk" exposes the states and quantizes with those ranges; both
    without bias correction (the chunk graph cannot read whole-sequence samples).
    A `budget` choice sets each layer's bits and sparsity by layer id."""
    quantize = target.quantizes if opts.quantize is None else opts.quantize
    steps = [target.base_pipeline] + (["expose-states"] if stream_role == "chunk" else [])
    method = "magnitude" if stream_role else opts.method or ("obs" if opts.calib is not None else "magnitude")
    second_order = {"method": "obs", "calib": str(opts.calib or "")} if method == "obs" else {}
    if opts.prune_channels:
        steps.append(_step("prune-channels", ratio=opts.prune_channels, **second_order))
    bits_by_layer, sparsity_by_layer = budget.overrides() if budget else (opts.layer_bits, opts.layer_sparsity)
    if opts.sparsity or opts.sparsity_pattern or sparsity_by_layer:
        steps.append(_step("prune", sparsity=opts.sparsity or None, pattern=opts.sparsity_pattern,
                           overrides=sparsity_by_layer, **second_order))
    quantizing = {"weight_bits": opts.weight_bits != 8, "first_last_bits": opts.first_last_bits is not None,
                  "codebook": opts.codebook, "bias_correction": not opts.bias_correction,
                  "layer_bits": bool(bits_by_layer)}
    options = {key: getattr(opts, key) for key, asked in quantizing.items() if asked and key != "layer_bits"}
    if bits_by_layer:
        options["overrides"] = bits_by_layer
    if method == "obs" and (any(quantizing[k] for k in ("weight_bits", "first_last_bits", "codebook"))
                            or bits_by_layer):
        options["method"] = "obs"  # GPTQ below 8 bits; 8-bit layers keep rounding to nearest
    if stream_role:
        options.update({"whole": {"save_ranges": ranges}, "chunk": {"ranges": ranges}}[stream_role],
                       bias_correction=False)
    calib = None if opts.calib is None or stream_role == "chunk" else str(opts.calib)
    if quantize:
        steps.append(_step("quantize", calib=calib, **options, **getattr(target, "quantize_options", {})))
    elif any(quantizing.values()):
        asked = [key for key, value in quantizing.items() if value]
        if budget is not None:  # the search's per-layer bits, not the user's layer_bits
            asked = ["ratio" if opts.ratio is not None else "flash_budget"]
        said = f"need{'s' if budget is not None else ''} quantization, which target {opts.target!r} does not do"
        raise OptionError(f"{', '.join(asked)} {said} (give quantize=True)",
                          cli=f"{', '.join(map(flag_of, asked))} {said} (give --quantize)")
    return ",".join(steps)


def _step(name: str, **options) -> str:
    """A pipeline step with the options that are not None."""
    given = [f"{key}={json.dumps(value)}" for key, value in options.items() if value is not None]
    return name + ("{" + ",".join(given) + "}" if given else "")
