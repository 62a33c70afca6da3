"""ONNX model mutators, part 1: raw bytes (family onnx-bytes) and the shared
helpers that edit a model through onnx's Python protos."""

from __future__ import annotations

import random

import onnx

from .case import Case
from .registry import mutator

# Replaced, after serialization, by bytes that are not UTF-8 (same length, so
# the protobuf length prefixes stay right). Long enough never to occur in weights.
UTF8_PLACEHOLDER = "@@nnc-fuzz-utf8-name@@"
BAD_UTF8 = [b"\xff", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"]
EDGE_INTS = [0, -1, 1 << 31, (1 << 31) - 1, 1 << 40, (1 << 63) - 1, -(1 << 31)]


def load_model(case: Case) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(case.get(case.subject))


def save_model(case: Case, model: onnx.ModelProto, replace: dict[bytes, bytes] | None = None) -> Case:
    """Serialize `model` into the case's model file; `replace` maps byte strings
    to same-length ones substituted in the serialized bytes."""
    data = model.SerializeToString()
    for old, new in (replace or {}).items():
        assert len(old) == len(new)
        data = data.replace(old, new)
    case.put(case.subject, data)
    return case


def pick_initializer(rng: random.Random, model: onnx.ModelProto, min_elements: int = 1) -> onnx.TensorProto:
    """A random initializer with at least `min_elements` elements (weights, not scalars, by default)."""
    candidates = [t for t in model.graph.initializer if _elements(t) >= min_elements]
    return rng.choice(candidates or list(model.graph.initializer))


def _elements(tensor: onnx.TensorProto) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def node_of(model: onnx.ModelProto, op: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op)


def set_attribute(node: onnx.NodeProto, name: str, value) -> None:
    """Set (or add) attribute `name` of `node` to `value` (type inferred by onnx.helper)."""
    remove_attribute(node, name)
    node.attribute.append(onnx.helper.make_attribute(name, value))


def remove_attribute(node: onnx.NodeProto, name: str) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)


def bad_utf8(rng: random.Random, length: int) -> bytes:
    """`length` bytes that are not valid UTF-8."""
    core = rng.choice(BAD_UTF8)
    pad = bytes(rng.choice(b"abcdefgh") for _ in range(length - len(core)))
    cut = rng.randrange(len(pad) + 1)
    return pad[:cut] + core + pad[cut:]


# -- raw bytes ---------------------------------------------------------------

@mutator("onnx-bytes")
def flip_bytes(rng: random.Random, case: Case) -> Case:
    data = bytearray(case.get(case.subject))
    spots = sorted(rng.randrange(len(data)) for _ in range(rng.randint(1, 8)))
    for spot in spots:
        data[spot] ^= rng.randint(1, 255)
    case.put(case.subject, bytes(data))
    case.note(f"xor-flipped model bytes at {spots}")
    return case


@mutator("onnx-bytes")
def truncate_model(rng: random.Random, case: Case) -> Case:
    data = case.get(case.subject)
    size = rng.randrange(len(data))
    case.put(case.subject, data[:size])
    case.note(f"truncated the model from {len(data)} to {size} bytes")
    return case


@mutator("onnx-bytes")
def insert_bytes(rng: random.Random, case: Case) -> Case:
    data = case.get(case.subject)
    spot, extra = rng.randrange(len(data)), rng.randbytes(rng.randint(1, 16))
    case.put(case.subject, data[:spot] + extra + data[spot:])
    case.note(f"inserted {len(extra)} random bytes at {spot}")
    return case


@mutator("onnx-bytes")
def zero_range(rng: random.Random, case: Case) -> Case:
    data = bytearray(case.get(case.subject))
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randint(1, 64))
    data[start:end] = bytes(end - start)
    case.put(case.subject, bytes(data))
    case.note(f"zeroed model bytes [{start}, {end})")
    return case


@mutator("onnx-bytes")
def not_a_model(rng: random.Random, case: Case) -> Case:
    kind, data = rng.choice([("empty", b""), ("text", b"this is not an onnx model\n"),
                             ("random", rng.randbytes(rng.randint(1, 512))),
                             ("zip", b"PK\x03\x04" + rng.randbytes(40)), ("json", b'{"graph": []}'),
                             ("a blob", case.corpus.blob)])
    case.put(case.subject, data)
    case.note(f"replaced the model with {kind} bytes")
    return case


@mutator("onnx-bytes")
def append_copy(rng: random.Random, case: Case) -> Case:
    """Protobuf merges concatenated messages: the graph gets every node twice."""
    data = case.get(case.subject)
    case.put(case.subject, data + data)
    case.note("appended a second copy of the model (protobuf merges it: duplicated nodes)")
    return case
