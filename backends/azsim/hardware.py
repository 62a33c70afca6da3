"""The az-sim hardware description: a frozen `Hardware` and its TOML loader.

`default_hw.toml` beside this module is the single source of the defaults; a
user's file (`--hw FILE`) or a preset (`--hw small`, `default`, `large`: the
files PRESETS names, shipped beside this module) overrides any subset of its keys. `load_hardware`
validates every key (known name, type, range) and raises OptionError with a
one-line message naming the key and the file. The fields, their units and the
cost formulas that use them are described in docs/azsim.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from pathlib import Path

from nnc.errors import OptionError, not_a_file
from nnc.records import record
from nnc.user_cache import cached_json

DEFAULT_HW = Path(__file__).with_name("default_hw.toml")
PRESETS = {name: Path(__file__).with_name(f"{name}_hw.toml") for name in ("small", "default", "large")}
MAX_NAME_LENGTH = 64


def _spec(kind: str, unit: str, minimum: float | None = None, maximum: float | None = None) -> dict:
    """Field metadata: `kind` (str, int, number, bool), unit and the inclusive
    range [minimum, maximum] of a number (docs/azsim.md §2 gives the reasons)."""
    return {"metadata": {"kind": kind, "unit": unit, "minimum": minimum, "maximum": maximum}}


# Ranges wide enough for any real part, narrow enough that no cost overflows,
# rounds to zero or asks for memory: rates from 1/1000 to 65536 per cycle,
# memories up to 4 GiB, energies up to 1 µJ per event.
_RATE = (0.001, 65536)
_ENERGY = (0, 1e6)
_MEMORY = (1, 1 << 32)


@record
class Hardware:
    """One az-sim machine. Values are validated on construction (OptionError)."""

    name: str = field(**_spec("str", ""))
    clock_mhz: float = field(**_spec("number", "MHz", 0.001, 100000))
    bus_bytes_per_cycle: float = field(**_spec("number", "bytes/cycle", *_RATE))
    decoder_bytes_per_cycle: float = field(**_spec("number", "compressed bytes/cycle", *_RATE))
    mac_lanes: int = field(**_spec("int", "MACs/cycle", 1, 65536))
    zero_skip_group: int = field(**_spec("int", "weights", 1, 4096))
    skip_zero_activations: bool = field(**_spec("bool", ""))
    post_cycles_per_output: float = field(**_spec("number", "cycles/element", 0, 1e6))
    layer_overhead_cycles: int = field(**_spec("int", "cycles", 0, 10**9))
    weight_sram_bytes: int = field(**_spec("int", "bytes", *_MEMORY))
    activation_sram_bytes: int = field(**_spec("int", "bytes", *_MEMORY))
    energy_pj_per_mac: float = field(**_spec("number", "pJ", *_ENERGY))
    energy_pj_per_sram_byte: float = field(**_spec("number", "pJ", *_ENERGY))
    energy_pj_per_offchip_byte: float = field(**_spec("number", "pJ", *_ENERGY))

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_value(f, getattr(self, f.name))


def hardware_fields() -> dict[str, dict]:
    """Field name -> metadata (kind, unit, minimum, maximum), in declaration order."""
    return {f.name: dict(f.metadata) for f in dataclasses.fields(Hardware)}


def load_hardware(path: str | Path | None = None) -> Hardware:
    """The default machine, with the keys of the TOML file at `path` (if any)
    overriding it; `path` may also be a preset name (PRESETS), which wins over
    a file of that name without a suffix. A file without `name` names the
    machine after itself (its stem), not the default machine it changes."""
    values = _read_toml(DEFAULT_HW)
    if path is not None and str(path) in PRESETS:
        path = PRESETS[str(path)]
    if path is not None:
        changes = _read_toml(Path(path))
        values.update({"name": Path(path).stem} | changes)
        where = str(path)
    else:
        where = str(DEFAULT_HW)
    try:
        return Hardware(**values)
    except TypeError as exc:  # a key missing from the defaults (a broken installation)
        raise OptionError(f"hardware description {where}: {exc}") from None
    except OptionError as exc:
        raise OptionError(f"hardware description {where}: {exc}") from None


def read_toml(path: Path, what: str) -> dict:
    """The TOML file at `path` as a dict (tomllib, or tomli on Python 3.10;
    a file read before comes from the user cache, user_cache.cached_json); an
    OptionError naming `what` ("hardware description", "sweep file") and the
    path when it cannot be read or parsed."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise OptionError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    return cached_json("toml", data, lambda: _parse_toml(data, path, what))


def _parse_toml(data: bytes, path: Path, what: str) -> dict:
    try:  # Python 3.11+
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise OptionError(f"reading a {what} needs Python 3.11+ or the 'tomli' package") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise OptionError(f"{what} {path}: not UTF-8 text (byte {exc.start}); a {what} is a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"{what} {path}: not valid TOML ({exc})") from None


def _read_toml(path: Path) -> dict:
    """The file's keys, checked against Hardware's fields (unknown keys, tables)."""
    problem = not_a_file(path, "hardware file")
    if problem:
        raise OptionError(f"{path}: {problem}")
    values = read_toml(path, "hardware description")
    known = hardware_fields()
    for key in values:
        if key not in known:
            raise OptionError(f"hardware description {path}: unknown key {key!r} "
                              f"(known: {', '.join(known)})")
    for key, value in values.items():
        try:
            _check_value(next(f for f in dataclasses.fields(Hardware) if f.name == key), value)
        except OptionError as exc:
            raise OptionError(f"hardware description {path}: {exc}") from None
    return values


def _check_value(f: dataclasses.Field, value) -> None:
    """OptionError naming the key unless `value` has the field's kind and range."""
    kind, minimum, maximum = f.metadata["kind"], f.metadata["minimum"], f.metadata["maximum"]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {"str": isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH and value.isprintable(),
          "bool": isinstance(value, bool),
          "int": is_number and isinstance(value, int),
          "number": is_number and math.isfinite(value)}[kind]
    if ok and kind in ("int", "number"):
        ok = minimum <= value <= maximum
    if not ok:
        shown = repr(value)
        raise OptionError(f"key {f.name!r} must be {_describe(f.metadata)}, got "
                          f"{shown if len(shown) <= 40 else shown[:37] + '...'}")


def _describe(meta: dict) -> str:
    if meta["kind"] == "str":
        return f"a string of 1 to {MAX_NAME_LENGTH} printable characters"
    if meta["kind"] == "bool":
        return "true or false"
    kind = "an integer" if meta["kind"] == "int" else "a finite number"
    unit = f" {meta['unit']}" if meta["unit"] else ""
    return f"{kind} in [{_show(meta['minimum'])}, {_show(meta['maximum'])}]{unit}"


def _show(bound: float) -> str:
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"
