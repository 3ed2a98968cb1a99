"""Property tests over random valid specs: the engine's trace equals the naive loop oracle's for
every tensor, every shape follows H_out = floor((H + 2p - k) / s) + 1, and every gradient has the
shape of what it is the gradient of.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncore import naive
from cnncore.network import Network

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ACTS = ["identity", "relu", "sigmoid", "tanh"]


def _maybe_pair(draw, h, w):
    """An int when h == w and the coin says so, else [h, w]."""
    if h == w and draw(st.booleans()):
        return h
    return [h, w]


@st.composite
def spatial_layer(draw, shape):
    """One conv2d / maxpool2d / avgpool2d layer valid for `shape`, and its expected output shape."""
    c, h, w = shape
    kind = draw(st.sampled_from(["conv2d", "maxpool2d", "avgpool2d"]))
    layer: dict = {"type": kind}
    if kind == "conv2d":
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        kh, kw = draw(st.integers(1, min(4, h + 2 * ph))), draw(st.integers(1, min(4, w + 2 * pw)))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        c_out = draw(st.integers(1, 3))
        layer.update(out_channels=c_out, activation=draw(st.sampled_from(ACTS)))
        layer["kernel_size"] = _maybe_pair(draw, kh, kw)
        if draw(st.booleans()) or (sh, sw) != (1, 1):
            layer["stride"] = _maybe_pair(draw, sh, sw)
        if (ph, pw) == (0, 0) and draw(st.booleans()):
            layer["padding"] = "valid"
        elif (
            (sh, sw) == (1, 1)
            and kh % 2
            and kw % 2
            and (ph, pw) == ((kh - 1) // 2, (kw - 1) // 2)
            and draw(st.booleans())
        ):
            layer["padding"] = "same"
        elif (ph, pw) != (0, 0) or draw(st.booleans()):
            layer["padding"] = _maybe_pair(draw, ph, pw)
    else:
        c_out = c
        kh, kw = draw(st.integers(1, min(4, h))), draw(st.integers(1, min(4, w)))
        ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
        layer["kernel_size"] = _maybe_pair(draw, kh, kw)
        if draw(st.booleans()):  # explicit stride (possibly overlapping windows)
            sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            layer["stride"] = _maybe_pair(draw, sh, sw)
        else:  # the default: stride = kernel_size
            sh, sw = kh, kw
        if (ph, pw) != (0, 0):
            layer["padding"] = _maybe_pair(draw, ph, pw)
    out = [c_out, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1]
    return layer, out, {"kernel": (kh, kw), "stride": (sh, sw), "padding": (ph, pw)}


@st.composite
def network_specs(draw):
    """A valid spec, the output shape of each layer computed independently, and the geometry."""
    shape = [draw(st.integers(1, 3)), draw(st.integers(2, 9)), draw(st.integers(2, 9))]
    spec = {"input_shape": list(shape), "layers": []}
    shapes, geoms = [], []
    for _ in range(draw(st.integers(1, 3))):
        layer, shape, geom = draw(spatial_layer(shape))
        spec["layers"].append(layer)
        shapes.append(shape)
        geoms.append(geom)
    if draw(st.booleans()):
        spec["layers"].append({"type": "flatten"})
        shapes.append([int(np.prod(shape))])
        geoms.append(None)
        for _ in range(draw(st.integers(1, 2))):
            units = draw(st.integers(1, 4))
            spec["layers"].append(
                {"type": "dense", "units": units, "activation": draw(st.sampled_from(ACTS))}
            )
            shapes.append([units])
            geoms.append(None)
    last = spec["layers"][-1]
    if "activation" in last and draw(st.booleans()):
        last["activation"] = "softmax"
        spec["loss"] = draw(st.sampled_from(["cross_entropy", "mse"]))
    else:
        spec["loss"] = "mse"
    return spec, shapes, geoms


def _inputs(net, seed, n=None):
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.normal(0, 0.5, size=layer.params["b"].shape)
    shape = tuple(net.spec["input_shape"])
    x = rng.normal(size=shape if n is None else (n, *shape))
    out = tuple(net.spec["output_shape"])

    def one():
        if net.loss_name == "cross_entropy":
            k = int(rng.integers(np.prod(out)))
            if len(out) == 1:
                return k  # a class index
            return np.eye(int(np.prod(out)))[k].reshape(out)  # one-hot shaped like the output
        return rng.normal(size=out)

    return x, (one() if n is None else [one() for _ in range(n)])


def _assert_close(got, want, what):
    assert got is not None and want is not None, what
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=what)


@SETTINGS
@given(case=network_specs(), seed=st.integers(0, 2**16))
def test_engine_trace_equals_naive_oracle(case, seed):
    spec, _, _ = case
    net = Network.from_spec(spec, seed=seed)
    x, target = _inputs(net, seed)
    trace = net.trace(x, target).to_dict()
    oracle = naive.network_trace(net.spec, net.params, x, target)
    assert abs(trace["loss"] - oracle["loss"]) <= 1e-10 * max(1.0, abs(oracle["loss"]))
    _assert_close(trace["output"], oracle["output"], "output")
    _assert_close(trace["target"], oracle["target"], "target")
    for i, (mine, ref) in enumerate(zip(trace["layers"], oracle["layers"], strict=True)):
        where = f"layer {i} ({mine['type']})"
        for k, v in mine["forward"].items():
            _assert_close(v, ref[k], f"{where} {k}")
        for k, v in mine["backward"].items():
            if ref[k] is None:
                assert v is None, f"{where} {k} should be None"
            else:
                _assert_close(v, ref[k], f"{where} {k}")
        if mine["type"] == "maxpool2d":
            np.testing.assert_array_equal(mine["argmax"], ref["argmax"], err_msg=where)


@SETTINGS
@given(case=network_specs(), seed=st.integers(0, 2**16))
def test_batched_backward_equals_naive_mean_over_samples(case, seed):
    spec, _, _ = case
    net = Network.from_spec(spec, seed=seed)
    x, targets = _inputs(net, seed, n=2)
    _, records = net.forward(x)
    y = net.encode_target(np.array(targets), 2)
    loss = net.backward(records, y)
    oracle = naive.network_trace(net.spec, net.params, x, targets)
    assert abs(loss - oracle["loss"]) <= 1e-10 * max(1.0, abs(oracle["loss"]))
    for i, (rec, ref) in enumerate(zip(records, oracle["layers"], strict=True)):
        for k in ("a_prev", "z", "a", "dC_da", "dC_dz", "dC_da_prev", "dC_dw", "dC_db"):
            got = getattr(rec, k)
            if ref[k] is None:
                assert got is None, f"layer {i} {k}"
            else:
                _assert_close(got, ref[k], f"layer {i} {k}")
    # the training entry point (no input gradient) gives the same loss and parameter gradients
    loss2, grads = net.loss_and_grads(x, np.array(targets))
    assert loss2 == loss
    for i, (g, ref) in enumerate(zip(grads, oracle["layers"], strict=True)):
        assert set(g) == ({"w", "b"} if ref["dC_dw"] is not None else set()), i
        for k in g:
            _assert_close(g[k], ref[f"dC_d{k}"], f"layer {i} grads[{k!r}]")


@SETTINGS
@given(case=network_specs(), seed=st.integers(0, 2**16))
def test_shapes_follow_the_formula_and_gradients_match_their_variables(case, seed):
    spec, shapes, geoms = case
    net = Network.from_spec(spec, seed=seed)
    norm = net.spec
    prev = list(spec["input_shape"])
    for i, (layer, want, geom) in enumerate(zip(norm["layers"], shapes, geoms, strict=True)):
        assert layer["input_shape"] == prev, i
        assert layer["output_shape"] == want, i
        if geom is not None:  # the normalized sizes are the [h, w] the strategy chose
            assert tuple(layer["kernel_size"]) == geom["kernel"]
            assert tuple(layer["stride"]) == geom["stride"]
            assert tuple(layer["padding"]) == geom["padding"]
        prev = want
    assert norm["output_shape"] == shapes[-1]

    x, target = _inputs(net, seed)
    trace = net.trace(x, target)
    for i, (rec, layer, s) in enumerate(
        zip(trace.records, trace.layers, norm["layers"], strict=True)
    ):
        assert rec.a_prev.shape == (1, *s["input_shape"]), i
        assert rec.z.shape == rec.a.shape == (1, *s["output_shape"]), i
        assert rec.dC_da.shape == rec.a.shape, i
        assert rec.dC_dz.shape == rec.z.shape, i
        assert rec.dC_da_prev.shape == rec.a_prev.shape, i
        if layer.params:
            assert rec.dC_dw.shape == layer.params["w"].shape, i
            assert rec.dC_db.shape == layer.params["b"].shape, i
            assert np.all(np.isfinite(rec.dC_dw)) and np.all(np.isfinite(rec.dC_db)), i
        else:
            assert rec.dC_dw is None and rec.dC_db is None, i
        assert rec.dC_da_prev.dtype == np.float64
    assert trace.output.shape == tuple(norm["output_shape"])
