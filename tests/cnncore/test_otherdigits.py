"""The non-MNIST handwriting set: scikit-learn's optdigits, scored through the upload path."""

import io

import numpy as np
import pytest
from PIL import Image

from cnncore import models, otherdigits
from cnncore.train import accuracy

pytest.importorskip("sklearn", reason="scikit-learn is a dev dependency (pip install -e .[dev])")


@pytest.fixture(scope="module")
def optdigits():
    return otherdigits.load()


def test_the_set_is_1797_digits_of_all_classes(optdigits):
    blocks, labels = optdigits
    assert blocks.shape == (1797, 8, 8) and blocks.dtype == np.uint8
    assert blocks.max() == 16
    assert np.bincount(labels, minlength=10).min() >= 170


def test_files_are_dark_ink_on_light_paper(optdigits):
    blocks, _ = optdigits
    scan = Image.open(io.BytesIO(otherdigits.scan_file(blocks[0])))
    assert scan.format == "PNG" and scan.size == (8, 8)
    photo = np.asarray(Image.open(io.BytesIO(otherdigits.files(blocks[:1], "photo")[0])))
    assert photo.shape == (64, 64) and np.median(photo) > 150  # light paper
    # Fixed for a seed: the set is the same every run.
    assert otherdigits.files(blocks[:3], "photo") == otherdigits.files(blocks[:3], "photo")
    with pytest.raises(ValueError, match="unknown variant"):
        otherdigits.files(blocks[:1], "video")


def test_inputs_come_through_the_upload_path(optdigits):
    blocks, _ = optdigits
    x = otherdigits.inputs(blocks[:5], "scan")
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float64
    assert np.all(x.max(axis=(1, 2, 3)) == 1.0)


def test_bundled_model_reads_other_writers(optdigits):
    # The numbers recorded in the model card must be the true ones, and stay high.
    blocks, labels = optdigits
    net, meta = models.load("digits")
    recorded = meta.get("other_handwriting", {})
    for variant in otherdigits.VARIANTS:
        acc = accuracy(net, otherdigits.inputs(blocks, variant), labels)
        assert acc >= 0.9, (variant, acc)
        if variant in recorded:
            assert abs(acc - recorded[variant]) < 2e-3, (variant, acc, recorded[variant])
