"""The user cache (compiled templates, the pipeline grammar's tables) changes
how fast nnc starts, never what it writes: cold, warm, corrupted, unwritable or
turned off, a compile writes the same bytes and says nothing about the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nnc.user_cache import cache_folder

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.onnx"
COMPILE = "import sys; from nnc.cli import main; sys.argv = ['nnc'] + sys.argv[1:]; sys.exit(main())"


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
    cold, _ = compile_c(tmp_path / "cold", str(cache))
    entries = sorted(p for p in cache.rglob("*") if p.is_file())
    assert any("jinja2" in str(p) for p in entries)
    warm, _ = compile_c(tmp_path / "warm", str(cache))
    for entry in entries:
        entry.write_bytes(b"\x00not a cache entry")
    corrupted, stderr = compile_c(tmp_path / "corrupted", str(cache))
    off, _ = compile_c(tmp_path / "off", "")
    assert cold and cold == warm == corrupted == off
    assert "cache" not in stderr.lower()


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
