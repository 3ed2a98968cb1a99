"""The architecture playground in the real page (Chromium): build a network, see a shape error
explained on the spot (before any request), fix it, trace it and step into its residual block;
the network travels in the link."""

from __future__ import annotations

import base64
import json

import pytest

from .helpers import go_to_step, step_total

pytestmark = pytest.mark.e2e


def _slider(page, layer_id: str, field: str, value: int) -> None:
    page.locator(f'.pg-layer[data-id="{layer_id}"] > .pg-fields input[data-field="{field}"]').fill(
        str(value)
    )


def _layer(page, layer_id: str):
    return page.locator(f'.pg-layer[data-id="{layer_id}"]')


def test_build_see_a_shape_error_fix_it_and_trace(page, screenshots):
    page.locator("#playground-tab").click()
    assert page.locator("#playground").is_visible()
    page.select_option("#pg-input", "small")
    # the default network is valid: conv → pool → residual → flatten → dense
    assert page.locator("body").get_attribute("data-playground") == "valid"
    first = _layer(page, "0")
    assert (
        first.locator('[data-role="formula"]').text_content()
        == "H_out = ⌊(6 + 2·1 − 3) / 1⌋ + 1 = 6"
    )
    # a kernel larger than the padded input: explained on the spot, nothing sent
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/api/trace" in r.url else None)
    _slider(page, "0", "padding", 0)
    _slider(page, "0", "kernel_size", 7)
    err = _layer(page, "0").locator('[data-role="error"]')
    assert err.is_visible()
    assert "kernel size 7 is larger than the padded input 6 (= 6 + 2·0)" in err.text_content()
    assert page.locator("#pg-trace").is_disabled()
    assert page.locator("body").get_attribute("data-playground") == "invalid"
    page.screenshot(path=str(screenshots / "playground-shape-error.png"))
    # fix it: more padding, and the live formula follows
    _slider(page, "0", "padding", 2)
    assert _layer(page, "0").locator('[data-role="error"]').count() == 0
    formula = _layer(page, "0").locator('[data-role="formula"]').text_content()
    assert formula == "H_out = ⌊(6 + 2·2 − 7) / 1⌋ + 1 = 4"
    # the residual block's F changes the shape without a projection: explained, then fixed
    _slider(page, "2.0", "stride", 2)
    res_err = _layer(page, "2").locator(':scope > [data-role="error"]')
    assert "turn on the projection with stride 2" in res_err.text_content()
    page.locator('.pg-layer[data-id="2"] > .pg-fields input[data-field="projection"]').check()
    page.locator('.pg-layer[data-id="2"] > .pg-fields input[data-field="projection-stride"]').fill(
        "2"
    )
    assert page.locator("body").get_attribute("data-playground") == "valid"
    assert not requests
    # trace it and step through it
    before = page.locator("body").get_attribute("data-traces")
    page.locator("#pg-trace").click()
    page.wait_for_function(f"() => document.body.dataset.traces !== '{before}'")
    n = step_total(page)
    kinds = []
    for i in range(n):
        go_to_step(page, i)
        kinds.append(page.locator("#detail").get_attribute("data-kind"))
    assert "res_split" in kinds and "res_sum" in kinds and kinds[-1] == "input_grad"
    assert page.locator(".ov-block.ov-residual").count() == 1
    go_to_step(page, kinds.index("res_sum"))
    page.wait_for_selector("#formula [data-role='sum-value']")
    page.wait_for_function("() => location.hash.startsWith('#net=')")
    assert not page.messages.problems(), page.messages.problems()


def test_the_network_travels_in_the_link(page, server):
    page.locator("#playground-tab").click()
    # drop the dense head and the flatten, end with a concat block (an MSE on its maps)
    page.locator('[data-remove="4"]').click()
    page.locator('[data-remove="3"]').click()
    page.locator('#playground > .pg-listbox > .pg-adds [data-add="concat"]').click()
    assert page.locator("body").get_attribute("data-playground") == "valid"
    layers = page.locator("#playground > .pg-listbox > .pg-list > .pg-layer")
    count = layers.count()
    page.locator("#pg-link").click()
    url = page.locator("#pg-link").get_attribute("data-url")
    assert "#net=" in url
    other = page.context.new_page()  # the link opened afresh
    other.goto(url)
    other.wait_for_selector("#playground:not([hidden])")
    assert other.locator("#playground > .pg-listbox > .pg-list > .pg-layer").count() == count
    assert other.locator('.pg-layer[data-type="concat"]').count() == 1
    # the link traces the network it carries: its concat block is in the overview
    other.wait_for_selector(".ov-block.ov-concat", timeout=20000)
    other.close()


def _net_link(base: str, net: dict) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(net).encode()).decode().rstrip("=")
    return f"{base}/#net={raw}"


def test_limits_shown_up_front_and_a_network_over_the_cap_is_marked_before_tracing(page):
    limits = page.evaluate("() => fetch('/api/health').then((r) => r.json())")["limits"]
    page.locator("#playground-tab").click()
    shown = page.locator("#pg-limits").text_content()
    cap = limits["max_multiply_adds"]
    assert f"{limits['max_layers']} layers" in shown
    assert f"{cap:,}" in shown
    # seven 16-channel 7×7 convs on 28×28: over the multiply-add cap (16·16·49·784 each)
    conv = {"type": "conv2d", "kernel_size": 7, "stride": 1, "padding": 3, "activation": "relu"}
    layers = [{**conv, "out_channels": 16} for _ in range(7)]
    madds = 1 * 16 * 49 * 784 + 6 * 16 * 16 * 49 * 784
    assert madds > cap
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/api/trace" in r.url else None)
    other = page.context.new_page()
    other.on("request", lambda r: requests.append(r.url) if "/api/trace" in r.url else None)
    other.goto(_net_link(page.base, {"input": "digit", "layers": layers}))
    other.wait_for_selector("#playground:not([hidden])")
    other.wait_for_selector("#pg-summary[data-over-madds='true']")
    assert other.locator("body").get_attribute("data-playground") == "invalid"
    problems = other.locator("#pg-problems").text_content()
    assert f"{madds:,} multiply-adds per sample is over this server's limit of {cap:,}" in problems
    assert other.locator("#pg-trace").is_disabled()
    # the link's network is not sent: the page explained it instead (the first trace is the
    # digit model's own; wait for it, then give the playground's hash a moment)
    other.wait_for_selector("body[data-traces]", timeout=20000)
    other.wait_for_timeout(500)
    assert not [u for u in requests if u], requests
    # two convs fewer: under the cap, unmarked, and tracing is possible
    other.locator('[data-remove="6"]').click()
    other.locator('[data-remove="5"]').click()
    assert other.locator("#pg-summary").get_attribute("data-over-madds") == "false"
    assert other.locator("#pg-problems").text_content() == ""
    other.close()


def test_copy_link_keeps_the_playground_network(page):
    page.locator("#playground-tab").click()
    page.locator('[data-remove="2"]').click()  # drop the residual block
    before = page.locator("body").get_attribute("data-traces")
    page.locator("#pg-trace").click()
    page.wait_for_function(f"() => document.body.dataset.traces !== '{before}'")
    page.wait_for_function("() => location.hash.startsWith('#net=')")
    go_to_step(page, 2)  # the page rewrites its query on every step: the network stays
    page.locator("#copy-link").click()
    page.wait_for_function("() => document.getElementById('share-msg').dataset.url")
    url = page.locator("#share-msg").get_attribute("data-url")
    assert "#net=" in url and "s=playground" not in url
    other = page.context.new_page()
    msgs = []
    other.on("console", lambda m: msgs.append(f"{m.type}: {m.text}"))
    other.goto(url)
    other.wait_for_selector("#playground:not([hidden])")
    layers = other.locator("#playground > .pg-listbox > .pg-list > .pg-layer")
    assert [layers.nth(i).get_attribute("data-type") for i in range(layers.count())] == [
        "conv2d",
        "maxpool2d",
        "flatten",
        "dense",
    ]
    # it is traced: the overview shows the playground's four layers, no residual block
    other.wait_for_function("() => document.body.dataset.source === 'playground'", timeout=20000)
    other.wait_for_selector("#overview .ov-layer, #overview [role='listitem']")
    assert other.locator(".ov-block").count() == 0
    # nothing in the link was misunderstood (no notice)
    assert not [m for m in msgs if m.startswith(("error", "warning"))], msgs
    other.close()
