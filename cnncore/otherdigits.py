"""Handwriting that is not MNIST, scored through the app's real upload path.

Source: the UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak, 1998)
as shipped inside scikit-learn (``sklearn.datasets.load_digits``: no download, the data file is
part of the wheel). 1,797 digits written on NIST forms by 13 people who are not MNIST's writers
(none of them in MNIST), scanned, size-normalized into 32x32 bitmaps and reduced to 8x8 blocks
whose value 0..16 counts the inked pixels of each 4x4 block. So they are very low-resolution
scans of other people's handwriting, a proxy for a learner's uploaded photo or scan.

Each digit becomes an image file and goes through exactly what ``POST /api/predict/upload``
does: ``preprocess.image_from_bytes`` then ``preprocess.to_mnist``. Two variants, both dark
ink on light paper:

* ``scan``: the 8x8 grey levels as an 8x8 PNG (paper white, ink black, 16 grey steps);
* ``photo``: the same digit enlarged 8x (64x64, bilinear), on grey paper (170..230) with a
  lighting gradient across the sheet, grey ink, sensor noise (sigma 6 grey levels) and JPEG
  quality 75. Drawn from ``np.random.default_rng(seed)`` per set, so the set is fixed.

Nothing here is used to train or to choose a recipe for MNIST's sake; it is reported beside
dev and test (see docs/data.md), and it did guide the preprocessing's robustness work, which
is said there too.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from . import preprocess

VARIANTS = ("scan", "photo")
SEED = 12


def load() -> tuple[np.ndarray, np.ndarray]:
    """-> (blocks uint8 (1797, 8, 8) with values 0..16, ink = high; labels uint8 (1797,)).

    Raises ImportError with an install hint when scikit-learn is absent.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the non-MNIST handwriting set needs scikit-learn: pip install scikit-learn"
        ) from exc
    d = load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.uint8)


def _png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    return buf.getvalue()


def scan_file(blocks: np.ndarray) -> bytes:
    """(8, 8) values 0..16 -> an 8x8 greyscale PNG, black ink on white paper."""
    gray = np.rint(255 * (1 - blocks.astype(np.float64) / 16)).astype(np.uint8)
    return _png(gray)


def photo_file(blocks: np.ndarray, rng: np.random.Generator, zoom: int = 8) -> bytes:
    """(8, 8) values 0..16 -> a 64x64 JPEG: grey paper, uneven light, grey ink, noise."""
    ink = np.asarray(
        Image.fromarray(blocks.astype(np.float32) / 16).resize(
            (8 * zoom, 8 * zoom), Image.Resampling.BILINEAR
        ),
        dtype=np.float64,
    )
    side = 8 * zoom
    paper = rng.uniform(170, 230)
    ink_level = rng.uniform(20, 80)
    gy, gx = np.mgrid[0:side, 0:side] / (side - 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.05, 0.25) * (np.cos(angle) * gx + np.sin(angle) * gy)
    gray = (paper + (ink_level - paper) * np.clip(ink, 0, 1)) * light
    gray = gray + rng.normal(0, 6, gray.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8)).save(
        buf, format="JPEG", quality=75
    )
    return buf.getvalue()


def files(blocks: np.ndarray, variant: str, seed: int = SEED) -> list[bytes]:
    """The image files of a variant, one per digit, in order."""
    if variant == "scan":
        return [scan_file(b) for b in blocks]
    if variant == "photo":
        rng = np.random.default_rng(seed)
        return [photo_file(b, rng) for b in blocks]
    raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")


def inputs(blocks: np.ndarray, variant: str) -> np.ndarray:
    """-> float64 (N, 1, 28, 28): each file through image_from_bytes + to_mnist (the upload
    path of the app)."""
    return np.stack(
        [preprocess.to_mnist(preprocess.image_from_bytes(f)) for f in files(blocks, variant)]
    )[:, None]


def main() -> None:
    """Print the bundled model's accuracy on both variants (python -m cnncore.otherdigits)."""
    import argparse

    from . import models
    from .train import accuracy

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", default="digits", help="bundled name or path without .json")
    args = parser.parse_args()
    from pathlib import Path

    if args.model in models.available():
        net, _ = models.load(args.model)
    else:
        net, _ = models.load_file(Path(args.model))
    blocks, labels = load()
    for variant in VARIANTS:
        acc = accuracy(net.astype(np.float32), inputs(blocks, variant).astype(np.float32), labels)
        print(f"{variant}: {acc:.2%} of {len(labels)}")


if __name__ == "__main__":
    main()
