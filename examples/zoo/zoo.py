"""The model zoo nnc builds itself: which families exist, what each takes as
input, and how a family becomes an ONNX file plus a calibration .npz.

A family is exported by PyTorch's two exporters, "torchscript"
(`torch.onnx.export(..., dynamo=False)`) and "dynamo" (`dynamo=True`, which
writes the weights to `<file>.onnx.data`), and a few families are also built
with onnx.helper ("helper"), so that part of the zoo exists without PyTorch.
This module imports neither torch nor the model definitions until a torch
export is asked for.

Invariants:
- deterministic: a family's weights come from torch.manual_seed(SEED) (or a
  numpy generator seeded by SEED for helper models) and its calibration
  samples from a generator seeded by the family's name, so building again
  writes the same bytes (models, external data, samples) with all three
  exporters with torch 2.13 (build_zoo.py --check compares them);
- every model has a static batch of 1, except the dynamic-batch CNN, whose
  batch dimension stays symbolic (nnc binds it with --input-shape, default 1;
  its calibration samples hold batches of 2);
- the calibration file holds SAMPLES samples per input, stacked on a new
  leading axis, under the model's input names;
- a random network is initialized to behave like a trained one where the
  tests need it: its output depends on its input, and int8 rounding does not
  grow exponentially with depth (torch_export.py says how and what it measured).
"""

from __future__ import annotations

import importlib.util
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

SEED = 2026
SAMPLES = 4
VOCAB = 29
EXPORTERS = ("torchscript", "dynamo", "helper")
TORCH_EXPORTERS = EXPORTERS[:2]
# TorchScript exports at opset 17; the dynamo exporter at its own opset (18),
# as converting down fails on some graphs (ReduceMean's axes input).
OPSET = 17
DYNAMO_OPSET = 18


@dataclass(frozen=True)
class Input:
    """One model input: its name, shape (batch first, channels second for
    "smooth") and what fills it: "normal" (standard normal floats), "smooth"
    (standard normal values held over blocks of `size` along every axis after
    the channels, plus 0.1 white noise: images and waveforms with content at
    several scales, so that globally pooled features differ between samples),
    "tokens" (int64 indices below `size`)."""

    name: str
    shape: tuple[int, ...]
    fill: str = "normal"
    size: int = 0


@dataclass(frozen=True)
class Family:
    """A zoo family: its torch module factory (called with the torch_models
    module), inputs, output names, and the onnx.helper builder if it has one.
    `heavy` families are left to benchmarks/zoo.py rather than the test suite.
    `torchscript` False: the TorchScript exporter cannot export the module, so
    only the dynamo exporter builds it."""

    name: str
    torch_module: Callable | None
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...] = ("logits",)
    helper: Callable[[np.random.Generator], onnx.ModelProto] | None = None
    dynamic_batch: bool = False
    heavy: bool = False
    torchscript: bool = True

    @property
    def exporters(self) -> tuple[str, ...]:
        torch_exporters = TORCH_EXPORTERS if self.torchscript else ("dynamo",)
        return (torch_exporters if self.torch_module else ()) + (("helper",) if self.helper else ())


def _helper(name: str) -> Callable:
    def build(rng: np.random.Generator) -> onnx.ModelProto:
        import helper_models

        return getattr(helper_models, name)(rng)

    return build


def _families() -> dict[str, Family]:
    mfcc = (Input("mfcc", (1, 49, 10)),)
    tokens = (Input("tokens", (1, 4), "tokens", size=VOCAB),)
    joint_frame = (Input("enc", (1, 32)), Input("pred", (1, 32)))
    joint_grid = (Input("enc", (1, 8, 32)), Input("pred", (1, 4, 32)))
    small_image = (Input("image", (1, 1, 32, 32), "smooth", size=4),)
    families = [
        Family("kws_lstm", lambda m: m.KeywordSpotter(m.nn.LSTM), mfcc, helper=_helper("kws_lstm")),
        Family("kws_gru", lambda m: m.KeywordSpotter(m.nn.GRU), mfcc),
        Family("kws_rnn", lambda m: m.KeywordSpotter(m.nn.RNN), mfcc),
        Family("rnnt_encoder", lambda m: m.RnntEncoder(), (Input("frames", (1, 16, 20)),), ("enc",)),
        Family("ctc_lstm", lambda m: m.CtcAcousticModel(), (Input("frames", (1, 16, 20)),), ("log_probs",)),
        Family("rnnt_predictor", lambda m: m.RnntPredictor(), tokens, ("pred",), helper=_helper("rnnt_predictor")),
        Family("rnnt_joint", lambda m: m.RnntJoint(), joint_frame, helper=_helper("rnnt_joint")),
        Family("rnnt_joint_grid", lambda m: m.RnntJointGrid(), joint_grid),
        Family("transformer_block", lambda m: m.TransformerBlock(), (Input("x", (1, 16, 32)),), ("y",)),
        # torch 2.13's TorchScript export of nn.TransformerEncoderLayer fails inside
        # scaled_dot_product_attention (is_causal arrives as a tensor)
        Family("torch_encoder_layer", lambda m: m.EncoderLayer(), (Input("x", (1, 16, 32)),), ("y",),
               torchscript=False),
        Family("conformer_conv", lambda m: m.ConformerConv(), (Input("x", (1, 32, 32)),), ("y",)),
        Family("conformer_ctc", lambda m: m.ConformerCtc(), (Input("features", (1, 16, 20)),), ("log_probs",)),
        Family("mobilenet_v2", lambda m: m.MobileNetV2(), (Input("image", (1, 3, 96, 96), "smooth", size=8),),
               heavy=True),
        Family("resnet18", lambda m: m.ResNet18(), (Input("image", (1, 3, 64, 64), "smooth", size=8),),
               heavy=True),
        Family("unet_convtranspose", lambda m: m.UNet("convtranspose"), small_image, ("mask",)),
        Family("unet_resize", lambda m: m.UNet("resize"), small_image, ("mask",)),
        Family("audio_conv1d", lambda m: m.AudioConv1d(), (Input("wave", (1, 1, 4000), "smooth", size=64),)),
        Family("dynamic_batch_cnn", lambda m: m.DynamicBatchCnn(), (Input("image", (2, 3, 32, 32), "smooth", size=4),),
               helper=_helper("dynamic_batch_cnn"), dynamic_batch=True),
    ]
    return {f.name: f for f in families}


FAMILIES = _families()


def torch_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "onnxscript"))


def samples(family: Family, count: int = SAMPLES, batch: int | None = None) -> dict[str, np.ndarray]:
    """`count` samples per input, shape [count, *input shape], seeded by the
    family's name; `batch` replaces a dynamic family's batch dimension."""
    rng = np.random.default_rng(zlib.crc32(family.name.encode()))
    arrays = {}
    for spec in family.inputs:
        shape = (count, batch or spec.shape[0], *spec.shape[1:])
        if spec.fill == "tokens":
            arrays[spec.name] = rng.integers(0, spec.size, shape, dtype=np.int64)
        elif spec.fill == "smooth":
            arrays[spec.name] = _smooth(rng, shape, spec.size)
        else:
            arrays[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return arrays


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], size: int) -> np.ndarray:
    """[count, batch, channels, *spatial]: blocks of size^k equal values plus white noise."""
    coarse = rng.standard_normal((*shape[:3], *(-(-d // size) for d in shape[3:])))
    for axis in range(3, len(shape)):
        coarse = np.repeat(coarse, size, axis=axis).take(range(shape[axis]), axis=axis)
    offset = rng.standard_normal((*shape[:3], *(1 for _ in shape[3:])))
    return (coarse + offset + 0.1 * rng.standard_normal(shape)).astype(np.float32)


def build(family: Family, exporter: str, folder: Path) -> tuple[Path, Path]:
    """Write `<family>.<exporter>.onnx` (and its .data for dynamo) and
    `<family>.npz` into `folder`; return both paths."""
    if exporter not in family.exporters:
        raise ValueError(f"{family.name} has no {exporter!r} build (it has {', '.join(family.exporters)})")
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / f"{family.name}.{exporter}.onnx"
    calib = samples(family)
    if exporter == "helper":
        onnx.save(family.helper(np.random.default_rng(SEED)), model_path)
    else:
        import torch_export

        torch_export.export(family, exporter, model_path, calib)
    calib_path = folder / f"{family.name}.npz"
    np.savez(calib_path, **calib)
    return model_path, calib_path
