"""Export a zoo family with one of PyTorch's two ONNX exporters. Imports torch.

The module is built under torch.manual_seed(zoo.SEED) and initialized so that
a random network behaves like a trained one in the two ways the zoo's tests
rely on: its output depends on its input (a cosine on outputs that are mostly
biases would prove little), and int8 rounding does not grow exponentially
with depth. It is exported in eval mode with the first calibration sample
(two images for the dynamic-batch family: torch.export specializes a
dimension of size 1) as example input.

Measured on MobileNetV2 (int8 vs float cosine, ir target with quantization):
PyTorch's defaults with BatchNorm statistics from the 4 calibration samples
0.89; residual branches scaled by RESIDUAL_GAIN 0.96; statistics over
SETTLE_SAMPLES samples 0.977; depthwise kernels with a mean 0.994.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import torch

import torch_models
import zoo

RESIDUAL_GAIN = 0.2
DEPTHWISE_MEAN = 1.0
SETTLE_SAMPLES = 32
BIAS_STD = 0.1


def module(family: zoo.Family) -> torch.nn.Module:
    """The family's module with seeded weights and settled BatchNorm statistics."""
    torch.manual_seed(zoo.SEED)
    net = family.torch_module(torch_models)
    with torch.no_grad():
        for layer in net.modules():
            initialize(layer)
    settle_batchnorm(net, zoo.samples(family, count=SETTLE_SAMPLES))
    return net.eval()


def initialize(layer: torch.nn.Module) -> None:
    """Weights of Linear, convolution and recurrent layers ~ N(0, 1/fan_in)
    (unit gain, LeCun), their biases ~ N(0, BIAS_STD); other layers keep
    PyTorch's defaults, whose weights (std 1/sqrt(3 fan_in)) and equally large
    biases make a random LSTM stack output mostly its biases whatever the
    input. Depthwise kernels get a mean of DEPTHWISE_MEAN / taps: trained ones
    are mostly smoothing filters, while zero-mean random ones are high-pass
    and amplify rounding noise relative to the signal at every layer."""
    nn = torch.nn
    if isinstance(layer, nn.RNNBase):
        for name, param in layer.named_parameters():
            param.normal_(0.0, param.shape[1] ** -0.5 if name.startswith("weight") else BIAS_STD)
        return
    if isinstance(layer, nn.ConvTranspose2d):
        fan_in = layer.in_channels * math.prod(layer.kernel_size) / math.prod(layer.stride)
    elif isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        fan_in = layer.weight[0].numel()
    else:
        return
    layer.weight.normal_(0.0, fan_in ** -0.5)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)) and 1 < layer.groups == layer.in_channels:
        layer.weight.add_(DEPTHWISE_MEAN / fan_in)
    if layer.bias is not None:
        layer.bias.normal_(0.0, BIAS_STD)


def settle_batchnorm(net: torch.nn.Module, data: dict[str, np.ndarray]) -> None:
    """Scale every BatchNorm that ends a residual branch (a block's
    `branch_norm`) by RESIDUAL_GAIN, then set every BatchNorm's running
    statistics to its batch statistics over `data` (momentum None averages).

    A deep random network normalized by BatchNorm at every layer is chaotic:
    a small perturbation grows with depth (Yang et al. 2019, "A mean field
    theory of batch normalization"). Scaling the residual branches down keeps
    the identity paths dominant, as in SkipInit (De and Smith 2020, "Batch
    normalization biases residual blocks towards the identity function").
    Statistics over many samples keep a channel that barely varies on a few
    samples from being scaled up by a tiny variance."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    with torch.no_grad():
        for block in net.modules():
            if getattr(block, "branch_norm", None) is not None:
                block.branch_norm.weight.fill_(RESIDUAL_GAIN)
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        net.train()
        net(*(torch.from_numpy(np.concatenate(list(a))) for a in data.values()))


def export(family: zoo.Family, exporter: str, path: Path, calib: dict[str, np.ndarray]) -> None:
    """Write the family's model to `path` ("dynamo": and its weights to `path`.data)."""
    net = module(family)
    args = tuple(torch.from_numpy(array[0]) for array in calib.values())
    names = dict(input_names=[i.name for i in family.inputs], output_names=list(family.outputs))
    with _quiet(), torch.no_grad():
        if exporter == "torchscript":
            axes = {name: {0: "batch"} for name in (*names["input_names"], *names["output_names"])}
            torch.onnx.export(net, args, str(path), dynamo=False, opset_version=zoo.OPSET,
                              dynamic_axes=axes if family.dynamic_batch else None, **names)
        else:
            batch = torch.export.Dim("batch", min=1, max=64)
            shapes = ({0: batch},) * len(args) if family.dynamic_batch else None
            program = torch.onnx.export(net, args, dynamo=True, opset_version=zoo.DYNAMO_OPSET,
                                        dynamic_shapes=shapes, verbose=False, **names)
            program.save(str(path), external_data=True)


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' warnings and log lines (e.g. torchvision not
    installed) for the duration of one export."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
