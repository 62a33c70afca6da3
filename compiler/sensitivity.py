"""Sensitivity analysis: how much the model's output suffers when one layer alone
is compressed harder (`nnc inspect --sensitivity`).

For every weighted layer L (layer_select.weighted_layers) of the float graph
after the CANONICAL pipeline, and the samples given (calibration data, else
synthetic inputs):
- baseline: the whole model quantized to int8 (the quantize pass);
- `bits`: int8 everywhere except L, whose weights get `bits` bits;
- `sparsity`: int8 everywhere, L's weights first pruned to `sparsity`.
Both use the compile's compression `method` (docs/compression.md): "obs"
(GPTQ, SparseGPT; the default when calibration data is given) or "magnitude"
(the default on synthetic samples), so the table predicts what a compile with
the same method does.
Each row gives, per variant, the cosine similarity and RMSE of the model outputs
against the float graph's outputs on the samples (verification.compare), so the
layers that can take more compression are the ones whose rows stay close to the
baseline. Costs two quantizations per layer.
"""

from __future__ import annotations


import numpy as np

from .interpreter import run
from .ir import Graph
from .layer_select import weighted_layers
from .obs_layers import check_method
from .passmanager import PassManager, available_passes, parse_pipeline
from .pipelines import CANONICAL
from .records import record
from .verification import cosine_rmse, flatten

Samples = list[dict[str, np.ndarray]]


@record(frozen=False)
class LayerSensitivity:
    name: str
    op: str
    params: int
    bits: dict  # {"cosine", "rmse"} of the model output with this layer at `bits`
    pruned: dict  # the same with this layer pruned to `sparsity`


def analyze(graph: Graph, samples: Samples, calib: str, bits: int = 4,
            sparsity: float = 0.5, progress=None, method: str | None = None) -> tuple[dict, list[LayerSensitivity]]:
    """(baseline int8 metrics, one LayerSensitivity per weighted layer). `graph` is
    the loaded model; `calib` the calibration file ("" = synthetic samples);
    `method` None: obs with calibration data, else magnitude."""
    method = method or ("obs" if calib else "magnitude")
    check_method("method", method)
    passes = available_passes()
    float_graph = PassManager(parse_pipeline(CANONICAL)).run(graph.copy())
    truth = [run(float_graph, s) for s in samples]

    def error(*steps) -> dict:
        compressed = PassManager(list(steps)).run(float_graph.copy())
        return _output_error(truth, [run(compressed, s) for s in samples])

    rows = []
    layers = weighted_layers(float_graph)
    for i, node in enumerate(layers):
        if progress:
            progress(f"layer {i + 1}/{len(layers)}: {node.name}")
        at_bits = error(passes["quantize"](calib=calib, overrides=f"{node.name}:{bits}", method=method))
        pruned = error(passes["prune"](sparsity=0.0, overrides=f"{node.name}:{sparsity}", method=method, calib=calib),
                       passes["quantize"](calib=calib))
        rows.append(LayerSensitivity(node.name, node.op, int(float_graph.tensor(node.inputs[1]).size),
                                     at_bits, pruned))
    return error(passes["quantize"](calib=calib)), rows


def _output_error(truth: Samples, got: Samples) -> dict:
    """Cosine and RMSE of all outputs of all samples, flattened together."""
    return cosine_rmse(flatten(truth), flatten(got))
