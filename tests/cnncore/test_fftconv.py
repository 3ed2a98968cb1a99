"""cnncore.fftconv: the FFT convolution of the training path against PyTorch autograd, the
fused conv -> relu -> max-pool, the `conv_algorithm` training option and its validation."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from cnncore import data, fftconv
from cnncore import functional as F  # noqa: N812
from cnncore.network import Network
from cnncore.train import (
    DIGITS_SPEC,
    LENET_SPEC,
    add_arguments,
    add_dropout,
    forward_for_training,
    train,
    training_step,
)
from cnncore.train import _plain as fftconv_training_plain

# (N, C_in, C_out, H, W, kH, kW, padding)
GEOMETRIES = [
    (2, 1, 3, 7, 7, 3, 3, (0, 0)),  # odd size, one input channel
    (2, 16, 4, 8, 8, 5, 5, (2, 2)),  # even size, 16 channels, the digit network's kind
    (3, 16, 5, 9, 6, 1, 1, (0, 0)),  # 1x1 kernel, non-square input
    (2, 3, 4, 10, 9, 3, 5, (1, 2)),  # non-square kernel and padding
    (1, 2, 3, 5, 5, 3, 3, (2, 2)),  # padding > (k - 1) / 2: the output is larger than x
    (2, 1, 2, 6, 7, 5, 5, (1, 1)),
    (2, 4, 3, 4, 4, 5, 5, (2, 2)),  # kernel larger than the input
    (2, 3, 2, 12, 12, 5, 5, (0, 0)),  # LeNet's second layer's kind
]

TOL = {np.float64: 1e-10, np.float32: 1e-5}


@pytest.fixture(scope="module")
def mnist_small():
    split = data.load_split()
    return split.x_train[:128], split.y_train[:128]


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _torch_conv(x, w, b, padding, dz):
    tx, tw, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, w, b))
    tz = torch.nn.functional.conv2d(tx, tw, tb, padding=padding)
    tz.backward(torch.tensor(dz, dtype=torch.float64))
    return tz.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_forward_and_gradients_equal_pytorch(geometry, dtype):
    n, c_in, c_out, h, wd, kh, kw, padding = geometry
    rng = np.random.default_rng(sum(geometry[:7]))
    x = rng.standard_normal((n, c_in, h, wd)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, kh, kw)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    z, cache = fftconv.conv2d_forward(x, w, b, padding)
    dz = rng.standard_normal(z.shape).astype(dtype)
    ref_z, ref_dx, ref_dw, ref_db = _torch_conv(x, w, b, padding, dz)
    dx, dw, db = fftconv.conv2d_backward(dz, cache)
    assert z.shape == ref_z.shape and z.dtype == dtype
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert dx.dtype == dw.dtype == db.dtype == dtype
    tol = TOL[dtype]
    for got, ref in ((z, ref_z), (dx, ref_dx), (dw, ref_dw), (db, ref_db)):
        assert _rel(got, ref) < tol
    # dx not needed (a network's first layer): the same dw and db, no dx
    none, dw2, db2 = fftconv.conv2d_backward(dz, cache, need_dx=False)
    assert none is None
    assert _rel(dw2, ref_dw) < tol and _rel(db2, ref_db) < tol


def _torch_conv_relu_pool(x, w, b, padding, pool, da):
    tx, tw, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, w, b))
    tz = torch.nn.functional.conv2d(tx, tw, tb, padding=padding)
    tz.retain_grad()
    ta = torch.relu(torch.nn.functional.max_pool2d(tz, pool))
    ta.backward(torch.tensor(da, dtype=torch.float64))
    return ta.detach().numpy(), tz.grad.numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


def _conv_pool_operands(geometry, dtype, seed: int):
    """x, w, b of a (n, c_in, c_out, h, w, kh, kw, padding, pool) geometry, its padding and pool
    window, and the random generator (for the upstream gradient)."""
    n, c_in, c_out, h, wd, kh, kw, padding, pool = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, wd)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, kh, kw)).astype(dtype)
    b = (0.3 * rng.standard_normal(c_out)).astype(dtype)
    return x, w, b, padding, pool, rng


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "geometry",
    [
        (4, 16, 8, 14, 14, 5, 5, (2, 2), (2, 2)),  # the digit network's second conv
        (3, 3, 4, 9, 7, 3, 3, (1, 1), (2, 2)),  # odd output: the last row/column uncovered
        (2, 2, 3, 8, 10, 3, 5, (0, 1), (3, 2)),  # a 3x2 pool window
    ],
)
def test_fused_conv_relu_maxpool_equals_pytorch(geometry, dtype):
    x, w, b, padding, pool, rng = _conv_pool_operands(geometry, dtype, 7)
    a, conv_cache, pool_cache = fftconv.conv2d_relu_maxpool_forward(x, w, b, padding, pool)
    da = rng.standard_normal(a.shape).astype(dtype)
    ref_a, ref_dz, ref_dx, ref_dw, ref_db = _torch_conv_relu_pool(x, w, b, padding, pool, da)
    assert a.shape == ref_a.shape and a.flags.c_contiguous
    dz = fftconv.relu_maxpool_backward(da, a, pool_cache)
    assert dz.shape == ref_dz.shape
    np.testing.assert_array_equal(np.asarray(dz) == 0, ref_dz == 0)  # routed to the same cells
    dx, dw, db = fftconv.backward(dz, conv_cache)
    assert conv_cache.dz_buffer is None  # the buffer was taken, not kept
    tol = TOL[dtype]
    for got, ref in ((a, ref_a), (dz, ref_dz), (dx, ref_dx), (dw, ref_dw), (db, ref_db)):
        assert _rel(got, ref) < tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "geometry",
    [
        (4, 1, 16, 28, 28, 5, 5, (2, 2), (2, 2)),  # the digit network's first conv
        (3, 1, 4, 11, 9, 3, 3, (0, 1), (2, 2)),  # odd output: the last row uncovered
        (2, 3, 5, 10, 12, 5, 3, (1, 0), (3, 2)),  # 3 input channels, a 3x2 pool window
    ],
)
def test_first_layer_in_window_order_equals_pytorch(geometry, dtype):
    x, w, b, padding, pool, rng = _conv_pool_operands(geometry, dtype, 11)
    a, conv_cache, pool_cache = fftconv.im2col_relu_maxpool_forward(x, w, b, padding, pool)
    da = rng.standard_normal(a.shape).astype(dtype)
    ref_a, _, _, ref_dw, ref_db = _torch_conv_relu_pool(x, w, b, padding, pool, da)
    assert a.shape == ref_a.shape and a.flags.c_contiguous and a.dtype == dtype
    dz = fftconv.relu_maxpool_backward(da, a, pool_cache)
    none, dw, db = fftconv.backward(dz, conv_cache, need_dx=False)
    assert none is None and dw.shape == w.shape and db.shape == b.shape
    tol = TOL[dtype]
    for got, ref in ((a, ref_a), (dw, ref_dw), (db, ref_db)):
        assert _rel(got, ref) < tol
    with pytest.raises(ValueError, match="no input gradient"):
        fftconv.backward(dz, conv_cache, need_dx=True)


def test_two_threads_give_the_same_gradients_to_rounding():
    """With the training helper thread each half of the batch is transformed in its own
    thread; the results are PyTorch's to float32 rounding, as with one thread."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 16, 14, 14)).astype(np.float32)
    w = rng.standard_normal((8, 16, 5, 5)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    da = rng.standard_normal((6, 8, 7, 7)).astype(np.float32)
    ref_a, _, ref_dx, ref_dw, ref_db = _torch_conv_relu_pool(x, w, b, (2, 2), (2, 2), da)
    with F.training_threads(threads=2):
        a, conv_cache, pool_cache = fftconv.conv2d_relu_maxpool_forward(x, w, b, (2, 2), (2, 2))
        chunks = conv_cache.chunks
        dx, dw, db = fftconv.backward(fftconv.relu_maxpool_backward(da, a, pool_cache), conv_cache)
    if F._helper is None and len(chunks) == 1:
        assert chunks == [(0, 6)]
    for got, ref in ((a, ref_a), (dx, ref_dx), (dw, ref_dw), (db, ref_db)):
        assert _rel(got, ref) < 1e-5


def test_a_two_thread_training_step_splits_the_first_convs_weight_gradient():
    """auto with the helper thread: the digit network's first conv stays im2col, its weight
    gradient computed by both threads in halves (SplitDwCache); the step's gradients equal
    im2col's to float32 rounding."""
    rng = np.random.default_rng(8)
    x = rng.random((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    grads = {}
    for algorithm in ("im2col", "auto"):
        model = Network.from_spec(DIGITS_SPEC, seed=4).astype(np.float32)
        for layer in model.layers:
            if "b" in layer.params:
                layer.params["b"] = np.full(layer.params["b"].shape, 0.05, np.float32)
        with F.training_threads(threads=2):
            _, records = forward_for_training(model, x, algorithm)
            shared = F._helper is not None
            if algorithm == "auto" and shared:
                assert isinstance(records[0].cache, fftconv.SplitDwCache)
                assert isinstance(records[2].cache, fftconv.FFTConvCache)
            model.backward(records, model.encode_target(y, len(y), np.float32), False)
        grads[algorithm] = [rec.grads() for rec in records]
    for g, ref in zip(grads["auto"], grads["im2col"], strict=True):
        for k in g:
            assert _rel(g[k], ref[k]) < 1e-4, k


def test_a_two_thread_step_in_halves_equals_the_whole_step():
    """training_step with the helper thread (auto): each thread takes half of the batch through
    the whole network; the size-weighted gradients equal the whole batch's to float32 rounding.
    im2col, batch norm and dropout never split."""
    rng = np.random.default_rng(12)
    x = rng.random((15, 1, 28, 28)).astype(np.float32)  # odd: halves of 7 and 8
    y = rng.integers(0, 10, 15)
    model = Network.from_spec(DIGITS_SPEC, seed=5).astype(np.float32)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = np.full(layer.params["b"].shape, 0.05, np.float32)
    ref_a, ref_loss, ref_grads = training_step(model, x, y, "im2col")
    with F.training_threads(threads=2):
        a, loss, grads = training_step(model, x, y, "auto")
        split = F._helper is not None
    assert a.shape == ref_a.shape and _rel(a, ref_a) < 1e-5
    assert abs(loss - ref_loss) < 1e-5 * ref_loss
    for g, ref in zip(grads, ref_grads, strict=True):
        assert set(g) == set(ref)
        for k in g:
            assert g[k].dtype == np.float32 and _rel(g[k], ref[k]) < 1e-4, k
    if split:
        assert fftconv_training_plain(model)
        with_dropout = Network.from_spec(DIGITS_SPEC, seed=5)
        add_dropout(with_dropout, 0.5, np.random.default_rng(0))
        assert not fftconv_training_plain(with_dropout)


def test_stride_other_than_one_is_refused_and_not_chosen():
    x = np.zeros((1, 16, 14, 14))
    w = np.zeros((4, 16, 5, 5))
    assert not fftconv.supported(x.shape, w.shape, (2, 2), (2, 2))
    assert not fftconv.wins(x.shape, w.shape, (2, 2), (2, 2))
    with pytest.raises(ValueError, match="stride 1"):
        fftconv.conv2d_forward(x, np.zeros((4, 16, 20, 20)), np.zeros(4), (0, 0))


def test_auto_chooses_the_fft_where_it_was_measured_faster():
    digits = Network.from_spec(DIGITS_SPEC, seed=0)
    conv1, conv2 = digits.layers[0], digits.layers[2]
    pool_args = digits.layers[1].args
    assert fftconv.window_fusable(conv1, (64, 1, 28, 28), pool_args)  # first layer, 1 channel
    assert not fftconv.window_fusable(conv2, (64, 16, 14, 14), pool_args)  # channels-last case
    assert not fftconv.use_fft("auto", conv1, (64, 1, 28, 28))  # one input channel: im2col
    assert fftconv.use_fft("auto", conv2, (64, 16, 14, 14))  # 16 -> 32, 5x5: FFT
    assert fftconv.use_fft("fft", conv1, (64, 1, 28, 28))  # fft: every stride-1 conv
    assert not fftconv.use_fft("im2col", conv2, (64, 16, 14, 14))
    lenet = Network.from_spec(LENET_SPEC, seed=0)
    assert not fftconv.use_fft("auto", lenet.layers[2], (64, 8, 12, 12))  # 8 channels
    # LeNet's first layer (8 filters) keeps im2col's bits
    assert not fftconv.window_fusable(lenet.layers[0], (64, 1, 28, 28), lenet.layers[1].args)
    assert not fftconv.use_fft("fft", lenet.layers[1], (64, 8, 24, 24))  # a pool, not a conv


@pytest.mark.parametrize("spec", [DIGITS_SPEC, LENET_SPEC], ids=["digits", "lenet"])
def test_a_training_step_by_fft_equals_im2col_to_float32_rounding(spec):
    # Random images and biases: no exact ties. (On MNIST at initialisation, zero biases and the
    # digits' empty borders make whole pool windows exactly 0 in im2col's sums; the FFT's
    # rounding leaves +-1e-9 there, so the pool routes some gradients to another cell of a window
    # of equal values and relu lets some through: a subgradient choice, not an error.)
    rng = np.random.default_rng(5)
    x = rng.random((32, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    grads = {}
    for algorithm in ("im2col", "fft", "auto"):
        model = Network.from_spec(spec, seed=1).astype(np.float32)
        for layer in model.layers:
            if "b" in layer.params:
                layer.params["b"] = (
                    np.random.default_rng(9)
                    .normal(0, 0.1, layer.params["b"].shape)
                    .astype(np.float32)
                )
        a, records = forward_for_training(model, x, algorithm)
        loss = model.backward(records, model.encode_target(y, len(y), np.float32), False)
        grads[algorithm] = (a, loss, [rec.grads() for rec in records])
    ref_a, ref_loss, ref_grads = grads["im2col"]
    for algorithm in ("fft", "auto"):
        a, loss, layer_grads = grads[algorithm]
        assert _rel(a, ref_a) < 1e-5
        assert abs(loss - ref_loss) < 1e-5 * abs(ref_loss)
        for g, ref in zip(layer_grads, ref_grads, strict=True):
            assert set(g) == set(ref)
            for k in g:
                assert g[k].dtype == np.float32
                assert _rel(g[k], ref[k]) < 1e-4, (algorithm, k)


def test_training_by_fft_follows_im2col():
    """Three Adam steps: the weights and losses of the two algorithms agree to float32
    rounding. Random images and biases, as above: no exact ties."""
    rng = np.random.default_rng(6)
    x = rng.random((96, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    net = Network.from_spec(DIGITS_SPEC, seed=2)
    for layer in net.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.normal(0, 0.1, layer.params["b"].shape)
    runs = {}
    for algorithm in ("im2col", "auto", "fft"):
        runs[algorithm] = train(
            net,
            x,
            y,
            epochs=1,
            batch_size=32,
            lr=1e-3,
            augmentation=False,
            conv_algorithm=algorithm,
            progress=False,
        )
    ref, ref_hist = runs["im2col"]
    for algorithm in ("auto", "fft"):
        model, hist = runs[algorithm]
        assert abs(hist[0]["loss"] - ref_hist[0]["loss"]) < 1e-5 * ref_hist[0]["loss"]
        # Adam moves each weight by up to lr = 1e-3 per step, whatever the gradient's size, so a
        # weight whose gradient is tiny can move differently (measured: up to 1.1e-4 in the
        # second conv); 90 % of each layer's weights agree to < 1e-9
        for p, q in zip(model.params, ref.params, strict=True):
            for k in p:
                diff = np.abs(p[k] - q[k])
                assert np.max(diff) < 3e-4, (algorithm, k)
                assert np.quantile(diff, 0.9) < 1e-7, (algorithm, k)


@pytest.mark.parametrize("threads", [1, 2])
def test_training_by_fft_repeats_bit_for_bit(threads):
    """The FFT path is deterministic for a seed and a thread count (each half of the batch is
    always the same samples, the halves' weight gradients added in the same order)."""
    rng = np.random.default_rng(10)
    x = rng.random((48, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 48)
    runs = []
    for _ in range(2):
        with F.training_threads(threads=threads):
            model, _ = train(
                Network.from_spec(DIGITS_SPEC, seed=3),
                x,
                y,
                epochs=1,
                batch_size=16,
                augmentation=False,
                conv_algorithm="auto",
                progress=False,
            )
        runs.append(model)
    for p, q in zip(runs[0].params, runs[1].params, strict=True):
        for k in p:
            assert p[k].tobytes() == q[k].tobytes()


def test_conv_algorithm_is_validated():
    x = np.zeros((4, 1, 28, 28), np.float32)
    y = np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="conv_algorithm must be one of auto, im2col, fft"):
        train(Network.from_spec(LENET_SPEC), x, y, epochs=1, conv_algorithm="winograd")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).conv_algorithm == "auto"
    assert parser.parse_args(["--conv-algorithm", "im2col"]).conv_algorithm == "im2col"
    with pytest.raises(SystemExit):
        parser.parse_args(["--conv-algorithm", "winograd"])


def test_the_trace_never_uses_the_fft():
    net = Network.from_spec(DIGITS_SPEC, seed=0)
    trace = net.trace(np.random.default_rng(0).random((1, 28, 28)), 3)
    convs = [
        rec for rec, layer in zip(trace.records, net.layers, strict=True) if layer.type == "conv2d"
    ]
    assert convs and all(isinstance(rec.cache, F.ConvCache) for rec in convs)
