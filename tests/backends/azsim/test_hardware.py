"""The hardware description: shipped defaults, partial overrides, and one-line
OptionErrors naming the key and the file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from nnc.backends.azsim.hardware import DEFAULT_HW, Hardware, hardware_fields, load_hardware
from nnc.errors import OptionError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "azsim.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hw.toml"
    path.write_text(text)
    return path


def test_defaults_load_and_cover_every_field():
    hw = load_hardware()
    assert isinstance(hw, Hardware)
    assert hw.mac_lanes >= 1 and hw.clock_mhz > 0 and hw.skip_zero_activations is False
    assert set(hardware_fields()) == {f.name for f in dataclasses.fields(Hardware)}


def test_override_keeps_other_defaults(tmp_path):
    hw = load_hardware(write(tmp_path, "mac_lanes = 128\nskip_zero_activations = true\nclock_mhz = 100\n"))
    default = load_hardware()
    assert (hw.mac_lanes, hw.skip_zero_activations, hw.clock_mhz) == (128, True, 100)
    assert hw.weight_sram_bytes == default.weight_sram_bytes
    assert hw.name == "hw" != default.name  # named after its file, not the default machine it changes
    assert load_hardware(write(tmp_path, 'name = "fast"\n')).name == "fast"


@pytest.mark.parametrize("text, match", [
    ("mac_lane = 4\n", "unknown key 'mac_lane'"),
    ("mac_lanes = 0\n", "'mac_lanes' must be an integer in [1, 65,536]"),
    ("mac_lanes = 2.5\n", "'mac_lanes' must be an integer"),
    ("mac_lanes = true\n", "'mac_lanes' must be an integer"),
    ("clock_mhz = 0\n", "'clock_mhz' must be a finite number in [0.001, 100,000]"),
    ("clock_mhz = \"fast\"\n", "'clock_mhz' must be a finite number"),
    ("clock_mhz = inf\n", "'clock_mhz' must be a finite number"),
    ("skip_zero_activations = 1\n", "'skip_zero_activations' must be true or false"),
    ("energy_pj_per_mac = -1.0\n", "'energy_pj_per_mac' must be a finite number in [0, 1e+06]"),
    ("[energy]\nper_mac = 1\n", "unknown key 'energy'"),
    ("mac_lanes = \n", "not valid TOML"),
])
def test_bad_files(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(OptionError, match=re.escape(match)) as info:
        load_hardware(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(OptionError, match=r"absent\.toml: no such hardware file$"):
        load_hardware(tmp_path / "absent.toml")


def test_construction_validates():
    with pytest.raises(OptionError, match="zero_skip_group"):
        dataclasses.replace(load_hardware(), zero_skip_group=0)


def test_docs_list_every_field_with_its_default():
    """docs/azsim.md's table names each key with the shipped default."""
    docs = DOCS.read_text()
    hw = load_hardware()
    for name in hardware_fields():
        value = getattr(hw, name)
        shown = str(value).lower() if isinstance(value, bool) else (f'"{value}"' if isinstance(value, str) else f"{value:g}")
        assert re.search(rf"\| `{name}` \| `?{re.escape(shown)}`? \|", docs), f"{name} = {shown} missing from docs"


def test_default_file_is_package_data():
    assert DEFAULT_HW.name == "default_hw.toml" and DEFAULT_HW.is_file()
