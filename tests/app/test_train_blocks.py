"""Train mode trains the playground's networks: residual and concat blocks, over the WebSocket,
with snapshots, a worked update and a trace of a training step."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.test_train_ws import FAST, until, until_state

pytestmark = pytest.mark.timeout(180)

CONV = {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1, "activation": "relu"}
RESIDUAL_NET = {
    "input_shape": [1, 28, 28],
    "layers": [
        {**CONV, "stride": 2},
        {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
        {
            "type": "residual",
            "activation": "relu",
            "projection": {"type": "conv2d", "kernel_size": 1, "stride": 1},
            "layers": [
                {**CONV, "out_channels": 3},
                {**CONV, "out_channels": 3, "activation": "identity"},
            ],
        },
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}
CONCAT_NET = {
    "input_shape": [1, 28, 28],
    "layers": [
        {
            "type": "concat",
            "branches": [
                [{**CONV, "kernel_size": 1, "padding": 0, "stride": 2}],
                [{**CONV, "stride": 2}],
            ],
        },
        {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("spec", [RESIDUAL_NET, CONCAT_NET], ids=["residual", "concat"])
def test_block_networks_train_pause_and_trace(client, spec):
    with client.websocket_connect("/api/train") as ws:
        ws.send_json({"type": "start", "network": spec, "seed": 0, "max_steps": 40, **FAST})
        started = until(ws, "started")
        assert started["network"]["layers"][0]["type"] == spec["layers"][0]["type"]
        step = until(ws, "step")
        assert all(v > 0 for v in step["losses"])
        snap = until(ws, "snapshot")
        # every layer with parameters reports its weight norm; the block's too
        kinds = {n["type"] for n in snap["norms"]}
        assert spec["layers"][0]["type"] in kinds or "residual" in kinds, kinds
        assert all(n["weight"] > 0 for n in snap["norms"])
        ws.send_json({"type": "pause"})
        until_state(ws, "paused")
        ws.send_json({"type": "step"})
        until(ws, "step")
        until_state(ws, "paused")
        ws.send_json({"type": "trace", "index": 0})
        tr = until(ws, "trace")
        assert tr["trace"]["layers"][0]["type"] == spec["layers"][0]["type"]
        assert tr["update"] is not None
        ws.send_json({"type": "stop"})
        done = until(ws, "done")
        assert len(done["confusion"]) == 10
