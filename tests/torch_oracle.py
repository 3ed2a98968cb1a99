"""The same network in PyTorch (float64 autograd): the reference the engine's traces must equal.

Shared by the engine's gradient tests and the scenario tests, so there is one mirror of the spec
to keep in step with the engine. Every registered layer type has an entry in `_LAYERS` (a
registry test checks it), blocks included.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _acts(torch):
    return {
        "identity": lambda v: v * 1.0,  # a distinct tensor, so a and z keep separate grads
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda v: torch.softmax(v, dim=1),
    }


def _sub(params: dict, prefix: str) -> dict:
    pre = prefix + "."
    return {k[len(pre) :]: v for k, v in params.items() if k.startswith(pre)}


def _leaf(torch, spec: dict, params: dict, a) -> tuple[Any, dict]:
    tf = torch.nn.functional
    t = spec["type"]
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
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
    out = _acts(torch)[spec.get("activation", "identity")](z)
    for v in (a, z, out):
        v.retain_grad()
    return out, {"a_prev": a, "z": z, "a": out, "p": p}


def _chain(torch, specs: list[dict], params: dict, prefix: str, a):
    recs = []
    for i, spec in enumerate(specs):
        a, rec = _layer(torch, spec, _sub(params, f"{prefix}.{i}"), a)
        recs.append(rec)
    return a, recs


def _residual(torch, spec: dict, params: dict, a):
    xf, xs = a * 1.0, a * 1.0  # one copy per path, so each path's gradient is seen alone
    f, inner = _chain(torch, spec["layers"], params, "layers", xf)
    proj = None
    if spec["projection"] is not None:
        skip, proj = _leaf(torch, spec["projection"], _sub(params, "projection"), xs)
    else:
        skip = xs
    z = f + skip
    out = _acts(torch)[spec["activation"]](z)
    for v in (a, xf, xs, z, out):
        v.retain_grad()
    return out, {
        "a_prev": a, "f": f, "skip": skip, "z": z, "a": out,
        "path_in": xf, "skip_in": xs, "layers": inner, "projection": proj, "p": {},
    }  # fmt: skip


def _concat(torch, spec: dict, params: dict, a):
    ins, outs, branches = [], [], []
    for b, chain in enumerate(spec["branches"]):
        xb = a * 1.0
        xb.retain_grad()
        out, recs = _chain(torch, chain, params, f"branches.{b}", xb)
        ins.append(xb)
        outs.append(out)
        branches.append(recs)
    z = torch.cat(outs, dim=1)
    out = z * 1.0
    for v in (a, z, out):
        v.retain_grad()
    return out, {"a_prev": a, "z": z, "a": out, "ins": ins, "outs": outs, "branches": branches}


_LAYERS = {
    "conv2d": _leaf,
    "maxpool2d": _leaf,
    "avgpool2d": _leaf,
    "flatten": _leaf,
    "dense": _leaf,
    "residual": _residual,
    "concat": _concat,
}


def _layer(torch, spec, params, a):
    return _LAYERS[spec["type"]](torch, spec, params, a)


def _np(t):
    return None if t is None else t.detach().numpy()[0]


def _grad(t):
    return None if t is None or t.grad is None else t.grad.numpy()[0]


def _read(rec: dict) -> dict:
    """A recorded layer after backward -> the engine trace's keys, NumPy, no batch axis."""
    p = rec.get("p", {})
    d = {
        "a_prev": _np(rec["a_prev"]),
        "z": _np(rec["z"]),
        "a": _np(rec["a"]),
        "dC_dz": _grad(rec["z"]),
        "dC_da": _grad(rec["a"]),
        "dC_da_prev": _grad(rec["a_prev"]),
        "dC_dw": p["w"].grad.numpy() if "w" in p else None,
        "dC_db": p["b"].grad.numpy() if "b" in p else None,
    }
    if "layers" in rec:  # residual
        d.update(
            f=_np(rec["f"]),
            skip=_np(rec["skip"]),
            dC_da_prev_path=_grad(rec["path_in"]),
            dC_da_prev_skip=_grad(rec["skip_in"]),
            layers=[_read(r) for r in rec["layers"]],
            projection=None if rec["projection"] is None else _read(rec["projection"]),
        )
    if "branches" in rec:  # concat
        d["dC_dz"] = d["dC_da"]  # the engine's concat has no activation: dC/dz = dC/da
        d.update(
            split_dC_da=[_grad(o) for o in rec["outs"]],
            split_dC_da_prev=[_grad(x) for x in rec["ins"]],
            branches=[[_read(r) for r in chain] for chain in rec["branches"]],
        )
    return d


def torch_trace(net, x: np.ndarray, y: np.ndarray, logits_loss: bool = False):
    """Run `net`'s spec and parameters in PyTorch on one sample and backpropagate its loss.

    Shapes: x (C, H, W); y shaped like the output (one-hot for cross_entropy). Returns the loss
    and, per layer, NumPy arrays without the batch axis: z, a, dC_dz, dC_da, dC_da_prev, and
    dC_dw, dC_db (None for layers without parameters) — the keys of the engine's trace. Blocks
    add f, skip, dC_da_prev_path, dC_da_prev_skip and nested "layers"/"projection" (residual),
    split_dC_da, split_dC_da_prev and nested "branches" (concat).

    `logits_loss=True` computes cross-entropy as `F.cross_entropy` on the last layer's logits
    z (log-softmax: finite for any logit gap), instead of -Σ y·log(softmax(z)).
    """
    import torch

    a = torch.tensor(np.asarray(x, dtype=np.float64)[None], requires_grad=True)
    records = []
    for spec, layer in zip(net.spec["layers"], net.layers, strict=True):
        a, rec = _layer(torch, spec, layer.params, a)
        records.append(rec)
    ty = torch.tensor(np.asarray(y, dtype=np.float64)[None])
    if net.loss_name == "mse":
        loss = 0.5 * ((a - ty) ** 2).sum()
    elif logits_loss:
        loss = torch.nn.functional.cross_entropy(records[-1]["z"], ty, reduction="sum")
    else:
        loss = -(ty * torch.log(a)).sum()
    loss.backward()
    return float(loss.detach()), [_read(r) for r in records]
