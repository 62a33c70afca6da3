"""Code generators: each target turns a compiled graph into files.

A target is a class with
- `name`; `base_pipeline` (a pipeline string) and `quantizes` (whether the driver
  appends the quantize pass by default);
- `emit(graph, out_dir, stem) -> list[str]`: write the artifacts, return their
  paths relative to out_dir;
- `execute(graph, out_dir, stem, samples, progress=None) -> list[dict] | None`: run the emitted
  artifact on each sample (a dict of input arrays) and return its outputs, or
  None when the target has nothing executable (out_dir is None when the caller
  asked for no output folder; a target that needs files then uses a temporary one);
- `runner(graph, out_dir, stem)`: a context manager yielding `samples -> outputs`
  that prepares the artifact once (the C build, the decoded blob) for many
  batches; for `ir` it runs the reference interpreter (`nnc validate`);
- `extras(graph) -> dict`: keys the driver merges into the report after
  verification (az-sim: `sim`, c: `memory`; {} when there are none).
Optional, for a target whose artifact holds the graph before lowering (onnx):
- `quantize_options`: options the default pipeline gives the quantize pass;
- `reference_graph(graph) -> Graph`: the integer graph the artifact stands for,
  which the reference interpreter runs and the report describes (the driver
  passes the pipeline's own graph to emit, execute and runner);
- `parity_lsb`: how far the artifact's outputs may be from the reference on
  an integer graph, in steps of each output's grid (0 when absent; None: the
  target bounds each layer itself in `execute`).
Targets are constructed with the driver's CompileOptions (or None).
Targets register with `@register_target` in the module TARGET_MODULES names for
them; `get_target(name)` imports that module on first use, so a compile loads
only its own back end.
"""

from __future__ import annotations

import importlib

from nnc.errors import OptionError

TARGET_MODULES = {"az-sim": "nnc.backends.azsim.target", "c": "nnc.backends.c.target",
                  "ir": "nnc.backends.ir_text", "onnx": "nnc.backends.onnx_qdq.target"}
_TARGETS: dict[str, type] = {}
BATCH = 256


def run_batched(run_on, samples: list, progress=None) -> list:
    """`run_on(batch) -> outputs` over `samples` in batches of BATCH, telling
    `progress` how many samples ran after each batch of a multi-batch run."""
    outputs = []
    for start in range(0, len(samples), BATCH):
        outputs += run_on(samples[start:start + BATCH])
        if progress is not None and len(samples) > BATCH:
            progress(f"ran {len(outputs)}/{len(samples)} samples")
    return outputs


def register_target(cls: type) -> type:
    _TARGETS[cls.name] = cls
    return cls


def get_target(name: str, options=None):
    if name not in TARGET_MODULES:
        raise OptionError(f"unknown target {name!r}; targets: {', '.join(target_names())}")
    if name not in _TARGETS:
        importlib.import_module(TARGET_MODULES[name])
    return _TARGETS[name](options)


def target_names() -> list[str]:
    return sorted(TARGET_MODULES)
