"""Element-wise activations g and the backward step dC/dz = dC/da (.) g'(z).

softmax is the exception: it mixes a sample's features, so its backward is a
Jacobian-vector product (over every non-batch axis), not an element-wise product.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh", "softmax")


def _features_axes(z: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, z.ndim))


def sigmoid(z: np.ndarray) -> np.ndarray:
    # Split by sign so that exp never overflows.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over each sample's features. Shapes: (N, ...) -> (N, ...)."""
    axes = _features_axes(z)
    e = np.exp(z - z.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """a = g(z)."""
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        return softmax(z)
    raise ValueError(f"unknown activation {name!r}")


def derivative(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """g'(z) for the element-wise activations (relu'(0) = 0, as in PyTorch)."""
    if name == "identity":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    raise ValueError(f"{name!r} has no element-wise derivative")


def backward(name: str, da: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """dC/dz from dC/da. Shapes: all (N, ...)."""
    if name == "softmax":
        axes = _features_axes(a)
        return a * (da - (da * a).sum(axis=axes, keepdims=True))
    if name == "relu":  # np.where, not da * mask: a closed gate must give 0, never -0.0
        return np.where(z > 0, da, 0.0).astype(da.dtype, copy=False)
    dz = da * derivative(name, z, a)
    dz += 0.0  # -0.0 (negative da times a zero slope) becomes 0.0, as learners expect
    return dz
