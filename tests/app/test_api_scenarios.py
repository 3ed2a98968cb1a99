from __future__ import annotations

import pytest
from api_helpers import assert_error

from cnncore import scenarios


def test_list_scenarios(client):
    r = client.get("/api/scenarios")
    assert r.status_code == 200
    items = r.json()
    assert [s["id"] for s in items] == list(scenarios.SCENARIOS)
    for s in items:
        assert set(s) == {"id", "title", "note"}
        assert set(s["title"]) == {"en", "zh"} and set(s["note"]) == {"en", "zh"}


@pytest.mark.parametrize("sid", list(scenarios.SCENARIOS))
def test_scenario_detail(client, sid):
    r = client.get(f"/api/scenarios/{sid}")
    assert r.status_code == 200
    body = r.json()
    s = scenarios.SCENARIOS[sid]
    assert body["id"] == sid
    assert body["spec"] == s.spec and body["params"] == s.params
    assert body["input"] == s.input and body["target"] == s.target
    assert body["network"]["layers"][0]["output_shape"]


def test_unknown_scenario_is_404(client):
    assert_error(client.get("/api/scenarios/nope"), 404, "path", "id")
