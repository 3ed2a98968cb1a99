"""The architecture playground in the real page (Chromium): build a network, see a shape error
explained on the spot (before any request), fix it, trace it and step into its residual block;
the network travels in the link."""

from __future__ import annotations

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
