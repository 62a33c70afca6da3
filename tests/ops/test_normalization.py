"""BatchNormalization (inference mode) against onnx's reference evaluator, in
both layouts, and the refusal of training mode."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import get_op
from nnc.ops.normalization import BatchNormAttrs
from op_oracles import run_nnc, run_onnx, run_ort


def _inputs(seed: int, shape, dtype=np.float32):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x, scale, bias, mean = (rng.standard_normal(s).astype(dtype) for s in (shape, c, c, c))
    return [x, scale, bias, mean, rng.uniform(0.1, 2.0, c).astype(dtype)]


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 7), (2, 4, 5, 3), (1, 2, 3, 2, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("opset", [11, 14, 15])
def test_batch_norm_matches_reference(shape, channels_last, opset):
    """Opset 11 against onnxruntime: the reference evaluator runs BatchNormalization-9
    in training mode (batch statistics) although only Y is requested."""
    inputs = _inputs(len(shape), shape)
    attrs = dict(epsilon=1e-2)
    got = run_nnc("BatchNormalization", inputs, attrs, opset=opset, channels_last=channels_last)[0]
    oracle = run_ort if opset < 14 else run_onnx
    expected = oracle("BatchNormalization", inputs, attrs, opset=opset)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_f64():
    inputs = _inputs(1, (2, 3, 4), np.float64)
    got = run_nnc("BatchNormalization", inputs, opset=15)[0]
    assert got.dtype == np.float64
    expected = run_onnx("BatchNormalization", inputs, opset=15)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_training_mode_is_refused():
    inputs = _inputs(2, (2, 3, 4))
    with pytest.raises(UnsupportedError, match="training_mode"):
        run_nnc("BatchNormalization", inputs, dict(training_mode=1), opset=15)


def test_training_outputs_are_refused():
    """Before opset 14 training is signalled by using the statistics outputs."""
    inputs = _inputs(3, (2, 3, 4))
    with pytest.raises(UnsupportedError, match="output #1"):
        run_nnc("BatchNormalization", inputs, opset=11, outputs=("y", "mean", "var"))
    assert run_nnc("BatchNormalization", inputs, opset=11, outputs=("y", "", ""))[0].shape == (2, 3, 4)


@pytest.mark.parametrize("x_shape,param_shape,channels_last", [
    ((2, 3, 4), (4,), False),
    ((2, 3, 4), (3,), True),
    ((5,), (5,), False),
])
def test_infer_rejects(x_shape, param_shape, channels_last):
    params = [TensorType("f32", param_shape)] * 4
    with pytest.raises(ShapeError):
        get_op("BatchNormalization").infer(BatchNormAttrs(channels_last=channels_last),
                                           [TensorType("f32", x_shape), *params])


@pytest.mark.parametrize("shape", [(1, 3, 7), (2, 4, 5, 3), (1, 2, 3, 2, 4)])
def test_instance_norm_matches_reference(shape):
    rng = np.random.default_rng(len(shape))
    inputs = [(rng.standard_normal(shape) * 3 + 1).astype(np.float32),
              rng.standard_normal(shape[1]).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)]
    got = run_nnc("InstanceNormalization", inputs, dict(epsilon=1e-3))[0]
    expected = run_ort("InstanceNormalization", inputs, dict(epsilon=1e-3))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
