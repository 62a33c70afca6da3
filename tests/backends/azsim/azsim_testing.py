"""Helpers for az-sim tests: Programs built by hand (activation tensors placed one
after another in SRAM, constants with their data, weights encoded with the
smallest packing) and machines derived from the default one."""

from __future__ import annotations

import dataclasses

import numpy as np

from nnc import packing
from nnc.backends.azsim.hardware import load_hardware
from nnc.backends.azsim.program import DTYPE_CODES, LayerDesc, Program, TensorDesc, WeightStream

CODES = {np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8", np.dtype(np.int32): "i32",
         np.dtype(np.float32): "f32", np.dtype(np.int16): "i16", np.dtype(np.int64): "i64"}


def machine(**changes):
    """The default machine with some fields changed."""
    return dataclasses.replace(load_hardware(), **changes)


class ProgramBuilder:
    def __init__(self, name: str = "p"):
        self.name = name
        self.tensors: list[TensorDesc] = []
        self.layers: list[LayerDesc] = []
        self.streams: list[WeightStream] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.end = 0

    def activation(self, name: str, dtype: str, shape, offset: int | None = None) -> int:
        """An activation tensor at `offset` (default: after the previous ones)."""
        size = int(np.prod(shape)) * np.dtype({"i8": np.int8, "u8": np.uint8, "f32": np.float32,
                                               "i32": np.int32}[dtype]).itemsize
        offset = self.end if offset is None else offset
        self.end = max(self.end, offset + size)
        self.tensors.append(TensorDesc(name, DTYPE_CODES[dtype], tuple(shape), offset))
        return len(self.tensors) - 1

    def input(self, name: str, dtype: str, shape) -> int:
        index = self.activation(name, dtype, shape)
        self.inputs.append(index)
        return index

    def const(self, name: str, data: np.ndarray) -> int:
        data = np.asarray(data)
        self.tensors.append(TensorDesc(name, DTYPE_CODES[CODES[data.dtype]], data.shape,
                                       data=data.astype(data.dtype.newbyteorder("<")).tobytes()))
        return len(self.tensors) - 1

    def stream(self, weights: np.ndarray, bits: int = 8, format: int | None = None) -> int:
        """A weight stream: `format` at `bits`, or with format None packing.pack's
        smallest encoding at its natural bits (`bits` unused)."""
        weights = np.asarray(weights, np.int8)
        if format is None:
            packed = packing.pack(weights)
        else:
            packed = packing.Packed(format, bits, packing.encode(weights, bits, format))
        self.streams.append(WeightStream(packed.format, packed.bits, weights.shape, packed.payload))
        return len(self.streams) - 1

    def layer(self, op: str, inputs, out: tuple[str, str, tuple] | int, params=None, weights=-1,
              name: str | None = None) -> int:
        """Adds a layer; `out` is (name, dtype, shape) of a new activation tensor or an index."""
        out_index = out if isinstance(out, int) else self.activation(*out)
        self.layers.append(LayerDesc(name or f"{op.lower()}{len(self.layers)}", op, tuple(inputs),
                                     (out_index,), dict(params or {}), weights))
        return out_index

    def program(self, *outputs: int) -> Program:
        return Program(self.name, tuple(self.tensors), tuple(self.layers), tuple(self.streams),
                       tuple(self.inputs), tuple(outputs), self.end)


def mac_layer(b: ProgramBuilder, op: str, x: int, w: np.ndarray, bias, m, n, out_shape, params,
              bits: int = 8, format: int | None = None, out_dtype: str = "i8") -> int:
    """A QConv/QGemm layer with operands (x, w slot -1, bias, multiplier, shift)."""
    bias_index = -1 if bias is None else b.const("bias", np.asarray(bias, np.int32))
    return b.layer(op, (x, -1, bias_index, b.const("m", np.asarray(m, np.int32)),
                        b.const("n", np.asarray(n, np.int32))),
                   ("y", out_dtype, out_shape), params, weights=b.stream(w, bits, format))
