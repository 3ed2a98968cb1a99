"""Data augmentation for digit batches (seed 002's list), vectorized over the batch.

    cfg = AugmentConfig(shift=2, rotation=10, noise=0.05)
    xb = apply(x, rng, cfg)          # x (N, C, H, W) float in [0, 1] -> same shape and dtype

Each transform is switchable (0 / False turns it off) and draws its randomness per image from
`rng`, so a run is reproducible for a seed:

* shift:      random crop/shift by up to `shift` whole pixels in x and y (zero fill, as padding
              by `shift` and cropping back to H x W at a random offset)
* rotation:   a random rotation by up to +-`rotation` degrees about the centre (bilinear)
* flip:       a left-right mirror of a random half of the batch. For digits this is a bad idea:
              a mirrored 2 is not a 2, a mirrored 7 is no digit at all; it is here to show that.
* noise:      additive Gaussian noise of standard deviation `noise`, clipped to [0, 1]
* contrast /  the "colour space" variant for grey digits: x <- c*x + b with c drawn from
  brightness  [1 - contrast, 1 + contrast] and b from [-brightness, brightness], clipped to [0, 1]

No Python loop over images: shifts gather with one fancy index, rotations resample the whole
batch with one `scipy.ndimage.map_coordinates` call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    shift: int = 0
    rotation: float = 0.0
    flip: bool = False
    noise: float = 0.0
    contrast: float = 0.0
    brightness: float = 0.0

    @property
    def active(self) -> bool:
        return bool(
            self.shift
            or self.rotation
            or self.flip
            or self.noise
            or self.contrast
            or self.brightness
        )

    def to_dict(self) -> dict:
        return asdict(self)


def shift(x: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Move each image by a random whole-pixel offset in [-max_shift, max_shift]² (zero fill)."""
    n, c, h, w = x.shape
    if max_shift <= 0:
        return x.copy()
    d = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    rows = np.arange(h)[None, :] - d[:, :1]  # (N, H): source row of each output row
    cols = np.arange(w)[None, :] - d[:, 1:]  # (N, W)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    rr = np.clip(rows, 0, h - 1)[:, :, None]
    cc = np.clip(cols, 0, w - 1)[:, None, :]
    out = x[np.arange(n)[:, None, None], :, rr, cc]  # (N, H, W, C)
    out = np.moveaxis(out, -1, 1) * valid[:, None, :, :]
    return np.ascontiguousarray(out, dtype=x.dtype)


def rotate(x: np.ndarray, rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """Rotate each image by a random angle in [-max_degrees, max_degrees] about its centre."""
    n, c, h, w = x.shape
    if max_degrees <= 0:
        return x.copy()
    theta = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n))
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = yy[None] - cy, xx[None] - cx
    # output pixel -> input pixel: the inverse rotation
    src_y = cos * dy - sin * dx + cy  # (N, H, W)
    src_x = sin * dy + cos * dx + cx
    flat = x.reshape(n * c, h, w)
    img = np.broadcast_to(np.arange(n * c, dtype=np.float64)[:, None, None], (n * c, h, w))
    coords = np.stack(
        [img, np.repeat(src_y, c, axis=0), np.repeat(src_x, c, axis=0)]
    )  # (3, N*C, H, W)
    out = ndimage.map_coordinates(flat, coords, order=1, mode="constant", cval=0.0)
    return out.reshape(x.shape).astype(x.dtype, copy=False)


def flip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror a random subset (each image with probability p) left to right."""
    chosen = rng.random(x.shape[0]) < p
    out = x.copy()
    out[chosen] = out[chosen][..., ::-1]
    return out


def noise(x: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Add Gaussian noise N(0, std²) to every pixel, clipped to [0, 1]."""
    if std <= 0:
        return x.copy()
    out = x + rng.normal(0.0, std, x.shape).astype(x.dtype)
    return np.clip(out, 0, 1, out=out)


def contrast_brightness(
    x: np.ndarray, rng: np.random.Generator, contrast: float, brightness: float
) -> np.ndarray:
    """x <- c*x + b per image, c ~ U[1 - contrast, 1 + contrast], b ~ U[-brightness, brightness]."""
    n = x.shape[0]
    c = rng.uniform(1 - contrast, 1 + contrast, n).astype(x.dtype)
    b = rng.uniform(-brightness, brightness, n).astype(x.dtype)
    out = x * c[:, None, None, None] + b[:, None, None, None]
    return np.clip(out, 0, 1, out=out)


def apply(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """All switched-on transforms in a fixed order: shift, rotation, flip, contrast/brightness,
    noise. Returns a new array (x is never changed), same shape and dtype."""
    out = x
    if cfg.shift:
        out = shift(out, rng, int(cfg.shift))
    if cfg.rotation:
        out = rotate(out, rng, float(cfg.rotation))
    if cfg.flip:
        out = flip(out, rng)
    if cfg.contrast or cfg.brightness:
        out = contrast_brightness(out, rng, float(cfg.contrast), float(cfg.brightness))
    if cfg.noise:
        out = noise(out, rng, float(cfg.noise))
    return out.copy() if out is x else out
