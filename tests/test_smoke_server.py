"""A real server: `cnnviz serve` in a subprocess on a free port, every endpoint over HTTP,
then a clean stop (SIGTERM -> exit code 0)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, start

ROOT = Path(__file__).resolve().parent.parent
CNNVIZ = Path(sys.executable).parent / "cnnviz"


@pytest.fixture(scope="module")
def server(tiny_models_dir):
    if not CNNVIZ.exists():
        pytest.fail(f"the cnnviz console script is missing at {CNNVIZ}: run `make install`")
    port = free_port()
    env = {**os.environ, "CNNVIZ_MODELS_DIR": str(tiny_models_dir)}
    args = [str(CNNVIZ), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    srv = start(args, port, env=env)
    yield srv.base, srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def test_every_endpoint_over_http(server):
    base, _ = server
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.get("/api/health")
        assert r.json()["status"] == "ok" and r.json()["models"] == ["digits"]
        assert r.headers["x-content-type-options"] == "nosniff"

        assert [m["name"] for m in c.get("/api/models").json()] == ["digits"]
        assert len(c.get("/api/models/digits").json()["params"]) == 4
        assert c.get("/api/models/nope").status_code == 404

        scenarios = c.get("/api/scenarios").json()
        if scenarios:
            sid = scenarios[0]["id"]
            assert c.get(f"/api/scenarios/{sid}").json()["id"] == sid
            r = c.post("/api/trace", json={"scenario": sid, "learning_rate": 0.01})
            assert r.status_code == 200 and "loss_after" in r.json()

        r = c.post(
            "/api/trace",
            json={"model": "digits", "input": [[0.5] * 28] * 28, "target": 3},
            headers={"accept-encoding": "gzip"},
        )
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert len(r.json()["layers"]) == 4

        image = [[0.0] * 56 for _ in range(56)]
        for row in image[10:46]:
            row[26:30] = [1.0] * 4
        r = c.post("/api/predict", json={"model": "digits", "image": image})
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 10

        from PIL import Image

        buf = io.BytesIO()
        Image.new("L", (40, 40), 255).save(buf, format="PNG")
        r = c.post("/api/predict", files={"file": ("x.png", buf.getvalue())})
        assert r.status_code == 200, r.text

        r = c.post(
            "/api/trace",
            content=b'{"model": "digits", "input": [NaN]}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"
        r = c.post(
            "/api/trace", content=b"0" * (5 * 2**20), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413

        assert c.get("/docs").status_code == 200
        assert c.get("/openapi.json").json()["paths"]


def test_clean_stop(server):
    _, srv = server
    proc = srv.proc
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the server did not stop within 15 s of SIGTERM")
    out = srv.output()
    # uvicorn shuts down gracefully, then re-raises the signal it caught: exit by SIGTERM
    assert code in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out, out
    assert "Traceback" not in out and " 500 " not in out, out
