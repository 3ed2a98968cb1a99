"""GET /api/samples: the bundled MNIST test digits are the real ones, as exact network inputs."""

from __future__ import annotations

import numpy as np
import pytest

from app.routes.samples import SAMPLES


def test_samples_are_twenty_labelled_test_digits(client):
    r = client.get("/api/samples")
    assert r.status_code == 200
    body = r.json()
    items = body["samples"]
    assert len(items) == 20
    assert sorted(s["label"] for s in items) == sorted(list(range(10)) * 2)
    with np.load(SAMPLES, allow_pickle=False) as z:
        images = z["images"]
    for s, img in zip(items, images, strict=True):
        x = np.array(s["input"])
        assert x.shape == (28, 28) and x.min() >= 0 and x.max() <= 1
        np.testing.assert_array_equal(x, img / 255.0)  # exact float64, no rounding on the way


def test_samples_match_the_cached_mnist_test_set():
    data = pytest.importorskip("cnncore.data")
    try:
        mnist = data.load_mnist()
    except Exception as exc:  # offline machine without the cache
        pytest.skip(f"MNIST not cached: {exc}")
    with np.load(SAMPLES, allow_pickle=False) as z:
        idx, images, labels = z["index"], z["images"], z["labels"]
    np.testing.assert_array_equal(images, mnist["test_images"][idx])
    np.testing.assert_array_equal(labels, mnist["test_labels"][idx])
