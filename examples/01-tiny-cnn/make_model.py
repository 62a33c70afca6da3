"""Build tiny_cnn.onnx, the example model nnc ships: a keyword-spotting-sized
CNN that exercises the front end and the canonical pipeline.

It takes an NHWC input like the TFLite-converted MLPerf models (Transpose to NCHW
first), then Conv + BatchNormalization + Relu, a depthwise Conv + Clip (ReLU6), a
pointwise Conv + Relu, GlobalAveragePool, Flatten, Gemm and Softmax. Weights are
drawn from a fixed seed, so running this script again rewrites the identical file
(`python make_model.py` from this folder). It also writes sample.npz, four
seeded sample inputs stacked as a batch under the input's name.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).parent
rng = np.random.default_rng(2026)


def weight(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def build() -> onnx.ModelProto:
    inits = [
        weight("conv1_w", 16, 1, 3, 3), weight("conv1_b", 16, scale=0.1),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "bn_scale"),
        weight("bn_bias", 16, scale=0.1), weight("bn_mean", 16, scale=0.1),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "bn_var"),
        weight("dw_w", 16, 1, 3, 3), weight("dw_b", 16, scale=0.1),
        weight("pw_w", 32, 16, 1, 1, scale=0.2), weight("pw_b", 32, scale=0.1),
        weight("fc_w", 10, 32, scale=0.3), weight("fc_b", 10, scale=0.1),
        numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
        numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"),
    ]
    nodes = [
        helper.make_node("Transpose", ["input"], ["x_nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["x_nchw", "conv1_w", "conv1_b"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn1"],
                         name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "dw_w", "dw_b"], ["dw"], name="dwconv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Clip", ["dw", "relu6_min", "relu6_max"], ["r2"], name="relu6"),
        helper.make_node("Conv", ["r2", "pw_w", "pw_b"], ["pw"], name="pwconv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["pw"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16, 12, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="nnc-examples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    onnx.save(build(), HERE / "tiny_cnn.onnx")
    samples = rng.standard_normal((4, 1, 16, 12, 1)).astype(np.float32)
    np.savez(HERE / "sample.npz", input=samples)
    print(f"wrote {HERE / 'tiny_cnn.onnx'} and {HERE / 'sample.npz'}")
