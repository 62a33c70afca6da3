"""Sample-file mutators (family samples): the .npz/.npy files that --calib,
--inputs (compile), `nnc run --inputs` and `nnc inspect --sensitivity --calib`
read. Each mutator first picks one of those readers, then spoils the file.

Non-finite sample values must be refused (issue 10: "NaN/Inf refused with the
array and index"), so those mutators are must_reject.
"""

from __future__ import annotations

import io
import random
import zipfile

import numpy as np

from .case import Case
from .registry import mutator
from .seeds import SAMPLES, npy_bytes, npz_bytes


def _reader(rng: random.Random, case: Case, name: str) -> None:
    """Make the case read its samples from `name`: a compile's --calib or
    --inputs, `nnc run --inputs`, or `nnc inspect --sensitivity --calib`."""
    way = rng.choices(["compile", "run", "inspect"], weights=[60, 25, 15])[0]
    if way == "run":
        case.as_run(rng)
        case.set_flag("--inputs", name)
        return
    if way == "inspect":
        case.as_inspect(case.subject, rng)
        case.options += ["--sensitivity", "--calib", name]
        return
    case.drop_flag("--calib")
    case.drop_flag("--inputs")
    flag = "--inputs" if case.target == "ir" or rng.random() < 0.3 else "--calib"
    case.set_flag(flag, name)
    if flag == "--inputs":
        case.drop_flag("--no-verify", takes_value=False)


def _batch(rng: random.Random, case: Case, dtype=np.float32) -> dict[str, np.ndarray]:
    """Valid samples for the case's model, after choosing the reader (which may switch the model)."""
    _reader(rng, case, "samples.npz")
    return {name: np.asarray(np.random.default_rng(rng.randrange(1 << 30)).uniform(-1, 1, (SAMPLES, *shape)),
                             dtype=dtype)
            for name, shape in case.seed_model.inputs.items()}


def _write(rng: random.Random, case: Case, arrays: dict[str, np.ndarray], what: str) -> Case:
    """Store `arrays` as samples.npz, or, for a single array, sometimes as samples.npy
    (the case reads samples.npz: `_reader` ran first)."""
    if len(arrays) == 1 and rng.random() < 0.3:
        case.put("samples.npy", npy_bytes(next(iter(arrays.values()))))
        case.options[case.options.index("samples.npz")] = "samples.npy"
    else:
        case.put("samples.npz", npz_bytes(arrays))
    case.note(what)
    return case


@mutator("samples")
def samples_bytes(rng: random.Random, case: Case) -> Case:
    """The file as bytes: empty, truncated, random, a zip of nothing, a folder, missing."""
    _reader(rng, case, "samples.npz")
    data = case.get("samples.npz")
    how = rng.choice(["empty", "truncated", "random", "empty-zip", "folder", "missing", "flipped"])
    if how == "flipped":
        spot = rng.randrange(len(data))
        data = data[:spot] + bytes([data[spot] ^ 0xFF]) + data[spot + 1:]
    data = {"empty": b"", "truncated": data[:rng.randrange(1, len(data))], "random": rng.randbytes(300),
            "empty-zip": _zip({})}.get(how, data)
    del case.files["work/samples.npz"]
    if how == "folder":
        case.put("samples.npz/x.npy", b"")
    elif how != "missing":
        case.put("samples.npz", data)
    case.note(f"samples file {how}")
    return case


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@mutator("samples")
def samples_zip_members(rng: random.Random, case: Case) -> Case:
    """An .npz whose members are not .npy arrays, or whose .npy header lies."""
    good = npy_bytes(next(iter(_batch(rng, case).values())))
    name = next(iter(case.seed_model.inputs)) + ".npy"
    how = rng.choice(["text", "random", "header-shape", "header-dtype", "bad-magic", "not-npy-name"])
    member = {"text": b"1 2 3\n", "random": rng.randbytes(100),
              "header-shape": good.replace(b"(3,", b"(300000000000,", 1),
              "header-dtype": good.replace(b"'<f4'", b"'<c8'", 1), "bad-magic": b"\x93NUMPZ" + good[6:],
              "not-npy-name": good}[how]
    case.put("samples.npz", _zip({name if how != "not-npy-name" else name[:-4] + ".txt": member}))
    case.note(f"samples .npz member {how}")
    return case


@mutator("samples")
def samples_object_array(rng: random.Random, case: Case) -> Case:
    _reader(rng, case, "samples.npz")
    arrays = {name: np.array([None, "x", 1.5], dtype=object) for name in case.seed_model.inputs}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    case.put("samples.npz", buffer.getvalue())
    case.note("samples are object arrays (pickled)")
    return case


@mutator("samples")
def samples_dtype(rng: random.Random, case: Case) -> Case:
    dtype = rng.choice([np.float64, np.float16, np.int32, np.int64, np.uint8, np.int8, np.bool_, np.complex64,
                        ">f4", "<U3"])
    arrays = {k: v.astype(dtype) for k, v in _batch(rng, case).items()}
    return _write(rng, case, arrays, f"samples of dtype {np.dtype(dtype)}")


@mutator("samples", must_reject=True)
def samples_nonfinite(rng: random.Random, case: Case) -> Case:
    arrays = _batch(rng, case)
    name = rng.choice(sorted(arrays))
    bad = rng.choice([np.nan, np.inf, -np.inf])
    flat = arrays[name].reshape(-1)
    spot = rng.randrange(flat.size)
    flat[spot] = bad
    return _write(rng, case, arrays, f"samples {name!r} hold {bad} at flat index {spot}")


@mutator("samples")
def samples_extreme(rng: random.Random, case: Case) -> Case:
    arrays = _batch(rng, case)
    name = rng.choice(sorted(arrays))
    value = rng.choice([3e38, -3e38, 1e30, np.finfo(np.float32).tiny, 0.0])
    everywhere = rng.random() < 0.5
    if everywhere:
        arrays[name][...] = value
    else:
        arrays[name].reshape(-1)[0] = value
    return _write(rng, case, arrays, f"samples {name!r} hold {value} " + ("everywhere" if everywhere else "once"))


@mutator("samples")
def samples_shape(rng: random.Random, case: Case) -> Case:
    arrays = _batch(rng, case)
    name = rng.choice(sorted(arrays))
    shape = arrays[name].shape
    new = rng.choice([shape[1:-1], (*shape, 1), (0, *shape[1:]), (SAMPLES * 2, *shape[2:], shape[1]), (),
                      (1, 1, *shape), (SAMPLES, 7)])
    arrays[name] = np.zeros(new, np.float32) + 0.25
    return _write(rng, case, arrays, f"samples {name!r} of shape {new} (model wants {shape[1:]} or a batch)")


@mutator("samples")
def samples_names(rng: random.Random, case: Case) -> Case:
    arrays = _batch(rng, case)
    how = rng.choice(["renamed", "missing", "extra", "empty-name"])
    name = rng.choice(sorted(arrays))
    if how == "renamed":
        arrays["wrong_" + name] = arrays.pop(name)
    elif how == "missing" and len(arrays) > 1:
        del arrays[name]
    elif how == "extra":
        arrays["unrelated"] = np.ones(3, np.float32)
    else:
        arrays[""] = arrays.pop(name)
    return _write(rng, case, arrays, f"samples arrays {how}: {sorted(arrays)}")


@mutator("samples")
def samples_layout(rng: random.Random, case: Case) -> Case:
    """Valid values in unusual layouts: Fortran order, non-native byte order, one sample, no batch."""
    arrays = _batch(rng, case)
    how = rng.choice(["fortran", "big-endian", "single", "batch-of-one"])
    arrays = {k: {"fortran": np.asfortranarray(v), "big-endian": v.astype(">f4"), "single": v[0],
                  "batch-of-one": v[:1]}[how] for k, v in arrays.items()}
    return _write(rng, case, arrays, f"samples in {how} layout")
