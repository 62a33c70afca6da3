"""nnc.train on the float MLPerf Tiny models: each builds a twin, trains a step,
and its exact mode equals the az-sim target run on the exported model, bit for
bit (the C target is covered on the small models of test_twin.py; building C
for these is the compile tests' job)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="nnc.train needs PyTorch (pip install 'nnc[train]')")

import nnc  # noqa: E402
from nnc.backends import get_target  # noqa: E402
from nnc.train import Compression, export, prepare, save  # noqa: E402
from nnc.train.loop import FitOptions, fit  # noqa: E402

from mlperf import MODEL_NAMES, MODELS_DIR, requires_models  # noqa: E402

FLOAT_MODELS = [name for name in MODEL_NAMES if name.endswith("_f32")] or ["absent"]


@requires_models
@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_mlperf_twin_equals_az_sim(name, tmp_path):
    model = MODELS_DIR / f"{name}.onnx"
    graph = nnc.load(model)
    rng = np.random.default_rng(0)
    data = {n: rng.uniform(0, 1, (12, *graph.tensor(n).shape[1:])).astype(np.float32) for n in graph.inputs}
    twin = prepare(model, Compression(weight_bits=4, sparsity=0.5), calib=data)
    fit(twin, data, options=FitOptions(epochs=1, batch_size=8, holdout=0.25))
    twin.eval().set_mode("exact")
    probe = {n: x[:3] for n, x in data.items()}
    with torch.no_grad():
        expected = twin({n: torch.from_numpy(x) for n, x in probe.items()})
    path = save(export(twin), tmp_path / f"{name}.nnir")
    result = nnc.compile(path, "az-sim", tmp_path / "out", verify=False)
    stem = next(a[:-4] for a in result.artifacts if a.endswith(".azb"))
    with get_target("az-sim", None).runner(result.graph, tmp_path / "out", stem) as run:
        outputs = run([{n: x[i:i + 1] for n, x in probe.items()} for i in range(3)])
    got = np.concatenate([o[graph.outputs[0]] for o in outputs])
    assert np.array_equal(got, expected.numpy().reshape(got.shape))
