"""ONNX's protobuf messages, checker and shape inference, without `import onnx`.

`import onnx` takes 0.07 s of every start (its package imports its helpers,
which import asyncio, protobuf's json_format, ml_dtypes and more), while what the
front end needs of it, the generated message classes (onnx_ml_pb2) and the
C++ checker and shape inference (onnx_cpp2py_export, which take serialized
models), load in a few milliseconds. This module loads those two files of the
installed onnx under their own module names, so that a later `import onnx`
finds and reuses them; when onnx is already imported it takes them from there,
and when the installed onnx is laid out otherwise it imports onnx.

Invariants: the classes are onnx's own (`onnx.ModelProto is ModelProto` once
onnx is imported); `check_model` and `infer_shapes` behave as onnx.checker's
and onnx.shape_inference's, whose calls they make.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from importlib import _bootstrap  # the import lock of one module (see _load)
from pathlib import Path

import numpy as np

# A serialized protobuf message cannot exceed 2 GiB (onnx.checker's MAXIMUM_PROTOBUF).
MAX_PROTOBUF_BYTES = 2**31


def _load(name: str, path: Path):
    """The module `name`, executed from `path` unless it is loaded already.

    It is loaded as the import system loads a module, under importlib's lock for
    `name` and marked as initializing, so that an `import onnx` on another thread
    waits for it rather than taking it half executed (and this waits for theirs).
    AttributeError if this Python's importlib lacks those internals."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {path}")
    with _bootstrap._ModuleLockManager(name):
        module = sys.modules.get(name)
        return module if module is not None else _bootstrap._load_unlocked(spec)


class _BindParts:
    """Meta-path finder for the onnx package alone: once a later `import onnx` has
    run its __init__, the parts loaded here become its attributes, as if it had
    imported them itself (the import system binds only submodules it loads)."""

    def __init__(self, parts: tuple[str, ...]):
        self.parts = parts

    def find_spec(self, name, path=None, target=None):
        if name != "onnx" or name in sys.modules:
            return None
        spec = next((found for finder in sys.meta_path if finder is not self and hasattr(finder, "find_spec")
                     and (found := finder.find_spec(name, path, target)) is not None), None)
        if spec is None or spec.loader is None:
            return spec
        exec_package = spec.loader.exec_module

        def exec_and_bind(module):
            exec_package(module)
            for part in self.parts:
                setattr(module, part, sys.modules[f"onnx.{part}"])

        spec.loader.exec_module = exec_and_bind
        return spec


def _load_parts():
    """(the C++ extension, the generated messages module) of the installed onnx."""
    if "onnx" not in sys.modules:
        spec = importlib.util.find_spec("onnx")
        if spec is not None and spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            native = [root / f"onnx_cpp2py_export{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
            native = [path for path in native if path.is_file()]
            if native:
                try:
                    extension = _load("onnx.onnx_cpp2py_export", native[0])
                    messages = "onnx_ml_pb2" if extension.ONNX_ML else "onnx_pb2"
                    parts = extension, _load(f"onnx.{messages}", root / f"{messages}.py")
                    sys.meta_path.insert(0, _BindParts(("onnx_cpp2py_export", messages)))
                    return parts
                except (ImportError, OSError, AttributeError):
                    pass  # laid out otherwise: the package import below knows how
    import onnx

    return onnx.onnx_cpp2py_export, sys.modules[onnx.onnx_pb.ModelProto.__module__]


_C, _messages = _load_parts()
ModelProto = _messages.ModelProto
GraphProto = _messages.GraphProto
NodeProto = _messages.NodeProto
TensorProto = _messages.TensorProto
AttributeProto = _messages.AttributeProto
ValidationError = _C.checker.ValidationError
# The newest ai.onnx opset the installed onnx knows (onnx.defs.onnx_opset_version()).
MAX_OPSET = _C.defs.schema_version_map()[""][1]


def parse_model(data: bytes) -> ModelProto:
    """The ModelProto serialized in `data`; google.protobuf's DecodeError if it is not one."""
    model = ModelProto()
    model.ParseFromString(data)
    return model


def check_model(model: ModelProto) -> None:
    """onnx.checker.check_model(model): ValidationError if the model breaks an ONNX
    rule, ValueError if it is too large to serialize."""
    data = _serialized(model)
    try:
        _C.checker.check_model(data, False, False, False)
    except TypeError:  # another onnx release's signature: ask its public API
        import onnx.checker

        onnx.checker.check_model(model)


def infer_shapes(model: ModelProto, strict_mode: bool, data_prop: bool) -> ModelProto:
    """onnx.shape_inference.infer_shapes(model, strict_mode=..., data_prop=...)."""
    data = _serialized(model)
    try:
        inferred = _C.shape_inference.infer_shapes(data, False, strict_mode, data_prop)
    except TypeError:  # another onnx release's signature: ask its public API
        import onnx.shape_inference

        return onnx.shape_inference.infer_shapes(model, strict_mode=strict_mode, data_prop=data_prop)
    return parse_model(inferred)


def _serialized(model: ModelProto) -> bytes:
    data = model.SerializeToString()
    if len(data) > MAX_PROTOBUF_BYTES:
        raise ValueError("the model is larger than protobuf's 2 GiB limit")
    return data


def to_array(tensor: TensorProto):
    """onnx.numpy_helper.to_array(tensor): read here for the numeric types held in
    raw_data (what exporters write), by onnx otherwise."""
    dtype = _RAW_DTYPES.get(tensor.data_type)
    if dtype is None or not tensor.HasField("raw_data") or tensor.HasField("segment") \
            or tensor.data_location == TensorProto.EXTERNAL or sys.byteorder != "little":
        from onnx import numpy_helper

        return numpy_helper.to_array(tensor)
    return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tuple(tensor.dims))


# ONNX data type -> numpy dtype of the types whose raw_data numpy reads as it is.
_RAW_DTYPES = {code: np.dtype(spelling) for code, spelling in (
    (TensorProto.FLOAT, "<f4"), (TensorProto.DOUBLE, "<f8"), (TensorProto.FLOAT16, "<f2"), (TensorProto.INT8, "i1"),
    (TensorProto.UINT8, "u1"), (TensorProto.INT16, "<i2"), (TensorProto.UINT16, "<u2"), (TensorProto.INT32, "<i4"),
    (TensorProto.UINT32, "<u4"), (TensorProto.INT64, "<i8"), (TensorProto.UINT64, "<u8"), (TensorProto.BOOL, "?"))}
