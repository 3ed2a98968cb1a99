"""The same network in PyTorch (float64 autograd): the reference the engine's traces must equal.

Shared by the engine's gradient tests and the scenario tests, so there is one mirror of the spec
to keep in step with the engine.
"""

from __future__ import annotations

import numpy as np


def torch_trace(net, x: np.ndarray, y: np.ndarray) -> tuple[float, list[dict]]:
    """Run `net`'s spec and parameters in PyTorch on one sample and backpropagate its loss.

    Shapes: x (C, H, W); y shaped like the output (one-hot for cross_entropy). Returns the loss
    and, per layer, NumPy arrays without the batch axis: z, a, dC_dz, dC_da, dC_da_prev, and
    dC_dw, dC_db (None for layers without parameters) — the keys of the engine's trace.
    """
    import torch

    tf = torch.nn.functional
    acts = {
        "identity": lambda v: v * 1.0,  # a distinct tensor, so a and z keep separate grads
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda v: torch.softmax(v, dim=1),
    }
    a = torch.tensor(np.asarray(x, dtype=np.float64)[None], requires_grad=True)
    record = []
    for layer, spec in zip(net.layers, net.spec["layers"], strict=True):
        a_prev, t = a, spec["type"]
        p = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
        if t == "conv2d":
            z = tf.conv2d(a, p["w"], p["b"], spec["stride"], spec["padding"])
        elif t == "maxpool2d":
            z = tf.max_pool2d(a, spec["kernel_size"], spec["stride"], spec["padding"])
        elif t == "avgpool2d":
            z = tf.avg_pool2d(
                a, spec["kernel_size"], spec["stride"], spec["padding"], count_include_pad=True
            )
        elif t == "flatten":
            z = a.flatten(1)
        else:
            z = tf.linear(a, p["w"], p["b"])
        a = acts[spec.get("activation", "identity")](z)
        for v in (a_prev, z, a):
            v.retain_grad()
        record.append((a_prev, z, a, p))
    ty = torch.tensor(np.asarray(y, dtype=np.float64)[None])
    mse = net.loss_name == "mse"
    loss = 0.5 * ((a - ty) ** 2).sum() if mse else -(ty * torch.log(a)).sum()
    loss.backward()

    def np_(t):
        return None if t is None else t.detach().numpy()[0]

    layers = [
        {
            "a_prev": np_(a_prev),
            "z": np_(z),
            "a": np_(a),
            "dC_dz": np_(z.grad),
            "dC_da": np_(a.grad),
            "dC_da_prev": np_(a_prev.grad),
            "dC_dw": p["w"].grad.numpy() if "w" in p else None,
            "dC_db": p["b"].grad.numpy() if "b" in p else None,
        }
        for a_prev, z, a, p in record
    ]
    return float(loss.detach()), layers
