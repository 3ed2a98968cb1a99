"""POST /api/trace: exact values, the hand-checkable scenario, SGD, and every bad input."""

from __future__ import annotations

import asyncio
import copy
import math
import threading

import numpy as np
import pytest
from api_helpers import SCENARIO_1, SMALL, SMALL_INPUT, SMALL_PARAMS, assert_error, close

from cnncore import Network, models


def custom(**over):
    body = {
        "network": copy.deepcopy(SMALL),
        "params": copy.deepcopy(SMALL_PARAMS),
        "input": copy.deepcopy(SMALL_INPUT),
        "target": [5],
    }
    body.update(over)
    return body


def assert_matches_trace(body: dict, tr) -> None:
    want = tr.to_dict()
    assert body["loss"] == want["loss"]
    assert close(body["output"], want["output"]) and close(body["target"], want["target"])
    assert body["network"] == want["network"]
    assert len(body["layers"]) == len(want["layers"])
    for got, exp in zip(body["layers"], want["layers"], strict=True):
        assert got["index"] == exp["index"] and got["type"] == exp["type"]
        assert got["input_shape"] == exp["input_shape"]
        assert got["output_shape"] == exp["output_shape"]
        assert set(got["params"]) == set(exp["params"])
        for k in exp["params"]:
            assert close(got["params"][k], exp["params"][k])
        for part in ("forward", "backward"):
            assert set(got[part]) == set(exp[part])
            for k in exp[part]:
                assert close(got[part][k], exp[part][k]), (exp["index"], part, k)
        assert ("argmax" in got) == ("argmax" in exp)
        if "argmax" in exp:
            assert np.array_equal(np.array(got["argmax"]), exp["argmax"])


# ------------------------------------------------------------------ values
def test_model_trace_equals_engine(client, tiny_models_dir):
    x = np.random.default_rng(0).random((28, 28))
    r = client.post("/api/trace", json={"model": "digits", "input": x.tolist(), "target": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    net, _ = models.load_file(tiny_models_dir / "digits")
    tr = net.trace(x[None], 3)
    assert_matches_trace(body, tr)
    assert body["prediction"] == tr.prediction
    assert "updated_params" not in body and "loss_after" not in body
    assert body["layers"][1]["type"] == "maxpool2d" and "argmax" in body["layers"][1]
    assert body["layers"][0]["backward"]["dC_dw"] is not None
    assert body["layers"][2]["backward"]["dC_dw"] is None  # flatten


def test_model_trace_chw_input_and_one_hot_target(client, tiny_models_dir):
    x = np.random.default_rng(1).random((1, 28, 28))
    onehot = [0.0] * 10
    onehot[7] = 1.0
    r1 = client.post("/api/trace", json={"model": "digits", "input": x.tolist(), "target": 7})
    r2 = client.post("/api/trace", json={"model": "digits", "input": x.tolist(), "target": onehot})
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["loss"] == r2.json()["loss"]


def test_custom_trace_equals_engine(client):
    r = client.post("/api/trace", json=custom())
    assert r.status_code == 200, r.text
    net = Network.from_spec(SMALL, params=SMALL_PARAMS)
    assert_matches_trace(r.json(), net.trace(np.array([SMALL_INPUT], float), [5]))
    assert "prediction" not in r.json()


def test_custom_seeded_init_is_deterministic(client):
    body = {"network": SMALL, "input": SMALL_INPUT, "target": [5], "seed": 7}
    a, b = client.post("/api/trace", json=body).json(), client.post("/api/trace", json=body).json()
    assert a == b
    net = Network.from_spec(SMALL, seed=7)
    assert_matches_trace(a, net.trace(np.array([SMALL_INPUT], float), [5]))


def test_scenario_1_gradient_by_hand(client):
    """conv 2×2 on 3×3 -> flatten -> dense 1 -> MSE; every number below is done by hand."""
    r = client.post("/api/trace", json={"scenario": SCENARIO_1})
    assert r.status_code == 200, r.text
    body = r.json()
    conv, _, dense = body["layers"]
    # forward: z = x ⋆ w + b with w = [[1, -1], [2, 0]], b = 1
    assert conv["forward"]["z"] == [[[6, 5], [3, 2]]]
    assert dense["forward"]["z"] == [7]  # 6 - 5 + 3 + 2·2 - 1
    assert body["loss"] == 2.0  # ½ (7 - 5)²
    # backward: δ = 7 - 5 = 2
    assert dense["backward"]["dC_dz"] == [2]
    assert dense["backward"]["dC_dw"] == [[12, 10, 6, 4]]  # 2 · [6, 5, 3, 2]
    assert dense["backward"]["dC_db"] == [2]
    assert conv["backward"]["dC_dz"] == [[[2, -2], [2, 4]]]  # 2 · [1, -1, 1, 2]
    # dC/dw = x ⋆ δ (valid): e.g. w00 = 1·2 + 2·(-2) + 3·2 + 1·4 = 8
    assert conv["backward"]["dC_dw"] == [[[[8, 14], [8, 12]]]]
    assert conv["backward"]["dC_db"] == [6]  # 2 - 2 + 2 + 4


def test_scenario_trace_equals_engine(client):
    from cnncore import scenarios

    for sid, s in scenarios.SCENARIOS.items():
        r = client.post("/api/trace", json={"scenario": sid})
        assert r.status_code == 200, (sid, r.text)
        assert_matches_trace(r.json(), s.trace())


def test_scenario_with_own_input_and_target(client):
    r = client.post(
        "/api/trace", json={"scenario": SCENARIO_1, "input": [[0] * 3] * 3, "target": 0.5}
    )
    assert r.status_code == 200, r.text
    # a zero input leaves z = b = 1 in every conv cell; dense: 1 - 1 + 1 + 2 - 1 = 2
    assert r.json()["output"] == [2.0]
    assert r.json()["loss"] == 0.5 * (2 - 0.5) ** 2


# ------------------------------------------------------------------ one SGD step
def test_learning_rate_lowers_the_loss_custom(client):
    r = client.post("/api/trace", json=custom(learning_rate=0.01))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["loss_after"] < body["loss"]
    net = Network.from_spec(SMALL, params=SMALL_PARAMS)
    tr = net.trace(np.array([SMALL_INPUT], float), [5])
    net2 = net.sgd_step([rec.grads() for rec in tr.records], 0.01)
    for got, want in zip(body["updated_params"], net2.params, strict=True):
        assert set(got) == set(want)
        for k in want:
            assert close(got[k], want[k])
    assert body["loss_after"] == net2.trace(np.array([SMALL_INPUT], float), [5]).loss
    # by hand: w_dense <- [1, -1, 1, 2] - 0.01 · [12, 10, 6, 4]
    assert close(body["updated_params"][2]["w"], [[0.88, -1.1, 0.94, 1.96]])


def test_learning_rate_lowers_the_loss_model(client):
    x = np.random.default_rng(2).random((28, 28)).tolist()
    r = client.post(
        "/api/trace", json={"model": "digits", "input": x, "target": 4, "learning_rate": 0.1}
    )
    assert r.status_code == 200, r.text
    assert r.json()["loss_after"] < r.json()["loss"]


# ------------------------------------------------------------------ bad input -> 4xx, field named
BAD_CASES = {
    # body and choice of network
    "neither": ({"input": SMALL_INPUT, "target": [5]}, ("body",)),
    "both model and scenario": ({"model": "digits", "scenario": SCENARIO_1}, ("body", "scenario")),
    "both model and network": (custom(model="digits"), ("body", "network")),
    "unknown model": ({"model": "nope", "input": SMALL_INPUT, "target": 1}, ("body", "model")),
    "unknown scenario": ({"scenario": "nope"}, ("body", "scenario")),
    "unknown field": (custom(inputs=[1]), ("body", "inputs")),
    "params without network": ({"scenario": SCENARIO_1, "params": []}, ("body", "params")),
    "seed without network": ({"scenario": SCENARIO_1, "seed": 3}, ("body", "seed")),
    "bool seed": (custom(seed=True), ("body", "seed")),
    "negative seed": (custom(seed=-1), ("body", "seed")),
    "string model": ({"model": 5, "input": SMALL_INPUT, "target": 1}, ("body", "model")),
    # input
    "missing input": ({"network": SMALL, "target": [5]}, ("body", "input")),
    "ragged input": (custom(input=[[1, 2, 3], [4, 5], [7, 8, 9]]), ("body", "input", 1)),
    "wrong input shape": (custom(input=[[1, 2], [3, 4]]), ("body", "input")),
    "input too deep": (custom(input=[[[[1, 2, 3]] * 3]]), ("body", "input")),
    "string in input": (custom(input=[[1, 2, "3"], [4, 5, 6], [7, 8, 9]]), ("body", "input", 0, 2)),
    "bool in input": (custom(input=[[1, 2, True], [4, 5, 6], [7, 8, 9]]), ("body", "input", 0, 2)),
    "null in input": (custom(input=[[1, 2, None], [4, 5, 6], [7, 8, 9]]), ("body", "input", 0, 2)),
    "huge value in input": (
        custom(input=[[1, 2, 1e300], [4, 5, 6], [7, 8, 9]]),
        ("body", "input", 0, 2),
    ),
    "input is a number": (custom(input=3), ("body", "input")),
    # target
    "missing target": ({"network": SMALL, "input": SMALL_INPUT}, ("body", "target")),
    "wrong target shape": (custom(target=[1, 2]), ("body", "target")),
    "bool target": (custom(target=True), ("body", "target")),
    "class out of range": (
        {"model": "digits", "input": [[0] * 28] * 28, "target": 10},
        ("body", "target"),
    ),
    "negative class": (
        {"model": "digits", "input": [[0] * 28] * 28, "target": -1},
        ("body", "target"),
    ),
    "float class": (
        {"model": "digits", "input": [[0] * 28] * 28, "target": 2.5},
        ("body", "target"),
    ),
    # learning rate
    "zero learning rate": (custom(learning_rate=0), ("body", "learning_rate")),
    "negative learning rate": (custom(learning_rate=-0.1), ("body", "learning_rate")),
    "huge learning rate": (custom(learning_rate=11), ("body", "learning_rate")),
    "string learning rate": (custom(learning_rate="0.1"), ("body", "learning_rate")),
    # params
    "params wrong count": (custom(params=[{}]), ("body", "params")),
    "params wrong keys": (
        custom(params=[{"w": [[[[1, 1], [1, 1]]]]}, {}, SMALL_PARAMS[2]]),
        ("body", "params", 0),
    ),
    "params wrong shape": (
        custom(params=[{"w": [[[[1, 1, 1], [1, 1, 1]]]], "b": [1]}, {}, SMALL_PARAMS[2]]),
        ("body", "params", 0, "w"),
    ),
    "params for flatten": (
        custom(params=[SMALL_PARAMS[0], {"w": [1]}, SMALL_PARAMS[2]]),
        ("body", "params", 1),
    ),
}


def _spec(**layer0) -> dict:
    spec = copy.deepcopy(SMALL)
    spec["layers"][0].update(layer0)
    return spec


SPEC_CASES = {
    "unknown layer type": (_spec(type="conv3d"), ("layers", 0, "type")),
    "kernel larger than input": (_spec(kernel_size=5), ("layers", 0, "kernel_size")),
    "zero kernel": (_spec(kernel_size=0), ("layers", 0, "kernel_size")),
    "negative stride": (_spec(stride=-1), ("layers", 0, "stride")),
    "zero channels": (_spec(out_channels=0), ("layers", 0, "out_channels")),
    "bool channels": (_spec(out_channels=True), ("layers", 0, "out_channels")),
    "unknown activation": (_spec(activation="gelu"), ("layers", 0, "activation")),
    "same with stride 2": (_spec(padding="same", stride=2), ("layers", 0, "padding")),
    "unknown loss": ({**SMALL, "loss": "hinge"}, ("loss",)),
    "zero input size": ({**SMALL, "input_shape": [1, 0, 3]}, ("input_shape",)),
    "network not an object": ([1, 2], ()),
    "empty layers": ({**SMALL, "layers": []}, ("layers",)),
    # caps
    "input over cap": ({**SMALL, "input_shape": [4, 3, 3]}, ("input_shape",)),
    "image over cap": ({**SMALL, "input_shape": [1, 65, 3]}, ("input_shape",)),
    "too many channels": (_spec(out_channels=65), ("layers", 0, "out_channels")),
    "too many layers": ({**SMALL, "layers": [{"type": "flatten"}] * 13}, ("layers",)),
    "too many multiply-adds": (
        {
            "input_shape": [3, 64, 64],
            "layers": [{"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}] * 2
            + [{"type": "flatten"}, {"type": "dense", "units": 1}],
        },
        (),
    ),
    "too many numbers": (
        {
            "input_shape": [3, 64, 64],
            "layers": [{"type": "flatten"}, {"type": "dense", "units": 100}],
        },
        (),
    ),
    "huge dense": (
        {
            "input_shape": [1, 2, 2],
            "layers": [{"type": "flatten"}, {"type": "dense", "units": 10**12}],
        },
        (),
    ),
}


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input(client, name):
    body, loc = BAD_CASES[name]
    assert_error(client.post("/api/trace", json=body), 422, *loc)


@pytest.mark.parametrize("name", list(SPEC_CASES))
def test_bad_spec(client, name):
    spec, loc = SPEC_CASES[name]
    body = {"network": spec, "input": SMALL_INPUT, "target": [5]}
    item = assert_error(client.post("/api/trace", json=body), 422, "body", "network", *loc)
    assert item["type"] in ("spec_error", "cap", "dict_type"), item


@pytest.mark.parametrize(
    "raw",
    [
        b'{"network": {}, "input": [NaN]}',
        b'{"model": "digits", "input": [[Infinity]], "target": 1}',
        b'{"model": "digits", "target": -Infinity}',
        b'{"model": "digits", "input": [1e999], "target": 1}',
        b'{"model": "digits", ',
        b"not json",
        b"",
        b"[]",
        b'"digits"',
    ],
)
def test_malformed_body(client, raw):
    r = client.post("/api/trace", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 422, "body")


def test_non_json_content_type(client):
    r = client.post(
        "/api/trace",
        content=b"model=digits",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= r.status_code < 500


def test_wrong_method(client):
    r = client.get("/api/trace")
    assert_error(r, 405)


def test_response_has_no_nan(client):
    r = client.post("/api/trace", json=custom(learning_rate=10.0))
    assert r.status_code in (200, 422)
    assert b"NaN" not in r.content and b"Infinity" not in r.content
    if r.status_code == 200:
        assert math.isfinite(r.json()["loss_after"])


def test_trace_serializer_gives_the_same_bytes(tiny_models_dir):
    """dumps_trace (arrays serialized once, bundled parameters pre-serialized) == dumps."""
    from app.services import serialize

    net, _ = models.load_file(tiny_models_dir / "digits")
    serialize.pin_params(net)
    out = net.trace(np.random.default_rng(3).random((1, 28, 28)), 5).to_dict()
    assert serialize.dumps_trace(out) == serialize.dumps(out)


def test_trace_serializer_pieces_are_the_same_bytes_unjoined(tiny_models_dir, monkeypatch):
    """dumps_trace_pieces: long arrays' JSON are pieces of their own (not copied into the
    rest), the pieces joined are dumps' bytes, also next to strings with NUL characters (the
    placeholders' marker, escaped by orjson in every string)."""
    from app.services import serialize

    net, _ = models.load_file(tiny_models_dir / "digits")
    serialize.pin_params(net)
    out = net.trace(np.random.default_rng(4).random((1, 28, 28)), 2).to_dict()
    out["note"] = "a\x00b\x00"
    monkeypatch.setattr(serialize, "PIECE_BYTES", 64)
    for encoding, dumps in (("json", serialize.dumps), ("base64", serialize.dumps_b64)):
        pieces = serialize.dumps_trace_pieces(out, encoding)
        assert b"".join(pieces) == dumps(out)
        assert len(pieces) > 10 and all(pieces)
        assert not any(b"\0" in p for p in pieces)
        # every array's piece is the very bytes its encoder gives (no copy, no re-encoding)
        a = out["layers"][0]["forward"]["a"]
        assert serialize.ENCODINGS[encoding][0](a) in pieces


def test_trace_serializer_shares_equal_values_bit_for_bit():
    """Equal tensors of a layer share their JSON, but -0.0 is not 0.0."""
    from app.services import serialize

    z = np.array([[0.0, 1.5]])
    layer = {
        "params": {},
        "forward": {"a_prev": z, "z": z.copy(), "a": np.array([[-0.0, 1.5]])},
        "backward": {"dC_da": z.copy(), "dC_dz": z * -1, "dC_db": None},
    }
    out = {"loss": 0.5, "layers": [layer, {**layer, "argmax": np.array([1])}]}
    assert serialize.dumps_trace(out) == serialize.dumps(out)
    assert b"[[-0.0,1.5]]" in serialize.dumps_trace(out)


def test_gzip_can_be_turned_off(settings):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(replace(settings, gzip_level=0))) as c:
        r = c.get("/openapi.json", headers={"accept-encoding": "gzip"})
        assert r.status_code == 200 and "content-encoding" not in r.headers


def test_largest_custom_network_answers_promptly(client):
    """A network just under the caps (3×64×64 input, 64 channels) traces in bounded time."""
    import time

    spec = {
        "input_shape": [3, 64, 64],
        "layers": [
            {
                "type": "conv2d",
                "out_channels": 8,
                "kernel_size": 3,
                "padding": 1,
                "activation": "relu",
            },
            {"type": "maxpool2d", "kernel_size": 2},
            {
                "type": "conv2d",
                "out_channels": 64,
                "kernel_size": 3,
                "stride": 2,
                "activation": "relu",
            },
            {"type": "avgpool2d", "kernel_size": 3},
            {"type": "flatten"},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
    }
    x = np.random.default_rng(4).random((3, 64, 64)).tolist()
    t0 = time.perf_counter()
    r = client.post(
        "/api/trace", json={"network": spec, "input": x, "target": 1, "learning_rate": 0.1}
    )
    assert r.status_code == 200, r.text
    assert time.perf_counter() - t0 < 10
    assert r.json()["loss_after"] < r.json()["loss"]


@pytest.mark.parametrize("path", ["/api/trace", "/api/predict"])
def test_deeply_nested_json_is_refused(client, path):
    raw = b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(r, 422, "body")


# ---------------------------------------------------------------- the compute thread
def _in_loop(coro_fn):
    return asyncio.run(asyncio.wait_for(coro_fn(), 30))


def test_compute_thread_runs_jobs_off_the_loop_in_order_on_one_thread():
    from app.routes import run_compute

    ran: list[tuple[int, int]] = []

    def job(i: int) -> int:
        ran.append((i, threading.get_ident()))
        return i * i

    async def main():
        results = await asyncio.gather(*(run_compute(job, i) for i in range(6)))
        return results, threading.get_ident()

    results, loop_thread = _in_loop(main)
    assert results == [i * i for i in range(6)]
    assert [i for i, _ in ran] == list(range(6))  # one at a time, in order
    threads = {t for _, t in ran}
    assert len(threads) == 1 and loop_thread not in threads


def test_a_request_alone_is_computed_on_the_loop_unless_the_thread_has_work():
    """`alone=True` (the only request this worker serves): the job runs on the event loop
    itself, with no hand-off; while the compute thread has a job, it queues behind it."""
    from app.routes import run_compute

    release = threading.Event()

    def where() -> int:
        return threading.get_ident()

    async def main():
        loop_thread = threading.get_ident()
        alone = await run_compute(where, alone=True)
        not_alone = await run_compute(where)
        busy = asyncio.ensure_future(run_compute(lambda: release.wait(10) and where()))
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(run_compute(where, alone=True))
        await asyncio.sleep(0.05)
        release.set()
        return loop_thread, alone, not_alone, await busy, await queued

    loop_thread, alone, not_alone, busy, queued = _in_loop(main)
    assert alone == loop_thread
    assert not_alone != loop_thread and busy == not_alone and queued == not_alone


def test_compute_thread_error_is_raised_in_the_request():
    from app.errors import ApiError
    from app.routes import run_compute

    def bad():
        raise ApiError(("body", "input"), "nope", "shape")

    async def main():
        with pytest.raises(ApiError):
            await run_compute(bad)
        return await run_compute(lambda: "still serving")

    assert _in_loop(main) == "still serving"


def test_a_long_job_does_not_block_the_event_loop():
    from app.routes import run_compute

    loop_ran = threading.Event()

    def job() -> bool:
        # finishes only once the event loop has run something else meanwhile (10 s at most)
        return loop_ran.wait(10)

    async def main():
        async def other_request():
            await asyncio.sleep(0)
            loop_ran.set()

        task = asyncio.create_task(other_request())
        seen = await run_compute(job)
        await task
        return seen

    assert _in_loop(main) is True


def test_a_cancelled_request_s_job_is_skipped_and_the_thread_ends_when_idle():
    from app.routes import ComputeThread

    release = threading.Event()
    ran: list[str] = []

    async def main():
        worker = ComputeThread(asyncio.get_running_loop(), idle=0.1)
        first = worker.submit(lambda: (release.wait(10), ran.append("first")), ())
        second = worker.submit(lambda: ran.append("second"), ())
        second.cancel()  # its request went away before the job started
        release.set()
        await first
        third = await worker.submit(lambda: ran.append("third") or 3, ())
        for _ in range(100):  # the thread ends 0.1 s after its last job
            await asyncio.sleep(0.05)
            if not worker._alive:
                break
        idle_ended = not worker._alive
        again = await worker.submit(lambda: 4, ())  # a new thread starts for a new job
        return third, idle_ended, again

    assert _in_loop(main) == (3, True, 4)
    assert ran == ["first", "third"]
