"""WebSocket /api/train: the protocol, the limits, freeing the run, and the real server.

Runs use the tiny "digits" model of `tiny_models_dir` (or LeNet for the learning test) on the
real MNIST split, with small batches and a small dev subset so each test takes a second or two.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.main import create_app
from app.services.training import Outbox
from cnncore.train import LENET_SPEC

pytestmark = pytest.mark.timeout(180)

FAST = {"batch_size": 8, "eval_size": 50, "eval_every": 20, "snapshot_every": 10}


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def start_msg(**kw):
    msg = {"type": "start", "model": "digits", "init": "random", "seed": 0, **FAST}
    msg.update(kw)
    return msg


def until(ws, kind: str, limit: int = 5000, seen: list | None = None) -> dict:
    """Read messages until one of type `kind` arrives (fails on a fatal error)."""
    for _ in range(limit):
        m = ws.receive_json()
        if seen is not None:
            seen.append(m)
        if m["type"] == kind:
            return m
        assert not (m["type"] == "error" and m.get("fatal")), m
    raise AssertionError(f"no {kind!r} in {limit} messages")


def until_state(ws, state: str, seen: list | None = None) -> dict:
    while True:
        m = until(ws, "state", seen=seen)
        if m["state"] == state:
            return m


def started_paused(ws, **kw) -> dict:
    ws.send_json(start_msg(paused=True, **kw))
    first = until(ws, "started")
    until_state(ws, "paused")
    return first


def expect_close(ws, code: int, *loc) -> dict:
    """The next messages are a fatal error naming `loc`, then a close with `code`."""
    err = None
    with pytest.raises(WebSocketDisconnect) as info:
        for _ in range(10000):
            m = ws.receive_json()
            if m["type"] == "error":
                assert m["fatal"] is True, m
                err = m
    assert err is not None, "no error message before the close"
    item = err["detail"][0]
    assert set(item) == {"loc", "msg", "type"} and item["msg"]
    assert item["loc"][: len(loc)] == list(loc), item
    assert info.value.code == code, (info.value.code, item)
    return item


# ---------------------------------------------------------------------------- the protocol
def test_start_streams_steps_eval_snapshot_and_stop_gives_the_gallery(client):
    seen: list = []
    with client.websocket_connect("/api/train") as ws:
        ws.send_json(start_msg(max_steps=500))
        started = until(ws, "started", seen=seen)
        assert started["network"]["input_shape"] == [1, 28, 28]
        assert started["eval_size"] == 50 and started["train_size"] > 8000
        assert started["flip_example"]["label"] == 2
        flipped = np.array(started["flip_example"]["flipped"])
        assert np.array_equal(flipped, np.array(started["flip_example"]["image"])[:, ::-1])
        ev0 = until(ws, "eval", seen=seen)
        assert ev0["step"] == 0 and ev0["split"] == "dev" and 0 <= ev0["accuracy"] <= 1
        until_state(ws, "running", seen=seen)
        step = until(ws, "step", seen=seen)
        for key in ("step", "epoch", "loss", "batch_accuracy", "lr", "images_per_s"):
            assert key in step, key
        assert step["losses"] and step["first_step"] + len(step["losses"]) - 1 == step["step"]
        until(ws, "eval", seen=seen)
        ws.send_json({"type": "stop"})
        done = until(ws, "done", seen=seen)
        assert done["reason"] == "stopped"
        conf = np.array(done["confusion"])
        assert conf.shape == (10, 10) and conf.sum() == 50
        assert done["misclassified"] == conf.sum() - np.trace(conf)
        gal = done["gallery"]
        wrong = [g["label"] != g["prediction"] for g in gal]
        assert wrong == sorted(wrong, reverse=True)  # misclassified first
        assert sum(wrong) == min(done["misclassified"], len(gal))
        assert until(ws, "state")["state"] == "done"
    snaps = [m for m in seen if m["type"] == "snapshot"]
    assert snaps, "no snapshot"
    s = snaps[-1]
    w = np.array(s["kernels"]["w"])
    assert w.ndim == 4 and w.shape[1] == 1
    assert len(s["feature_maps"]) >= 1 and np.array(s["feature_maps"][0]["maps"]).ndim == 3
    assert all(n["weight"] > 0 for n in s["norms"])
    b = s["batch"]
    assert np.array(b["original"]).shape == np.array(b["augmented"]).shape == (8, 28, 28)
    # the step numbers only grow, and every step is covered by the messages' losses
    steps = [m for m in seen if m["type"] == "step"]
    covered = [m["first_step"] + i for m in steps for i in range(len(m["losses"]))]
    assert covered == sorted(covered) and len(set(covered)) == len(covered)


def test_pause_step_resume_and_set_lr(client):
    with client.websocket_connect("/api/train") as ws:
        started_paused(ws)
        ws.send_json({"type": "step"})
        m = until(ws, "step")
        assert m["step"] == 1
        assert until_state(ws, "paused")["step"] == 1
        ws.send_json({"type": "set_lr", "lr": 0.01})
        assert until(ws, "lr")["lr"] == 0.01
        ws.send_json({"type": "step"})
        assert until(ws, "step")["lr"] == 0.01
        ws.send_json({"type": "resume"})
        until_state(ws, "running")
        ws.send_json({"type": "step"})  # not while running: a non-fatal error
        err = until(ws, "error")
        assert err["fatal"] is False and err["detail"][0]["loc"] == ["step"]
        ws.send_json({"type": "pause"})
        paused = until_state(ws, "paused")
        assert paused["step"] >= 2


def _post_trace(client, export: dict, x, label: int) -> dict:
    r = client.post(
        "/api/trace",
        json={"network": export["spec"], "params": export["params"], "input": x, "target": label},
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "sgd", "lr": 0.1},
        {"name": "momentum", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.001},
        {"name": "adam", "lr": 0.001},
    ],
)
def test_trace_equals_post_trace_and_the_worked_update_is_the_step(client, optimizer):
    with client.websocket_connect("/api/train") as ws:
        started_paused(ws, optimizer=optimizer, augment={"shift": 2, "noise": 0.05})
        for _ in range(3):  # momentum and Adam state that is not zero
            ws.send_json({"type": "step"})
            until_state(ws, "paused")
        ws.send_json({"type": "trace", "index": 5})
        ans = until(ws, "trace")
        assert ans["step"] == 3 and ans["index"] == 5
        ws.send_json({"type": "export"})
        exp = until(ws, "export")
        assert exp["step"] == 3
        # the same network, parameters and example through POST /api/trace: the same answer
        tr = ans["trace"]
        x = tr["layers"][0]["forward"]["a_prev"]
        assert tr == _post_trace(client, exp, x, ans["label"])
        # the worked update is the value the next step writes, bit for bit
        up = ans["update"]
        assert up["optimizer"] == optimizer["name"]
        layer, idx = up["layer"], tuple(up["index"])
        w_before = np.array(exp["params"][layer][up["name"]])[idx]
        assert w_before == up["w"]
        if optimizer["name"] == "adam":
            m_hat = up["m_new"] / up["bias_correction1"]
            assert np.isclose(up["m_hat"], m_hat, rtol=1e-6)
            u = up["lr"] * up["m_hat"] / (np.sqrt(up["v_hat"]) + up["eps"])
            assert np.isclose(up["update"], u, rtol=1e-5)
        elif optimizer["name"] == "momentum":
            g = up["g"] + up["weight_decay"] * up["w"]
            assert np.isclose(up["v_new"], up["momentum"] * up["v"] + g, rtol=1e-5)
            assert np.isclose(up["w_new"], up["w"] - up["lr"] * up["v_new"], rtol=1e-6)
        else:
            assert np.isclose(up["w_new"], up["w"] - up["lr"] * up["g"], rtol=1e-6)
        ws.send_json({"type": "step"})
        until_state(ws, "paused")
        ws.send_json({"type": "export"})
        after = until(ws, "export")
        assert np.array(after["params"][layer][up["name"]])[idx] == up["w_new"]


def test_export_then_trace_a_dev_digit(client):
    with client.websocket_connect("/api/train") as ws:
        started_paused(ws)
        ws.send_json({"type": "step"})
        until_state(ws, "paused")
        ws.send_json({"type": "export"})
        exp = until(ws, "export")
        assert exp["network"] == exp["spec"] and len(exp["params"]) == len(exp["spec"]["layers"])
        ws.send_json({"type": "trace", "dev": 7})
        ans = until(ws, "trace")
        assert ans["dev"] == 7 and ans["update"] is None
    tr = ans["trace"]
    assert tr == _post_trace(client, exp, tr["layers"][0]["forward"]["a_prev"], ans["label"])


def test_trace_takes_post_trace_selection_fields(client):
    from app.services.train_protocol import trace_selection_fields

    assert "encoding" in trace_selection_fields()
    with client.websocket_connect("/api/train") as ws:
        started_paused(ws)
        ws.send_json({"type": "trace", "index": 0, "encoding": "base64"})
        tr = until(ws, "trace")["trace"]
        assert tr["layers"][0]["forward"]["a"]["dtype"] == "float64"


def test_loss_decreases_over_200_steps_on_a_fixed_seed(client):
    losses = []
    with client.websocket_connect("/api/train") as ws:
        ws.send_json(
            {
                "type": "start",
                "network": LENET_SPEC,
                "seed": 1,
                "optimizer": {"name": "momentum", "lr": 0.05},
                "batch_size": 32,
                "max_steps": 200,
                "eval_every": 200,
                "eval_size": 200,
            }
        )
        seen: list = []
        done = until(ws, "done", seen=seen)
        for m in seen:
            if m["type"] == "step":
                losses.extend(m["losses"])
        evals = [m for m in seen if m["type"] == "eval"]
    assert len(losses) == 200 and done["step"] == 200
    assert np.mean(losses[-40:]) < 0.5 * np.mean(losses[:40])
    assert evals[-1]["accuracy"] > evals[0]["accuracy"] + 0.4


def test_same_seed_same_run(client):
    def run():
        with client.websocket_connect("/api/train") as ws:
            ws.send_json(start_msg(max_steps=15, augment={"shift": 1, "rotation": 10}))
            seen: list = []
            until(ws, "done", seen=seen)
        return [x for m in seen if m["type"] == "step" for x in m["losses"]]

    assert run() == run()


# ---------------------------------------------------------------------------- bad input
BAD_FIRST = [
    ("not json", 1007, ["message"]),
    ("[1, 2]", 1008, ["message"]),
    ('{"lr": 1}', 1008, ["message", "type"]),
    ('{"type": "pause"}', 1008, ["message", "type"]),
    ('{"type": "start", "model": "digits", "colour": 1}', 1008, ["start", "colour"]),
    ('{"type": "start", "model": "nope"}', 1008, ["start", "model"]),
    ('{"type": "start"}', 1008, ["start", "model"]),
    ('{"type": "start", "model": "digits", "network": {}}', 1008, ["start", "model"]),
    ('{"type": "start", "model": "digits", "init": "zeros"}', 1008, ["start", "init"]),
    ('{"type": "start", "model": "digits", "seed": -1}', 1008, ["start", "seed"]),
    ('{"type": "start", "model": "digits", "seed": "1"}', 1008, ["start", "seed"]),
    (
        '{"type": "start", "model": "digits", "optimizer": {"name": "rmsprop"}}',
        1008,
        ["start", "optimizer", "name"],
    ),
    (
        '{"type": "start", "model": "digits", "optimizer": {"lr": -1}}',
        1008,
        ["start", "optimizer", "lr"],
    ),
    (
        '{"type": "start", "model": "digits", "optimizer": {"lr": 0.1, "nesterov": true}}',
        1008,
        ["start", "optimizer", "nesterov"],
    ),
    ('{"type": "start", "model": "digits", "batch_size": 0}', 1008, ["start", "batch_size"]),
    ('{"type": "start", "model": "digits", "batch_size": 100000}', 1008, ["start", "batch_size"]),
    ('{"type": "start", "model": "digits", "max_steps": 100000000}', 1008, ["start", "max_steps"]),
    (
        '{"type": "start", "model": "digits", "augment": {"rotation": 90}}',
        1008,
        ["start", "augment", "rotation"],
    ),
    (
        '{"type": "start", "model": "digits", "augment": {"mixup": true}}',
        1008,
        ["start", "augment", "mixup"],
    ),
    (
        '{"type": "start", "network": {"input_shape": [1, 28, 28], "layers": []}}',
        1008,
        ["start", "network"],
    ),
    (
        '{"type": "start", "network": {"input_shape": [1, 4, 4], "layers": [{"type": "flatten"},'
        ' {"type": "dense", "units": 10, "activation": "softmax"}], "loss": "cross_entropy"}}',
        1008,
        ["start", "network"],
    ),
    (
        '{"type": "start", "network": {"input_shape": [1, 28, 28], "layers": [{"type": "flatten"},'
        ' {"type": "dense", "units": 10, "activation": "softmax"}], "loss": "cross_entropy"},'
        ' "init": "pretrained"}',
        1008,
        ["start", "init"],
    ),
    (
        '{"type": "start", "network": {"input_shape": [1, 28, 28], "layers": [{"type": "conv2d",'
        ' "out_channels": 64, "kernel_size": 3, "padding": 1}, {"type": "conv2d", "out_channels":'
        ' 64, "kernel_size": 3, "padding": 1}, {"type": "flatten"}, {"type": "dense", "units": 10,'
        ' "activation": "softmax"}], "loss": "cross_entropy"}}',
        1008,
        ["start", "network"],
    ),
    ('{"type": "start", "model": "digits", "pad": "' + "x" * 70000 + '"}', 1009, ["message"]),
]


@pytest.mark.parametrize(("raw", "code", "loc"), BAD_FIRST, ids=range(len(BAD_FIRST)))
def test_bad_first_message(client, raw, code, loc):
    with client.websocket_connect("/api/train") as ws:
        ws.send_text(raw)
        expect_close(ws, code, *loc)
    wait_freed(client.app)


BAD_COMMANDS = [
    ('{"type": "jump"}', 1008, ["message", "type"]),
    ('{"type": "start", "model": "digits"}', 1008, ["message", "type"]),
    ('{"type": "pause", "now": true}', 1008, ["pause", "now"]),
    ('{"type": "set_lr"}', 1008, ["set_lr", "lr"]),
    ('{"type": "set_lr", "lr": "0.1"}', 1008, ["set_lr", "lr"]),
    ('{"type": "set_lr", "lr": 0}', 1008, ["set_lr", "lr"]),
    ('{"type": "set_lr", "lr": 1e400}', 1007, ["message"]),
    ('{"type": "trace"}', 1008, ["trace", "index"]),
    ('{"type": "trace", "index": 1, "dev": 2}', 1008, ["trace", "index"]),
    ('{"type": "trace", "index": -1}', 1008, ["trace", "index"]),
    ('{"type": "trace", "index": 0, "colour": "red"}', 1008, ["trace", "colour"]),
    ('{"type": "trace", "index": 0, "encoding": "hex"}', 1008, ["trace"]),
    (
        '{"type": "trace", "index": 0, "weight": {"layer": 0, "name": "q"}}',
        1008,
        ["trace", "weight", "name"],
    ),
    ("{]", 1007, ["message"]),
    ("7", 1008, ["message"]),
]


@pytest.mark.parametrize(("raw", "code", "loc"), BAD_COMMANDS, ids=range(len(BAD_COMMANDS)))
def test_bad_command_closes_with_an_error(client, raw, code, loc):
    with client.websocket_connect("/api/train") as ws:
        started_paused(ws)
        ws.send_text(raw)
        expect_close(ws, code, *loc)
    wait_freed(client.app)


@pytest.mark.parametrize(
    ("msg", "loc"),
    [
        ({"type": "trace", "index": 99}, ["trace", "index"]),
        ({"type": "trace", "dev": 10_000}, ["trace", "dev"]),
        ({"type": "trace", "index": 0, "weight": {"layer": 1}}, ["trace", "weight", "layer"]),
        (
            {"type": "trace", "index": 0, "weight": {"layer": 0, "index": [0]}},
            ["trace", "weight", "index"],
        ),
    ],
)
def test_out_of_range_trace_is_a_non_fatal_error(client, msg, loc):
    with client.websocket_connect("/api/train") as ws:
        started_paused(ws)
        ws.send_json(msg)
        err = until(ws, "error")
        assert err["fatal"] is False and err["detail"][0]["loc"] == loc
        ws.send_json({"type": "trace", "index": 0})  # the run goes on
        assert until(ws, "trace")["index"] == 0


# ---------------------------------------------------------------------------- limits, freeing
def wait_freed(app, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slots = getattr(app.state, "train_slots", None)
        alive = [t for t in threading.enumerate() if t.name == "cnnviz-train"]
        if (slots is None or slots.active == 0) and not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run was not freed: {slots.active} active, threads {alive}")


def test_disconnect_frees_the_run(client):
    with client.websocket_connect("/api/train") as ws:
        ws.send_json(start_msg(max_steps=100_000))
        until(ws, "step")
        assert client.app.state.train_slots.active == 1
        assert [t for t in threading.enumerate() if t.name == "cnnviz-train"]
    wait_freed(client.app)


def test_too_many_runs(settings):
    app = create_app(replace(settings, train_max_runs=1))
    with TestClient(app) as c, c.websocket_connect("/api/train") as first:
        started_paused(first)
        with c.websocket_connect("/api/train") as second:
            second.send_json(start_msg())
            expect_close(second, 1013, "start")
        first.send_json({"type": "step"})  # the first run is unharmed
        assert until(first, "step")["step"] == 1
    wait_freed(app)
    with TestClient(app) as c, c.websocket_connect("/api/train") as again:  # the slot is back
        started_paused(again)


def test_idle_timeout_closes_a_paused_run(settings):
    app = create_app(replace(settings, train_idle_timeout_s=0.5))
    with TestClient(app) as c, c.websocket_connect("/api/train") as ws:
        started_paused(ws)
        expect_close(ws, 1001, "message")
    wait_freed(app)


def test_idle_timeout_before_start(settings):
    app = create_app(replace(settings, train_idle_timeout_s=0.3))
    with TestClient(app) as c, c.websocket_connect("/api/train") as ws:
        expect_close(ws, 1001, "message")


def test_foreign_origin_is_refused(client):
    with (
        pytest.raises(WebSocketDisconnect) as info,
        client.websocket_connect("/api/train", headers={"origin": "https://evil.example"}) as ws,
    ):
        ws.receive_json()
    assert info.value.code == 1008


def test_outbox_merges_steps_and_bounds_the_queue():
    woken = []
    box = Outbox(max_queued=2, notify=lambda: woken.append(1))
    for i in range(1, 1001):
        box.put_step({"type": "step", "step": i}, float(i))
    payload, _ = box.take(step_allowed=True)
    msg = json.loads(payload)
    assert msg["step"] == 1000 and len(msg["losses"]) == 500  # bounded, newest kept
    assert msg["first_step"] == 501 and msg["losses"][0] == 501.0
    assert box.dropped_steps == 999
    box.put(b"1")
    box.put(b"2")
    t = threading.Thread(target=box.put, args=(b"3",))
    t.start()
    t.join(0.5)
    assert t.is_alive()  # a full queue makes the producer wait instead of growing
    assert box.take(True)[0] == b"1"
    t.join(5)
    assert not t.is_alive()
    assert [box.take(True)[0], box.take(True)[0]] == [b"2", b"3"]
    sized = Outbox(max_queued=100, notify=lambda: None, max_bytes=10)
    sized.put(b"x" * 12)  # over the byte budget: the next one waits
    t2 = threading.Thread(target=sized.put, args=(b"y",))
    t2.start()
    t2.join(0.5)
    assert t2.is_alive() and sized.queued_bytes == 12
    assert sized.take(True)[0] == b"x" * 12
    t2.join(5)
    assert not t2.is_alive() and sized.queued_bytes == 1
    box.put(b"4")
    box.put(b"5")
    t = threading.Thread(target=box.put, args=(b"6",))
    t.start()
    box.close()  # closing releases a waiting producer
    t.join(5)
    assert not t.is_alive() and box.take(True) is None


def test_a_flood_of_commands_is_read_no_faster_than_the_run_answers(client):
    with client.websocket_connect("/api/train") as ws:
        started_paused(ws)
        for _ in range(300):
            ws.send_json({"type": "snapshot"})
        ws.send_json({"type": "export"})
        seen: list = []
        until(ws, "export", limit=10_000, seen=seen)
        assert sum(m["type"] == "snapshot" for m in seen) == 300
    wait_freed(client.app)


# ---------------------------------------------------------------------------- real uvicorn
def test_real_uvicorn_with_the_websockets_client(tiny_models_dir):
    import os

    websockets = pytest.importorskip("websockets")
    from tests.servers import free_port, start

    port = free_port()
    env = {**os.environ, "CNNVIZ_MODELS_DIR": str(tiny_models_dir)}
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    srv = start(args, port, env=env)
    url = f"ws://127.0.0.1:{port}/api/train"

    async def client():
        async with websockets.connect(url, max_size=2**26) as ws:
            await ws.send(json.dumps(start_msg(max_steps=10_000)))
            types = []
            async for raw in ws:
                m = json.loads(raw)
                types.append(m["type"])
                if m["type"] == "step" and m["step"] >= 30:
                    break
            await ws.send(json.dumps({"type": "pause"}))
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "state" and m["state"] == "paused":
                    break
            await ws.send(json.dumps({"type": "trace", "index": 1}))
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "trace":
                    trace = m
                    break
            await ws.send(json.dumps({"type": "stop"}))
            async for raw in ws:
                if json.loads(raw)["type"] == "done":
                    break
            # a bad message: an error, then close code 1008
            await ws.send(json.dumps({"type": "fly"}))
            err = json.loads(await ws.recv())
            while err["type"] != "error":  # what the run said before it
                err = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return types, trace, err, closed.value.rcvd.code

    try:
        types, trace, err, code = asyncio.run(asyncio.wait_for(client(), 120))
        assert {"started", "eval", "state", "step"} <= set(types)
        assert trace["trace"]["layers"] and trace["update"]["optimizer"] == "momentum"
        assert err["type"] == "error" and err["detail"][0]["loc"] == ["message", "type"]
        assert code == 1008
        assert "Traceback" not in srv.output()
    finally:
        srv.stop()
