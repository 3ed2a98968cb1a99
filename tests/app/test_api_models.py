from __future__ import annotations

import numpy as np
from api_helpers import assert_error

from cnncore import models


def test_list_models(client, tiny_models_dir):
    r = client.get("/api/models")
    assert r.status_code == 200
    (item,) = r.json()
    assert item["name"] == "digits"
    assert item["description"] == "a tiny untrained test model"
    assert item["dataset"] == "none" and item["test_accuracy"] == 0.1
    spec = item["network"]
    assert spec["input_shape"] == [1, 28, 28] and spec["output_shape"] == [10]
    for layer in spec["layers"]:
        assert {"input_shape", "output_shape", "param_count"} <= set(layer)
    assert "params" not in item


def test_model_detail_has_exact_params(client, tiny_models_dir):
    r = client.get("/api/models/digits")
    assert r.status_code == 200
    body = r.json()
    net, _ = models.load_file(tiny_models_dir / "digits")
    assert len(body["params"]) == len(net.params)
    for got, want in zip(body["params"], net.params, strict=True):
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_array_equal(np.array(got[k]), want[k])


def test_unknown_model_is_404(client):
    assert_error(client.get("/api/models/nope"), 404, "path", "name")
    assert_error(client.get("/api/models/..%2F..%2Fetc"), 404)


def test_bundled_models_listing_works(client):
    """The real bundled directory (whatever is installed) lists without errors."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings())) as c:
        r = c.get("/api/models")
        assert r.status_code == 200
        assert [m["name"] for m in r.json()] == models.available()
