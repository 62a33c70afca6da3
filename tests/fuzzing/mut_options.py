"""Option mutators (family options): random, edge and malformed values for the
flags of `nnc compile`, `nnc run` and `nnc inspect`, and --hw files.

`--print-ir-after bogus` and `--sparsity-pattern ""` are must_reject: issue 10
lists them as silently accepted.
"""

from __future__ import annotations

import random
import re

from .case import Case
from .registry import mutator

INTS = ["-5", "0", "1", "2", "3", "4", "7", "8", "9", "16", "4.5", "x", "", "8 ", "1e1", "0x4",
        "99999999999999999999", "-0", "\u0664"]
FLOATS = ["nan", "inf", "-inf", "-0.1", "0", "0.5", "0.9", "0.9999999", "1", "1.0", "1e-400", "1e400", "abc", "",
          "0,5", "5e-1"]
PATTERNS = ["1:1000000000", "", "2:4", "0:4", "4:2", "a:b", "2:4:8", "-1:4", "1:0", "3:3", "1:256", "1:257", ":",
            "2:", " 2:4", "1:4", "4:8", "2147483647:2147483648"]
PASSES = ["canonicalize", "fold-constants", "fold-batchnorm", "fuse-activation", "fuse-bias", "layout", "prune",
          "prune-channels", "quantize", "remove-identity", "expose-states"]


def _quantizing(rng: random.Random, case: Case) -> None:
    """Compression flags need a quantizing target; give one most of the time."""
    if case.target == "ir" and rng.random() < 0.8:
        case.target = rng.choice(["az-sim", "az-sim", "c"])


@mutator("options")
def opt_bits(rng: random.Random, case: Case) -> Case:
    _quantizing(rng, case)
    flag = rng.choice(["--weight-bits", "--first-last-bits"])
    value = rng.choice(INTS)
    case.set_flag(flag, value)
    case.note(f"{flag} {value!r}")
    return case


@mutator("options")
def opt_fraction(rng: random.Random, case: Case) -> Case:
    _quantizing(rng, case)
    flag = rng.choice(["--sparsity", "--prune-channels"])
    value = rng.choice(FLOATS + [f"{rng.random():.3f}"])
    case.set_flag(flag, value)
    case.note(f"{flag} {value!r}")
    return case


@mutator("options")
def opt_sparsity_pattern(rng: random.Random, case: Case) -> Case:
    _quantizing(rng, case)
    value = rng.choice(PATTERNS)
    case.set_flag("--sparsity-pattern", value)
    case.note(f"--sparsity-pattern {value!r}")
    return case


@mutator("options", must_reject=True)
def opt_empty_pattern(rng: random.Random, case: Case) -> Case:
    _quantizing(rng, case)
    case.set_flag("--sparsity-pattern", "")
    case.note("--sparsity-pattern ''")
    return case


@mutator("options")
def opt_input_shape(rng: random.Random, case: Case) -> Case:
    name = rng.choice(sorted(case.seed_model.inputs))
    rank = len(case.seed_model.inputs[name])
    value = rng.choice([f"{name}=100000000" + ",1" * (rank - 1), f"{name}=" + ",".join(["2147483648"] * rank),
                        f"{name}=0" + ",1" * (rank - 1), f"{name}=-1" + ",8" * (rank - 1), f"{name}=", "=1,2",
                        f"nosuch=1,{rank}", f"{name}=" + ",".join(["1"] * 12), f"{name}=1.5", f"{name}",
                        f"{name}=2" + "".join(f",{d}" for d in case.seed_model.inputs[name][1:]),
                        f"{name}=" + ",".join(map(str, case.seed_model.inputs[name])), f"{name}=1,,1"])
    case.options += ["--input-shape", value]
    case.note(f"--input-shape {value!r}")
    return case


HW_KEYS = ["clock_mhz", "bus_bytes_per_cycle", "decoder_bytes_per_cycle", "mac_lanes", "zero_skip_group",
           "skip_zero_activations", "post_cycles_per_output", "layer_overhead_cycles", "weight_sram_bytes",
           "activation_sram_bytes", "energy_pj_per_mac", "energy_pj_per_sram_byte", "energy_pj_per_offchip_byte"]
HW_VALUES = ["1e308", "-1e308", "0", "-1", "nan", "inf", "-inf", '"fast"', str(1 << 63), "true", "[1, 2]",
             "1e-320", "0.5", "4294967296", "{}"]


@mutator("options")
def opt_hw(rng: random.Random, case: Case) -> Case:
    """An --hw file with one key at an extreme, an unknown key, broken TOML, or not text."""
    if rng.random() < 0.3:
        case.as_run(rng)
    elif case.target != "az-sim" and rng.random() < 0.8:
        case.target = "az-sim"
    text = case.corpus.hw
    how = rng.choice(["value", "value", "value", "unknown-key", "broken", "binary", "empty", "missing"])
    if how == "value":
        key, value = rng.choice(HW_KEYS), rng.choice(HW_VALUES)
        text = re.sub(rf"(?m)^{key}\s*=\s*[^#\n]*", f"{key} = {value} ", text)
        how = f"{key} = {value}"
    elif how == "unknown-key":
        text += "\nturbo_mode = true\n"
    elif how == "broken":
        text = text.replace("=", "", 1)
    case.put("hw.toml", {"binary": b"\xff\x00\x01", "empty": ""}.get(how, text))
    if how == "missing":
        del case.files["work/hw.toml"]
    case.set_flag("--hw", "hw.toml")
    case.note(f"--hw file: {how}")
    return case


@mutator("options", must_reject=True)
def opt_print_ir_after_bogus(rng: random.Random, case: Case) -> Case:
    value = rng.choice(["bogus", "no-such-pass", "ALL", "canonicalise"])
    case.set_flag("--print-ir-after", value)
    case.note(f"--print-ir-after {value!r}")
    return case


@mutator("options")
def opt_print_ir_after(rng: random.Random, case: Case) -> Case:
    value = rng.choice(["all", "", *PASSES])
    case.set_flag("--print-ir-after", value)
    case.note(f"--print-ir-after {value!r}")
    return case


@mutator("options")
def opt_pipeline(rng: random.Random, case: Case) -> Case:
    junk = "".join(rng.choice("abc-{}=,\"'[]:0123 ") for _ in range(rng.randint(1, 20)))
    value = rng.choice([junk, "", ",,,", "canonicalize{", "canonicalize{bogus=1}", "no-such-pass",
                        "fold-constants,fold-constants", "quantize{weight_bits=99}", "prune{sparsity=2}",
                        'prune{pattern="1:1000000000"}', "quantize{calib=\"missing.npz\"}",
                        ",".join(rng.sample(PASSES, rng.randint(1, len(PASSES))))])
    case.set_flag("--pipeline", value)
    case.note(f"--pipeline {value!r}")
    return case


@mutator("options")
def opt_choice_flags(rng: random.Random, case: Case) -> Case:
    """--target, --pack, --c-weights, --name and --stream with odd values."""
    flag = rng.choice(["--target", "--pack", "--c-weights", "--name", "--stream"])
    value = rng.choice({"--target": ["fpga", "", "C", "az_sim", "ir "],
                        "--pack": ["bogus", "", "auto", "dense", "bitmask", "rle", "codebook", "huffman"],
                        "--c-weights": ["bogus", "packed", "dense", ""],
                        "--name": ["", "1abc", "a-b", "x" * 300, "\u00fcn\u00efc\u00f6de", "main", "a b", "../x"],
                        "--stream": [f"{next(iter(case.seed_model.inputs))}=1,4", "x=", "=1"]}[flag])
    if flag == "--target":
        case.target = value
    else:
        case.set_flag(flag, value)
    case.note(f"{flag} {value!r}")
    return case


@mutator("options")
def opt_cli_shape(rng: random.Random, case: Case) -> Case:
    """Malformed command lines: unknown flag, a flag with no value, a repeated flag, odd model paths."""
    how = rng.choice(["unknown", "no-value", "repeated", "model-missing", "model-folder", "model-empty",
                      "model-dev-null", "no-output"])
    if how == "unknown":
        case.options.append("--frobnicate")
    elif how == "no-value":
        case.options.append(rng.choice(["--calib", "--weight-bits", "--input-shape", "--hw"]))
    elif how == "repeated":
        case.options += ["--target", "az-sim", "--target", "c"]
    elif how == "no-output":
        case.out = None
    else:
        case.subject = {"model-missing": "nope.onnx", "model-folder": "sub", "model-empty": "",
                        "model-dev-null": "/dev/null"}[how]
    case.note(f"command line: {how}")
    return case


@mutator("options")
def opt_compression(rng: random.Random, case: Case) -> Case:
    """A valid mix of compression options (the accepted path, checked for determinism)."""
    case.target = rng.choice(["az-sim", "az-sim", "c"])
    chosen = []
    if rng.random() < 0.6:
        chosen += ["--weight-bits", str(rng.randint(2, 8))]
    if rng.random() < 0.4:
        chosen += ["--sparsity", rng.choice(["0.25", "0.5", "0.75"])]
    elif rng.random() < 0.4:
        chosen += ["--sparsity-pattern", rng.choice(["2:4", "1:4", "4:8"])]
    if rng.random() < 0.3:
        chosen += ["--codebook"]
    if rng.random() < 0.4:
        chosen += ["--pack", rng.choice(["auto", "dense", "bitmask", "rle", "codebook", "huffman"])]
    if case.target == "c" and rng.random() < 0.5:
        chosen += ["--c-weights", "packed"]
    if rng.random() < 0.2:
        chosen += ["--verify-each"]
    case.options += chosen
    case.note(f"compression options {chosen}")
    return case


@mutator("options")
def opt_sensitivity(rng: random.Random, case: Case) -> Case:
    case.as_inspect(case.subject, rng)
    bits, sparsity = rng.choice(INTS[:10]), rng.choice(FLOATS)
    case.options += ["--sensitivity", "--bits", bits, "--sparsity", sparsity]
    case.note(f"inspect --sensitivity --bits {bits!r} --sparsity {sparsity!r}")
    return case
