"""A network of the client's own for POST /api/trace: spec, caps and parameters checked
before anything is allocated, so an oversized request is refused in microseconds."""

from __future__ import annotations

import math
from typing import Any

from cnncore import Network, SpecError, normalize_spec
from cnncore.blocks import flatten_params
from cnncore.registry import trace_values as layer_values
from cnncore.registry import walk

from ..errors import ApiError, Loc
from ..schemas import TraceRequest
from ..settings import Settings
from .validate import to_array


def spec_error(exc: SpecError, prefix: Loc) -> ApiError:
    """The engine's SpecError as a 422 whose `loc` points into the request body."""
    loc = tuple(exc.location)
    if loc and loc[0] in ("params", "target", "input"):
        prefix = ("body",)
    return ApiError((*prefix, *loc), str(exc), "spec_error")


def trace_values(spec: dict, learning_rate: bool) -> int:
    """How many numbers a trace of this spec returns (what the response-size cap counts):
    every layer's entry, a block's nested entries included (`cnncore.registry`)."""
    return 2 * math.prod(spec["output_shape"]) + layer_values(spec["layers"], learning_rate)


def limits(s: Settings) -> dict[str, Any]:
    """The caps a custom network meets, for a client to show before they are hit (the page's
    playground reads them as GET /api/health's "limits" once that route includes them)."""
    return {
        "max_layers": s.max_layers,
        "max_channels": s.max_channels,
        "max_multiply_adds": s.max_multiply_adds,
        "max_trace_values": s.max_trace_values,
        "max_input_shape": list(s.max_input_shape),
    }


def count_layers(raw: Any) -> int:
    """Layers in a raw spec's layer list, blocks' nested layers included, without recursion
    (counted before the spec is checked, so a huge or deep spec is refused cheaply)."""
    total, stack = 0, [raw]
    while stack:
        item = stack.pop()
        if not isinstance(item, list):
            continue
        for layer in item:
            if not isinstance(layer, dict):
                continue
            total += 1
            stack.append(layer.get("layers"))
            branches = layer.get("branches")
            if isinstance(branches, list):
                stack.extend(branches)
            if isinstance(layer.get("projection"), dict):
                total += 1
    return total


def _check_caps(spec: dict, s: Settings, learning_rate: bool) -> None:
    loc = ("body", "network")
    cap = s.max_input_shape
    shape = spec["input_shape"]
    if any(v > c for v, c in zip(shape, cap, strict=True)):
        raise ApiError(
            (*loc, "input_shape"),
            f"input_shape {shape} is over the cap: at most "
            f"{cap[0]} channels and {cap[1]}×{cap[2]} pixels",
            "cap",
        )
    for path, layer in walk(spec["layers"]):
        c = layer.get("out_channels")
        if c is not None and c > s.max_channels:
            where = " › ".join(str(p) for p in path[1:])
            raise ApiError(
                (*loc, *path, "out_channels"),
                f"layer {where} (conv2d): out_channels {c} is over the cap of {s.max_channels}",
                "cap",
            )
    madds = sum(layer["multiply_adds"] for layer in spec["layers"])
    if madds > s.max_multiply_adds:
        raise ApiError(
            loc,
            f"the network needs {madds:,} multiply-adds per sample; the cap "
            f"is {s.max_multiply_adds:,}: use fewer or smaller layers",
            "cap",
        )
    values = trace_values(spec, learning_rate)
    if values > s.max_trace_values:
        raise ApiError(
            loc,
            f"a trace of this network holds {values:,} numbers; the cap is "
            f"{s.max_trace_values:,}: use fewer channels, units or pixels",
            "cap",
        )


def _load_params(net: Network, given: list[dict], s: Settings) -> None:
    if len(given) != len(net.layers):
        raise ApiError(
            ("body", "params"),
            f"params must have one entry per layer "
            f"({len(net.layers)}); use {{}} for layers without parameters",
            "shape",
        )
    lim = s.max_abs_value
    params = []
    for i, (layer, p) in enumerate(zip(net.layers, given, strict=True)):
        p = flatten_params(p)
        if set(p) != set(layer.params):
            want = sorted(layer.params) or "nothing: {}"
            raise ApiError(
                ("body", "params", i),
                f"layer {i} ({layer.type}) takes {want}, got {sorted(p)}",
                "params",
            )
        params.append(
            {
                k: to_array(p[k], ref.shape, ("body", "params", i, k), -lim, lim)
                for k, ref in layer.params.items()
            }
        )
    net.load_params(params)


def custom_network(req: TraceRequest, s: Settings) -> Network:
    """`req.network` (+ `params` or `seed`) as a Network, or an ApiError naming the field."""
    raw = req.network
    layers = raw.get("layers") if isinstance(raw, dict) else None
    # before normalize_spec, which would build every layer's shapes
    n = count_layers(layers)
    if n > s.max_layers:
        raise ApiError(
            ("body", "network", "layers"),
            f"{n} layers (blocks' inner layers included) is over the cap of {s.max_layers}",
            "cap",
        )
    try:
        spec = normalize_spec(raw)
    except SpecError as exc:
        raise spec_error(exc, ("body", "network")) from None
    _check_caps(spec, s, req.learning_rate is not None)
    net = Network.from_spec(spec, seed=req.seed)
    if req.params is not None:
        _load_params(net, req.params, s)
    return net
