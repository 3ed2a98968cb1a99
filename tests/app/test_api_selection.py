"""POST /api/trace's selection (include, layers, every_layer, exclude, dedupe, norms), POST
/api/learn, the D1 edge case (softmax underflow), request gzip, and HTTP caching."""

from __future__ import annotations

import base64
import gzip

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from api_helpers import SCENARIO_1, TINY_SPEC, assert_error

from cnncore import models

_CODES = {"float64": "<f8", "int64": "<i8"}


def decode(d):
    if isinstance(d, dict) and set(d) == {"dtype", "shape", "data"}:
        return np.frombuffer(base64.b64decode(d["data"]), _CODES[d["dtype"]]).reshape(d["shape"])
    return np.asarray(d, dtype=np.float64)


def encode(a) -> dict:
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"dtype": "float64", "shape": list(a.shape), "data": base64.b64encode(a).decode()}


@pytest.fixture(scope="module")
def digit_body(tiny_models_dir):
    x = np.random.default_rng(3).random((28, 28))
    return {"model": "digits", "input": x.tolist(), "target": 4}


def test_default_is_complete_and_has_norms(client, digit_body):
    r = client.post("/api/trace", json=digit_body)
    assert r.status_code == 200, r.text
    tr = r.json()
    for layer in tr["layers"]:
        assert set(layer["forward"]) == {"a_prev", "z", "a"}
        assert set(layer["backward"]) == {"dC_da", "dC_dz", "dC_db", "dC_dw", "dC_da_prev"}
        assert "omitted" not in layer
        a = np.asarray(layer["forward"]["a"])
        assert layer["norms"]["a"] == pytest.approx(np.linalg.norm(a.ravel()), rel=1e-14)
        g = np.asarray(layer["backward"]["dC_da"])
        assert layer["norms"]["dC_da"] == pytest.approx(np.linalg.norm(g.ravel()), rel=1e-14)
        dw = layer["backward"]["dC_dw"]
        if dw is None:
            assert layer["norms"]["dC_dw"] is None
        else:
            want = np.linalg.norm(np.asarray(dw).ravel())
            assert layer["norms"]["dC_dw"] == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("encoding", ["json", "base64"])
def test_dedupe_omits_only_what_the_client_can_rebuild(client, digit_body, encoding):
    full = client.post("/api/trace", json={**digit_body, "encoding": encoding}).json()
    lean = client.post(
        "/api/trace", json={**digit_body, "encoding": encoding, "dedupe": True}
    ).json()
    x = np.asarray(digit_body["input"]).reshape(1, 28, 28)
    where = {"input": x}
    for i, layer in enumerate(lean["layers"]):
        for part in ("forward", "backward"):
            for k, v in layer[part].items():
                want = full["layers"][i][part][k]
                assert (v is None and want is None) or np.array_equal(decode(v), decode(want))
        assert layer["omitted"]["a_prev"] == ("input" if i == 0 else f"layers[{i - 1}].forward.a")
        for key, ref in layer["omitted"].items():
            part = "forward" if key in ("a_prev", "z", "a") else "backward"
            if ref == "input":
                got = where["input"]
            else:
                j, rpart, rkey = ref[len("layers[") :].replace("].", ".").split(".")
                got = decode(lean["layers"][int(j)][rpart][rkey])
            want = decode(full["layers"][i][part][key])
            assert got.reshape(want.shape).tobytes() == want.tobytes(), (i, key)
    # the conv layer's relu changes z; max-pool and flatten repeat a as z
    kinds = [layer["type"] for layer in lean["layers"]]
    assert "z" not in lean["layers"][kinds.index("conv2d")]["omitted"]
    assert lean["layers"][kinds.index("maxpool2d")]["omitted"]["z"].endswith(".forward.a")
    assert len(lean["layers"][-1]["backward"]) < 5
    assert len(r := client.post("/api/trace", json=digit_body).content) > 0
    assert len(client.post("/api/trace", json={**digit_body, "dedupe": True}).content) < len(r)


def test_include_layers_every_layer_exclude(client, digit_body):
    body = {
        **digit_body,
        "include": ["forward", "backward", "argmax"],
        "layers": [1],
        "every_layer": ["a", "dC_da"],
        "exclude": ["dC_dz"],
    }
    tr = client.post("/api/trace", json=body).json()
    full = client.post("/api/trace", json=digit_body).json()
    assert tr["loss"] == full["loss"] and tr["output"] == full["output"]
    for i, layer in enumerate(tr["layers"]):
        assert "params" not in layer
        assert layer["norms"] == full["layers"][i]["norms"]
        if i == 1:
            assert set(layer["forward"]) == {"a_prev", "z", "a"}
            assert set(layer["backward"]) == {"dC_da", "dC_db", "dC_dw", "dC_da_prev"}
            assert layer["argmax"] == full["layers"][1]["argmax"]
        else:
            assert set(layer["forward"]) == {"a"} and set(layer["backward"]) == {"dC_da"}
            assert "argmax" not in layer
        assert layer["forward"]["a"] == full["layers"][i]["forward"]["a"]
    # only the norms
    tr = client.post("/api/trace", json={"scenario": SCENARIO_1, "include": []}).json()
    assert all(
        set(x) == {"index", "type", "input_shape", "output_shape", "norms"} for x in tr["layers"]
    )


@pytest.mark.parametrize(
    "extra,loc",
    [
        ({"layers": [7]}, ("body", "layers")),
        ({"layers": [-1]}, ("body", "layers")),
        ({"include": ["everything"]}, ("body", "include")),
        ({"every_layer": ["q"]}, ("body", "every_layer")),
        ({"dedupe": "yes"}, ("body", "dedupe")),
        ({"layers": [True]}, ("body", "layers")),
    ],
)
def test_bad_selection_names_the_field(client, extra, loc):
    r = client.post("/api/trace", json={"scenario": SCENARIO_1, **extra})
    assert_error(r, 422, *loc)


# ------------------------------------------------------------------ D1: softmax underflow
UNDERFLOW_SPEC = {
    "input_shape": [1, 1, 1],
    "layers": [{"type": "flatten"}, {"type": "dense", "units": 2, "activation": "softmax"}],
}
UNDERFLOW = {
    "network": UNDERFLOW_SPEC,
    "params": [{}, {"w": [[1e6], [-1e6]], "b": [0, 0]}],
    "input": [[[1e6]]],
    "target": 1,
}


@pytest.mark.parametrize("encoding", ["json", "base64"])
def test_softmax_underflow_is_a_trace_equal_to_pytorch(client, encoding):
    """Logits ±1e12: the target's probability underflows to 0, yet the loss (log-softmax) and
    every gradient backpropagation uses are finite and equal PyTorch's. dC/da of the softmax
    output is -inf by definition: sent as float64 with base64, left out and explained with
    JSON. Never a NaN or Infinity in JSON."""
    r = client.post("/api/trace", json={**UNDERFLOW, "encoding": encoding})
    assert r.status_code == 200, r.text
    assert b"NaN" not in r.content and b"Infinity" not in r.content
    tr = r.json()
    w = torch.tensor([[1e6], [-1e6]], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[1e6]], dtype=torch.float64, requires_grad=True)
    z = x @ w.T + b
    z.retain_grad()
    loss = F.cross_entropy(z, torch.tensor([1]))
    loss.backward()
    assert tr["loss"] == loss.item() == 2e12
    last = tr["layers"][1]
    assert np.array_equal(decode(last["backward"]["dC_dz"]), z.grad[0].numpy())
    assert np.array_equal(decode(last["backward"]["dC_dw"]), w.grad.numpy())
    assert np.array_equal(decode(last["backward"]["dC_db"]), b.grad.numpy())
    assert np.array_equal(decode(last["backward"]["dC_da_prev"]), x.grad[0].numpy())
    assert "underflow" in last["nonfinite"]["dC_da"]
    assert last["norms"]["dC_da"] is None
    if encoding == "json":
        assert "dC_da" not in last["backward"]
    else:
        got = decode(last["backward"]["dC_da"])
        assert got[1] == -np.inf and got[0] == 0.0  # -y/a: -1/0 for the target, 0 elsewhere


def test_softmax_underflow_learns(client):
    r = client.post("/api/learn", json={**UNDERFLOW, "learning_rate": 1e-12})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["loss_before"] == 2e12 and out["loss_after"] < out["loss_before"]


def test_a_returned_non_finite_number_is_a_422():
    """Any other non-finite number that would be returned is refused (not sent as null)."""
    from app.errors import ApiError
    from app.services.selection import PARTS, Selection, apply

    layer = {
        "index": 0,
        "type": "dense",
        "input_shape": [1],
        "output_shape": [1],
        "params": {"w": np.ones((1, 1)), "b": np.zeros(1)},
        "forward": {"a_prev": np.ones(1), "z": np.array([np.inf]), "a": np.array([np.inf])},
        "backward": {k: np.zeros(1) for k in ("dC_da", "dC_dz", "dC_db", "dC_da_prev")}
        | {"dC_dw": np.zeros((1, 1))},
    }
    out = {"network": {}, "loss": 1.0, "output": np.ones(1), "target": np.ones(1)}
    sel = Selection(frozenset(PARTS), None, frozenset(), frozenset(), False)
    with pytest.raises(ApiError, match="overflow"):
        apply({**out, "layers": [layer]}, sel, "base64", softmax_ce=True)
    # not returned (only backward asked for): no refusal
    sel = Selection(frozenset({"backward"}), None, frozenset(), frozenset(), False)
    assert apply({**out, "layers": [layer]}, sel, "json", softmax_ce=True)["layers"][0]["norms"]


# ------------------------------------------------------------------ POST /api/learn
def test_learn_equals_trace_with_learning_rate(client, digit_body, tiny_models_dir):
    lr = 0.05
    old = client.post("/api/trace", json={**digit_body, "learning_rate": lr}).json()
    r = client.post(
        "/api/learn",
        json={**digit_body, "learning_rate": lr, "encoding": "base64", "dedupe": True},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["loss_before"] == old["loss"]
    assert out["loss_after"] == old["loss_after"] == out["trace"]["loss"]
    assert out["prediction_before"] == old["prediction"]
    assert np.array_equal(decode(out["output_before"]), old["output"])
    for got, want in zip(out["updated_params"], old["updated_params"], strict=True):
        assert set(got) == set(want)
        for k in got:
            assert decode(got[k]).tobytes() == np.asarray(want[k], dtype="<f8").tobytes()
    # the trace after the step is the trace of the updated parameters
    net, _ = models.load_file(tiny_models_dir / "digits")
    after = client.post(
        "/api/trace",
        json={
            "network": out["trace"]["network"],
            "params": out["updated_params"],  # base64, exactly as received
            "input": digit_body["input"],
            "target": digit_body["target"],
        },
    ).json()
    assert after["loss"] == out["loss_after"]
    assert out["prediction_after"] == after["prediction"]
    assert len(net.layers) == len(out["trace"]["layers"])


def test_learn_from_base64_params_gzip_body(client, digit_body, tiny_models_dir):
    """The learner's weights travel up exact (base64) in a gzip-compressed body."""
    net, _ = models.load_file(tiny_models_dir / "digits")
    params = [{k: encode(v) for k, v in p.items()} for p in net.params]
    body = {
        "network": net.spec,
        "params": params,
        "input": digit_body["input"],
        "target": 4,
        "learning_rate": 0.1,
        "include": ["updated_params"],
    }
    import orjson

    raw = orjson.dumps(body)
    r = client.post(
        "/api/learn",
        content=gzip.compress(raw),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    ref = client.post("/api/learn", content=raw, headers={"content-type": "application/json"})
    assert r.content == ref.content
    named = client.post("/api/learn", json={**digit_body, "learning_rate": 0.1}).json()
    assert r.json()["loss_after"] == named["loss_after"]
    assert "layers" in r.json()["trace"] and "forward" not in r.json()["trace"]["layers"][0]


def test_gzip_bomb_and_bad_gzip_are_refused(client, settings):
    bomb = gzip.compress(b" " * (settings.max_body_bytes + 10))
    hdr = {"content-type": "application/json", "content-encoding": "gzip"}
    assert_error(client.post("/api/learn", content=bomb, headers=hdr), 413)
    assert_error(client.post("/api/learn", content=b"not gzip", headers=hdr), 400)
    hdr["content-encoding"] = "br"
    assert_error(client.post("/api/learn", content=b"{}", headers=hdr), 415)


@pytest.mark.parametrize(
    "bad,loc",
    [
        ({"dtype": "float32", "shape": [10], "data": ""}, ("dtype",)),
        ({"dtype": "float64", "shape": [9], "data": ""}, ("shape",)),
        ({"dtype": "float64", "shape": [10], "data": "AAAA"}, ("data",)),
        ({"dtype": "float64", "shape": [10], "data": "!" * 108}, ("data",)),
        # the right length, but its padding says 79 bytes (once a 500)
        ({"dtype": "float64", "shape": [10], "data": "A" * 106 + "=="}, ("data",)),
        (
            {"dtype": "float64", "shape": [10], "data": encode([np.inf] + [0] * 9)["data"]},
            ("data", 0),
        ),
        ({"dtype": "float64", "shape": [10]}, ()),
    ],
)
def test_bad_encoded_params_name_the_field(client, bad, loc):
    from cnncore import Network

    net = Network.from_spec(TINY_SPEC, seed=1)
    params = [{k: encode(v) for k, v in p.items()} for p in net.params]
    params[3]["b"] = bad
    body = {"network": TINY_SPEC, "params": params, "input": [[0.0] * 28] * 28, "target": 1}
    assert_error(client.post("/api/trace", json=body), 422, "body", "params", 3, "b", *loc)


def from_changes(d, base) -> np.ndarray:
    """`updated_params_as: "changes"`: `base` with `data`'s values where `changed` is set."""
    assert set(d) == {"dtype", "shape", "changed", "data"} and d["dtype"] == "float64"
    n = int(np.prod(d["shape"]))
    bits = np.frombuffer(base64.b64decode(d["changed"]), np.uint8)
    mask = np.unpackbits(bits, bitorder="little")[:n].astype(bool)
    out = np.array(base, dtype="<f8").reshape(-1)
    out[mask] = np.frombuffer(base64.b64decode(d["data"]), "<f8")
    return out.reshape(d["shape"])


def test_learned_params_travel_as_changes_exactly(client, digit_body, tiny_models_dir):
    """Issue 11: a step's updated_params as changes to the model's own (only what moved), sent
    back with "model" as received: the same numbers, bit for bit, as every value as base64
    with "network", over two steps."""
    net, _ = models.load_file(tiny_models_dir / "digits")
    lean = {"include": ["forward", "backward", "updated_params"], "encoding": "base64"}
    one = {**digit_body, "learning_rate": 0.05, **lean}
    full = client.post("/api/learn", json=one).json()
    r = client.post("/api/learn", json={**one, "updated_params_as": "changes"})
    assert r.status_code == 200, r.text
    ch = r.json()
    assert ch["trace"] == full["trace"] and ch["loss_after"] == full["loss_after"]
    moved = 0
    for got, want, own in zip(
        ch["updated_params"], full["updated_params"], net.params, strict=True
    ):
        assert set(got) == set(want) == set(own)
        for k in got:
            rebuilt = from_changes(got[k], own[k])
            assert rebuilt.tobytes() == decode(want[k]).tobytes()
            moved += len(base64.b64decode(got[k]["data"])) // 8
            unchanged = rebuilt.view("<u8") == np.asarray(own[k], "<f8").view("<u8")
            assert moved and len(base64.b64decode(got[k]["data"])) // 8 == (~unchanged).sum()
    assert 0 < moved < sum(v.size for p in net.params for v in p.values())
    # the second step: the changes sent back with "model" == every value with "network"
    two = {"input": digit_body["input"], "target": 2, "learning_rate": 0.1, **lean}
    a = client.post(
        "/api/learn",
        json={
            "model": "digits",
            "params": ch["updated_params"],
            **two,
            "updated_params_as": "changes",
        },
    )
    assert a.status_code == 200, a.text
    b = client.post(
        "/api/learn",
        json={"network": full["trace"]["network"], "params": full["updated_params"], **two},
    ).json()
    a = a.json()
    assert a["trace"] == b["trace"] and a["loss_before"] == b["loss_before"]
    assert a["output_before"] == b["output_before"] and a["loss_after"] == b["loss_after"]
    for got, want, own in zip(a["updated_params"], b["updated_params"], net.params, strict=True):
        for k in got:
            assert from_changes(got[k], own[k]).tobytes() == decode(want[k]).tobytes()
    # /api/trace takes them too (the page's later traces of the learned network)
    t = client.post(
        "/api/trace",
        json={
            "model": "digits",
            "params": ch["updated_params"],
            **digit_body,
            "encoding": "base64",
        },
    )
    assert t.status_code == 200, t.text
    assert t.json()["loss"] == full["loss_after"]


@pytest.mark.parametrize("target", [2, "predicted"])
def test_a_step_starting_where_the_last_ended_equals_a_fresh_one(client, digit_body, target):
    """The server keeps the last steps' end points (the gradients the trace after a step has
    already): the next step from there, a hit, answers the same bytes as with an empty cache
    (a miss: the forward and backward pass computed again), over three steps."""
    from app.services import trace as svc

    body = {
        "model": "digits",
        "input": digit_body["input"],
        "target": target,
        "learning_rate": 0.2,
        "include": ["forward", "backward", "argmax", "updated_params"],
        "layers": [0],
        "dedupe": True,
        "encoding": "base64",
        "updated_params_as": "changes",
    }
    svc._ENDS.clear()
    r = client.post("/api/learn", json=body)
    assert r.status_code == 200, r.text
    assert len(svc._ENDS) >= 1
    for _ in range(3):
        step = {**body, "params": r.json()["updated_params"]}
        x = np.asarray(body["input"], dtype=np.float64)
        key = svc._end_key("digits", svc.wire_key(step["params"]), x, target)
        assert key in svc._ENDS  # the next request is a hit
        hit = client.post("/api/learn", json=step)
        svc._ENDS.clear()
        miss = client.post("/api/learn", json=step)
        assert hit.status_code == miss.status_code == 200, hit.text
        assert hit.content == miss.content
        r = hit
    assert len(svc._ENDS) <= svc._ENDS_KEEP


@pytest.mark.parametrize(
    "change,loc",
    [
        ({"dtype": "float32"}, ("dtype",)),
        ({"shape": [9]}, ("shape",)),
        ({"changed": "AA=="}, ("changed",)),
        ({"changed": "!!!!"}, ("changed",)),
        ({"changed": "AAQ="}, ("changed",)),  # bit 10 of a 10-value array
        ({"data": ""}, ("data",)),
        ({"data": encode([np.inf])["data"]}, ("data", 0)),
        ({"data": encode([1e300])["data"]}, ("data", 0)),
        ({"extra": 1}, ()),
    ],
)
def test_bad_changes_name_the_field(client, digit_body, tiny_models_dir, change, loc):
    net, _ = models.load_file(tiny_models_dir / "digits")
    i = max(j for j, p in enumerate(net.params) if "b" in p)
    assert net.params[i]["b"].shape == (10,)
    good = {"dtype": "float64", "shape": [10], "changed": "AQA=", "data": encode([0.5])["data"]}
    params = [{k: encode(v) for k, v in p.items()} for p in net.params]
    params[i]["b"] = good
    body = {**digit_body, "params": params}
    assert client.post("/api/trace", json=body).status_code == 200
    params[i]["b"] = {**good, **change}
    assert_error(client.post("/api/trace", json=body), 422, "body", "params", i, "b", *loc)


def test_changes_need_a_model_and_base64(client, digit_body):
    r = client.post(
        "/api/learn", json={**digit_body, "learning_rate": 0.1, "updated_params_as": "changes"}
    )
    assert_error(r, 422, "body", "updated_params_as")
    spec = {"network": TINY_SPEC, "input": digit_body["input"], "target": 1, "encoding": "base64"}
    r = client.post(
        "/api/learn", json={**spec, "learning_rate": 0.1, "updated_params_as": "changes"}
    )
    assert_error(r, 422, "body", "updated_params_as")
    r = client.post("/api/trace", json={**digit_body, "seed": 3})
    assert_error(r, 422, "body", "seed")
    r = client.post("/api/trace", json={**digit_body, "params": [{}]})
    assert_error(r, 422, "body", "params")


def test_learn_requires_a_learning_rate_within_settings(client, digit_body, settings):
    assert_error(client.post("/api/learn", json=digit_body), 422, "body", "learning_rate")
    too_big = settings.max_learning_rate * 2
    r = client.post("/api/learn", json={**digit_body, "learning_rate": too_big})
    assert_error(r, 422, "body", "learning_rate")
    r = client.post("/api/trace", json={**digit_body, "learning_rate": too_big})
    assert_error(r, 422, "body", "learning_rate")


def test_settings_are_the_limits(tiny_models_dir, static_dir, digit_body):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    s = Settings(models_dir=tiny_models_dir, static_dir=static_dir, max_learning_rate=0.5)
    s = Settings(**{**s.__dict__, "max_seed": 5})
    c = TestClient(create_app(s))
    assert c.post("/api/learn", json={**digit_body, "learning_rate": 0.4}).status_code == 200
    assert_error(c.post("/api/learn", json={**digit_body, "learning_rate": 0.6}), 422)
    spec = {"network": TINY_SPEC, "input": digit_body["input"], "target": 1}
    assert c.post("/api/trace", json={**spec, "seed": 5}).status_code == 200
    assert_error(c.post("/api/trace", json={**spec, "seed": 6}), 422, "body", "seed")


# ------------------------------------------------------------------ HTTP caching
def test_model_etag_and_304(client):
    r = client.get("/api/models/digits")
    assert r.status_code == 200 and r.headers["etag"] and r.headers["cache-control"] == "no-cache"
    r2 = client.get("/api/models/digits", headers={"if-none-match": r.headers["etag"]})
    assert r2.status_code == 304 and r2.content == b"" and r2.headers["etag"] == r.headers["etag"]
    r3 = client.get("/api/models/digits", headers={"if-none-match": '"other"'})
    assert r3.status_code == 200
    b = client.get("/api/models/digits?encoding=base64")
    assert b.headers["etag"] != r.headers["etag"]
    for pj, pb in zip(r.json()["params"], b.json()["params"], strict=True):
        for k in pj:
            assert decode(pb[k]).tobytes() == np.asarray(pj[k], dtype="<f8").tobytes()


def test_static_files_versioned_and_revalidated(client, static_dir):
    from app.assets import scan

    version = scan(static_dir).version
    r = client.get(f"/static/{version}/hello.css")
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    r = client.get("/static/hello.css")
    assert r.headers["cache-control"] == "no-cache" and r.headers["etag"]
    r2 = client.get("/static/hello.css", headers={"if-none-match": r.headers["etag"]})
    assert r2.status_code == 304
    r = client.get("/static/v-000000000000/hello.css")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    assert client.get(f"/static/{version}/../hello.css").status_code in (200, 404)


def test_page_preloads_every_module():
    """The real page: one modulepreload per module under static/js, all versioned."""
    from pathlib import Path

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    s = Settings()
    html = TestClient(create_app(s)).get("/").text
    js = sorted(p.relative_to(s.static_dir).as_posix() for p in s.static_dir.rglob("*.js"))
    assert js
    for m in js:
        assert 'rel="modulepreload" href="/static/v-' in html
        assert f'/{m}"' in html, m
    assert "/static/js/" not in html
    assert Path(s.static_dir).is_dir()


@pytest.mark.parametrize("path", ["/api/models", "/api/scenarios", "/api/scenarios/conv-dense"])
def test_get_answers_have_etags(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["etag"] and r.headers["cache-control"] == "no-cache"
    r2 = client.get(path, headers={"if-none-match": r.headers["etag"]})
    assert r2.status_code == 304 and r2.content == b""
    assert r2.headers["x-content-type-options"] == "nosniff"
    r3 = client.get(path, headers={"if-none-match": '"stale"', "accept-encoding": "gzip"})
    assert r3.status_code == 200 and r3.json() == r.json()
    assert client.get("/api/scenarios/nope").status_code == 404
    assert "etag" not in client.get("/api/scenarios/nope").headers
