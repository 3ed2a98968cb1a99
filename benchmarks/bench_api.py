"""HTTP benchmark of the REST API against a real uvicorn on 127.0.0.1.

For 1 and 2 workers (`cnnviz serve --workers N`), and 1, 8 and 32 concurrent clients, it
measures p50/p99 latency and requests/s of

* `POST /api/predict` with a 280×280 drawing as JSON (3 decimals per pixel, as the UI sends),
* `POST /api/predict` with the same drawing as a PNG upload,
* `POST /api/trace` on scenario 1 (a tiny response: the fixed cost of HTTP) and on the digit
  model (4.9 MB of JSON; identity encoding, and gzip as a browser asks; and with
  `"encoding": "base64"`, every array as base64 of its float64 bytes, 4.2 MB),

and compares the HTTP latency at 1 client with the engine's own time for the same work,
measured in this process (predict: `to_mnist` + forward; trace: `Network.trace`).

Issue 11's API target, "p50 − engine <= floor + 1 ms" for each encoding and selection of the
digit-model trace (complete JSON, complete base64, lean base64, lean JSON), is checked on every
such row at 1 client, and the table prints "met" or "not met (+x ms)" for it. The floor is what
a response costs before any routing, validation or engine: serializing it in-process (the
service's own `apply` + `dumps_trace`) plus sending the very bytes the API sent from a bare
ASGI app (`floor_app.py`) under the same uvicorn and client. It is measured side by side: the
bare app runs next to the API server and the two get requests in alternating blocks of five,
with the engine and the serializer timed in the same rounds, so a busy machine slows both
alike (`side_by_side`). Every row reports the 1-minute load average it ran under. In-process
timings use the server's allocator settings (`app.main.reuse_freed_memory`).

The engine and the serializer are timed as the API runs them (`pipeline`): each call computes
a fresh trace and its public form (`Network.trace` + `Trace.to_dict`, where the engine
computes the max-pool argmax the trace returns), then serializes that very trace; the next
call's engine runs after this serialization, as the server's does after a response. Until
2026-11-30 the engine was `Network.trace` alone, run five times back to back, and the
serializer ran on one fixed trace: that left `Trace.to_dict` (~0.3 ms on a fresh trace, the
argmax included), which the API must run, out of both sides, and timed the engine with caches
still holding its previous trace. The
table still prints that number ("engine alone") beside the one the target uses.

    .venv/bin/python benchmarks/bench_api.py [--quick] [--workers 1 2] [--clients 1 8 32]
                                             [--only "trace (digits)"]
    .venv/bin/python benchmarks/bench_api.py --targets      # only the four target rows, ~1 min
    .venv/bin/python benchmarks/bench_api.py --mixed 40 [--compare-keep-alive]

On a shared machine, run it quietly: `nice -n 10 .venv/bin/python benchmarks/bench_api.py
--targets` (or `--only TEXT`, `--quick`). `nice` is inherited by the servers it starts and by the
bare floor app alike, so the side-by-side comparison holds; the absolute numbers rise with the
load, which is why every row prints it. A whole run takes a few minutes.

`--mixed` runs only the mixed load (64 threads sharing an httpx client against 2 workers:
lean and complete traces, predicts, a worked example with a learning rate, learning steps)
and reports dropped requests (no answer at all), 5xx and the workers' RSS growth.

Clients are threads with one keep-alive `http.client` connection each (a light client, so
the numbers are the server's, not httpx's).
"""

# ruff: noqa: E402  (the BLAS thread count must be set before NumPy loads)
from __future__ import annotations

import os

# The engine's own time is measured as the server runs it: one BLAS thread per process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import contextlib
import http.client
import io
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnncore import models, preprocess


# ------------------------------------------------------------------------------ workloads
def drawing(size: int = 280) -> np.ndarray:
    """A '7' drawn with a round pen, anti-aliased (4× supersampled), ink = 1."""
    big = Image.new("L", (4 * size, 4 * size), 0)
    d = ImageDraw.Draw(big)
    s = 4 * size / 280
    pen = int(22 * s)
    pts = [(70 * s, 60 * s), (210 * s, 60 * s), (130 * s, 230 * s)]
    d.line(pts, fill=255, width=pen, joint="curve")
    for x, y in pts:
        d.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    small = big.resize((size, size), Image.Resampling.BOX)
    return np.round(np.asarray(small, dtype=np.float64) / 255.0, 3)


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "cnnvizbenchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def workloads() -> dict[str, dict]:
    ink = drawing()
    x28 = preprocess.to_mnist(ink)
    buf = io.BytesIO()
    Image.fromarray((255 - np.round(ink * 255)).astype(np.uint8)).save(buf, format="PNG")
    png_body, png_type = multipart("file", "seven.png", buf.getvalue())
    trace_body = orjson.dumps(
        {"model": "digits", "input": x28, "target": 7}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    trace_b64_body = orjson.dumps(
        {"model": "digits", "input": x28, "target": 7, "encoding": "base64"},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    predict_body = orjson.dumps(
        {"model": "digits", "image": ink}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    lean_body = orjson.dumps(
        {"model": "digits", "input": x28, "target": 7, **LEAN}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    lean_json_body = orjson.dumps(
        {"model": "digits", "input": x28, "target": 7, **LEAN, "encoding": "json"},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return {
        "predict (JSON 280×280)": {
            "path": "/api/predict",
            "body": predict_body,
            "type": "application/json",
            "gzip": False,
            "n": 300,
        },
        "predict (PNG 280×280)": {
            "path": "/api/predict",
            "body": png_body,
            "type": png_type,
            "gzip": False,
            "n": 300,
        },
        "trace (scenario conv-dense)": {
            "path": "/api/trace",
            "body": b'{"scenario": "conv-dense"}',
            "type": "application/json",
            "gzip": False,
            "n": 300,
        },
        "trace (digits)": {
            "path": "/api/trace",
            "body": trace_body,
            "type": "application/json",
            "gzip": False,
            "n": 60,
        },
        "trace (digits, gzip)": {
            "path": "/api/trace",
            "body": trace_body,
            "type": "application/json",
            "gzip": True,
            "n": 30,
        },
        "trace (digits, base64)": {
            "path": "/api/trace",
            "body": trace_b64_body,
            "type": "application/json",
            "gzip": False,
            "n": 60,
        },
        "trace (digits, lean base64)": {
            "path": "/api/trace",
            "body": lean_body,
            "type": "application/json",
            "gzip": False,
            "n": 60,
        },
        "trace (digits, lean json)": {
            "path": "/api/trace",
            "body": lean_json_body,
            "type": "application/json",
            "gzip": False,
            "n": 60,
        },
    }


# What the page asks for (static/js/api.js LEAN): no parameters, nothing twice, base64.
LEAN = {"include": ["forward", "backward", "argmax"], "dedupe": True, "encoding": "base64"}


def engine_work() -> dict[str, tuple]:
    """For each workload: (the engine's own work, the whole service call without HTTP).

    Engine: predict = preprocessing + forward pass; trace = `Network.trace`. Service: what the
    handler runs (parsing, validation, engine, JSON serialization), in this process."""
    from app import services
    from app.schemas import TraceRequest
    from app.settings import Settings
    from cnncore.scenarios import get as get_scenario

    settings = Settings()
    net, _ = models.load("digits")
    ink = drawing()
    x28 = preprocess.to_mnist(ink)
    buf = io.BytesIO()
    Image.fromarray((255 - np.round(ink * 255)).astype(np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    loads = workloads()
    predict_raw = loads["predict (JSON 280×280)"]["body"]
    trace_req = TraceRequest.model_validate(orjson.loads(loads["trace (digits)"]["body"]))

    def predict_json():
        net.predict(preprocess.to_mnist(ink).reshape(1, 1, 28, 28))

    def predict_png():
        net.predict(preprocess.to_mnist(preprocess.image_from_bytes(png)).reshape(1, 1, 28, 28))

    def trace():
        net.trace(x28[None], 7)

    trace_pair = (trace, lambda: services.trace_json(trace_req, settings))
    trace_b64_req = TraceRequest.model_validate(
        orjson.loads(loads["trace (digits, base64)"]["body"])
    )
    lean_req = TraceRequest.model_validate(
        orjson.loads(loads["trace (digits, lean base64)"]["body"])
    )
    lean_json_req = TraceRequest.model_validate(
        orjson.loads(loads["trace (digits, lean json)"]["body"])
    )
    scenario = get_scenario("conv-dense")
    scenario_net = scenario.network()
    scenario_x = np.array(scenario.input, dtype=np.float64)
    scenario_req = TraceRequest(scenario="conv-dense")
    return {
        "predict (JSON 280×280)": (
            predict_json,
            lambda: services.predict_json(predict_raw, settings),
        ),
        "predict (PNG 280×280)": (
            predict_png,
            lambda: services.predict_upload("digits", png, settings),
        ),
        "trace (scenario conv-dense)": (
            lambda: scenario_net.trace(scenario_x, scenario.target),
            lambda: services.trace_json(scenario_req, settings),
        ),
        "trace (digits)": trace_pair,
        "trace (digits, gzip)": trace_pair,
        "trace (digits, base64)": (trace, lambda: services.trace_json(trace_b64_req, settings)),
        "trace (digits, lean base64)": (trace, lambda: services.trace_json(lean_req, settings)),
        "trace (digits, lean json)": (trace, lambda: services.trace_json(lean_json_req, settings)),
    }


def median_ms(f, repeat: int = 50) -> float:
    f()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


# ------------------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/health")
            ok = c.getresponse().status == 200
            c.close()
            if ok:
                return
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError("server did not start")


def _spawn(cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_ready(proc, port)
    return proc, port


def start_server(workers: int) -> tuple[subprocess.Popen, int]:
    cnnviz = Path(sys.executable).parent / "cnnviz"
    return _spawn([str(cnnviz), "serve", "--workers", str(workers)])


def start_floor_server(
    body_path: Path | None = None, workload: str | None = None
) -> tuple[subprocess.Popen, int]:
    """`floor_app.py` under the same uvicorn (its default loop and HTTP parser, as `cnnviz
    serve`), answering every request with the bytes in `body_path`, or computing `workload`'s
    trace for each request without the framework."""
    env = dict(os.environ)
    if workload is not None:
        env["CNNVIZ_FLOOR_WORKLOAD"] = workload
    else:
        env["CNNVIZ_FLOOR_BODY"] = str(body_path)
    uvicorn = [
        sys.executable,
        "-m",
        "uvicorn",
        "floor_app:app",
        "--app-dir",
        str(ROOT / "benchmarks"),
    ]
    return _spawn(uvicorn, env)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ------------------------------------------------------------------------------ load
def response_body(port: int, w: dict) -> bytes:
    """One response body, as sent (gzipped when the workload asks for gzip)."""
    headers = {"Content-Type": w["type"], "Accept-Encoding": "gzip" if w["gzip"] else "identity"}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request("POST", w["path"], body=w["body"], headers=headers)
        return c.getresponse().read()
    finally:
        c.close()


def run_load(port: int, w: dict, clients: int, n: int) -> dict[str, float]:
    headers = {"Content-Type": w["type"], "Accept-Encoding": "gzip" if w["gzip"] else "identity"}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        try:
            while True:
                with lock:
                    if next(counter, None) is None:
                        break
                t0 = time.perf_counter()
                conn.request("POST", w["path"], body=w["body"], headers=headers)
                resp = conn.getresponse()
                resp.read()
                mine.append(time.perf_counter() - t0)
                if resp.status != 200:
                    errors.append(str(resp.status))
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    # warm-up: every worker process loads the model on its first request
    for _ in range(4):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", w["path"], body=w["body"], headers=headers)
        c.getresponse().read()
        c.close()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {sorted(set(errors))}")
    lat = np.array(latencies) * 1e3
    return {
        "n": len(lat),
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "rps": len(lat) / wall,
    }


# The digit-model traces whose target is issue 11's "p50 − engine <= floor + 1 ms" (at 1
# client), for each encoding and selection, the complete default trace included.
FLOOR_WORKLOADS = (
    "trace (digits)",
    "trace (digits, base64)",
    "trace (digits, lean base64)",
    "trace (digits, lean json)",
)
BLOCK = 5  # requests per server (and in-process calls) in one round of `side_by_side`
TARGET_N = 100  # API requests per target row (20 rounds)


def _trace_parts(name: str):
    """The digit model (parameters pre-serialized as in the server), the workload's input,
    its selection and encoding."""
    from app.services.selection import PARTS, Selection
    from app.services.serialize import pin_params

    net, _ = models.load("digits")
    pin_params(net)
    x = preprocess.to_mnist(drawing())[None]
    encoding = "base64" if "base64" in name else "json"
    if "lean" in name:
        sel = Selection(frozenset(LEAN["include"]), None, frozenset(), frozenset(), True)
    else:
        sel = Selection(frozenset(PARTS), None, frozenset(), frozenset(), False)
    return net, x, sel, encoding


def pipeline(name: str):
    """The engine and the floor's in-process part for a digit-trace workload, timed apart but
    run as the API runs them: one fresh trace per call, then its serialization.

    * engine: `Network.trace` and the trace's public form `Trace.to_dict()`, in which the
      engine computes each max-pool's argmax (lazily: `Network.trace` alone leaves it out);
    * serializer: the service's own selection and serializer (`apply` + `dumps_trace`) on that
      very trace.

    Each call's engine thus runs after the previous call's serialization, as in the server
    (caches holding the last response, not the last trace). Returns a callable giving
    (engine ms, serializer ms, engine CPU ms, serializer CPU ms)."""
    from app.services.selection import apply
    from app.services.serialize import dumps_trace

    net, x, sel, encoding = _trace_parts(name)

    def run() -> tuple[float, float, float, float]:
        c0, t0 = time.thread_time(), time.perf_counter()
        out = net.trace(x, 7).to_dict()
        c1, t1 = time.thread_time(), time.perf_counter()
        dumps_trace(apply(out, sel, encoding, True), encoding)
        c2, t2 = time.thread_time(), time.perf_counter()
        return (t1 - t0) * 1e3, (t2 - t1) * 1e3, (c1 - c0) * 1e3, (c2 - c1) * 1e3

    return run


def trace_maker(name: str):
    """What the API computes for a digit-trace workload, without the framework: engine,
    selection, serializer. Returns a callable giving the response's bytes (`floor_app.py`)."""
    from app.services.selection import apply
    from app.services.serialize import dumps_trace

    net, x, sel, encoding = _trace_parts(name)
    return lambda: dumps_trace(apply(net.trace(x, 7).to_dict(), sel, encoding, True), encoding)


class Client:
    """One keep-alive connection, as `run_load`'s clients; checks status and body size."""

    def __init__(self, port: int, w: dict, size: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.w, self.size = w, size
        self.headers = {"Content-Type": w["type"], "Accept-Encoding": "identity"}

    def post_ms(self) -> float:
        t0 = time.perf_counter()
        self.conn.request("POST", self.w["path"], body=self.w["body"], headers=self.headers)
        resp = self.conn.getresponse()
        got = resp.read()
        ms = (time.perf_counter() - t0) * 1e3
        if resp.status != 200 or len(got) != self.size:
            raise RuntimeError(f"{resp.status}, {len(got)} bytes (expected {self.size})")
        return ms


def cpu_ms(pid: int) -> float:
    """CPU time so far of a process and its child processes (all threads, those that ended
    too: /proc/<pid>/stat's utime + stime, in clock ticks of 10 ms), in ms; 0 where /proc
    cannot tell. Read over a whole row (hundreds of ms), the tick is a small error."""
    tick = 1e3 / os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) * tick  # utime, stime
        with contextlib.suppress(OSError, ValueError):
            todo.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
    return total


def _calls_ms(f, k: int) -> list[float]:
    out = []
    for _ in range(k):
        t0 = time.perf_counter()
        f()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def side_by_side(port: int, pid: int, name: str, w: dict, body: bytes, n: int) -> dict[str, float]:
    """Issue 11's API target for one digit-trace workload at 1 client, every part measured
    in the same rounds so that all of them see the same machine load:

    * the API (`port`, server process `pid`): p50 of `n` requests;
    * the floor's transfer: `floor_app.py` answering with the very bytes the API sent
      (`body`), under the same uvicorn and client, started next to the API server;
    * the floor's serialization and the engine, in this process, one fresh trace per call
      as the API computes it (`pipeline`), and `Network.trace` alone back to back (the
      engine as measured before, printed for comparison: "engine alone");
    * a control, "bare": `floor_app.py` computing the same trace per request (engine,
      selection, serializer, send; no framework, no validation, no thread).

    Each round sends `BLOCK` requests to the API, to the bare app and to the bare compute
    app, then runs the engine + serializer pipeline `BLOCK` times and the engine alone
    `BLOCK` times. `excess` is the median
    over rounds of the round's (API − engine − serialize − transfer) medians: the API's
    overhead above engine + floor, paired; `framework` the same for (API − bare compute).

    CPU time per request is counted too (servers: all their threads over the row, from
    /proc; the client and the in-process calls: this thread). Time spent waiting for a core,
    which a busy machine adds to wall time, is not in it: `cpu_excess` is the target's left
    side minus its floor in CPU ms (the client's reading included on both sides),
    `cpu_framework` API − bare compute.
    """
    engine_alone = engine_work()[name][0]
    one = pipeline(name)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        floor_proc, floor_port = start_floor_server(Path(f.name))
        procs = [floor_proc]
        try:
            bare_proc, bare_port = start_floor_server(workload=name)
            procs.append(bare_proc)
            clients = {
                "api": (Client(port, w, len(body)), pid),
                "transfer": (Client(floor_port, w, len(body)), floor_proc.pid),
                "bare": (Client(bare_port, w, len(body)), bare_proc.pid),
            }
            for _ in range(3):  # warm-up
                for c, _pid in clients.values():
                    c.post_ms()
                engine_alone(), one()
            parts: dict[str, list[float]] = {k: [] for k in (*clients, "engine", "ser", "alone")}
            cpu: dict[str, float] = dict.fromkeys(parts, 0.0)
            excess, framework, loads = [], [], []
            rounds = max(2, n // BLOCK)
            # the servers' CPU over the whole row (they idle while the others are asked)
            server_start = {k: cpu_ms(server) for k, (_c, server) in clients.items()}
            for _ in range(rounds):
                rnd = {}
                for k, (c, _server) in clients.items():
                    c0 = time.thread_time()
                    rnd[k] = [c.post_ms() for _ in range(BLOCK)]
                    cpu[k] += (time.thread_time() - c0) * 1e3
                runs = [one() for _ in range(BLOCK)]
                rnd["engine"], rnd["ser"] = [r[0] for r in runs], [r[1] for r in runs]
                cpu["engine"] += sum(r[2] for r in runs)
                cpu["ser"] += sum(r[3] for r in runs)
                rnd["alone"] = _calls_ms(engine_alone, BLOCK)
                m = {k: statistics.median(v) for k, v in rnd.items()}
                excess.append(m["api"] - m["engine"] - m["ser"] - m["transfer"])
                framework.append(m["api"] - m["bare"])
                loads.append(os.getloadavg()[0])
                for k, v in rnd.items():
                    parts[k].extend(v)
            for k, (_c, server) in clients.items():
                cpu[k] += cpu_ms(server) - server_start[k]
        finally:
            for proc in procs:
                stop_server(proc)
    lat = np.array(parts["api"])
    med = {k: statistics.median(v) for k, v in parts.items()}
    per = {k: v / (rounds * BLOCK) for k, v in cpu.items()}  # CPU ms per request / call
    return {
        "n": len(lat),
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "rps": len(lat) / (lat.sum() / 1e3),  # back to back at 1 client
        "engine": med["engine"],
        "engine_alone": med["alone"],
        "serialize": med["ser"],
        "transfer": med["transfer"],
        "floor": med["ser"] + med["transfer"],
        "bare": med["bare"],
        "excess": statistics.median(excess),
        "framework": statistics.median(framework),
        "cpu": per,
        "cpu_excess": per["api"] - per["engine"] - per["ser"] - per["transfer"],
        "cpu_framework": per["api"] - per["bare"],
        "load": statistics.mean(loads),
    }


def verdict(over: float, floor_ms: float) -> str:
    """Issue 11's check: p50 − engine <= floor + 1 ms."""
    margin = over - (floor_ms + 1)
    return "met" if margin <= 0 else f"not met (+{margin:.1f} ms)"


def targets(rows: list[dict], sizes: dict[str, int]) -> None:
    """Issue 11's API target for every digit-trace row at 1 client (the floor measured side by
    side), and issue 3's predict throughput, from the rows the run has."""
    for row in rows:
        name, r, fl = row["name"], row["r"], row["floor"]
        if fl is not None:
            encoding = "base64" if "base64" in name else "json"
            over = r["p50"] - fl["engine"]
            print(
                f"\nTarget: {name}, {row['workers']} worker(s), 1 client, encoding {encoding} "
                f"({sizes.get(name, 0) / 1e6:.2f} MB), load average {fl['load']:.1f}: "
                f"p50 {r['p50']:.1f} − engine {fl['engine']:.1f} = {over:.1f} ms (engine: "
                f"Network.trace + Trace.to_dict on a fresh trace as the API runs it; "
                f"Network.trace alone, back to back: {fl['engine_alone']:.1f} ms); floor "
                f"{fl['floor']:.1f} ms (serializing {fl['serialize']:.1f} ms in-process + "
                f"sending the same bytes from a bare ASGI app {fl['transfer']:.1f} ms); "
                f"p50 − engine <= floor + 1 ms: {verdict(over, fl['floor'])}. Paired per "
                f"round: API − engine − floor {fl['excess']:.1f} ms; API − bare compute "
                f"(engine + serializer + send in one request, no framework; p50 "
                f"{fl['bare']:.1f} ms) {fl['framework']:.1f} ms"
            )
            c = fl["cpu"]
            print(
                f"  CPU ms per request (server + client; waiting for a core is not counted, cache "
                f"contention is): API "
                f"{c['api']:.2f}, engine {c['engine']:.2f}, serializing {c['ser']:.2f}, "
                f"bare app sending {c['transfer']:.2f}, bare compute {c['bare']:.2f}: "
                f"API − engine − floor {fl['cpu_excess']:.2f} ms (<= 1 ms: "
                f"{'yes' if fl['cpu_excess'] <= 1 else 'no'}); API − bare compute "
                f"{fl['cpu_framework']:.2f} ms"
            )
        if name == "predict (JSON 280×280)" and row["workers"] == 2 and row["clients"] == 8:
            ok = "met" if r["rps"] >= 300 else "not met"
            print(
                f"\nTarget: predict (JSON 280×280), 2 workers, 8 clients: {r['rps']:.0f} "
                f"requests/s (>= 300: {ok})"
            )


# ------------------------------------------------------------------------------ mixed load
def rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (the uvicorn workers), in KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration):
            pass
    return total


def mixed_load(seconds: float, clients: int, workers: int, serve_args: list[str]) -> dict:
    """`clients` threads sharing one httpx client (its connection pool, keep-alive) send a mix
    of what the page and REST users send (lean and complete digit traces, predicts, a worked
    example with a learning rate, learning steps) to `cnnviz serve --workers N` for `seconds`.
    Counts answers by status, requests that got no answer at all ("dropped": the connection
    closed under them), and the servers' RSS after a warm-up and at the end."""
    import httpx

    loads = workloads()
    x28 = orjson.loads(loads["trace (digits)"]["body"])["input"]
    mix = [
        ("/api/trace", loads["trace (digits, lean base64)"]["body"]),
        ("/api/predict", loads["predict (JSON 280×280)"]["body"]),
        ("/api/trace", b'{"scenario": "conv-dense", "learning_rate": 0.01}'),
        ("/api/trace", loads["trace (digits)"]["body"]),
        (
            "/api/learn",
            orjson.dumps({"model": "digits", "input": x28, "target": 3, "learning_rate": 0.01}),
        ),
    ]
    cnnviz = Path(sys.executable).parent / "cnnviz"
    proc, port = _spawn([str(cnnviz), "serve", "--workers", str(workers), *serve_args])
    statuses: dict[str, int] = {}
    dropped: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=120,
        limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
    )

    def worker(k: int) -> None:
        rng = random.Random(k)
        i = k
        while time.monotonic() < stop:
            path, body = mix[i % len(mix)]
            i += 1
            try:
                r = client.post(path, content=body, headers={"content-type": "application/json"})
                key = str(r.status_code)
                with lock:
                    statuses[key] = statuses.get(key, 0) + 1
            except httpx.HTTPError as exc:
                with lock:
                    name = type(exc).__name__
                    dropped[name] = dropped.get(name, 0) + 1
            # a client that pauses, as people do: its pooled connection idles meanwhile, some
            # pauses close to 5 s (httpx's keep-alive expiry and uvicorn's default timeout)
            if i % 4 == 0:
                time.sleep(rng.uniform(4.9, 5.1) if k % 2 else rng.uniform(0, 2))

    try:
        for path, body in mix:  # warm-up: each worker loads the model
            for _ in range(workers * 2):
                client.post(path, content=body, headers={"content-type": "application/json"})
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        time.sleep(seconds / 3)  # warm-up: every worker has served every kind of request
        rss_warm = rss_kb(proc.pid)
        for t in threads:
            t.join()
        rss_end = rss_kb(proc.pid)
    finally:
        client.close()
        stop_server(proc)
    return {
        "statuses": statuses,
        "dropped": dropped,
        "rss_warm_mb": rss_warm / 1024,
        "rss_end_mb": rss_end / 1024,
    }


def report_mixed(label: str, r: dict) -> None:
    total = sum(r["statuses"].values()) + sum(r["dropped"].values())
    five = sum(v for k, v in r["statuses"].items() if k.startswith("5"))
    growth = 100 * (r["rss_end_mb"] / r["rss_warm_mb"] - 1) if r["rss_warm_mb"] else 0.0
    print(
        f"| {label} | {total} | {sum(r['dropped'].values())} {r['dropped'] or ''} | {five} "
        f"| {r['statuses']} | {r['rss_warm_mb']:.0f} → {r['rss_end_mb']:.0f} MB "
        f"({growth:+.1f} %) |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--mixed",
        type=float,
        metavar="SECONDS",
        help="only the mixed load: 64 threads, 2 workers, for SECONDS; with "
        "--compare-keep-alive also under uvicorn's 5 s keep-alive default",
    )
    ap.add_argument("--compare-keep-alive", action="store_true")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--quick", action="store_true", help="a quarter of the requests")
    ap.add_argument(
        "--targets",
        action="store_true",
        help="only issue 11's API target rows: the four digit traces, 1 worker, 1 client, "
        "each beside its floor (about a minute)",
    )
    ap.add_argument(
        "--only", nargs="+", metavar="TEXT", help="only the endpoints whose name contains TEXT"
    )
    args = ap.parse_args()
    if "digits" not in models.available():
        print("the digit model is not installed (cnncore/models/digits.*): train it first")
        return 1
    from app.main import reuse_freed_memory

    reuse_freed_memory()  # in-process timings with the allocator settings of the server
    if args.mixed:
        runs = [("cnnviz serve (keep-alive 75 s)", [])]
        if args.compare_keep_alive:
            runs.append(("uvicorn's default keep-alive 5 s", ["--timeout-keep-alive", "5"]))
        load_start = os.getloadavg()
        results = [(label, mixed_load(args.mixed, 64, 2, extra)) for label, extra in runs]
        load_end = os.getloadavg()
        print(
            f"\nMixed load: 64 client threads (one httpx client, pooled keep-alive "
            f"connections), 2 workers, {args.mixed:g} s each; load average "
            f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end (1 min). Targets: "
            "0 dropped, 0 × 5xx, RSS growth <= 10 % after warm-up.\n"
        )
        print("| server | requests | dropped | 5xx | statuses | RSS (all workers) |")
        print("|---|---:|---|---:|---|---|")
        for label, r in results:
            report_mixed(label, r)
        return 0

    loads = workloads()
    if args.targets:
        args.workers, args.clients, args.only = [1], [1], list(FLOOR_WORKLOADS)
    if args.only:
        loads = {k: v for k, v in loads.items() if any(t in k for t in args.only)}
    if args.targets:
        loads = {k: v for k, v in loads.items() if k in FLOOR_WORKLOADS}
    work = engine_work()
    rows: list[dict] = []
    sizes: dict[str, int] = {}
    load_start = os.getloadavg()
    quarter = 4 if args.quick else 1
    for workers in args.workers:
        proc, port = start_server(workers)
        try:
            for name, w in loads.items():
                # measured next to the HTTP runs, so both see the same machine load
                engine_ms, service_ms = (median_ms(f) for f in work[name])
                body = response_body(port, w)
                sizes[name] = len(body)
                for clients in args.clients:
                    fl = None
                    if clients == 1 and name in FLOOR_WORKLOADS:
                        r = fl = side_by_side(port, proc.pid, name, w, body, TARGET_N // quarter)
                    else:
                        n = max(clients * 2, w["n"] // quarter)
                        r = run_load(port, w, clients, n)
                        r["load"] = os.getloadavg()[0]
                    e = fl["engine"] if fl else engine_ms
                    rows.append(
                        {
                            "name": name,
                            "workers": workers,
                            "clients": clients,
                            "r": r,
                            "engine": e,
                            "service": service_ms,
                            "floor": fl,
                        }
                    )
                    print(
                        f"  {name:24s} workers={workers} clients={clients:2d} "
                        f"p50={r['p50']:.1f} ms p99={r['p99']:.1f} ms "
                        f"{r['rps']:.0f} req/s load {r['load']:.1f}",
                        file=sys.stderr,
                    )
        finally:
            stop_server(proc)

    load = os.getloadavg()
    from app.compression import isal_available
    from app.services.serialize import B64_IMPL
    from app.settings import Settings

    level = Settings.from_env().gzip_level
    print(
        f"\nMachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average "
        f"{load_start[0]:.1f} / {load_start[1]:.1f} at the start, {load[0]:.1f} / {load[1]:.1f} "
        "at the end (1 / 5 min); gzip: "
        f"{'ISA-L' if isal_available() else 'zlib'}, level {level}; base64: {B64_IMPL}; "
        "clients are threads with "
        "keep-alive connections on the same machine. engine = the engine's own work "
        "in-process (predict: preprocess + forward; trace: Network.trace); service = the "
        "handler's whole call in-process (parse, validate, engine, JSON); p50 − engine at "
        "1 client; floor = serializing the response in-process + a bare ASGI app sending the "
        "same bytes, measured in the same rounds as the API (digit traces, 1 client); "
        "target: p50 − engine <= floor + 1 ms (issue 11); load = 1-min load average during "
        "the row.\n"
    )
    print(
        "| endpoint | workers | clients | requests | p50 ms | p99 ms | req/s "
        "| engine ms | service ms | p50 − engine ms | floor ms | target | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for row in rows:
        r, e, fl = row["r"], row["engine"], row["floor"]
        over = r["p50"] - e
        cells = [
            row["name"],
            row["workers"],
            row["clients"],
            r["n"],
            f"{r['p50']:.1f}",
            f"{r['p99']:.1f}",
            f"{r['rps']:.0f}",
            f"{e:.1f}",
            f"{row['service']:.1f}",
            f"{over:.1f}" if row["clients"] == 1 else "",
            f"{fl['floor']:.1f}" if fl else "",
            verdict(over, fl["floor"]) if fl else "—",
            f"{r['load']:.1f}",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print()
    for name, size in sizes.items():
        print(f"Response body: {name}: {size:,} bytes")
    targets(rows, sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
