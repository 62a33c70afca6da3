"""Element types of IR tensors.

Each type has one short name (used in the text IR), a numpy dtype and the ONNX
TensorProto code. The short name is the identity of a type everywhere in nnc.
"""

import numpy as np

from .errors import UnsupportedError
from .frontend.onnx_proto import TensorProto

NUMPY = {
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "i8": np.dtype(np.int8),
    "u8": np.dtype(np.uint8),
    "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "bool": np.dtype(np.bool_),
}

_ONNX = {
    TensorProto.FLOAT: "f32",
    TensorProto.DOUBLE: "f64",
    TensorProto.INT8: "i8",
    TensorProto.UINT8: "u8",
    TensorProto.INT16: "i16",
    TensorProto.INT32: "i32",
    TensorProto.INT64: "i64",
    TensorProto.BOOL: "bool",
}

FLOAT_TYPES = ("f32", "f64")
INTEGER_TYPES = ("i8", "u8", "i16", "i32", "i64")


def from_onnx(code: int) -> str:
    """Short name of an ONNX element type; UnsupportedError if nnc lacks it."""
    if code not in _ONNX:
        raise UnsupportedError(f"data type {TensorProto.DataType.Name(code)} is not supported")
    return _ONNX[code]


def from_numpy(dtype) -> str:
    """Short name of a numpy dtype; UnsupportedError if nnc lacks it."""
    dtype = np.dtype(dtype)
    for name, candidate in NUMPY.items():
        if candidate == dtype:
            return name
    raise UnsupportedError(f"data type {dtype} is not supported")


def to_numpy(name: str) -> np.dtype:
    return NUMPY[name]


def to_onnx(name: str) -> int:
    return next(code for code, short in _ONNX.items() if short == name)


def integer_range(name: str) -> tuple[int, int]:
    """Inclusive value range of an integer type."""
    info = np.iinfo(NUMPY[name])
    return int(info.min), int(info.max)
