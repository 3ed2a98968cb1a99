"""One registration per layer type: the single place a layer type is defined.

Each `LayerType` holds what the rest of the code derives from it:

* `fields`: the spec fields a user writes, with their defaults (`REQUIRED` when there is none),
  and `schema`: their JSON schema (the API's OpenAPI enum and properties are built from these);
* `normalize`: the validation and output-shape rule (H_out = ⌊(H + 2p − k)/s⌋ + 1 for the
  sliding windows), returning the layer's normalized spec with `output_shape`, `param_count`
  and `multiply_adds`;
* `layer_class`: parameter shapes and initialisation, forward/backward (over the CS231n-style
  pairs in `cnncore.functional`) and the layer's trace entry (`Layer.trace_entry`);
* `extra_values`: how many numbers the type adds to a trace beyond the standard fields (the
  API's response-size cap);
* `example`: a valid spec of the type, which `tests/cnncore/test_registry.py` runs through
  every consumer (spec, layers, network trace, naive oracle, PyTorch oracle, JSON schema,
  saved models, the API's caps) so that no consumer can miss a type.

`cnncore.spec`, `cnncore.layers`/`cnncore.blocks` (`build_layer`), `cnncore.naive` (its
`OPS` table is keyed by these names and checked against them), `cnncore.models`,
`app/services/custom.py` and `app/schemas.py` read the registry; none keeps its own list.
Blocks (`residual`, `concat`) are layer types too: their fields hold nested layer lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import specrules as R
from .activations import ACTIVATIONS
from .losses import LOSSES

REQUIRED = object()
MAX_DEPTH = 8  # blocks inside blocks: a spec is data, never a way to exhaust the stack

# Keys `normalize_layer` adds to every layer; accepted on input so a normalized spec normalizes
# again (and checked against what the network gives).
COMMON_DERIVED = ("input_shape", "output_shape", "param_count", "multiply_adds")

_PAIR_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
    ]
}
_PADDING_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 2,
            "maxItems": 2,
        },
        {"type": "string", "enum": ["valid", "same"]},
    ]
}
_ACTIVATION_SCHEMA = {"type": "string", "enum": list(ACTIVATIONS)}
_LAYER_LIST_SCHEMA = {
    "type": "array",
    "items": {"type": "object", "description": "a layer (any type, blocks too)"},
    "minItems": 1,
}


@dataclass
class LayerType:
    name: str
    kind: str  # "layer" or "block"
    summary: str
    fields: dict[str, Any]
    schema: dict[str, Any]
    normalize: Callable[[R.LayerCtx, list[int], bool], dict]
    example: dict
    derived: tuple[str, ...] = ()
    extra_values: Callable[[dict], int] = field(default=lambda spec: 0)

    @property
    def allowed(self) -> set[str]:
        return {"type", *self.fields}

    @property
    def layer_class(self) -> type:
        from .blocks import BLOCK_CLASSES
        from .layers import LAYER_CLASSES

        return {**LAYER_CLASSES, **BLOCK_CLASSES}[self.name]


# --------------------------------------------------------------------------- leaf layers


def _conv2d(layer: R.LayerCtx, shape: list[int], is_last: bool) -> dict:
    out: dict[str, Any] = {}
    c_out = layer.positive_int("out_channels")
    out["in_channels"] = shape[0] if len(shape) == 3 else None
    out["out_channels"] = c_out
    h_out, w_out = R.spatial(layer, shape, out, pool=False)
    out["activation"] = R.activation(layer, is_last)
    kh, kw = out["kernel_size"]
    out["param_count"] = c_out * (shape[0] * kh * kw + 1)
    out["multiply_adds"] = c_out * h_out * w_out * shape[0] * kh * kw
    out["output_shape"] = [c_out, h_out, w_out]
    return out


def _pool(layer: R.LayerCtx, shape: list[int], is_last: bool) -> dict:
    out: dict[str, Any] = {}
    h_out, w_out = R.spatial(layer, shape, out, pool=True)
    out["output_shape"] = [shape[0], h_out, w_out]
    out["param_count"] = 0
    out["multiply_adds"] = math.prod(out["output_shape"]) * math.prod(out["kernel_size"])
    return out


def _flatten(layer: R.LayerCtx, shape: list[int], is_last: bool) -> dict:
    return {"output_shape": [math.prod(shape)], "param_count": 0, "multiply_adds": 0}


def _dense(layer: R.LayerCtx, shape: list[int], is_last: bool) -> dict:
    if len(shape) != 1:
        raise layer.error(
            f"needs a flat vector but receives shape {shape}; add a flatten layer before it"
        )
    units = layer.positive_int("units")
    return {
        "in_features": shape[0],
        "units": units,
        "activation": R.activation(layer, is_last),
        "param_count": units * (shape[0] + 1),
        "multiply_adds": units * shape[0],
        "output_shape": [units],
    }


_POOL_FIELDS = {"kernel_size": REQUIRED, "stride": "kernel_size", "padding": 0}
_POOL_SCHEMA = {"kernel_size": _PAIR_SCHEMA, "stride": _PAIR_SCHEMA, "padding": _PADDING_SCHEMA}


def _block_normalizer(name: str) -> Callable:
    def run(layer, shape, is_last):
        from . import blocks

        return getattr(blocks, f"normalize_{name}")(layer, shape, is_last)

    return run


def _residual_values(spec: dict) -> int:
    # the skip's value and gradient, the F path's output and its gradient at the input
    return 2 * math.prod(spec["output_shape"]) + 2 * math.prod(spec["input_shape"])


def _concat_values(spec: dict) -> int:
    # the slices of dC/da per branch, and each branch's dC/da_prev
    return math.prod(spec["output_shape"]) + len(spec["branches"]) * math.prod(spec["input_shape"])


TYPES: dict[str, LayerType] = {
    t.name: t
    for t in (
        LayerType(
            "conv2d",
            "layer",
            "conv2d: out_channels, kernel_size, stride (1), padding (0), activation (identity)",
            {
                "out_channels": REQUIRED,
                "kernel_size": REQUIRED,
                "stride": 1,
                "padding": 0,
                "activation": "identity",
            },
            {
                "out_channels": {"type": "integer", "minimum": 1},
                "kernel_size": _PAIR_SCHEMA,
                "stride": _PAIR_SCHEMA,
                "padding": _PADDING_SCHEMA,
                "activation": _ACTIVATION_SCHEMA,
            },
            _conv2d,
            {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
            derived=("in_channels",),
        ),
        LayerType(
            "maxpool2d",
            "layer",
            "maxpool2d: kernel_size, stride (= kernel_size), padding (0)",
            dict(_POOL_FIELDS),
            dict(_POOL_SCHEMA),
            _pool,
            {"type": "maxpool2d", "kernel_size": 2},
            extra_values=lambda spec: 2 * math.prod(spec["output_shape"]),  # argmax (row, col)
        ),
        LayerType(
            "avgpool2d",
            "layer",
            "avgpool2d: kernel_size, stride (= kernel_size), padding (0)",
            dict(_POOL_FIELDS),
            dict(_POOL_SCHEMA),
            _pool,
            {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
        ),
        LayerType("flatten", "layer", "flatten", {}, {}, _flatten, {"type": "flatten"}),
        LayerType(
            "dense",
            "layer",
            "dense: units, activation (identity)",
            {"units": REQUIRED, "activation": "identity"},
            {"units": {"type": "integer", "minimum": 1}, "activation": _ACTIVATION_SCHEMA},
            _dense,
            {"type": "dense", "units": 3},
            derived=("in_features",),
        ),
        LayerType(
            "residual",
            "block",
            "residual: layers (the chain F, its last layer without activation), activation "
            "(relu), projection (null, or a conv2d such as {type: conv2d, kernel_size: 1, "
            "stride: 2} mapping the input to F's shape): a = g(F(x) + x)",
            {"layers": REQUIRED, "activation": "relu", "projection": None},
            {
                "layers": _LAYER_LIST_SCHEMA,
                "activation": _ACTIVATION_SCHEMA,
                "projection": {
                    "anyOf": [{"type": "null"}, {"type": "object"}],
                    "description": "a conv2d layer (kernel_size 1 and a stride, usually); "
                    "out_channels defaults to F's",
                },
            },
            _block_normalizer("residual"),
            {
                "type": "residual",
                "layers": [
                    {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
                ],
            },
            extra_values=_residual_values,
        ),
        LayerType(
            "concat",
            "block",
            "concat: branches (a list of layer chains over the same input; their outputs are "
            "concatenated along the channels, so their spatial sizes must agree)",
            {"branches": REQUIRED},
            {
                "branches": {
                    "type": "array",
                    "items": _LAYER_LIST_SCHEMA,
                    "minItems": 1,
                }
            },
            _block_normalizer("concat"),
            {
                "type": "concat",
                "branches": [
                    [{"type": "conv2d", "out_channels": 1, "kernel_size": 1}],
                    [{"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1}],
                ],
            },
            derived=("channels",),
            extra_values=_concat_values,
        ),
    )
}
LAYER_TYPES = tuple(TYPES)


# --------------------------------------------------------------------------- driver


def normalize_layer(layer: R.LayerCtx, shape: list[int], is_last: bool) -> dict:
    """One layer of any registered type -> its normalized spec (or a SpecError naming it)."""
    lt = TYPES[layer.type]
    extra = set(layer.raw) - lt.allowed - set(COMMON_DERIVED) - set(lt.derived)
    if extra:
        raise layer.error(
            f"unknown key(s) {sorted(extra)}; a {lt.name} layer takes {sorted(lt.allowed)}",
            sorted(extra)[0],
        )
    out: dict[str, Any] = {"type": lt.name}
    out.update(lt.normalize(layer, list(shape), is_last))
    out["input_shape"] = list(shape)
    if min(out["output_shape"]) < 1:
        raise layer.error(f"the output shape {out['output_shape']} is empty")
    out = {k: out[k] for k in sorted(out, key=_key_order)}
    for key in sorted((set(COMMON_DERIVED) | set(lt.derived)) & set(layer.raw)):
        if key not in out:
            raise layer.error(f"a {lt.name} layer has no '{key}'", key)
        if layer.raw[key] != out[key]:
            raise layer.error(
                f"'{key}' is {layer.raw[key]!r} but the network gives {out[key]!r}; leave it "
                "out and it is computed",
                key,
            )
    return out


_ORDER = ("type", "in_channels", "out_channels", "kernel_size", "stride", "padding")


def _key_order(k: str) -> tuple:
    tail = COMMON_DERIVED.index(k) if k in COMMON_DERIVED else -1
    return (tail, _ORDER.index(k) if k in _ORDER else len(_ORDER))


def normalize_chain(
    raws: Any, shape: list[int], path: tuple, label: str, last_is_output: bool
) -> tuple[list[dict], list[int]]:
    """A list of layers applied in order: -> (normalized layers, output shape).

    `path`/`label` place the chain: ("layers",) and "layer {i}" at the top; inside block 2,
    ("layers", 2, "layers") and "layer 2 › layers[{i}]". `last_is_output` allows softmax on
    its last layer (the network's own output).
    """
    if sum(1 for k in path if k in ("layers", "branches")) > MAX_DEPTH:
        raise R.SpecError(f"blocks nest at most {MAX_DEPTH} deep", path)
    out = []
    for i, raw in enumerate(raws):
        p, lab = (*path, i), label.replace("{i}", str(i))
        if not isinstance(raw, dict):
            raise R.SpecError(f"{lab}: each layer must be an object with a 'type'", p)
        if raw.get("type") not in TYPES:
            raise R.SpecError(
                f"{lab}: unknown type {raw.get('type')!r}; use one of {', '.join(LAYER_TYPES)}",
                (*p, "type"),
            )
        is_last = last_is_output and i == len(raws) - 1
        norm = normalize_layer(R.LayerCtx(p, lab, raw), shape, is_last)
        out.append(norm)
        shape = norm["output_shape"]
    return out, shape


def children(spec: dict) -> Iterator[tuple[tuple, list[dict]]]:
    """A layer spec's nested chains: ((key, ...) path suffix, chain). None for plain layers."""
    if spec["type"] == "residual":
        yield ("layers",), spec["layers"]
    elif spec["type"] == "concat":
        for b, chain in enumerate(spec["branches"]):
            yield ("branches", b), chain


def walk(layers: list[dict], path: tuple = ("layers",)) -> Iterator[tuple[tuple, dict]]:
    """Every layer spec of a normalized chain, depth first, blocks before their insides (and a
    residual block's projection as a conv2d at (..., "projection")): (path, spec)."""
    for i, spec in enumerate(layers):
        yield (*path, i), spec
        for suffix, chain in children(spec):
            yield from walk(chain, (*path, i, *suffix))
        if spec.get("projection"):
            yield (*path, i, "projection"), spec["projection"]


def trace_values(layers: list[dict], learning_rate: bool) -> int:
    """How many numbers the trace entries of these layers hold (nested entries included)."""
    total = 0
    for _, spec in walk(layers):
        n_in, n_out = math.prod(spec["input_shape"]), math.prod(spec["output_shape"])
        total += 2 * n_in + 4 * n_out + TYPES[spec["type"]].extra_values(spec)
        if TYPES[spec["type"]].kind == "layer":  # a block's parameters are its layers'
            total += (3 if learning_rate else 2) * spec["param_count"]
    return total


def raw_layer(spec: dict) -> dict:
    """A normalized layer spec back to the fields a user writes (what a saved model keeps)."""
    lt = TYPES[spec["type"]]
    out: dict[str, Any] = {"type": lt.name}
    for k in lt.fields:
        if k not in spec:
            continue
        v = spec[k]
        if k == "layers":
            v = [raw_layer(s) for s in v]
        elif k == "branches":
            v = [[raw_layer(s) for s in chain] for chain in v]
        elif k == "projection" and v is not None:
            v = raw_layer(v)
        out[k] = v
    return out


def layer_json_schema() -> dict:
    """The JSON schema of one layer: the type enum and every type's fields, from the registry."""
    props: dict[str, Any] = {"type": {"type": "string", "enum": list(LAYER_TYPES)}}
    for lt in TYPES.values():
        for k, v in lt.schema.items():
            props.setdefault(k, v)
    return {
        "type": "object",
        "description": "One layer. "
        + "; ".join(lt.summary for lt in TYPES.values())
        + ". Sizes are an int or [h, w].",
        "required": ["type"],
        "properties": props,
    }


def spec_json_schema() -> dict:
    return {
        "type": "object",
        "description": "A network spec: input_shape [C, H, W], layers, loss (default "
        "cross_entropy after softmax, mse otherwise). Responses add each layer's input_shape, "
        "output_shape, param_count and multiply_adds.",
        "required": ["input_shape", "layers"],
        "properties": {
            "input_shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 3,
                "maxItems": 3,
            },
            "layers": {"type": "array", "items": layer_json_schema(), "minItems": 1},
            "loss": {"type": "string", "enum": list(LOSSES)},
        },
    }


def build_layer(spec: dict):
    """The Layer object of a normalized layer spec."""
    return TYPES[spec["type"]].layer_class(spec)
