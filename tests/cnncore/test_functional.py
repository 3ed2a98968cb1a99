"""cnncore.functional, op by op: the vectorized engine vs the naive loop oracle (atol 1e-12) and
vs PyTorch autograd in float64 (atol 1e-10), forward and every gradient.

Cases cover stride 1 and 2, padding 0, 1 and 2, odd, even and non-square kernels, 1 or several
channels, batch 1 and 2, and sizes where (H + 2p - k) is not divisible by the stride, so some
border cells are in no window and must get exactly zero gradient.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cnncore import functional as F  # noqa: N812
from cnncore import naive

ATOL_NAIVE = 1e-12
ATOL_TORCH = 1e-10


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _close(actual, expected, atol, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.max(np.abs(actual - expected)) if actual.size else 0.0
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol:g}"


def _torch():
    return pytest.importorskip("torch")


# (C_in, C_out, N): single channel/sample and several of each, mixed.
CHANNELS_BATCH = [(1, 1, 1), (3, 4, 2), (1, 4, 2), (3, 1, 1)]
KERNELS = [2, 3, (2, 3)]
CONV_CASES = list(itertools.product([1, 2], [0, 1, 2], KERNELS, CHANNELS_BATCH))


def _conv_case(stride, padding, kernel, cb, seed=0):
    c_in, c_out, n = cb
    kh, kw = _pair(kernel)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c_in, 7, 8))
    w = rng.normal(size=(c_out, c_in, kh, kw))
    b = rng.normal(size=c_out)
    s, p = _pair(stride), _pair(padding)
    h_out = F.out_size(7, kh, s[0], p[0])
    w_out = F.out_size(8, kw, s[1], p[1])
    dz = rng.normal(size=(n, c_out, h_out, w_out))
    return x, w, b, s, p, dz


# --------------------------------------------------------------------------- convolution


@pytest.mark.parametrize("stride,padding,kernel,cb", CONV_CASES)
def test_conv2d_matches_naive(stride, padding, kernel, cb):
    x, w, b, s, p, dz = _conv_case(stride, padding, kernel, cb)
    z, cache = F.conv2d_forward(x, w, b, s, p)
    _close(z, naive.conv2d_forward(x, w, b, s, p), ATOL_NAIVE, "z")
    dx, dw, db = F.conv2d_backward(dz, cache)
    ndx, ndw, ndb = naive.conv2d_backward(dz, x, w, s, p)
    _close(dx, ndx, ATOL_NAIVE, "dx")
    _close(dw, ndw, ATOL_NAIVE, "dw")
    _close(db, ndb, ATOL_NAIVE, "db")


@pytest.mark.parametrize("stride,padding,kernel,cb", CONV_CASES)
def test_conv2d_matches_torch(stride, padding, kernel, cb):
    torch = _torch()
    x, w, b, s, p, dz = _conv_case(stride, padding, kernel, cb, seed=1)
    z, cache = F.conv2d_forward(x, w, b, s, p)
    dx, dw, db = F.conv2d_backward(dz, cache)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    tz = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
    tz.backward(torch.tensor(dz))
    _close(z, tz.detach().numpy(), ATOL_TORCH, "z")
    _close(dx, tx.grad.numpy(), ATOL_TORCH, "dx")
    _close(dw, tw.grad.numpy(), ATOL_TORCH, "dw")
    _close(db, tb.grad.numpy(), ATOL_TORCH, "db")


def test_conv2d_need_dx_false_skips_dx_only():
    x, w, b, s, p, dz = _conv_case(2, 1, 3, (3, 4, 2))
    _, cache = F.conv2d_forward(x, w, b, s, p)
    dx, dw, db = F.conv2d_backward(dz, cache, need_dx=False)
    _, dw_full, db_full = F.conv2d_backward(dz, cache)
    assert dx is None
    np.testing.assert_array_equal(dw, dw_full)
    np.testing.assert_array_equal(db, db_full)


def test_conv2d_uncovered_border_gets_exactly_zero_gradient():
    # H = W = 6, k = 3, s = 2, p = 0: windows start at 0 and 2, so row/col 5 is in no window.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 2, 6, 6))
    w = rng.normal(size=(3, 2, 3, 3))
    b = rng.normal(size=3)
    z, cache = F.conv2d_forward(x, w, b, (2, 2), (0, 0))
    assert z.shape == (2, 3, 2, 2)
    dx, _, _ = F.conv2d_backward(rng.normal(size=z.shape), cache)
    assert np.all(dx[:, :, 5, :] == 0.0) and np.all(dx[:, :, :, 5] == 0.0)
    assert np.all(dx[:, :, :5, :5] != 0.0)
    # With padding 1 (padded size 8, windows at 0, 2, 4) the padded border row 7 is uncovered;
    # the cropped result must still equal the oracle's.
    z, cache = F.conv2d_forward(x, w, b, (2, 2), (1, 1))
    dz = rng.normal(size=z.shape)
    dx, _, _ = F.conv2d_backward(dz, cache)
    _close(dx, naive.conv2d_backward(dz, x, w, (2, 2), (1, 1))[0], ATOL_NAIVE, "dx")


def test_conv2d_hand_example():
    # The article's identity: [[1..9]] correlated with [[10,20],[30,40]] is [[370,470],[670,770]].
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 1, 2, 2)
    z, cache = F.conv2d_forward(x, w, np.zeros(1), (1, 1), (0, 0))
    np.testing.assert_array_equal(z[0, 0], [[370.0, 470.0], [670.0, 770.0]])
    # dC/dx with dz all ones: each x cell gets the sum of the weights that touched it.
    dx, dw, db = F.conv2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_array_equal(dx[0, 0], [[10, 30, 20], [40, 100, 60], [30, 70, 40]])
    np.testing.assert_array_equal(dw[0, 0], [[12, 16], [24, 28]])
    np.testing.assert_array_equal(db, [4.0])


def test_conv2d_float32_stays_float32_and_close():
    x, w, b, s, p, dz = _conv_case(2, 1, 3, (3, 4, 2))
    z64, c64 = F.conv2d_forward(x, w, b, s, p)
    z32, c32 = F.conv2d_forward(*(v.astype(np.float32) for v in (x, w, b)), s, p)
    assert z32.dtype == np.float32
    _close(z32, z64, 1e-4, "z float32")
    grads32 = F.conv2d_backward(dz.astype(np.float32), c32)
    grads64 = F.conv2d_backward(dz, c64)
    for name, g32, g64 in zip(("dx", "dw", "db"), grads32, grads64, strict=True):
        assert g32.dtype == np.float32, name
        _close(g32, g64, 1e-4, name)


# --------------------------------------------------------------------------- pooling

# (kernel, stride, padding): default stride (= kernel), overlapping (stride < kernel), stride
# not dividing the padded size, non-square kernels, padding up to kernel // 2.
POOL_CASES = [
    (2, 2, 0),
    (2, 1, 0),
    (2, 2, 1),
    (2, 1, 1),
    (3, 1, 0),
    (3, 2, 0),
    (3, 2, 1),
    (3, 1, 1),
    ((2, 3), (1, 2), 0),
    ((2, 3), (2, 1), (1, 1)),
    (4, 2, 2),
    (4, 3, 1),
]
POOL_BATCH = [(1, 1), (2, 3)]  # (N, C)


def _pool_case(kernel, stride, padding, nc, seed=0, ties=False):
    n, c = nc
    rng = np.random.default_rng(seed)
    x = (
        rng.integers(0, 3, size=(n, c, 7, 8)).astype(float)
        if ties
        else rng.normal(size=(n, c, 7, 8))
    )
    k, s, p = _pair(kernel), _pair(stride), _pair(padding)
    h_out, w_out = F.out_size(7, k[0], s[0], p[0]), F.out_size(8, k[1], s[1], p[1])
    dout = rng.normal(size=(n, c, h_out, w_out))
    return x, k, s, p, dout


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("nc", POOL_BATCH)
@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_maxpool2d_matches_naive(kernel, stride, padding, nc, ties):
    x, k, s, p, dout = _pool_case(kernel, stride, padding, nc, ties=ties)
    out, cache = F.maxpool2d_forward(x, k, s, p)
    nout, narg = naive.maxpool2d_forward(x, k, s, p)
    _close(out, nout, ATOL_NAIVE, "out")
    np.testing.assert_array_equal(F.maxpool2d_argmax_rc(cache), narg)
    dx = F.maxpool2d_backward(dout, cache)
    _close(dx, naive.maxpool2d_backward(dout, x, k, s, p), ATOL_NAIVE, "dx")


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("nc", POOL_BATCH)
@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_maxpool2d_matches_torch(kernel, stride, padding, nc, ties):
    torch = _torch()
    x, k, s, p, dout = _pool_case(kernel, stride, padding, nc, seed=1, ties=ties)
    out, cache = F.maxpool2d_forward(x, k, s, p)
    dx = F.maxpool2d_backward(dout, cache)
    tx = torch.tensor(x, requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
    tout.backward(torch.tensor(dout))
    _close(out, tout.detach().numpy(), ATOL_TORCH, "out")
    _close(dx, tx.grad.numpy(), ATOL_TORCH, "dx")
    # PyTorch's indices are flat h*W + w into the unpadded input: the same cells as argmax_rc.
    rc = F.maxpool2d_argmax_rc(cache)
    np.testing.assert_array_equal(rc[..., 0] * x.shape[3] + rc[..., 1], tidx.numpy())


def test_maxpool2d_constant_input_first_max_gets_gradient():
    torch = _torch()
    x = np.full((1, 1, 4, 4), 2.5)
    dout = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    out, cache = F.maxpool2d_forward(x, (2, 2), (2, 2))
    dx = F.maxpool2d_backward(dout, cache)
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(out[0, 0], np.full((2, 2), 2.5))
    np.testing.assert_array_equal(dx[0, 0], expected)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2, 2).backward(torch.tensor(dout))
    np.testing.assert_array_equal(tx.grad.numpy(), dx)


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 1, 1), ((2, 3), (1, 2), 0)])
def test_maxpool2d_nan_gets_the_gradient_as_in_torch(kernel, stride, padding):
    # NaN wins its windows and takes their gradient; with two NaNs in one window, the last
    # in row-major order does (PyTorch: `if (val > maxval || isnan(val))`).
    torch = _torch()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 2, 6, 7))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[0, 0, 2, 1] = np.nan
    x[1, 1, 4, 5] = np.nan
    k, s, p = _pair(kernel), _pair(stride), _pair(padding)
    out, cache = F.maxpool2d_forward(x, k, s, p)
    dout = rng.normal(size=out.shape)
    dx = F.maxpool2d_backward(dout, cache)
    tx = torch.tensor(x, requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
    tout.backward(torch.tensor(dout))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(tout.detach().numpy()))
    assert np.isnan(out).any()
    np.testing.assert_array_equal(np.nan_to_num(out), np.nan_to_num(tout.detach().numpy()))
    rc = F.maxpool2d_argmax_rc(cache)
    np.testing.assert_array_equal(rc[..., 0] * x.shape[3] + rc[..., 1], tidx.numpy())
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=0, atol=ATOL_TORCH)
    assert dx[0, 0, 1, 1] != 0 or dx[0, 0, 1, 2] != 0 or dx[0, 0, 2, 1] != 0


def test_maxpool2d_overlapping_windows_accumulate():
    # 4x5 input, 2x2 windows, stride 1: the global max (7 at row 1, col 2) is in 4 windows.
    x = np.array(
        [[1, 2, 3, 1, 0], [0, 4, 7, 2, 1], [3, 1, 2, 6, 0], [1, 5, 0, 2, 1]], dtype=float
    ).reshape(1, 1, 4, 5)
    out, cache = F.maxpool2d_forward(x, (2, 2), (1, 1))
    np.testing.assert_array_equal(out[0, 0], [[4, 7, 7, 2], [4, 7, 7, 6], [5, 5, 6, 6]])
    dx = F.maxpool2d_backward(np.ones((1, 1, 3, 4)), cache)
    expected = np.zeros((4, 5))
    expected[1, 1], expected[1, 2], expected[1, 3] = 2, 4, 1
    expected[2, 3], expected[3, 1] = 3, 2
    np.testing.assert_array_equal(dx[0, 0], expected)
    assert dx.sum() == out.size


def test_maxpool2d_padding_is_minus_infinity():
    # All-negative input: zero padding would win every border window; -inf padding never does.
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    out, cache = F.maxpool2d_forward(x, (2, 2), (2, 2), (1, 1))
    np.testing.assert_array_equal(out[0, 0], [[-1, -2], [-4, -5]])
    rc = F.maxpool2d_argmax_rc(cache)[0, 0]
    np.testing.assert_array_equal(rc, [[[0, 0], [0, 1]], [[1, 0], [1, 1]]])
    dx = F.maxpool2d_backward(np.ones((1, 1, 2, 2)), cache)
    assert dx.shape == x.shape
    assert dx[0, 0, 2].sum() == 0 and dx[0, 0, :, 2].sum() == 0


@pytest.mark.parametrize("nc", POOL_BATCH)
@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_avgpool2d_matches_naive(kernel, stride, padding, nc):
    x, k, s, p, dout = _pool_case(kernel, stride, padding, nc)
    out, cache = F.avgpool2d_forward(x, k, s, p)
    _close(out, naive.avgpool2d_forward(x, k, s, p), ATOL_NAIVE, "out")
    dx = F.avgpool2d_backward(dout, cache)
    _close(dx, naive.avgpool2d_backward(dout, x.shape, k, s, p), ATOL_NAIVE, "dx")


@pytest.mark.parametrize("nc", POOL_BATCH)
@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_avgpool2d_matches_torch(kernel, stride, padding, nc):
    torch = _torch()
    x, k, s, p, dout = _pool_case(kernel, stride, padding, nc, seed=1)
    out, cache = F.avgpool2d_forward(x, k, s, p)
    dx = F.avgpool2d_backward(dout, cache)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.avg_pool2d(tx, k, s, p, count_include_pad=True)
    tout.backward(torch.tensor(dout))
    _close(out, tout.detach().numpy(), ATOL_TORCH, "out")
    _close(dx, tx.grad.numpy(), ATOL_TORCH, "dx")


def test_avgpool2d_spreads_gradient_and_counts_padding():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    out, cache = F.avgpool2d_forward(x, (2, 2), (2, 2), (1, 1))
    # Padded windows: {0,0,0,1}, {0,0,2,3}, {0,4,0,7}, {5,6,8,9} / 4.
    np.testing.assert_array_equal(out[0, 0], [[0.25, 1.25], [2.75, 7.0]])
    dx = F.avgpool2d_backward(np.array([[[[4.0, 8.0], [12.0, 16.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 2], [3, 4, 4], [3, 4, 4]])


def test_pool_uncovered_border_gets_exactly_zero_gradient():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 2, 7, 7))  # k = 2, s = 2: row and col 6 are in no window
    for fwd, bwd in (
        (F.maxpool2d_forward, F.maxpool2d_backward),
        (F.avgpool2d_forward, F.avgpool2d_backward),
    ):
        out, cache = fwd(x, (2, 2), (2, 2))
        assert out.shape == (1, 2, 3, 3)
        dx = bwd(rng.normal(size=out.shape) + 5.0, cache)
        assert np.all(dx[:, :, 6, :] == 0.0) and np.all(dx[:, :, :, 6] == 0.0)
        assert np.count_nonzero(dx[:, :, :6, :6]) > 0


# --------------------------------------------------------------------------- dense


@pytest.mark.parametrize("n,m,k", [(1, 1, 1), (1, 5, 3), (2, 7, 4), (2, 3, 10)])
def test_dense_matches_naive_and_torch(n, m, k):
    rng = np.random.default_rng(n * 100 + m * 10 + k)
    x, w, b = rng.normal(size=(n, m)), rng.normal(size=(k, m)), rng.normal(size=k)
    dz = rng.normal(size=(n, k))
    z, cache = F.dense_forward(x, w, b)
    dx, dw, db = F.dense_backward(dz, cache)
    _close(z, naive.dense_forward(x, w, b), ATOL_NAIVE, "z")
    for name, got, want in zip(
        ("dx", "dw", "db"), (dx, dw, db), naive.dense_backward(dz, x, w), strict=True
    ):
        _close(got, want, ATOL_NAIVE, name)
    torch = _torch()
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    tz = torch.nn.functional.linear(tx, tw, tb)
    tz.backward(torch.tensor(dz))
    _close(z, tz.detach().numpy(), ATOL_TORCH, "z")
    _close(dx, tx.grad.numpy(), ATOL_TORCH, "dx")
    _close(dw, tw.grad.numpy(), ATOL_TORCH, "dw")
    _close(db, tb.grad.numpy(), ATOL_TORCH, "db")


# --------------------------------------------------------------------------- helpers


def test_out_size_and_pad_crop_roundtrip():
    assert F.out_size(28, 5, 1, 0) == 24
    assert F.out_size(7, 3, 2, 0) == 3
    assert F.out_size(6, 3, 2, 0) == 2  # floor: the last row is dropped
    assert F.out_size(5, 3, 2, 1) == 3
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    assert F.pad_nchw(x, (0, 0)) is x
    np.testing.assert_array_equal(F.crop_nchw(x, (0, 0)), x)  # no x[p:-p] trap at p = 0
    padded = F.pad_nchw(x, (1, 2), value=-7.0)
    assert padded.shape == (2, 3, 6, 9)
    assert np.all(padded[:, :, 0] == -7.0) and np.all(padded[:, :, :, -2:] == -7.0)
    np.testing.assert_array_equal(F.crop_nchw(padded, (1, 2)), x)


@pytest.mark.parametrize("block_bytes", [1, 3000, 1 << 20])
def test_conv2d_training_threads_give_the_same_bits(monkeypatch, block_bytes):
    # With two threads the forward blocks are split between the threads and dx runs beside dw;
    # every product is the same BLAS call, so the results equal the one-thread ones bit for bit.
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: training_threads stays off")
    monkeypatch.setattr(F, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(7, 16, 9, 8)).astype(np.float32)
    w = rng.normal(size=(8, 16, 5, 5)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    with threadpool_limits(1, user_api="blas"):  # the one-thread reference
        z1, c1 = F.conv2d_forward(x, w, b, (1, 1), (2, 2))
        dz = rng.normal(size=z1.shape).astype(np.float32)
        one = F.conv2d_backward(dz, c1)
    with F.training_threads(2):
        assert F._helper is not None
        z2, c2 = F.conv2d_forward(x, w, b, (1, 1), (2, 2))
        two = F.conv2d_backward(dz, c2)
    assert F._helper is None
    assert z2.tobytes() == z1.tobytes()
    for name, g1, g2 in zip(("dx", "dw", "db"), one, two, strict=True):
        assert g2.dtype == np.float32 and g2.tobytes() == g1.tobytes(), name
    _close(two[0], naive.conv2d_backward(dz, x, w, (1, 1), (2, 2))[0], 1e-3, "dx")


def test_training_threads_with_one_thread_is_off():
    with F.training_threads(1):
        assert F._helper is None


@pytest.mark.parametrize("channels_major", [False, True])
def test_pool_and_first_conv_with_training_threads_give_the_same_bits(channels_major):
    # The helper also takes half of the batch of the non-overlapping max-pool (forward and
    # backward) and of the few-channel convolution's copies: element-wise, so the same bits.
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: training_threads stays off")
    rng = np.random.default_rng(12)
    x = rng.integers(-2, 3, size=(5, 3, 8, 6)).astype(np.float32)  # many ties
    w = rng.normal(size=(4, 1, 5, 5)).astype(np.float32)
    img = rng.normal(size=(5, 1, 12, 12)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)

    def run():
        out, cache = F.maxpool2d_forward(x, (2, 2), (2, 2))
        dx = F.maxpool2d_backward(np.ones_like(out) - out, cache, channels_major=channels_major)
        z, conv_cache = F.conv2d_forward(img, w, b, (1, 1), (2, 2))
        assert conv_cache.layout == "offsets"
        dw = F.conv2d_backward(z, conv_cache, need_dx=False)[1]
        return out, cache.first, dx, z, dw

    with threadpool_limits(1, user_api="blas"):  # the one-thread reference
        one = run()
    with F.training_threads(2):
        two = run()
    for a, b_ in zip(one, two, strict=True):
        assert a.tobytes() == b_.tobytes() and a.strides == b_.strides
