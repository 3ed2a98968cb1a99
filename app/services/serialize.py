"""JSON bytes for responses: orjson with NumPy arrays, values unrounded.

A trace of the digit model is ~400k float64 numbers (~5 MB), so `dumps_trace` avoids
serializing anything twice; that is most of what it costs on top of the engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from cnncore import Network

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    """orjson's fallback: non-contiguous arrays and NumPy scalars."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTS, default=_default)


# The bundled models are cached and read-only, so their parameters are serialized once per
# process: id(array) -> (array, its JSON). Holding the array keeps its id from being reused.
_PINNED: dict[int, tuple[np.ndarray, orjson.Fragment]] = {}


def pin_params(net: Network) -> None:
    """Serialize a cached network's parameters once; `dumps_trace` then reuses the bytes."""
    for p in net.params:
        for a in p.values():
            if id(a) not in _PINNED:
                _PINNED[id(a)] = (a, orjson.Fragment(dumps(a)))


def dumps_trace(out: dict[str, Any]) -> bytes:
    """`dumps` of a trace dict, with the same bytes, faster: each array is serialized once
    even where the trace repeats it (a layer's a_prev is the previous layer's a; its
    dC_da_prev is the previous layer's dC_da), and pinned parameters come pre-serialized."""
    memo: dict[tuple, orjson.Fragment] = {}

    def frag(a: Any) -> Any:
        if not isinstance(a, np.ndarray):
            return a
        hit = _PINNED.get(id(a))
        if hit is not None and hit[0] is a:
            return hit[1]
        key = (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
        f = memo.get(key)
        if f is None:
            f = memo[key] = orjson.Fragment(dumps(a))
        return f

    out = dict(out)
    layers = []
    for layer in out["layers"]:
        layer = dict(layer)
        for part in ("params", "forward", "backward"):
            layer[part] = {k: frag(v) for k, v in layer[part].items()}
        if "argmax" in layer:
            layer["argmax"] = frag(layer["argmax"])
        layers.append(layer)
    out["layers"] = layers
    return dumps(out)
