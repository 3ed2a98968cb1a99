"""Training: a short run on real digits lowers the loss, is reproducible, saves without pickle."""

import numpy as np
import pytest

from cnncore import Network, data, models
from cnncore.train import augment, train

SMALL_SPEC = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 5, "stride": 2, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


@pytest.fixture(scope="module")
def subset():
    split = data.load_split()
    return split.x_train[:640], split.y_train[:640]


def _run(x, y, seed):
    net = Network.from_spec(SMALL_SPEC, seed=seed)
    return train(net, x, y, epochs=3, batch_size=32, lr=3e-3, seed=seed, progress=False)


def test_short_training_lowers_loss_and_is_reproducible(subset):
    x, y = subset
    net0 = Network.from_spec(SMALL_SPEC, seed=7).astype(np.float32)
    loss_before, _ = net0.loss_and_grads(x, y)
    model_a, hist_a = _run(x, y, seed=7)
    model_b, hist_b = _run(x, y, seed=7)
    loss_after, _ = model_a.loss_and_grads(x, y)
    # 3 short epochs: the loss on these digits falls by a third (2.38 -> 1.55 when written).
    assert loss_after < 0.8 * loss_before, (loss_before, loss_after)
    assert hist_a[-1]["loss"] < hist_a[0]["loss"]
    assert hist_a == hist_b
    for pa, pb in zip(model_a.params, model_b.params, strict=True):
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])


def test_sgd_with_momentum_and_step_schedule_also_learn(subset):
    x, y = subset
    net = Network.from_spec(SMALL_SPEC, seed=1)
    _, hist = train(
        net,
        x,
        y,
        epochs=3,
        batch_size=32,
        optimizer="sgd",
        lr=0.05,
        schedule="step",
        seed=1,
        progress=False,
    )
    assert hist[-1]["loss"] < hist[0]["loss"]
    # step: x0.1 from epoch 3 // 2 = 1 and again from 3 * 3 // 4 = 2
    assert [round(h["lr"], 6) for h in hist] == [0.05, 0.005, 0.0005]


def test_saved_model_loads_without_pickle(subset, tmp_path):
    x, y = subset
    model, _ = _run(x[:64], y[:64], seed=3)
    spec_path, weights_path = models.save(model, tmp_path / "tiny", {"test_accuracy": 0.5})
    with np.load(weights_path, allow_pickle=False) as z:
        assert all(z[k].dtype == np.float32 for k in z.files)
    loaded, meta = models.load_file(tmp_path / "tiny")
    assert meta == {"test_accuracy": 0.5}
    np.testing.assert_allclose(
        loaded.predict(x[:8].astype(np.float64)), model.predict(x[:8]), rtol=1e-4, atol=1e-6
    )


def test_augment_keeps_shape_ink_and_varies(subset):
    x, _ = subset
    rng = np.random.default_rng(0)
    out = augment(x[:16], rng)
    assert out.shape == x[:16].shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    # Each digit keeps most of its ink but moves: no copy, no blank.
    ink_ratio = out.sum(axis=(1, 2, 3)) / x[:16].sum(axis=(1, 2, 3))
    assert np.all((ink_ratio > 0.7) & (ink_ratio < 1.3))
    assert not np.allclose(out, x[:16])


def test_dropout_matches_torch_in_train_mode_and_leaves_no_layer_behind(subset):
    """Dropout (training only): the kept inputs scaled by 1/(1-p), the gradient through the
    same mask, as torch.nn.functional.dropout with that mask; the trained network has the
    spec's layers only, and p = 0 trains bit for bit as without dropout."""
    import torch

    from cnncore.train import Dropout, add_dropout

    layer = Dropout(0.25, np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(8, 50))
    a, rec = layer.forward(x)
    mask = rec.cache
    kept = mask != 0
    assert 0.6 < kept.mean() < 0.9  # about 3 in 4 kept
    np.testing.assert_array_equal(mask[kept], 1 / 0.75)
    xt = torch.tensor(x, requires_grad=True)
    out = xt * torch.tensor(mask)  # what F.dropout computes for this mask
    g = np.random.default_rng(2).normal(size=x.shape)
    out.backward(torch.tensor(g))
    np.testing.assert_array_equal(a, out.detach().numpy())
    assert np.array_equal(layer.backward(rec, g), xt.grad.numpy())

    net = add_dropout(Network.from_spec(SMALL_SPEC, seed=3), 0.5, np.random.default_rng(0))
    assert [type(v).__name__ for v in net.layers][-2:] == ["Dropout", "Dense"]
    x_s, y_s = subset
    x_s, y_s = x_s[:128], y_s[:128]
    kw = dict(epochs=1, batch_size=32, lr=3e-3, seed=5, progress=False, ema=0.9)
    dropped, _ = train(Network.from_spec(SMALL_SPEC, seed=5), x_s, y_s, dropout=0.5, **kw)
    assert [v.type for v in dropped.layers] == [v["type"] for v in SMALL_SPEC["layers"]]
    plain, _ = train(Network.from_spec(SMALL_SPEC, seed=5), x_s, y_s, **kw)
    zero, _ = train(Network.from_spec(SMALL_SPEC, seed=5), x_s, y_s, dropout=0.0, **kw)
    for p, q, r in zip(plain.params, zero.params, dropped.params, strict=True):
        for k in p:
            np.testing.assert_array_equal(p[k], q[k])
            assert not np.array_equal(p[k], r[k]) or k == "b"  # dropout changed the training


@pytest.mark.parametrize("which", ["digits", "lenet", "overlapping"])
def test_forward_for_training_gives_the_same_gradients_bit_for_bit(subset, which):
    # The training forward skips the relu before a max-pool (relu(max z) = max relu(z)); the
    # gradients must equal those of the plain forward + training backward exactly, also in
    # windows whose maximum is negative or zero (ties at 0 after relu).
    from cnncore.train import DIGITS_SPEC, LENET_SPEC, forward_for_training

    spec = {"digits": DIGITS_SPEC, "lenet": LENET_SPEC}.get(which)
    if spec is None:  # overlapping pool windows with padding: the general pool path
        spec = {
            **SMALL_SPEC,
            "layers": [
                {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "activation": "relu"},
                {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
                {"type": "flatten"},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
        }
    x, y = subset[0][:32], subset[1][:32]
    model = Network.from_spec(spec, seed=3).astype(np.float32)
    for layer in model.layers:  # negative biases: many windows with a maximum <= 0
        if "b" in layer.params:
            layer.params["b"] -= np.float32(0.2)
    yb = model.encode_target(y, len(y), dtype=np.float32)
    a_plain, rec_plain = model.forward(x)
    loss_plain = model.backward(rec_plain, yb, input_grad=False)
    a_fast, rec_fast = forward_for_training(model, x)
    loss_fast = model.backward(rec_fast, yb, input_grad=False)
    assert a_fast.tobytes() == a_plain.tobytes() and loss_fast == loss_plain
    pooled = [
        r.a for r, layer in zip(rec_fast, model.layers, strict=True) if layer.type == "maxpool2d"
    ]
    assert any((p <= 0).any() for p in pooled)
    for plain, fast in zip(rec_plain, rec_fast, strict=True):
        for key, g in plain.grads().items():
            assert fast.grads()[key].tobytes() == g.tobytes(), key
