"""/docs is served offline (no CDN, no inline script) and /openapi.json documents every endpoint
with a description and an example."""

from __future__ import annotations

import re

import pytest

from app.routes import docs

ENDPOINTS = {
    ("get", "/api/health"),
    ("get", "/api/models"),
    ("get", "/api/models/{name}"),
    ("get", "/api/scenarios"),
    ("get", "/api/scenarios/{id}"),
    ("post", "/api/trace"),
    ("post", "/api/learn"),
    ("post", "/api/predict"),
}


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    assert spec["info"]["description"]
    found = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert found >= ENDPOINTS
    for method, path in ENDPOINTS:
        op = spec["paths"][path][method]
        assert op.get("description"), (method, path)
        assert op.get("summary"), (method, path)
        ok = op["responses"]["200"]["content"]["application/json"]
        assert "example" in ok or "examples" in ok, (method, path)
        if method == "post":
            content = op["requestBody"]["content"]["application/json"]
            text = str(content) + str(spec["components"]["schemas"])
            assert "example" in text, path
        for p in op.get("parameters", []):
            ex = (
                p.get("example") is not None
                or p["schema"].get("examples")
                or p["schema"].get("enum")
            )
            assert ex, (path, p)


def test_trace_response_example_is_real(client):
    spec = client.get("/openapi.json").json()
    ex = spec["paths"]["/api/trace"]["post"]["responses"]["200"]["content"]["application/json"][
        "example"
    ]
    assert ex["loss_after"] < ex["loss"]
    assert [layer["type"] for layer in ex["layers"]] == ["conv2d", "flatten", "dense"]


def test_errors_are_documented(client):
    spec = client.get("/openapi.json").json()
    trace = spec["paths"]["/api/trace"]["post"]["responses"]
    assert "422" in trace and "413" in trace
    assert "ErrorResponse" in str(trace["422"])


@pytest.mark.skipif(docs.swagger_ui_dir() is None, reason="swagger-ui-bundle not installed")
def test_swagger_ui_offline(client):
    r = client.get("/docs")
    assert r.status_code == 200
    html = r.text
    assert "<script>" not in html and "onload=" not in html  # no inline script
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert srcs and all(s.startswith("/") for s in srcs), srcs  # nothing from a CDN
    for src in srcs:
        assert client.get(src).status_code == 200, src
    init = client.get("/docs/init.js")
    assert "javascript" in init.headers["content-type"]
    assert "/openapi.json" in init.text


def test_docs_fallback_without_swagger(client, monkeypatch):
    monkeypatch.setattr(docs, "swagger_ui_dir", lambda: None)
    r = client.get("/docs")
    assert r.status_code == 200
    assert "/api/trace" in r.text and "/openapi.json" in r.text
    assert "<script" not in r.text
