"""Train the digits CNN with numpy alone and export it as digits.onnx.

The network (11,994 parameters) reads one 8x8 digit scaled to [0, 1]:

    image [1,1,8,8]
    conv1  Conv 3x3 pad 1, 1 -> 16 channels             + Relu   [1,16,8,8]
    conv2  Conv 3x3 pad 1 stride 2, 16 -> 32 channels   + Relu   [1,32,4,4]
    conv3  Conv 3x3 pad 1, 32 -> 16 channels            + Relu   [1,16,4,4]
    Flatten, fc  Gemm 256 -> 10                                  logits [1,10]

Forward and backward passes are written out below (im2col convolutions);
training is Adam on softmax cross-entropy with random one-pixel shifts of the
training images. The weights carry an L1 penalty besides the usual L2 decay, as
for a model meant to be pruned: it pushes unimportant weights towards zero, so
that magnitude pruning removes less of what the network uses.

Seeds are fixed and BLAS runs on one thread, so running `python train.py` again
writes the same digits.onnx on the same machine (other CPUs may round
differently). It writes into out/ (or `--out DIR`), never over the shipped
digits.onnx, whose numbers the README reports; `--out .` replaces it. It also writes calib.npz:
CALIB_IMAGES training images for nnc's calibration and verification, under the
input's name ("image", [N,1,1,8,8]: a batch of N samples of the [1,1,8,8]
input), and prints the test accuracy of the exported model in onnxruntime.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import threadpool_limits

from dataset import split

HERE = Path(__file__).parent
SEED = 2026
EPOCHS = 40
BATCH = 32
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4  # L2
L1_PENALTY = 3e-4
CALIB_IMAGES = 64
# (name, input channels, output channels, stride) of the three 3x3 convolutions
CONVS = (("conv1", 1, 16, 1), ("conv2", 16, 32, 2), ("conv3", 32, 16, 1))
FC_IN, CLASSES = 16 * 4 * 4, 10


def init_params(rng) -> dict[str, np.ndarray]:
    """He-normal weights, zero biases."""
    params = {}
    for name, cin, cout, _ in CONVS:
        params[f"{name}_w"] = rng.normal(0, np.sqrt(2 / (cin * 9)), (cout, cin, 3, 3)).astype(np.float32)
        params[f"{name}_b"] = np.zeros(cout, np.float32)
    params["fc_w"] = rng.normal(0, np.sqrt(1 / FC_IN), (CLASSES, FC_IN)).astype(np.float32)
    params["fc_b"] = np.zeros(CLASSES, np.float32)
    return params


def im2col(x: np.ndarray, stride: int) -> np.ndarray:
    """3x3 windows (pad 1) of x [N,C,H,W] as rows [N*OH*OW, C*9], ordered (c, kh, kw)."""
    n, c = x.shape[:2]
    windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    oh, ow = windows.shape[2:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * 9)


def col2im(dcols: np.ndarray, shape: tuple[int, ...], stride: int) -> np.ndarray:
    """The gradient of x from the gradient of im2col(x, stride)."""
    n, c, h, w = shape
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    d = dcols.reshape(n, oh, ow, c, 3, 3).transpose(0, 3, 4, 5, 1, 2)
    padded = np.zeros((n, c, h + 2, w + 2), dcols.dtype)
    for i in range(3):
        for j in range(3):
            padded[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += d[:, :, i, j]
    return padded[:, :, 1:-1, 1:-1]


def conv_relu(x, w, b, stride):
    """Relu(Conv(x)) [N,O,OH,OW] and what its backward pass needs."""
    n, oh = x.shape[0], (x.shape[2] - 1) // stride + 1
    cols = im2col(x, stride)
    y = np.maximum(cols @ w.reshape(w.shape[0], -1).T + b, 0)
    return y.reshape(n, oh, oh, -1).transpose(0, 3, 1, 2), (x.shape, cols, y)


def conv_relu_backward(dy, w, cache, stride):
    """Gradients (dx, dw, db) of conv_relu from dy [N,O,OH,OW]."""
    shape, cols, y = cache
    dz = dy.transpose(0, 2, 3, 1).reshape(y.shape) * (y > 0)
    dw = (dz.T @ cols).reshape(w.shape)
    dx = col2im(dz @ w.reshape(w.shape[0], -1), shape, stride)
    return dx, dw, dz.sum(0)


def forward(params, x):
    """Logits [N,10] and the caches of the backward pass."""
    caches = []
    for name, _, _, stride in CONVS:
        x, cache = conv_relu(x, params[f"{name}_w"], params[f"{name}_b"], stride)
        caches.append(cache)
    flat = x.reshape(len(x), -1)
    return flat @ params["fc_w"].T + params["fc_b"], (caches, flat)


def backward(params, dlogits, caches) -> dict[str, np.ndarray]:
    conv_caches, flat = caches
    grads = {"fc_w": dlogits.T @ flat, "fc_b": dlogits.sum(0)}
    dx = (dlogits @ params["fc_w"]).reshape(len(flat), -1, 4, 4)
    for (name, _, _, stride), cache in zip(reversed(CONVS), reversed(conv_caches)):
        dx, grads[f"{name}_w"], grads[f"{name}_b"] = conv_relu_backward(dx, params[f"{name}_w"], cache, stride)
    return grads


def cross_entropy_grad(logits, labels):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    shifted = logits - logits.max(1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    loss = -np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean()
    probs[np.arange(len(labels)), labels] -= 1
    return loss, probs / len(labels)


def shift(images, rng):
    """Each image moved by up to one pixel in each direction (zeros shifted in)."""
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dy, dx = rng.integers(0, 3, (2, len(images)))
    return np.stack([padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8] for i in range(len(images))])


class Adam:
    """Adam; weights (not biases) get the gradients of the L2 and L1 penalties."""

    def __init__(self, params, lr, decay, l1, betas=(0.9, 0.999)):
        self.lr, self.decay, self.l1, self.betas, self.t = lr, decay, l1, betas, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads, lr_scale):
        self.t += 1
        b1, b2 = self.betas
        for k, g in grads.items():
            g = g + self.decay * params[k] + self.l1 * np.sign(params[k]) if k.endswith("_w") else g
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat, v_hat = self.m[k] / (1 - b1 ** self.t), self.v[k] / (1 - b2 ** self.t)
            params[k] -= (self.lr * lr_scale * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)


def train(x, y, rng) -> dict[str, np.ndarray]:
    """EPOCHS of minibatch Adam, learning rate on a cosine schedule."""
    params = init_params(rng)
    adam = Adam(params, LEARNING_RATE, WEIGHT_DECAY, L1_PENALTY)
    for epoch in range(EPOCHS):
        order, losses = rng.permutation(len(x)), []
        lr_scale = 0.5 * (1 + np.cos(np.pi * epoch / EPOCHS))
        for start in range(0, len(x), BATCH):
            batch = order[start:start + BATCH]
            logits, caches = forward(params, shift(x[batch], rng))
            loss, dlogits = cross_entropy_grad(logits, y[batch])
            adam.step(params, backward(params, dlogits.astype(np.float32), caches), lr_scale)
            losses.append(loss)
        if epoch % 10 == 9 or epoch == EPOCHS - 1:
            print(f"epoch {epoch + 1:3d}: loss {np.mean(losses):.4f}")
    return params


def export(params) -> onnx.ModelProto:
    """The trained network as an ONNX model (opset 17): image [1,1,8,8] -> logits [1,10]."""
    nodes, x = [], "image"
    for name, _, _, stride in CONVS:
        nodes += [helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name], name=name,
                                   kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]),
                  helper.make_node("Relu", [name], [f"{name}_relu"], name=f"{name}_relu")]
        x = f"{name}_relu"
    nodes += [helper.make_node("Flatten", [x], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "digits",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
        [numpy_helper.from_array(value, name) for name, value in params.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="nnc-examples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_accuracy(path: Path, images, labels) -> float:
    """Top-1 accuracy of the model at `path` in onnxruntime, one image at a time."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    predictions = [session.run(["logits"], {"image": image[None]})[0].argmax() for image in images]
    return float(np.mean(np.array(predictions) == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the digits CNN and export it as ONNX.")
    parser.add_argument("--out", type=Path, default=HERE / "out",
                        help="folder for digits.onnx and calib.npz (default: examples/digits/out)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    data = split()
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    with threadpool_limits(1):
        params = train(data.x_train, data.y_train, rng)
    seconds = time.perf_counter() - start
    onnx.save(export(params), out / "digits.onnx")
    calib = data.x_train[np.sort(rng.choice(len(data.x_train), CALIB_IMAGES, replace=False))]
    np.savez(out / "calib.npz", image=calib[:, None])
    count = sum(v.size for v in params.values())
    accuracy = onnx_accuracy(out / "digits.onnx", data.x_test, data.y_test)
    print(f"trained {count:,} parameters in {seconds:.1f} s; wrote digits.onnx and calib.npz to {out} "
          f"({CALIB_IMAGES} training images)")
    print(f"test accuracy (onnxruntime, {len(data.y_test)} images): {accuracy:.2%}")


if __name__ == "__main__":
    main()
