"""Losses of one sample, and the batch cost as their mean.

mse:            C = 1/2 * sum (a - y)^2          dC/da = a - y
cross_entropy:  C = -sum y * log(a)              dC/da = -y / a
With softmax before cross_entropy, dC/dz simplifies to a - y; the network uses that form
because it stays exact when a is tiny.
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
        return float(-np.sum(np.where(y != 0, y * log_a, 0.0)) / n)
    raise ValueError(f"unknown loss {name!r}")


def loss_grad(name: str, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dC/da of the batch cost (each sample's gradient divided by N)."""
    n = a.shape[0]
    if name == "mse":
        return (a - y) / n
    if name == "cross_entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y != 0, -y / a, 0.0) / n
    raise ValueError(f"unknown loss {name!r}")
