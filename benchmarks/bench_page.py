"""What a user of the page feels, measured in Debian's headless Chromium (Playwright) against a
real uvicorn serving the digit model: bytes on the wire and time to pixels.

* first load: every byte (headers + compressed bodies, both directions) until the empty state
  is drawn, in a fresh browser context (empty cache);
* reload: the same page loaded again in that context (HTTP cache: immutable versioned
  modules, 304 for the model's parameters);
* draw + step: the API traffic (/api/*) of drawing a "1" and stepping through every step;
* stroke -> trace drawn: from the stroke's pointerup event (its `timeStamp`, read by a
  capturing listener inside the page, so the pad's own work at the stroke's end counts) to the
  trace on screen (the page sets body[data-traces] after the views rendered), median;
* apply one step: from the click event inside the page (its `timeStamp`, read by a capturing
  listener) to the learn card and the views showing the step, median, and the API requests
  and bytes each step made. Timed inside the page because Playwright's `click()` itself
  (actionability checks, scrolling, hit testing) adds 50-150 ms before the browser even
  dispatches the click on this machine: that is the test driver, not the page.

    .venv/bin/python benchmarks/bench_page.py [--strokes 12] [--learn 8] [--ref DIR]
        [--learn-step first|middle|last|N[,...]]

`--learn-step`: the step in view while Apply one step is measured (first, middle: the middle
backward conv step, i.e. the ∂C/∂w step of the middle conv layer, last, or N as the step
counter numbers it, 1-based); several, comma-separated, give a row each, measured in turn on
the same pages. Default: no step chosen (the page stays where the strokes left it: the
opening step). `--strokes 0` skips the stroke measurement.

`--ref DIR`: a second checkout (e.g. `git archive <commit> | tar -x -C DIR`) served by its own
uvicorn and measured in the same run, stroke by stroke and step by step in turn, so both see
the same machine load; the page not being measured is frozen (Page.setWebLifecycleState), so
its animation does not take the CPU from the other. Prints a markdown table with the issue's
targets and the load average. Numbers vary with the machine's load; the byte counts do not.
"""

from __future__ import annotations

import argparse
import os
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


def serve(port: int, root: Path) -> subprocess.Popen:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (the server writes to it until it stops)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=root,
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
    raise SystemExit(f"the server in {root} did not start")


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


# Both clocks are the page's: an event's timeStamp and performance.now() share their origin.
LATENCY_JS = """() => {
  window.__up = 0; window.__lat = [];
  window.addEventListener('pointerup', (e) => {
    if (e.target && e.target.id === 'pad') window.__up = e.timeStamp;
  }, true);
  new MutationObserver(() => {
    if (window.__up) { window.__lat.push(performance.now() - window.__up); window.__up = 0; }
  }).observe(document.body, { attributes: true, attributeFilter: ['data-traces'] });
}"""

CLICK_JS = """() => {
  window.__click = 0; window.__steps = [];
  const $ = (id) => document.getElementById(id);
  window.addEventListener('click', (e) => {
    const t = e.target;
    if (t && t.closest && t.closest('#learn-apply')) window.__click = e.timeStamp;
  }, true);
  const shown = () => $('learn-card').dataset.steps === String(window.__steps.length + 1)
    && !$('learn-apply').disabled
    && $('loss-line').dataset.value === $('learn-loss').dataset.after;
  // where it went, from the page's own marks (learning.js): click -> learn:start (the click
  // handler ran), -> learn:answer (request sent, answered, parsed), -> shown (state and views);
  // the request's Resource Timing splits the middle: -> requestStart (the body made and handed
  // to the network), -> responseStart (sent up, the server's work), -> responseEnd (the answer
  // down), -> learn:answer (inflated and parsed)
  const last = (name) => performance.getEntriesByName(name, 'mark').pop();
  performance.setResourceTimingBufferSize(100000);
  window.__parts = [];
  new MutationObserver(() => {
    if (window.__click && shown()) {
      const now = performance.now();
      window.__steps.push(now - window.__click);
      const [s, a] = [last('learn:start'), last('learn:answer')];
      if (s && a && s.startTime >= window.__click) {
        const c = window.__click;
        const part = [s.startTime - c, a.startTime - s.startTime, now - a.startTime];
        const r = performance.getEntriesByType('resource')
          .filter((e) => e.name.endsWith('/api/learn') && e.startTime >= s.startTime).pop();
        if (r && r.requestStart > 0) {
          part.push(r.requestStart - s.startTime, r.responseStart - r.requestStart,
            r.responseEnd - r.responseStart, a.startTime - r.responseEnd);
        }
        window.__parts.push(part);
      }
      window.__click = 0;
    }
  }).observe(document.body, { attributes: true, childList: true, subtree: true });
}"""


# A middle backward conv step: the middle one of the backward (∂C/∂…) steps of conv layers, by
# the step track's titles ("12. conv 5×5 · 32 filters · relu — Layer 3 · ∂C/∂w …"; English page).
MIDDLE_JS = """() => {
  const buttons = Array.from(document.querySelectorAll('#step-track button'));
  const conv = buttons.map((b, i) => [b.title, i])
    .filter(([s]) => /^\\d+\\. conv/.test(s) && s.includes('∂C/∂'));
  if (!conv.length) return Math.floor(buttons.length / 2);
  return conv[Math.floor((conv.length - 1) / 2)][1];
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


def loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class Target:
    """One served tree and its page, measured in turn with the others."""

    def __init__(self, name: str, root: Path, browser):
        self.name, self.root = name, root
        self.port = free_port()
        self.proc = serve(self.port, root)
        self.base = f"http://127.0.0.1:{self.port}"
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.ctx.new_page()
        self.cdp = self.ctx.new_cdp_session(self.page)
        self.wire = Wire(self.page)
        self.res: dict[str, str] = {}
        self.steps: list[tuple[int, int, int]] = []
        self.clicks = 0  # Apply one step clicks measured so far (window.__steps counts them all)
        self.first_step = 0  # window.__steps index where the current --learn-step's run starts

    def freeze(self, frozen: bool) -> None:
        """Freeze the page (no tasks, timers or animation frames) while the other is measured:
        the views' animation of one page must not take the CPU from the other's measurement."""
        self.cdp.send("Page.setWebLifecycleState", {"state": "frozen" if frozen else "active"})

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def loads(self) -> None:
        page, wire = self.page, self.wire
        m = wire.mark()
        page.goto(self.base + "/")
        page.wait_for_selector("body[data-traces]")
        quiet(page)
        n, up, down = wire.since(m)
        self.res["first"] = f"{kb(up + down)} ({n} requests)"
        m = wire.mark()
        page.reload()
        page.wait_for_selector("body[data-traces]")
        quiet(page)
        n, up, down = wire.since(m)
        self.res["reload"] = f"{kb(up + down)} ({n} requests)"

    def walk(self) -> None:
        page, wire = self.page, self.wire
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
        self.res["walk"] = f"{kb(up + down)} (up {kb(up)}, down {kb(down)}, {n} requests)"
        self.total = total

    def stroke(self, k: int) -> None:
        if k == 0:
            self.page.evaluate(LATENCY_JS)
        if k % 6 == 0:
            self.page.locator("#pad-clear").click()
            self.page.wait_for_timeout(100)
        draw(self.page, STROKES[k % 3])
        settle(self.page, 30000)

    def strokes_done(self) -> None:
        lat = self.page.evaluate("window.__lat")
        self.res["stroke"] = (
            f"{statistics.median(lat):.0f} ms "
            f"(n={len(lat)}, min {min(lat):.0f}, max {max(lat):.0f})"
        )

    def goto_step(self, which: str | None) -> str:
        """Put the step `which` (see --learn-step) in view; returns "i/n: its title"."""
        page = self.page
        if which is not None:
            total = int(page.locator("#step-counter").get_attribute("data-total"))
            if which == "first":
                idx = 0
            elif which == "last":
                idx = total - 1
            elif which == "middle":
                idx = page.evaluate(MIDDLE_JS)
            else:
                idx = int(which) - 1
            if not 0 <= idx < total:
                raise SystemExit(f"--learn-step {which}: the page has steps 1 to {total}")
            page.locator("#step-track button").nth(idx).click()
            page.wait_for_function(
                f"() => document.querySelector('#step-counter').dataset.index === '{idx}'"
            )
            settle(page, 30000)
            quiet(page, 300)
        counter = page.locator("#step-counter")
        i = int(counter.get_attribute("data-index")) + 1
        n = counter.get_attribute("data-total")
        return f"{i}/{n}: {page.locator('#detail-title').text_content()}"

    def learn(self, k: int, which: str | None = None) -> None:
        page = self.page
        if self.clicks == 0:
            draw(page, ONE)
            settle(page, 30000)
            page.evaluate(CLICK_JS)
        if k == 1:
            self.steps = []
            self.first_step = self.clicks
            self.in_view = self.goto_step(which)
        m = self.wire.mark()
        page.locator("#learn-apply").click()
        self.clicks += 1
        page.wait_for_function(f"() => window.__steps.length === {self.clicks}", timeout=60000)
        quiet(page, 50)
        self.steps.append(self.wire.since(m, api_only=True))

    def learn_done(self, key: str = "learn") -> None:
        times = self.page.evaluate("window.__steps")[self.first_step :]
        parts = self.page.evaluate("window.__parts")[self.first_step :]
        ups = [u for _, u, _ in self.steps]
        downs = [d for _, _, d in self.steps]
        where = ""
        if parts and len(parts) == len(times):
            med = [statistics.median(p[i] for p in parts) for i in range(3)]
            where = " [click→handler {:.0f}, →answer parsed {:.0f}, →shown {:.0f}]".format(*med)
            if all(len(p) == 7 for p in parts):  # the request's own times (Resource Timing)
                req = [statistics.median(p[i] for p in parts) for i in range(3, 7)]
                where += (
                    " (request: body ready {:.0f}, sent + server {:.0f}, answer down {:.0f}, "
                    "parsed {:.0f})".format(*req)
                )
        self.res[key] = (
            f"{statistics.median(times):.0f} ms (min {min(times):.0f}, max {max(times):.0f})"
            f"{where}; "
            f"requests per step {sorted({n for n, _, _ in self.steps})}; "
            f"up {kb(max(ups))}, down {kb(max(downs))} max"
        )
        self.res[key + ":view"] = self.in_view


ROWS = [
    ("first", "first load (fresh cache)", "≤ 300 KB"),
    ("reload", "reload", "≤ 30 KB"),
    ("walk", "API traffic: draw + all steps", "≤ 1.5 MB"),
    ("stroke", "stroke → trace drawn (median, from pointerup in the page)", "≤ 100 ms"),
    (
        "learn",
        "apply one step (median, click event in the page → shown)",
        "≤ 150 ms, 1 request, ≤ 1 MB up",
    ),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strokes", type=int, default=12)
    ap.add_argument("--learn", type=int, default=8)
    ap.add_argument("--ref", type=Path, help="another checkout, measured side by side")
    ap.add_argument(
        "--learn-step",
        default=None,
        help="step(s) in view for Apply one step: first, middle, last or N (1-based), "
        "comma-separated for several rows (default: the step the page is on: the opening one)",
    )
    args = ap.parse_args()
    choices = args.learn_step.split(",") if args.learn_step else [None]
    for c in choices:
        if c not in (None, "first", "middle", "last") and not c.isdigit():
            ap.error(f"--learn-step: {c!r} is not first, middle, last or a step number")
    from playwright.sync_api import sync_playwright

    load_before = loadavg()
    targets: list[Target] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            targets.append(Target("this tree", ROOT, browser))
            if args.ref:
                targets.append(Target(f"ref ({args.ref})", args.ref.resolve(), browser))
            for t in targets:
                t.loads()
                t.walk()
                t.freeze(True)

            def turn(t: Target, action, *a) -> None:
                t.freeze(False)
                action(*a)
                t.freeze(True)

            for k in range(args.strokes):
                for t in targets:
                    turn(t, t.stroke, k)
            if args.strokes:
                for t in targets:
                    turn(t, t.strokes_done)
            for j, which in enumerate(choices):
                for k in range(1, args.learn + 1):
                    for t in targets:
                        turn(t, t.learn, k, which)
                for t in targets:
                    turn(t, t.learn_done, f"learn{j}")
            for t in targets:
                t.freeze(False)
            # the data layer: today's complete JSON trace vs the page's lean one (this tree)
            ref = targets[0].page.evaluate(DATA_LAYER_JS)  # last: it downloads the parameters
            data_layer = (
                f"{ref['full']:.0f} ms vs {ref['lean']:.0f} ms "
                f"({ref['full'] / ref['lean']:.1f}×); GET /api/health {ref['health']:.0f} ms"
            )
        finally:
            browser.close()
            for t in targets:
                t.stop()
    head = " | ".join(t.name for t in targets)
    print(f"| measurement | {head} | target |\n|---|{'---|' * len(targets)}---|")
    rows = [r for r in ROWS if r[0] != "learn" and (r[0] != "stroke" or args.strokes)]
    for j in range(len(choices)):
        key, name, goal = ROWS[-1]
        view = targets[0].res[f"learn{j}:view"]
        rows.append((f"learn{j}", f"{name}, step {view} in view", goal))
    for key, name, goal in rows:
        name = name if key != "walk" else f"API traffic: draw + all {targets[0].total} steps"
        print(f"| {name} | {' | '.join(t.res[key] for t in targets)} | {goal} |")
    name = "data layer: fetch + decode, complete JSON vs lean (median, this tree)"
    print(f"| {name} | {data_layer} |")
    print(f"\nload average (1/5/15 min) before {load_before}, after {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
