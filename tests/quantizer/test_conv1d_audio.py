"""A Conv1d audio model (Conv with one spatial axis, BatchNormalization, Relu,
MaxPool, AveragePool, GlobalAveragePool, Flatten, Gemm) compiles for ir, c and
az-sim bit-exact with int8 cosine >= 0.99."""

from __future__ import annotations

import numpy as np
from e2e import compile_everywhere
from qmodels import Builder, randn

RNG = np.random.default_rng(21)


def _block(b: Builder, x: str, cin: int, cout: int, kernel: int, group: int = 1, **attrs) -> str:
    w = randn(cout, cin // group, kernel, scale=1.0 / np.sqrt(cin // group * kernel))
    conv = b.node("Conv", [x, b.const(w),
                           b.const(randn(cout, scale=0.1))], group=group, **attrs)
    stats = [b.const(np.abs(randn(cout)) + 0.5), b.const(randn(cout, scale=0.1)), b.const(randn(cout, scale=0.1)),
             b.const(np.abs(randn(cout)) + 0.5)]
    return b.node("Relu", [b.node("BatchNormalization", [conv, *stats])])


def audio_model():
    b = Builder()
    x = b.input("x", [1, 1, 400])
    h = _block(b, x, 1, 8, 9, strides=[4], pads=[4, 4])
    h = b.node("MaxPool", [h], kernel_shape=[2], strides=[2])
    h = _block(b, h, 8, 16, 3, pads=[1, 1], dilations=[1])
    h = b.node("AveragePool", [h], kernel_shape=[2], strides=[2])
    h = _block(b, h, 16, 16, 3, pads=[2, 2], dilations=[2], group=4)
    flat = b.node("Flatten", [b.node("GlobalAveragePool", [h])])
    b.node("Gemm", [flat, b.const(randn(10, 16, scale=0.3)), b.const(randn(10, scale=0.1))], "y", transB=1)
    b.output("y", [1, 10])
    return b.model()


def test_conv1d_audio_model_everywhere(tmp_path):
    samples = {"x": RNG.standard_normal((8, 1, 1, 400)).astype(np.float32)}
    reports = compile_everywhere(audio_model(), tmp_path, samples)
    assert reports["az-sim"]["verification"]["vs_float"]["cosine"] >= 0.99
