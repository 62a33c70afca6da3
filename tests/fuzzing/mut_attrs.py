"""ONNX model mutators, part 3: node attributes and attribute-like inputs of the
"cnn" seed's Conv, Clip, Gemm and Flatten (family onnx-attr)."""

from __future__ import annotations

import random

import numpy as np
import onnx
from onnx import numpy_helper

from .case import Case
from .mut_onnx import load_model, node_of, remove_attribute, save_model, set_attribute
from .registry import mutator


def _cnn(case: Case) -> onnx.ModelProto:
    case.use_seed("cnn")
    return load_model(case)


@mutator("onnx-attr")
def conv_group(rng: random.Random, case: Case) -> Case:
    model = _cnn(case)
    group = rng.choice([0, -1, 2, 3, 4, 1 << 31])
    set_attribute(node_of(model, "Conv"), "group", group)
    case.note(f"Conv group={group}")
    return save_model(case, model)


@mutator("onnx-attr")
def conv_pads(rng: random.Random, case: Case) -> Case:
    model = _cnn(case)
    pads = rng.choice([[1 << 31] * 4, [0, 0, 1 << 31, 0], [-1, -1, -1, -1], [1, 1], [1, 1, 1], [100, 100, 100, 100],
                       [-5, 0, 0, 0], [1 << 62] * 4])
    set_attribute(node_of(model, "Conv"), "pads", pads)
    case.note(f"Conv pads={pads}")
    return save_model(case, model)


@mutator("onnx-attr")
def conv_auto_pad(rng: random.Random, case: Case) -> Case:
    model = _cnn(case)
    mode = rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID", "BOGUS", ""])
    conv = node_of(model, "Conv")
    set_attribute(conv, "auto_pad", mode)
    keep_pads = rng.random() < 0.7
    if not keep_pads:
        remove_attribute(conv, "pads")
    case.note(f"Conv auto_pad={mode!r}" + (" alongside explicit pads" if keep_pads else " without pads"))
    return save_model(case, model)


@mutator("onnx-attr")
def conv_geometry(rng: random.Random, case: Case) -> Case:
    """strides, dilations or kernel_shape at edge values or of the wrong length."""
    model = _cnn(case)
    name = rng.choice(["strides", "dilations", "kernel_shape"])
    value = rng.choice([[0, 0], [-1, 1], [1 << 31, 1], [1], [1, 1, 1], [5, 5], [100, 100]])
    set_attribute(node_of(model, "Conv"), name, value)
    case.note(f"Conv {name}={value}")
    return save_model(case, model)


@mutator("onnx-attr")
def attribute_type(rng: random.Random, case: Case) -> Case:
    """An attribute of the wrong type: a float where ints belong, a string, a tensor."""
    model = _cnn(case)
    node = rng.choice([n for n in model.graph.node if n.attribute])
    attr = rng.choice(list(node.attribute))
    value = rng.choice([1.5, "three", [1.5, 2.5], numpy_helper.from_array(np.zeros(2, np.float32), "t")])
    set_attribute(node, attr.name, value)
    case.note(f"{node.op_type} {node.name!r} attribute {attr.name} -> {type(value).__name__} {value!r:.40}")
    return save_model(case, model)


@mutator("onnx-attr")
def clip_bounds(rng: random.Random, case: Case) -> Case:
    """Clip min/max: NaN, two elements, min > max, infinite, integer-typed."""
    model = _cnn(case)
    inits = {t.name: t for t in model.graph.initializer}
    which = rng.choice(["clip_min", "clip_max"])
    value = rng.choice([np.array(np.nan, np.float32), np.array([0.0, 1.0], np.float32),
                        np.array(100.0 if which == "clip_min" else -100.0, np.float32),
                        np.array(np.inf, np.float32), np.array(-np.inf, np.float32), np.array(0, np.int64),
                        np.zeros((1, 4, 1, 1), np.float32)])
    inits[which].CopyFrom(numpy_helper.from_array(value, which))
    case.note(f"Clip {which} -> {value.dtype} {value.tolist()}")
    return save_model(case, model)


@mutator("onnx-attr")
def clip_as_attributes(rng: random.Random, case: Case) -> Case:
    """An opset-6 style Clip (min/max attributes) in an opset-17 model."""
    model = _cnn(case)
    clip = node_of(model, "Clip")
    del clip.input[1:]
    set_attribute(clip, "min", rng.choice([float("nan"), 0.0, 10.0]))
    case.note("Clip bounds as attributes (removed since opset 11)")
    return save_model(case, model)


@mutator("onnx-attr")
def gemm_flatten(rng: random.Random, case: Case) -> Case:
    model = _cnn(case)
    how = rng.choice(["transB", "alpha", "axis"])
    node, value = {"transB": ("Gemm", rng.choice([0, 2, -1])),
                   "alpha": ("Gemm", rng.choice([float("nan"), float("inf"), 0.0, 1e30])),
                   "axis": ("Flatten", rng.choice([0, 4, 5, -5, 1 << 31]))}[how]
    set_attribute(node_of(model, node), how, value)
    case.note(f"{node} {how}={value}")
    return save_model(case, model)


@mutator("onnx-attr")
def conv_weight_shape(rng: random.Random, case: Case) -> Case:
    """Conv weights whose shape disagrees with the input channels or bias (data kept consistent)."""
    model = _cnn(case)
    inits = {t.name: t for t in model.graph.initializer}
    shape = rng.choice([(4, 2, 3, 3), (4, 1, 3), (4, 1, 1, 1), (5, 1, 3, 3), (4, 1, 9, 9), (1 << 20, 1, 1, 1)])
    weights = np.full(shape, 0.1, np.float32) if np.prod(shape) < 1 << 24 else None
    if weights is None:
        inits["conv_w"].ClearField("raw_data")
        del inits["conv_w"].dims[:]
        inits["conv_w"].dims.extend(shape)
        inits["conv_w"].raw_data = b"\0" * 16
    else:
        inits["conv_w"].CopyFrom(numpy_helper.from_array(weights, "conv_w"))
    case.note(f"Conv weights of shape {shape}")
    return save_model(case, model)

