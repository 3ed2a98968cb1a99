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

    def explain(self, layer: int, key: str, index: tuple[int, ...], g: float) -> dict:
        """The next `step`'s update of one weight, in the parameters' dtype and in `step`'s
        order of operations, so `w_new` is the value `step` will write, bit for bit.

        g is that weight's gradient in the batch the step will use."""
        dt = self.params[layer][key].dtype.type
        w, g = dt(self.params[layer][key][index]), dt(g)
        out = {"optimizer": "momentum" if self.momentum else "sgd", "lr": float(dt(self.lr))}
        out.update({"w": float(w), "g": float(g)})
        grad = g
        if self.weight_decay:
            grad = dt(g + dt(self.weight_decay) * w)
            out.update({"weight_decay": self.weight_decay, "g_decayed": float(grad)})
        if self.momentum:
            v = self.velocity[layer][key][index]
            v_new = dt(dt(v * dt(self.momentum)) + grad)
            out.update({"momentum": self.momentum, "v": float(v), "v_new": float(v_new)})
            grad = v_new
        out["update"] = float(dt(dt(self.lr) * grad))
        out["w_new"] = float(dt(w - dt(dt(self.lr) * grad)))
        return out


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

    def explain(self, layer: int, key: str, index: tuple[int, ...], g: float) -> dict:
        """As `SGD.explain`: the next step's m, v, bias corrections and update of one weight."""
        dt = self.params[layer][key].dtype.type
        b1, b2 = self.betas
        t = self.t + 1
        c1, c2 = 1 - b1**t, 1 - b2**t
        w, g = dt(self.params[layer][key][index]), dt(g)
        m, v = self.m[layer][key][index], self.v[layer][key][index]
        grad = g
        out = {"optimizer": "adam", "lr": float(dt(self.lr)), "w": float(w), "g": float(g)}
        if self.weight_decay:
            grad = dt(g + dt(self.weight_decay) * w)
            out.update({"weight_decay": self.weight_decay, "g_decayed": float(grad)})
        m_new = dt(dt(m * dt(b1)) + dt(dt(1 - b1) * grad))
        v_new = dt(dt(v * dt(b2)) + dt(dt(dt(1 - b2) * grad) * grad))
        m_hat, v_hat = dt(m_new / dt(c1)), dt(v_new / dt(c2))
        update = dt(dt(dt(self.lr) * m_hat) / dt(np.sqrt(v_hat) + dt(self.eps)))
        out.update(
            {
                "beta1": b1,
                "beta2": b2,
                "eps": self.eps,
                "t": t,
                "m": float(m),
                "v": float(v),
                "m_new": float(m_new),
                "v_new": float(v_new),
                "bias_correction1": float(dt(c1)),
                "bias_correction2": float(dt(c2)),
                "m_hat": float(m_hat),
                "v_hat": float(v_hat),
                "update": float(update),
                "w_new": float(dt(w - update)),
            }
        )
        return out


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
