"""The activation functions ONNX recurrent ops (LSTM, GRU, RNN) accept, by
canonical name, with their alpha/beta defaults.

ONNX lists them in the `activations` attribute (case-insensitive names); the
`activation_alpha`/`activation_beta` lists are consumed in order by the
functions that take a parameter (onnx/defs doc strings of LSTM/GRU/RNN, and
onnxruntime's rnn_helpers). `resolve` turns the node's lists into one
(name, alpha, beta) triple per activation so nothing downstream re-parses them.
`BOUNDED` names the functions whose output is bounded, the ones an integer
recurrent op can tabulate (docs/numerics.md, recurrent ops).
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError

# name -> (default alpha or None when unused, default beta or None when unused)
PARAMETERS: dict[str, tuple[float | None, float | None]] = {
    "Relu": (None, None),
    "Tanh": (None, None),
    "Sigmoid": (None, None),
    "Affine": (1.0, 0.0),
    "LeakyRelu": (0.01, None),
    "ThresholdedRelu": (1.0, None),
    "ScaledTanh": (1.0, 1.0),
    "HardSigmoid": (0.2, 0.5),
    "Elu": (1.0, None),
    "Softsign": (None, None),
    "Softplus": (None, None),
}
BOUNDED = ("Tanh", "Sigmoid", "ScaledTanh", "HardSigmoid", "Softsign")
_CANONICAL = {name.lower(): name for name in PARAMETERS}


def resolve(names, alphas, betas, what: str) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """Canonical names and one alpha and beta per activation (0.0 where unused).
    `what` names the node in errors."""
    alphas, betas = list(alphas or ()), list(betas or ())
    canon, alpha_out, beta_out = [], [], []
    for name in names:
        key = name.decode() if isinstance(name, bytes) else str(name)
        if key.lower() not in _CANONICAL:
            raise UnsupportedError(f"{what}: activation {key!r} is not an ONNX recurrent activation")
        canonical = _CANONICAL[key.lower()]
        default_alpha, default_beta = PARAMETERS[canonical]
        alpha_out.append(0.0 if default_alpha is None else float(alphas.pop(0) if alphas else default_alpha))
        beta_out.append(0.0 if default_beta is None else float(betas.pop(0) if betas else default_beta))
        canon.append(canonical)
    return tuple(canon), tuple(alpha_out), tuple(beta_out)


def apply(name: str, alpha: float, beta: float, x: np.ndarray) -> np.ndarray:
    """f(x) of activation `name` (float64 in, float64 out)."""
    if name == "Relu":
        return np.maximum(x, 0.0)
    if name == "Tanh":
        return np.tanh(x)
    if name == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "Affine":
        return alpha * x + beta
    if name == "LeakyRelu":
        return np.where(x >= 0, x, alpha * x)
    if name == "ThresholdedRelu":
        return np.where(x >= alpha, x, 0.0)
    if name == "ScaledTanh":
        return alpha * np.tanh(beta * x)
    if name == "HardSigmoid":
        return np.clip(alpha * x + beta, 0.0, 1.0)
    if name == "Elu":
        return np.where(x >= 0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0))
    if name == "Softsign":
        return x / (1.0 + np.abs(x))
    if name == "Softplus":
        return np.logaddexp(0.0, x)
    raise UnsupportedError(f"unknown recurrent activation {name!r}")
