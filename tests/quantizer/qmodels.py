"""Helpers for the quantizer tests: build small float and QDQ ONNX models, run
them through CANONICAL + quantize, and compare with onnxruntime or the float
graph. Imported by module name (tests/quantizer has no __init__.py)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import onnxruntime as ort
from onnx import helper, numpy_helper

from nnc.verify_step import is_integer_graph
from nnc.errors import NncWarning
from nnc.frontend.onnx_loader import lower_model
from nnc.interpreter import run
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL
from nnc.verifier import verify

RNG = np.random.default_rng(7)
_NAMES = itertools.count()


class Builder:
    """An ONNX graph under construction; `model()` returns the opset-17 model."""

    def __init__(self):
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []

    def input(self, name: str, shape, dtype=np.float32) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                                         list(shape)))
        return name

    def output(self, name: str, shape, dtype=np.float32) -> str:
        self.outputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                                          list(shape)))
        return name

    def const(self, array, name: str | None = None) -> str:
        name = name or f"c{next(_NAMES)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or f"t{next(_NAMES)}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{op.lower()}_{output}", **attrs))
        return output

    def dq(self, x: str, scale, zero_point, axis=None, output=None) -> str:
        """DequantizeLinear; an int activation zero point means int8."""
        zp = np.int8(zero_point) if isinstance(zero_point, int) else np.asarray(zero_point)
        attrs = {} if axis is None else {"axis": axis}
        return self.node("DequantizeLinear", [x, self.const(np.asarray(scale, np.float32)), self.const(zp)],
                         output, **attrs)

    def q(self, x: str, scale: float, zero_point: int, output=None) -> str:
        return self.node("QuantizeLinear", [x, self.const(np.float32(scale)), self.const(np.int8(zero_point))],
                         output)

    def weights(self, q: np.ndarray, scales, axis: int = 0) -> str:
        """DequantizeLinear of int8 weights (per-channel along axis, or per tensor)."""
        scales = np.asarray(scales, np.float32)
        zp = np.zeros(scales.shape, np.int8)
        return self.dq(self.const(q.astype(np.int8)), scales, zp, axis if scales.ndim else None)

    def bias(self, q: np.ndarray, scales) -> str:
        scales = np.asarray(scales, np.float32)
        return self.dq(self.const(q.astype(np.int32)), scales, np.zeros(scales.shape, np.int32),
                       0 if scales.ndim else None)

    def model(self):
        graph = helper.make_graph(self.nodes, "g", self.inputs, self.outputs, self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def randn(*shape, scale=1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def rand_int8(*shape) -> np.ndarray:
    return RNG.integers(-128, 128, shape).astype(np.int8)


# -- compiling ---------------------------------------------------------------------
def canonical(model):
    return PassManager(parse_pipeline(CANONICAL)).run(lower_model(model, {}))


def quantized(model, options: str = "", expect_warning: bool = False):
    """(float graph after CANONICAL, integer graph after quantize{options}),
    checked: valid, integer, same interface."""
    graph = canonical(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NncWarning)
        (quantize,) = parse_pipeline(f"quantize{{{options}}}" if options else "quantize")
        result = quantize.run(graph.copy())
    few_samples = "real samples may not cover"  # small test calibration files: expected, not the point here
    assert any(issubclass(w.category, NncWarning) and few_samples not in str(w.message)
               for w in caught) == expect_warning
    verify(result)
    assert is_integer_graph(result)
    assert result.inputs == graph.inputs and result.outputs == graph.outputs
    for name in (*graph.inputs, *graph.outputs):
        assert result.tensor(name).dtype == graph.tensor(name).dtype
    return graph, result


def ort_outputs(model, feeds: dict) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def check_qdq(model, samples: int = 4, tolerance: int = 1):
    """The quantized graph of QDQ `model` agrees with onnxruntime (optimizations
    off) within `tolerance` LSB on random int8 inputs; returns the integer graph
    and the largest difference seen."""
    graph, result = quantized(model)
    worst = 0
    for _ in range(samples):
        feeds = {n: rand_int8(*graph.tensor(n).shape) for n in graph.inputs}
        want = ort_outputs(model, feeds)
        got = run(result, feeds)
        for name, expected in zip(graph.outputs, want):
            worst = max(worst, int(np.max(np.abs(got[name].astype(int) - expected.astype(int)))))
    assert worst <= tolerance
    return result, worst


def output_scale(graph, name: str) -> float:
    """The scale of the 8-bit tensor that the output DequantizeLinear reads."""
    dq = graph.producer(name)
    assert dq.op == "DequantizeLinear"
    return graph.tensor(dq.inputs[0]).quant.scale[0]


def check_float(model, tmp_path, samples: list[dict], lsb: float = 3.0, options: str = ""):
    """Quantize float `model` calibrated on `samples`; its dequantized outputs must
    be within `lsb` output LSB of the float graph's on those samples. Returns
    (integer graph, worst difference in output LSB)."""
    path = tmp_path / "calib.npz"
    np.savez(path, **{k: np.stack([s[k] for s in samples]) for k in samples[0]})
    graph, result = quantized(model, f'calib="{path}"' + (f",{options}" if options else ""))
    worst = 0.0
    for sample in samples:
        want, got = run(graph, sample), run(result, sample)
        for name in graph.outputs:
            diff = np.max(np.abs(got[name].astype(np.float64) - want[name])) / output_scale(result, name)
            worst = max(worst, float(diff))
    assert worst <= lsb
    return result, worst


def ops(graph) -> list[str]:
    return [n.op for n in graph.nodes()]
