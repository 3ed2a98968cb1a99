"""Train mode in real headless Chromium against a real uvicorn: start a run, watch the curve grow
and the dev accuracy rise, pause, open the step's backprop in the stepper, and read the
optimizer's update worked in numbers (the server's numbers, checked against the WebSocket
frames the page received).

Screenshots go to test-artifacts/screenshots/train-*.png (docs/screenshots/ holds copies)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def frames(page) -> list[dict]:
    """Every JSON message the page receives over /api/train, collected as it arrives."""
    got: list[dict] = []

    def on_ws(ws):
        if ws.url.endswith("/api/train"):
            ws.on("framereceived", lambda payload: got.append(json.loads(payload)))

    page.on("websocket", on_ws)
    return got


def start_run(page, network: str = "lenet-random", steps: int = 600, shift: bool = True) -> None:
    page.click("#train-tab")
    assert page.evaluate("() => document.body.dataset.view") == "train"
    assert page.is_visible("#train-view") and not page.is_visible("#stepper")
    if shift:
        page.check("#aug-shift")
    page.select_option("#train-network", network)
    page.fill("#train-steps", str(steps))
    page.click("#train-start")


def wait(page, condition: str, timeout: float = 240_000) -> None:
    page.wait_for_function(f"() => {condition}", timeout=timeout)


def test_train_pause_open_backprop_and_see_the_update(page, screenshots):
    got = frames(page)
    start_run(page)
    wait(page, "Number(document.body.dataset.trainEvals || 0) >= 3")
    steps_then = int(page.evaluate("() => document.body.dataset.trainSteps"))
    assert steps_then > 0
    evals = [m for m in got if m["type"] == "eval"]
    assert evals[-1]["accuracy"] > evals[0]["accuracy"] + 0.3  # dev accuracy rose
    # the curve grows: its label counts the steps drawn, and later there are more
    label = page.get_attribute("#train-loss", "aria-label")
    assert "steps" in label
    wait(page, f"Number(document.body.dataset.trainSteps) > {steps_then + 20}")
    assert page.get_attribute("#train-loss", "aria-label") != label
    shown_acc = page.text_content("#ts-dev")
    assert shown_acc.endswith("%") and shown_acc != "–"
    assert len(page.query_selector_all("#train-kernels canvas")) == 8  # LeNet: 8 kernels
    assert len(page.query_selector_all("#train-batch-aug canvas")) == 8
    assert len(page.query_selector_all("#train-norms li")) == 3
    page.screenshot(path=str(screenshots / "train-live.png"))

    page.click("#train-pause")
    wait(page, "document.body.dataset.trainState === 'paused'", 60_000)
    assert page.is_visible("#train-paused")
    assert page.is_enabled("#train-step") and not page.is_enabled("#train-pause")
    page.select_option("#train-example", "3")
    page.click("#train-open")
    page.wait_for_selector("#train-update-card", timeout=60_000)
    answer = next(m for m in got if m["type"] == "trace")
    assert answer["index"] == 3
    # the stepper shows the trace answer; the view switched back
    assert page.evaluate("() => document.body.dataset.view") == "stepper"
    assert page.is_visible("#stepper") and not page.is_visible("#train-view")
    # it opens on ∂C/∂w of the layer whose update is worked out (a backward step)
    assert "backward" in page.text_content("#step-phase").lower()
    loss_shown = float(page.get_attribute("#loss-line", "data-value"))
    assert loss_shown == answer["trace"]["loss"]
    # the update worked in numbers: the server's values, shown with their full value as title
    card = page.text_content("#train-update-card")
    assert "v′" in card and "w′" in card  # SGD + momentum: v and w
    up = answer["update"]
    titles = page.eval_on_selector_all(
        "#train-update-card .eq strong .num", "els => els.map((e) => e.title)"
    )
    assert titles == [str(up["v_new"]), str(up["w_new"])] or [float(v) for v in titles] == [
        up["v_new"],
        up["w_new"],
    ]
    page.screenshot(path=str(screenshots / "train-backprop.png"))

    # one more step, then stop: the results, the gallery, a click traces a dev digit
    page.click("#train-update-card button")
    assert page.is_visible("#train-view")
    page.click("#train-step")
    wait(page, f"Number(document.body.dataset.trainSteps) === {answer['step'] + 1}", 60_000)
    page.click("#train-stop")
    page.wait_for_selector("#train-results:not([hidden])", timeout=60_000)
    done = next(m for m in got if m["type"] == "done")
    cells = page.eval_on_selector_all(
        "#train-confusion td", "els => els.map((e) => +e.textContent)"
    )
    assert cells == [v for row in done["confusion"] for v in row]
    gallery = page.query_selector_all("#train-gallery button")
    assert len(gallery) == len(done["gallery"])
    page.screenshot(path=str(screenshots / "train-results.png"), full_page=True)
    gallery[0].click()
    wait(page, "document.body.dataset.view === 'stepper'", 60_000)
    assert page.is_visible("#stepper")
    assert not page.messages.problems(), page.messages.problems()


def test_keyboard_zh_phone_and_reduced_motion(browser, server, screenshots):
    context = browser.new_context(viewport={"width": 390, "height": 844}, reduced_motion="reduce")
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server + "/")
    page.wait_for_selector("body[data-traces]", timeout=20000)
    page.click(".lang-btn[data-lang='zh']")
    page.focus("#train-tab")
    page.keyboard.press("Enter")
    assert page.text_content("#train-title").startswith("训练模式")
    page.select_option("#train-network", "lenet-random")
    page.fill("#train-steps", "300")
    page.focus("#train-start")
    page.keyboard.press("Enter")
    wait(page, "Number(document.body.dataset.trainEvals || 0) >= 2")
    # reduced motion: the curves still update
    assert "步" in page.get_attribute("#train-loss", "aria-label")
    # no horizontal scrolling on the phone
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390 + 1, width
    # Space (focus outside a form field) pauses, S steps, Space resumes
    page.focus("#train-title")
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("Space")
    wait(page, "document.body.dataset.trainState === 'paused'", 60_000)
    before = int(page.evaluate("() => document.body.dataset.trainSteps"))
    page.keyboard.press("s")
    wait(page, f"Number(document.body.dataset.trainSteps) === {before + 1}", 60_000)
    page.keyboard.press("Space")
    wait(page, "document.body.dataset.trainState !== 'paused'", 60_000)
    page.screenshot(path=str(screenshots / "train-phone-zh.png"))
    context.close()
    assert not problems, problems


def test_train_the_playground_network(page, screenshots):
    """A network built in the playground (with a residual block) is trained in Train mode: its
    spec goes up as the start message's "network"; the loss curve grows."""
    got = frames(page)
    sent: list[dict] = []

    def on_ws(ws):
        if ws.url.endswith("/api/train"):
            ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", on_ws)
    page.click("#playground-tab")
    page.select_option("#pg-input", "small")
    page.click("#train-tab")
    page.select_option("#train-network", "playground")
    # the 6×6 example input can't learn digits: said why, and Start is off
    why = page.locator("#train-net-why")
    assert why.is_visible() and why.get_attribute("data-reason") == "input"
    assert "1×28×28" in why.text_content()
    assert page.is_disabled("#train-start")
    # back in the playground: the digit input, and a 3×3 max-pool (stride 3) after the conv
    page.click("#train-tab")
    page.select_option("#pg-input", "digit")
    page.locator('.pg-layer[data-id="1"] > .pg-fields input[data-field="kernel_size"]').fill("3")
    page.locator('.pg-layer[data-id="1"] > .pg-fields input[data-field="stride"]').fill("3")
    assert page.locator("body").get_attribute("data-playground") == "valid"
    page.click("#train-tab")
    assert why.get_attribute("data-reason") == "ok"
    assert "multiply-adds" in why.text_content()
    assert not page.is_disabled("#train-start")
    page.fill("#train-steps", "40")
    page.click("#train-start")
    wait(page, "Number(document.body.dataset.trainSteps || 0) >= 20", timeout=120_000)
    start = next(m for m in sent if m["type"] == "start")
    net = start["network"]
    assert net["input_shape"] == [1, 28, 28] and net["loss"] == "cross_entropy"
    assert [layer["type"] for layer in net["layers"]] == [
        "conv2d",
        "maxpool2d",
        "residual",
        "flatten",
        "dense",
    ]
    assert net["layers"][1]["kernel_size"] == 3 and net["layers"][1]["stride"] == 3
    started = next(m for m in got if m["type"] == "started")
    assert started["network"]["layers"][2]["type"] == "residual"
    losses = [v for m in got if m["type"] == "step" for v in m["losses"]]
    assert len(losses) >= 20 and all(v > 0 for v in losses)
    label = page.get_attribute("#train-loss", "aria-label")
    assert "steps" in label
    # the curve's canvas has been drawn on (not blank)
    drawn = page.evaluate(
        """() => { const c = document.getElementById('train-loss');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200 && d[i + 2] > 150) n++;
        return n; }"""
    )
    assert drawn > 50
    page.screenshot(path=str(screenshots / "train-playground.png"))
    assert not page.messages.problems(), page.messages.problems()
