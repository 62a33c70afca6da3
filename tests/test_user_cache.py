"""The user cache (compiled templates, parsed TOML files) changes
how fast nnc starts, never what it writes: cold, warm, corrupted, unwritable or
turned off, a compile writes the same bytes and says nothing about the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnc.user_cache import cache_folder, cached_json

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.onnx"
COMPILE = ("import sys; from nnc.cli import main; sys.argv = ['nnc'] + sys.argv[1:]; code = main(); "
           "print('jinja2 imported' * ('jinja2' in sys.modules), file=sys.stderr); sys.exit(code)")


def compile_c(out: Path, cache: str) -> tuple[dict[str, bytes], str]:
    """`nnc compile digits --target c` in a fresh process with NNC_CACHE_DIR=`cache`:
    the C sources it wrote and its stderr."""
    env = {**os.environ, "NNC_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", COMPILE, "compile", str(DIGITS), "--target", "c", "--no-verify",
                           "-o", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.[ch]"))}, done.stderr


def test_cold_warm_and_corrupted_cache_write_the_same_sources(tmp_path):
    cache = tmp_path / "cache"
    cold, cold_said = compile_c(tmp_path / "cold", str(cache))
    entries = sorted(p for p in cache.rglob("*") if p.is_file())
    assert any("templates" in str(p) for p in entries)
    warm, warm_said = compile_c(tmp_path / "warm", str(cache))
    for entry in entries:
        entry.write_bytes(b"\x00not a cache entry")
    corrupted, stderr = compile_c(tmp_path / "corrupted", str(cache))
    off, _ = compile_c(tmp_path / "off", "")
    assert cold and cold == warm == corrupted == off
    assert "cache" not in stderr.lower()
    # jinja2 compiles templates; a warm cache renders them without it
    assert "jinja2 imported" in cold_said and "jinja2 imported" in stderr and "jinja2" not in warm_said


def test_an_unwritable_cache_is_no_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    sources, stderr = compile_c(tmp_path / "out", str(blocker))
    assert sources and "cache" not in stderr.lower()


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "nnc"))
    assert cache_folder("x") == tmp_path / "nnc" / "x" and (tmp_path / "nnc" / "x").is_dir()
    monkeypatch.setenv("NNC_CACHE_DIR", "")
    assert cache_folder("x") is None
    monkeypatch.delenv("NNC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder("x") == tmp_path / "xdg" / "nnc" / "x"


def test_no_home_folder_is_no_cache(monkeypatch):
    monkeypatch.delenv("NNC_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert cache_folder("x") is None


def test_cached_json_builds_once_and_survives_a_corrupted_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    built = []

    def build():
        built.append(1)
        return {"clock_mhz": 0.1, "name": "x", "lanes": [1, 2]}
    first = cached_json("kind", b"source", build)
    assert cached_json("kind", b"source", build) == first and len(built) == 1
    (entry,) = (tmp_path / "kind").iterdir()
    entry.write_bytes(b"\x00not json")
    assert cached_json("kind", b"source", build) == first and len(built) == 2
    assert cached_json("kind", b"other source", build) == first and len(built) == 3


@pytest.mark.parametrize("value", [{"at": float("nan")}, {"pair": (1, 2)}])
def test_cached_json_keeps_no_value_json_would_change(tmp_path, monkeypatch, value):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path))
    assert cached_json("kind", b"source", lambda: value) is value
    assert not any((tmp_path / "kind").iterdir())


def test_cached_json_without_a_cache_builds_every_time(monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", "")
    calls = []
    for _ in range(2):
        cached_json("kind", b"source", lambda: calls.append(1) or {"a": 1})
    assert len(calls) == 2


def test_a_hardware_description_read_before_needs_no_toml_parser(tmp_path):
    """The az-sim default machine is parsed once; later compiles read it from
    the cache without importing tomllib (3 ms)."""
    code = ("import sys\nfrom nnc.backends.azsim.hardware import load_hardware\n"
            "hw = load_hardware('small')\nprint(hw.name, 'tomllib' in sys.modules)")
    env = {**os.environ, "NNC_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True) for _ in range(2)]
    (name, parsed), (again, parsed_again) = (r.stdout.split() for r in runs)
    assert (name, parsed, parsed_again) == (again, "True", "False"), runs[0].stderr
