"""Build the streaming example's model and utterances (fixed seed, byte-identical
output): an LSTM keyword spotter on 49 frames of 10 MFCC features.

    x [1, T, 10] -> Transpose -> LSTM (32 units) -> Y [T, 1, 1, 32] -> Squeeze
      -> Gather(index -1: the last frame) -> Gemm (12 classes) -> logits [1, 12]

T is symbolic, so the same model runs a whole utterance (T = 49) or one frame.
The weights are random (scaled like a trained LSTM's); `utterances.npz` holds
eight utterances of smooth random features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
FRAMES, FEATURES, HIDDEN, CLASSES = 49, 10, 32, 12


def build(rng: np.random.Generator) -> onnx.ModelProto:
    def param(name, *shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [param("W", 1, 4 * HIDDEN, FEATURES, scale=0.3), param("R", 1, 4 * HIDDEN, HIDDEN, scale=0.15),
             param("B", 1, 8 * HIDDEN, scale=0.1), param("fc_w", CLASSES, HIDDEN, scale=0.4),
             param("fc_b", CLASSES, scale=0.1),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.array(-1, np.int64), "last")]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_tbf"], name="to_time_major", perm=[1, 0, 2]),
        helper.make_node("LSTM", ["x_tbf", "W", "R", "B"], ["y"], name="lstm", hidden_size=HIDDEN),
        helper.make_node("Squeeze", ["y", "axis1"], ["y_tbh"], name="squeeze"),
        helper.make_node("Gather", ["y_tbh", "last"], ["h_last"], name="last_frame", axis=0),
        helper.make_node("Gemm", ["h_last", "fc_w", "fc_b"], ["logits"], name="classifier", transB=1),
    ]
    graph = helper.make_graph(nodes, "kws_lstm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", FEATURES])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="nnc-example")
    onnx.checker.check_model(model)
    return model


def utterances(rng: np.random.Generator, count: int = 8) -> np.ndarray:
    """[count, 1, FRAMES, FEATURES]: random walks along time, like slowly changing spectra."""
    steps = rng.standard_normal((count, 1, FRAMES, FEATURES)).astype(np.float32) * 0.35
    return np.cumsum(steps, axis=2, dtype=np.float32) / np.sqrt(np.arange(1, FRAMES + 1, dtype=np.float32))[:, None]


def main() -> None:
    rng = np.random.default_rng(2026)
    onnx.save(build(rng), HERE / "kws_lstm.onnx")
    np.savez(HERE / "utterances.npz", x=utterances(rng))


if __name__ == "__main__":
    main()
