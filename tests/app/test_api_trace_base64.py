"""POST /api/trace with `"encoding": "base64"`: the same response as the default JSON, with
every array as {dtype, shape, data}, and the same float64 values bit for bit."""

from __future__ import annotations

import base64
import copy

import numpy as np
import pytest
from api_helpers import SCENARIO_1, SMALL, SMALL_INPUT, SMALL_PARAMS, assert_error

from cnncore import Network, models

_CODES = {"float64": "<f8", "int64": "<i8"}


def decode(d: dict) -> np.ndarray:
    """The documented recipe."""
    return np.frombuffer(base64.b64decode(d["data"]), _CODES[d["dtype"]]).reshape(d["shape"])


def is_encoded(v) -> bool:
    return isinstance(v, dict) and set(v) == {"dtype", "shape", "data"}


def assert_same_values(js, b64, path="") -> int:
    """`b64` is `js` with every array encoded: same keys, same scalars, and each decoded array
    has the bytes of the JSON array read as float64 (int64 for argmax). Returns how many
    arrays were compared."""
    if is_encoded(b64):
        assert isinstance(js, list), path
        got = decode(b64)
        want = np.array(js, dtype=got.dtype)
        assert got.shape == want.shape, path
        assert np.array_equal(got, want), path
        assert got.tobytes() == np.ascontiguousarray(want, dtype=got.dtype).tobytes(), path
        assert (b64["dtype"] == "int64") == path.endswith("argmax"), path
        return 1
    if isinstance(js, dict):
        assert isinstance(b64, dict) and list(b64) == list(js), path
        return sum(assert_same_values(js[k], b64[k], f"{path}.{k}") for k in js)
    if isinstance(js, list) and path.endswith("network.layers"):
        return sum(
            assert_same_values(a, b, f"{path}[{i}]")
            for i, (a, b) in enumerate(zip(js, b64, strict=True))
        )
    if isinstance(js, list) and path.endswith(("layers", "updated_params")):
        assert isinstance(b64, list) and len(b64) == len(js), path
        return sum(
            assert_same_values(a, b, f"{path}[{i}]")
            for i, (a, b) in enumerate(zip(js, b64, strict=True))
        )
    # scalars and the network spec (shapes are lists of ints, not arrays): unchanged
    assert type(b64) is type(js) and b64 == js, path
    return 0


def both(client, body: dict) -> tuple[dict, dict]:
    rj = client.post("/api/trace", json=body)
    rb = client.post("/api/trace", json={**body, "encoding": "base64"})
    assert rj.status_code == rb.status_code == 200, (rj.text[:300], rb.text[:300])
    assert rj.content == client.post("/api/trace", json={**body, "encoding": "json"}).content
    return rj.json(), rb.json()


def array_count(body: dict) -> int:
    n = 2  # output, target
    for layer in body["layers"]:
        n += len(layer["params"]) + ("argmax" in layer)
        n += sum(v is not None for part in ("forward", "backward") for v in layer[part].values())
    return n + sum(len(p) for p in body.get("updated_params", []))


def test_scenario_base64_equals_json(client):
    js, b64 = both(client, {"scenario": SCENARIO_1, "learning_rate": 0.01})
    assert assert_same_values(js, b64) == array_count(js)
    assert isinstance(b64["loss"], float | int) and isinstance(b64["loss_after"], float)
    assert b64["layers"][0]["index"] == 0 and b64["layers"][0]["output_shape"] == [1, 2, 2]
    assert b64["layers"][2]["backward"]["dC_dw"]["shape"] == [1, 4]
    assert decode(b64["layers"][2]["backward"]["dC_dw"]).tolist() == [[12, 10, 6, 4]]
    assert decode(b64["updated_params"][2]["w"]).tolist() == [[0.88, -1.1, 0.94, 1.96]]
    assert b64["layers"][1]["params"] == {} and b64["layers"][1]["backward"]["dC_dw"] is None


def test_custom_base64_equals_engine_bytes(client):
    body = {
        "network": SMALL,
        "params": SMALL_PARAMS,
        "input": SMALL_INPUT,
        "target": [5],
        "learning_rate": 0.01,
    }
    js, b64 = both(client, copy.deepcopy(body))
    assert_same_values(js, b64)
    net = Network.from_spec(SMALL, params=SMALL_PARAMS)
    x = np.array([SMALL_INPUT], float)
    tr = net.trace(x, [5])
    want = tr.to_dict()
    for i, layer in enumerate(want["layers"]):
        for part in ("forward", "backward"):
            for k, v in layer[part].items():
                got = b64["layers"][i][part][k]
                assert (got is None) if v is None else decode(got).tobytes() == v.tobytes()
    assert decode(b64["output"]).tobytes() == want["output"].tobytes()
    net2 = net.sgd_step([rec.grads() for rec in tr.records], 0.01)
    for got, exp in zip(b64["updated_params"], net2.params, strict=True):
        assert {k: decode(v).tobytes() for k, v in got.items()} == {
            k: np.ascontiguousarray(v).tobytes() for k, v in exp.items()
        }
    assert b64["loss_after"] == js["loss_after"] == net2.trace(x, [5]).loss


def test_model_base64_equals_json_with_learning_rate(client, tiny_models_dir):
    x = np.random.default_rng(5).random((28, 28))
    # exact zeros (relu, max-pool gradients) and negative zeros keep their sign bits
    js, b64 = both(
        client, {"model": "digits", "input": x.tolist(), "target": 3, "learning_rate": 0.1}
    )
    assert assert_same_values(js, b64) == array_count(js)
    argmax = b64["layers"][1]["argmax"]
    assert argmax["dtype"] == "int64"
    net, _ = models.load_file(tiny_models_dir / "digits")
    assert np.array_equal(decode(argmax), net.trace(x[None], 3).to_dict()["layers"][1]["argmax"])
    assert b64["prediction"] == js["prediction"] and isinstance(b64["prediction"], int)


@pytest.mark.skipif("digits" not in models.available(), reason="the digit model is not trained")
def test_digit_model_base64_equals_json_bitwise():
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    x = np.random.default_rng(6).random((28, 28))
    with TestClient(create_app(Settings())) as c:
        for lr in (None, 0.05):
            body = {"model": "digits", "input": x.tolist(), "target": 7}
            if lr is not None:
                body["learning_rate"] = lr
            js, b64 = both(c, body)
            assert assert_same_values(js, b64) == array_count(js)
            # the pinned (cached) parameters are the model's own bytes
            net, _ = models.load("digits")
            for got, exp in zip(b64["layers"], net.params, strict=True):
                assert {k: decode(v).tobytes() for k, v in got["params"].items()} == {
                    k: np.ascontiguousarray(v).tobytes() for k, v in exp.items()
                }


@pytest.mark.parametrize("value", ["Base64", "msgpack", "", 1, None, True, ["base64"]])
def test_invalid_encoding_is_a_422_naming_the_field(client, value):
    r = client.post("/api/trace", json={"scenario": SCENARIO_1, "encoding": value})
    assert_error(r, 422, "body", "encoding")


def test_encoding_is_documented_in_openapi(client):
    spec = client.get("/openapi.json").json()
    prop = spec["components"]["schemas"]["TraceRequest"]["properties"]["encoding"]
    assert prop["enum"] == ["json", "base64"] and prop["default"] == "json"
    assert "base64" in prop["description"] and "frombuffer" in prop["description"]
    assert "EncodedArray" in spec["components"]["schemas"]


def test_base64_serializer_fast_path_gives_the_same_bytes(tiny_models_dir):
    """dumps_trace(..., "base64") (arrays encoded once, pinned parameters cached) is
    dumps_b64 of the same dict, and equal tensors share bytes only when bitwise equal."""
    from app.services import serialize

    net, _ = models.load_file(tiny_models_dir / "digits")
    serialize.pin_params(net)
    out = net.trace(np.random.default_rng(3).random((1, 28, 28)), 5).to_dict()
    assert serialize.dumps_trace(out, "base64") == serialize.dumps_b64(out)
    z = np.array([[0.0, 1.5]])
    layer = {
        "params": {},
        "forward": {"a_prev": z, "z": z.copy(), "a": np.array([[-0.0, 1.5]])},
        "backward": {"dC_da": z.copy(), "dC_dz": z * -1, "dC_db": None},
    }
    out = {"loss": 0.5, "output": z[0], "layers": [layer, {**layer, "argmax": np.array([1])}]}
    got = serialize.dumps_trace(out, "base64")
    assert got == serialize.dumps_b64(out)
    neg = base64.b64encode(np.array([-0.0, 1.5]).tobytes())
    assert b'{"dtype":"float64","shape":[1,2],"data":"' + neg + b'"}' in got
    assert b'{"dtype":"int64","shape":[1],"data":"AQAAAAAAAAA="}' in got


def test_base64_of_non_contiguous_and_other_dtypes():
    from app.services import serialize

    a = np.arange(12, dtype=np.float32).reshape(3, 4).T  # Fortran order, float32
    d = __import__("orjson").loads(serialize.dumps_b64({"a": a, "n": np.int32(3)}))
    assert d["n"] == 3 and d["a"]["dtype"] == "float64" and d["a"]["shape"] == [4, 3]
    assert np.array_equal(decode(d["a"]), a)
    big_endian = np.array([1.0, -2.5], dtype=">f8")
    assert serialize.dumps_b64(big_endian) == serialize.dumps_b64(big_endian.astype("<f8"))


def test_pybase64_when_installed_writes_the_stdlib_bytes(monkeypatch):
    """The optional accelerator changes the speed, never the bytes."""
    pytest.importorskip("pybase64")
    import base64 as stdlib

    from app.services import serialize

    rng = np.random.default_rng(8)
    arrays = [rng.random((n,)) for n in (0, 1, 2, 3, 1000)] + [np.arange(7), np.ones(())]
    fast = [serialize.dumps_b64(a) for a in arrays]
    monkeypatch.setattr(serialize, "b64encode", stdlib.b64encode)
    assert fast == [serialize.dumps_b64(a) for a in arrays]
