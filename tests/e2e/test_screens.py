"""Issue 10 in real Chromium: every screen (phone, projector), every person (keyboard, screen
reader, reduced motion), inputs without drawing, exact links and hostile links.

Measured numbers (fps at 1× and 8×, announcements per step) go to test-artifacts/perf.json.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from .conftest import ROOT
from .helpers import ONE, draw, go_to_step, pause_sweep, step_total, wait_settled, wait_traced
from .test_app import record

pytestmark = pytest.mark.e2e

HAS_DIGITS = (ROOT / "cnncore" / "models" / "digits.json").exists()
needs_model = pytest.mark.skipif(not HAS_DIGITS, reason="the trained digit model is not there yet")

NO_PAGE_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"

# a phone: 390×844, touch, retina
PHONE = dict(
    viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2
)


def new_page(browser, server, path="/", **ctx):
    context = browser.new_context(**ctx)
    pg = context.new_page()
    msgs = []
    pg.on("console", lambda m: msgs.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: msgs.append(f"pageerror: {e}"))
    pg.messages = msgs
    pg.goto(server + path)
    pg.wait_for_selector("body[data-traces]", state="attached", timeout=20000)
    return context, pg


def problems(pg):
    return [m for m in pg.messages if m.startswith(("error", "warning", "pageerror"))]


def touch_draw(pg, cdp, stroke) -> None:
    """Draw with real touch events (Chromium's Input.dispatchTouchEvent), as a finger would."""
    box = pg.locator("#pad").bounding_box()
    pts = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": "touchStart", "touchPoints": [dict(zip("xy", pts[0], strict=True))]},
    )
    for x, y in pts[1:]:
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


@needs_model
def test_phone_one_column_touch_drawing_and_a_tappable_stepper(browser, server, screenshots):
    context, pg = new_page(browser, server, **PHONE)
    cdp = context.new_cdp_session(pg)
    touch_draw(pg, cdp, ONE[0])
    wait_settled(pg)
    assert pg.locator("#probs").get_attribute("data-prediction") == "1"
    assert pg.evaluate(NO_PAGE_OVERFLOW)
    # One column: the cards are stacked, each (nearly) as wide as the screen.
    for sel in ("#pad-card", "#probs-card", ".overview-card", "#stepper", "#detail", "#learn-card"):
        box = pg.locator(sel).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 + 0.5, sel
        assert box["width"] > 390 * 0.9, sel
    assert pg.locator("#pad-card").bounding_box()["y"] < pg.locator("#detail").bounding_box()["y"]
    # The stepper stays reachable (sticky at the bottom) and its buttons take a finger.
    nxt = pg.locator("#step-next")
    b = nxt.bounding_box()
    assert b["height"] >= 44 and b["y"] + b["height"] <= 844
    nxt.tap()
    pg.wait_for_function("() => document.querySelector('#step-counter').dataset.index === '1'")
    pg.wait_for_timeout(500)
    assert pg.evaluate(NO_PAGE_OVERFLOW)
    pg.screenshot(path=str(screenshots / "phone-390x844.png"))
    assert not problems(pg), problems(pg)
    context.close()


@needs_model
@pytest.mark.parametrize("size", [(1024, 768), (1280, 720), (768, 1024)])
def test_nothing_is_clipped(browser, server, screenshots, size):
    w, h = size
    context, pg = new_page(browser, server, viewport={"width": w, "height": h})
    draw(pg, ONE)
    wait_settled(pg)
    assert pg.evaluate(NO_PAGE_OVERFLOW)
    # The top bar's controls (the 中文 button too) are inside the window.
    right = pg.evaluate(
        "() => Math.max(...[...document.querySelectorAll('.topbar button, .topbar select')]"
        ".map((e) => e.getBoundingClientRect().right))"
    )
    assert right <= w
    # Every overview column (the last one too) is inside the overview's box.
    clipped = pg.evaluate("""() => {
      const box = document.querySelector('#overview').getBoundingClientRect();
      return [...document.querySelectorAll('.ov-col')].filter((c) => {
        const r = c.getBoundingClientRect();
        return r.right > box.right + 1 || r.left < box.left - 1; }).length; }""")
    assert clipped == 0
    # The stepper's buttons and the detail canvas are on screen.
    for sel in ("#step-prev", "#step-play", "#step-next", "#speed"):
        r = pg.locator(sel).bounding_box()
        assert r["x"] >= 0 and r["x"] + r["width"] <= w, sel
    assert pg.locator("#detail canvas").bounding_box()["width"] >= 300
    # Legend labels never overlap (−m and +m wrap instead of running into each other).
    overlaps = pg.evaluate("""() => [...document.querySelectorAll('.ov-legend-nums')]
      .filter((n) => {
      const [a, b] = [...n.children].map((e) => e.getBoundingClientRect());
      return b && a.right > b.left && a.bottom > b.top && b.bottom > a.top; }).length""")
    assert overlaps == 0
    # The conv step's kernel prints all 25 numbers (none blank), here too.
    go_to_step(pg, 0)
    pg.wait_for_selector("#formula .fline")
    pg.wait_for_timeout(300)
    assert "kernel" not in pg.locator("#detail-colors").text_content()
    pg.screenshot(path=str(screenshots / f"layout-{w}x{h}.png"))
    assert not problems(pg), problems(pg)
    context.close()


@needs_model
def test_reduced_motion_opens_each_step_on_its_result(browser, server):
    context, pg = new_page(
        browser, server, viewport={"width": 1280, "height": 720}, reduced_motion="reduce"
    )
    draw(pg, ONE)
    wait_settled(pg)
    for i in (0, 3):
        go_to_step(pg, i)
        d = pg.locator("#detail")
        assert d.get_attribute("data-reduced-motion") == "true"
        pg.wait_for_timeout(300)
        assert d.get_attribute("data-sweeping") == "false"
    assert pg.locator("#step-play").get_attribute("aria-pressed") == "false"
    context.close()


@needs_model
def test_step_dots_are_one_tab_stop_with_arrow_keys(page):
    draw(page, ONE)
    wait_settled(page)
    assert (
        page.evaluate(
            "[...document.querySelectorAll('#step-track button')]"
            ".filter((b) => b.tabIndex === 0).length"
        )
        == 1
    )
    page.locator("#step-track button[aria-current=step]").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#step-counter').dataset.index === '1'")
    assert page.evaluate("document.activeElement.getAttribute('aria-current')") == "step"
    page.keyboard.press("End")
    n = step_total(page)
    page.wait_for_function(
        f"() => document.querySelector('#step-counter').dataset.index === '{n - 1}'"
    )
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelector('#step-counter').dataset.index === '0'")
    # Tab leaves the track at once (one stop), whatever the number of steps.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('#step-track') === null")


@needs_model
def test_screen_reader_hears_each_step_once_and_fps_at_1x_and_8x(page):
    draw(page, ONE)
    wait_settled(page)
    go_to_step(page, 0)
    page.evaluate("""() => { window.__ann = 0;
      new MutationObserver(() => window.__ann++).observe(document.querySelector('#announcer'),
        {childList: true, characterData: true, subtree: true}); }""")
    # While the conv view animates for 2 s, nothing is announced.
    page.locator("#sweep-toggle").click() if page.locator("#detail").get_attribute(
        "data-sweeping"
    ) == "false" else None
    fps = {}
    for speed in ("1", "8"):
        page.select_option("#speed", speed)
        page.locator("#sweep-toggle").click() if page.locator("#detail").get_attribute(
            "data-sweeping"
        ) == "false" else None
        fps[speed] = page.evaluate("""() => new Promise((resolve) => {
          const ts = [];
          const tick = (t) => { ts.push(t); if (t - ts[0] < 2000) requestAnimationFrame(tick);
            else resolve((ts.length - 1) * 1000 / (ts[ts.length - 1] - ts[0])); };
          requestAnimationFrame(tick); })""")
    during_animation = page.evaluate("window.__ann")
    page.select_option("#speed", "1")
    # Five steps: five announcements, each naming its step.
    page.evaluate("window.__ann = 0")
    for i in range(1, 6):
        go_to_step(page, i)
        page.wait_for_function(
            f"() => document.querySelector('#announcer').textContent.includes('{i + 1}')"
        )
        page.wait_for_timeout(250)
    per_step = page.evaluate("window.__ann") / 5
    record("conv_detail_fps_1x", round(fps["1"], 1))
    record("conv_detail_fps_8x", round(fps["8"], 1))
    record("announcements_during_2s_of_animation", during_animation)
    record("announcements_per_step", per_step)
    assert during_animation == 0
    assert per_step == 1
    # fps is recorded, not asserted: no timed assertions in tests (docs/ui.md has the numbers)
    assert fps["1"] > 0 and fps["8"] > 0


@needs_model
def test_keyboard_only_input_a_real_mnist_digit_and_an_upload(page, server, tmp_path):
    samples = page.evaluate("fetch('/api/samples').then((r) => r.json())")["samples"]
    page.locator("#samples-box summary").focus()
    page.keyboard.press("Enter")
    page.locator(".sample").nth(0).focus()
    with page.expect_request(lambda r: r.url.endswith("/api/trace")) as req:
        page.keyboard.press("Enter")
    assert req.value.post_data_json["input"] == samples[0]["input"]
    wait_traced(page)
    page.wait_for_function(
        f"() => document.querySelector('#probs').dataset.prediction === '{samples[0]['label']}'"
    )
    # An upload through /api/predict's file path: a real test digit as a PNG.
    from PIL import Image

    img = np.array(samples[3]["input"]) * 255
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).resize((112, 112)).save(buf, format="PNG")
    path = tmp_path / "digit.png"
    path.write_bytes(buf.getvalue())
    with page.expect_response(lambda r: r.url.endswith("/api/predict")) as res:
        page.locator("#upload").set_input_files(str(path))
    assert res.value.status == 200
    label = samples[3]["label"]
    page.wait_for_function(
        f"() => document.querySelector('#probs').dataset.prediction === '{label}'"
    )
    assert not page.messages.problems(), page.messages.problems()


@needs_model
def test_a_shared_link_reproduces_the_senders_loss_to_the_last_digit(page, browser, server):
    draw(page, ONE)
    wait_settled(page)
    before = page.locator("body").get_attribute("data-traces")
    page.locator("#target-select").select_option("3")
    page.wait_for_function(f"() => document.body.dataset.traces !== '{before}'")
    loss = page.locator("#loss-line").get_attribute("data-value")
    page.wait_for_function("() => (document.body.dataset.url || '').includes('x=f64.')")
    page.wait_for_function("() => (document.body.dataset.url || '').includes('t=3')")
    url = page.url
    context, fresh = new_page(
        browser, server, url.replace(server, ""), viewport={"width": 1280, "height": 720}
    )
    wait_traced(fresh)
    assert fresh.locator("#loss-line").get_attribute("data-value") == loss
    assert fresh.locator("#notice").is_hidden()
    assert not problems(fresh), problems(fresh)
    context.close()


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("/?m=digits&t=42&step=9999", "t=42"),
        ("/?s=conv-dense&e=0:1e300&step=2", "e=0:1e300"),
        ("/?m=digits&x=f64.AAAA&lr=-1", "x=f64.AAAA"),
        ("/?s=no-such-example&lang=xx", "s=no-such-example"),
    ],
)
def test_hostile_or_stale_links_fall_back_with_a_notice(browser, server, path, bad):
    context, pg = new_page(browser, server, path, viewport={"width": 1280, "height": 720})
    wait_traced(pg)
    if (
        pg.locator("body").get_attribute("data-source") == "model"
        and not pg.locator("#formula .fline").count()
    ):
        draw(pg, ONE)  # the digit model without a usable input waits for a drawing: it still works
        wait_settled(pg)
    pg.wait_for_selector("#formula .fline")
    assert bad in pg.locator("#notice").text_content()
    assert step_total(pg) > 1
    pg.locator("#step-next").click()
    assert not problems(pg), problems(pg)
    context.close()


def test_worked_example_link_restores_the_learning_rate_exactly(page, browser, server):
    page.goto(server + "/?s=two-conv")
    wait_traced(page)
    rate = page.locator("#learn-rate")
    rate.fill("0.001")
    rate.press("Enter")
    rate.evaluate("(e) => e.dispatchEvent(new Event('change'))")
    page.wait_for_function("() => (document.body.dataset.url || '').includes('lr=0.001')")
    context, fresh = new_page(
        browser, server, page.url.replace(server, ""), viewport={"width": 1280, "height": 720}
    )
    wait_traced(fresh)
    assert fresh.locator("#learn-rate").input_value() == "0.001"
    context.close()


def test_a_negative_learning_rate_disables_apply_and_says_why(page):
    page.goto(page.base + "/?s=two-conv")
    wait_traced(page)
    rate = page.locator("#learn-rate")
    rate.fill("-0.01")
    rate.evaluate("(e) => e.dispatchEvent(new Event('change'))")
    assert page.locator("#learn-apply").is_disabled()
    assert page.locator("#learn-rate-error").is_visible()
    rate.fill("0.01")
    rate.evaluate("(e) => e.dispatchEvent(new Event('change'))")
    assert page.locator("#learn-apply").is_enabled()
    assert page.locator("#learn-rate-error").is_hidden()


@needs_model
def test_confident_prediction_offers_the_runner_up_target(page, screenshots):
    draw(page, ONE)
    wait_settled(page)
    n = step_total(page)
    loss_step = next(
        k
        for k in range(n)
        if (go_to_step(page, k), page.locator("#detail").get_attribute("data-kind"))[1] == "loss"
    )
    assert page.locator("#confident").is_visible()
    go_to_step(page, loss_step + 1)
    assert page.locator("#confident").is_visible()
    go_to_step(page, loss_step + 2)
    assert page.locator("#confident").is_hidden()
    go_to_step(page, loss_step + 1)
    before = page.locator("body").get_attribute("data-traces")
    page.locator("#confident-pick").click()
    page.wait_for_function(f"() => document.body.dataset.traces !== '{before}'")
    wait_traced(page)
    assert page.locator("#target-select").input_value() != "auto"
    assert page.locator("#confident").is_hidden()
    # A readable backward step: the first conv layer's weight gradient with a large gradient.
    k = next(
        k
        for k in range(n - 1, 0, -1)
        if (go_to_step(page, k), page.locator("#detail").get_attribute("data-kind"))[1]
        == "weight_grad"
    )
    pause_sweep(page)
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / f"backward-step-{k + 1}.png"))
    assert not page.messages.problems(), page.messages.problems()


# Text cut mid-word: an element whose text is wider than its box (scrollWidth > clientWidth) where
# its box clips it (overflow other than visible, or an ancestor .ov-maps that hides overflow).
CLIPPED_TEXT = """(sel) => [...document.querySelectorAll(sel)]
  .filter((e) => e.offsetParent !== null).filter((e) => {
    const cut = e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1;
    const hides = (x) => x && getComputedStyle(x).overflow !== 'visible';
    const r = e.getBoundingClientRect();
    const box = e.closest('.ov-maps, .ov-col');
    const b = box ? box.getBoundingClientRect() : r;
    const outside = r.right > b.right + 1 || r.bottom > b.bottom + 1;
    return (cut && (hides(e) || getComputedStyle(e).textOverflow === 'ellipsis')) || outside;
  }).map((e) => e.textContent)"""


@needs_model
@pytest.mark.parametrize("size", [(1024, 768), (1440, 900)])
def test_overview_names_and_maps_are_never_cut(browser, server, screenshots, size):
    """A projected overview: every layer's name whole (wrapped at spaces, at most two lines), the
    placeholder whole, every map inside its column, in the forward and the backward pass."""
    w, h = size
    context, pg = new_page(browser, server, viewport={"width": w, "height": h})
    draw(pg, ONE)
    wait_settled(pg)
    for step in (0, step_total(pg) - 6):
        go_to_step(pg, step)
        pg.wait_for_timeout(200)
        names = pg.evaluate(
            "[...document.querySelectorAll('.ov-name')].map((e) => ({t: e.textContent,"
            " lines: Math.round(e.getBoundingClientRect().height / 15),"
            " cut: e.scrollWidth > e.clientWidth + 1}))"
        )
        assert len(names) == 8  # the input and the seven layers
        for n in names:
            assert not n["cut"], n
            assert not n["t"].endswith("…"), n
            assert n["lines"] <= 2, n
        # the layer's kind and kernel in every name (the full name where it fits)
        kinds = [n["t"].split(" ")[0].rstrip(",") for n in names]
        assert kinds == ["input", "conv", "max-pool", "conv", "max-pool", "flatten"] + ["dense"] * 2
        assert all("5×5" in n["t"] for n in names if n["t"].startswith("conv"))
        texts = ".ov-name, .ov-shape, .ov-empty, .ov-legend-nums span"
        assert pg.evaluate(CLIPPED_TEXT, texts) == []
        # no word of the placeholder is broken across lines ("not computec / yet")
        words = pg.evaluate("""() => [...document.querySelectorAll('.ov-empty')].map((e) => {
          const r = document.createRange(); r.selectNodeContents(e);
          return [...r.getClientRects()].length; })""")
        for rects in words:
            assert rects <= 3
        # every map canvas inside its column's box
        outside = pg.evaluate("""() => [...document.querySelectorAll('.ov-map')].filter((m) => {
          const r = m.getBoundingClientRect();
          const c = m.closest('.ov-maps').getBoundingClientRect();
          return r.right > c.right + 0.5 || r.bottom > c.bottom + 0.5; }).length""")
        assert outside == 0
        # the stepper's title is whole, not ellipsised
        t = pg.locator("#step-title")
        assert t.evaluate("(e) => e.scrollWidth <= e.clientWidth + 1")
    if w == 1440:
        full = pg.evaluate("[...document.querySelectorAll('.ov-name')].map((e) => e.textContent)")
        assert "conv 5×5, 32 filters · relu" in full
    pg.screenshot(path=str(screenshots / f"overview-{w}x{h}.png"))
    assert not problems(pg), problems(pg)
    context.close()


# CSS pixels left blank at the bottom of the detail canvas (under the last painted row).
BLANK_BOTTOM = """() => {
  const src = document.querySelector('#detail canvas');
  const c = document.createElement('canvas');
  c.width = src.width; c.height = src.height;
  const g = c.getContext('2d', {willReadFrequently: true});
  g.drawImage(src, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let last = -1;
  for (let y = c.height - 1; y >= 0 && last < 0; y--)
    for (let x = 0; x < c.width; x++) if (d[(y * c.width + x) * 4 + 3]) { last = y; break; }
  return (c.height - 1 - last) / (src.height / src.getBoundingClientRect().height); }"""


@needs_model
def test_phone_reads_top_to_bottom_without_nested_scroll_boxes(browser, server, screenshots):
    """390×844: no box in the overview or the detail view scrolls up and down inside the page; the
    overview's columns wrap into rows; the detail stage is as tall as what the step draws; a step
    wider than the screen scrolls sideways, says so, and is a tab stop; long sums wrap."""
    context, pg = new_page(browser, server, **PHONE)
    draw(pg, ONE)
    wait_settled(pg)
    nested = """() => [...document.querySelectorAll('.overview-card *, #detail *')].filter((e) => {
      const s = getComputedStyle(e);
      return ['auto', 'scroll'].includes(s.overflowY) && e.scrollHeight > e.clientHeight + 1; })
      .map((e) => e.className || e.tagName)"""
    sideways = """() => [...document.querySelectorAll('.overview-card *, #detail *')]
      .filter((e) => {
      const s = getComputedStyle(e);
      return ['auto', 'scroll'].includes(s.overflowX) && e.scrollWidth > e.clientWidth + 1; })
      .map((e) => e.id || e.className)"""
    # the overview: every column inside the screen (rows, not a sideways strip)
    cols = pg.evaluate(
        "[...document.querySelectorAll('.ov-col')].map((c) => c.getBoundingClientRect().right)"
    )
    assert len(cols) == 8 and max(cols) <= 390
    rows = pg.evaluate(
        "new Set([...document.querySelectorAll('.ov-col')]"
        ".map((c) => Math.round(c.getBoundingClientRect().top))).size"
    )
    assert rows >= 2
    assert pg.evaluate(CLIPPED_TEXT, ".ov-name, .ov-shape, .ov-empty") == []
    kinds = {}
    for i in range(step_total(pg)):
        go_to_step(pg, i)
        kind = pg.locator("#detail").get_attribute("data-kind")
        if kind == "input_grad" and pg.locator("#detail").get_attribute("data-layer") == "2":
            kind = "gather"  # the second conv layer's ∂C/∂a_prev
        if kind in kinds:
            continue
        pg.wait_for_timeout(250)
        kinds[kind] = i
        assert pg.evaluate(nested) == [], kind
        assert pg.evaluate(NO_PAGE_OVERFLOW), kind
        # only the stage may scroll sideways, and only when the hint says so
        wide = pg.locator("#detail").get_attribute("data-wide") == "true"
        assert pg.evaluate(sideways) == (["detail-stage fit wide"] if wide else []), kind
        assert pg.locator("#detail-wide-hint").is_visible() == wide
        if wide:
            assert pg.locator(".detail-stage").get_attribute("tabindex") == "0"
        # the stage is as tall as the canvas, the canvas no taller than what is drawn on it + 40 px
        stage = pg.locator(".detail-stage").bounding_box()
        canvas = pg.locator("#detail canvas").bounding_box()
        assert abs(stage["height"] - canvas["height"]) <= 20, kind
        blank = pg.evaluate(BLANK_BOTTOM)
        assert blank <= 40, (kind, blank)
        # every formula line inside the formula box (wrapped, not scrolled)
        over = pg.evaluate("""() => {
          const f = document.querySelector('#formula').getBoundingClientRect();
          return [...document.querySelectorAll('#formula .fline')].filter((l) =>
            l.getBoundingClientRect().right > f.right + 1
            || l.scrollWidth > l.clientWidth + 1).length; }""")
        assert over == 0, kind
    assert {"conv", "weight_grad", "input_grad", "gather", "pool_back", "loss"} <= set(kinds)
    # the gather view (three maps) is wider than a phone: it says so, and the arrow keys scroll
    # its stage sideways (not to the next step)
    go_to_step(pg, kinds["gather"])
    pg.wait_for_timeout(250)
    assert pg.locator("#detail").get_attribute("data-wide") == "true"
    stage = pg.locator(".detail-stage")
    stage.focus()
    index = pg.locator("#step-counter").get_attribute("data-index")
    for _ in range(4):
        pg.keyboard.press("ArrowRight")
    pg.wait_for_timeout(300)
    assert stage.evaluate("(e) => e.scrollLeft") > 0
    assert pg.locator("#step-counter").get_attribute("data-index") == index
    pg.screenshot(path=str(screenshots / "phone-gather-wide.png"))
    # the sticky stepper takes at most a quarter of the screen
    assert pg.locator("#stepper").bounding_box()["height"] <= 844 / 4
    assert not problems(pg), problems(pg)
    context.close()


@needs_model
def test_focus_outlines_are_visible_on_the_stage_and_the_overview(page):
    draw(page, ONE)
    wait_settled(page)
    page.locator(".ov-head").nth(1).focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    style = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()"
    )
    assert style[0] != "none" and style[1] >= 2


@needs_model
def test_the_learning_steps_result_is_not_hidden_in_a_scroll_box_at_1024x768(browser, server):
    """A projector: the result of "Apply one step" is in the page (reached by scrolling the page),
    not below the fold of a side column that scrolls on its own."""
    context, pg = new_page(browser, server, viewport={"width": 1024, "height": 768})
    draw(pg, ONE)
    wait_settled(pg)
    pg.locator("#learn-apply").click()
    pg.wait_for_selector("#learn-result:not([hidden])", timeout=20000)
    boxes = pg.evaluate("""() => { const out = [];
      for (let e = document.querySelector('#learn-result').parentElement; e; e = e.parentElement) {
        const s = getComputedStyle(e);
        if (e !== document.documentElement && e !== document.body
            && ['auto', 'scroll'].includes(s.overflowY) && e.scrollHeight > e.clientHeight + 1)
          out.push(e.id || e.className);
      }
      return out; }""")
    assert boxes == []
    # the layout holds its content (the page scrolls, nothing runs out of the layout's box)
    assert pg.evaluate(
        "(() => { const l = document.querySelector('.layout').getBoundingClientRect();"
        " const d = document.querySelector('#detail').getBoundingClientRect();"
        " return d.bottom <= l.bottom + 1; })()"
    )
    pg.locator("#learn-loss").scroll_into_view_if_needed()
    assert pg.locator("#learn-loss").is_visible()
    assert not problems(pg), problems(pg)
    context.close()


@pytest.mark.parametrize("example", ["two-conv", "residual-block", "inception-branches"])
def test_worked_examples_overview_shows_every_map_without_a_scroll_box(browser, server, example):
    """1280×720: a block's diagram and its maps fit in the overview (it grows rather than
    scrolling); every name is whole."""
    context, pg = new_page(
        browser, server, f"/?s={example}", viewport={"width": 1280, "height": 720}
    )
    wait_traced(pg)
    go_to_step(pg, step_total(pg) - 1)
    pg.wait_for_timeout(200)
    ov = pg.locator("#overview")
    assert ov.evaluate("(e) => e.scrollHeight <= e.clientHeight + 1")
    assert ov.evaluate("(e) => e.scrollWidth <= e.clientWidth + 1")
    cut = pg.evaluate("""() => [...document.querySelectorAll('.ov-map')].filter((m) => {
      const r = m.getBoundingClientRect(); const c = m.closest('.ov-col').getBoundingClientRect();
      return r.width === 0 || r.bottom > c.bottom + 0.5 || r.right > c.right + 0.5; }).length""")
    assert cut == 0
    assert pg.locator(".ov-map").count() >= 2
    assert pg.evaluate(CLIPPED_TEXT, ".ov-name, .ov-shape, .ov-empty") == []
    assert not problems(pg), problems(pg)
    context.close()
