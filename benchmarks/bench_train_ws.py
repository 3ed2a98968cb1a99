"""Train mode (WebSocket /api/train) on a real uvicorn, measured against `cnnviz train`'s loop.

    .venv/bin/python benchmarks/bench_train_ws.py [--quick] [--skip-accuracy]

1. Throughput: the digit network, SGD + momentum, batch 32, no augmentation, the same number of
   steps: `cnncore.train.train` (the loop of `cnnviz train`) in a subprocess, then the page in
   headless Chromium training through the Train view, alternated (A B A B) so the shared
   machine's load hits both alike. Reports images/s and the ratio (target >= 90 %), and the
   page's frames per second while it draws (target >= 50).
2. Accuracy: the page trains the digit network from scratch (SGD + momentum, lr 0.05, batch
   32); reports the dev accuracy at each evaluation against the seconds of training, and the
   time to reach 97 %.
3. Load: four concurrent runs (websockets clients) plus POST /api/trace and GET /api/models
   in a loop; counts errors; the server's RSS before, during (peak) and after the sockets close.

Every number is printed with the load average: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, start  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CHROMIUM = os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium")

REFERENCE = r"""
import sys, time, numpy as np
from cnncore import Network, data
from cnncore.train import DIGITS_SPEC, train
steps, bs = int(sys.argv[1]), 32
split = data.load_split()
n = steps * bs
x, y = split.x_train[:n], split.y_train[:n]
net = Network.from_spec(DIGITS_SPEC, seed=0)
t = time.perf_counter()
train(net, x, y, epochs=1, batch_size=bs, optimizer="sgd", lr=0.05, schedule="constant",
      augmentation=False, progress=False, seed=0)
print(n / (time.perf_counter() - t))
"""


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reference(steps: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(steps)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- the page
FPS_PROBE = """() => {
  window.__frames = [];
  const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def page_run(browser, base: str, steps: int, timeout_s: float) -> dict:
    """The Train view trains the digit network; the server's step and eval messages (read from
    the page's WebSocket) give the training rate and the accuracy over time, the page's
    requestAnimationFrame callbacks its frame rate."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    msgs: list[tuple[float, dict]] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_ws(ws):
        ws.on("framereceived", lambda p: msgs.append((time.perf_counter(), json.loads(p))))

    page.on("websocket", on_ws)
    page.goto(base + "/")
    page.wait_for_selector("#train-tab")
    page.click("#train-tab")
    page.select_option("#train-network", "digits-random")
    page.select_option("#train-optimizer", "momentum")
    page.fill("#train-lr", "0.05")
    page.select_option("#train-batch", "32")
    page.fill("#train-steps", str(steps))
    page.evaluate(FPS_PROBE)
    page.click("#train-start")
    page.wait_for_function(
        "() => document.body.dataset.trainState === 'done'", timeout=timeout_s * 1000
    )
    frames = page.evaluate("() => window.__frames")
    span_ms = page.evaluate("() => performance.now()")
    page.close()
    steps_msgs = [(t, m) for t, m in msgs if m["type"] == "step"]
    (ta, a), (tb, b) = steps_msgs[min(5, len(steps_msgs) - 2)], steps_msgs[-1]
    train_rate = (b["step"] - a["step"]) * 32 / (b["train_s"] - a["train_s"])
    wall_rate = (b["step"] - a["step"]) * 32 / (tb - ta)
    t_first = steps_msgs[0][0]
    # frames while training: the last (tb - ta) seconds before the end, in the page's clock
    lo = span_ms - (time.perf_counter() - ta) * 1000
    hi = span_ms - (time.perf_counter() - tb) * 1000
    span = [f for f in frames if lo <= f <= hi]
    fps = (len(span) - 1) / ((span[-1] - span[0]) / 1000) if len(span) > 2 else float("nan")
    gaps = sorted(y - x for x, y in zip(span, span[1:], strict=False))
    evals, cur = [], 0.0
    for t, m in msgs:
        if m["type"] == "step":
            cur = m["train_s"]
        elif m["type"] == "eval":
            evals.append((m["step"], t - t_first, cur, m["accuracy"]))
    return {
        "images_per_s": train_rate,
        "wall_images_per_s": wall_rate,
        "fps": fps,
        "p95_frame_ms": gaps[int(0.95 * (len(gaps) - 1))] if gaps else float("nan"),
        "evals": evals,
        "errors": errors,
    }


# ---------------------------------------------------------------------------- 4 runs + API
async def ws_run(url: str, steps: int, errors: list) -> None:
    import websockets

    msg = {"type": "start", "model": "digits", "seed": 1, "batch_size": 32, "max_steps": steps}
    try:
        async with websockets.connect(url, max_size=2**26) as ws:
            await ws.send(json.dumps(msg))
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "error":
                    errors.append(m)
                if m["type"] == "done":
                    return
    except Exception as exc:  # noqa: BLE001 - counted, reported
        errors.append(repr(exc))


def api_load(base: str, stop: threading.Event, counts: dict) -> None:
    body = {"model": "digits", "input": [[0.0] * 28 for _ in range(28)], "target": 3}
    with httpx.Client(base_url=base, timeout=60) as c:
        while not stop.is_set():
            for r in (c.post("/api/trace", json=body), c.get("/api/models")):
                counts["ok" if r.status_code == 200 else "bad"] += 1


def concurrent(base: str, pid: int, steps: int) -> dict:
    url = base.replace("http", "ws") + "/api/train"
    before = rss_mb(pid)
    errors: list = []
    counts = {"ok": 0, "bad": 0}
    stop = threading.Event()
    peak = [before]

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.2)

    threads = [threading.Thread(target=api_load, args=(base, stop, counts))]
    threads.append(threading.Thread(target=watch))
    for t in threads:
        t.start()
    t0 = time.perf_counter()

    async def four():
        await asyncio.gather(*(ws_run(url, steps, errors) for _ in range(4)))

    asyncio.run(four())
    seconds = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    time.sleep(3)
    return {
        "rss_before_mb": before,
        "rss_peak_mb": peak[0],
        "rss_after_mb": rss_mb(pid),
        "errors": errors,
        "api": counts,
        "seconds": seconds,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--only-load", action="store_true", help="only the four runs + API load")
    args = ap.parse_args()
    steps = 100 if args.quick else 300
    port = free_port()
    srv = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        port,
        env=ENV,
    )
    base = srv.base
    print(load())
    try:
        if not args.only_load:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                refs, pages = [], []
                for _ in range(1 if args.quick else 2):
                    refs.append(reference(steps))
                    print(f"reference (cnnviz train's loop): {refs[-1]:.0f} images/s; {load()}")
                    pages.append(page_run(browser, base, steps, 900))
                    r = pages[-1]
                    print(
                        f"page attached: {r['images_per_s']:.0f} images/s of training "
                        f"({r['wall_images_per_s']:.0f} on the wall clock, evaluations included), "
                        f"{r['fps']:.1f} fps (p95 frame {r['p95_frame_ms']:.0f} ms), "
                        f"console errors {len(r['errors'])}; {load()}"
                    )
                ratio = sum(r["images_per_s"] for r in pages) / sum(refs)
                print(f"THROUGHPUT ratio page/reference: {ratio:.1%} (target >= 90%)")
                print(f"FPS while training: {min(r['fps'] for r in pages):.1f} (target >= 50)")
                if not args.skip_accuracy:
                    r = page_run(browser, base, 600 if args.quick else 4000, 1800)
                    for step, wall, train_s, acc in r["evals"]:
                        print(
                            f"  step {step:5d}: {wall:6.1f} s since the first step "
                            f"({train_s:6.1f} s training), dev accuracy {acc:.2%}"
                        )
                    hit = next((w for _, w, _, acc in r["evals"] if acc >= 0.97), None)
                    at60 = max((acc for _, w, _, acc in r["evals"] if w <= 60), default=0)
                    when = f"{hit:.0f} s" if hit is not None else "not reached"
                    print(
                        f"ACCURACY: best dev accuracy within 60 s (wall clock): {at60:.2%}; 97% "
                        f"reached after {when}; {r['fps']:.1f} fps; {load()}"
                    )
                browser.close()
        # twice: the first round also loads MNIST (~190 MB of float32 arrays, kept per worker)
        for round_ in (1, 2):
            c = concurrent(base, srv.proc.pid, 60 if args.quick else 150)
            print(
                f"FOUR RUNS + API, round {round_}: {len(c['errors'])} errors, API {c['api']} in "
                f"{c['seconds']:.0f} s; RSS before {c['rss_before_mb']:.0f} MB, peak "
                f"{c['rss_peak_mb']:.0f} MB, after {c['rss_after_mb']:.0f} MB; {load()}"
            )
            if c["errors"]:
                print(c["errors"][:3])
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
