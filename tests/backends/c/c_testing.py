"""Helpers for the C target's tests: graphs of one op (or a few), building the
emitted sources with gcc/clang under -Werror and ASan/UBSan, running the
harness, and comparing with the reference interpreter (bit for bit on integer
graphs, within FLOAT_PARITY on float ones). `pack` (a --pack choice) compiles
with packed weights (--c-weights packed); None keeps int8 weights."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from nnc.backends.c import build
from nnc.backends.c.target import CTarget
from nnc.driver import CompileOptions
from nnc.quality import FLOAT_PARITY
from nnc.verify_step import is_integer_graph
from nnc.interpreter import run
from nnc.ir import Graph, Node, Tensor, TensorType
from nnc.ops import get_op
from nnc.verification import synthetic_samples
from nnc.verifier import verify

COMPILERS = [cc for cc in ("gcc", "clang") if shutil.which(cc)]
WERROR = ("-O1", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


class GraphBuilder:
    """Builds a graph node by node; `input`/`const` declare tensors, `op` adds a
    node whose output types come from the op's own shape inference."""

    def __init__(self, name: str = "g"):
        self.graph = Graph(name)
        self._count = 0

    def input(self, name: str, dtype: str, shape, layout: str | None = None) -> str:
        self.graph.add_tensor(Tensor(name, dtype, tuple(shape), layout=layout))
        self.graph.inputs.append(name)
        return name

    def const(self, name: str, data: np.ndarray) -> str:
        return self.graph.add_constant(name, np.asarray(data)).name

    def op(self, op: str, inputs: list[str], attrs=None, name: str | None = None) -> str:
        cls = get_op(op)
        attrs = cls.Attrs() if attrs is None else attrs
        types = [None if not t else TensorType(self.graph.tensor(t).dtype, self.graph.tensor(t).shape)
                 for t in inputs]
        (out_type,) = cls.infer(attrs, types)
        self._count += 1
        out = self.graph.unique_tensor_name(f"{op.lower()}{self._count}")
        self.graph.add_tensor(Tensor(out, out_type.dtype, out_type.shape))
        self.graph.add_node(Node(name or f"{op}_{self._count}", op, list(inputs), [out], attrs))
        return out

    def output(self, *names: str) -> Graph:
        self.graph.outputs.extend(names)
        verify(self.graph)
        return self.graph


def single_op(op: str, attrs, inputs: list[tuple[str, object]], name: str = "g") -> Graph:
    """A graph of one node; each input is (name, ndarray constant) or
    (name, (dtype, shape)) for a graph input."""
    b = GraphBuilder(name)
    names = []
    for input_name, spec in inputs:
        if not input_name:
            names.append("")
        elif isinstance(spec, np.ndarray):
            names.append(b.const(input_name, spec))
        else:
            names.append(b.input(input_name, *spec))
    return b.output(b.op(op, names, attrs))


def target(pack: str | None = None) -> CTarget:
    """The C target; with `pack`, keeping weights packed in that encoding."""
    return CTarget() if pack is None else CTarget(CompileOptions(target="c", c_weights="packed", pack=pack))


def emit(graph: Graph, folder: Path, stem: str | None = None, pack: str | None = None) -> tuple[Path, str]:
    stem = stem or re.sub(r"[^A-Za-z0-9_-]", "_", graph.name)
    folder.mkdir(parents=True, exist_ok=True)
    target(pack).emit(graph, folder, stem)
    return folder, stem


def build_harness(src: Path, stem: str, out: Path, cc: str = "gcc", flags=WERROR + SANITIZE) -> Path:
    return build.compile_c([src / f"{stem}.c", src / f"{stem}_test.c"], out, flags, cc=cc, include=src)


def run_c(graph: Graph, samples: list[dict], tmp: Path, cc: str = "gcc", flags=WERROR + SANITIZE,
          pack: str | None = None) -> list[dict]:
    """Emit, build (strict, sanitized) and run `graph` on `samples`."""
    src, stem = emit(graph, tmp / f"src_{cc}", pack=pack)
    exe = build_harness(src, stem, tmp / f"{stem}_{cc}", cc, flags)
    work = tmp / f"run_{cc}"
    work.mkdir(exist_ok=True)
    return build.run_harness(exe, graph, samples, work)


def assert_matches(graph: Graph, samples: list[dict], produced: list[dict]) -> None:
    """Bit-exact on integer graphs, within FLOAT_PARITY of the range on float ones."""
    reference = [run(graph, s) for s in samples]
    exact = is_integer_graph(graph)
    for ref, got in zip(reference, produced, strict=True):
        for name, want in ref.items():
            assert got[name].dtype == want.dtype and got[name].shape == want.shape
            if exact or want.dtype.kind != "f":
                np.testing.assert_array_equal(got[name], want, err_msg=name)
            else:
                scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
                np.testing.assert_allclose(got[name], want, rtol=0, atol=FLOAT_PARITY * scale, err_msg=name)


def check_graph(graph: Graph, tmp: Path, samples: list[dict] | None = None, compilers=None,
                pack: str | None = None) -> None:
    """The whole check with every available compiler."""
    samples = samples or synthetic_samples(graph, 3, seed=1)
    for cc in compilers or COMPILERS:
        assert_matches(graph, samples, run_c(graph, samples, tmp, cc, pack=pack))
