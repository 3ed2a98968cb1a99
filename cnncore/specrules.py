"""The small rules every layer type's spec check shares: errors that name the layer, whole
numbers, [h, w] pairs, padding, the sliding-window output size and activations.

`cnncore.registry` builds each layer type's check from these; `cnncore.spec` runs them over a
network. Nothing here knows a particular layer type.
"""

from __future__ import annotations

from typing import Any

from .activations import ACTIVATIONS
from .functional import out_size


class SpecError(ValueError):
    """An invalid network spec. `location` is a path such as ("layers", 2, "kernel_size")."""

    def __init__(self, message: str, location: tuple = ()):
        super().__init__(message)
        self.location = location


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class LayerCtx:
    """One layer being checked: its raw spec, its place (`path`) and a label for messages.

    A top-level layer is "layer 2" at ("layers", 2); a block's inner layer is
    "layer 2 › layers[0]" at ("layers", 2, "layers", 0), a branch's
    "layer 3 › branches[1][0]" at ("layers", 3, "branches", 1, 0).
    """

    def __init__(self, path: tuple, label: str, raw: dict):
        self.path, self.label, self.raw, self.type = path, label, raw, raw.get("type")

    def error(self, msg: str, key: str | tuple | None = None) -> SpecError:
        tail = () if key is None else (key if isinstance(key, tuple) else (key,))
        return SpecError(f"{self.label} ({self.type}): {msg}", self.path + tail)

    def positive_int(self, key: str, default: Any = None) -> int:
        v = self.raw.get(key, default)
        if v is None:
            raise self.error(f"'{key}' is required (a positive whole number)", key)
        if not is_int(v) or v < 1:
            raise self.error(f"'{key}' must be a positive whole number, got {v!r}", key)
        return v

    def pair(self, key: str, default: Any = None, minimum: int = 1) -> list[int]:
        v = self.raw.get(key, default)
        if v is None:
            raise self.error(f"'{key}' is required: an int or [h, w]", key)
        if is_int(v):
            v = [v, v]
        if not (isinstance(v, list | tuple) and len(v) == 2 and all(is_int(x) for x in v)):
            raise self.error(f"'{key}' must be an int or a list [h, w] of ints, got {v!r}", key)
        if min(v) < minimum:
            raise self.error(f"'{key}' must be at least {minimum}, got {list(v)}", key)
        return [int(v[0]), int(v[1])]


def padding(layer: LayerCtx, kernel: list[int], stride: list[int], pool: bool) -> list[int]:
    raw = layer.raw.get("padding", 0)
    if raw == "valid":
        return [0, 0]
    if raw == "same":
        if pool:
            raise layer.error("padding 'same' is only for conv2d; give a number", "padding")
        if stride != [1, 1] or kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
            raise layer.error(
                f"padding 'same' needs stride 1 and an odd kernel_size (got stride {stride}, "
                f"kernel_size {kernel}): with those the output keeps the input's size when "
                "padding = (kernel_size - 1) / 2; give a number instead",
                "padding",
            )
        return [(kernel[0] - 1) // 2, (kernel[1] - 1) // 2]
    if isinstance(raw, str):
        raise layer.error(
            f"'padding' must be a number, [h, w], 'valid' or 'same', got {raw!r}", "padding"
        )
    pad = layer.pair("padding", 0, minimum=0)
    if pool and (pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2):
        raise layer.error(
            f"pool padding {pad} must be at most half the kernel_size {kernel}, as in PyTorch "
            "(a window made only of padding has no value to take)",
            "padding",
        )
    return pad


def spatial(layer: LayerCtx, shape: list[int], out: dict, pool: bool) -> tuple[int, int]:
    """Check a sliding window's kernel_size, stride and padding; -> (H_out, W_out)."""
    if len(shape) != 3:
        raise layer.error(
            f"needs a [channels, height, width] input but receives shape {shape}; "
            "put it before the flatten layer"
        )
    kernel = layer.pair("kernel_size")
    stride = layer.pair("stride", kernel if pool else 1)
    pad = padding(layer, kernel, stride, pool)
    _, h, w = shape
    for axis, size, k, p in (("height", h, kernel[0], pad[0]), ("width", w, kernel[1], pad[1])):
        if size + 2 * p < k:
            raise layer.error(
                f"kernel_size {k} is larger than the padded input {axis} {size + 2 * p} "
                f"(= {size} + 2·{p}); use a smaller kernel or more padding",
                "kernel_size",
            )
    out.update(kernel_size=kernel, stride=stride, padding=pad)
    return out_size(h, kernel[0], stride[0], pad[0]), out_size(w, kernel[1], stride[1], pad[1])


def activation(layer: LayerCtx, is_last: bool, default: str = "identity") -> str:
    act = layer.raw.get("activation", default)
    if act not in ACTIVATIONS:
        raise layer.error(
            f"unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}", "activation"
        )
    if act == "softmax" and not is_last:
        raise layer.error("softmax is only allowed on the last layer", "activation")
    return act
