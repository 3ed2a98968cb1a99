"""A drawing or an uploaded picture -> a (28, 28) MNIST-like input, following MNIST's recipe.

``to_mnist``: (H, W) ink map, 1x1 .. 512x512, ink = 1 -> float64 (28, 28) in [0, 1]:

1. drop specks (blobs with under 2 % of the ink), crop to the bounding box of pixels >
   ``INK_THRESHOLD`` (0.05: above canvas anti-aliasing dust and JPEG noise, yet every MNIST
   digit's box is still exactly 20 px at that level);
2. thicken a fine pen's strokes to MNIST's width (``normalize_stroke``), crop again;
3. scale so the longer side is 20 px, aspect ratio kept, with Pillow's LANCZOS filter on a
   float image (its support widens with the downscale factor, so it anti-aliases thin and
   thick strokes alike; it beat BOX, bilinear and Gaussian+zoom on real digits re-rendered
   at 0.5x..10x, see docs/data.md);
4. clip to [0, 1] and scale the peak to 1 (every MNIST digit peaks at 254 or 255, so faint
   pens still look like MNIST);
5. place the box in 28x28 so that its centre of mass lands on (14, 14), offsets rounded to
   whole pixels as MNIST did (MNIST's own centres of mass all lie in [13.5, 14.5]), clamped
   so that no ink is cut off.

An empty drawing returns zeros. ``image_from_bytes`` decodes a PNG/JPEG upload to such an
ink map.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

SIZE = 28
BOX = 20
CENTRE = 14.0
INK_THRESHOLD = 0.05
MAX_SIDE = 512
FORMATS = ("PNG", "JPEG")
# Pen widths in px of the 20 px box (see normalize_stroke)
THIN_PEN, TARGET_PEN = 1.6, 2.6
SPECK = 0.02  # blobs with less than this share of the ink are dust (see remove_specks)
MIN_SIDE = 40


def _as_ink(image: np.ndarray) -> np.ndarray:
    """Validate (H, W) uint8 0..255 / bool / float in [0, 1] -> float64 (H, W) in [0, 1]."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {a.shape}")
    h, w = a.shape
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ValueError(f"image must be 1x1 to {MAX_SIDE}x{MAX_SIDE} pixels, got {h}x{w}")
    if a.dtype == np.uint8:
        return a / 255.0
    if a.dtype == np.bool_:
        return a.astype(np.float64)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"image must be float in [0, 1] or uint8, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("image contains NaN or infinite values")
    # A tolerance for float round-off; anything larger is a caller passing the wrong scale.
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ValueError(f"image values must lie in [0, 1], got {a.min():g}..{a.max():g}")
    return np.clip(a, 0.0, 1.0)


def _resize(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float64 (h, w) -> float64 (out_h, out_w), anti-aliased LANCZOS on a 32-bit float image."""
    img = Image.fromarray(a.astype(np.float32))
    return np.asarray(img.resize((out_w, out_h), Image.Resampling.LANCZOS), dtype=np.float64)


def to_mnist(image: np.ndarray) -> np.ndarray:
    """(H, W) ink map (float [0, 1] or uint8, ink high) -> float64 (28, 28) in [0, 1], ink = 1."""
    a = _as_ink(image)
    out = np.zeros((SIZE, SIZE))
    crop = _ink_box(remove_specks(a))
    if crop is None:
        return out
    crop = _ink_box(normalize_stroke(crop))
    if crop is None:
        return out
    h, w = crop.shape
    scale = BOX / max(h, w)
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    box = np.clip(_resize(crop, out_h, out_w), 0.0, 1.0)
    peak = box.max()
    if peak <= 0:  # LANCZOS cannot erase ink, but keep the division safe
        return out
    box /= peak
    cy, cx = ndimage.center_of_mass(box)
    top = int(np.clip(np.floor(CENTRE - cy + 0.5), 0, SIZE - out_h))
    left = int(np.clip(np.floor(CENTRE - cx + 0.5), 0, SIZE - out_w))
    out[top : top + out_h, left : left + out_w] = box
    return out


def remove_specks(a: np.ndarray) -> np.ndarray:
    """Zero the connected ink blobs (cells > INK_THRESHOLD, 8-connected) that carry less than
    SPECK of all the ink: dust, JPEG noise or a stray dot far from the digit would otherwise
    stretch the bounding box and shrink the digit. A digit's own strokes are far heavier."""
    labels, n = ndimage.label(a > INK_THRESHOLD, structure=np.ones((3, 3)))
    if n < 2:
        return a
    mass = ndimage.sum_labels(a, labels, index=np.arange(1, n + 1))
    small = np.flatnonzero(mass < SPECK * mass.sum()) + 1
    if small.size == 0:
        return a
    return np.where(np.isin(labels, small), 0.0, a)


def _ink_box(a: np.ndarray) -> np.ndarray | None:
    """The bounding box of the cells > INK_THRESHOLD, or None when there is none."""
    rows = np.flatnonzero((a > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((a > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return None
    return a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def stroke_width(ink: np.ndarray) -> float:
    """Mean pen width in pixels of an ink map: 2 * area / perimeter of the cells > 0.5.

    A stroke of width w and length L has area w*L and a boundary of about 2L pixels.
    """
    m = ink > 0.5
    area = int(m.sum())
    if area == 0:
        return 0.0
    perimeter = int((m & ~ndimage.binary_erosion(m)).sum())
    return 2.0 * area / max(perimeter, 1)


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius * radius + radius


def normalize_stroke(crop: np.ndarray) -> np.ndarray:
    """A digit's bounding box -> the same, a fine pen's strokes thickened to MNIST's width.

    MNIST's strokes are 1.7 .. 4.1 px wide (5th..95th percentile, median 2.6) in its 20 px
    box. A drawing whose strokes would come out thinner than THIN_PEN (a fine pen on a big
    canvas: they shrink to faint hairlines) is grey-dilated by a disk to MNIST's median width,
    measured at the crop's own resolution (the box grows by the disk's radius). Boxes under
    MIN_SIDE px (MNIST itself, small uploads) are left alone: too coarse to measure. Thick
    pens are left alone too: eroding them was measured and lost accuracy (docs/data.md).
    """
    h, w = crop.shape
    if max(h, w) < MIN_SIDE:
        return crop
    px_per_box = max(h, w) / BOX
    width = stroke_width(crop / max(float(crop.max()), 1e-12)) / px_per_box
    if width == 0 or width >= THIN_PEN:
        return crop
    radius = int(round((TARGET_PEN - width) * px_per_box / 2))
    if radius < 1:
        return crop
    return ndimage.grey_dilation(np.pad(crop, radius), footprint=_disk(radius))


def _gray_and_alpha(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Decoded image -> (gray float64 (H, W) in [0, 1], alpha float64 (H, W) or None)."""
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit greyscale PNG; Pillow's convert("L") would clip it instead of scaling.
        return np.clip(np.asarray(img, dtype=np.float64) / 65535.0, 0.0, 1.0), None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if not has_alpha:
        return np.asarray(img.convert("L"), dtype=np.float64) / 255.0, None
    rgba = img.convert("RGBA")
    gray = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float64) / 255.0
    return gray, np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0


def image_from_bytes(data: bytes, max_pixels: int = MAX_SIDE * MAX_SIDE) -> np.ndarray:
    """PNG/JPEG bytes -> ink map float64 (H, W) in [0, 1] (ink = 1), H and W <= 512.

    The size is checked from the header before any pixel is decoded. Ink: a transparent
    background is no ink; strokes of one colour on transparency use alpha as ink; otherwise
    the picture is composited on white, made grey, and inverted when its border is light (a
    dark digit on paper). Finally ``remove_background`` subtracts the paper (a smooth surface, so
    uneven light in a photo does not count as ink) and the sensor noise.
    """
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise ValueError("the upload is empty or not bytes")
    too_large = f"at most {MAX_SIDE}x{MAX_SIDE} ({max_pixels} pixels) is accepted"
    try:
        # Image.open reads only the header; the size is refused before img.load() decodes.
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            w, h = img.size
            if w < 1 or h < 1 or w > MAX_SIDE or h > MAX_SIDE or w * h > max_pixels:
                raise ValueError(f"image is {w}x{h} pixels; {too_large}")
            img.load()
            img = ImageOps.exif_transpose(img)  # phone photos carry their rotation
            gray, alpha = _gray_and_alpha(img)
    # Pillow's own bomb guard fires first for giant headers (its warning only becomes an
    # exception under an "error" warnings filter; we don't set one: that is not thread-safe).
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(
            f"image is too large (its header declares more pixels than Pillow's "
            f"decompression-bomb limit); {too_large}"
        ) from exc
    except UnidentifiedImageError as exc:
        # Pillow's own message names the internal BytesIO object: no use to the client
        kinds = " or ".join(FORMATS)
        raise ValueError(f"not a readable {kinds} image: the bytes are not a {kinds} file") from exc
    except (OSError, SyntaxError, EOFError) as exc:  # truncated or corrupt pixel data
        raise ValueError(f"corrupt image data: {exc}") from exc
    if alpha is not None:
        visible = alpha > 0
        if not visible.any() or np.ptp(gray[visible]) < 0.02:
            ink = alpha
        else:
            ink = 1.0 - (gray * alpha + (1.0 - alpha))  # on white paper, then inverted
    else:
        ink = 1.0 - gray if _light_paper(gray) else gray
    return remove_background(ink)


def _light_paper(gray: np.ndarray) -> bool:
    """Is this dark ink on light paper? The picture's border is mostly paper: it is light
    when its median is nearer the picture's lightest than its darkest grey. (The mean of the
    whole picture misleads when a thick digit covers grey paper.)"""
    h, w = gray.shape
    k = max(1, min(h, w) // 16)
    border = np.concatenate(
        [gray[:k].ravel(), gray[-k:].ravel(), gray[:, :k].ravel(), gray[:, -k:].ravel()]
    )
    lo, hi = float(gray.min()), float(gray.max())
    if hi - lo < 1e-6:
        return float(gray.mean()) > 0.5
    return float(np.median(border)) > (lo + hi) / 2


def _design(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The quadratic surface's columns 1, x, y, x^2, xy, y^2 at coordinates in [-1, 1]."""
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1)


def remove_background(ink: np.ndarray, grid: int = 64) -> np.ndarray:
    """Ink map with paper, uneven light and sensor noise -> ink map with a zero background.

    A photo of paper is not one grey: light falls off across the sheet. Fit a smooth quadratic
    surface to the paper (least squares on at most grid x grid samples: first on the lightest
    third, then refitted 4 times on the pixels that are not well above the surface, i.e. not
    ink; the noise sigma is the residuals' MAD), then rescale ink = (ink - paper) / (1 - paper)
    and subtract 3 sigma of noise. Flat digital paper (a third of the cells share the lowest
    value) is just that value: a clean drawing on paper = 0 comes back unchanged.
    """
    h, w = ink.shape
    lowest = float(ink.min())
    if np.mean(ink == lowest) >= 1 / 3:  # flat digital paper (a drawing, a clean PNG)
        return np.clip((ink - lowest) / (1.0 - lowest), 0.0, 1.0) if lowest < 1 else ink * 0
    step = max(1, -(-max(h, w) // grid))
    sub = ink[::step, ::step]

    def coords(n, stride):
        pos = np.arange(0, n, stride, dtype=np.float64)
        return pos / max(n - 1, 1) * 2 - 1

    ys, xs = np.meshgrid(coords(h, step), coords(w, step), indexing="ij")
    a = _design(ys, xs).reshape(-1, 6)
    values = sub.ravel()
    # Start from the lightest third (surely paper even when ink covers half the picture).
    paper = values <= np.quantile(values, 1 / 3)
    coef = np.zeros(6)
    sigma = 0.0
    for _ in range(4):
        if paper.sum() < 6:
            break
        coef = np.linalg.lstsq(a[paper], values[paper], rcond=None)[0]
        resid = values - a @ coef
        r = resid[paper]
        sigma = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        paper = resid < max(2.5 * sigma, 0.02)
    ys, xs = np.meshgrid(coords(h, 1), coords(w, 1), indexing="ij")
    surface = np.clip(_design(ys, xs) @ coef, 0.0, 0.95)
    out = (ink - surface) / (1.0 - surface)
    floor = 3 * sigma / (1.0 - float(surface.mean()))
    if floor > 1e-3:
        out = (out - floor) / (1.0 - floor)
    return np.clip(out, 0.0, 1.0)
