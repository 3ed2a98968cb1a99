"""A drawing or an uploaded picture -> a (28, 28) MNIST-like input, following MNIST's recipe.

``to_mnist``: (H, W) ink map, 1x1 .. 512x512, ink = 1 -> float64 (28, 28) in [0, 1]:

1. crop to the bounding box of pixels > ``INK_THRESHOLD`` (0.05: above canvas anti-aliasing
   dust and JPEG noise, yet every MNIST digit's box is still exactly 20 px at that level);
2. scale so the longer side is 20 px, aspect ratio kept, with Pillow's LANCZOS filter on a
   float image (its support widens with the downscale factor, so it anti-aliases thin and
   thick strokes alike; it beat BOX, bilinear and Gaussian+zoom on real digits re-rendered
   at 0.5x..10x, see docs/data.md);
3. clip to [0, 1] and scale the peak to 1 (every MNIST digit peaks at 254 or 255, so faint
   pens still look like MNIST);
4. place the box in 28x28 so that its centre of mass lands on (14, 14), offsets rounded to
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
    rows = np.flatnonzero((a > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((a > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return out
    crop = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
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
    the picture is composited on white, made grey, and inverted when mostly light (a dark
    digit on paper). Finally the background level (the median, as most pixels are
    background) is subtracted, so grey paper in a photo does not count as ink.
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
        ink = 1.0 - gray if gray.mean() > 0.5 else gray
    background = float(np.median(ink))
    if 0 < background < 1:
        ink = (ink - background) / (1.0 - background)
    return np.clip(ink, 0.0, 1.0)
