"""A PyTorch model built of indexing ops (nn.Embedding, torch.split, flip,
cat on axis 1, slicing, x[:, -1], transpose), exported by the TorchScript
exporter (Gather of int64 ids, Split, Slice with a negative step, Gather of a
constant index) and compiled for every target: bit-exact to the reference,
int8 vs float cosine >= 0.99. (The dynamo exporter's graph of the same model
compiles too, but its export takes ~25 s, too long for the suite.) Skipped with
a reason when torch (an optional test extra) is absent."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from e2e import compile_everywhere

torch = pytest.importorskip("torch", reason="torch (optional test extra) is not installed")


class Indexing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(40, 16)
        self.lin = torch.nn.Linear(16, 12)
        self.out = torch.nn.Linear(6 * 4, 5)

    def forward(self, ids):
        h = self.lin(self.emb(ids))  # [1, 7, 12]
        a, b = torch.split(h, [6, 6], dim=2)
        c = torch.cat([b.flip(1), a], dim=1)  # [1, 14, 6]
        last = c[:, -4:].transpose(1, 2)  # [1, 6, 4]
        return self.out(last.reshape(1, -1)) + h[:, -1, :5]


def test_torchscript_export_of_indexing_ops_compiles_everywhere(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "indexing.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Indexing().eval(), (torch.randint(0, 40, (1, 7)),), path, dynamo=False,
                          input_names=["ids"], output_names=["y"], verbose=False)
    samples = {"ids": np.random.default_rng(1).integers(0, 40, (8, 1, 7)).astype(np.int64)}
    reports = compile_everywhere(path, tmp_path, samples)
    assert reports["c"]["verification"]["vs_float"]["cosine"] >= 0.999
