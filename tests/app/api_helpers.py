"""Small helpers shared by the app tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SCENARIO_1 = "conv-dense"

# A 3x3 input, a 2x2 conv and a dense output: small enough to check by hand.
SMALL = {
    "input_shape": [1, 3, 3],
    "layers": [
        {"type": "conv2d", "out_channels": 1, "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 1},
    ],
    "loss": "mse",
}
SMALL_PARAMS = [{"w": [[[[1, -1], [2, 0]]]], "b": [1]}, {}, {"w": [[1, -1, 1, 2]], "b": [-1]}]
SMALL_INPUT = [[1, 2, 0], [3, 1, 2], [0, 1, 3]]


def assert_error(response, status: int, *loc_parts: Any) -> dict:
    """The response is `status` with the documented error body, and its first `loc` starts
    with `loc_parts` (so the field is named)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    assert isinstance(body["detail"], list) and body["detail"], body
    item = body["detail"][0]
    assert set(item) == {"loc", "msg", "type"}, item
    assert isinstance(item["msg"], str) and item["msg"]
    assert item["loc"][: len(loc_parts)] == list(loc_parts), item
    return item


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


TINY_SPEC = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 5, "stride": 3, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}
TINY_META = {"description": "a tiny untrained test model", "dataset": "none", "test_accuracy": 0.1}


def make_models_dir(directory: Path) -> Path:
    from cnncore import Network, models

    directory.mkdir(parents=True, exist_ok=True)
    net = Network.from_spec(TINY_SPEC, seed=1)
    models.save(net, directory / "digits", TINY_META)
    return directory
