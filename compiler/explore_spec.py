"""The sweep of `nnc explore`: axes of compression settings and of az-sim
hardware values, read from command-line lists and/or a TOML sweep file, and the
points they span.

Invariants:
- Every value is checked before any work: a compression value by the
  CompileOptions it makes (the messages `nnc compile` gives), a hardware value
  by the `Hardware` it makes over the base machine (the key and its range);
  every combination of compression values is checked as one CompileOptions.
  A problem is one OptionError line naming the axis and the value.
- Axes are kept in a canonical order (CompileOptions' field order, then
  Hardware's), values in the order given, no value twice; the points are the
  product, compression settings outer, hardware inner, numbered from 0. The
  same sweep therefore always gives the same points in the same order.
- At most limits.MAX_EXPLORE_POINTS points.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from pathlib import Path

from .errors import NncError, OptionError, not_a_file
from .limits import MAX_EXPLORE_POINTS
from .records import record

# command-line flag -> CompileOptions field, the compression settings a sweep may vary
COMPRESSION_FLAGS = {"bits": "weight_bits", "first-last-bits": "first_last_bits", "sparsity": "sparsity",
                     "pattern": "sparsity_pattern", "prune-channels": "prune_channels", "codebook": "codebook",
                     "method": "method", "pack": "pack"}
# command-line flag -> Hardware field (a TOML sweep file may name any Hardware field)
HARDWARE_FLAGS = {"lanes": "mac_lanes", "weight-sram": "weight_sram_bytes",
                  "activation-sram": "activation_sram_bytes", "clock": "clock_mhz",
                  "decoder-width": "decoder_bytes_per_cycle", "bus-width": "bus_bytes_per_cycle"}
# the kind of each compression field's values
COMPRESSION_KINDS = {"weight_bits": "int", "first_last_bits": "int", "sparsity": "number",
                     "sparsity_pattern": "pattern", "prune_channels": "number", "codebook": "bool",
                     "method": "str", "pack": "str"}
SIZE_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
BOOLEANS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}


@record
class Point:
    """One sweep point: its number, compression settings (CompileOptions fields)
    and hardware overrides (Hardware fields), each as (name, value) pairs in
    the canonical axis order."""

    index: int
    compression: tuple[tuple[str, object], ...]
    hardware: tuple[tuple[str, object], ...]

    def label(self) -> str:
        """`bits=4 sparsity=0.5 mac_lanes=64`: the swept values, short names."""
        return " ".join(f"{axis_name(name)}={_shown(value)}" for name, value in (*self.compression, *self.hardware))


@record
class Sweep:
    """The axes, canonical order: {field: values} for compression and hardware,
    and `base`: the machine's fields every hardware point starts from."""

    compression: dict[str, tuple]
    hardware: dict[str, tuple]
    base: dict[str, object]

    def points(self) -> list[Point]:
        settings = list(itertools.product(*self.compression.values()))
        machines = list(itertools.product(*self.hardware.values()))
        return [Point(i * len(machines) + j, tuple(zip(self.compression, c)), tuple(zip(self.hardware, m)))
                for i, c in enumerate(settings) for j, m in enumerate(machines)]

    def to_json(self) -> dict:
        return {"compression": {k: list(v) for k, v in self.compression.items()},
                "hardware": {k: list(v) for k, v in self.hardware.items()}, "base_hardware": dict(self.base)}


def build_sweep(axes: dict[str, str | list], sweep_file: Path | None = None, base_hw: str | Path | None = None,
                options: dict | None = None) -> Sweep:
    """The sweep from `axes` ({flag or field: "v1,v2" or [values]}, flags as in
    COMPRESSION_FLAGS and HARDWARE_FLAGS, fields of CompileOptions or Hardware;
    None: not given) and a TOML file's [compression] and [hardware] tables (an
    axis in `axes` replaces the file's), over the machine `base_hw` (default:
    the shipped one). `options`: the fixed compile options (calib, ...) each
    combination of compression values is checked with."""
    from nnc.backends.azsim.hardware import hardware_fields, load_hardware

    base = dataclasses.asdict(load_hardware(base_hw))
    compression, hardware = _read_sweep_file(sweep_file) if sweep_file else ({}, {})
    for name, values in axes.items():
        if values is None:
            continue
        field_name = COMPRESSION_FLAGS.get(name) or HARDWARE_FLAGS.get(name) or name
        table = hardware if field_name in hardware_fields() else compression
        table[field_name] = _split(values, name) if isinstance(values, str) else list(values)
        if not table[field_name]:
            raise OptionError(f"sweep {name}: no values")
    _check_count([len(v) for v in (*compression.values(), *hardware.values())])  # before checking combinations
    return Sweep(_compression_axes(compression, options or {}), _hardware_axes(hardware, base), base)


def _read_sweep_file(path: Path) -> tuple[dict, dict]:
    """The file's [compression] and [hardware] tables as {field: [values]}."""
    from nnc.backends.azsim.hardware import read_toml

    problem = not_a_file(path, "sweep file")
    if problem:
        raise OptionError(f"{path}: {problem}")
    data = read_toml(path, "sweep file")
    unknown = sorted(set(data) - {"compression", "hardware"})
    if unknown or not all(isinstance(data.get(t, {}), dict) for t in ("compression", "hardware")):
        raise OptionError(f"sweep file {path}: expected only the tables [compression] and [hardware], "
                          f"found {', '.join(unknown) or 'a key outside them'}")
    tables = []
    for table in ("compression", "hardware"):
        values = {}
        for key, value in data.get(table, {}).items():
            values[key] = value if isinstance(value, list) else [value]
            if not values[key]:
                raise OptionError(f"sweep file {path}: [{table}] {key} has no values")
        tables.append(values)
    return tables[0], tables[1]


def _split(text: str, flag: str) -> list[str]:
    values = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not v for v in values):
        raise OptionError(f"sweep {flag} {text!r}: expected comma-separated values, e.g. {_example(flag)!r}",
                          cli=f"--{flag} {text!r}: expected comma-separated values, e.g. --{flag} {_example(flag)}")
    return values


def _compression_axes(raw: dict[str, list], options: dict) -> dict[str, tuple]:
    from .compile_options import CompileOptions

    axes = {}
    for name in (f.name for f in dataclasses.fields(CompileOptions)):
        if name in raw:
            axes[name] = _distinct(name, [_compression_value(name, v) for v in raw.pop(name)])
    if raw:
        raise OptionError(f"sweep: {next(iter(raw))!r} is not a compression setting to sweep "
                          f"(one of: {', '.join(COMPRESSION_KINDS)})")
    for combination in itertools.product(*axes.values()):
        setting = dict(zip(axes, combination))
        try:
            CompileOptions(target="az-sim", **{**options, **setting})
        except NncError as exc:
            shown = " ".join(f"{axis_name(k)}={_shown(v)}" for k, v in setting.items())
            raise OptionError(f"sweep point {shown}: {exc}") from None
    return axes


def _compression_value(name: str, value):
    """`value` (a string from the command line, or a TOML value) as the field's type."""
    from .compile_options import CompileOptions

    if name not in COMPRESSION_KINDS:
        raise OptionError(f"sweep: {name!r} is not a compression setting to sweep "
                          f"(one of: {', '.join(COMPRESSION_KINDS)})")
    parsed = _parse(COMPRESSION_KINDS[name], value, f"sweep {axis_name(name)}")
    try:
        CompileOptions(target="az-sim", **{name: parsed})
    except NncError as exc:
        raise OptionError(f"sweep {axis_name(name)}={_shown(parsed)}: {exc}") from None
    return parsed


def _hardware_axes(raw: dict[str, list], base: dict) -> dict[str, tuple]:
    from nnc.backends.azsim.hardware import Hardware, hardware_fields

    known = hardware_fields()
    axes = {}
    for name, meta in known.items():
        if name in raw and name != "name":
            values = [_parse(meta["kind"], v, f"sweep {axis_name(name)}") for v in raw.pop(name)]
            for value in values:
                try:
                    Hardware(**{**base, name: value})
                except NncError as exc:
                    raise OptionError(f"sweep {axis_name(name)}: {exc}") from None
            axes[name] = _distinct(name, values)
    if raw:
        raise OptionError(f"sweep: {next(iter(raw))!r} is not a hardware key to sweep "
                          f"(one of: {', '.join(k for k in known if k != 'name')})")
    return axes


def _parse(kind: str, value, what: str):
    """A string or TOML value as `kind` (int with K/M/G = 2^10/2^20/2^30, number, bool, str, pattern)."""
    if isinstance(value, str) and kind != "str" and kind != "pattern":
        value = _from_text(kind, value.strip(), what)
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
          "bool": isinstance(value, bool), "str": isinstance(value, str),
          "pattern": isinstance(value, str)}[kind]
    if not ok:
        raise OptionError(f"{what}: expected {_kind_name(kind)}, got {value!r}")
    if kind == "pattern":
        return None if value.strip().lower() in ("none", "") else value.strip()
    return float(value) if kind == "number" else value


def size_value(text: str) -> int:
    """A whole number with an optional K, M or G suffix (2^10, 2^20, 2^30);
    ValueError otherwise."""
    match = re.fullmatch(r"([0-9]+)([KMG]?)", text.strip(), re.IGNORECASE)
    if match is None:
        raise ValueError(text)
    return int(match[1]) * SIZE_SUFFIXES.get(match[2].upper(), 1)


def _from_text(kind: str, text: str, what: str):
    try:
        if kind == "int":
            return size_value(text)
        if kind == "number":
            return float(text)
        return BOOLEANS[text.lower()]
    except (ValueError, KeyError):
        raise OptionError(f"{what}: expected {_kind_name(kind)}, got {text!r}") from None


def _kind_name(kind: str) -> str:
    return {"int": "an integer (K, M, G suffixes: 2^10, 2^20, 2^30)", "number": "a number",
            "bool": "true or false", "str": "a name", "pattern": "N:M or none"}[kind]


def _distinct(name: str, values: list) -> tuple:
    seen = set()
    for value in values:
        if value in seen:
            raise OptionError(f"sweep {axis_name(name)}: value {_shown(value)} is listed twice")
        seen.add(value)
    return tuple(values)


def _check_count(sizes: list[int]) -> None:
    """The sweep's point count (the product of its axes' lengths) against MAX_EXPLORE_POINTS."""
    count = math.prod(sizes)
    if count > MAX_EXPLORE_POINTS:
        shown = " x ".join(map(str, sizes))
        raise OptionError(f"sweep has {count:,} points ({shown}), past nnc's limit of {MAX_EXPLORE_POINTS:,} "
                          "(docs/limits.md); sweep fewer values")


def axis_name(name: str) -> str:
    """The command-line flag of a field (`weight_bits` -> `bits`), or the field itself."""
    for flag, field_name in (*COMPRESSION_FLAGS.items(), *HARDWARE_FLAGS.items()):
        if field_name == name:
            return flag
    return name


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _example(flag: str) -> str:
    return {"bits": "8,4", "sparsity": "0,0.5", "pattern": "none,2:4", "codebook": "false,true",
            "method": "magnitude,obs", "pack": "auto,dense", "lanes": "32,64,128",
            "weight-sram": "64K,128K", "activation-sram": "128K,256K", "clock": "100,250"}.get(flag, "A,B")
