"""cnncore.idx: the IDX reader accepts well-formed files and names what is wrong otherwise."""

import numpy as np
import pytest

from cnncore.idx import IdxError, parse_idx, to_idx


@pytest.mark.parametrize(
    "values",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([0, 9, 3], np.uint8),
        np.array([[-1, 70000]], np.int32),
        np.array([1.5, -2.25], np.float64),
    ],
)
def test_round_trip(values):
    out = parse_idx(to_idx(values))
    assert out.dtype.kind == values.dtype.kind and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_header_is_big_endian_as_in_mnist():
    raw = to_idx(np.zeros((60_000, 28, 28), np.uint8)[:2])
    assert raw[:4] == bytes([0, 0, 0x08, 3])
    assert raw[4:8] == (2).to_bytes(4, "big") and raw[8:12] == (28).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", r"x: 0 bytes, shorter than the 4-byte IDX magic"),
        (b"\x00\x00\x08", r"shorter than the 4-byte"),
        (b"\x1f\x8b\x08\x03" + bytes(12), r"wrong magic 1f8b0803.*two zero bytes"),
        (b"\x00\x00\x07\x01" + bytes(8), r"unknown IDX type byte 0x07"),
        (b"\x00\x00\x08\x00", r"declares 0 dimensions"),
        (b"\x00\x00\x08\x03" + bytes(6), r"truncated header: 3 dimensions need 16 bytes"),
    ],
)
def test_malformed_headers_are_named(raw, message):
    with pytest.raises(IdxError, match=message):
        parse_idx(raw, "x")


def test_truncated_payload_is_named():
    raw = to_idx(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(IdxError, match=r"images: truncated: shape \(3, 28, 28\).*2352.*2351"):
        parse_idx(raw[:-1], "images")


def test_trailing_bytes_are_refused():
    with pytest.raises(IdxError, match="trailing bytes"):
        parse_idx(to_idx(np.zeros(5, np.uint8)) + b"\x00", "labels")


def test_a_huge_declared_shape_does_not_allocate():
    # 4e9 x 4e9 declared, 0 bytes present: refused from the header arithmetic alone.
    raw = b"\x00\x00\x08\x02" + (4_000_000_000).to_bytes(4, "big") * 2
    with pytest.raises(IdxError, match="truncated"):
        parse_idx(raw, "bomb")
