"""Element-wise arithmetic with broadcasting and the math functions in int8
(quantizer/rules_elementwise.py, docs/numerics.md §18): four small models
compile for ir, c and az-sim bit-exact with int8 cosine >= 0.99; each op alone
keeps cosine >= 0.99 against float on random data (the figures in §18); QDQ
products and differences agree with onnxruntime; the decomposed GELU is one
table; what has no int8 form is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from e2e import compile_everywhere
from qmodels import Builder, check_qdq, ops, quantized, rand_int8

from nnc.errors import UnsupportedError
from nnc.interpreter import run



def _normal(seed: int):
    """A seeded standard-normal float32 source: normal(*shape, scale=1.0)."""
    rng = np.random.default_rng(seed)
    return lambda *shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32)


def _layer_ops(reports) -> list[str]:
    return [layer["op"] for layer in reports["c"]["layers"]]


def _arithmetic_model():
    randn = _normal(1)
    b = Builder()
    x, z = b.input("x", [1, 4, 5, 6]), b.input("z", [1, 4, 1, 6])
    t = b.node("Mul", [x, z])                                      # activation x activation, broadcast
    t = b.node("Sub", [t, b.const(randn(1, 4, 1, 1))])             # x - c
    t = b.node("Sub", [b.const(np.float32(0.5)), t])               # c - x
    t = b.node("Div", [t, b.const(np.float32(3.0))])               # x / c
    t = b.node("Add", [t, b.const(randn(6))])                      # x + c, c broadcast
    t = b.node("Mul", [t, b.const(randn(4, 1, 1))])                # per-channel x * c
    t = b.node("PRelu", [t, b.const(np.abs(randn(4, 1, 1)) * 0.3)])
    t = b.node("Sub", [t, x])                                      # activation - activation
    stats = [randn(4), randn(4), randn(4), np.abs(randn(4)) + 0.5]
    b.node("BatchNormalization", [t, *(b.const(s) for s in stats)], "y")
    b.output("y", [1, 4, 5, 6])
    return b.model()


def test_arithmetic_everywhere(tmp_path):
    randn = _normal(11)
    samples = {"x": randn(4, 1, 4, 5, 6), "z": randn(4, 1, 4, 1, 6)}
    reports = compile_everywhere(_arithmetic_model(), tmp_path, samples)
    layers = _layer_ops(reports)
    assert layers.count("QAffine") == 7 and layers.count("QMul") == 1 and layers.count("QAdd") == 1


def _constants_model():
    """BatchNormalization and PRelu on [N, C] and [N, C, L]; constant tensors
    (varying along several axes) as int8 operands of QMul and QAdd."""
    randn = _normal(2)
    b = Builder()
    x, w = b.input("x", [3, 5]), b.input("w", [2, 4, 7])

    def stats(c):
        return [b.const(s) for s in (randn(c), randn(c), randn(c), np.abs(randn(c)) + 0.5)]
    h = b.node("PRelu", [b.node("BatchNormalization", [x, *stats(5)]), b.const(np.abs(randn(5)) * 0.3)])
    b.node("Mul", [b.const(randn(3, 5)), h], "y")
    g = b.node("Sub", [b.const(randn(7)), b.node("BatchNormalization", [w, *stats(4)])])
    b.node("Add", [b.const(randn(3, 2, 4, 7)), g], "z")
    b.output("y", [3, 5])
    b.output("z", [3, 2, 4, 7])
    return b.model()


def test_constants_everywhere(tmp_path):
    randn = _normal(12)
    samples = {"x": randn(4, 3, 5), "w": randn(4, 2, 4, 7)}
    layers = [op for op in _layer_ops(compile_everywhere(_constants_model(), tmp_path, samples))
              if op != "Transpose"]
    assert layers == ["QAffine", "QAffine", "QMul", "QAffine", "QAffine", "QAdd"]


def _functions_model():
    b = Builder()
    x = b.input("x", [2, 16])
    pos = b.node("Add", [b.node("Abs", [x]), b.const(np.float32(0.25))])
    outs = [b.node(op, [x]) for op in ("Erf", "Exp", "Neg")]
    outs += [b.node("Gelu", [x], approximate=mode) for mode in ("none", "tanh")]
    outs += [b.node("Sqrt", [pos]), b.node("Reciprocal", [pos]), b.node("Div", [b.const(np.float32(2.0)), pos])]
    outs += [b.node("Pow", [x, b.const(np.float32(2.0))]), b.node("Pow", [pos, b.const(np.float32(1.5))])]
    outs += [b.node("PRelu", [x, b.const(np.float32(0.2))]), b.node("Mul", [x, x])]
    outs += [b.node("Mul", [b.node("Sigmoid", [x]), x])]  # SiLU: one table (canonicalize's fuse_silu)
    outs += [b.node("Log", [pos]), b.node("Softplus", [x]), b.node("Softsign", [x]), b.node("Elu", [x], alpha=0.5)]
    outs += [b.node("Sign", [x]), b.node("Sin", [x]), b.node("Cos", [x])]
    b.node("Concat", outs, "y", axis=1)
    b.output("y", [2, 16 * len(outs)])
    model = b.model()
    model.opset_import[0].version = 20  # Gelu
    return model


def test_functions_everywhere(tmp_path):
    randn = _normal(13)
    samples = {"x": randn(4, 2, 16)}
    layers = _layer_ops(compile_everywhere(_functions_model(), tmp_path, samples))
    assert layers.count("QLut") == 20 and layers.count("QMul") == 1


def _conv_model():
    """Channels-last convolutions with the element-wise ops between them (the layout
    pass moves per-channel constants into NHWC), and a decomposed GELU feed-forward."""
    randn = _normal(3)
    b = Builder()
    x = b.input("x", [1, 3, 8, 8])
    h = b.node("Conv", [x, b.const(randn(6, 3, 3, 3, scale=0.4))], pads=[1, 1, 1, 1])
    h = b.node("PRelu", [h, b.const(np.abs(randn(6, 1, 1)) * 0.2)])
    h = b.node("Mul", [h, b.node("Sigmoid", [h])])                 # swish
    h = b.node("Add", [b.node("Mul", [h, b.const(randn(6, 1, 1))]), b.const(randn(6, 1, 1))])
    stats = [randn(6), randn(6), randn(6), np.abs(randn(6)) + 0.5]
    h = b.node("BatchNormalization", [b.node("Abs", [h]), *(b.const(s) for s in stats)])
    h = b.node("Conv", [h, b.const(randn(4, 6, 3, 3, scale=0.3))], pads=[1, 1, 1, 1])
    r = b.node("Reshape", [h, b.const(np.array([1, 4, 64], np.int64))])
    f = b.node("MatMul", [b.node("Transpose", [r], perm=[0, 2, 1]), b.const(randn(4, 8, scale=0.5))])
    e = b.node("Erf", [b.node("Mul", [f, b.const(np.float32(1 / np.sqrt(2.0)))])])
    g = b.node("Mul", [b.node("Mul", [f, b.const(np.float32(0.5))]), b.node("Add", [e, b.const(np.float32(1.0))])])
    b.node("Sub", [g, b.node("Pow", [f, b.const(np.float32(2.0))])], "y")
    b.output("y", [1, 64, 8])
    return b.model()


def test_conv_model_everywhere(tmp_path):
    randn = _normal(14)
    samples = {"x": randn(4, 1, 3, 8, 8)}
    layers = _layer_ops(compile_everywhere(_conv_model(), tmp_path, samples))
    # swish: one table; x · k + c per channel: one QAffine (quantizer/channel_affine.py)
    assert layers.count("QMul") == 0 and layers.count("QAffine") == 3 and layers.count("QLut") == 4


# -- one op at a time, reference interpreter only -------------------------------------------
def _single(op: str, shape=(2, 3, 8, 8), const=None, second=None, attrs=None, opset=17):
    """y = op(x[, constant | second activation z of shape `second`])."""
    b = Builder()
    inputs = [b.input("x", list(shape))]
    other = () if const is None and second is None else np.shape(const) if second is None else second
    if const is not None:
        inputs.append(b.const(const))
    if second is not None:
        inputs.append(b.input("z", list(second)))
    b.node(op, inputs, "y", **(attrs or {}))
    b.output("y", list(np.broadcast_shapes(shape, other)))
    model = b.model()
    model.opset_import[0].version = opset
    return model


_CONSTANTS = np.random.default_rng(1)


def _randn(*shape) -> np.ndarray:
    return _CONSTANTS.standard_normal(shape).astype(np.float32)


SINGLE_OPS = {  # case -> (op, _single arguments); constants: vectors -> QAffine, tensors -> int8
    "Mul_act": ("Mul", dict(second=(2, 1, 8, 8))),
    "Sub_act": ("Sub", dict(second=(2, 3, 8, 8))),
    "Mul_vector": ("Mul", dict(const=_randn(3, 1, 1))),
    "Mul_tensor": ("Mul", dict(const=_randn(1, 3, 8, 8))),
    "Add_vector": ("Add", dict(const=_randn(8))),
    "Sub_tensor": ("Sub", dict(const=_randn(1, 3, 1, 8))),
    "Div_scalar": ("Div", dict(const=np.float32(-2.5))),
    "PRelu_channel": ("PRelu", dict(const=np.abs(_randn(3, 1, 1)) * 0.5)),
    "BatchNormalization": ("BatchNormalization", {}),
    "Erf": ("Erf", {}), "Exp": ("Exp", {}), "Neg": ("Neg", {}), "Abs": ("Abs", {}),
    "Gelu": ("Gelu", dict(opset=20)), "Gelu_tanh": ("Gelu", dict(opset=20, attrs={"approximate": "tanh"})),
    "Sqrt": ("Sqrt", dict(positive=True)), "Pow_2": ("Pow", dict(const=np.float32(2.0))),
    "Reciprocal": ("Reciprocal", dict(positive=True)),
    "Sigmoid": ("Sigmoid", {}), "Tanh": ("Tanh", {}), "HardSigmoid": ("HardSigmoid", {}),
    "HardSwish": ("HardSwish", {}), "LeakyRelu": ("LeakyRelu", {}),
    "ThresholdedRelu": ("ThresholdedRelu", dict(attrs={"alpha": 0.3})),
    "Log": ("Log", dict(positive=True)), "Softplus": ("Softplus", {}), "Softsign": ("Softsign", {}),
    "Sign": ("Sign", {}), "Sin": ("Sin", {}), "Cos": ("Cos", {}),
    "Elu": ("Elu", {}), "Selu": ("Selu", {}), "Mish": ("Mish", dict(opset=18)),
}


def _model_of(case: str):
    op, kwargs = SINGLE_OPS[case]
    kwargs = {k: v for k, v in kwargs.items() if k != "positive"}
    if op == "BatchNormalization":
        b = Builder()
        x = b.input("x", [2, 3, 8, 8])
        stats = [_randn(3), _randn(3), _randn(3), np.abs(_randn(3)) + 0.5]
        b.node(op, [x, *(b.const(s) for s in stats)], "y")
        b.output("y", [2, 3, 8, 8])
        return b.model()
    return _single(op, **kwargs)


def int8_cosine(case: str, tmp_path) -> float:
    """Cosine between the float graph and its int8 form on 8 random samples (standard
    normal; |normal| + 0.5 for Sqrt, Reciprocal and Log), calibrated on those samples
    (reference interpreter)."""
    model = _model_of(case)
    shift = 0.5 if SINGLE_OPS[case][1].get("positive") else None
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    rng = np.random.default_rng(2)
    draws = [{k: rng.standard_normal(v) for k, v in shapes.items()} for _ in range(8)]
    samples = [{k: (d if shift is None else np.abs(d) + shift).astype(np.float32) for k, d in s.items()}
               for s in draws]
    path = tmp_path / "calib.npz"
    np.savez(path, **{k: np.stack([s[k] for s in samples]) for k in shapes})
    graph, result = quantized(model, f'calib="{path}"')
    want = np.concatenate([run(graph, s)["y"].reshape(-1) for s in samples]).astype(np.float64)
    got = np.concatenate([run(result, s)["y"].reshape(-1) for s in samples]).astype(np.float64)
    integer = [op for op in ops(result) if op not in ("QuantizeLinear", "DequantizeLinear", "Transpose")]
    assert integer == [LOWERED.get(case, "QLut")]
    return float(want @ got / (np.linalg.norm(want) * np.linalg.norm(got)))


LOWERED = {"Mul_act": "QMul", "Sub_act": "QAdd", "Mul_vector": "QAffine", "Mul_tensor": "QMul",
           "Add_vector": "QAffine", "Sub_tensor": "QAdd", "Div_scalar": "QAffine", "PRelu_channel": "QAffine",
           "BatchNormalization": "QAffine"}  # the others are tables


@pytest.mark.parametrize("case", SINGLE_OPS)
def test_each_op_alone_keeps_cosine(case, tmp_path):
    assert int8_cosine(case, tmp_path) >= 0.99


@pytest.mark.parametrize("op", ["Mul", "Sub"])
def test_qdq_products_and_differences_match_onnxruntime(op):
    """DQ(a) op DQ(b) → Q, b broadcast (a run-time input, then an int8 constant),
    within 1 LSB of onnxruntime's float32 arithmetic (docs/numerics.md §10)."""
    for constant in (False, True):
        b = Builder()
        a = b.dq(b.input("a", [2, 3, 4], np.int8), 0.05, 3)
        other = b.const(rand_int8(3, 1)) if constant else b.input("b", [3, 1], np.int8)
        y = b.node(op, [a, b.dq(other, 0.03, -7)])
        b.q(y, 0.02 if op == "Mul" else 0.06, -4, output="y")
        b.output("y", [2, 3, 4], np.int8)
        graph, _ = check_qdq(b.model(), samples=6, tolerance=1)
        assert ("QMul" if op == "Mul" else "QAdd") in ops(graph)


def test_decomposed_gelu_is_one_table():
    b = Builder()
    x = b.input("x", [2, 8])
    e = b.node("Erf", [b.node("Div", [x, b.const(np.float32(np.sqrt(2.0)))])])
    b.node("Mul", [b.node("Mul", [x, b.node("Add", [e, b.const(np.float32(1.0))])]), b.const(np.float32(0.5))], "y")
    b.output("y", [2, 8])
    _, result = quantized(b.model(), expect_warning=True)
    assert [op for op in ops(result) if op not in ("QuantizeLinear", "DequantizeLinear")] == ["QLut"]


def test_division_by_an_activation_is_a_reciprocal_table_and_a_product(tmp_path):
    """a / b of two activations (a per-utterance normalization, (x − mean) / std)
    becomes Reciprocal(b) and Mul (quantizer/divide.py): a QLut and a QMul, on
    every target (it was refused)."""
    b = Builder()
    x = b.input("x", [1, 4, 16])
    mean = b.node("ReduceMean", [x], axes=[2], keepdims=1)
    centred = b.node("Sub", [x, mean])
    var = b.node("ReduceMean", [b.node("Mul", [centred, centred])], axes=[2], keepdims=1)
    std = b.node("Sqrt", [b.node("Add", [var, b.const(np.float32(1e-3))])])
    b.node("Div", [centred, std], "y")
    b.output("y", [1, 4, 16])
    reports = compile_everywhere(b.model(), tmp_path, {"x": _normal(21)(8, 1, 4, 16) * 3 + 1}, min_cosine=0.999)
    layers = {layer["name"]: layer["op"] for layer in reports["c"]["layers"]}
    assert layers["div_y.reciprocal"] == "QLut" and layers["div_y"] == "QMul"


def test_a_scalar_over_an_activation_stays_one_table(tmp_path):
    """C / x is one QLut; the Div-of-activations rewrite leaves it (it made a
    Reciprocal table and a product)."""
    b = Builder()
    x = b.input("x", [2, 8])
    b.node("Div", [b.const(np.float32(3.0)), b.node("Add", [b.node("Abs", [x]), b.const(np.float32(0.5))])], "y")
    b.output("y", [2, 8])
    _, result = quantized(b.model(), expect_warning=True)
    integer_ops = [op for op in ops(result) if op not in ("QuantizeLinear", "DequantizeLinear")]
    assert integer_ops == ["QLut", "QAffine", "QLut"]  # Abs, + 0.5, 3 / x


def test_division_by_a_quantized_constant_is_refused_in_one_line():
    b = Builder()
    x = b.input("x", [2, 8])
    b.node("Div", [x, b.dq(b.const(np.full(8, 3, np.int8)), 0.5, 0)], "y")
    b.output("y", [2, 8])
    with pytest.raises(UnsupportedError) as info:
        quantized(b.model(), expect_warning=True)
    message = str(info.value)
    assert "Div node 'div_y'" in message and "division by a quantized constant" in message and "\n" not in message