"""POST /api/learn on the residual-block and inception-branches worked examples (block params
are flat dotted dicts such as `layers.0.w`), and the finiteness check of a trace's nested block
entries: a non-finite number anywhere in what would be returned is a 422, never sent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.errors import ApiError
from app.services.selection import Selection, apply
from cnncore import Network, scenarios


@pytest.mark.parametrize("sid", ["residual-block", "inception-branches"])
def test_learn_one_step_on_a_block_example_lowers_the_loss(client, sid):
    sc = client.get(f"/api/scenarios/{sid}").json()
    body = {
        "network": sc["spec"],
        "params": sc["params"],
        "input": sc["input"],
        "target": sc["target"],
    }
    r = client.post(
        "/api/learn", json={**body, "learning_rate": 0.01, "include": ["updated_params"]}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["loss_after"] < out["loss_before"]
    # the block's updated params are its flat dotted names, each moved by -lr * dC/dθ
    net = Network.from_spec(sc["spec"], params=sc["params"])
    tr = net.trace(np.asarray(sc["input"], dtype=np.float64), sc["target"])
    blocks = [i for i, l in enumerate(sc["spec"]["layers"]) if l["type"] in ("residual", "concat")]
    assert blocks
    for i in blocks:
        grads = tr.records[i].grads()
        assert any(k.endswith(".w") for k in grads)
        for k, g in grads.items():
            want = np.asarray(sc["params"][i][k]) - 0.01 * g
            np.testing.assert_allclose(
                np.asarray(out["updated_params"][i][k]), want, rtol=0, atol=1e-12
            )
    assert math.isclose(out["loss_before"], tr.loss, rel_tol=1e-12)


def _block_trace(sid: str):
    return None, scenarios.get(sid).trace().to_dict()


def _sel(**kw):
    class Req:
        include = kw.get("include")
        layers = None
        every_layer = None
        exclude = None
        dedupe = False

    return Selection.of(Req)


def _block_index(out):
    return next(i for i, l in enumerate(out["layers"]) if "layers" in l or "branches" in l)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("sid", ["residual-block", "inception-branches"])
def test_a_non_finite_number_inside_a_block_entry_is_refused(sid, bad):
    _, out = _block_trace(sid)
    assert apply(out, _sel(), "base64", False)  # the real trace passes
    b = _block_index(out)
    for part, key in [("backward", "dC_dw"), ("forward", "z"), ("params", "w")]:
        _, out = _block_trace(sid)
        blk = out["layers"][b]
        inner = blk["layers"][0] if "layers" in blk else blk["branches"][0][0]
        arr = np.array(inner[part][key], dtype=np.float64, copy=True)
        arr.reshape(-1)[0] = bad
        inner[part][key] = arr
        for enc in ("json", "base64"):
            with pytest.raises(ApiError) as e:
                apply(out, _sel(), enc, False)
            assert e.value.loc == ("body",)


def test_a_non_finite_number_in_a_block_split_is_refused():
    _, out = _block_trace("residual-block")
    b = _block_index(out)
    f = np.array(out["layers"][b]["split"]["f"], dtype=np.float64, copy=True)
    f.reshape(-1)[-1] = np.inf
    out["layers"][b]["split"]["f"] = f
    with pytest.raises(ApiError):
        apply(out, _sel(), "base64", False)
