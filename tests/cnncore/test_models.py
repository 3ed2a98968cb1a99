"""The bundled digit model: its recorded dev/test accuracy on the official MNIST is the true one,
and it reads drawn-looking digits. The data are fetched by `make test`; without them the
accuracy tests skip (and say why)."""

import numpy as np
import pytest
from scipy import ndimage

from cnncore import data, models
from cnncore.preprocess import to_mnist
from cnncore.train import accuracy


@pytest.fixture(scope="module")
def digits():
    return models.load("digits")


@pytest.fixture(scope="module")
def split():
    try:
        return data.load_split()
    except data.DataError as exc:
        pytest.skip(f"MNIST data absent (run `cnnviz data fetch`): {exc}")


def test_bundled_model_is_listed_and_small(digits):
    net, meta = digits
    assert "digits" in models.available()
    assert net.spec["input_shape"] == [1, 28, 28] and net.spec["output_shape"] == [10]
    assert all(layer.get("out_channels", 0) <= 32 for layer in net.spec["layers"])
    assert meta["dataset"]["test"] == 10_000 and meta["dataset"]["dev"] == 5_000


def test_bundled_model_accuracy_on_the_official_test_set(digits, split):
    net, meta = digits
    pred = np.concatenate(
        [
            net.predict(split.x_test[i : i + 500].astype(np.float64)).argmax(axis=1)
            for i in range(0, 10_000, 500)
        ]
    )
    acc = float(np.mean(pred == split.y_test))
    assert acc >= 0.992, acc  # better than the model it replaced (99.24 % on these digits)
    assert abs(acc - meta["test_accuracy"]) < 1e-4  # the recorded number is the true one
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (split.y_test.astype(int), pred), 1)
    np.testing.assert_array_equal(cm, meta["confusion_matrix"])


def test_bundled_model_accuracy_on_dev(digits, split):
    net, meta = digits
    acc = accuracy(net, split.x_dev.astype(np.float64), split.y_dev)
    assert abs(acc - meta["dev_accuracy"]) < 1e-4


def _paste_on_canvas(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real test digit as a user might draw it: any scale, stroke width and place.

    The digit is scaled 2x..9x (56..252 px), then its strokes are thinned or thickened by
    -0.75..+2 of MNIST's own pixels (MNIST strokes are about 2.5 px wide, so from a fine pen
    to nearly double width), measured at the drawing's scale so that a small digit does not
    get a marker a third of its height wide.
    """
    zoom = rng.uniform(2.0, 9.0)
    img = ndimage.zoom(digit, zoom, order=1)
    change = rng.uniform(-0.75, 2.0)
    size = int(round(abs(change) * zoom))
    if size > 1:
        morph = ndimage.grey_dilation if change > 0 else ndimage.grey_erosion
        img = morph(img, size=(size, size))
    img = np.clip(img, 0, 1)
    h, w = img.shape
    if max(h, w) > 280:  # keep the whole digit on the canvas
        img = np.clip(ndimage.zoom(img, 279 / max(h, w), order=1), 0, 1)
        h, w = img.shape
    canvas = np.zeros((280, 280))
    top, left = rng.integers(0, 281 - h), rng.integers(0, 281 - w)
    canvas[top : top + h, left : left + w] = img
    return canvas


def test_accuracy_through_drawing_preprocessing(digits, split):
    net, _ = digits
    rng = np.random.default_rng(0)
    idx = rng.choice(len(split.x_test), 500, replace=False)
    inputs = np.stack(
        [to_mnist(_paste_on_canvas(split.x_test[i, 0].astype(np.float64), rng)) for i in idx]
    )
    acc = accuracy(net, inputs[:, None], split.y_test[idx])
    assert acc >= 0.97, acc
