"""cnncore.preprocess: real test digits redrawn big, thick and off-centre come back MNIST-like."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile
from scipy import ndimage

from cnncore import data
from cnncore.preprocess import image_from_bytes, normalize_stroke, stroke_width, to_mnist


@pytest.fixture(scope="module")
def digits():
    """float64 (200, 28, 28) real test-split digits, ink = 1."""
    try:
        split = data.load_split()
    except data.DataError as exc:
        pytest.fail(f"MNIST data unavailable: {exc}")
    return split.x_test[:200, 0].astype(np.float64)


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _redraw(digit, rng, scale, thicken, size=280):
    """Paste a digit zoomed by scale, strokes grown by a thicken-px dilation, at a random spot."""
    big = np.clip(ndimage.zoom(digit, scale, order=1), 0, 1)
    if thicken > 1:
        big = ndimage.grey_dilation(big, size=(thicken, thicken))
    canvas = np.zeros((size, size))
    top, left = (rng.integers(0, size - n + 1) for n in big.shape)
    canvas[top : top + big.shape[0], left : left + big.shape[1]] = big
    return canvas


def _png(array_u8, mode=None):
    buf = io.BytesIO()
    Image.fromarray(array_u8, mode).save(buf, "PNG")
    return buf.getvalue()


def test_an_mnist_digit_is_left_as_it_is(digits):
    out = np.array([to_mnist(d) for d in digits])
    assert np.mean([_corr(o, d) for o, d in zip(out, digits, strict=True)]) > 0.99
    # Most MNIST digits already are a 20 px box centred by mass: those come back unchanged.
    assert np.median(np.abs(out - digits).max(axis=(1, 2))) < 1e-6


def test_redrawn_digits_match_their_own_mnist_form(digits):
    rng = np.random.default_rng(7)
    corrs = []
    for d in digits:
        out = to_mnist(_redraw(d, rng, rng.uniform(0.5, 3.0), int(rng.integers(1, 4))))
        assert out.shape == (28, 28) and out.dtype == np.float64
        assert out.min() >= 0 and out.max() == 1.0
        cy, cx = ndimage.center_of_mass(out)
        assert 12.5 <= cy <= 15.0 and 12.5 <= cx <= 15.0
        corrs.append(_corr(out, to_mnist(d)))
    assert np.mean(corrs) > 0.85
    assert np.percentile(corrs, 10) > 0.7


def test_a_280px_rerender_comes_back_nearly_identical(digits):
    rng = np.random.default_rng(1)
    out = [to_mnist(_redraw(d, rng, 10.0, 1)) for d in digits]
    corrs = [_corr(o, d) for o, d in zip(out, digits, strict=True)]
    assert np.mean(corrs) > 0.93
    assert np.mean(np.abs(np.array(out) - digits)) < 0.04


def test_thin_pen_strokes_are_antialiased_not_sampled(digits):
    # A thin pen at 280 px: strokes 10x the digit's own, eroded to a few px. Point sampling
    # (nearest) breaks them into dots; an anti-aliased downscale keeps them whole.
    rng = np.random.default_rng(3)
    corrs = []
    for d in digits:
        big = ndimage.zoom(d, 10, order=1) > 0.5
        thin = ndimage.binary_erosion(big, iterations=int(rng.integers(6, 9)))
        corrs.append(_corr(to_mnist(thin.astype(float)), to_mnist(d)))
    assert np.mean(corrs) > 0.72


def test_one_pixel_outlines_do_not_vanish(digits):
    # 1 px outlines of real digits drawn 10x big: every one must still leave ink behind.
    corrs = []
    for d in digits[:100]:
        big = ndimage.zoom(d, 10, order=1) > 0.5
        out = to_mnist((big & ~ndimage.binary_erosion(big)).astype(float))
        assert (out > 0.2).sum() >= 20
        corrs.append(_corr(out, to_mnist(d)))
    assert np.mean(corrs) > 0.45


def test_empty_and_faint_drawings_give_zeros():
    np.testing.assert_array_equal(to_mnist(np.zeros((280, 280))), np.zeros((28, 28)))
    np.testing.assert_array_equal(to_mnist(np.full((50, 50), 0.04)), np.zeros((28, 28)))


def test_size_limits_and_validation(digits):
    assert to_mnist(np.zeros((512, 512))).shape == (28, 28)
    assert to_mnist(np.ones((1, 1))).sum() > 0
    for shape in [(513, 100), (100, 513), (0, 5), (28, 28, 1), (784,)]:
        with pytest.raises(ValueError):
            to_mnist(np.zeros(shape))
    bad = digits[0].copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        to_mnist(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_mnist(digits[0] * 255)


def test_uint8_is_scaled(digits):
    u8 = np.rint(digits[0] * 255).astype(np.uint8)
    np.testing.assert_allclose(to_mnist(u8), to_mnist(u8 / 255.0))


def test_png_round_trip_recovers_dark_ink_on_white(digits):
    big = np.clip(ndimage.zoom(digits[0], 5, order=1), 0, 1)
    ink = image_from_bytes(_png(np.rint(255 * (1 - big)).astype(np.uint8)))
    assert ink.shape == big.shape and ink.dtype == np.float64
    np.testing.assert_allclose(ink, big, atol=1 / 255 + 1e-9)
    assert _corr(to_mnist(ink), to_mnist(digits[0])) > 0.9


def test_jpeg_on_grey_paper_and_canvas_alpha(digits):
    d = digits[1]
    big = np.clip(ndimage.zoom(d, 4, order=1), 0, 1)
    paper = np.rint(210 - 190 * big).astype(np.uint8)  # grey paper, dark-grey pen
    buf = io.BytesIO()
    Image.fromarray(np.stack([paper] * 3, axis=-1)).save(buf, "JPEG", quality=85)
    assert _corr(to_mnist(image_from_bytes(buf.getvalue())), to_mnist(d)) > 0.9
    # A browser canvas export: black strokes whose alpha is the ink, transparent elsewhere.
    rgba = np.zeros(big.shape + (4,), np.uint8)
    rgba[..., 3] = np.rint(255 * big)
    np.testing.assert_allclose(image_from_bytes(_png(rgba)), big, atol=1 / 255 + 1e-9)


def test_corrupt_payloads_are_refused(digits):
    good = _png(np.rint(255 * digits[0]).astype(np.uint8))
    for payload in [b"", b"hello", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, good[: len(good) // 2]]:
        with pytest.raises(ValueError):
            image_from_bytes(payload)
    gif = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(gif, "GIF")
    with pytest.raises(ValueError, match="PNG or JPEG") as err:
        image_from_bytes(gif.getvalue())
    assert "BytesIO" not in str(err.value)  # the message is for the client, not internals


def _png_header(width, height):
    """A tiny PNG that claims width x height 8-bit grey pixels but holds almost none."""

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_dimensions_are_refused_before_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(AssertionError):  # the guard above really catches a decode
        image_from_bytes(_png(np.zeros((8, 8), np.uint8)))
    for w, h in [(10_000, 10_000), (513, 8), (8, 600), (100_000, 100_000)]:
        payload = _png_header(w, h)
        assert len(payload) < 200
        with pytest.raises(ValueError, match="too large|at most 512x512"):
            image_from_bytes(payload)


def _photo(ink, paper, pen, tilt, rng, quality=80):
    """A photo of ink on paper: grey paper with a light gradient across it, noise, JPEG."""
    h, w = ink.shape
    gy, gx = np.mgrid[0:h, 0:w] / max(h, w) - 0.5
    gray = (paper + (pen - paper) * ink) * (1 + tilt * (gx + gy))
    gray = np.clip(gray + rng.normal(0, 5, gray.shape), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(np.rint(gray).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_uneven_light_in_a_photo_is_not_ink(digits):
    # A gradient of +-30 % across grey paper: the old single background level (the median)
    # counted the bright half of the sheet as ink and framed the digit.
    rng = np.random.default_rng(5)
    corrs = []
    for d in digits[:40]:
        big = np.pad(np.clip(ndimage.zoom(d, 3, order=1), 0, 1), 12)  # a margin of paper
        ink = image_from_bytes(_photo(big, 180, 40, 0.3, rng))
        assert ink[:3].mean() < 0.02 and ink[-3:].mean() < 0.02  # no paper left as ink
        corrs.append(_corr(to_mnist(ink), to_mnist(d)))
    assert np.mean(corrs) > 0.9


def test_a_thick_dark_digit_on_grey_paper_is_still_dark_ink():
    # Ink covering most of a grey sheet pulls the picture's mean below 0.5; the border decides.
    ink = np.zeros((40, 40))
    ink[6:34, 6:34] = 1.0
    ink[14:26, 14:26] = 0.0  # a thick square "0"
    gray = np.rint(170 - 150 * ink).astype(np.uint8)
    assert gray.mean() / 255 < 0.5
    out = image_from_bytes(_png(gray))
    np.testing.assert_allclose(out / out.max(), ink, atol=0.02)


def test_a_clean_drawing_keeps_its_exact_values(digits):
    big = np.clip(ndimage.zoom(digits[2], 6, order=1), 0, 1)
    u8 = np.rint(255 * big).astype(np.uint8)
    np.testing.assert_allclose(image_from_bytes(_png(u8)), u8 / 255.0, atol=1e-12)


def test_a_fine_pen_is_thickened_to_mnist_width(digits):
    # 1 px wide skeletons of digits drawn 10x big: after preprocessing their width in the
    # 28 px image is MNIST's, not a hairline.
    widths, mnist_widths = [], []
    for d in digits[:30]:
        big = ndimage.zoom(d, 10, order=1) > 0.5
        thin = ndimage.binary_erosion(big, iterations=8)
        if thin.sum() < 50:
            continue
        out = to_mnist(thin.astype(float))
        widths.append(stroke_width(ndimage.zoom(out, 10, order=1)) / 10)
        mnist_widths.append(stroke_width(ndimage.zoom(to_mnist(d), 10, order=1)) / 10)
    assert len(widths) >= 20
    assert 0.7 < np.median(widths) / np.median(mnist_widths) < 1.4


def test_mnist_sized_boxes_are_not_rethickened(digits):
    for d in digits[:20]:
        crop = d[d.any(axis=1)][:, d.any(axis=0)]
        assert normalize_stroke(crop) is crop
