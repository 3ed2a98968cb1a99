"""JSON nested lists -> float64 arrays, checked element by element, errors naming the path."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError

from ..errors import ApiError, Loc


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
