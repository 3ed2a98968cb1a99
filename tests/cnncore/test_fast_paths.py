"""The training fast paths give the general path's results: non-overlapping max-pool (forward
maxima only, first-max routing found in the backward pass), channels-last im2col convolution,
float32 kept float32, ties and NaN as PyTorch has them."""

from __future__ import annotations

import numpy as np
import pytest

from cnncore import functional as F  # noqa: N812
from cnncore import naive

# (kernel, stride, H, W): stride == kernel (exact and with an uncovered border), stride > kernel,
# non-square kernels.
NON_OVERLAPPING = [
    ((2, 2), (2, 2), 8, 8),
    ((2, 2), (2, 2), 7, 9),
    ((3, 3), (3, 3), 9, 7),
    ((2, 3), (2, 3), 6, 9),
    ((2, 2), (3, 3), 8, 8),
    ((1, 1), (1, 1), 3, 4),
    ((1, 2), (2, 2), 5, 6),
]


def _general(x, k, s):
    """The general path's output and gradient, with its eagerly computed argmax."""
    out, index = F._maxpool_general(x, k, s, (0, 0))
    cache = F.MaxPoolCache(x.shape, k, s, (0, 0), index=index)
    return out, cache


def _inputs(h, w, dtype, kind, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 2, h, w))
    if kind == "ties":  # relu-like zeros and repeated values: many windows tie
        x = np.maximum(np.round(x), 0.0)
    elif kind == "nan":
        x.flat[rng.choice(x.size, size=max(3, x.size // 10), replace=False)] = np.nan
        x[0, 0, :2, :2] = np.nan  # a window with several NaN
    elif kind == "inf":
        x[0, 0, 0, :] = np.inf
        x[1, 1] = -np.inf
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["distinct", "ties", "nan", "inf"])
@pytest.mark.parametrize("k,s,h,w", NON_OVERLAPPING)
def test_non_overlapping_maxpool_equals_general_path(k, s, h, w, kind, dtype):
    x = _inputs(h, w, dtype, kind)
    out, cache = F.maxpool2d_forward(x, k, s)
    assert cache.index is None  # the fast path was taken
    gout, gcache = _general(x, k, s)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, gout)  # NaN == NaN here
    dout = np.random.default_rng(1).normal(size=out.shape).astype(dtype)
    dout.flat[0] = -2.5  # a negative gradient into a tied window: +0.0 elsewhere, never -0.0
    dx = F.maxpool2d_backward(dout, cache)
    gdx = F.maxpool2d_backward(dout, gcache)
    assert dx.dtype == dtype and dx.shape == x.shape and dx.flags.c_contiguous
    np.testing.assert_array_equal(dx, gdx)
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(gdx))
    np.testing.assert_array_equal(cache.argmax, gcache.argmax)
    np.testing.assert_array_equal(F.maxpool2d_argmax_rc(cache), F.maxpool2d_argmax_rc(gcache))


@pytest.mark.parametrize("kind", ["distinct", "ties", "nan"])
@pytest.mark.parametrize("k,s,h,w", NON_OVERLAPPING)
def test_non_overlapping_maxpool_matches_naive_and_torch(k, s, h, w, kind):
    torch = pytest.importorskip("torch")
    x = _inputs(h, w, np.float64, kind, seed=2)
    out, cache = F.maxpool2d_forward(x, k, s)
    dout = np.random.default_rng(3).normal(size=out.shape)
    dx = F.maxpool2d_backward(dout, cache)
    tx = torch.tensor(x, requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, k, s, return_indices=True)
    tout.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    rc = F.maxpool2d_argmax_rc(cache)
    np.testing.assert_array_equal(rc[..., 0] * x.shape[3] + rc[..., 1], tidx.numpy())
    if kind != "nan":
        nout, narg = naive.maxpool2d_forward(x, k, s, 0)
        np.testing.assert_array_equal(out, nout)
        np.testing.assert_array_equal(rc, narg)
        np.testing.assert_array_equal(dx, naive.maxpool2d_backward(dout, x, k, s, 0))


def test_fast_maxpool_ties_go_to_the_first_maximum():
    x = np.zeros((1, 1, 2, 4), dtype=np.float32)
    x[0, 0, 1, 2] = 1.0  # second window: one max at (1, 0) of the window; first: all zero
    out, cache = F.maxpool2d_forward(x, (2, 2), (2, 2))
    dx = F.maxpool2d_backward(np.array([[[[3.0, 5.0]]]], dtype=np.float32), cache)
    np.testing.assert_array_equal(dx[0, 0], [[3, 0, 0, 0], [0, 0, 5, 0]])


def test_fast_maxpool_nan_window_routes_to_its_last_nan():
    x = np.arange(8.0).reshape(1, 1, 2, 4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = np.nan  # window 0: NaN at offsets 0 and 3 -> the last
    out, cache = F.maxpool2d_forward(x, (2, 2), (2, 2))
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 0, 0, 1] == 7
    dx = F.maxpool2d_backward(np.ones((1, 1, 1, 2)), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0], [0, 1, 0, 1]])


CONV_CASES = [
    # (N, C_in, H, W, C_out, kernel, stride, padding)
    (2, 1, 9, 8, 3, (5, 5), (1, 1), (2, 2)),
    (3, 4, 7, 8, 5, (3, 3), (2, 2), (1, 1)),
    (2, 3, 8, 7, 2, (2, 3), (1, 2), (0, 1)),
    (1, 6, 6, 6, 4, (3, 3), (3, 3), (0, 0)),
]


@pytest.mark.parametrize("n,c_in,h,w,c_out,k,s,p", CONV_CASES)
def test_conv_float32_stays_float32_and_matches_float64(n, c_in, h, w, c_out, k, s, p):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, c_in, h, w))
    wt = rng.normal(size=(c_out, c_in, *k))
    b = rng.normal(size=c_out)
    z64, c64 = F.conv2d_forward(x, wt, b, s, p)
    dz = rng.normal(size=z64.shape)
    grads64 = F.conv2d_backward(dz, c64)
    f32 = [v.astype(np.float32) for v in (x, wt, b)]
    z32, c32 = F.conv2d_forward(*f32, s, p)
    grads32 = F.conv2d_backward(dz.astype(np.float32), c32)
    assert z32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    np.testing.assert_allclose(z32, z64, rtol=1e-5, atol=1e-4)
    for g32, g64 in zip(grads32, grads64, strict=True):
        assert g32.shape == g64.shape and g32.flags.c_contiguous
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-4)
    nz = naive.conv2d_forward(x, wt, b, s, p)
    np.testing.assert_allclose(z64, nz, rtol=0, atol=1e-12)
    for got, want in zip(grads64, naive.conv2d_backward(dz, x, wt, s, p), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("block_bytes", [1, 3000, 1 << 20])
def test_conv_column_blocks_give_the_same_result_for_any_block_size(monkeypatch, block_bytes):
    # One sample per block, a few samples per block, everything in one block: same values.
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 4, 6, 7))
    wt = rng.normal(size=(3, 4, 3, 3))
    b = rng.normal(size=3)
    monkeypatch.setattr(F, "BLOCK_BYTES", block_bytes)
    z, cache = F.conv2d_forward(x, wt, b, (1, 1), (1, 1))
    assert cache.layout == "blocks"
    dz = rng.normal(size=z.shape)
    dx, dw, db = F.conv2d_backward(dz, cache)
    np.testing.assert_allclose(z, naive.conv2d_forward(x, wt, b, 1, 1), rtol=0, atol=1e-12)
    for got, want in zip((dx, dw, db), naive.conv2d_backward(dz, x, wt, 1, 1), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_conv_layouts_both_covered():
    rng = np.random.default_rng(7)
    few = F.conv2d_forward(
        rng.normal(size=(2, 1, 9, 9)), rng.normal(size=(2, 1, 3, 3)), np.zeros(2), (1, 1), (1, 1)
    )[1]
    many = F.conv2d_forward(
        rng.normal(size=(2, 8, 9, 9)), rng.normal(size=(2, 8, 3, 3)), np.zeros(2), (1, 1), (1, 1)
    )[1]
    assert (few.layout, many.layout) == ("offsets", "blocks")


@pytest.mark.parametrize("min_channels", [1, 10**9])
@pytest.mark.parametrize("n,c_in,h,w,c_out,k,s,p", CONV_CASES)
def test_conv_dx_direct_and_scatter_paths_match_naive(
    monkeypatch, min_channels, n, c_in, h, w, c_out, k, s, p
):
    # min_channels 1: every stride-1 case computes dx as a forward convolution of dz with the
    # flipped kernels; 10**9: every case scatters per-offset slabs.
    monkeypatch.setattr(F, "DIRECT_DX_MIN_CHANNELS", min_channels)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(n, c_in, h, w))
    wt = rng.normal(size=(c_out, c_in, *k))
    b = rng.normal(size=c_out)
    z, cache = F.conv2d_forward(x, wt, b, s, p)
    dz = rng.normal(size=z.shape)
    dx, dw, db = F.conv2d_backward(dz, cache)
    ndx, ndw, ndb = naive.conv2d_backward(dz, x, wt, s, p)
    for got, want in ((dx, ndx), (dw, ndw), (db, ndb)):
        assert got.flags.c_contiguous
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_conv_dx_direct_path_at_16_channels_matches_torch_float32():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, 16, 10, 9)).astype(np.float32)
    wt = rng.normal(size=(8, 16, 5, 5)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    z, cache = F.conv2d_forward(x, wt, b, (1, 1), (2, 2))
    dz = rng.normal(size=z.shape).astype(np.float32)
    dx, dw, db = F.conv2d_backward(dz, cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(wt, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    tz = torch.nn.functional.conv2d(tx, tw, tb, padding=2)
    tz.backward(torch.tensor(dz))
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-5, atol=1e-4)
    for got, t in ((dx, tx), (dw, tw), (db, tb)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-5, atol=1e-4)


def _relu_pool_net(pool):
    from cnncore import Network

    spec = {
        "input_shape": [2, 9, 8],
        "layers": [
            {
                "type": "conv2d",
                "out_channels": 4,
                "kernel_size": 3,
                "padding": 1,
                "activation": "relu",
            },
            {"type": "maxpool2d", **pool},
            {"type": "flatten"},
            {"type": "dense", "units": 6, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
        "loss": "cross_entropy",
    }
    return Network.from_spec(spec, seed=3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "pool",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2},
        {"kernel_size": 2, "stride": 1},
        {"kernel_size": 2, "stride": 2, "padding": 1},
    ],
)
def test_training_backward_folds_relu_into_pool_bit_for_bit(pool, dtype):
    # Training mode (input_grad=False) masks the pool's gradient by (pool output > 0) and hands
    # the relu layer dC/dz; the trace's mode runs relu's own backward. Same gradients, bit for
    # bit, with many ties (a relu's zeros) in the pool windows.
    net = _relu_pool_net(pool).astype(dtype)
    rng = np.random.default_rng(10)
    x = rng.normal(size=(5, 2, 9, 8)).astype(dtype)
    x[0] = 0.0  # all-zero windows after relu
    y = np.array([0, 1, 2, 1, 0])
    a, records = net.forward(x)
    net.backward(records, net.encode_target(y, 5, dtype=dtype), input_grad=True)
    full = [rec.grads() for rec in records]
    loss, fused = net.loss_and_grads(x, y)
    for g_full, g_fused in zip(full, fused, strict=True):
        assert set(g_full) == set(g_fused)
        for k in g_full:
            assert g_fused[k].dtype == dtype
            np.testing.assert_array_equal(g_fused[k], g_full[k])
            np.testing.assert_array_equal(np.signbit(g_fused[k]), np.signbit(g_full[k]))


def test_training_backward_fold_is_taken_and_the_trace_mode_keeps_every_tensor():
    net = _relu_pool_net({"kernel_size": 2})
    x = np.random.default_rng(11).normal(size=(2, 2, 9, 8))
    y = net.encode_target(np.array([0, 2]), 2)
    _, records = net.forward(x)
    net.backward(records, y, input_grad=False)
    assert records[0].dC_da is None and records[0].dC_dz is not None  # folded
    _, records = net.forward(x)
    net.backward(records, y)
    assert records[0].dC_da is not None and records[1].dC_da_prev is not None
    np.testing.assert_array_equal(records[1].dC_da_prev, records[0].dC_da)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64])
def test_where_or_zero_equals_np_where_bit_for_bit(dtype):
    rng = np.random.default_rng(12)
    values = rng.normal(size=(4, 3, 6, 5)) * 10
    if np.dtype(dtype).kind == "f":
        values.flat[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, -1e-300]
    values = values.astype(dtype)
    mask = rng.random(values.shape) < 0.5
    mask.flat[:6] = [True, True, False, True, False, True]
    want = np.where(mask, values, 0)
    got = F.where_or_zero(mask, values)
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    # into a strided view, from strided inputs
    big = np.full((4, 3, 12, 10), 7, dtype=dtype)
    view = big[:, :, 1::2, ::2]
    F.where_or_zero(mask[..., ::-1], values[..., ::-1], out=view)
    want2 = np.where(mask[..., ::-1], values[..., ::-1], 0)
    np.testing.assert_array_equal(np.ascontiguousarray(view).view(np.uint8), want2.view(np.uint8))
    assert np.all(big[:, :, ::2] == 7)


@pytest.mark.parametrize("k,s,h,w", NON_OVERLAPPING)
def test_maxpool_backward_channels_major_same_values(k, s, h, w):
    x = _inputs(h, w, np.float32, "ties")
    out, cache = F.maxpool2d_forward(x, k, s)
    dout = np.random.default_rng(13).normal(size=out.shape).astype(np.float32)
    want = F.maxpool2d_backward(dout, cache)
    got = F.maxpool2d_backward(dout, cache, channels_major=True)
    assert got.shape == want.shape and got.dtype == np.float32
    assert got.transpose(1, 0, 2, 3).flags.c_contiguous  # (C, N, H, W) in memory
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
