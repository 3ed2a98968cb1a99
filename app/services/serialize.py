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


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit (so -0.0 != 0.0, as in JSON); the first elements reject most pairs."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    fa, fb = a.reshape(-1), b.reshape(-1)
    return fa[:16].tobytes() == fb[:16].tobytes() and fa.tobytes() == fb.tobytes()


def dumps_trace(out: dict[str, Any]) -> bytes:
    """`dumps` of a trace dict, with the same bytes, faster: each array is serialized once
    where the trace repeats it (a layer's a_prev is the previous layer's a; its dC_da_prev
    is the previous layer's dC_da), or repeats its values (z and a, dC_da and dC_dz of a
    layer without activation: max-pool, flatten), and pinned parameters come pre-serialized.
    """
    memo: dict[tuple, orjson.Fragment] = {}
    layer_seen: list[tuple[np.ndarray, orjson.Fragment]] = []

    def frag(a: Any) -> Any:
        if not isinstance(a, np.ndarray):
            return a
        hit = _PINNED.get(id(a))
        if hit is not None and hit[0] is a:
            return hit[1]
        key = (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
        f = memo.get(key)
        if f is None:
            f = next((f2 for b, f2 in layer_seen if _equal(a, b)), None)
            if f is None:
                f = orjson.Fragment(dumps(a))
            memo[key] = f
        layer_seen.append((a, f))
        return f

    out = dict(out)
    layers = []
    for layer in out["layers"]:
        layer = dict(layer)
        layer_seen.clear()
        for part in ("forward", "backward"):
            layer[part] = {k: frag(v) for k, v in layer[part].items()}
        # parameters and argmax are not compared with the tensors: no match is expected
        layer_seen.clear()
        layer["params"] = {k: frag(v) for k, v in layer["params"].items()}
        if "argmax" in layer:
            layer["argmax"] = frag(layer["argmax"])
        layers.append(layer)
    out["layers"] = layers
    return dumps(out)
