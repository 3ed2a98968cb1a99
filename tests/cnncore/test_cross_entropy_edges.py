"""Cross-entropy after softmax at the edges (issue 11, D1, D2, D4), against PyTorch.

D1: with a logit gap ≳ 710 the target's probability underflows to 0; the loss is still finite
(computed as log-softmax, equal to F.cross_entropy), and so is every gradient the backward pass
uses (dC/dz = a − y). dC/da = −y/a of the softmax output is −inf at the target by definition:
the trace carries that value as it is.
D2: a loss that rounds to zero is 0.0, never −0.0.
D4: no NumPy warning (overflow in divide) from Network.trace.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from cnncore.network import Network

SPEC = {
    "input_shape": [1, 4, 4],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "activation": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


def _net(scale: float) -> Network:
    net = Network.from_spec(SPEC, seed=2)
    net.layers[2].params["w"] = net.layers[2].params["w"] * scale
    return net


def _torch(net: Network, x: np.ndarray, target: int):
    """F.cross_entropy on the logits, and every parameter's and the input's gradient."""
    xt = torch.tensor(x[None], requires_grad=True)
    p = [{k: torch.tensor(v, requires_grad=True) for k, v in lp.items()} for lp in net.params]
    h = torch.relu(torch.nn.functional.conv2d(xt, p[0]["w"], p[0]["b"]))
    z = torch.nn.functional.linear(h.flatten(1), p[2]["w"], p[2]["b"])
    z.retain_grad()
    loss = torch.nn.functional.cross_entropy(z, torch.tensor([target]))
    loss.backward()
    return loss.item(), z, p, xt


@pytest.mark.parametrize("scale", [1.0, 400.0, 5000.0, 1e5])
def test_huge_logit_gaps_give_the_finite_loss_and_gradients_of_torch(scale):
    net = _net(scale)
    x = np.random.default_rng(1).uniform(0, 255, size=(1, 4, 4))
    z = net.forward(x[None])[1][2].z[0]
    target = int(np.argmin(z))  # the least likely class: its probability underflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # D4: no overflow/divide warning
        tr = net.trace(x, target)
    gap = float(z.max() - z[target])
    tloss, tz, tp, tx = _torch(net, x, target)
    assert math.isfinite(tr.loss)
    assert tr.loss == pytest.approx(tloss, rel=1e-12)
    if scale >= 5000:
        assert gap > 710 and tr.output[target] == 0.0  # the probability really underflowed
    d = tr.to_dict()["layers"]
    np.testing.assert_allclose(d[2]["backward"]["dC_dz"], tz.grad.numpy()[0], rtol=0, atol=1e-12)
    for i in (0, 2):
        for k in ("w", "b"):
            g = d[i]["backward"][f"dC_d{k}"]
            assert np.all(np.isfinite(g))
            np.testing.assert_allclose(g, tp[i][k].grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(d[0]["backward"]["dC_da_prev"], tx.grad.numpy()[0], atol=1e-9)
    # dC/da of the softmax output: -y/a, -inf where a underflowed, 0 off the target
    da = d[2]["backward"]["dC_da"]
    off = np.arange(3) != target
    assert np.all(da[off] == 0.0)
    if tr.output[target] == 0.0:
        assert da[target] == -np.inf
    else:
        assert da[target] == pytest.approx(-1 / tr.output[target])


def test_a_loss_that_rounds_to_zero_is_positive_zero():
    net = _net(5000.0)
    x = np.random.default_rng(1).uniform(0, 255, size=(1, 4, 4))
    z = net.forward(x[None])[1][2].z[0]
    tr = net.trace(x, int(np.argmax(z)))
    assert tr.loss == 0.0 and math.copysign(1.0, tr.loss) == 1.0
    assert "-0.0" not in repr(tr.loss)
