"""A cross-entropy trace whose softmax underflowed (a logit gap over ~710): the target's
probability is exactly 0, dC/da = −y/a is −∞ (the API sends −inf in base64). A browser user
reaches it by editing a worked example's value (here the last bias of "maxpool-middle" to
−1000). The page shows it honestly: −∞ with a note why, never a blank, NaN or a false equation
(−log(0) = 1000)."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest

from .helpers import find_step, go_to_step
from .test_learning import open_url

pytestmark = pytest.mark.e2e

# flat index of the last layer's b[0] in maxpool-middle: input 25, conv w 4 + b 1, dense w 8
URL = "/?s=maxpool-middle&e=38:-1000"


def server_trace(server: str) -> dict:
    sc = httpx.get(server + "/api/scenarios/maxpool-middle", timeout=10).json()
    params = sc["params"]
    params[3]["b"] = [-1000, -5]
    body = {"network": sc["spec"], "params": params, "input": sc["input"], "target": sc["target"]}
    r = httpx.post(server + "/api/trace", json=body, timeout=20)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_underflowed_softmax_shows_minus_infinity_with_a_note(page, server, lang):
    tr = server_trace(server)
    last = tr["layers"][-1]
    assert "dC_da" in last["nonfinite"]  # JSON: left out, said why (base64 would carry −inf)
    z = np.asarray(last["forward"]["z"], dtype=np.float64)
    assert tr["output"][0] == 0.0 and tr["loss"] == pytest.approx(1000.0)

    open_url(page, server + URL + f"&lang={lang}")
    go_to_step(page, find_step(page, "loss"))
    page.wait_for_selector('#detail[data-underflow="true"]', state="attached")
    formula = page.locator("#formula")
    text = formula.inner_text()
    assert "NaN" not in text and "Infinity" not in text
    # the cost holds as printed: log Σ e^z − z_0 (not −log(0), which would be ∞)
    lse = float(np.logaddexp.reduce(z))
    shown = formula.locator("[data-value]").evaluate_all("els => els.map(e => e.dataset.value)")
    vals = [float(v) for v in shown if v not in ("", "Infinity", "-Infinity")]
    assert any(math.isclose(v, lse, rel_tol=1e-12) for v in vals)
    assert any(v == z[0] for v in vals)
    loss = float(formula.locator('[data-role="loss-value"]').get_attribute("data-value"))
    assert loss == tr["loss"]
    # dC/da_0 = −y/a = −1/0 = −∞, from the trace's own −inf, with the note why
    da = formula.locator('[data-role="da-underflow"]')
    assert da.get_attribute("data-value") == "-Infinity"
    assert da.text_content() == "\u2212\u221e"
    note = "underflowed" if lang == "en" else "下溢"
    assert note in text
    # the gradient strip: the last layer's ‖∂C/∂a‖ is ∞ (full bar), the others finite
    strip = page.locator("#grad-strip li")
    assert strip.last.locator(".gs-val").inner_text() == "\u221e"
    assert strip.last.locator(".gs-bar").get_attribute("style") == "height: 100%;"
    assert note in (strip.last.get_attribute("title") or "")
    for k in range(strip.count() - 1):
        assert "NaN" not in (strip.nth(k).locator(".gs-bar").get_attribute("style") or "")
    assert not page.messages.problems(), page.messages.problems()
