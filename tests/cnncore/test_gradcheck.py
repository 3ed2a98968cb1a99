"""Whole small networks: the engine's analytic gradients vs central finite differences (float64),
and the whole per-layer trace vs PyTorch autograd on the same network built in torch.

Every layer type and every activation is covered (identity, relu, sigmoid, tanh, softmax with
cross_entropy and with mse), with dC/dw and dC/db of every layer and dC/dx of the input.
ReLU and max-pool have kinks; each case asserts its point is at least KINK_MARGIN away from one
(|z| for relu, the gap between a window's two largest values for max-pool, unless both are
exact relu zeros), so that a finite difference of step EPS never crosses one.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from cnncore import functional as F  # noqa: N812
from cnncore.network import Network
from tests.torch_oracle import torch_trace

EPS = 1e-6
REL_TOL = 1e-7
FLOOR = 1e-6  # denominator floor, so all-zero gradients compare on an absolute scale
KINK_MARGIN = 1e-3


def _geometry(name: str, act: str, out_act: str) -> list[dict]:
    if name == "strided":
        return [
            {
                "type": "conv2d",
                "out_channels": 3,
                "kernel_size": 3,
                "stride": 2,
                "padding": 1,
                "activation": act,
            },
            {"type": "maxpool2d", "kernel_size": 2, "stride": 1, "padding": 1},
            {"type": "conv2d", "out_channels": 2, "kernel_size": [2, 3], "activation": act},
            {"type": "avgpool2d", "kernel_size": 2, "stride": 2, "padding": 1},
            {"type": "flatten"},
            {"type": "dense", "units": 5, "activation": act},
            {"type": "dense", "units": 3, "activation": out_act},
        ]
    # "even": even kernels, padding 2, stride 2 with an uncovered border, default pool stride
    return [
        {
            "type": "conv2d",
            "out_channels": 2,
            "kernel_size": 2,
            "stride": 1,
            "padding": 2,
            "activation": act,
        },
        {"type": "avgpool2d", "kernel_size": 3, "stride": 2},
        {"type": "conv2d", "out_channels": 3, "kernel_size": 2, "stride": 2, "activation": act},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 3, "activation": out_act},
    ]


CASES = [
    # (geometry, hidden activation, output activation, loss)
    ("strided", "identity", "identity", "mse"),
    ("strided", "relu", "relu", "mse"),
    ("strided", "sigmoid", "sigmoid", "mse"),
    ("strided", "tanh", "tanh", "mse"),
    ("strided", "tanh", "softmax", "cross_entropy"),
    ("strided", "sigmoid", "softmax", "mse"),
    ("even", "relu", "softmax", "cross_entropy"),
    ("even", "tanh", "identity", "mse"),
    ("even", "identity", "softmax", "mse"),
]
INPUT_SHAPE = [2, 9, 8]


def _spec(geometry, act, out_act, loss):
    return {"input_shape": INPUT_SHAPE, "layers": _geometry(geometry, act, out_act), "loss": loss}


def _target(net, rng):
    if net.loss_name == "cross_entropy":
        return int(rng.integers(net.spec["output_shape"][0]))
    return rng.uniform(0.0, 1.0, size=net.spec["output_shape"])


def _far_from_kinks(net, x) -> bool:
    _, records = net.forward(x[None])
    for layer, rec in zip(net.layers, records, strict=True):
        if layer.activation == "relu" and np.min(np.abs(rec.z)) <= KINK_MARGIN:
            return False
        if layer.type == "maxpool2d":
            k, s, p = layer.args
            padded = F.pad_nchw(rec.a_prev, p, -np.inf)
            win = sliding_window_view(padded, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]
            top2 = np.sort(win.reshape(*win.shape[:4], -1), axis=-1)[..., -2:]
            gap = top2[..., 1] - top2[..., 0]
            # Exact zeros from a relu stay exactly zero (|z| > KINK_MARGIN): a stable tie.
            stable_tie = (top2[..., 1] == 0.0) & (top2[..., 0] == 0.0)
            if np.any((gap <= KINK_MARGIN) & ~stable_tie):
                return False
    return True


def _all_gradients_alive(net, x, target) -> bool:
    """Skip points where dead relus zero a whole gradient: the check would be vacuous there."""
    trace = net.trace(x, target)
    return all(
        np.max(np.abs(g)) > 1e-4
        for rec in trace.records
        for g in (rec.dC_dw, rec.dC_db, rec.dC_da_prev)
        if g is not None
    )


def _case(geometry, act, out_act, loss):
    """A network, an input and a target at a point without kinks (first seed that works)."""
    spec = _spec(geometry, act, out_act, loss)
    for seed in range(50):
        net = Network.from_spec(spec, seed=seed)
        rng = np.random.default_rng(seed)
        for layer in net.layers:  # non-zero biases, so db and the relu pattern are exercised
            if "b" in layer.params:
                layer.params["b"] = rng.normal(0, 0.3, size=layer.params["b"].shape)
        x = rng.normal(size=INPUT_SHAPE)
        target = _target(net, rng)
        if _far_from_kinks(net, x) and _all_gradients_alive(net, x, target):
            return net, x, target
    raise AssertionError("no kink-free point found")  # pragma: no cover


def _cost(net, x, y) -> float:
    """C of one sample, from the definitions (not the engine's loss code)."""
    a, _ = net.forward(x[None])
    a = a[0]
    if net.loss_name == "mse":
        return 0.5 * float(np.sum((a - y) ** 2))
    return -float(np.sum(y * np.log(a)))


def _numeric_grad(f, arr):
    """Central differences of f() with respect to every entry of `arr`, perturbed in place."""
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        plus = f()
        arr[idx] = old - EPS
        minus = f()
        arr[idx] = old
        grad[idx] = (plus - minus) / (2 * EPS)
    return grad


def _rel_error(analytic, numeric) -> float:
    denom = max(float(np.max(np.abs(analytic) + np.abs(numeric))), FLOOR)
    return float(np.max(np.abs(analytic - numeric))) / denom


@pytest.mark.parametrize("geometry,act,out_act,loss", CASES)
def test_gradients_match_finite_differences(geometry, act, out_act, loss):
    net, x, target = _case(geometry, act, out_act, loss)
    trace = net.trace(x, target)
    y = trace.target
    checked = 0
    for i, (layer, rec) in enumerate(zip(trace.layers, trace.records, strict=True)):
        for key, analytic in (("w", rec.dC_dw), ("b", rec.dC_db)):
            if key not in layer.params:
                assert analytic is None
                continue
            numeric = _numeric_grad(lambda: _cost(net, x, y), layer.params[key])
            assert np.max(np.abs(numeric)) > 1e-6, f"layer {i} d{key} is trivially zero"
            err = _rel_error(analytic, numeric)
            assert err < REL_TOL, f"layer {i} ({layer.type}) dC/d{key}: rel error {err:.2e}"
            checked += 1
    x_work = x.copy()
    numeric_dx = _numeric_grad(lambda: _cost(net, x_work, y), x_work)
    err = _rel_error(trace.records[0].dC_da_prev[0], numeric_dx)
    assert err < REL_TOL, f"dC/dx: rel error {err:.2e}"
    assert checked == 2 * sum(1 for layer in net.layers if layer.params)
    # the loss the trace reports is the cost being differentiated
    assert trace.loss == pytest.approx(_cost(net, x, y), rel=1e-12)


def test_finite_differences_catch_a_wrong_gradient():
    """The checker itself can fail: a gradient off by 0.1% is far above the tolerance."""
    net, x, target = _case("strided", "tanh", "softmax", "cross_entropy")
    trace = net.trace(x, target)
    numeric = _numeric_grad(lambda: _cost(net, x, trace.target), net.layers[0].params["w"])
    assert _rel_error(trace.records[0].dC_dw, numeric) < REL_TOL
    assert _rel_error(trace.records[0].dC_dw * 1.001, numeric) > REL_TOL


# --------------------------------------------------------------------------- vs PyTorch


@pytest.mark.parametrize("geometry,act,out_act,loss", CASES)
def test_trace_matches_torch_autograd(geometry, act, out_act, loss):
    net, x, target = _case(geometry, act, out_act, loss)
    trace = net.trace(x, target).to_dict()
    tloss, tlayers = torch_trace(net, x, trace["target"])
    assert trace["loss"] == pytest.approx(tloss, rel=1e-10, abs=1e-12)
    for i, (mine, theirs) in enumerate(zip(trace["layers"], tlayers, strict=True)):
        got = {**mine["forward"], **mine["backward"]}
        for key, want in theirs.items():
            what = f"layer {i} ({mine['type']}) {key}"
            if want is None:
                assert got[key] is None, what
                continue
            assert got[key].shape == want.shape, f"{what}: shape {got[key].shape} != {want.shape}"
            np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-10, err_msg=what)


def test_trace_matches_torch_at_kinks():
    """Exactly at the kinks, the engine follows PyTorch: relu'(0) = 0, and a max-pool window of
    tied values (here the zeros of dead relus, and a constant input) sends its gradient to the
    first one. Finite differences cannot check these points; PyTorch can."""
    spec = {
        "input_shape": [2, 6, 6],
        "layers": [
            {
                "type": "conv2d",
                "out_channels": 3,
                "kernel_size": 3,
                "padding": 1,
                "activation": "relu",
            },
            {"type": "maxpool2d", "kernel_size": 2, "stride": 1},
            {"type": "flatten"},
            {"type": "dense", "units": 4, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
        "loss": "cross_entropy",
    }
    net = Network.from_spec(spec, seed=3)
    rng = np.random.default_rng(3)
    w0 = net.layers[0].params["w"]
    w0[0] = 0.0  # filter 0: z = 0 exactly everywhere (bias 0)
    w0[1, :, :, :] = 0.0
    w0[1, 0, 1, 1] = 1.0  # filter 1: z = x channel 0; on a constant patch, tied maxima
    net.layers[3].params["w"][0] = 0.0  # unit 0 of the hidden dense layer: z = 0 exactly
    x = rng.normal(size=(2, 6, 6))
    x[0, :3, :3] = 0.7
    trace = net.trace(x, 2).to_dict()
    z0 = trace["layers"][0]["forward"]["z"]
    assert np.all(z0[0] == 0.0) and trace["layers"][3]["forward"]["z"][0] == 0.0
    _, tlayers = torch_trace(net, x, trace["target"])
    for i, (mine, theirs) in enumerate(zip(trace["layers"], tlayers, strict=True)):
        for key in ("dC_dz", "dC_da_prev", "dC_dw"):
            if theirs[key] is not None:
                np.testing.assert_allclose(
                    mine["backward"][key], theirs[key], rtol=0, atol=1e-12, err_msg=f"{i} {key}"
                )
    # the gradient really passed through the tied windows: some, not all, tied cells got it
    d_a0 = trace["layers"][1]["backward"]["dC_da_prev"][1, :3, :3]
    assert np.count_nonzero(d_a0) >= 1 and np.count_nonzero(d_a0) < 9
