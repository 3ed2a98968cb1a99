from __future__ import annotations


def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and body["version"]
    assert body["models"] == ["digits"]
    assert r.headers["content-type"] == "application/json"


def test_root_serves_something(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (200, 307)


def test_health_reports_the_custom_network_limits(client, settings):
    r = client.get("/api/health")
    lim = r.json()["limits"]
    assert lim == {
        "max_layers": settings.max_layers,
        "max_channels": settings.max_channels,
        "max_multiply_adds": settings.max_multiply_adds,
        "max_trace_values": settings.max_trace_values,
        "max_input_shape": list(settings.max_input_shape),
    }
    # the caps are the ones POST /api/trace enforces: one multiply-add over is refused
    cap = settings.max_multiply_adds
    # a dense layer from n inputs to k units costs n*k multiply-adds
    n = 784
    units = cap // n + 1
    assert units * n > cap
    spec = {
        "input_shape": [1, 28, 28],
        "layers": [{"type": "flatten"}, {"type": "dense", "units": units, "activation": "relu"}],
        "loss": "mse",
    }
    r = client.post("/api/trace", json={"network": spec, "seed": 0, "input": [[0.0] * 28] * 28})
    assert r.status_code in (413, 422), r.text
    assert "multiply-adds" in r.text, r.text
