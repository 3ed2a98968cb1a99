"""Training-only batch norm: the layer equals torch.nn.BatchNorm2d in train mode (float64), the
folded network equals the batch-norm network in eval mode and torch's fuse_conv_bn_eval, a few
training steps equal PyTorch's from the same initial weights (float32), and training without it
is unchanged."""

import json

import numpy as np
import pytest

from cnncore import Network, data, models
from cnncore.batchnorm import (
    BatchNorm2d,
    add_batchnorm,
    fold_batchnorm,
    recalibration_indices,
    recompute_running_stats,
)
from cnncore.train import forward_for_training, train

torch = pytest.importorskip("torch")

# Two convolutions, one not followed by a pool (its batch norm applies the relu itself) and one
# followed by a max-pool (forward_for_training's relu-after-pool shortcut).
SPEC = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 5, "padding": 2, "activation": "relu"},
        {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


@pytest.fixture(scope="module")
def digits():
    split = data.load_split()
    return split.x_train[:128], split.y_train[:128]


def _torch_bn(gamma, beta, momentum=0.1):
    bn = torch.nn.BatchNorm2d(len(gamma), momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    return bn


@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_layer_matches_torch_batchnorm2d_in_train_mode(activation):
    rng = np.random.default_rng(0)
    c = 3
    gamma, beta = rng.normal(1, 0.5, c), rng.normal(0, 0.5, c)
    layer = BatchNorm2d(c, activation, dtype=np.float64)
    layer.params = {"w": gamma.copy(), "b": beta.copy()}
    bn = _torch_bn(gamma, beta)
    act = torch.relu if activation == "relu" else (lambda v: v)
    for step in range(3):  # the running statistics move with every batch
        x = rng.normal(step, 2.0, (5, c, 4, 6))
        g = rng.normal(size=x.shape)
        a, rec = layer.forward(x)
        dx = layer.backward(rec, g)
        xt = torch.tensor(x, requires_grad=True)
        bn.zero_grad()
        out = act(bn(xt))
        out.backward(torch.tensor(g))
        np.testing.assert_allclose(a, out.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(rec.dC_dw, bn.weight.grad.numpy(), rtol=0, atol=1e-11)
        np.testing.assert_allclose(rec.dC_db, bn.bias.grad.numpy(), rtol=0, atol=1e-11)
        assert rec.grads().keys() == {"w", "b"}
        np.testing.assert_allclose(layer.running_mean, bn.running_mean.numpy(), atol=1e-13)
        np.testing.assert_allclose(layer.running_var, bn.running_var.numpy(), atol=1e-13)
    assert layer.num_batches_tracked == int(bn.num_batches_tracked) == 3
    # eval mode: the running statistics, as torch's model.eval()
    x = rng.normal(size=(2, c, 4, 6))
    layer.training = False
    bn.eval()
    np.testing.assert_allclose(
        layer.forward(x)[0], act(bn(torch.tensor(x))).detach().numpy(), rtol=0, atol=1e-12
    )


def test_cumulative_running_stats_match_torch_momentum_none():
    rng = np.random.default_rng(1)
    layer = BatchNorm2d(2, dtype=np.float64, momentum=None)
    bn = _torch_bn(np.ones(2), np.zeros(2), momentum=None)
    for _ in range(4):
        x = rng.normal(3.0, 1.5, (4, 2, 3, 3))
        layer.forward(x)
        bn(torch.tensor(x))
    np.testing.assert_allclose(layer.running_mean, bn.running_mean.numpy(), atol=1e-13)
    np.testing.assert_allclose(layer.running_var, bn.running_var.numpy(), atol=1e-13)


def _bn_network(seed=0, dtype=np.float64):
    """The test network with batch norms whose parameters and statistics are not trivial."""
    rng = np.random.default_rng(seed + 100)
    net = add_batchnorm(Network.from_spec(SPEC, seed=seed).astype(dtype))
    for layer in net.layers:
        if isinstance(layer, BatchNorm2d):
            c = len(layer.params["w"])
            layer.params = {"w": rng.normal(1, 0.3, c), "b": rng.normal(0, 0.3, c)}
            layer.running_mean = rng.normal(0, 0.2, c)
            layer.running_var = rng.uniform(0.2, 2.0, c)
        elif layer.type == "conv2d":
            layer.params["b"] = rng.normal(0, 0.1, layer.params["b"].shape)
    return net


def test_fold_equals_eval_mode_and_torch_fuse_conv_bn_eval(digits):
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = _bn_network()
    assert [layer.type for layer in net.layers] == [
        "conv2d", "batchnorm2d", "conv2d", "batchnorm2d", "maxpool2d", "flatten", "dense",
    ]  # fmt: skip
    assert [layer.activation for layer in net.layers[:4]] == ["identity", "relu"] * 2
    folded = fold_batchnorm(net)
    assert [layer.type for layer in folded.layers] == [s["type"] for s in SPEC["layers"]]
    assert [layer.activation for layer in folded.layers][:2] == ["relu", "relu"]
    assert all(v.dtype == np.float64 for p in folded.params for v in p.values())
    for layer in net.layers:
        layer.training = False  # model.eval()
    x = digits[0][:16].astype(np.float64)
    expected = net.predict(x)
    np.testing.assert_allclose(folded.predict(x), expected, rtol=0, atol=1e-12)
    # the trace sees an ordinary network
    trace = folded.trace(x[0], int(digits[1][0]))
    assert [d["type"] for d in trace.to_dict()["layers"]] == [s["type"] for s in SPEC["layers"]]
    # torch's own fusion of each convolution with its batch norm
    for conv_i, folded_i in ((0, 0), (2, 1)):
        conv, bnl = net.layers[conv_i], net.layers[conv_i + 1]
        tconv = torch.nn.Conv2d(
            conv.params["w"].shape[1], conv.params["w"].shape[0], conv.params["w"].shape[2:]
        ).double()
        tbn = _torch_bn(bnl.params["w"], bnl.params["b"])
        with torch.no_grad():
            tconv.weight.copy_(torch.tensor(conv.params["w"]))
            tconv.bias.copy_(torch.tensor(conv.params["b"]))
            tbn.running_mean.copy_(torch.tensor(bnl.running_mean))
            tbn.running_var.copy_(torch.tensor(bnl.running_var))
        fused = fuse_conv_bn_eval(tconv.eval(), tbn.eval())
        p = folded.params[folded_i]
        np.testing.assert_allclose(p["w"], fused.weight.detach().numpy(), rtol=1e-13, atol=0)
        np.testing.assert_allclose(p["b"], fused.bias.detach().numpy(), rtol=1e-13, atol=1e-15)


def test_training_forward_shortcut_is_bit_identical_with_batch_norm(digits):
    # forward_for_training skips the relu before the pool; the batch norm carries that relu.
    x, y = digits[0][:32], digits[1][:32]
    plain_net = add_batchnorm(Network.from_spec(SPEC, seed=4).astype(np.float32))
    fast_net = plain_net.copy()
    yb = plain_net.encode_target(y, len(y), dtype=np.float32)
    a_plain, rec_plain = plain_net.forward(x)
    loss_plain = plain_net.backward(rec_plain, yb, input_grad=False)
    a_fast, rec_fast = forward_for_training(fast_net, x)
    assert rec_fast[3].a is None  # the shortcut was taken at the second batch norm
    loss_fast = fast_net.backward(rec_fast, yb, input_grad=False)
    assert a_fast.tobytes() == a_plain.tobytes() and loss_fast == loss_plain
    assert rec_plain[3].z.dtype == np.float32
    for plain, fast in zip(rec_plain, rec_fast, strict=True):
        for key, g in plain.grads().items():
            assert fast.grads()[key].tobytes() == g.tobytes(), key


def _torch_model(net: Network):
    """The batch-norm network in PyTorch (float32), from `net`'s initial weights; the
    convolutions without bias (their bias is 0 and not trained), as torchvision's."""
    nn = torch.nn
    conv1, conv2, dense = net.layers[0], net.layers[2], net.layers[6]
    model = nn.Sequential(
        nn.Conv2d(1, 4, 5, padding=2, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 14 * 14, 10),
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(conv1.params["w"]))
        model[3].weight.copy_(torch.tensor(conv2.params["w"]))
        model[8].weight.copy_(torch.tensor(dense.params["w"]))
        model[8].bias.copy_(torch.tensor(dense.params["b"]))
    assert not conv1.params["b"].any() and not conv2.params["b"].any()
    return model


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_training_steps_match_torch(digits, ema, request):
    """Four Adam steps of batch 32 with --batch-norm equal PyTorch's from the same weights;
    the saved (folded) network equals torch's fused one. The final (with EMA: averaged)
    weights' running statistics are measured again (torch: reset_running_stats, momentum
    None, a pass over the same digits), then folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    x, y = digits
    seed, lr, batch = 3, 1e-3, 32
    # PyTorch with one thread: with two, its float32 sums are rounded in another order and four
    # Adam steps (which turn tiny gradients into full steps) drift to a median 1e-5 apart
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    net = Network.from_spec(SPEC, seed=seed)
    ours, history = train(
        net,
        x,
        y,
        epochs=1,
        batch_size=batch,
        lr=lr,
        schedule="constant",
        augmentation=False,
        ema=ema,
        batch_norm=True,
        seed=seed,
        progress=False,
    )
    model = _torch_model(add_batchnorm(net.astype(np.float32)))
    averaged = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order = np.random.default_rng(seed).permutation(len(x))  # train's shuffle
    losses = []
    model.train()
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            model(torch.tensor(x[idx])), torch.tensor(y[idx], dtype=torch.long)
        )
        loss.backward()
        opt.step()
        losses.append(loss.item())
        with torch.no_grad():
            for name, p in model.named_parameters():  # without EMA: the last step's weights
                averaged[name] = averaged[name] + (1 - ema) * (p - averaged[name]) if ema else p
    assert history[0]["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    # The final (averaged) weights' running statistics measured again, in float64: torch's
    # float32 batch norm on a channels-last tensor (what its CPU convolution returns here) sums
    # in float32, its variance off by ~3e-4 relative.
    model.double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(averaged[name])
        for bn in (model[1], model[4]):
            bn.reset_running_stats()
            bn.momentum = None
        calibration = x[recalibration_indices(len(x), seed)].astype(np.float64)
        for start in range(0, len(calibration), 500):
            model(torch.tensor(calibration[start : start + 500]))
    model.eval()
    fused = [fuse_conv_bn_eval(model[0], model[1]), fuse_conv_bn_eval(model[3], model[4])]
    assert [layer.type for layer in ours.layers] == [s["type"] for s in SPEC["layers"]]
    names = (("w", "weight"), ("b", "bias"))
    theirs_layers = [(0, fused[0]), (1, fused[1]), (4, model[8])]
    pairs = [(ours.params[i][k], getattr(t, n)) for i, t in theirs_layers for k, n in names]
    for mine, theirs in pairs:
        # float32 rounding differs; Adam's m / sqrt(v) amplifies it for a weight whose gradients
        # nearly cancel (up to ~2 % of one step of lr = 1e-3 seen), the bulk agrees closely
        diff = np.abs(mine - theirs.detach().numpy())
        assert diff.max() <= 3e-5 + 1e-4 * np.abs(mine).max(), diff.max()
        assert diff.size < 50 or np.median(diff) <= 5e-6, np.median(diff)  # weights
    with torch.no_grad():
        inputs = torch.tensor(x[:32]).to(model[0].weight.dtype)
        expected = torch.softmax(model(inputs), dim=1).numpy()
    np.testing.assert_allclose(ours.predict(x[:32]), expected, rtol=0, atol=1e-4)
    # the steps moved the weights well beyond those tolerances
    start = fold_batchnorm(add_batchnorm(net.astype(np.float32)))
    assert np.abs(start.params[0]["w"] - ours.params[0]["w"]).max() > 1e-3


def test_recompute_running_stats_leaves_momentum_and_mode_and_measures(digits):
    net = add_batchnorm(Network.from_spec(SPEC, seed=1).astype(np.float32))
    bn = net.layers[1]
    bn.running_mean[:] = 7.0
    recompute_running_stats(net, digits[0], batch_size=64)
    assert bn.momentum == 0.1 and bn.training and bn.num_batches_tracked == 2
    # two equal batches: the running mean is the mean of the first convolution's outputs
    z = net.layers[0].forward(digits[0])[0]
    np.testing.assert_allclose(bn.running_mean, z.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert net.layers[3].num_batches_tracked == 2


def test_recalibration_digits_are_fixed_and_at_most_ten_thousand():
    a, b = recalibration_indices(55_000, 0), recalibration_indices(55_000, 0)
    assert len(a) == 10_000 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    assert np.array_equal(recalibration_indices(300, 0), np.arange(300))


def test_without_batch_norm_training_is_unchanged(digits):
    """batch_norm=False is the default path bit for bit (the edit's bit-identity with the
    code before it was checked with benchmarks/check_bitexact.py)."""
    x, y = digits
    kw = dict(epochs=1, batch_size=32, lr=2e-3, seed=2, ema=0.9, progress=False)
    plain, h_plain = train(Network.from_spec(SPEC, seed=2), x, y, **kw)
    off, h_off = train(Network.from_spec(SPEC, seed=2), x, y, batch_norm=False, **kw)
    bn, _ = train(Network.from_spec(SPEC, seed=2), x, y, batch_norm=True, **kw)
    assert h_plain == h_off
    for p, q, r in zip(plain.params, off.params, bn.params, strict=True):
        for k in p:
            assert p[k].tobytes() == q[k].tobytes()
            assert p[k].dtype == r[k].dtype == np.float32
            assert not np.array_equal(p[k], r[k])


def test_cli_batch_norm_saves_a_plain_network_with_metadata(tmp_path):
    import argparse

    from cnncore import train as training

    parser = argparse.ArgumentParser()
    training.add_arguments(parser)
    out = tmp_path / "bn"
    args = parser.parse_args(
        ["--batch-norm", "--epochs", "1", "--limit", "64", "--no-test", "--out", str(out)]
    )
    assert training.main(args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"]["batch_norm"] is True
    loaded, _ = models.load_file(out)
    assert [layer.type for layer in loaded.layers] == [
        s["type"] for s in training.BUNDLED_SPEC["layers"]
    ]
    args = parser.parse_args(["--epochs", "1"])
    assert args.batch_norm is False


def test_batch_norm_with_fft_convolutions_matches_im2col(digits):
    """--batch-norm with --conv-algorithm fft (every stride-1 convolution by FFT, then its
    batch norm) trains the same network as with im2col, up to float32 rounding."""
    x, y = digits
    kw = dict(epochs=1, batch_size=32, lr=1e-3, schedule="constant", augmentation=False)
    kw.update(batch_norm=True, seed=6, progress=False)
    nets = {
        algorithm: train(Network.from_spec(SPEC, seed=6), x, y, conv_algorithm=algorithm, **kw)
        for algorithm in ("im2col", "fft")
    }
    (ref, h_ref), (fft, h_fft) = nets["im2col"], nets["fft"]
    assert h_fft[0]["loss"] == pytest.approx(h_ref[0]["loss"], rel=1e-5)
    for p, q in zip(ref.params, fft.params, strict=True):
        for k in p:
            diff = np.abs(p[k] - q[k])
            assert diff.max() <= 3e-5 + 1e-4 * np.abs(p[k]).max(), (k, diff.max())
    np.testing.assert_allclose(fft.predict(x[:32]), ref.predict(x[:32]), rtol=0, atol=1e-4)
