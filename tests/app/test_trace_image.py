"""POST /api/trace and /api/learn with `image` (a drawing, as /api/predict takes it) and
`"target": "predicted"`: the end of a stroke is one request. The input traced is exactly the
28×28 /api/predict makes of the same drawing, the target exactly its predicted class, and the
trace equals the one of `input` + that class, bit for bit."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from api_helpers import SMALL, SMALL_INPUT, assert_error


def drawing(h: int = 112, w: int = 112) -> list:
    """A slanted stroke with grey edges (values in [0, 1], 3 decimals as the page sends)."""
    img = np.zeros((h, w))
    for i in range(h // 6, 5 * h // 6):
        c = w // 2 + (i - h // 2) // 5
        img[i, c - 3 : c + 4] = 1.0
        img[i, c - 5 : c - 3] = 0.437
    return np.round(img, 3).tolist()


def arr(v) -> np.ndarray:
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["data"]), "<f8").reshape(v["shape"])
    return np.asarray(v, dtype=np.float64)


@pytest.mark.parametrize("encoding", ["json", "base64"])
def test_image_traces_what_predict_makes_of_it(client, encoding):
    image = drawing()
    p = client.post("/api/predict", json={"model": "digits", "image": image})
    assert p.status_code == 200, p.text
    pred = p.json()
    body = {"model": "digits", "image": image, "target": "predicted", "encoding": encoding}
    r = client.post("/api/trace", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    x28 = arr(got["input"])
    assert x28.shape == (28, 28)
    np.testing.assert_array_equal(x28, np.asarray(pred["input"]))
    assert got["prediction"] == pred["prediction"]
    np.testing.assert_array_equal(arr(got["output"]), np.asarray(pred["probabilities"]))
    # the target is the predicted class, one-hot
    assert int(np.argmax(arr(got["target"]))) == pred["prediction"]
    # the same as tracing that input with that class as the target, byte for byte
    same = {"model": "digits", "input": pred["input"], "target": pred["prediction"]}
    ref = client.post("/api/trace", json={**same, "encoding": encoding})
    assert ref.status_code == 200
    want = ref.json()
    assert {k: v for k, v in got.items() if k != "input"} == want


def test_image_with_the_lean_selection_and_a_chosen_target(client):
    image = drawing(60, 90)
    sel = {"include": ["forward", "backward"], "layers": [0], "dedupe": True}
    r = client.post("/api/trace", json={"model": "digits", "image": image, "target": 4, **sel})
    assert r.status_code == 200, r.text
    got = r.json()
    assert int(np.argmax(got["target"])) == 4
    # dedupe: layer 0's a_prev is the request's input, which the answer now carries
    assert got["layers"][0]["omitted"]["a_prev"] == "input"
    assert "forward" in got["layers"][0] and got["layers"][1]["forward"] == {}
    x28 = np.asarray(got["input"])
    ref = client.post(
        "/api/trace", json={"model": "digits", "input": x28.tolist(), "target": 4, **sel}
    ).json()
    assert {k: v for k, v in got.items() if k != "input"} == ref


def test_learn_with_image_and_predicted_target(client):
    image = drawing()
    body = {"model": "digits", "image": image, "target": "predicted", "learning_rate": 0.1}
    r = client.post("/api/learn", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    x28 = got["input"]
    k = got["prediction_before"]
    ref = client.post(
        "/api/learn",
        json={"model": "digits", "input": x28, "target": k, "learning_rate": 0.1},
    ).json()
    assert {key: v for key, v in got.items() if key != "input"} == ref
    assert got["loss_after"] < got["loss_before"]


def test_predicted_target_with_learned_params(client):
    """With `network` + `params` the predicted class is the one of those parameters."""
    model = client.get("/api/models/digits").json()
    params = [{k: (-np.asarray(v)).tolist() for k, v in p.items()} for p in model["params"]]
    body = {"network": model["network"], "params": params, "image": drawing()}
    r = client.post("/api/trace", json={**body, "target": "predicted"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert int(np.argmax(got["target"])) == got["prediction"] == int(np.argmax(got["output"]))


CASES = {
    "input and image": (
        {"model": "digits", "input": [[0.0] * 28] * 28, "image": [[1.0]], "target": 1},
        ("body", "image"),
    ),
    "image not a list": ({"model": "digits", "image": 3, "target": 1}, ("body", "image")),
    "image rows ragged": (
        {"model": "digits", "image": [[0.0, 1.0], [1.0]], "target": 1},
        ("body", "image"),
    ),
    "image value above 1": (
        {"model": "digits", "image": [[0.0, 1.5]], "target": 1},
        ("body", "image", 0, 1),
    ),
    "image bool": ({"model": "digits", "image": [[True, 0.0]], "target": 1}, ("body", "image")),
    "image string": ({"model": "digits", "image": [["1", 0.0]], "target": 1}, ("body", "image")),
    "image on a 3x3 network": (
        {"network": SMALL, "image": [[1.0]], "target": [5]},
        ("body", "image"),
    ),
    "predicted on an mse network": (
        {"network": SMALL, "input": SMALL_INPUT, "target": "predicted"},
        ("body", "target"),
    ),
    "another string target": (
        {"model": "digits", "image": [[1.0]], "target": "auto"},
        ("body", "target"),
    ),
    "neither input nor image": ({"model": "digits", "target": 1}, ("body", "input")),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
@pytest.mark.parametrize("path", ["/api/trace", "/api/learn"])
def test_bad_image_or_target_names_the_field(client, case, path):
    body, loc = CASES[case]
    body = {**body, "learning_rate": 0.1} if path == "/api/learn" else body
    assert_error(client.post(path, json=body), 422, *loc)


def test_image_side_limit_is_the_settings_one(tiny_models_dir, static_dir):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    c = TestClient(create_app(Settings(models_dir=tiny_models_dir, static_dir=static_dir)))
    big = [[0.0] * 513] * 2
    assert_error(c.post("/api/trace", json={"model": "digits", "image": big, "target": 1}), 422)
    s = Settings(models_dir=tiny_models_dir, static_dir=static_dir, max_image_side=40)
    c = TestClient(create_app(s))
    ok = {"model": "digits", "image": drawing(40, 40), "target": 1}
    assert c.post("/api/trace", json=ok).status_code == 200
    item = assert_error(
        c.post("/api/trace", json={**ok, "image": drawing(41, 40)}), 422, "body", "image"
    )
    assert "40×40" in item["msg"]
    # /api/predict holds the same limit
    assert_error(c.post("/api/predict", json={"image": drawing(41, 40)}), 422, "body", "image")


def test_openapi_documents_image_and_predicted(client):
    spec = client.get("/openapi.json").json()
    req = spec["components"]["schemas"]["TraceRequest"]["properties"]
    assert "image" in req and req["image"]["items"]["items"]["maximum"] == 1
    assert {"type": "string", "enum": ["predicted"]} in req["target"]["anyOf"]
    resp = spec["components"]["schemas"]["TraceResponse"]["properties"]
    assert "input" in resp
    examples = spec["paths"]["/api/trace"]["post"]["requestBody"]["content"]["application/json"]
    assert any("image" in e["value"] for e in examples["examples"].values())
