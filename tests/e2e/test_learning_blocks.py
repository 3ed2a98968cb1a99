"""Apply one step where the parameters are not a top-level `w`: the residual-block and
inception-branches worked examples (block params live in the nested inner entries, flat dotted
names such as `layers.0.w`), and an uploaded .onnx network, whose Reset weights must come on
after a step."""

from __future__ import annotations

import pytest

from .helpers import ONE, draw, wait_settled, wait_traced
from .test_learning import apply_step, open_url, shown_loss

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("sid", ["residual-block", "inception-branches"])
def test_apply_one_step_on_a_block_example_lowers_the_loss(page, server, sid):
    open_url(page, server + f"/?s={sid}&lang=en")
    page.wait_for_function("() => !document.querySelector('#learn-apply').disabled")
    assert page.locator("#learn-none").is_hidden()  # no "nothing to learn" note
    assert page.locator("#learn-reset").is_disabled()
    body = apply_step(page, 1)
    blocks = [
        i for i, l in enumerate(body["network"]["layers"]) if l["type"] in ("residual", "concat")
    ]
    assert blocks and all(any(k.endswith(".w") for k in body["params"][i]) for i in blocks)
    before, after = shown_loss(page)
    assert after < before
    assert not page.locator("#learn-reset").is_disabled()
    # the next step starts from the learned parameters: the loss keeps going down
    apply_step(page, 2)
    before2, after2 = shown_loss(page)
    assert before2 == pytest.approx(after, rel=1e-12) and after2 < before2
    assert not page.messages.problems(), page.messages.problems()


def test_reset_weights_after_a_step_on_an_uploaded_onnx_network(page, tmp_path):
    torch = pytest.importorskip("torch")
    from .test_onnx_upload import export, upload

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 2, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 8 * 8, 10),
        nn.Softmax(dim=1),
    )  # fmt: skip
    upload(page, export(model, (1, 28, 28), tmp_path / "small.onnx"))
    draw(page, ONE)
    wait_settled(page)
    assert page.locator("#learn-reset").is_disabled()
    with page.expect_response(lambda r: r.url.endswith("/api/learn")) as learned:
        page.locator("#learn-apply").click()
    r = learned.value.json()
    assert r["loss_after"] < r["loss_before"]
    page.wait_for_function("() => document.querySelector('#learn-card').dataset.steps === '1'")
    page.wait_for_function("() => !document.querySelector('#learn-reset').disabled")
    # Reset: back to the uploaded weights (the trace's loss is the one before the step)
    with page.expect_response(lambda r: r.url.endswith("/api/trace")) as again:
        page.locator("#learn-reset").click()
    assert again.value.json()["loss"] == pytest.approx(r["loss_before"], rel=1e-12)
    wait_traced(page)
    page.wait_for_function("() => document.querySelector('#learn-reset').disabled")
    assert page.evaluate("document.body.dataset.source") == "onnx"
    assert not page.messages.problems(), page.messages.problems()
