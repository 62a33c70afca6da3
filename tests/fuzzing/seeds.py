"""The seed corpus: small valid inputs that every fuzz case starts from.

Built at run time into a work folder (nothing binary is checked in):
- four tiny ONNX models made with onnx.helper, each with fixed weights:
  "cnn" (Conv+Relu+Clip+Flatten+Gemm, symbolic batch), "mlp" (MatMul/Add/Relu),
  "ext" (an MLP whose weights live in an external-data file) and "two" (two
  inputs);
- per model an .npz of a batch of samples under the input names, and an .npy
  for the single-input ones;
- an az-sim blob and an earlier output folder compiled from "cnn" with
  `nnc compile --target az-sim`, and a .nnir plus its output folder from "mlp"
  with `--target ir` (both through the real `nnc` command line);
- the default az-sim hardware description, which --hw mutations edit.

Invariant: the same nnc and onnx versions build the same corpus bytes, so a
case (seed, index) is reproducible from the corpus alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SAMPLES = 3          # samples per .npz batch
OPSET = 17


@dataclass(frozen=True)
class Seed:
    """One valid model and its sample files."""

    name: str
    model: str                                  # file name of the .onnx in `files`
    files: dict[str, bytes]                     # the model and its external data
    inputs: dict[str, tuple[int, ...]]          # input name -> shape (symbolic dims bound to 1)
    samples: bytes                              # .npz: SAMPLES samples stacked under the input names
    sample_npy: bytes | None                    # .npy: the same batch, single-input models only
    ops: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Corpus:
    """Every seed a case can start from (see the module docstring)."""

    seeds: dict[str, Seed]
    blob: bytes                                 # az-sim blob of seed "cnn"
    nnir: bytes                                 # text IR of seed "mlp"
    earlier_outputs: dict[str, dict[str, bytes]]  # target -> files of a folder nnc wrote
    hw: str                                     # the default hardware description (TOML)


def _weights(rng: np.random.Generator, name: str, *shape: int) -> TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)


def _save(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nnc-fuzz")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def cnn_model(rng: np.random.Generator) -> bytes:
    """Conv(4x1x3x3, pads 1) -> Relu -> Clip(0, 6) -> Flatten -> Gemm(10) on input[N,1,8,8]."""
    inits = [_weights(rng, "conv_w", 4, 1, 3, 3), _weights(rng, "conv_b", 4),
             numpy_helper.from_array(np.array(0.0, np.float32), "clip_min"),
             numpy_helper.from_array(np.array(6.0, np.float32), "clip_max"),
             _weights(rng, "fc_w", 10, 256), _weights(rng, "fc_b", 10)]
    nodes = [helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], name="conv",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], group=1),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Clip", ["r", "clip_min", "clip_max"], ["k"], name="clip"),
             helper.make_node("Flatten", ["k"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                          ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return _save(graph)


def mlp_model(rng: np.random.Generator) -> bytes:
    """x[1,16] -> MatMul(16x8) -> Add -> Relu -> MatMul(8x4) -> Add -> y."""
    inits = [_weights(rng, "w1", 16, 8), _weights(rng, "b1", 8), _weights(rng, "w2", 8, 4), _weights(rng, "b2", 4)]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"], name="mm1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"], name="add1"),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
             helper.make_node("MatMul", ["h2", "w2"], ["h3"], name="mm2"),
             helper.make_node("Add", ["h3", "b2"], ["y"], name="add2")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return _save(graph)


def external_model(rng: np.random.Generator) -> tuple[bytes, bytes]:
    """features[1,12] -> MatMul(12x6) -> Relu -> MatMul(6x3) -> scores; both weights
    stored in "ext.onnx.data" (w1 at offset 0, w2 right after it)."""
    w1 = (rng.standard_normal((12, 6)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((6, 3)) * 0.3).astype(np.float32)
    data = w1.tobytes() + w2.tobytes()
    inits = [_external("w1", w1, 0), _external("w2", w2, w1.nbytes)]
    nodes = [helper.make_node("MatMul", ["features", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu"),
             helper.make_node("MatMul", ["hr", "w2"], ["scores"], name="mm2")]
    graph = helper.make_graph(nodes, "ext", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 12])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nnc-fuzz")
    return model.SerializeToString(), data


def _external(name: str, array: np.ndarray, offset: int) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape,
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "ext.onnx.data"), ("offset", str(offset)), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def two_input_model(rng: np.random.Generator) -> bytes:
    """a[1,8] + b[1,8] -> MatMul(8x4) -> Relu -> out."""
    nodes = [helper.make_node("Add", ["a", "b"], ["s"], name="add"),
             helper.make_node("MatMul", ["s", "w"], ["m"], name="mm"),
             helper.make_node("Relu", ["m"], ["out"], name="relu")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 8]) for n in ("a", "b")]
    graph = helper.make_graph(nodes, "two", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
                              [_weights(rng, "w", 8, 4)])
    return _save(graph)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _seed(name: str, files: dict[str, bytes], inputs: dict[str, tuple[int, ...]], ops: set[str],
          rng: np.random.Generator) -> Seed:
    batch = {k: rng.uniform(-1, 1, (SAMPLES, *shape)).astype(np.float32) for k, shape in inputs.items()}
    npy = npy_bytes(next(iter(batch.values()))) if len(batch) == 1 else None
    return Seed(name, f"{name}.onnx", files, inputs, npz_bytes(batch), npy, frozenset(ops))


def make_seeds() -> dict[str, Seed]:
    """The four seed models with their samples; deterministic (fixed generator)."""
    rng = np.random.default_rng(20261)
    ext_model, ext_data = external_model(rng)
    seeds = [_seed("cnn", {"cnn.onnx": cnn_model(rng)}, {"input": (1, 1, 8, 8)},
                   {"Conv", "Relu", "Clip", "Flatten", "Gemm"}, rng),
             _seed("mlp", {"mlp.onnx": mlp_model(rng)}, {"x": (1, 16)}, {"MatMul", "Add", "Relu"}, rng),
             _seed("ext", {"ext.onnx": ext_model, "ext.onnx.data": ext_data}, {"features": (1, 12)},
                   {"MatMul", "Relu"}, rng),
             _seed("two", {"two.onnx": two_input_model(rng)}, {"a": (1, 8), "b": (1, 8)},
                   {"Add", "MatMul", "Relu"}, rng)]
    return {s.name: s for s in seeds}


def _nnc(args: list[str], cwd: Path) -> None:
    """Run the real `nnc` command line; RuntimeError with its stderr if it fails."""
    proc = subprocess.run([sys.executable, "-m", "nnc.cli", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"building the fuzz corpus: nnc {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr.strip()}")


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _default_hw() -> str:
    import nnc.backends.azsim as azsim

    return (Path(azsim.__file__).parent / "default_hw.toml").read_text(encoding="utf-8")


def build_corpus(work: Path) -> Corpus:
    """Write the seeds into work/corpus, compile the blob and the text IR there
    with `nnc compile`, and return the whole corpus in memory."""
    folder = work / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = make_seeds()
    for seed in seeds.values():
        for name, data in seed.files.items():
            (folder / name).write_bytes(data)
        (folder / f"{seed.name}.npz").write_bytes(seed.samples)
    jobs = {"az-sim": ["compile", "cnn.onnx", "--target", "az-sim", "-o", "out-az-sim", "--calib", "cnn.npz"],
            "ir": ["compile", "mlp.onnx", "--target", "ir", "-o", "out-ir", "--inputs", "mlp.npz"]}
    for target in jobs:
        shutil.rmtree(folder / f"out-{target}", ignore_errors=True)
    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(lambda args: _nnc(args, folder), jobs.values()))
    earlier = {target: _folder_files(folder / f"out-{target}") for target in jobs}
    return Corpus(seeds, earlier["az-sim"]["cnn.azb"], earlier["ir"]["mlp.nnir"], earlier, _default_hw())

