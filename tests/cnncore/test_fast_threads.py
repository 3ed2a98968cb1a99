"""Worker threads (more than one BLAS thread): the batch's samples are split into ranges run
concurrently, and every result is bit for bit the one-thread result (same operations on the same
operands, block boundaries and the order of the sums over blocks kept), for both convolution
layouts, both dx paths, the non-overlapping max-pool and a whole training step."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cnncore import functional as F  # noqa: N812
from cnncore import naive
from cnncore.network import Network


def _run(monkeypatch, threads, fn):
    """fn() with `threads` worker ranges; the one-thread reference also runs BLAS on one thread
    (a multi-threaded BLAS product may itself round differently)."""
    monkeypatch.setattr(F, "worker_threads", lambda: threads)
    monkeypatch.setattr(F, "SPLIT_MIN_ELEMENTS", 0)
    if threads > 1:
        return fn()
    with threadpool_limits(1, user_api="blas"):
        return fn()


@pytest.mark.parametrize(
    "count,parts,unit",
    [(64, 2, 3), (64, 2, 1), (5, 2, 1), (1, 2, 1), (7, 3, 2), (3, 8, 1), (10, 2, 10), (9, 2, 4)],
)
def test_split_ranges_cover_in_order_on_block_bounds(count, parts, unit):
    ranges = F.split_ranges(count, parts, unit)
    assert ranges[0][0] == 0 and ranges[-1][1] == count
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(lo % unit == 0 and hi > lo for lo, hi in ranges)
    assert len(ranges) <= parts


CASES = [
    # n, c_in, h, w, c_out, k, p, s: blocks layout (direct dx, scatter dx), offsets layout
    (7, 16, 9, 11, 5, (5, 5), (2, 2), (1, 1)),
    (5, 4, 6, 7, 3, (3, 3), (1, 1), (1, 1)),
    (3, 6, 10, 9, 4, (3, 2), (0, 1), (2, 1)),
    (9, 1, 12, 13, 6, (5, 5), (2, 2), (1, 1)),
    (1, 3, 8, 8, 2, (3, 3), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_bytes", [1, 5000, 1 << 20])
@pytest.mark.parametrize("n,c_in,h,w,c_out,k,p,s", CASES)
def test_conv_split_equals_one_thread_bit_for_bit(
    monkeypatch, dtype, block_bytes, n, c_in, h, w, c_out, k, p, s
):
    monkeypatch.setattr(F, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(n * 31 + c_in)
    x = rng.normal(size=(n, c_in, h, w)).astype(dtype)
    wt = rng.normal(size=(c_out, c_in, *k)).astype(dtype)
    b = rng.normal(size=c_out).astype(dtype)

    def step():
        z, cache = F.conv2d_forward(x, wt, b, s, p)
        dz = np.random.default_rng(1).normal(size=z.shape).astype(dtype)
        return (z, *F.conv2d_backward(dz, cache))

    one = _run(monkeypatch, 1, step)
    for threads in (2, 3):
        split = _run(monkeypatch, threads, step)
        for a, bb in zip(one, split, strict=True):
            assert a.dtype == bb.dtype == dtype
            assert np.array_equal(a, bb)
    nz = naive.conv2d_forward(x.astype(np.float64), wt.astype(np.float64), b, s, p)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(one[0], nz, rtol=tol, atol=tol)


def test_conv_split_matches_torch_float32(monkeypatch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(11, 16, 14, 13)).astype(np.float32)
    wt = rng.normal(size=(8, 16, 5, 5)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    monkeypatch.setattr(F, "BLOCK_BYTES", 20000)
    z, cache = _run(monkeypatch, 2, lambda: F.conv2d_forward(x, wt, b, (1, 1), (2, 2)))
    dz = rng.normal(size=z.shape).astype(np.float32)
    dx, dw, db = _run(monkeypatch, 2, lambda: F.conv2d_backward(dz, cache))
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(wt, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    tz = torch.nn.functional.conv2d(tx, tw, tb, padding=2)
    tz.backward(torch.tensor(dz))
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-4, atol=1e-4)
    for got, want in ((dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape,k", [((5, 3, 8, 8), (2, 2)), ((3, 2, 7, 9), (2, 2)), ((4, 1, 9, 7), (3, 3))]
)
@pytest.mark.parametrize("channels_major", [False, True])
def test_maxpool_split_equals_one_thread_bit_for_bit(monkeypatch, dtype, shape, k, channels_major):
    rng = np.random.default_rng(4)
    x = np.maximum(np.round(rng.normal(size=shape) * 2), 0).astype(dtype)  # many ties
    x[0, 0, 0, 0] = -0.0

    def step():
        out, cache = F.maxpool2d_forward(x, k, k)
        dout = np.random.default_rng(2).normal(size=out.shape).astype(dtype)
        dout.flat[::5] = -0.0
        dx = F.maxpool2d_backward(dout, cache, channels_major=channels_major)
        return out, cache.first, np.ascontiguousarray(dx)

    one = _run(monkeypatch, 1, step)
    two = _run(monkeypatch, 2, step)
    for a, b in zip(one, two, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
        assert np.array_equal(np.signbit(a), np.signbit(b)) if a.dtype.kind == "f" else True


def test_training_step_split_equals_one_thread_and_restores_blas_threads(monkeypatch):
    spec = {
        "input_shape": [1, 12, 12],
        "layers": [
            {
                "type": "conv2d",
                "out_channels": 4,
                "kernel_size": 3,
                "padding": 1,
                "activation": "relu",
            },
            {"type": "maxpool2d", "kernel_size": 2},
            {
                "type": "conv2d",
                "out_channels": 16,
                "kernel_size": 3,
                "padding": 1,
                "activation": "relu",
            },
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
        "loss": "cross_entropy",
    }
    monkeypatch.setattr(F, "BLOCK_BYTES", 3000)
    net = Network.from_spec(spec, seed=1).astype(np.float32)
    rng = np.random.default_rng(5)
    x = rng.random((9, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, 9)
    before = [lib.num_threads for lib in F._blas_libs()]
    one = _run(monkeypatch, 1, lambda: net.loss_and_grads(x, y))
    two = _run(monkeypatch, 2, lambda: net.loss_and_grads(x, y))
    assert one[0] == two[0]
    for g1, g2 in zip(one[1], two[1], strict=True):
        assert g1.keys() == g2.keys()
        assert all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert [lib.num_threads for lib in F._blas_libs()] == before
