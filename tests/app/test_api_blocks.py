"""POST /api/trace with residual and concat blocks: traces equal the engine's (nested entries
and the split included), params in the flat or nested form, and a 4xx naming the field for
every bad block spec."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cnncore import Network
from tests.app.api_helpers import assert_error

RES = {
    "input_shape": [1, 6, 6],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1, "activation": "relu"},
        {
            "type": "residual",
            "layers": [
                {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2,
                 "padding": 1, "activation": "relu"},
                {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
            ],
            "activation": "relu",
            "projection": {"type": "conv2d", "kernel_size": 1, "stride": 2},
        },
        {
            "type": "concat",
            "branches": [
                [{"type": "conv2d", "out_channels": 1, "kernel_size": 1}],
                [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}],
            ],
        },
        {"type": "flatten"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ],
}  # fmt: skip
X = np.random.default_rng(0).normal(size=(6, 6)).round(2).tolist()


def _same(got, want) -> None:
    if isinstance(want, np.ndarray):
        np.testing.assert_allclose(np.array(got, dtype=float), want, rtol=0, atol=0)
    elif isinstance(want, dict):
        assert set(got) >= set(want), set(want) - set(got)
        for k, v in want.items():
            _same(got[k], v)
    elif isinstance(want, list | tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _same(g, w)
    else:
        assert got == want


def test_block_trace_equals_the_engine(client):
    r = client.post("/api/trace", json={"network": RES, "seed": 3, "input": X, "target": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    net = Network.from_spec(RES, seed=3)
    want = net.trace(np.array(X)[None], 1).to_dict()
    assert body["loss"] == want["loss"]
    res, cat = body["layers"][1], body["layers"][2]
    for got, exp in ((res, want["layers"][1]), (cat, want["layers"][2])):
        for key in ("split", "layers", "projection", "branches", "channels"):
            if key in exp:
                _same(got[key], exp[key])
        _same(got["forward"], exp["forward"])
        _same(got["backward"], exp["backward"])
    sp = res["split"]
    assert np.array_equal(
        np.array(res["backward"]["dC_da_prev"]),
        np.array(sp["dC_da_prev_path"]) + np.array(sp["dC_da_prev_skip"]),
    )
    assert cat["channels"] == [[0, 1], [1, 4]]


def test_block_params_round_trip_flat_and_nested(client):
    net = Network.from_spec(RES, seed=5)
    flat = [{k: v.tolist() for k, v in p.items()} for p in net.params]
    nested = copy.deepcopy(flat)
    res = flat[1]
    nested[1] = {
        "layers": [
            {"w": res["layers.0.w"], "b": res["layers.0.b"]},
            {"w": res["layers.1.w"], "b": res["layers.1.b"]},
        ],
        "projection": {"w": res["projection.w"], "b": res["projection.b"]},
    }
    bodies = [
        client.post(
            "/api/trace",
            json={"network": RES, "params": p, "input": X, "target": 2, "learning_rate": 0.1},
        )
        for p in (flat, nested)
    ]
    for r in bodies:
        assert r.status_code == 200, r.text
    a, b = (r.json() for r in bodies)
    assert a["loss"] == b["loss"] == net.trace(np.array(X)[None], 2).loss
    assert set(a["updated_params"][1]) == set(res)
    assert a["updated_params"] == b["updated_params"]


def _bad(**change):
    spec = copy.deepcopy(RES)
    for path, value in change.items():
        *head, last = path.split("__")
        node = spec
        for k in head:
            node = node[int(k)] if k.isdigit() else node[k]
        if value is None and last.isdigit():
            node.pop(int(last))
        elif value == "<del>":
            node.pop(last)
        else:
            node[int(last) if last.isdigit() else last] = value
    return spec


BAD = [
    pytest.param(
        _bad(layers__1__projection=None),
        ["layers", 1, "projection"],
        "projection",
        id="missing-projection",
    ),
    pytest.param(
        _bad(layers__1__projection={"type": "conv2d", "kernel_size": 1}),
        ["layers", 1, "projection"],
        "F gives 3×3×3",
        id="projection-wrong-stride",
    ),
    pytest.param(
        _bad(layers__1__layers=[]),
        ["layers", 1, "layers"],
        "non-empty",
        id="empty-layers",
    ),
    pytest.param(
        _bad(layers__1__layers__1__activation="relu"),
        ["layers", 1, "layers", 1, "activation"],
        "no activation",
        id="F-last-activation",
    ),
    pytest.param(
        _bad(layers__1__layers__0__kernel_size=9),
        ["layers", 1, "layers", 0, "kernel_size"],
        "layers[0]",
        id="inner-kernel-too-large",
    ),
    pytest.param(
        _bad(layers__1__activation="softmax"),
        ["layers", 1, "activation"],
        "softmax",
        id="block-softmax",
    ),
    pytest.param(
        _bad(layers__1__projection="yes"),
        ["layers", 1, "projection"],
        "null or a conv2d",
        id="projection-not-object",
    ),
    pytest.param(
        _bad(layers__2__branches__1=[{"type": "maxpool2d", "kernel_size": 2}]),
        ["layers", 2, "branches", 1],
        "branch 1 gives 3×1×1",
        id="concat-spatial-mismatch",
    ),
    pytest.param(
        _bad(layers__2__branches=[]),
        ["layers", 2, "branches"],
        "non-empty",
        id="concat-empty",
    ),
    pytest.param(
        _bad(layers__2__branches__0=[{"type": "conv2d", "out_channels": 1}]),
        ["layers", 2, "branches", 0, 0, "kernel_size"],
        "kernel_size",
        id="concat-inner-missing-field",
    ),
    pytest.param(
        _bad(layers__2__extra=1),
        ["layers", 2, "extra"],
        "unknown key",
        id="unknown-block-key",
    ),
    pytest.param(
        _bad(layers__1__layers__0__out_channels=10_000),
        ["layers", 1, "layers", 0, "out_channels"],
        "over the cap",
        id="inner-channel-cap",
    ),
]


@pytest.mark.parametrize("spec,loc,words", BAD)
def test_bad_block_specs_are_4xx_naming_the_field(client, spec, loc, words):
    r = client.post("/api/trace", json={"network": spec, "input": X, "target": 0})
    item = assert_error(r, 422, "body", "network", *loc)
    assert words in item["msg"], item["msg"]


def test_deep_or_huge_nesting_is_refused_cheaply(client):
    layer = {"type": "conv2d", "out_channels": 1, "kernel_size": 1}
    for _ in range(40):
        layer = {"type": "residual", "layers": [layer], "activation": "identity"}
    spec = {"input_shape": [1, 6, 6], "layers": [layer], "loss": "mse"}
    r = client.post("/api/trace", json={"network": spec, "input": X, "target": [0] * 36})
    item = assert_error(r, 422, "body", "network", "layers")
    assert "over the cap" in item["msg"]


def test_bad_block_params_name_the_layer(client):
    net = Network.from_spec(RES, seed=5)
    params = [{k: v.tolist() for k, v in p.items()} for p in net.params]
    params[1].pop("projection.w")
    r = client.post("/api/trace", json={"network": RES, "params": params, "input": X, "target": 0})
    item = assert_error(r, 422, "body", "params", 1)
    assert "projection.w" in item["msg"]
