"""cnncore.augment: each vectorized transform against a per-image oracle (loops are fine here)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cnncore import augment
from cnncore.augment import AugmentConfig


@pytest.fixture
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.zeros((16, 1, 28, 28), dtype=np.float32)
    out[:, :, 6:22, 8:20] = rng.random((16, 1, 16, 12))  # ink away from the border
    return out


def test_shift_moves_each_image_by_whole_pixels_with_zero_fill(x):
    out = augment.shift(x, np.random.default_rng(1), 3)
    d = np.random.default_rng(1).integers(-3, 4, size=(16, 2))
    for i in range(len(x)):
        ref = np.zeros_like(x[i, 0])
        dy, dx = d[i]
        src = x[i, 0][max(0, -dy) : 28 - max(0, dy), max(0, -dx) : 28 - max(0, dx)]
        ref[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
        assert np.array_equal(out[i, 0], ref), i
    assert out.dtype == x.dtype and out.flags.c_contiguous


def test_shift_clips_what_leaves_the_frame():
    x = np.ones((4, 1, 5, 5), dtype=np.float32)
    out = augment.shift(x, np.random.default_rng(3), 2)
    d = np.random.default_rng(3).integers(-2, 3, size=(4, 2))
    for i in range(4):
        assert out[i].sum() == (5 - abs(d[i, 0])) * (5 - abs(d[i, 1]))


def test_rotate_is_ndimage_rotate_per_image(x):
    out = augment.rotate(x, np.random.default_rng(5), 30)
    angles = np.random.default_rng(5).uniform(-30, 30, len(x))
    for i in range(len(x)):
        ref = ndimage.rotate(x[i, 0].astype(np.float64), -angles[i], reshape=False, order=1)
        np.testing.assert_allclose(out[i, 0], ref, atol=1e-6)


def test_rotate_works_per_channel():
    rng = np.random.default_rng(2)
    x = rng.random((3, 2, 9, 9))
    out = augment.rotate(x, np.random.default_rng(4), 20)
    angles = np.random.default_rng(4).uniform(-20, 20, 3)
    for i in range(3):
        for c in range(2):
            ref = ndimage.rotate(x[i, c], -angles[i], reshape=False, order=1)
            np.testing.assert_allclose(out[i, c], ref, atol=1e-12)


def test_flip_mirrors_a_random_subset(x):
    out = augment.flip(x, np.random.default_rng(7))
    chosen = np.random.default_rng(7).random(len(x)) < 0.5
    assert 0 < chosen.sum() < len(x)
    for i in range(len(x)):
        assert np.array_equal(out[i], x[i][..., ::-1] if chosen[i] else x[i])
    assert np.array_equal(augment.flip(x, np.random.default_rng(0), p=1.0), x[..., ::-1])


def test_noise_has_the_asked_spread_and_stays_in_range():
    x = np.full((64, 1, 28, 28), 0.5, dtype=np.float32)
    out = augment.noise(x, np.random.default_rng(0), 0.1)
    assert out.dtype == np.float32
    assert abs(float((out - x).std()) - 0.1) < 0.005
    spiky = augment.noise(np.zeros_like(x), np.random.default_rng(0), 0.3)
    assert spiky.min() == 0 and spiky.max() <= 1


def test_contrast_brightness_is_one_affine_map_per_image(x):
    out = augment.contrast_brightness(x, np.random.default_rng(9), 0.3, 0.2)
    rng = np.random.default_rng(9)
    c = rng.uniform(0.7, 1.3, len(x))
    b = rng.uniform(-0.2, 0.2, len(x))
    for i in range(len(x)):
        ref = np.clip(x[i] * np.float32(c[i]) + np.float32(b[i]), 0, 1)
        np.testing.assert_allclose(out[i], ref, atol=1e-6)


def test_apply_all_off_is_a_copy_and_all_on_is_reproducible(x):
    off = augment.apply(x, np.random.default_rng(0), AugmentConfig())
    assert np.array_equal(off, x) and off is not x and not AugmentConfig().active
    cfg = AugmentConfig(shift=2, rotation=10, flip=True, noise=0.05, contrast=0.2, brightness=0.1)
    before = x.copy()
    a = augment.apply(x, np.random.default_rng(3), cfg)
    b = augment.apply(x, np.random.default_rng(3), cfg)
    assert np.array_equal(a, b) and np.array_equal(x, before)  # input untouched
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1 and not np.array_equal(a, x)
    assert cfg.to_dict()["flip"] is True


def test_a_flipped_two_is_not_a_two():
    """Why flipping is a bad augmentation for digits: the mirrored image differs from the
    original far more than a small shift does (it is a different shape)."""
    from cnncore import data

    split = data.load_split()
    two = split.x_train[np.flatnonzero(split.y_train == 2)[:50]]
    mirrored = two[..., ::-1]
    shifted = augment.shift(two, np.random.default_rng(0), 1)
    assert np.abs(mirrored - two).mean() > 1.5 * np.abs(shifted - two).mean()
