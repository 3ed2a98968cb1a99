"""Open your own model (.onnx) in real Chromium: a PyTorch network exported with
torch.onnx.export is uploaded, drawn on and stepped through; the numbers the page shows come
from that network (checked against PyTorch); other input sizes get the input card; a bad file
is a clear message."""

from __future__ import annotations

import base64
import gzip
import io
import json
import warnings

import numpy as np
import pytest

from .helpers import ONE, draw, go_to_step, step_total, wait_settled, wait_traced

pytestmark = pytest.mark.e2e
torch = pytest.importorskip("torch")
nn = torch.nn


def arr(v) -> np.ndarray:
    """A JSON array, or the page's exact base64 form {dtype, shape, data}, as NumPy."""
    if isinstance(v, dict) and "data" in v:
        raw = base64.b64decode(v["data"])
        return np.frombuffer(raw, dtype=np.dtype(v["dtype"]).newbyteorder("<")).reshape(v["shape"])
    return np.asarray(v, dtype=np.float64)


def sent(request) -> dict:
    """The JSON body the page sent (it gzips large bodies)."""
    raw = request.post_data_buffer
    if (request.headers.get("content-encoding") or "") == "gzip":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def export(model, shape, path):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, *shape),), f, dynamo=False)
    path.write_bytes(f.getvalue())
    return path


def upload(page, path):
    page.set_input_files("#onnx-file", str(path))
    page.wait_for_function("() => document.body.dataset.onnx === 'ready'", timeout=20000)
    page.wait_for_function("() => document.body.dataset.source === 'onnx'")
    wait_traced(page)


def test_upload_a_pytorch_digit_net_draw_and_step(page, tmp_path, screenshots):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, (5, 3), stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 6 * 7, 10),
        nn.LogSoftmax(dim=1),
    )
    path = export(model, (1, 28, 28), tmp_path / "my_net.onnx")
    assert page.locator("#onnx-open").is_visible()
    upload(page, path)
    assert page.locator("#source-select").input_value() == "onnx:my_net"
    assert page.locator("#pad-card").is_visible()
    assert page.locator("#onnx-report").is_visible()
    assert "my_net" in page.locator("#onnx-report h2").inner_text()

    with page.expect_response(lambda r: r.url.endswith("/api/trace")) as resp:
        draw(page, ONE)
        wait_settled(page)
    body = sent(resp.value.request)
    trace = resp.value.json()
    assert [layer["type"] for layer in body["network"]["layers"]] == [
        "conv2d", "maxpool2d", "flatten", "dense"
    ]  # fmt: skip
    # the page traced the uploaded network: PyTorch on the same input gives the same numbers
    x = torch.tensor(arr(body["input"])).reshape(1, 1, 28, 28)
    want = model.double()(x).exp().detach().numpy()[0]
    np.testing.assert_allclose(arr(trace["output"]), want, atol=1e-12)
    # the bars show those probabilities
    shown = page.locator("#probs .prob-value").all_inner_texts()
    assert len(shown) == 10

    n = step_total(page)
    assert n >= 8
    go_to_step(page, n - 1)
    go_to_step(page, 1)
    page.screenshot(path=str(screenshots / "onnx-upload-digit-net.png"))
    # one learning step on the uploaded network: the loss goes down
    with page.expect_response(lambda r: r.url.endswith("/api/learn")) as learned:
        page.locator("#learn-apply").click()
    assert learned.value.status == 200
    r = learned.value.json()
    assert r["loss_after"] < r["loss_before"]
    wait_traced(page)
    assert not page.messages.problems(), page.messages.problems()


def test_other_input_sizes_get_the_input_card(page, tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 2, 3), nn.Sigmoid(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 2)
    )
    upload(page, export(model, (3, 8, 8), tmp_path / "rgb.onnx"))
    assert page.locator("#onnx-input-card").is_visible()
    assert not page.locator("#pad-card").is_visible()
    assert "3×8×8" in page.locator("#onnx-input-card h2").inner_text()
    assert page.locator("#onnx-input-card input.ev").count() == 0  # 192 values
    assert step_total(page) > 4
    # the card's controls stay inside it (the button once overflowed the side column)
    card = page.locator("#onnx-input-card").bounding_box()
    button = page.locator("#onnx-random").bounding_box()
    assert card["x"] <= button["x"] and button["x"] + button["width"] <= card["x"] + card["width"]
    with page.expect_response(lambda r: r.url.endswith("/api/trace")) as resp:
        page.locator("#onnx-random").click()
    body = sent(resp.value.request)
    x = torch.tensor(arr(body["input"]))[None]
    want = model.double()(x).detach().numpy()[0]
    np.testing.assert_allclose(arr(resp.value.json()["output"]), want, atol=1e-12)
    wait_traced(page)

    # a tiny input gets a number editor
    small = nn.Sequential(nn.Conv2d(1, 1, 2), nn.Flatten(), nn.Linear(9, 1))
    upload(page, export(small, (1, 4, 4), tmp_path / "tiny.onnx"))
    fields = page.locator("#onnx-input-card input.ev")
    assert fields.count() == 16
    with page.expect_response(lambda r: r.url.endswith("/api/trace")) as resp:
        fields.nth(5).fill("2.5")
        fields.nth(5).dispatch_event("change")
    assert arr(sent(resp.value.request)["input"])[0][1][1] == 2.5
    wait_traced(page)

    # back to the digit model: the cards of the upload go away
    page.locator("#source-select").select_option("model:digits")
    page.wait_for_function("() => document.body.dataset.source === 'model'")
    assert not page.locator("#onnx-input-card").is_visible()
    assert not page.locator("#onnx-report").is_visible()
    assert not page.messages.problems(), page.messages.problems()


def test_a_file_that_is_not_a_model_is_explained(page, tmp_path):
    bad = tmp_path / "photo.onnx"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    page.set_input_files("#onnx-file", str(bad))
    page.wait_for_function("() => document.body.dataset.onnx === 'error'")
    assert "not a valid ONNX model" in page.locator("#status").inner_text()
    assert page.evaluate("document.body.dataset.source") == "model"


def test_resnet_and_inception_blocks_step_through(page, tmp_path):
    """A ResNet basic block (projection) and an Inception-style concat, uploaded: every step
    shows without a console error."""

    class Basic(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 1, 1)
            self.proj = nn.Conv2d(3, 4, 1, 2)

        def forward(self, x):
            return torch.relu(self.c2(torch.relu(self.c1(x))) + self.proj(x))

    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 3, padding=1)

        def forward(self, x):
            return torch.cat([torch.relu(self.a(x)), torch.tanh(self.b(x))], 1)

    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 5, stride=2), nn.ReLU(), Basic(), Inception(), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 10), nn.Softmax(dim=1),
    )  # fmt: skip
    upload(page, export(model, (1, 28, 28), tmp_path / "blocks.onnx"))
    draw(page, ONE)
    wait_settled(page)
    layers = page.locator("#onnx-report li").all_text_contents()
    assert any("residual" in t for t in layers) and any("concat" in t for t in layers)
    n = step_total(page)
    for i in range(n):
        go_to_step(page, i)
    assert not page.messages.problems(), page.messages.problems()
