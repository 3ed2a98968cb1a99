"""The named scenarios: every number a learner is told to look at, checked three ways.

1. Published numbers, where the articles publish them (scenario 7's correlate/convolve
   identities, the 0/30 columns of the classic 6×6 vertical-edge example).
2. By hand: literal arrays whose arithmetic is written out in the comments, and independent
   re-computations with SciPy's correlate2d/convolve2d or plain loops (never the engine).
3. Against PyTorch autograd in float64: every layer's z, a, dC/da, dC/dz, dC/dw, dC/db and
   dC/da_prev, and the loss.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy.signal import convolve2d, correlate2d

from cnncore import Network
from cnncore.scenarios import ITEMS, SCENARIOS, Scenario, get
from tests.cnncore.test_blocks import _compare
from tests.torch_oracle import torch_trace

TOL = {"rtol": 1e-10, "atol": 1e-10}


def layers(s: Scenario) -> list[dict]:
    return s.trace().to_dict()["layers"]


def arr(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


# --------------------------------------------------------------------------- independent oracles


def dilate(d: np.ndarray, stride) -> np.ndarray:
    """Insert stride−1 zeros between the cells of a 2-D array."""
    sh, sw = stride
    out = np.zeros(((d.shape[0] - 1) * sh + 1, (d.shape[1] - 1) * sw + 1))
    out[::sh, ::sw] = d
    return out


def scipy_conv(x, w, b, delta, stride, pad):
    """One conv layer, channel by channel with SciPy: z, dC/dw, dC/db, dC/da_prev.

    z      = Σ_c correlate2d(x_pad[c], w[f, c], "valid") sampled every `stride` cells, + b
    dC/dw  = correlate2d(x_pad[c], dilate(δ[f]), "valid"), first kH×kW offsets
    dC/da_prev = Σ_f convolve2d(dilate(δ[f]), w[f, c], "full"), zero-extended to the padded
                 size (rows no window reached), then cropped by the padding
    """
    x, w, b, delta = arr(x), arr(w), arr(b), arr(delta)
    c_out, c_in, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, pad
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    z = np.stack(
        [
            sum(correlate2d(xp[c], w[f, c], "valid") for c in range(c_in))[::sh, ::sw] + b[f]
            for f in range(c_out)
        ]
    )
    dd = [dilate(delta[f], stride) for f in range(c_out)]
    dw = np.array(
        [[correlate2d(xp[c], dd[f], "valid")[:kh, :kw] for c in range(c_in)] for f in range(c_out)]
    )
    db = delta.sum(axis=(1, 2))
    dxp = np.zeros_like(xp)
    for c in range(c_in):
        full = sum(convolve2d(dd[f], w[f, c], "full") for f in range(c_out))
        dxp[c, : full.shape[0], : full.shape[1]] = full
    dx = dxp[:, ph : xp.shape[1] - ph, pw : xp.shape[2] - pw]
    return z, dw, db, dx


def loop_maxpool(x, k, s, delta):
    """Max-pool forward and backward with explicit loops; ties go to the first max in reading
    order (strict '>' while scanning the window row by row)."""
    x, delta = arr(x), arr(delta)
    c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((c, ho, wo))
    arg = np.zeros((c, ho, wo, 2), dtype=int)
    dx = np.zeros_like(x)
    for ch in range(c):
        for i in range(ho):
            for j in range(wo):
                best, where = -math.inf, None
                for u in range(k):
                    for v in range(k):
                        if x[ch, i * s + u, j * s + v] > best:
                            best, where = x[ch, i * s + u, j * s + v], (i * s + u, j * s + v)
                out[ch, i, j] = best
                arg[ch, i, j] = where
                dx[ch, where[0], where[1]] += delta[ch, i, j]
    return out, arg, dx


def loop_avgpool(x, k, s, delta):
    x, delta = arr(x), arr(delta)
    c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((c, ho, wo))
    dx = np.zeros_like(x)
    for ch in range(c):
        for i in range(ho):
            for j in range(wo):
                out[ch, i, j] = x[ch, i * s : i * s + k, j * s : j * s + k].sum() / (k * k)
                dx[ch, i * s : i * s + k, j * s : j * s + k] += delta[ch, i, j] / (k * k)
    return out, dx


# --------------------------------------------------------------------------- PyTorch oracle


def torch_run(s: Scenario) -> dict:
    """The scenario's network rebuilt in PyTorch (float64), backpropagating the same loss."""
    net = s.network()
    y = net.encode_target([s.target] if np.ndim(s.target) == 0 else s.target, 1)[0]
    loss, layers = torch_trace(net, arr(s.input), y)
    return {"layers": layers, "loss": loss}


@pytest.mark.parametrize("sid", list(SCENARIOS))
def test_every_gradient_matches_pytorch(sid):
    s = get(sid)
    trace = s.trace()
    ours = trace.to_dict()["layers"]
    ref = torch_run(s)
    assert trace.loss == pytest.approx(ref["loss"], rel=1e-12, abs=1e-12)
    assert len(ours) == len(ref["layers"])
    for i, (mine, theirs) in enumerate(zip(ours, ref["layers"], strict=True)):
        got = {**mine["forward"], **mine["backward"]}
        if mine["type"] in ("residual", "concat"):  # every nested tensor, in test_blocks
            assert _compare(mine, theirs, f"{sid} {i}") > 5
            continue
        for key in ("z", "a", "dC_da", "dC_dz", "dC_da_prev", "dC_dw", "dC_db"):
            if theirs[key] is None:
                assert got[key] is None, (sid, i, key)
                continue
            np.testing.assert_allclose(got[key], theirs[key], **TOL, err_msg=f"{sid} {i} {key}")


def test_the_pytorch_oracle_can_fail():
    """A wrong gradient must not pass: perturb one trace value and compare again."""
    s = get("conv-dense")
    ours = layers(s)[0]["backward"]["dC_dw"].copy()
    ours[0, 0, 0, 0] += 1e-6
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ours, torch_run(s)["layers"][0]["dC_dw"], **TOL)


# --------------------------------------------------------------------------- the registry


def test_registry_order_ids_and_items():
    assert list(SCENARIOS) == [
        "conv-dense",
        "two-conv",
        "maxpool-middle",
        "stride2-padding-rgb",
        "edge-filters",
        "conv-valid",
        "conv-same",
        "conv-stride2",
        "correlate-convolve",
        "overlapping-maxpool",
        "avgpool",
        "residual-block",
        "inception-branches",
    ]
    assert all(k == s.id for k, s in SCENARIOS.items())
    assert list(ITEMS) == list(SCENARIOS)
    items = list(ITEMS.values())
    assert items == sorted(items), "SCENARIOS must follow the order of the issue's list"
    assert set(items) == set(range(1, 12)), "every worked example 1..9 (+ the blocks) covered"
    for sid in SCENARIOS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", sid)


def test_get_unknown_id_lists_the_known_ones():
    assert get("avgpool") is SCENARIOS["avgpool"]
    with pytest.raises(KeyError) as exc:
        get("no-such-scenario")
    for sid in SCENARIOS:
        assert sid in str(exc.value)


@pytest.mark.parametrize("sid", list(SCENARIOS))
def test_titles_and_notes_in_both_languages(sid):
    s = get(sid)
    for field in (s.title, s.note):
        assert set(field) == {"en", "zh"}
        assert field["en"].strip() and field["zh"].strip()
        assert re.search(r"[\u4e00-\u9fff]", field["zh"]), "zh must be Chinese"
        assert not re.search(r"[\u4e00-\u9fff]", field["en"])
    en_sentences = re.findall(r"[.!?](?:\s|$)", s.note["en"].strip())
    zh_sentences = re.findall(r"[。！？]", s.note["zh"])
    assert 2 <= len(en_sentences) <= 5, s.note["en"]
    assert 2 <= len(zh_sentences) <= 5, s.note["zh"]


@pytest.mark.parametrize("sid", list(SCENARIOS))
def test_to_dict_is_json_and_rebuilds_the_same_trace(sid):
    s = get(sid)
    d = s.to_dict()
    assert list(d) == ["id", "title", "note", "spec", "params", "input", "target"]
    d2 = json.loads(json.dumps(d, ensure_ascii=False))
    assert d2 == d
    net = Network.from_spec(d2["spec"], params=d2["params"])
    t1, t2 = s.trace(), net.trace(arr(d2["input"]), d2["target"])
    assert t1.loss == t2.loss
    for l1, l2 in zip(t1.to_dict()["layers"], t2.to_dict()["layers"], strict=True):
        for part in ("forward", "backward"):
            for k, v in l1[part].items():
                if v is not None:
                    np.testing.assert_array_equal(v, l2[part][k])
    # A copy, never the scenario's own data.
    d["params"].append("junk")
    d["spec"]["layers"].clear()
    assert s.to_dict() != d
    assert len(s.network().layers) == len(s.spec["layers"])


@pytest.mark.parametrize("sid", list(SCENARIOS))
def test_numbers_are_readable_by_hand(sid):
    """Integers or one decimal (halves included) in inputs, parameters and targets."""
    s = get(sid)
    values = np.concatenate(
        [arr(s.input).ravel(), np.atleast_1d(arr(s.target)).ravel()]
        + [arr(v).ravel() for p in s.params for v in p.values()]
    )
    assert np.allclose(values * 10, np.round(values * 10))
    assert np.abs(values).max() <= 100


@pytest.mark.parametrize("sid", list(SCENARIOS))
def test_output_shape_matches_target_and_trace_is_float64(sid):
    s = get(sid)
    net = s.network()
    trace = s.trace()
    if net.loss_name == "mse":
        assert list(arr(s.target).shape) == net.spec["output_shape"]
    for layer in trace.to_dict()["layers"]:
        assert layer["forward"]["a"].dtype == np.float64


# --------------------------------------------------------------------------- 1. conv-dense


def test_conv_dense_by_hand():
    L = layers(get("conv-dense"))
    conv, dense = L[0], L[2]
    # x = [[1,2,0],[3,1,2],[0,1,3]], w = [[1,-1],[2,0]], b = 1
    # z00 = 1·1 + 2·(−1) + 3·2 + 1·0 + 1 = 6      z01 = 2·1 + 0·(−1) + 1·2 + 2·0 + 1 = 5
    # z10 = 3·1 + 1·(−1) + 0·2 + 1·0 + 1 = 3      z11 = 1·1 + 2·(−1) + 1·2 + 3·0 + 1 = 2
    np.testing.assert_array_equal(conv["forward"]["z"], [[[6, 5], [3, 2]]])
    # dense: 1·6 − 1·5 + 1·3 + 2·2 − 1 = 7; target 5; C = ½·(7 − 5)² = 2; δ = 2
    np.testing.assert_array_equal(dense["forward"]["a"], [7])
    assert get("conv-dense").trace().loss == 2
    np.testing.assert_array_equal(dense["backward"]["dC_dz"], [2])
    np.testing.assert_array_equal(dense["backward"]["dC_dw"], [[12, 10, 6, 4]])  # 2·[6,5,3,2]
    np.testing.assert_array_equal(dense["backward"]["dC_db"], [2])
    # conv δ = 2·[1, −1, 1, 2]
    np.testing.assert_array_equal(conv["backward"]["dC_dz"], [[[2, -2], [2, 4]]])
    # dC/db = 2 − 2 + 2 + 4 = 6 (a sum, not an average)
    np.testing.assert_array_equal(conv["backward"]["dC_db"], [6])
    # dw00 = 1·2 + 2·(−2) + 3·2 + 1·4 = 8     dw01 = 2·2 + 0·(−2) + 1·2 + 2·4 = 14
    # dw10 = 3·2 + 1·(−2) + 0·2 + 1·4 = 8     dw11 = 1·2 + 2·(−2) + 1·2 + 3·4 = 12
    np.testing.assert_array_equal(conv["backward"]["dC_dw"], [[[[8, 14], [8, 12]]]])
    # each input cell gets w·δ from each window covering it, e.g. the centre:
    # δ00·w11 + δ01·w10 + δ10·w01 + δ11·w00 = 2·0 − 2·2 + 2·(−1) + 4·1 = −2
    np.testing.assert_array_equal(
        conv["backward"]["dC_da_prev"], [[[2, -4, 2], [6, -2, -4], [4, 8, 0]]]
    )


# --------------------------------------------------------------------------- 2. two-conv


def test_two_conv_by_hand():
    L = layers(get("two-conv"))
    c1, c2, dense = L[0], L[1], L[3]
    # z1[i,j] = x[i,j] − x[i,j+1] + x[i+1,j+1] − 1   (w1 = [[1,−1],[0,1]], b1 = −1)
    z1 = [[1, -3, 3], [3, 1, -3], [-2, 3, -1]]
    np.testing.assert_array_equal(c1["forward"]["z"], [z1])
    np.testing.assert_array_equal(c1["forward"]["a"], [[[1, 0, 3], [3, 1, 0], [0, 3, 0]]])
    # z2[i,j] = a[i,j] − a[i+1,j] + 2·a[i+1,j+1]   (w2 = [[1,0],[−1,2]])
    np.testing.assert_array_equal(c2["forward"]["z"], [[[0, -1], [9, -2]]])
    # dense: 0 − (−1) + 2·9 + (−2) = 17; target 16; δ = 1
    np.testing.assert_array_equal(dense["forward"]["a"], [17])
    np.testing.assert_array_equal(dense["backward"]["dC_dw"], [[0, -1, 9, -2]])
    np.testing.assert_array_equal(c2["backward"]["dC_dz"], [[[1, -1], [2, 1]]])
    np.testing.assert_array_equal(c2["backward"]["dC_db"], [3])
    # dw2_00 = 1·1 + 0·(−1) + 3·2 + 1·1 = 8, dw2_01 = 0 − 3 + 2 + 0 = −1,
    # dw2_10 = 3 − 1 + 0 + 3 = 5, dw2_11 = 1 − 0 + 6 + 0 = 7
    np.testing.assert_array_equal(c2["backward"]["dC_dw"], [[[[8, -1], [5, 7]]]])
    # full convolution of δ2 with w2, e.g. centre: 1·2 + (−1)·(−1) + 2·0 + 1·1 = 4
    da1 = [[1, -1, 0], [1, 4, -2], [-2, 3, 2]]
    np.testing.assert_array_equal(c2["backward"]["dC_da_prev"], [da1])
    np.testing.assert_array_equal(c1["backward"]["dC_da"], [da1])
    # ReLU gate: closed where z1 <= 0, even where dC/da is not 0 (−1, −2, −2)
    d1 = c1["backward"]["dC_dz"][0]
    np.testing.assert_array_equal(d1, [[1, 0, 0], [1, 4, 0], [0, 3, 0]])
    closed = arr(z1) <= 0
    assert np.all(d1[closed] == 0) and np.all(arr(da1)[closed] != 0)
    np.testing.assert_array_equal(c1["backward"]["dC_db"], [9])
    # dw1_00 = x00·1 + x10·1 + x11·4 + x21·3 = 1 + 2 + 4 + 9 = 16, and so on
    np.testing.assert_array_equal(c1["backward"]["dC_dw"], [[[[16, 4], [20, 14]]]])
    np.testing.assert_array_equal(
        c1["backward"]["dC_da_prev"], [[[1, -1, 0, 0], [1, 4, -4, 0], [0, 4, 1, 0], [0, 0, 3, 0]]]
    )


# --------------------------------------------------------------------------- 3. maxpool-middle


def test_maxpool_middle_by_hand():
    s = get("maxpool-middle")
    L = layers(s)
    conv, pool, dense = L[0], L[1], L[3]
    # z[i,j] = x[i,j] − x[i,j+1] + x[i+1,j]   (w = [[1,−1],[1,0]], b = 0)
    z = [[3, -1, -1, 3], [1, 4, 0, 1], [-2, 3, 1, 2], [2, -1, 3, -2]]
    np.testing.assert_array_equal(conv["forward"]["z"], [z])
    a = np.maximum(arr(z), 0)
    np.testing.assert_array_equal(pool["forward"]["a"], [[[4, 3], [3, 3]]])
    np.testing.assert_array_equal(pool["argmax"], [[[[1, 1], [0, 3]], [[2, 1], [3, 2]]]])
    # dense: z0 = 4 − 3 = 1, z1 = 3 + 3 − 5 = 1 → softmax (0.5, 0.5); class 0 → a − y
    np.testing.assert_allclose(dense["forward"]["a"], [0.5, 0.5], **TOL)
    assert s.trace().loss == pytest.approx(math.log(2), rel=1e-12)
    np.testing.assert_allclose(dense["backward"]["dC_dz"], [-0.5, 0.5], **TOL)
    np.testing.assert_allclose(
        dense["backward"]["dC_dw"], [[-2, -1.5, -1.5, -1.5], [2, 1.5, 1.5, 1.5]], **TOL
    )
    # back through the dense weights: −0.5·[1,0,−1,0] + 0.5·[0,1,0,1]
    np.testing.assert_allclose(pool["backward"]["dC_dz"], [[[-0.5, 0.5], [0.5, 0.5]]], **TOL)
    # only the four argmax cells get gradient; the other twelve are exactly 0
    dpool = pool["backward"]["dC_da_prev"][0]
    expected = np.zeros((4, 4))
    expected[1, 1], expected[0, 3], expected[2, 1], expected[3, 2] = -0.5, 0.5, 0.5, 0.5
    np.testing.assert_array_equal(dpool, expected)
    mask = expected != 0
    assert np.all(dpool[~mask] == 0.0) and mask.sum() == 4
    _, arg, dx_loop = loop_maxpool([a], 2, 2, pool["backward"]["dC_dz"])
    np.testing.assert_array_equal(pool["argmax"], arg)
    np.testing.assert_array_equal(dpool, dx_loop[0])
    # the filter learns only from the four winners: dw00 = −0.5·1 + 0.5·3 + 0.5·3 + 0.5·2
    np.testing.assert_allclose(conv["backward"]["dC_dw"], [[[[3.5, 1], [0, 2]]]], **TOL)
    np.testing.assert_allclose(conv["backward"]["dC_db"], [1], **TOL)
    _, dw, db, dx = scipy_conv(
        s.input, s.params[0]["w"], s.params[0]["b"], conv["backward"]["dC_dz"], (1, 1), (0, 0)
    )
    np.testing.assert_allclose(conv["backward"]["dC_dw"], dw, **TOL)
    np.testing.assert_allclose(conv["backward"]["dC_da_prev"], dx, **TOL)


# --------------------------------------------------------------------------- 4. CS231n demo


def test_stride2_padding_rgb_by_hand():
    s = get("stride2-padding-rgb")
    (conv,) = layers(s)
    x, w, b = arr(s.input), arr(s.params[0]["w"]), arr(s.params[0]["b"])
    assert x.shape == (3, 5, 5) and w.shape == (2, 3, 3, 3) and list(b) == [1, 0]
    assert set(np.unique(x)) <= {0, 1, 2} and set(np.unique(w)) <= {-1, 0, 1}  # as the demo
    # forward with an explicit 27-term sum per output cell, as the demo computes it
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    z = np.zeros((2, 3, 3))
    for f in range(2):
        for i in range(3):
            for j in range(3):
                z[f, i, j] = np.sum(xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * w[f]) + b[f]
    assert conv["forward"]["z"].shape == (2, 3, 3)
    np.testing.assert_array_equal(conv["forward"]["z"], z)
    np.testing.assert_array_equal(
        z, [[[1, 2, 9], [8, 12, 12], [7, 8, 11]], [[2, 0, 2], [4, -3, -2], [-2, -3, -5]]]
    )
    # the target makes δ a small pattern of ±1 and 0
    delta = [[[1, 0, -1], [0, 1, 0], [-1, 0, 1]], [[0, 1, 0], [1, 0, -1], [0, -1, 0]]]
    np.testing.assert_array_equal(conv["backward"]["dC_dz"], delta)
    np.testing.assert_array_equal(conv["backward"]["dC_db"], [1, 0])
    # backward by explicit loops: each δ cell stamps δ·w onto the padded input, and
    # dC/dw collects δ·(the window it saw)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for f in range(2):
        for i in range(3):
            for j in range(3):
                d = delta[f][i][j]
                dxp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] += d * w[f]
                dw[f] += d * xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
    np.testing.assert_array_equal(conv["backward"]["dC_dw"], dw)
    np.testing.assert_array_equal(conv["backward"]["dC_da_prev"], dxp[:, 1:-1, 1:-1])
    # and the same through dilation + full convolution + crop (SciPy)
    _, dw2, db2, dx2 = scipy_conv(x, w, b, delta, (2, 2), (1, 1))
    np.testing.assert_array_equal(conv["backward"]["dC_dw"], dw2)
    np.testing.assert_array_equal(conv["backward"]["dC_da_prev"], dx2)
    # the gradient on the padding ring exists but is cropped away (it is not an input)
    assert np.any(dxp[:, 0, :] != 0) or np.any(dxp[:, :, 0] != 0)


# --------------------------------------------------------------------------- 5. edge filters


def test_edge_filters_published_and_by_hand():
    s = get("edge-filters")
    (conv,) = layers(s)
    # The classic example: 10s on the left half, 0s on the right, filter [1, 0, −1] per row
    # gives 0, 30, 30, 0 in every row of the 4×4 output.
    np.testing.assert_array_equal(conv["forward"]["z"][0], [[0, 30, 30, 0]] * 4)
    # the horizontal-edge filter sees no change from top to bottom
    np.testing.assert_array_equal(conv["forward"]["z"][1], np.zeros((4, 4)))
    x = arr(s.input)[0]
    w = arr(s.params[0]["w"])
    for f in range(2):
        np.testing.assert_array_equal(conv["forward"]["z"][f], correlate2d(x, w[f, 0], "valid"))
    # target 20 on the edge: δ = 10 there, 0 elsewhere; the horizontal filter's δ is 0
    np.testing.assert_array_equal(conv["backward"]["dC_dz"][0], [[0, 10, 10, 0]] * 4)
    np.testing.assert_array_equal(conv["backward"]["dC_dz"][1], np.zeros((4, 4)))
    # dw[u,v] = 10 · 4 rows · (x[:, 1+v] + x[:, 2+v]) → v=0: 10·4·20, v=1: 10·4·10, v=2: 0
    np.testing.assert_array_equal(conv["backward"]["dC_dw"][0, 0], [[800, 400, 0]] * 3)
    np.testing.assert_array_equal(conv["backward"]["dC_dw"][1], np.zeros((1, 3, 3)))
    np.testing.assert_array_equal(conv["backward"]["dC_db"], [80, 0])  # 8 cells × 10
    # each column pair gets ±10 per window covering the row: 1, 2, 3, 3, 2, 1 windows
    rows = arr([1, 2, 3, 3, 2, 1])[:, None]
    np.testing.assert_array_equal(
        conv["backward"]["dC_da_prev"][0], rows * arr([0, 10, 10, -10, -10, 0])
    )


# --------------------------------------------------------------------------- 6. valid/same/stride


def test_valid_same_stride2_share_one_input_and_filter():
    trio = [get("conv-valid"), get("conv-same"), get("conv-stride2")]
    assert {ITEMS[s.id] for s in trio} == {6}
    for s in trio[1:]:
        assert s.input == trio[0].input and s.params == trio[0].params


def test_valid_same_stride2_shapes_and_values():
    x = arr(get("conv-valid").input)[0]
    k = arr(get("conv-valid").params[0]["w"])[0, 0]
    valid = correlate2d(x, k, "valid")
    same = correlate2d(x, k, "same")  # zero fill, centred: padding 1 for a 3×3 kernel
    stride2 = valid[::2, ::2]
    # H_out = floor((6 + 2p − 3)/s) + 1
    assert valid.shape == (4, 4) and same.shape == (6, 6) and stride2.shape == (2, 2)
    np.testing.assert_array_equal(valid, [[4, 4, 2, 0], [4, 6, 4, 1], [2, 4, 4, 1], [0, 1, 1, 1]])
    np.testing.assert_array_equal(stride2, [[4, 2], [2, 4]])
    for sid, expected, stride, pad in (
        ("conv-valid", valid, (1, 1), (0, 0)),
        ("conv-same", same, (1, 1), (1, 1)),
        ("conv-stride2", stride2, (2, 2), (0, 0)),
    ):
        s = get(sid)
        (conv,) = layers(s)
        assert s.network().spec["output_shape"] == [1, *expected.shape]
        np.testing.assert_array_equal(conv["forward"]["z"][0], expected)
        # target 0 everywhere: δ is the output itself
        np.testing.assert_array_equal(conv["backward"]["dC_dz"][0], expected)
        np.testing.assert_array_equal(conv["backward"]["dC_db"], [expected.sum()])
        _, dw, _, dx = scipy_conv(
            s.input, s.params[0]["w"], s.params[0]["b"], [expected], stride, pad
        )
        np.testing.assert_array_equal(conv["backward"]["dC_dw"], dw)
        np.testing.assert_array_equal(conv["backward"]["dC_da_prev"], dx)
    # the note's number: in "valid", the middle input cell collects the most, 28
    (valid_conv,) = layers(get("conv-valid"))
    assert valid_conv["backward"]["dC_da_prev"].max() == 28


def test_stride2_never_sees_the_last_row_and_column():
    s = get("conv-stride2")
    (conv,) = layers(s)
    x = arr(s.input)[0]
    assert x[5].sum() > 0, "the scenario needs something to miss in the last row"
    dx = conv["backward"]["dC_da_prev"][0]
    assert np.all(dx[5, :] == 0) and np.all(dx[:, 5] == 0)
    # changing the unseen cells does not change the output
    net = s.network()
    x2 = x.copy()
    x2[5, :] = 7
    x2[:, 5] = 7
    np.testing.assert_array_equal(net.predict(x2[None, None]), net.predict(x[None, None]))
    # dC/dw = the input correlated with δ dilated by one zero (2×2 → 3×3)
    delta = conv["backward"]["dC_dz"][0]
    dd = dilate(delta, (2, 2))
    assert dd.shape == (3, 3) and dd[1].sum() == 0 and dd[:, 1].sum() == 0
    np.testing.assert_array_equal(
        conv["backward"]["dC_dw"][0, 0], correlate2d(x[:5, :5], dd, "valid")
    )
    np.testing.assert_array_equal(
        conv["backward"]["dC_dw"][0, 0], [[8, 6, 2], [6, 8, 6], [2, 6, 4]]
    )


def test_same_padding_is_cropped_in_backward():
    s = get("conv-same")
    (conv,) = layers(s)
    k = arr(s.params[0]["w"])[0, 0]
    delta = conv["backward"]["dC_dz"][0]
    full = convolve2d(delta, k, "full")  # 8×8: the padded geometry
    assert full.shape == (8, 8)
    np.testing.assert_array_equal(conv["backward"]["dC_da_prev"][0], full[1:-1, 1:-1])
    assert np.any(full[0] != 0)  # something really is cropped


# --------------------------------------------------------------------------- 7. correlate/convolve


X7 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
W7 = [[10, 20], [30, 40]]


def test_published_correlate_convolve_identities():
    # the numbers the article publishes
    np.testing.assert_array_equal(correlate2d(X7, W7, "valid"), [[370, 470], [670, 770]])
    np.testing.assert_array_equal(convolve2d(X7, W7, "valid"), [[230, 330], [530, 630]])
    np.testing.assert_array_equal(
        correlate2d(X7, W7, "full"),
        [[40, 110, 180, 90], [180, 370, 470, 210], [360, 670, 770, 330], [140, 230, 260, 90]],
    )
    # convolving is correlating with the filter turned by 180°
    np.testing.assert_array_equal(
        convolve2d(X7, W7, "valid"), correlate2d(X7, np.rot90(W7, 2), "valid")
    )
    # by hand: 1·10 + 2·20 + 4·30 + 5·40 = 370; 1·40 + 2·30 + 4·20 + 5·10 = 230
    assert 1 * 10 + 2 * 20 + 4 * 30 + 5 * 40 == 370
    assert 1 * 40 + 2 * 30 + 4 * 20 + 5 * 10 == 230


def test_correlate_convolve_scenario_engine_identities():
    s = get("correlate-convolve")
    assert s.input == [X7] and s.params[0]["w"] == [[W7]]
    conv, dense = layers(s)[0], layers(s)[2]
    # forward conv IS correlate2d(x, w, "valid")
    z = conv["forward"]["z"][0]
    np.testing.assert_array_equal(z, correlate2d(X7, W7, "valid"))
    np.testing.assert_array_equal(z, [[370, 470], [670, 770]])
    # dense: 0.5·370 + 0.5·470 + 0·670 − 0.5·770 − 35 = 185 + 235 − 385 − 35 = 0 → σ = 0.5
    np.testing.assert_array_equal(dense["forward"]["z"], [0])
    np.testing.assert_array_equal(dense["forward"]["a"], [0.5])
    # C = ½(0.5 − 1)² = 0.125; dC/da = −0.5; dC/dz = −0.5 · σ′(0) = −0.5 · 0.25 = −0.125
    assert s.trace().loss == 0.125
    np.testing.assert_array_equal(dense["backward"]["dC_da"], [-0.5])
    np.testing.assert_array_equal(dense["backward"]["dC_dz"], [-0.125])
    np.testing.assert_array_equal(dense["backward"]["dC_dw"], [[-46.25, -58.75, -83.75, -96.25]])
    # conv δ = −0.125 · [0.5, 0.5, 0, −0.5]
    delta = conv["backward"]["dC_dz"][0]
    np.testing.assert_array_equal(delta, [[-0.0625, -0.0625], [0, 0.0625]])
    # dC/da_prev IS convolve2d(δ, w, "full") = correlate2d(δ, rot180(w), "full")
    dx = conv["backward"]["dC_da_prev"][0]
    np.testing.assert_array_equal(dx, convolve2d(delta, W7, "full"))
    np.testing.assert_array_equal(dx, correlate2d(delta, np.rot90(W7, 2), "full"))
    # by hand, e.g. centre: δ00·40 + δ01·30 + δ10·20 + δ11·10 = −2.5 − 1.875 + 0 + 0.625
    np.testing.assert_array_equal(
        dx, [[-0.625, -1.875, -1.25], [-1.875, -3.75, -1.25], [0, 1.875, 2.5]]
    )
    # dC/dw IS correlate2d(x, δ, "valid"): e.g. dw00 = −0.0625·(1 + 2) + 0.0625·5 = 0.125
    np.testing.assert_array_equal(conv["backward"]["dC_dw"][0, 0], correlate2d(X7, delta, "valid"))
    np.testing.assert_array_equal(
        conv["backward"]["dC_dw"][0, 0], [[0.125, 0.0625], [-0.0625, -0.125]]
    )
    np.testing.assert_array_equal(conv["backward"]["dC_db"], [-0.0625])


def test_sigmoid_on_the_conv_would_saturate():
    """The note's claim: σ(370) is exactly 1.0 in float64, so σ′ = σ(1 − σ) = 0."""
    from cnncore.activations import derivative, sigmoid

    a = sigmoid(arr([[370.0, 470.0], [670.0, 770.0]]))
    assert np.all(a == 1.0)
    assert np.all(derivative("sigmoid", a, a) == 0.0)


# ------------------------------------------------------------------------- 8. overlapping max-pool


def test_overlapping_maxpool_accumulates_and_breaks_ties_to_the_first():
    s = get("overlapping-maxpool")
    (pool,) = layers(s)
    x = arr(s.input)
    assert x.shape == (1, 4, 5)
    out = [[9, 9, 5, 5], [9, 9, 5, 5], [4, 6, 6, 3]]
    np.testing.assert_array_equal(pool["forward"]["a"], [out])
    delta = [[1, 2, -1, 1], [-2, 1, 2, 1], [1, -1, 2, 3]]
    np.testing.assert_array_equal(pool["backward"]["dC_dz"], [delta])
    # the 9 at (1,1) wins the four windows (0,0), (0,1), (1,0), (1,1): 1 + 2 − 2 + 1 = 2
    # the 5 at (1,3) wins (0,2), (0,3), (1,2), (1,3): −1 + 1 + 2 + 1 = 3
    # the 5 at (1,4) ties in (0,3) and (1,3) and loses both: 0
    dx = pool["backward"]["dC_da_prev"][0]
    np.testing.assert_array_equal(
        dx, [[0, 0, 0, 0, 0], [0, 2, 0, 3, 0], [0, 0, 0, 3, 0], [1, 0, 1, 0, 0]]
    )
    assert dx[1, 1] == delta[0][0] + delta[0][1] + delta[1][0] + delta[1][1]
    assert x[0, 1, 3] == x[0, 1, 4] == 5
    assert dx[1, 4] == 0.0
    arg = pool["argmax"][0]
    assert arg[0, 3].tolist() == [1, 3] and arg[1, 3].tolist() == [1, 3]  # the first 5 wins
    wins_of_9 = [(i, j) for i in range(3) for j in range(4) if arg[i, j].tolist() == [1, 1]]
    assert wins_of_9 == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # against an explicit loop with "first max in reading order"
    o, a2, dx2 = loop_maxpool(x, 2, 1, [delta])
    np.testing.assert_array_equal(pool["forward"]["a"], o)
    np.testing.assert_array_equal(pool["argmax"], a2)
    np.testing.assert_array_equal(pool["backward"]["dC_da_prev"], dx2)
    # the gradient is conserved: what goes in comes out
    assert dx.sum() == arr(delta).sum()


# --------------------------------------------------------------------------- 9. average pool


def test_avgpool_spreads_delta_over_the_window():
    s = get("avgpool")
    (pool,) = layers(s)
    # (1+3+5+7)/4 = 4, (2+2+4+0)/4 = 2, (0+2+4+2)/4 = 2, (6+6+6+6)/4 = 6
    np.testing.assert_array_equal(pool["forward"]["a"], [[[4, 2], [2, 6]]])
    delta = pool["backward"]["dC_dz"][0]
    np.testing.assert_array_equal(delta, [[2, -1], [2, 1]])  # output − target [[2,3],[0,5]]
    dx = pool["backward"]["dC_da_prev"][0]
    for i in range(2):
        for j in range(2):
            window = dx[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            assert np.all(window == delta[i, j] / (2 * 2))
            assert window.sum() == delta[i, j]
    np.testing.assert_array_equal(
        dx,
        [
            [0.5, 0.5, -0.25, -0.25],
            [0.5, 0.5, -0.25, -0.25],
            [0.5, 0.5, 0.25, 0.25],
            [0.5, 0.5, 0.25, 0.25],
        ],
    )
    o, dx2 = loop_avgpool(s.input, 2, 2, [delta])
    np.testing.assert_array_equal(pool["forward"]["a"], o)
    np.testing.assert_array_equal(pool["backward"]["dC_da_prev"], dx2)


# --------------------------------------------------------------------------- 12, 13: blocks


def test_residual_block_by_hand():
    """z = F(x) + x, F reading the cell above, the left one and -2 × the cell; backward, the
    F path's gradient and the skip's add up at the input (the numbers the note prints)."""
    s = get("residual-block")
    e = s.trace().to_dict()["layers"][0]
    x = arr(s.input)[0]
    xp = np.pad(x, 1)
    f = xp[:-2, 1:-1] + xp[1:-1, :-2] - 2 * x  # above + left - 2 × self
    np.testing.assert_array_equal(e["split"]["f"][0], f)
    np.testing.assert_array_equal(e["forward"]["z"][0], f + x)
    assert e["forward"]["z"][0, 1, 2] == 3 and f[1, 2] == 3 and x[1, 2] == 0
    a = np.maximum(f + x, 0)
    dz = np.where(f + x > 0, a - 1, 0.0)
    np.testing.assert_array_equal(e["backward"]["dC_dz"][0], dz)
    dzp = np.pad(dz, 1)
    path = dzp[2:, 1:-1] + dzp[1:-1, 2:] - 2 * dz  # the output below, the right one, itself
    sp, bw = e["split"], e["backward"]
    np.testing.assert_array_equal(sp["dC_da_prev_path"][0], path)
    np.testing.assert_array_equal(sp["dC_da_prev_skip"][0], dz)
    np.testing.assert_array_equal(bw["dC_da_prev"][0], path + dz)
    assert (path[1, 2], dz[1, 2], bw["dC_da_prev"][0, 1, 2]) == (-4, 2, -2)
    assert e["layers"][0]["backward"]["dC_da_prev"][0, 1, 2] == -4


def test_inception_branches_by_hand():
    s = get("inception-branches")
    tr = s.trace().to_dict()
    e = tr["layers"][0]
    x = arr(s.input)[0]
    xp = np.pad(x, 1)
    b0 = 2 * x
    b1 = xp[:-2, 1:-1] + xp[2:, 1:-1] + xp[1:-1, :-2] + xp[1:-1, 2:] - 1
    np.testing.assert_array_equal(e["forward"]["a"], np.stack([b0, b1]))
    assert e["channels"] == [[0, 1], [1, 2]]
    d = np.stack([b0, b1]) - arr(s.target)
    np.testing.assert_array_equal(e["split"]["dC_da"][0][0], d[0])
    np.testing.assert_array_equal(e["split"]["dC_da"][1][0], d[1])
    dp = np.pad(d[1], 1)
    g0 = 2 * d[0]
    g1 = dp[:-2, 1:-1] + dp[2:, 1:-1] + dp[1:-1, :-2] + dp[1:-1, 2:]
    np.testing.assert_array_equal(e["split"]["dC_da_prev"][0][0], g0)
    np.testing.assert_array_equal(e["split"]["dC_da_prev"][1][0], g1)
    np.testing.assert_array_equal(e["backward"]["dC_da_prev"][0], g0 + g1)
    assert (g0[1, 2], g1[1, 2], g0[1, 2] + g1[1, 2]) == (2, 1, 3)
    assert tr["loss"] == 0.5 * float(np.sum(d**2))
