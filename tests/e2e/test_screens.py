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
    context, pg = new_page(
        browser,
        server,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
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
