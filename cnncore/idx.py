"""Read IDX files, the format of the original MNIST distribution (LeCun et al.).

Layout: 2 zero bytes, one type byte, one byte with the number of dimensions d, then d
big-endian uint32 sizes, then the values in row-major order, big-endian. MNIST uses type 0x08
(unsigned byte): images are (N, 28, 28), labels (N,).

Every malformation is an ``IdxError`` naming the file and what is wrong: a short header, a
wrong magic, an unknown type, zero dimensions, or a payload shorter or longer than the sizes
say. Nothing is read beyond what the header declares, and a header cannot make the parser
allocate more than the bytes that are actually there.
"""

from __future__ import annotations

import numpy as np

# type byte -> big-endian NumPy dtype
_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxError(ValueError):
    """The bytes are not a well-formed IDX file."""


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """IDX bytes -> array in native byte order with the declared shape (a copy)."""
    if len(raw) < 4:
        raise IdxError(f"{name}: {len(raw)} bytes, shorter than the 4-byte IDX magic")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxError(
            f"{name}: wrong magic {raw[:4].hex()}: an IDX file starts with two zero bytes"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in _TYPES:
        raise IdxError(f"{name}: unknown IDX type byte 0x{type_code:02x} (magic {raw[:4].hex()})")
    if ndim == 0:
        raise IdxError(f"{name}: the header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(
            f"{name}: truncated header: {ndim} dimensions need {header} bytes, file has {len(raw)}"
        )
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[type_code]
    expected = dtype.itemsize * int(np.prod(shape, dtype=object))
    payload = len(raw) - header
    if payload != expected:
        kind = "truncated" if payload < expected else "trailing bytes"
        raise IdxError(
            f"{name}: {kind}: shape {shape} of {dtype.name} needs {expected} bytes after the "
            f"{header}-byte header, found {payload}"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def to_idx(values: np.ndarray) -> bytes:
    """Array -> IDX bytes (the inverse of ``parse_idx``; for tests and fixtures)."""
    values = np.asarray(values)
    codes = [
        c
        for c, t in _TYPES.items()
        if (t.kind, t.itemsize) == (values.dtype.kind, values.dtype.itemsize)
    ]
    if not codes:
        raise IdxError(f"no IDX type for dtype {values.dtype}")
    code, dtype = codes[0], _TYPES[codes[0]]
    head = bytes([0, 0, code, values.ndim]) + np.asarray(values.shape, ">u4").tobytes()
    return head + values.astype(dtype).tobytes()
