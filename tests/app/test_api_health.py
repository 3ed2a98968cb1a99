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
