"""JSON nested lists -> float64 arrays, checked element by element, errors naming the path."""

from __future__ import annotations

import binascii
from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError

from ..errors import ApiError, Loc

try:
    from pybase64 import b64decode
except ImportError:  # the standard library's then, same values
    from base64 import b64decode


def base64_bytes(value: Any, loc: Loc, n_bytes: int, what: str) -> bytes:
    """A base64 string that must decode to exactly `n_bytes` bytes of `what` (the API's one
    check of base64 data: arrays here, learned weights' changes in `changes.py`)."""
    if not isinstance(value, str):
        raise ApiError(loc, "must be a base64 string", "encoded_array")
    if len(value) != 4 * ((n_bytes + 2) // 3):
        raise ApiError(
            loc,
            f"must be the base64 of {what} ({n_bytes} bytes, {4 * ((n_bytes + 2) // 3)} "
            f"base64 characters), got {len(value)} characters",
            "encoded_array",
        )
    try:
        raw = b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ApiError(loc, "is not valid base64", "encoded_array") from None
    if len(raw) != n_bytes:  # the padding says fewer bytes
        raise ApiError(loc, f"must be {n_bytes} bytes of {what}, got {len(raw)}", "encoded_array")
    return raw


@lru_cache(maxsize=32)
def _numbers(depth: int, lo: float, hi: float) -> TypeAdapter:
    """A strict validator for a `depth`-deep nested list of numbers in [lo, hi]."""
    t: Any = Annotated[float, Strict(), Field(ge=lo, le=hi)]
    for _ in range(depth):
        t = list[t]
    return TypeAdapter(t, config=ConfigDict(allow_inf_nan=False))


def depth(value: Any) -> int:
    """How deep the first elements nest: [[1, 2]] -> 2."""
    d = 0
    while isinstance(value, list) and value:
        value, d = value[0], d + 1
    return d


def _check_shape(value: Any, shape: tuple[int, ...], loc: Loc, full: tuple[int, ...]) -> None:
    if not isinstance(value, list):
        raise ApiError(
            loc,
            f"must be a list of {shape[0]} (the whole array shaped "
            f"{list(full)}), got {type(value).__name__}",
            "shape",
        )
    if len(value) != shape[0]:
        raise ApiError(
            loc,
            f"has {len(value)} entries but needs {shape[0]} (the whole array "
            f"must be shaped {list(full)}; rows of different lengths are not "
            "allowed)",
            "shape",
        )
    if len(shape) > 1:
        for i, v in enumerate(value):
            _check_shape(v, shape[1:], (*loc, i), full)


def to_array(value: Any, shape: tuple[int, ...], loc: Loc, lo: float, hi: float) -> np.ndarray:
    """A JSON nested list -> float64 array of exactly `shape`; every element a finite number
    in [lo, hi] (not a bool, not a string). Errors name the element's path."""
    shape = tuple(int(s) for s in shape)
    if isinstance(value, dict):
        return from_base64(value, shape, loc, lo, hi)
    if shape == ():
        value, shape, scalar = [value], (1,), True
    else:
        scalar = False
    _check_shape(value, shape, loc, shape)
    try:
        clean = _numbers(len(shape), lo, hi).validate_python(value)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise ApiError((*loc, *err["loc"]), err["msg"], err["type"]) from None
    arr = np.array(clean, dtype=np.float64)
    return arr.reshape(()) if scalar else arr


def from_base64(value: dict, shape: tuple[int, ...], loc: Loc, lo: float, hi: float) -> np.ndarray:
    """`{"dtype": "float64", "shape": [...], "data": "<base64>"}` (the API's base64 encoding)
    -> the exact float64 array, checked like a nested list: shape, finite, in [lo, hi]."""
    if set(value) != {"dtype", "shape", "data"}:
        raise ApiError(
            loc,
            "an encoded array is {'dtype': 'float64', 'shape': [...], 'data': '<base64>'}; "
            f"got the keys {sorted(value)}",
            "encoded_array",
        )
    check_dtype_and_shape(value, shape, loc)
    n = 1
    for d in shape:
        n *= d
    raw = base64_bytes(value["data"], (*loc, "data"), 8 * n, f"{n} float64 values")
    arr = np.frombuffer(raw, dtype="<f8").astype(np.float64).reshape(shape)
    check_values(arr, (*loc, "data"), lo, hi)
    return arr


def check_dtype_and_shape(value: dict, shape: tuple[int, ...], loc: Loc) -> None:
    """An encoded array's `dtype` (float64 only) and `shape` (the one expected)."""
    if value["dtype"] != "float64":
        raise ApiError((*loc, "dtype"), "must be 'float64'", "encoded_array")
    if value["shape"] != list(shape):
        raise ApiError((*loc, "shape"), f"must be {list(shape)}, got {value['shape']!r}", "shape")


def check_values(arr: np.ndarray, loc: Loc, lo: float, hi: float) -> None:
    """Every value finite and in [lo, hi]; the first that is not is named by its index."""
    ok = np.isfinite(arr) & (arr >= lo) & (arr <= hi)
    if ok.all():
        return
    idx = tuple(int(i) for i in np.argwhere(~ok)[0])
    v = float(arr[idx])
    msg = (
        "must be a finite number"
        if not np.isfinite(v)
        else f"{v!r} is out of range: between {lo:g} and {hi:g}"
    )
    raise ApiError((*loc, *idx), msg, "value_error")
