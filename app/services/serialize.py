"""JSON bytes for responses: orjson with NumPy arrays, values unrounded.

A trace of the digit model is ~400k float64 numbers (~5 MB), so `dumps_trace` avoids
serializing anything twice; that is most of what it costs on top of the engine.

Two encodings of an array (`ENCODINGS`):

* "json" (the default): nested lists of numbers, like NumPy's tolist();
* "base64": `{"dtype": "float64" | "int64", "shape": [...], "data": "<base64>"}`, the
  array's little-endian, C-order bytes (float64 for floats, int64 for integers), so every
  value is the float64 itself.

The standard library's base64 runs at ~1 GB/s on the 2-core development machine: for a
digit-model trace (~2.2 MB of tensor bytes per request) that is ~2.3 ms, about what orjson
takes to write the same arrays as decimals. `pybase64` (SIMD) writes the same bytes ~40×
faster (~0.06 ms); it is a dependency, and the standard library is the fallback, like zlib for gzip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from cnncore import Network

try:
    from pybase64 import b64encode
except ImportError:  # optional: the standard library's then, same bytes
    from base64 import b64encode

B64_IMPL = "pybase64" if b64encode.__module__.startswith("pybase64") else "stdlib"

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


def b64_fragment(a: np.ndarray) -> orjson.Fragment:
    """`{"dtype", "shape", "data"}` of an array: its little-endian C-order bytes, base64."""
    return orjson.Fragment(b64_bytes(a))


def b64_bytes(a: np.ndarray) -> bytes:
    """The JSON bytes of `b64_fragment(a)`."""
    if a.dtype.kind == "f":
        name, code = b"float64", "<f8"
    elif a.dtype.kind in "iub":
        name, code = b"int64", "<i8"
    else:
        raise TypeError(f"not encodable as base64: dtype {a.dtype}")
    # the array's own buffer when it is already contiguous little-endian (no copy)
    data = b64encode(np.ascontiguousarray(a, dtype=code).reshape(-1).view(np.uint8))
    return b"".join(
        (
            b'{"dtype":"',
            name,
            b'","shape":',
            orjson.dumps([int(n) for n in a.shape]),
            b',"data":"',
            data,
            b'"}',
        )
    )


def _default_b64(obj: Any) -> Any:
    """orjson's fallback without OPT_SERIALIZE_NUMPY: every array becomes base64."""
    if isinstance(obj, np.ndarray):
        return b64_fragment(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps_b64(obj: Any) -> bytes:
    """`dumps` with every NumPy array as `b64_fragment`; scalars stay JSON numbers."""
    return orjson.dumps(obj, default=_default_b64)


ENCODINGS: dict[str, tuple[Callable[[np.ndarray], bytes], Callable[[Any], bytes]]] = {
    # encoding: (one array's JSON bytes, dumps of the rest)
    "json": (dumps, dumps),
    "base64": (b64_bytes, dumps_b64),
}

# The bundled models are cached and read-only, so their parameters are serialized once per
# process and encoding: id(array) -> (array, {encoding: its bytes}). Holding the array keeps
# its id from being reused.
_PINNED: dict[int, tuple[np.ndarray, dict[str, bytes]]] = {}

# An array's JSON at least this long is not copied into the rest of the trace's JSON but kept
# as a piece of its own (`dumps_trace_pieces`): a digit trace's 2-6 MB are sent as ~100 such
# pieces and the short JSON between them, never joined into one buffer (~0.5 ms of copying).
PIECE_BYTES = 16 * 1024


def pin_params(net: Network) -> None:
    """Serialize a cached network's parameters once; `dumps_trace` then reuses the bytes."""
    for p in net.params:
        for a in p.values():
            if id(a) not in _PINNED:
                _PINNED[id(a)] = (a, {enc: f(a) for enc, (f, _) in ENCODINGS.items()})


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit (so -0.0 != 0.0, as in JSON); the first elements reject most pairs."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    fa, fb = a.reshape(-1), b.reshape(-1)
    return fa[:16].tobytes() == fb[:16].tobytes() and fa.tobytes() == fb.tobytes()


def dumps_trace(out: dict[str, Any], encoding: str = "json") -> bytes:
    """`dumps` (or `dumps_b64` for "base64") of a trace dict, with the same bytes, faster:
    `dumps_trace_pieces` joined."""
    return b"".join(dumps_trace_pieces(out, encoding))


def dumps_trace_pieces(out: dict[str, Any], encoding: str = "json") -> list[bytes]:
    """The bytes of `dumps` (or `dumps_b64` for "base64") of a trace dict, in pieces whose
    concatenation is exactly those bytes, faster: each array is serialized once where the
    trace repeats it (a layer's a_prev is the previous layer's a; its dC_da_prev is the
    previous layer's dC_da), or repeats its values (z and a, dC_da and dC_dz of a layer without
    activation: max-pool, flatten); pinned parameters come pre-serialized; and an array's JSON
    of `PIECE_BYTES` or more is a piece of its own, not copied again.

    How: such an array stands in the rest of the JSON as a placeholder fragment, a NUL byte, its
    number, a NUL byte. orjson escapes every control character inside strings, so a raw NUL
    occurs nowhere else in its output, and splitting the rest at NUL bytes gives the JSON
    between the arrays and the placeholders' numbers in turn.
    """
    encode, dumps_rest = ENCODINGS[encoding]
    memo: dict[tuple, orjson.Fragment] = {}
    layer_seen: list[tuple[np.ndarray, orjson.Fragment]] = []
    pieces: list[bytes] = []  # the long arrays' JSON, by placeholder number

    def fragment(raw: bytes) -> orjson.Fragment:
        if len(raw) < PIECE_BYTES:
            return orjson.Fragment(raw)
        pieces.append(raw)
        return orjson.Fragment(b"\0%d\0" % (len(pieces) - 1))

    def frag(a: Any) -> Any:
        if not isinstance(a, np.ndarray):
            return a
        hit = _PINNED.get(id(a))
        if hit is not None and hit[0] is a:
            return fragment(hit[1][encoding])
        key = (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
        f = memo.get(key)
        if f is None:
            f = next((f2 for b, f2 in layer_seen if _equal(a, b)), None)
            if f is None:
                f = fragment(encode(a))
            memo[key] = f
        layer_seen.append((a, f))
        return f

    out = dict(out)
    layers = []
    for layer in out["layers"]:
        layer = dict(layer)
        layer_seen.clear()
        for part in ("forward", "backward"):
            if part in layer:
                layer[part] = {k: frag(v) for k, v in layer[part].items()}
        # parameters and argmax are not compared with the tensors: no match is expected
        layer_seen.clear()
        if "params" in layer:
            layer["params"] = {k: frag(v) for k, v in layer["params"].items()}
        if "argmax" in layer:
            layer["argmax"] = frag(layer["argmax"])
        layers.append(layer)
    out["layers"] = layers
    rest = dumps_rest(out)
    if not pieces:
        return [rest]
    # the JSON between the long arrays, and the arrays' numbers between those
    rest = rest.split(b"\0")
    joined = [rest[0]]
    for number, after in zip(rest[1::2], rest[2::2], strict=True):
        joined += (pieces[int(number)], after)
    return [p for p in joined if p]
