"""The model zoo end to end: every light zoo family, from each exporter that
builds it, compiles for ir, c and az-sim with the target bit-exact to the
reference interpreter and the int8 output's cosine to the float model >= 0.99
on its calibration samples (tests/e2e.py compile_everywhere asserts both).

Torch exports need PyTorch and onnxscript (the `zoo` extra) and skip with a
reason without them; the onnx.helper families run everywhere. Each case
records its compile seconds and cosine, or its error line; tests/zoo/conftest.py
prints them as a table after the run. The heavy families are left to
benchmarks/zoo.py (see zoo_cases.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from e2e import compile_everywhere
from zoo_cases import TORCH_MISSING, cases, zoo

import nnc

@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """built(family, exporter) -> (model, calibration) paths, exported once per session."""
    folder, cache = tmp_path_factory.mktemp("zoo"), {}

    def build(family: zoo.Family, exporter: str) -> tuple:
        key = (family.name, exporter)
        if key not in cache:
            cache[key] = zoo.build(family, exporter, folder / exporter)
        return cache[key]

    return build


def input_shapes(family: zoo.Family, batch: int | None = None) -> dict[str, tuple[int, ...]]:
    return {spec.name: (batch or spec.shape[0], *spec.shape[1:]) for spec in family.inputs}


@pytest.mark.parametrize("family, exporter, target", cases())
def test_zoo_model_compiles_bit_exact(family, exporter, target, built, tmp_path, record_property):
    model, _ = built(family, exporter)
    row = {"family": family.name, "exporter": exporter, "target": target}
    try:
        report = compile_everywhere(model, tmp_path, zoo.samples(family), targets=(target,),
                                    input_shapes=input_shapes(family))[target]
    except (nnc.NncError, AssertionError) as exc:
        record_property("zoo", row | {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"})
        raise
    cosine = report["verification"].get("vs_float", {}).get("cosine")
    record_property("zoo", row | {"seconds": report["compile_seconds"], "cosine": cosine})


@pytest.mark.parametrize("exporter", zoo.FAMILIES["dynamic_batch_cnn"].exporters)
def test_dynamic_batch_binds_to_any_batch(exporter, built, tmp_path):
    """The symbolic batch binds to 1 as well as to the export's 2."""
    if exporter in zoo.TORCH_EXPORTERS and not zoo.torch_available():
        pytest.skip(TORCH_MISSING)
    family = zoo.FAMILIES["dynamic_batch_cnn"]
    model, _ = built(family, exporter)
    report = compile_everywhere(model, tmp_path, zoo.samples(family, batch=1), targets=("c",),
                                input_shapes=input_shapes(family, batch=1))["c"]
    assert report["verification"]["samples"] == zoo.SAMPLES


@pytest.mark.parametrize("exporter", ["helper", *(pytest.param(e, marks=pytest.mark.skipif(
    not zoo.torch_available(), reason=TORCH_MISSING)) for e in zoo.TORCH_EXPORTERS)])
def test_builds_are_deterministic(exporter, built, tmp_path):
    """Building a family again writes the same model, external data and samples."""
    family = zoo.FAMILIES["rnnt_joint"]
    first = built(family, exporter)
    second = zoo.build(family, exporter, tmp_path)
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    data = first[0].with_name(first[0].name + ".data")
    if data.exists():
        assert data.read_bytes() == second[0].with_name(data.name).read_bytes()


@pytest.mark.skipif(not zoo.torch_available(), reason=TORCH_MISSING)
def test_dynamo_export_keeps_weights_in_external_data(built):
    model, _ = built(zoo.FAMILIES["rnnt_joint"], "dynamo")
    data = model.with_name(model.name + ".data")
    assert data.stat().st_size > 4 * 32 * 32, "the weights are not in the .onnx.data file"


def test_calibration_samples_follow_the_inputs():
    """Seeded per family, stacked on a leading axis, tokens inside the vocabulary."""
    family = zoo.FAMILIES["rnnt_predictor"]
    first, again = zoo.samples(family), zoo.samples(family)
    tokens = first["tokens"]
    assert tokens.shape == (zoo.SAMPLES, 1, 4) and tokens.dtype == np.int64
    assert 0 <= tokens.min() and tokens.max() < 29
    np.testing.assert_array_equal(tokens, again["tokens"])
    other = zoo.samples(zoo.FAMILIES["kws_lstm"])["mfcc"]
    assert other.shape == (zoo.SAMPLES, 1, 49, 10) and other.dtype == np.float32


@pytest.mark.skipif(not zoo.torch_available(), reason=TORCH_MISSING)
@pytest.mark.parametrize("name, exporter, one_by_one", [("transformer_block", "torchscript", True),
                                                        ("torch_encoder_layer", "dynamo", True),
                                                        ("conformer_ctc", "torchscript", False)])
def test_attention_families_fine_tune_and_compile_to_what_was_trained(name, exporter, one_by_one, built, tmp_path):
    """PyTorch's attention exports fine-tune (those that permute q, k and v off
    the batch axis sample by sample; the conformer batched), and the C target
    computes exactly what the twin's exact mode scored."""
    import torch

    from nnc.backends import get_target
    from nnc.train import Compression, export, prepare, save
    from nnc.train.loop import FitOptions, fit

    family = zoo.FAMILIES[name]
    model, _ = built(family, exporter)
    data = {key: value[:, 0] for key, value in zoo.samples(family, count=12).items()}  # [N, *shape[1:]]
    twin = prepare(model, Compression(weight_bits=4), calib=data)
    assert bool(twin.sample_by_sample) == one_by_one, twin.sample_by_sample
    fit(twin, data, options=FitOptions(epochs=1, batch_size=6, holdout=0.25))
    output = twin.graph.outputs[0]
    with torch.no_grad():
        exact = twin({key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in data.items()})
    expected = (exact[output] if isinstance(exact, dict) else exact).numpy()
    result = nnc.compile(save(export(twin), tmp_path / f"{name}.nnir"), "c", tmp_path / "c", verify=False)
    stem = next(a.rsplit(".", 1)[0] for a in result.artifacts if a.endswith(".c"))
    samples = [{key: value[i:i + 1] for key, value in data.items()} for i in range(len(expected))]
    with get_target("c", None).runner(result.graph, tmp_path / "c", stem) as run:
        got = np.concatenate([o[output] for o in run(samples)])
    assert np.array_equal(got, expected.reshape(got.shape))
