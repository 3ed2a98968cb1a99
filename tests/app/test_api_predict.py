"""POST /api/predict: JSON drawings and PNG/JPEG uploads; every bad input is a clean 4xx."""

from __future__ import annotations

import io

import numpy as np
import pytest
from api_helpers import assert_error
from PIL import Image

from cnncore import models, preprocess


def drawing(h: int = 280, w: int = 280) -> np.ndarray:
    """A thick vertical stroke (a '1'), ink = 1."""
    img = np.zeros((h, w))
    img[h // 5 : 4 * h // 5, w // 2 - w // 20 : w // 2 + w // 20] = 1.0
    return img


def png_bytes(ink: np.ndarray, fmt: str = "PNG") -> bytes:
    gray = (255 - np.round(ink * 255)).astype(np.uint8)  # dark digit on white paper
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format=fmt)
    return buf.getvalue()


def expected(tiny_models_dir, ink: np.ndarray):
    net, _ = models.load_file(tiny_models_dir / "digits")
    x28 = preprocess.to_mnist(ink)
    return x28, net.predict(x28.reshape(1, 1, 28, 28))[0]


def test_predict_json(client, tiny_models_dir):
    ink = drawing()
    r = client.post("/api/predict", json={"model": "digits", "image": ink.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    x28, probs = expected(tiny_models_dir, ink)
    np.testing.assert_array_equal(np.array(body["input"]), x28)
    np.testing.assert_array_equal(np.array(body["probabilities"]), probs)
    assert body["prediction"] == int(np.argmax(probs))
    assert len(body["probabilities"]) == 10


def test_predict_json_default_model_and_tiny_image(client):
    r = client.post("/api/predict", json={"image": [[1]]})
    assert r.status_code == 200, r.text
    assert np.array(r.json()["input"]).shape == (28, 28)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_predict_upload(client, tiny_models_dir, fmt):
    data = png_bytes(drawing(), fmt)
    r = client.post(
        "/api/predict", files={"file": (f"d.{fmt.lower()}", data)}, data={"model": "digits"}
    )
    assert r.status_code == 200, r.text
    x28, probs = expected(tiny_models_dir, preprocess.image_from_bytes(data))
    np.testing.assert_array_equal(np.array(r.json()["input"]), x28)
    np.testing.assert_allclose(r.json()["probabilities"], probs)


BAD_JSON = {
    "missing image": ({"model": "digits"}, ("body", "image")),
    "value above 1": ({"image": [[0, 1.5]]}, ("body", "image", 0, 1)),
    "negative value": ({"image": [[0, -0.1]]}, ("body", "image", 0, 1)),
    "string value": ({"image": [[0, "1"]]}, ("body", "image", 0, 1)),
    "bool value": ({"image": [[0, True]]}, ("body", "image", 0, 1)),
    "false value": ({"image": [[False, 1]]}, ("body", "image", 0, 0)),
    "null value": ({"image": [[0, None]]}, ("body", "image", 0, 1)),
    "object value": ({"image": [[0, {}]]}, ("body", "image", 0, 1)),
    "ragged": ({"image": [[0, 1], [0]]}, ("body", "image", 1)),
    "1-D": ({"image": [0, 1]}, ("body", "image")),
    "3-D": ({"image": [[[0]]]}, ("body", "image")),
    "empty": ({"image": []}, ("body", "image")),
    "empty row": ({"image": [[]]}, ("body", "image")),
    "too tall": ({"image": [[0]] * 513}, ("body", "image")),
    "too wide": ({"image": [[0] * 513]}, ("body", "image")),
    "unknown model": ({"model": "nope", "image": [[0]]}, ("body", "model")),
    "unknown field": ({"image": [[0]], "extra": 1}, ("body", "extra")),
    "not an object": ([[0]], ("body",)),
}


@pytest.mark.parametrize("name", list(BAD_JSON))
def test_bad_json(client, name):
    body, loc = BAD_JSON[name]
    assert_error(client.post("/api/predict", json=body), 422, *loc)


@pytest.mark.parametrize(
    "raw", [b'{"image": [[NaN]]}', b'{"image": [[Infinity]]}', b"{", b"", b"nope"]
)
def test_malformed_json(client, raw):
    r = client.post("/api/predict", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 422, "body")


@pytest.mark.parametrize(
    "raw",
    [
        # the letters of `true` spelled by the model name, or hidden by an escape
        b'{"model": "digits", "image": [[0, true]]}',
        b'{"model": "\\u0064igits", "image": [[0, true]]}',
        b'{"image": [[0, 1], [true, 0]], "model": "digits"}',
    ],
)
def test_literal_in_image_takes_the_strict_path(client, raw):
    r = client.post("/api/predict", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 422, "body", "image")


def test_unsupported_content_type(client):
    r = client.post("/api/predict", content=b"abc", headers={"content-type": "text/plain"})
    assert_error(r, 415, "header", "content-type")


def test_non_classifier_model_is_rejected(tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings
    from cnncore import Network

    net = Network.from_spec(
        {"input_shape": [1, 4, 4], "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}
    )
    models.save(net, tmp_path / "small", {"description": "not an image classifier"})
    with TestClient(create_app(Settings(models_dir=tmp_path))) as c:
        r = c.post("/api/predict", json={"model": "small", "image": [[0]]})
        assert_error(r, 422, "body", "model")


def _upload(client, data: bytes, **extra):
    return client.post("/api/predict", files={"file": ("x.png", data)}, data=extra or None)


def test_corrupt_upload(client):
    assert_error(_upload(client, b"\x89PNG\r\n\x1a\n garbage"), 422, "body", "file")
    assert_error(_upload(client, b"GIF89a..."), 422, "body", "file")
    truncated = png_bytes(drawing())[:200]
    assert_error(_upload(client, truncated), 422, "body", "file")


def test_empty_upload(client):
    assert_error(_upload(client, b""), 422, "body", "file")


def test_huge_image_upload(client):
    """A 4000×4000 PNG compresses to a few KB; it is refused from its header, undecoded."""
    buf = io.BytesIO()
    Image.new("L", (4000, 4000), 255).save(buf, format="PNG")
    item = assert_error(_upload(client, buf.getvalue()), 422, "body", "file")
    assert "512" in item["msg"]


def test_oversized_upload(client, settings):
    data = b"\x89PNG" + b"0" * (settings.max_upload_bytes + 10)
    assert_error(_upload(client, data), 413, "body", "file")


def test_upload_without_file_field(client):
    r = client.post("/api/predict", data={"model": "digits"}, files={"other": ("x.png", b"abc")})
    assert_error(r, 422, "body", "file")


def test_upload_unknown_model(client):
    assert_error(_upload(client, png_bytes(drawing()), model="nope"), 422, "body", "model")


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("multipart/form-data", b"abc"),
        ("multipart/form-data; boundary=xyz", b"garbage"),
        (
            "multipart/form-data; boundary=xyz",
            b"".join(
                b'--xyz\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nhi\r\n' % i
                for i in range(10)
            )
            + b"--xyz--\r\n",
        ),
    ],
)
def test_malformed_multipart(client, ctype, body):
    r = client.post("/api/predict", content=body, headers={"content-type": ctype})
    assert_error(r, 400, "body")
