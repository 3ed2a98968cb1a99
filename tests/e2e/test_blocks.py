"""Blocks in the real page (Chromium): the residual worked example, stepped into the block's
backward pass, shows the gradient splitting at the add and summing at the block's input with the
trace's numbers; the overview draws the block (skip arc); the concat example slices and sums."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from .helpers import find_step, go_to_step, pause_sweep, step_total

pytestmark = pytest.mark.e2e


def _open(page, sid: str) -> None:
    before = page.locator("body").get_attribute("data-traces")
    page.select_option("#source-select", f"scenario:{sid}")
    page.wait_for_function(f"() => document.body.dataset.traces !== '{before}'")


def _focus(page, pos: int) -> None:
    pause_sweep(page)
    page.evaluate(
        """(p) => { const s = document.querySelector('#position'); s.value = String(p);
                   s.dispatchEvent(new Event('input', {bubbles: true})); }""",
        pos,
    )
    page.wait_for_function(
        f"() => document.querySelector('#position-text').textContent.includes('{pos + 1} ')"
    )


def _values(page, role: str | None = None) -> list[float]:
    sel = "#formula [data-value]" + (f"[data-role='{role}']" if role else "")
    return [float(v) for v in page.locator(sel).evaluate_all("es => es.map(e => e.dataset.value)")]


def _trace(server: str, sid: str) -> dict:
    sc = httpx.get(f"{server}/api/scenarios/{sid}", timeout=10).json()
    body = {
        "network": sc["spec"],
        "params": sc["params"],
        "input": sc["input"],
        "target": sc["target"],
    }
    r = httpx.post(f"{server}/api/trace", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_residual_backward_splits_and_sums(page, server, screenshots):
    _open(page, "residual-block")
    entry = _trace(server, "residual-block")["layers"][0]
    sp = entry["split"]
    # the overview draws the block: its inner conv in a row under the skip arc
    block = page.locator(".ov-block.ov-residual")
    assert block.count() == 1 and block.locator(".ov-arc path").count() == 1
    assert block.locator(".ov-chip").count() == 1
    kinds = []
    for i in range(step_total(page)):
        go_to_step(page, i)
        kinds.append(page.locator("#detail").get_attribute("data-kind"))
    # forward through F, the add, the activation; backward: activation, split, F, sum
    assert kinds.index("conv") < kinds.index("res_add") < kinds.index("activation")
    assert kinds.index("loss") < kinds.index("res_split") < kinds.index("input_grad")
    assert kinds.index("input_grad") < kinds.index("res_sum") == len(kinds) - 1
    # the split: dC/dz arrives at the add and goes, unchanged, to F and to the skip
    go_to_step(page, kinds.index("res_split"))
    _focus(page, 6)  # row 1, column 2
    assert _values(page, "split-value") == [entry["backward"]["dC_dz"][0][1][2]] == [2.0]
    # stepping inside F highlights F's chip in the overview
    go_to_step(page, kinds.index("input_grad"))
    assert block.locator(".ov-chip.current").count() == 1 or (
        page.locator(".ov-block .ov-chip.current").count() == 1
    )
    # the sum at the block input: -4 (F path) + 2 (skip) = -2, the trace's own numbers
    go_to_step(page, kinds.index("res_sum"))
    _focus(page, 6)
    title = page.locator("#detail-title").text_content()
    assert "F path + skip" in title
    got = _values(page)
    want = [sp["dC_da_prev_path"][0][1][2], sp["dC_da_prev_skip"][0][1][2]]
    assert got[:2] == want == [-4.0, 2.0]
    assert _values(page, "sum-value") == [entry["backward"]["dC_da_prev"][0][1][2]] == [-2.0]
    # every cell of the three maps prints the trace's value
    texts = page.locator("#formula").text_content()
    assert "−4" in texts and "−2" in texts
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_timeout(500)  # the detail view re-lays out (and restarts its sweep)
    _focus(page, 6)
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / "residual-backward-sum.png"), full_page=True)
    assert not page.messages.problems(), page.messages.problems()


def test_concat_slices_and_sums(page, server):
    _open(page, "inception-branches")
    entry = _trace(server, "inception-branches")["layers"][0]
    assert page.locator(".ov-block.ov-concat .ov-lane").count() == 2
    i = find_step(page, "concat_split")
    go_to_step(page, i)
    page.select_option("#detail .detail-controls select", "1")  # output channel 1 = branch 2
    page.wait_for_function("() => document.querySelector('#detail').dataset.f === '1'")
    _focus(page, 5)  # row 1, column 2
    slices = _values(page, "slice-value")
    assert slices == [entry["split"]["dC_da"][1][0][1][2]]
    i = find_step(page, "concat_sum")
    go_to_step(page, i)
    _focus(page, 5)
    parts = [b[0][1][2] for b in entry["split"]["dC_da_prev"]]
    assert _values(page)[:2] == parts == [2.0, 1.0]
    assert _values(page, "sum-value") == [float(np.sum(parts))] == [3.0]
    assert not page.messages.problems(), page.messages.problems()
