"""Residual and concat blocks: spec rules, and random block networks against PyTorch float64
autograd (every tensor, nested ones included), central finite differences and the naive loop
oracle."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from cnncore import functional as F  # noqa: N812
from cnncore import naive
from cnncore.blocks import BlockRecord, flatten_params
from cnncore.network import Network
from cnncore.spec import SpecError, normalize_spec
from tests.torch_oracle import torch_trace

ATOL = 1e-10
EPS = 1e-6
REL_TOL = 1e-7
KINK_MARGIN = 1e-3


def conv(c, k=3, s=1, p=None, act="identity"):
    return {
        "type": "conv2d",
        "out_channels": c,
        "kernel_size": k,
        "stride": s,
        "padding": (k // 2) if p is None else p,
        "activation": act,
    }


def residual(layers, act="relu", projection=None):
    return {"type": "residual", "layers": layers, "activation": act, "projection": projection}


def spec_of(*layers, shape=(2, 5, 5), loss="mse"):
    return {"input_shape": list(shape), "layers": list(layers), "loss": loss}


# --------------------------------------------------------------------------- spec rules


def test_residual_keeps_the_shape_and_counts_params():
    s = normalize_spec(spec_of(residual([conv(3, act="relu"), conv(2)])))
    block = s["layers"][0]
    assert block["output_shape"] == [2, 5, 5]
    assert block["param_count"] == (3 * 2 * 9 + 3) + (2 * 3 * 9 + 2)
    assert block["projection"] is None
    assert block["layers"][1]["input_shape"] == [3, 5, 5]
    assert normalize_spec(s) == s  # a normalized spec normalizes again


def test_projection_maps_the_input_with_a_stride_and_defaults_its_channels():
    s = normalize_spec(
        spec_of(residual([conv(4, s=2, act="relu"), conv(4)], projection={"stride": 2}))
    )
    proj = s["layers"][0]["projection"]
    assert proj["kernel_size"] == [1, 1] and proj["stride"] == [2, 2]
    assert proj["out_channels"] == 4 and proj["output_shape"] == [4, 3, 3]
    assert normalize_spec(s) == s


def _error(spec) -> SpecError:
    with pytest.raises(SpecError) as info:
        normalize_spec(spec)
    return info.value


BAD = [
    pytest.param(
        spec_of(residual([conv(4, s=2)])),
        ("layers", 0, "projection"),
        ["F maps the input 2×5×5 to 4×3×3", "projection", '"stride": 2', "out_channels 4"],
        id="missing-projection",
    ),
    pytest.param(
        spec_of(residual([conv(4, s=2)], projection={"stride": 1})),
        ("layers", 0, "projection"),
        ["projection", "4×5×5", "F gives 4×3×3", '"stride": 2'],
        id="projection-wrong-stride",
    ),
    pytest.param(
        spec_of(residual([conv(2, act="relu")])),
        ("layers", 0, "layers", 0, "activation"),
        ["layer 0 › layers[0] (conv2d)", "no activation", "g(F(x) + x)"],
        id="F-ends-with-activation",
    ),
    pytest.param(
        spec_of(residual([])),
        ("layers", 0, "layers"),
        ["non-empty list"],
        id="empty-F",
    ),
    pytest.param(
        spec_of(residual([conv(2, k=9, p=0)])),
        ("layers", 0, "layers", 0, "kernel_size"),
        ["layer 0 › layers[0] (conv2d)", "kernel_size 9", "larger than the padded input"],
        id="inner-layer-error-names-the-inner-layer",
    ),
    pytest.param(
        spec_of(residual([conv(2)], projection={"type": "maxpool2d", "kernel_size": 2})),
        ("layers", 0, "projection", "type"),
        ["projection", "conv2d"],
        id="projection-not-conv",
    ),
    pytest.param(
        spec_of(residual([conv(2)], act="softmax")),
        ("layers", 0, "activation"),
        ["softmax"],
        id="softmax-in-block",
    ),
    pytest.param(
        spec_of({"type": "concat", "branches": [[conv(1, k=1)], [conv(2, k=3, p=0)]]}),
        ("layers", 0, "branches", 1),
        ["branch 1 gives 2×3×3", "branch 0 gives 1×5×5", "same height and width"],
        id="concat-sizes-differ",
    ),
    pytest.param(
        spec_of({"type": "concat", "branches": []}),
        ("layers", 0, "branches"),
        ["non-empty list"],
        id="concat-no-branches",
    ),
    pytest.param(
        spec_of({"type": "concat", "branches": [[conv(1)], "conv"]}),
        ("layers", 0, "branches", 1),
        ["branches[1]", "non-empty list"],
        id="concat-branch-not-a-list",
    ),
    pytest.param(
        spec_of({"type": "concat", "branches": [[conv(1)], [{"type": "nope"}]]}),
        ("layers", 0, "branches", 1, 0, "type"),
        ["layer 0 › branches[1][0]", "unknown type 'nope'"],
        id="concat-unknown-inner-type",
    ),
    pytest.param(
        spec_of({"type": "residual", "layers": [conv(2)], "skip": True}),
        ("layers", 0, "skip"),
        ["unknown key", "activation", "layers", "projection"],
        id="unknown-block-key",
    ),
    pytest.param(
        spec_of(
            {
                "type": "concat",
                "branches": [[conv(1, k=1)], [residual([conv(3, s=2)])]],
            }
        ),
        ("layers", 0, "branches", 1, 0, "projection"),
        ["layer 0 › branches[1][0] (residual)", "F maps the input 2×5×5 to 3×3×3"],
        id="nested-block-error-names-the-path",
    ),
    pytest.param(
        spec_of({"type": "flatten"}, residual([{"type": "dense", "units": 3}])),
        ("layers", 1, "projection"),
        ["F maps the input 50 to 3", "keep the shape"],
        id="flat-residual-changes-shape",
    ),
]


@pytest.mark.parametrize("spec,loc,words", BAD)
def test_bad_block_specs_name_the_field(spec, loc, words):
    err = _error(spec)
    assert err.location == loc, str(err)
    for w in words:
        assert w in str(err), f"{w!r} not in {err}"


def test_nested_params_are_accepted_and_match_the_flat_names():
    spec = spec_of(
        residual([conv(2, act="relu"), conv(2)], projection={"kernel_size": 1}),
        {"type": "concat", "branches": [[conv(1, k=1)], [conv(1)]]},
    )
    net = Network.from_spec(spec, seed=1)
    flat = copy.deepcopy(net.params)
    nested = [
        {
            "layers": [{"w": flat[0]["layers.0.w"], "b": flat[0]["layers.0.b"]}, {
                "w": flat[0]["layers.1.w"], "b": flat[0]["layers.1.b"]}],
            "projection": {"w": flat[0]["projection.w"], "b": flat[0]["projection.b"]},
        },
        {"branches": [[{"w": flat[1]["branches.0.0.w"], "b": flat[1]["branches.0.0.b"]}], [
            {"w": flat[1]["branches.1.0.w"], "b": flat[1]["branches.1.0.b"]}]]},
    ]  # fmt: skip
    assert flatten_params(nested[0]).keys() == flat[0].keys()
    net2 = Network.from_spec(spec, params=nested)
    for a, b in zip(net.params, net2.params, strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(SpecError, match="layers.0.w"):
        Network.from_spec(spec, params=[{"layers.1.w": 0}, flat[1]])


# --------------------------------------------------------------------------- random networks

BRANCHES_S1 = [
    lambda c, a: [conv(c, k=1, act=a)],
    lambda c, a: [conv(c, k=3, act=a)],
    lambda c, a: [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1}],
    lambda c, a: [
        {"type": "avgpool2d", "kernel_size": 3, "stride": 1, "padding": 1},
        conv(c, k=1, act=a),
    ],
    lambda c, a: [conv(c, k=1, act=a), conv(c, k=3, act=a)],
]
BRANCHES_S2 = [
    lambda c, a: [conv(c, k=1, s=2, act=a)],
    lambda c, a: [conv(c, k=3, s=2, act=a)],
    lambda c, a: [{"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}],
]


def _residual_block(rng, c_in, act, depth):
    s = int(rng.choice([1, 2]))
    c_out = int(rng.choice([c_in, c_in + 1]))
    inner = [conv(int(rng.integers(1, 4)), s=s, act=act), conv(c_out, k=int(rng.choice([1, 3])))]
    if depth < 1 and rng.random() < 0.5:  # a nested block inside F
        inner.insert(1, _block(rng, inner[0]["out_channels"], act, depth + 1, stride_ok=False)[0])
        inner[-1]["padding"] = inner[-1]["kernel_size"] // 2
    proj = None
    if s != 1 or c_out != c_in or rng.random() < 0.3:
        proj = {"kernel_size": 1, "stride": s}
    return residual(inner, act=act, projection=proj), c_out


def _block(rng, c_in, act, depth=0, stride_ok=True):
    kind = rng.choice(["residual", "concat"])
    if kind == "residual" and stride_ok:
        return _residual_block(rng, c_in, act, depth)
    if kind == "residual":
        return residual([conv(c_in, act=act), conv(c_in)], act=act), c_in
    table = BRANCHES_S2 if stride_ok and rng.random() < 0.3 else BRANCHES_S1
    picks = rng.choice(len(table), size=int(rng.integers(2, 4)), replace=False)
    branches = [table[i](int(rng.integers(1, 3)), act) for i in picks]
    if depth < 1 and table is BRANCHES_S1 and rng.random() < 0.5:
        branches.append([residual([conv(c_in, act=act), conv(c_in)], act=act)])
    out_c = 0
    for br in branches:
        last = br[-1]
        out_c += last.get("out_channels", c_in) if last["type"] != "residual" else c_in
    return {"type": "concat", "branches": branches}, out_c


def random_block_spec(seed: int, act: str = "tanh", loss: str = "cross_entropy") -> dict:
    rng = np.random.default_rng(seed)
    c_in, h = int(rng.integers(1, 3)), int(rng.integers(5, 8))
    c = c_in
    layers = []
    if rng.random() < 0.5:
        layers.append(conv(2, act=act))
        c = 2
    for _ in range(int(rng.integers(1, 3))):
        block, c = _block(rng, c, act)
        layers.append(block)
    layers.append({"type": "flatten"})
    out_act = "softmax" if loss == "cross_entropy" else "identity"
    layers.append({"type": "dense", "units": 3, "activation": out_act})
    return {"input_shape": [c_in, h, h], "layers": layers, "loss": loss}


def _randomized(spec, seed):
    net = Network.from_spec(spec, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for layer in net.layers:  # non-zero biases, so db and the relu pattern are exercised
        layer.params = {
            k: (rng.normal(0, 0.3, size=v.shape) if k.endswith("b") else v)
            for k, v in layer.params.items()
        }
    x = rng.normal(size=spec["input_shape"])
    target = int(rng.integers(3)) if spec["loss"] == "cross_entropy" else rng.uniform(size=3)
    return net, x, target


def _flat(entry: dict) -> dict:
    extra = {"argmax": entry["argmax"]} if "argmax" in entry else {}
    return {**entry["forward"], **entry["backward"], **extra}


def _compare(mine: dict, theirs: dict, where: str, atol: float = ATOL) -> int:
    """Every tensor of an engine trace entry vs the oracle's, nested entries included."""
    got, n = _flat(mine), 0
    for key, want in theirs.items():
        what = f"{where} ({mine['type']}) {key}"
        if key == "layers":
            assert len(mine["layers"]) == len(want)
            for i, (m, t) in enumerate(zip(mine["layers"], want, strict=True)):
                n += _compare(m, t, f"{where}.layers[{i}]", atol)
        elif key == "projection":
            assert (mine["projection"] is None) == (want is None), what
            if want is not None:
                n += _compare(mine["projection"], want, f"{where}.projection", atol)
        elif key == "branches":
            for b, (mc, tc) in enumerate(zip(mine["branches"], want, strict=True)):
                for i, (m, t) in enumerate(zip(mc, tc, strict=True)):
                    n += _compare(m, t, f"{where}.branches[{b}][{i}]", atol)
        elif key in ("f", "skip", "dC_da_prev_path", "dC_da_prev_skip"):
            np.testing.assert_allclose(mine["split"][key], want, rtol=0, atol=atol, err_msg=what)
            n += 1
        elif key in ("split_dC_da", "split_dC_da_prev"):
            part = mine["split"][key.removeprefix("split_")]
            for g, w in zip(part, want, strict=True):
                np.testing.assert_allclose(g, w, rtol=0, atol=atol, err_msg=what)
                n += 1
        elif key in ("index", "type"):
            continue
        elif want is None:
            assert got[key] is None, what
        else:
            assert got[key].shape == want.shape, f"{what}: {got[key].shape} != {want.shape}"
            np.testing.assert_allclose(got[key], want, rtol=0, atol=atol, err_msg=what)
            n += 1
    return n


SEEDS = list(range(24))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_block_networks_match_torch_on_every_tensor(seed):
    pytest.importorskip("torch")
    act = ("tanh", "relu", "sigmoid")[seed % 3]
    loss = "cross_entropy" if seed % 4 else "mse"
    spec = random_block_spec(seed, act, loss)
    net, x, target = _randomized(spec, seed)
    trace = net.trace(x, target).to_dict()
    tloss, tlayers = torch_trace(net, x, trace["target"])
    assert trace["loss"] == pytest.approx(tloss, rel=1e-10, abs=1e-12)
    n = sum(
        _compare(m, t, f"layer {i}")
        for i, (m, t) in enumerate(zip(trace["layers"], tlayers, strict=True))
    )
    assert n >= 8 * len(spec["layers"])


@pytest.mark.parametrize("seed", SEEDS[:8])
def test_random_block_networks_match_the_naive_oracle(seed):
    spec = random_block_spec(seed, ("tanh", "relu")[seed % 2])
    net, x, target = _randomized(spec, seed)
    trace = net.trace(x, target).to_dict()
    ref = naive.network_trace(spec, net.params, x, target)
    assert trace["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    for i, (m, t) in enumerate(zip(trace["layers"], ref["layers"], strict=True)):
        _compare(m, t, f"layer {i}", atol=1e-11)


def test_naive_oracle_batches_blocks():
    spec = random_block_spec(3, "tanh")
    net, x, _ = _randomized(spec, 3)
    xs = np.stack([x, -x, 0.5 * x])
    loss, grads = net.loss_and_grads(xs, np.array([0, 1, 2]))
    ref = naive.network_trace(spec, net.params, xs, [0, 1, 2])
    assert loss == pytest.approx(ref["loss"], rel=1e-12)
    _, recs = net.forward(xs)

    def check(entry, g, prefix=""):
        for key in ("dC_dw", "dC_db"):
            if entry.get(key) is not None:
                np.testing.assert_allclose(g[prefix + key[-1]], entry[key], atol=1e-12)
        for i, sub in enumerate(entry.get("layers", [])):
            check(sub, g, f"{prefix}layers.{i}.")
        if entry.get("projection"):
            check(entry["projection"], g, f"{prefix}projection.")
        for b, chain in enumerate(entry.get("branches", [])):
            for i, sub in enumerate(chain):
                check(sub, g, f"{prefix}branches.{b}.{i}.")

    for entry, g in zip(ref["layers"], grads, strict=True):
        check(entry, g)


# --------------------------------------------------------------------------- finite differences


def _far_from_kinks(trace) -> bool:
    for rec in trace.walk_records():
        if isinstance(rec, BlockRecord):
            continue
        cache = rec.cache
        if isinstance(cache, F.MaxPoolCache):
            padded = F.pad_nchw(rec.a_prev, cache.padding, -np.inf)
            win = sliding_window_view(padded, cache.kernel, axis=(2, 3))
            win = win[:, :, :: cache.stride[0], :: cache.stride[1]]
            top2 = np.sort(win.reshape(*win.shape[:4], -1), axis=-1)[..., -2:]
            if np.any(top2[..., 1] - top2[..., 0] <= KINK_MARGIN):
                return False
    return True


def _cost(net, x, y) -> float:
    a, _ = net.forward(x[None])
    return -float(np.sum(y * np.log(a[0])))


def _numeric(f, arr):
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        plus = f()
        arr[idx] = old - EPS
        minus = f()
        arr[idx] = old
        grad[idx] = (plus - minus) / (2 * EPS)
    return grad


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(a) + np.abs(b))), 1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 5, 6, 7])
def test_random_block_networks_match_finite_differences(seed):
    spec = random_block_spec(seed, "tanh")
    for attempt in range(20):
        net, x, target = _randomized(spec, seed + 100 * attempt)
        trace = net.trace(x, target)
        if _far_from_kinks(trace):
            break
    else:  # pragma: no cover
        raise AssertionError("no kink-free point")
    y = trace.target
    checked = 0
    for layer, rec in zip(net.layers, trace.records, strict=True):
        grads = rec.grads()
        params = layer.params  # the same arrays the forward pass reads
        for k, analytic in grads.items():
            numeric = _numeric(lambda: _cost(net, x, y), params[k])
            assert _rel(analytic, numeric) < REL_TOL, f"{layer.type} {k}"
            checked += 1
    xw = x.copy()
    assert _rel(trace.records[0].dC_da_prev[0], _numeric(lambda: _cost(net, xw, y), xw)) < REL_TOL
    assert checked >= 2


def test_residual_trace_shows_the_split_and_the_sum():
    spec = spec_of(residual([conv(3, act="relu"), conv(2)], projection={"kernel_size": 1}))
    net, x, _ = _randomized(spec, 4)
    entry = net.trace(x, np.ones((2, 5, 5))).to_dict()["layers"][0]
    fw, bw, sp = entry["forward"], entry["backward"], entry["split"]
    assert np.array_equal(fw["z"], sp["f"] + sp["skip"])
    assert np.array_equal(bw["dC_da_prev"], sp["dC_da_prev_path"] + sp["dC_da_prev_skip"])
    assert np.array_equal(sp["dC_da_prev_path"], entry["layers"][0]["backward"]["dC_da_prev"])
    assert np.array_equal(sp["dC_da_prev_skip"], entry["projection"]["backward"]["dC_da_prev"])
    assert np.array_equal(sp["f"], entry["layers"][1]["forward"]["a"])
    assert entry["layers"][1]["path"] == [0, "layers", 1]
    assert entry["projection"]["path"] == [0, "projection"]
    assert entry["params"] == {}  # the inner entries carry them; the network's are flat:
    assert set(net.params[0]) == {
        "layers.0.w", "layers.0.b", "layers.1.w", "layers.1.b", "projection.w", "projection.b"
    }  # fmt: skip


def test_concat_trace_slices_the_gradient_per_branch():
    spec = spec_of({"type": "concat", "branches": [[conv(1, k=1)], [conv(2, k=3)]]})
    net, x, _ = _randomized(spec, 5)
    entry = net.trace(x, np.ones((3, 5, 5))).to_dict()["layers"][0]
    assert entry["channels"] == [[0, 1], [1, 3]]
    d = entry["backward"]["dC_da"]
    assert np.array_equal(entry["split"]["dC_da"][0], d[0:1])
    assert np.array_equal(entry["split"]["dC_da"][1], d[1:3])
    assert np.array_equal(entry["branches"][1][0]["backward"]["dC_da"], d[1:3])
    b = entry["split"]["dC_da_prev"]
    assert np.array_equal(entry["backward"]["dC_da_prev"], b[0] + b[1])
    assert entry["branches"][1][0]["path"] == [0, "branches", 1, 0]
