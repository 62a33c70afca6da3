"""nnc.train: compression during training, on PyTorch (`pip install 'nnc[train]'`).

    twin = nnc.train.prepare("model.onnx", Compression(weight_bits=4, sparsity=0.75), calib="x.npz")
    ... train twin (mode "train") with your loop, calling twin.set_progress(p) ...
    graph = nnc.train.export(twin)          # compile it: nnc.compile on the saved .nnir

- `prepare` builds the differentiable twin of the model nnc compiles (twin.py);
  `twin.set_mode("exact")` runs the integers the C and az-sim targets run.
- `distill.loss` is the distillation objective against the float teacher.
- `fit` is the training loop `nnc finetune` runs (loop.py).
- `export` writes the trained weights, scales, codebooks and masks back into
  nnc's IR (export.py); `save` writes it as text IR for `nnc compile`.
Importing this package without PyTorch raises MissingExtraError.
"""

from __future__ import annotations

from nnc.errors import MissingExtraError

try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover - exercised by the no-torch test in a subprocess
    raise MissingExtraError("training needs PyTorch: pip install 'nnc[train]'") from None

from .compression import Compression  # noqa: E402
from .export import export, integer_graph  # noqa: E402
from .prepare import prepare, save  # noqa: E402
from .twin import Twin  # noqa: E402

__all__ = ["Compression", "Twin", "export", "integer_graph", "prepare", "save"]
