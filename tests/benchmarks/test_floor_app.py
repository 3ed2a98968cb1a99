"""benchmarks/floor_app.py under a real uvicorn: every request, whatever its method, path or
body, gets the file's exact bytes, so bench_api.py's floor sends what the API sent."""

from __future__ import annotations

import os
import signal
import sys

import httpx

from tests.servers import ROOT, free_port, start


def test_floor_app_answers_every_request_with_the_file(tmp_path):
    body = b'{"layers": [' + b"0.1234567890123456," * 50_000 + b"0.0]}"  # ~1 MB, like a trace
    path = tmp_path / "body.json"
    path.write_bytes(body)
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(ROOT / "benchmarks")]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = start(args, port, env={**os.environ, "CNNVIZ_FLOOR_BODY": str(path)})
    try:
        with httpx.Client(base_url=server.base, timeout=10) as c:
            r = c.post("/api/trace", content=b'{"model": "digits"}' * 1000)
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json"
            assert int(r.headers["content-length"]) == len(body)
            assert r.content == body
            assert c.get("/anything").content == body
    finally:
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught
        assert server.stop() in (0, -signal.SIGTERM), server.output()


def test_floor_app_computes_the_apis_exact_bytes_for_every_target_workload():
    """The bare-compute control (`CNNVIZ_FLOOR_WORKLOAD`) runs the engine, selection and
    serializer without the framework; bench_api.py compares the API with it, so its answer
    must be the API's answer, byte for byte, for each digit trace of issue 11's target."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_api

    loads = bench_api.workloads()
    with TestClient(create_app(Settings())) as c:
        for name in bench_api.FLOOR_WORKLOADS:
            w = loads[name]
            api = c.post(w["path"], content=w["body"], headers={"content-type": w["type"]})
            assert api.status_code == 200, api.text
            assert bench_api.trace_maker(name)() == api.content, name


def test_target_verdict():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_api

    assert bench_api.verdict(5.0, 4.0) == "met"  # p50 − engine = floor + 1 ms exactly
    assert bench_api.verdict(3.2, 4.0) == "met"
    assert bench_api.verdict(5.5, 4.0) == "not met (+0.5 ms)"
