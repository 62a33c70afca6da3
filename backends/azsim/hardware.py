"""The az-sim hardware description: a frozen `Hardware` and its TOML loader.

`default_hw.toml` beside this module is the single source of the defaults; a
user's file (`--hw FILE`) overrides any subset of its keys. `load_hardware`
validates every key (known name, type, range) and raises OptionError with a
one-line message naming the key and the file. The fields, their units and the
cost formulas that use them are described in docs/azsim.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from nnc.errors import OptionError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

DEFAULT_HW = Path(__file__).with_name("default_hw.toml")


def _spec(kind: str, unit: str, minimum: float | None = None, positive: bool = False) -> dict:
    """Field metadata: `kind` (str, int, number, bool), unit and allowed range."""
    return {"metadata": {"kind": kind, "unit": unit, "minimum": minimum, "positive": positive}}


@dataclass(frozen=True)
class Hardware:
    """One az-sim machine. Values are validated on construction (OptionError)."""

    name: str = field(**_spec("str", ""))
    clock_mhz: float = field(**_spec("number", "MHz", positive=True))
    bus_bytes_per_cycle: float = field(**_spec("number", "bytes/cycle", positive=True))
    decoder_bytes_per_cycle: float = field(**_spec("number", "compressed bytes/cycle", positive=True))
    mac_lanes: int = field(**_spec("int", "MACs/cycle", minimum=1))
    zero_skip_group: int = field(**_spec("int", "weights", minimum=1))
    skip_zero_activations: bool = field(**_spec("bool", ""))
    post_cycles_per_output: float = field(**_spec("number", "cycles/element", minimum=0))
    layer_overhead_cycles: int = field(**_spec("int", "cycles", minimum=0))
    weight_sram_bytes: int = field(**_spec("int", "bytes", minimum=1))
    activation_sram_bytes: int = field(**_spec("int", "bytes", minimum=1))
    energy_pj_per_mac: float = field(**_spec("number", "pJ", minimum=0))
    energy_pj_per_sram_byte: float = field(**_spec("number", "pJ", minimum=0))
    energy_pj_per_offchip_byte: float = field(**_spec("number", "pJ", minimum=0))

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_value(f, getattr(self, f.name))


def hardware_fields() -> dict[str, dict]:
    """Field name -> metadata (kind, unit, minimum, positive), in declaration order."""
    return {f.name: dict(f.metadata) for f in dataclasses.fields(Hardware)}


def load_hardware(path: str | Path | None = None) -> Hardware:
    """The default machine, with the keys of the TOML file at `path` (if any) overriding it."""
    values = _read_toml(DEFAULT_HW)
    if path is not None:
        values.update(_read_toml(Path(path)))
        where = str(path)
    else:
        where = str(DEFAULT_HW)
    try:
        return Hardware(**values)
    except TypeError as exc:  # a key missing from the defaults (a broken installation)
        raise OptionError(f"hardware description {where}: {exc}") from None
    except OptionError as exc:
        raise OptionError(f"hardware description {where}: {exc}") from None


def _read_toml(path: Path) -> dict:
    """The file's keys, checked against Hardware's fields (unknown keys, tables)."""
    if tomllib is None:  # pragma: no cover
        raise OptionError("reading a hardware description needs Python 3.11+ or the 'tomli' package")
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except OSError as exc:
        raise OptionError(f"hardware description {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"hardware description {path}: not valid TOML ({exc})") from None
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
    kind, minimum, positive = f.metadata["kind"], f.metadata["minimum"], f.metadata["positive"]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {"str": isinstance(value, str),
          "bool": isinstance(value, bool),
          "int": is_number and isinstance(value, int),
          "number": is_number and math.isfinite(value)}[kind]
    if ok and kind in ("int", "number"):
        ok = (not positive or value > 0) and (minimum is None or value >= minimum)
    if not ok:
        raise OptionError(f"key {f.name!r} must be {_describe(f.metadata)}, got {value!r}")


def _describe(meta: dict) -> str:
    kind = {"str": "a string", "bool": "true or false", "int": "an integer",
            "number": "a finite number"}[meta["kind"]]
    if meta["positive"]:
        kind += " > 0"
    elif meta["minimum"] is not None:
        kind += f" >= {meta['minimum']:g}"
    return kind + (f" ({meta['unit']})" if meta["unit"] else "")
