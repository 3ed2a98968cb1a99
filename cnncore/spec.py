"""Network specs: plain JSON in, a validated and shape-annotated spec out.

A spec is ``{"input_shape": [C, H, W], "layers": [...], "loss": "mse" | "cross_entropy"}``.
`normalize_spec` checks every rule and returns a new dict in which each layer has its sizes as
[h, w] pairs, its `input_shape`, `output_shape`, `param_count` and `multiply_adds`. Errors are
`SpecError`s whose message names the layer and the rule in words a learner can act on.
"""

from __future__ import annotations

import math
from typing import Any

from .activations import ACTIVATIONS
from .functional import out_size
from .losses import LOSSES

LAYER_TYPES = ("conv2d", "maxpool2d", "avgpool2d", "flatten", "dense")

_ALLOWED_KEYS = {
    "conv2d": {"type", "out_channels", "kernel_size", "stride", "padding", "activation"},
    "maxpool2d": {"type", "kernel_size", "stride", "padding"},
    "avgpool2d": {"type", "kernel_size", "stride", "padding"},
    "flatten": {"type"},
    "dense": {"type", "units", "activation"},
}
# Keys that `normalize_spec` adds; accepted on input so a normalized spec normalizes again.
_DERIVED_KEYS = {
    "input_shape",
    "output_shape",
    "param_count",
    "multiply_adds",
    "in_channels",
    "in_features",
}


class SpecError(ValueError):
    """An invalid network spec. `location` is a path such as ("layers", 2, "kernel_size")."""

    def __init__(self, message: str, location: tuple = ()):
        super().__init__(message)
        self.location = location


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Layer:
    """Error helper bound to one layer, so every message starts with 'layer i (type)'."""

    def __init__(self, index: int, raw: dict):
        self.index, self.raw, self.type = index, raw, raw.get("type")

    def error(self, msg: str, key: str | None = None) -> SpecError:
        loc = ("layers", self.index) + ((key,) if key else ())
        return SpecError(f"layer {self.index} ({self.type}): {msg}", loc)

    def positive_int(self, key: str, default: Any = None) -> int:
        v = self.raw.get(key, default)
        if v is None:
            raise self.error(f"'{key}' is required (a positive whole number)", key)
        if not _is_int(v) or v < 1:
            raise self.error(f"'{key}' must be a positive whole number, got {v!r}", key)
        return v

    def pair(self, key: str, default: Any = None, minimum: int = 1) -> list[int]:
        v = self.raw.get(key, default)
        if v is None:
            raise self.error(f"'{key}' is required: an int or [h, w]", key)
        if _is_int(v):
            v = [v, v]
        if not (isinstance(v, list | tuple) and len(v) == 2 and all(_is_int(x) for x in v)):
            raise self.error(f"'{key}' must be an int or a list [h, w] of ints, got {v!r}", key)
        if min(v) < minimum:
            raise self.error(f"'{key}' must be at least {minimum}, got {list(v)}", key)
        return [int(v[0]), int(v[1])]


def _padding(layer: _Layer, kernel: list[int], stride: list[int], pool: bool) -> list[int]:
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


def _spatial(layer: _Layer, shape: list[int], out: dict, pool: bool) -> tuple[int, int]:
    if len(shape) != 3:
        raise layer.error(
            f"needs a [channels, height, width] input but receives shape {shape}; "
            "put it before the flatten layer"
        )
    kernel = layer.pair("kernel_size")
    stride = layer.pair("stride", kernel if pool else 1)
    pad = _padding(layer, kernel, stride, pool)
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


def _activation(layer: _Layer, is_last: bool) -> str:
    act = layer.raw.get("activation", "identity")
    if act not in ACTIVATIONS:
        raise layer.error(
            f"unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}", "activation"
        )
    if act == "softmax" and not is_last:
        raise layer.error("softmax is only allowed on the last layer", "activation")
    return act


def _normalize_layer(layer: _Layer, shape: list[int], is_last: bool) -> dict:
    t = layer.type
    extra = set(layer.raw) - _ALLOWED_KEYS[t] - _DERIVED_KEYS
    if extra:
        raise layer.error(
            f"unknown key(s) {sorted(extra)}; a {t} layer takes {sorted(_ALLOWED_KEYS[t])}",
            sorted(extra)[0],
        )
    out: dict[str, Any] = {"type": t}
    params = madds = 0
    if t == "conv2d":
        c_out = layer.positive_int("out_channels")
        out["in_channels"] = shape[0] if len(shape) == 3 else None
        out["out_channels"] = c_out
        h_out, w_out = _spatial(layer, shape, out, pool=False)
        out["activation"] = _activation(layer, is_last)
        kh, kw = out["kernel_size"]
        params = c_out * (shape[0] * kh * kw + 1)
        madds = c_out * h_out * w_out * shape[0] * kh * kw
        out_shape = [c_out, h_out, w_out]
    elif t in ("maxpool2d", "avgpool2d"):
        h_out, w_out = _spatial(layer, shape, out, pool=True)
        out_shape = [shape[0], h_out, w_out]
        madds = math.prod(out_shape) * out["kernel_size"][0] * out["kernel_size"][1]
    elif t == "flatten":
        out_shape = [math.prod(shape)]
    else:  # dense
        if len(shape) != 1:
            raise layer.error(
                f"needs a flat vector but receives shape {shape}; add a flatten layer before it"
            )
        units = layer.positive_int("units")
        out.update(in_features=shape[0], units=units, activation=_activation(layer, is_last))
        params = units * (shape[0] + 1)
        madds = units * shape[0]
        out_shape = [units]
    if min(out_shape) < 1:
        raise layer.error(f"the output shape {out_shape} is empty")
    out.update(
        input_shape=list(shape), output_shape=out_shape, param_count=params, multiply_adds=madds
    )
    for key in sorted(_DERIVED_KEYS & set(layer.raw)):  # accepted so a spec re-normalizes
        if key not in out:
            raise layer.error(f"a {t} layer has no '{key}'", key)
        if layer.raw[key] != out[key]:
            raise layer.error(
                f"'{key}' is {layer.raw[key]!r} but the network gives {out[key]!r}; leave it "
                "out and it is computed",
                key,
            )
    return out


def normalize_spec(spec: Any) -> dict:
    """Validate a spec and return it with every layer's shapes filled in.

    Raises SpecError naming the layer and the broken rule.
    """
    if not isinstance(spec, dict):
        raise SpecError("the network spec must be a JSON object", ())
    extra = set(spec) - {"input_shape", "layers", "loss", "output_shape", "param_count"}
    if extra:
        raise SpecError(
            f"unknown key(s) {sorted(extra)} in the network spec; it takes "
            "input_shape, layers and loss",
            (sorted(extra)[0],),
        )
    shape = spec.get("input_shape")
    if not (
        isinstance(shape, list | tuple)
        and len(shape) == 3
        and all(_is_int(v) and v >= 1 for v in shape)
    ):
        raise SpecError(
            f"input_shape must be [channels, height, width] of positive whole "
            f"numbers, got {shape!r}",
            ("input_shape",),
        )
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError("layers must be a non-empty list", ("layers",))
    shape = list(shape)
    out_layers = []
    for i, raw in enumerate(layers):
        if not isinstance(raw, dict):
            raise SpecError(f"layer {i}: each layer must be an object with a 'type'", ("layers", i))
        if raw.get("type") not in LAYER_TYPES:
            raise SpecError(
                f"layer {i}: unknown type {raw.get('type')!r}; use one of {', '.join(LAYER_TYPES)}",
                ("layers", i, "type"),
            )
        norm = _normalize_layer(_Layer(i, raw), shape, is_last=i == len(layers) - 1)
        out_layers.append(norm)
        shape = norm["output_shape"]
    last_act = out_layers[-1].get("activation")
    loss = spec.get("loss", "cross_entropy" if last_act == "softmax" else "mse")
    if loss not in LOSSES:
        raise SpecError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}", ("loss",))
    if loss == "cross_entropy" and last_act != "softmax":
        last = out_layers[-1]
        has = repr(last_act) if last_act else "no activation"
        raise SpecError(
            "cross_entropy needs a last layer with activation 'softmax' (its outputs must be "
            f"probabilities), but layer {len(out_layers) - 1} ({last['type']}) has {has}",
            ("loss",),
        )
    return {
        "input_shape": list(spec["input_shape"]),
        "layers": out_layers,
        "loss": loss,
        "output_shape": shape,
        "param_count": sum(layer["param_count"] for layer in out_layers),
    }
