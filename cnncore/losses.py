"""Losses of one sample, and the batch cost as their mean.

mse:            C = 1/2 * sum (a - y)^2          dC/da = a - y
cross_entropy:  C = -sum y * log(a)              dC/da = -y / a
With softmax before cross_entropy, C is computed from the logits as log-softmax,
C = -sum y * (z - max z - log sum exp(z - max z)), which stays finite for any logit gap (as
PyTorch's F.cross_entropy), and dC/dz simplifies to a - y; the network uses that form because
it stays exact when a is tiny. dC/da = -y/a itself is ±inf where a underflowed to 0.
"""

from __future__ import annotations

import numpy as np

LOSSES = ("mse", "cross_entropy")


def loss_value(name: str, a: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
    """Mean over the batch of each sample's loss. Shapes: a, y (N, ...)."""
    n = a.shape[0]
    if name == "mse":
        return float(0.5 * np.sum((a - y) ** 2) / n)
    if name == "cross_entropy":
        if z is not None:  # log-softmax from the logits: no log(0)
            axes = tuple(range(1, z.ndim))
            m = z.max(axis=axes, keepdims=True)
            log_a = z - m - np.log(np.exp(z - m).sum(axis=axes, keepdims=True))
        else:
            log_a = np.log(a)
        # + 0.0: a loss that rounds to zero is 0.0, never -0.0
        return float(-np.sum(np.where(y != 0, y * log_a, 0.0)) / n + 0.0)
    raise ValueError(f"unknown loss {name!r}")


def loss_grad(name: str, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dC/da of the batch cost (each sample's gradient divided by N)."""
    n = a.shape[0]
    if name == "mse":
        return (a - y) / n
    if name == "cross_entropy":
        # -y/a is ±inf where a softmax output underflowed to 0 (or is so small that 1/a
        # overflows): that is its true float64 value, returned as it is and without a warning.
        # After softmax the network never uses it: dC/dz = a - y is exact and finite.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where(y != 0, -y / a, 0.0) / n
    raise ValueError(f"unknown loss {name!r}")
