"""app.main: the module-level app, the page or a redirect to /docs, BLAS threads."""

from __future__ import annotations

from app import main


def test_module_level_app_is_built():
    from fastapi.testclient import TestClient

    with TestClient(main.app) as c:
        assert c.get("/api/health").status_code == 200
        page = c.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script type="module"' in page.text
        assert "/api/trace" in c.get("/openapi.json").json()["paths"]


def test_without_the_page_files_root_redirects_to_the_api_docs(tmp_path, caplog):
    """A non-editable install has no templates/: `/` must not fail, it points to /docs."""
    from fastapi.testclient import TestClient

    from app.settings import Settings

    with caplog.at_level("WARNING", logger="cnnviz"):
        app = main.create_app(Settings(templates_dir=tmp_path, static_dir=tmp_path / "none"))
    assert "has no index.html" in caplog.text
    with TestClient(app) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 307
        assert r.headers["location"] == "/docs"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert c.get("/docs").status_code == 200
        assert c.get("/api/health").status_code == 200


def test_limit_blas_threads():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    assert before, "NumPy's BLAS is not visible to threadpoolctl"
    try:
        assert main.limit_blas_threads(1)
        assert blas_threads() == [1] * len(before)
    finally:
        main.limit_blas_threads(max(before))
    assert not main.limit_blas_threads(0)


# --------------------------------------------------------------------------- the fast path
# POST /api/trace and /api/learn are served from the outermost layer (routes.FastJSONPost)
# when the request is a plain JSON one; each answer must equal the one FastAPI's own route
# and middleware stack gives (the same app with no fast routes).


def _pair():
    from fastapi.testclient import TestClient

    from app.settings import Settings

    fast = main.create_app(Settings())
    slow = main.create_app(Settings())
    slow.state.fast = {}
    assert set(fast.state.fast) == {"/api/trace", "/api/learn", "/api/predict"}
    return TestClient(fast), TestClient(slow)


def _same(a, b) -> None:
    assert a.status_code == b.status_code
    assert a.content == b.content  # decompressed by httpx when gzipped
    assert dict(a.headers) == dict(b.headers)


def test_fast_path_answers_equal_fastapis():
    import gzip

    import orjson

    fast, slow = _pair()
    scenario = {"scenario": "conv-dense"}
    lean = {**scenario, "include": ["forward"], "dedupe": True, "encoding": "base64"}
    digits = {"model": "digits", "input": [[0.0] * 28] * 28, "target": 3}
    gz = {"content-type": "application/json", "content-encoding": "gzip"}
    cases = [
        ("/api/trace", {"json": scenario}, {}),
        ("/api/trace", {"json": lean}, {"accept-encoding": "identity"}),
        ("/api/trace", {"json": digits}, {"accept-encoding": "gzip"}),
        ("/api/trace", {"json": digits}, {"accept-encoding": "identity"}),
        ("/api/learn", {"json": {**scenario, "learning_rate": 0.1}}, {}),
        ("/api/learn", {"json": scenario}, {}),  # learning_rate missing: the service's 422
        ("/api/trace", {"json": {"scenario": "nope"}}, {}),
        ("/api/trace", {"json": {**digits, "input": [[0.0] * 27] * 28}}, {}),
        ("/api/trace", {"json": {**digits, "layers": ["x"]}}, {}),
        ("/api/trace", {"json": [1, 2]}, {}),
        ("/api/trace", {"json": {}}, {}),
        ("/api/trace", {"content": b"{"}, {"content-type": "application/json"}),
        ("/api/trace", {"content": b""}, {"content-type": "application/json"}),
        ("/api/trace", {"content": b'{"x": NaN}'}, {"content-type": "application/json"}),
        ("/api/trace", {"content": orjson.dumps(scenario)}, {"content-type": "text/plain"}),
        ("/api/trace", {"content": orjson.dumps(scenario)}, {}),
        (
            "/api/trace",
            {"content": orjson.dumps(scenario)},
            {"content-type": "application/json; charset=utf-8"},
        ),
        ("/api/trace", {"content": gzip.compress(orjson.dumps(scenario))}, gz),
        ("/api/trace", {"content": orjson.dumps(scenario)}, {**gz, "content-encoding": "br"}),
        (
            "/api/trace",
            {"content": iter([orjson.dumps(scenario)])},
            {"content-type": "application/json"},
        ),
        (
            "/api/trace",
            {"content": b"[" + b"0," * (3 << 20) + b"0]"},
            {"content-type": "application/json"},
        ),
    ]
    drawing = [[0.0] * 40 for _ in range(30)]
    drawing[10][12:20] = [1.0] * 8
    cases += [
        ("/api/predict", {"json": {"image": drawing}}, {}),
        ("/api/predict", {"json": {"image": drawing}}, {"accept-encoding": "identity"}),
        ("/api/predict", {"json": {"image": [[0.0]]}}, {}),
        ("/api/predict", {"json": {"image": drawing, "model": "nope"}}, {}),
        ("/api/predict", {"content": b'{"image": [[NaN]]}'}, {"content-type": "application/json"}),
        ("/api/predict", {"content": b"{"}, {"content-type": "application/json"}),
        ("/api/predict", {"content": b""}, {"content-type": "application/json"}),
        (
            "/api/predict",
            {"content": orjson.dumps({"image": drawing})},
            {"content-type": "text/plain"},
        ),
    ]
    for path, kw, headers in cases:
        a = fast.post(path, headers=headers, **kw)
        if "content" in kw and not isinstance(kw["content"], bytes):
            kw = {**kw, "content": iter([orjson.dumps(scenario)])}
        b = slow.post(path, headers=headers, **kw)
        _same(a, b)
    assert fast.post("/api/trace", json=scenario).status_code == 200


def test_fast_path_serves_plain_requests_itself():
    """A plain valid request never reaches FastAPI (a fallback that would fail is never
    called), and a failing service call is a 500 with the API's error body, not a crash."""
    import asyncio

    import orjson

    from app import services
    from app.routes import FastJSONPost
    from app.schemas import TraceRequest
    from app.settings import Settings

    def boom(req, s):
        raise RuntimeError("boom")

    async def call(handler, body: bytes):
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        async def fallback(scope, receive, send):
            raise AssertionError("fell back to FastAPI")

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/trace",
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
        await handler(scope, receive, send, fallback)
        return sent

    s = Settings()
    body = orjson.dumps({"scenario": "conv-dense"})
    sent = asyncio.run(call(FastJSONPost(TraceRequest, services.trace_json, s), body))
    assert sent[0]["status"] == 200
    assert orjson.loads(sent[1]["body"])["loss"] > 0
    headers = dict(sent[0]["headers"])
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"content-length"] == b"%d" % len(sent[1]["body"])
    sent = asyncio.run(call(FastJSONPost(TraceRequest, boom, s), body))
    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"])["detail"][0]["type"] == "internal"
