"""What a user of the page feels, measured in Debian's headless Chromium (Playwright) against a
real uvicorn serving the digit model: bytes on the wire and time to pixels.

* first load: every byte (headers + compressed bodies, both directions) until the empty state
  is drawn, in a fresh browser context (empty cache);
* reload: the same page loaded again in that context (HTTP cache: immutable versioned
  modules, 304 for the model's parameters);
* draw + step: the API traffic (/api/*) of drawing a "1" and stepping through every step;
* stroke -> trace drawn: from the stroke's mouse-up to the trace on screen (the page sets
  body[data-traces] after the views rendered), median over strokes;
* apply one step: from the click to the learn card and the views showing the step, median,
  and how many API requests each step made.

    .venv/bin/python benchmarks/bench_page.py [--strokes 12] [--learn 8]

Prints a markdown table with the issue's targets. Numbers vary with the machine's load; the
byte counts do not.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the e2e tests' Chromium flags and mouse drawing, so the benchmark does what the tests do
from tests.e2e.conftest import CHROMIUM  # noqa: E402
from tests.e2e.conftest import CHROMIUM_ARGS as ARGS  # noqa: E402
from tests.e2e.helpers import ONE, draw  # noqa: E402
from tests.e2e.helpers import wait_settled as settle  # noqa: E402

STROKES = [
    [[(0.3 + 0.4 * k / 20, 0.3 + 0.05 * (k % 3)) for k in range(21)]],
    [[(0.5 + 0.02 * (k % 2), 0.2 + 0.6 * k / 20) for k in range(21)]],
    [[(0.35 + 0.3 * k / 20, 0.7 - 0.4 * k / 20) for k in range(21)]],
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (the server writes to it until it stops)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


class Wire:
    """Bytes of every finished request of a page: headers and (compressed) bodies."""

    def __init__(self, page):
        self.rows: list[tuple[str, int, int]] = []
        page.on("requestfinished", self._done)

    def _done(self, req) -> None:
        s = req.sizes()
        if s["responseBodySize"] < 0 or s["responseHeadersSize"] <= 0:
            return  # answered from the browser's cache (Chromium reports -headers): nothing sent
        up = s["requestHeadersSize"] + s["requestBodySize"]
        down = s["responseHeadersSize"] + s["responseBodySize"]
        self.rows.append((req.url, up, down))

    def mark(self) -> int:
        return len(self.rows)

    def since(self, mark: int, api_only: bool = False) -> tuple[int, int, int]:
        rows = [r for r in self.rows[mark:] if not api_only or "/api/" in r[0]]
        return len(rows), sum(r[1] for r in rows), sum(r[2] for r in rows)


def quiet(page, ms: int = 400) -> None:
    """Let late requests (favicon, preloads) finish."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(ms)


LATENCY_JS = """() => {
  window.__up = 0; window.__lat = [];
  const pad = document.querySelector('#pad');
  pad.addEventListener('pointerup', () => { window.__up = performance.now(); });
  new MutationObserver(() => {
    if (window.__up) { window.__lat.push(performance.now() - window.__up); window.__up = 0; }
  }).observe(document.body, { attributes: true, attributeFilter: ['data-traces'] });
}"""


DATA_LAYER_JS = """async () => {
  const src = document.querySelector('script[type=module]').src;
  const m = await import(src.replace('main.js', 'api.js'));
  const row = (i) => Array.from({length: 28}, (_, j) => ((i * 7 + j * 3) % 11) / 10);
  const input = Array.from({length: 28}, (_, i) => row(i));
  const body = {model: 'digits', input, target: 3};
  const params = await m.paramsOf('digits');
  const t = {full: [], lean: [], health: []};
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  for (let k = 0; k < 9; k++) {
    let t0 = performance.now();
    await m.api.trace(body);
    t.full.push(performance.now() - t0);
    t0 = performance.now();
    m.completeTrace(await m.api.trace({...body, ...m.LEAN}), input, params);
    t.lean.push(performance.now() - t0);
    t0 = performance.now();
    await fetch('/api/health');
    t.health.push(performance.now() - t0);
  }
  return {full: med(t.full), lean: med(t.lean), health: med(t.health)};
}"""


def kb(n: int) -> str:
    return f"{n / 1000:.1f} KB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strokes", type=int, default=12)
    ap.add_argument("--learn", type=int, default=8)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = serve(port)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            wire = Wire(page)
            m = wire.mark()
            page.goto(base + "/")
            page.wait_for_selector("body[data-traces]")
            quiet(page)
            n, up, down = wire.since(m)
            rows.append(("first load (fresh cache)", f"{kb(up + down)} ({n} requests)", "≤ 300 KB"))
            m = wire.mark()
            page.reload()
            page.wait_for_selector("body[data-traces]")
            quiet(page)
            n, up, down = wire.since(m)
            rows.append(("reload", f"{kb(up + down)} ({n} requests)", "≤ 30 KB"))

            # draw, then every step
            m = wire.mark()
            draw(page, ONE)
            settle(page, 30000)
            total = int(page.locator("#step-counter").get_attribute("data-total"))
            for i in range(total):
                page.locator("#step-track button").nth(i).click()
                page.wait_for_function(
                    f"() => document.querySelector('#step-counter').dataset.index === '{i}'"
                )
            quiet(page)
            n, up, down = wire.since(m, api_only=True)
            rows.append(
                (
                    f"API traffic: draw + all {total} steps",
                    f"{kb(up + down)} (up {kb(up)}, down {kb(down)}, {n} requests)",
                    "≤ 1.5 MB",
                )
            )

            # stroke -> trace drawn
            page.evaluate(LATENCY_JS)
            for k in range(args.strokes):
                if k % 6 == 0:
                    page.locator("#pad-clear").click()
                    page.wait_for_timeout(100)
                draw(page, STROKES[k % 3])
                settle(page, 30000)
            lat = page.evaluate("window.__lat")
            rows.append(
                (
                    "stroke → trace drawn (median)",
                    f"{statistics.median(lat):.0f} ms (n={len(lat)}, min {min(lat):.0f}, "
                    f"max {max(lat):.0f})",
                    "≤ 100 ms",
                )
            )

            # apply one step
            draw(page, ONE)
            settle(page, 30000)
            times, per_step = [], []
            for k in range(1, args.learn + 1):
                m = wire.mark()
                t0 = time.perf_counter()
                page.locator("#learn-apply").click()
                page.wait_for_function(
                    f"() => document.querySelector('#learn-card').dataset.steps === '{k}'"
                    " && !document.querySelector('#learn-apply').disabled"
                    " && document.querySelector('#loss-line').dataset.value"
                    " === document.querySelector('#learn-loss').dataset.after"
                )
                times.append(1000 * (time.perf_counter() - t0))
                quiet(page, 50)
                n, up, down = wire.since(m, api_only=True)
                per_step.append((n, up, down))
            ups = [u for _, u, _ in per_step]
            rows.append(
                (
                    "apply one step (median, click → shown)",
                    f"{statistics.median(times):.0f} ms; requests per step "
                    f"{sorted({n for n, _, _ in per_step})}; up {kb(max(ups))} max",
                    "≤ 150 ms, 1 request, ≤ 1 MB up",
                )
            )
            # the data layer side by side: today's complete JSON trace vs the page's lean one
            ref = page.evaluate(DATA_LAYER_JS)  # last: it downloads the parameters
            rows.append(
                (
                    "data layer: fetch + decode, complete JSON vs lean (median)",
                    f"{ref['full']:.0f} ms vs {ref['lean']:.0f} ms "
                    f"({ref['full'] / ref['lean']:.1f}×); GET /api/health {ref['health']:.0f} ms",
                    "(reference)",
                )
            )

            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print("| measurement | result | target |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
