"""Float references of the math ops (compiler/ops/math_unary.py) against
onnxruntime: Erf, Gelu (opset 20, both approximations), Sqrt, Exp, Log, Neg,
Abs, Reciprocal, Sign, Sin, Cos, Softplus, Softsign, Elu, Selu, Mish and Pow with a broadcast
exponent."""

from __future__ import annotations

import numpy as np
import pytest
from op_oracles import run_nnc, run_ort

from nnc.errors import UnsupportedError

RNG = np.random.default_rng(9)
X = (RNG.standard_normal((2, 3, 7)) * 2).astype(np.float32)
POSITIVE = np.abs(X) + np.float32(0.05)


@pytest.mark.parametrize("op, x", [("Erf", X), ("Exp", X), ("Neg", X), ("Abs", X), ("Sqrt", POSITIVE),
                                   ("Reciprocal", POSITIVE), ("Log", POSITIVE), ("Softplus", X * 20),
                                   ("Softsign", X), ("Sign", np.concatenate([X, np.zeros_like(X)])), ("Elu", X),
                                   ("Selu", X), ("Mish", X), ("Sin", X * 3), ("Cos", X * 3)])
def test_unary_matches_onnxruntime(op, x):
    (got,) = run_nnc(op, [x])
    (want,) = run_ort(op, [x])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_onnxruntime(approximate):
    x = np.concatenate([X.reshape(-1), np.linspace(-9, 9, 37, dtype=np.float32)])
    (got,) = run_nnc("Gelu", [x], {"approximate": approximate}, opset=20)
    (want,) = run_ort("Gelu", [x], {"approximate": approximate}, opset=20)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("exponent", [np.float32(2.0), np.float32(0.5), np.int64(3),
                                      np.linspace(0.5, 3, 7, dtype=np.float32)])
def test_pow_matches_onnxruntime(exponent):
    (got,) = run_nnc("Pow", [POSITIVE, np.asarray(exponent)])
    (want,) = run_ort("Pow", [POSITIVE, np.asarray(exponent)])
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_gelu_refuses_an_unknown_approximation():
    with pytest.raises(UnsupportedError, match="approximate='fast'"):
        run_nnc("Gelu", [X], {"approximate": "fast"}, opset=20)


def test_swish_is_silu():
    """ONNX Swish (opset 24) with alpha 1 is SiLU, x · sigmoid(x); another alpha is refused."""
    x = np.linspace(-30, 30, 121, dtype=np.float32)
    (got,) = run_nnc("Swish", [x], opset=24)
    np.testing.assert_allclose(got, x / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6, atol=1e-7)
    with pytest.raises(UnsupportedError, match="alpha=0.5"):
        run_nnc("Swish", [x], {"alpha": 0.5}, opset=24)
