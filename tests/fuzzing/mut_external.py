"""External-data mutators (family external-data), on the "ext" seed, whose two
weights live in ext.onnx.data: w1 at offset 0 (288 bytes), w2 right after.

A location outside the model's folder (absolute, '..', or a symlink leading
out) must be refused: nnc reads no file outside the model folder.
"""

from __future__ import annotations

import random

import onnx
from onnx import TensorProto

from .case import Case
from .mut_onnx import load_model, save_model
from .registry import mutator

DATA = "ext.onnx.data"
BAD_NUMBERS = ["-4", "-1", str(1 << 31), str(1 << 62), str(1 << 70), "abc", "", "4.5", " 8", "0x10", "1e3",
               "\u0663", "+0", "00", "nan"]


def _external_model(case: Case) -> tuple[onnx.ModelProto, TensorProto]:
    case.use_seed("ext")
    model = load_model(case)
    return model, model.graph.initializer[0]


def set_entry(tensor: TensorProto, key: str, value: str) -> None:
    for entry in tensor.external_data:
        if entry.key == key:
            entry.value = value
            return
    entry = tensor.external_data.add()
    entry.key, entry.value = key, value


def drop_entry(tensor: TensorProto, key: str) -> None:
    kept = [(e.key, e.value) for e in tensor.external_data if e.key != key]
    del tensor.external_data[:]
    for name, value in kept:
        set_entry(tensor, name, value)


@mutator("external-data")
def ext_offset(rng: random.Random, case: Case) -> Case:
    model, tensor = _external_model(case)
    value = rng.choice(BAD_NUMBERS)
    set_entry(tensor, "offset", value)
    case.note(f"external data offset of {tensor.name!r} = {value!r}")
    return save_model(case, model)


@mutator("external-data")
def ext_length(rng: random.Random, case: Case) -> Case:
    model, tensor = _external_model(case)
    value = rng.choice(BAD_NUMBERS + ["0", "7", "289", "99999"])
    set_entry(tensor, "length", value)
    case.note(f"external data length of {tensor.name!r} = {value!r}")
    return save_model(case, model)


@mutator("external-data")
def ext_past_end(rng: random.Random, case: Case) -> Case:
    model, tensor = _external_model(case)
    size = len(case.get(DATA))
    offset = rng.choice([size, size + 1, size - 4, size + 4096, 1 << 40])
    set_entry(tensor, "offset", str(offset))
    if rng.random() < 0.5:
        drop_entry(tensor, "length")
    case.note(f"external data offset {offset} in a {size}-byte file"
              + ("" if any(e.key == "length" for e in tensor.external_data) else ", no length"))
    return save_model(case, model)


@mutator("external-data")
def ext_location_odd(rng: random.Random, case: Case) -> Case:
    """Locations that name no usable file: NUL byte, missing, empty, a folder, a trailing slash."""
    model, tensor = _external_model(case)
    location = rng.choice([f"{DATA}\0x", "\0", "missing.data", "", "sub", f"{DATA}/", ".", "sub/../" + DATA])
    set_entry(tensor, "location", location)
    case.note(f"external data location {location!r}")
    return save_model(case, model)


@mutator("external-data", must_reject=True)
def ext_location_outside(rng: random.Random, case: Case) -> Case:
    """Locations outside the model's folder: absolute paths and '..'."""
    model, tensor = _external_model(case)
    location = rng.choice(["../secret.bin", "../../tmp", "/etc/hostname", "/dev/zero", "/proc/self/environ",
                           "sub/../../secret.bin", "../outside.txt"])
    set_entry(tensor, "location", location)
    if location in ("/dev/zero", "/proc/self/environ") or rng.random() < 0.3:
        set_entry(tensor, "length", rng.choice(["288", str(1 << 40)]))
    case.note(f"external data location {location!r} (outside the model folder)")
    return save_model(case, model)


@mutator("external-data", must_reject=True)
def ext_symlink_out(rng: random.Random, case: Case) -> Case:
    model, tensor = _external_model(case)
    pointee = rng.choice(["../secret.bin", "/etc/hostname", "../outside.txt"])
    case.symlinks["work/link.data"] = pointee
    set_entry(tensor, "location", "link.data")
    case.note(f"external data location link.data, a symlink to {pointee}")
    return save_model(case, model)


@mutator("external-data")
def ext_symlink_loop(rng: random.Random, case: Case) -> Case:
    model, tensor = _external_model(case)
    case.symlinks["work/loop.data"] = "loop2.data"
    case.symlinks["work/loop2.data"] = "loop.data"
    set_entry(tensor, "location", "loop.data")
    case.note("external data location loop.data, a symlink loop")
    return save_model(case, model)


@mutator("external-data")
def ext_data_file(rng: random.Random, case: Case) -> Case:
    """The data file itself: truncated, empty, missing, or a folder."""
    model, _ = _external_model(case)
    data = case.get(DATA)
    how = rng.choice(["truncated", "empty", "missing", "folder"])
    del case.files[f"work/{DATA}"]
    if how == "truncated":
        case.put(DATA, data[:rng.randrange(len(data))])
    elif how == "empty":
        case.put(DATA, b"")
    elif how == "folder":
        case.put(f"{DATA}/inner.txt", b"a folder where the data file should be\n")
    case.note(f"external data file {how}")
    return save_model(case, model)


@mutator("external-data")
def ext_entries(rng: random.Random, case: Case) -> Case:
    """Odd key/value lists: unknown key, duplicate location, no location, data_location mismatches."""
    model, tensor = _external_model(case)
    how = rng.choice(["unknown-key", "duplicate-location", "no-location", "no-entries", "not-external",
                      "raw-and-external"])
    if how == "unknown-key":
        set_entry(tensor, rng.choice(["checksum", "basepath", "\u00e9"]), "zzz")
    elif how == "duplicate-location":
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", rng.choice(["../secret.bin", "missing.data"])
    elif how == "no-location":
        drop_entry(tensor, "location")
    elif how == "no-entries":
        del tensor.external_data[:]
    elif how == "not-external":
        tensor.data_location = TensorProto.DEFAULT
    else:
        tensor.raw_data = b"\0" * 288
    case.note(f"external data entries of {tensor.name!r}: {how}")
    return save_model(case, model)
