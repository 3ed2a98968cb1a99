"""Optimizers over a network's parameter list (one dict of arrays per layer), as in PyTorch.

SGD with momentum:  v <- mu*v + g;            p <- p - lr*v
Adam:               m <- b1*m + (1-b1)*g;     v <- b2*v + (1-b2)*g^2
                    p <- p - lr * m_hat / (sqrt(v_hat) + eps), with bias-corrected m_hat, v_hat
Both update the arrays in place, so the network sees the new values at once.
"""

from __future__ import annotations

import math

import numpy as np

Params = list[dict[str, np.ndarray]]


class SGD:
    def __init__(
        self, params: Params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0
    ):
        self.params, self.lr, self.momentum, self.weight_decay = params, lr, momentum, weight_decay
        self.velocity = [{k: np.zeros_like(v) for k, v in p.items()} for p in params]

    def step(self, grads: Params) -> None:
        for p, g, vel in zip(self.params, grads, self.velocity, strict=True):
            for k in p:
                grad = g[k] + self.weight_decay * p[k] if self.weight_decay else g[k]
                if self.momentum:
                    vel[k] *= self.momentum
                    vel[k] += grad
                    grad = vel[k]
                p[k] -= self.lr * grad


class Adam:
    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.weight_decay = weight_decay
        self.m = [{k: np.zeros_like(v) for k, v in p.items()} for p in params]
        self.v = [{k: np.zeros_like(v) for k, v in p.items()} for p in params]
        self.t = 0

    def step(self, grads: Params) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            for k in p:
                grad = g[k] + self.weight_decay * p[k] if self.weight_decay else g[k]
                m[k] *= b1
                m[k] += (1 - b1) * grad
                v[k] *= b2
                v[k] += (1 - b2) * grad * grad
                p[k] -= self.lr * (m[k] / c1) / (np.sqrt(v[k] / c2) + self.eps)


def make_optimizer(
    name: str, params: Params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
):
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use 'adam' or 'sgd'")


def schedule_lr(kind: str, base_lr: float, epoch: int, epochs: int, warmup: int = 1) -> float:
    """The learning rate for an epoch: 'constant', 'step' (x0.1 at 50% and 75%), or 'cosine'."""
    if kind == "constant":
        return base_lr
    if kind == "step":
        return base_lr * (0.1 ** ((epoch >= epochs // 2) + (epoch >= 3 * epochs // 4)))
    if kind == "cosine":
        if epoch < warmup:
            return base_lr * (epoch + 1) / (warmup + 1)
        progress = (epoch - warmup) / max(1, epochs - warmup)
        return base_lr * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}; use constant, step or cosine")
