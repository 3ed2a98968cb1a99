"""Network specs: plain JSON in, a validated and shape-annotated spec out.

A spec is ``{"input_shape": [C, H, W], "layers": [...], "loss": "mse" | "cross_entropy"}``.
`normalize_spec` checks every rule and returns a new dict in which each layer has its sizes as
[h, w] pairs, its `input_shape`, `output_shape`, `param_count` and `multiply_adds`. Errors are
`SpecError`s whose message names the layer and the rule in words a learner can act on.

What each layer type accepts and how its output shape follows is defined once, in
`cnncore.registry`; blocks (`residual`, `concat`) nest their own layer lists.
"""

from __future__ import annotations

from typing import Any

from .losses import LOSSES
from .registry import LAYER_TYPES, normalize_chain
from .specrules import SpecError, is_int

__all__ = ["LAYER_TYPES", "SpecError", "normalize_spec"]


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
        and all(is_int(v) and v >= 1 for v in shape)
    ):
        raise SpecError(
            f"input_shape must be [channels, height, width] of positive whole "
            f"numbers, got {shape!r}",
            ("input_shape",),
        )
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError("layers must be a non-empty list", ("layers",))
    out_layers, shape = normalize_chain(layers, list(shape), ("layers",), "layer {i}", True)
    last_act = out_layers[-1].get("activation")  # blocks never end in softmax
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
