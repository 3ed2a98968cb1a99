"""Security headers on every response, no CORS unless configured, and the body-size cap."""

from __future__ import annotations

import pytest
from api_helpers import assert_error
from fastapi.testclient import TestClient

from app.main import create_app
from app.security import CSP
from app.settings import Settings

EXPECTED = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_secure(r) -> None:
    for name, value in EXPECTED.items():
        assert r.headers.get(name) == value, (name, r.request.url)
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/health",
        "/nope",
        "/static/hello.css",
        "/docs",
        "/docs/init.js",
        "/openapi.json",
        "/api/models/nope",
    ],
)
def test_headers_on_get(client, path):
    assert_secure(client.get(path))


def test_headers_on_errors_and_posts(client):
    assert_secure(client.post("/api/trace", json={}))
    assert_secure(client.post("/api/trace", content=b"{"))
    assert_secure(client.post("/api/predict", json={"image": [[0]]}))
    assert_secure(client.put("/api/health"))


def test_headers_on_a_500():
    app = create_app(Settings())

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
        assert r.status_code == 500
        assert_secure(r)
        assert r.json()["detail"][0]["type"] == "internal"


def test_static_file_served(client):
    r = client.get("/static/hello.css")
    assert r.status_code == 200 and "color" in r.text


def test_no_cors_by_default(client):
    r = client.options(
        "/api/trace",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/api/health", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_when_configured(settings):
    from dataclasses import replace

    app = create_app(replace(settings, cors_origins=("https://ok.example",)))
    with TestClient(app) as c:
        r = c.get("/api/health", headers={"origin": "https://ok.example"})
        assert r.headers["access-control-allow-origin"] == "https://ok.example"
        r = c.get("/api/health", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        # the trace route too (served by FastAPI's stack, with the CORS middleware, then)
        body = {"scenario": "conv-dense"}
        r = c.post("/api/trace", json=body, headers={"origin": "https://ok.example"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://ok.example"
        assert_secure_but_cors(r)


def assert_secure_but_cors(r) -> None:
    for name, value in EXPECTED.items():
        assert r.headers.get(name) == value, name


def test_cors_from_env(monkeypatch):
    monkeypatch.setenv("CNNVIZ_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings.from_env().cors_origins == ("https://a.example", "https://b.example")
    monkeypatch.delenv("CNNVIZ_CORS_ORIGINS")
    assert Settings.from_env().cors_origins == ()


def test_body_cap_by_content_length(client, settings):
    big = b"[" + b"0," * (settings.max_body_bytes // 2) + b"0]"
    r = client.post("/api/trace", content=big, headers={"content-type": "application/json"})
    assert_error(r, 413, "body")
    assert_secure(r)


def test_body_cap_streamed(client, settings):
    """No Content-Length (chunked): counted while read, refused one chunk past the cap."""

    def chunks():
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    r = client.post("/api/trace", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "body")


def test_streamed_small_body_is_replayed(client):
    def chunks():
        yield b'{"scenario": '
        yield b'"conv-dense"}'

    r = client.post("/api/trace", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_bad_content_length(client):
    r = client.post("/api/trace", content=b"{}", headers={"content-length": "abc"})
    assert 400 <= r.status_code < 500


def test_large_responses_are_gzipped(client):
    r = client.get("/openapi.json", headers={"accept-encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    r = client.get("/api/health", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in r.headers  # under minimum_size


@pytest.mark.parametrize("backend", ["zlib", "isal"])
def test_gzip_backends_give_the_same_body(client, monkeypatch, backend):
    """ISA-L (when installed) and zlib compress differently; the decompressed body is the same."""
    import gzip

    from app import compression

    if backend == "isal":
        if not compression.isal_available():
            pytest.skip("the isal package is not installed")
    else:
        monkeypatch.setattr(compression, "isal_zlib", None)
    body = {"model": "digits", "input": [[0.5] * 28] * 28, "target": 3}
    plain = client.post("/api/trace", json=body, headers={"accept-encoding": "identity"})
    gz = {"accept-encoding": "gzip"}
    with client.stream("POST", "/api/trace", json=body, headers=gz) as r:
        compressed = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(compressed) == plain.content
