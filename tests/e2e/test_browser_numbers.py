"""Every number the browser computes itself (README, "What it shows"), checked against the
server's tensors over several layer geometries: stride 1 and 2, padding 0 and 2, non-square
kernels, more than one input and output channel.

* conv.js: the "other input channels" term Σ_{c' ≠ c} a·w of the forward formula;
* conv_input_grad.js: the gather sums of dC/da_prev's full convolution, the "other output
  channels" term, and the cells of the padding ring the crop removes (which the server does not
  return: checked against the full convolution of the server's dC/dz with its w);
* mathml.js sumEquation: the "+ (n more)" term a long sum (the dense layer) prints for its
  smallest products.

The page's own modules run on a network the test chooses: a `DetailView` in a probe element,
fed by the page's data layer (the lean trace rebuilt by `completeTrace`), moved over positions
with `focus` as the keyboard does. Products and results must equal the server's values exactly;
the browser's sums must equal NumPy's float64 sums of the same server tensors to 1e-12.
"""

from __future__ import annotations

import base64
import math

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.e2e

GEOMETRIES = [
    # input [C, H, W], conv {out_channels, kernel_size, stride, padding}
    ([2, 7, 6], {"out_channels": 3, "kernel_size": [3, 2], "stride": 1, "padding": 0}),
    ([2, 7, 7], {"out_channels": 2, "kernel_size": [2, 3], "stride": 2, "padding": 2}),
    ([3, 6, 5], {"out_channels": 2, "kernel_size": [3, 3], "stride": [2, 1], "padding": [0, 2]}),
]

SETUP = """async (body) => {
  const base = document.querySelector('script[type=module]').src.replace(/main\\.js$/, '');
  const api = await import(base + 'api.js');
  const { DetailView } = await import(base + 'views/detail.js');
  const { buildSteps } = await import(base + 'steps.js');
  const lean = await api.api.trace({ ...body, ...api.LEAN });
  const trace = api.completeTrace(lean, body.input, body.params);
  trace.__key = 'probe';
  document.getElementById('probe')?.remove();
  const host = document.createElement('section');
  host.id = 'probe';
  host.style.cssText = 'width: 900px; height: 640px; display: block';
  document.body.append(host);
  const dv = new DetailView(host, { onDone: () => {} });
  const steps = buildSteps(trace);
  window.__probe = { dv, trace, steps };
  return steps.map((s) => `${s.kind}:${s.layer}`);
}"""

SHOW = """async ({ k, pos }) => {
  const { dv, trace, steps } = window.__probe;
  if (dv.index !== k) dv.show(trace, steps[k], k);
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  await frame();
  dv.focus(pos);
  await frame();
  await frame();
  const host = document.getElementById('probe');
  const formula = host.querySelector('.formula');
  const out = [];
  for (const e of formula.querySelectorAll('[data-value]')) {
    let prod = null, factor = null, label = null;
    for (let p = e.parentElement; p && p !== formula; p = p.parentElement) {
      const isDot = (c) => c.tagName.toLowerCase() === 'mo' && c.textContent === '·';
      const dot = [...p.children].find(isDot);
      if (dot && prod === null) {
        prod = p;
        factor = [...p.querySelectorAll('[data-value]')].indexOf(e);
      }
      const tag = p.tagName.toLowerCase();
      if (tag === 'munder' && label === null) label = p.lastElementChild.textContent;
    }
    const role = e.dataset.role || null;
    out.push({ v: e.dataset.value, role, prod: prod ? out.length - factor : null, factor, label });
  }
  return { items: out, data: { ...host.dataset }, positions: dv.anim.positions };
}"""


def terms(items: list[dict]) -> tuple[list[list[float]], list[tuple[float, str | None]]]:
    """The products (pairs of factors) and the single terms (with their labels) of a sum."""
    pairs, singles = [], []
    for it in items:
        if it["prod"] is not None and it["factor"] == 0:
            pairs.append([float(it["v"])])
        elif it["prod"] is not None:
            pairs[-1].append(float(it["v"]))
        else:
            singles.append((float(it["v"]), it["label"]))
    return pairs, singles


def parse(shown: dict, result_role: str):
    """(pairs of factors, single terms with their labels, the result) of a sum formula."""
    items = shown["items"]
    end = [it["role"] for it in items].index(result_role)
    pairs, singles = terms(items[:end])
    return pairs, singles, float(items[end]["v"])


def dilated_padded(d: np.ndarray, sh: int, sw: int, kh: int, kw: int, Hp: int, Wp: int):
    """dC/dz of one channel dilated by the stride, padded by k − 1 (and at the bottom/right by
    the rows/columns no forward window reached): what rot180(w) slides over."""
    Ho, Wo = d.shape
    D = np.zeros(((Ho - 1) * sh + 1, (Wo - 1) * sw + 1))
    D[::sh, ::sw] = d
    eh, ew = Hp - ((Ho - 1) * sh + kh), Wp - ((Wo - 1) * sw + kw)
    return np.pad(D, ((kh - 1, kh - 1 + eh), (kw - 1, kw - 1 + ew)))


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("shape,conv", GEOMETRIES, ids=["s1p0k3x2", "s2p2k2x3", "s21p02k3"])
def test_browser_sums_equal_the_server_tensors(page, server, shape, conv):
    rng = np.random.default_rng(sum(shape))
    spec = {
        "input_shape": shape,
        "layers": [
            {"type": "conv2d", "activation": "relu", **conv},
            {"type": "flatten"},
            {"type": "dense", "units": 2},
        ],
        "loss": "mse",
    }
    norm = httpx.post(
        server + "/api/trace",
        json={
            "network": spec,
            "input": rng.random(shape).tolist(),
            "target": [0.5, -0.5],
            "include": [],
        },
        timeout=30,  # fmt: skip
    ).json()["network"]
    n_flat = norm["layers"][2]["input_shape"][0]
    params = [
        {
            "w": rng.normal(
                0, 0.5, (conv["out_channels"], shape[0], *norm["layers"][0]["kernel_size"])
            ).tolist(),
            "b": rng.normal(0, 0.1, conv["out_channels"]).tolist(),
        },
        {},
        {"w": rng.normal(0, 0.5, (2, n_flat)).tolist(), "b": [0.1, -0.2]},
    ]
    body = {"network": spec, "params": params, "input": rng.random(shape).tolist(),
            "target": [0.5, -0.5]}  # fmt: skip
    kinds = page.evaluate(SETUP, body)
    tr = httpx.post(server + "/api/trace", json=body, timeout=30).json()
    L0 = tr["layers"][0]
    (sh, sw), (ph, pw) = norm["layers"][0]["stride"], norm["layers"][0]["padding"]
    kh, kw = norm["layers"][0]["kernel_size"]
    x = np.asarray(L0["forward"]["a_prev"])
    w = np.asarray(L0["params"]["w"])
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    checked = {"others": 0, "gather": 0, "cropped": 0, "rest": 0}

    # conv forward: products exact, "other input channels" = NumPy's sum of the server tensors
    k = kinds.index("conv:0")
    for pos in range(0, 40, 3):
        shown = page.evaluate(SHOW, {"k": k, "pos": pos})
        if pos >= shown["positions"]:
            break
        d = shown["data"]
        f, c, i, j = (int(d[key]) for key in "fcij")
        pairs, singles, z = parse(shown, "z-value")
        assert z == L0["forward"]["z"][f][i][j]
        window = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw]
        assert [p[0] for p in pairs] == window[c].ravel().tolist()
        assert [p[1] for p in pairs] == w[f, c].ravel().tolist()
        labels = {lab: v for v, lab in singles}
        assert labels[f"b{f}"] == L0["params"]["b"][f]
        others = [v for v, lab in singles if lab != f"b{f}"]
        want = float(sum(np.sum(window[cc] * w[f, cc]) for cc in range(shape[0]) if cc != c))
        assert len(others) == 1 and close(others[0], want), (others, want)
        assert close(sum(a * b for a, b in pairs) + sum(v for v, _ in singles), z)
        checked["others"] += 1

    # dC/da_prev: the gather over rot180(w), the other output channels, the cropped ring
    dz = np.asarray(L0["backward"]["dC_dz"])
    F_, Ho, Wo = dz.shape
    H, W = shape[1], shape[2]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    full = np.zeros((shape[0], Hp, Wp))
    for f in range(F_):
        for i in range(Ho):
            for j in range(Wo):
                full[:, i * sh : i * sh + kh, j * sw : j * sw + kw] += dz[f, i, j] * w[f]
    dx = np.asarray(L0["backward"]["dC_da_prev"])
    assert np.allclose(full[:, ph : ph + H, pw : pw + W], dx, rtol=0, atol=1e-12)
    k = kinds.index("input_grad:0")
    for pos in range(0, Hp * Wp, max(1, Hp * Wp // 14)):
        shown = page.evaluate(SHOW, {"k": k, "pos": pos})
        d = shown["data"]
        f, c = int(d["f"]), int(d["c"])
        p, q = int(d["i"]) + ph, int(d["j"]) + pw
        inside = ph <= p < ph + H and pw <= q < pw + W
        items = shown["items"]
        roles = [it["role"] for it in items]
        if inside:  # the cell's value, then the crop: ∂C/∂a_prev = the server's dC_da_prev
            at = roles.index("dx-value")
            assert float(items[at]["v"]) == dx[c, p - ph, q - pw]
            items = items[:at]
        *sum_items, res = items  # the sum's own result ends it
        pairs, singles = terms(sum_items)
        result = float(res["v"])
        if inside:
            assert result == dx[c, p - ph, q - pw]
        else:  # a cell of the padding ring: computed in the browser only
            assert close(result, full[c, p, q]), (result, full[c, p, q])
            checked["cropped"] += 1
        assert [x for x, _ in pairs] == [
            float(v)
            for v in dilated_padded(dz[f], sh, sw, kh, kw, Hp, Wp)[p : p + kh, q : q + kw].ravel()
        ]
        assert [y for _, y in pairs] == np.rot90(w[f, c], 2).ravel().tolist()
        own = float(np.sum(np.asarray(pairs).prod(axis=1))) if pairs else 0.0
        if F_ > 1:
            assert len(singles) == 1 and close(singles[0][0], full[c, p, q] - own), singles
            checked["others"] += 1
        else:
            assert not singles
        checked["gather"] += 1
    # the words match the geometry: "dilated" only where the stride inserts zeros
    words = page.evaluate("() => document.getElementById('probe').textContent")
    assert "padded by k − 1" in words
    assert ("dilated" in words) == (sh > 1 or sw > 1), (sh, sw)

    # the dense layer: more terms than it prints; "+ (n more)" is the rest of the sum
    L2 = tr["layers"][2]
    a = np.asarray(L2["forward"]["a_prev"])
    wd = np.asarray(L2["params"]["w"])
    k = kinds.index("dense:2")
    for pos in range(2):
        shown = page.evaluate(SHOW, {"k": k, "pos": pos})
        pairs, singles, z = parse(shown, "z-value")
        u = pos
        assert z == L2["forward"]["z"][u]
        labels = dict((lab, v) for v, lab in singles)
        assert labels[f"b{u}"] == L2["params"]["b"][u]
        rest = [v for v, lab in singles if lab != f"b{u}"]
        if len(pairs) < a.size:
            assert len(rest) == 1
            want = float(np.sum(a * wd[u])) - sum(x * y for x, y in pairs)
            assert math.isclose(rest[0], want, rel_tol=1e-9, abs_tol=1e-12), (rest, want)
            checked["rest"] += 1
    print(checked)
    assert checked["gather"] and checked["others"], checked
    if a.size > 36:  # CONFIG.formulaAllTerms: longer sums print their largest terms + the rest
        assert checked["rest"], checked
    if ph or pw:
        assert checked["cropped"], checked
    assert not page.messages.problems(), page.messages.problems()


# ---------------------------------------------------------------------- g′(z) and pool backward
DG = {
    "relu": lambda z: (z > 0).astype(np.float64),
    "sigmoid": lambda z: (1 / (1 + np.exp(-z))) * (1 - 1 / (1 + np.exp(-z))),
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
}

SHOW_ALL = """async ({ k, pos, revealed }) => {
  const { dv, trace, steps } = window.__probe;
  if (dv.index !== k) dv.show(trace, steps[k], k);
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  await frame();
  dv.focus(pos);
  await frame();
  const host = document.getElementById('probe');
  const items = [...host.querySelectorAll('.formula [data-value]')]
    .map((e) => ({ v: e.dataset.value, role: e.dataset.role || null }));
  const running = dv.anim.runningSum ? revealed.map((r) => dv.anim.runningSum(r)) : null;
  return { items, data: { ...host.dataset }, positions: dv.anim.positions, running };
}"""


@pytest.mark.parametrize(
    "act,pool",
    [("relu", "maxpool2d"), ("sigmoid", "avgpool2d"), ("tanh", "maxpool2d")],
)
def test_activation_derivative_and_pool_running_sum_equal_numpy(page, server, act, pool):
    rng = np.random.default_rng(len(act))
    shape = [2, 6, 6]
    spec = {
        "input_shape": shape,
        "layers": [
            {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1,
             "activation": act},
            {"type": pool, "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "flatten"},
            {"type": "dense", "units": 2},
        ],
        "loss": "mse",
    }  # fmt: skip
    params = [
        {"w": rng.normal(0, 0.7, (2, 2, 3, 3)).tolist(), "b": [0.1, -0.2]},
        {},
        {},
        {"w": rng.normal(0, 0.5, (2, 18)).tolist(), "b": [0.0, 0.1]},
    ]
    body = {"network": spec, "params": params, "input": rng.normal(0, 1, shape).tolist(),
            "target": [0.5, -0.5]}  # fmt: skip
    kinds = page.evaluate(SETUP, body)
    tr = httpx.post(server + "/api/trace", json=body, timeout=30).json()
    L0, L1 = tr["layers"][0], tr["layers"][1]
    z = np.asarray(L0["forward"]["z"])
    gp = DG[act](z)
    checked = {"fwd": 0, "back": 0, "pool": 0, "running": 0}

    # the activation step: g′(z) printed beside a = g(z) (forward) and in dC/dz = dC/da · g′(z)
    for kind in ("activation:0", "activation_back:0"):
        k = kinds.index(kind)
        for pos in range(0, 36, 5):
            shown = page.evaluate(SHOW_ALL, {"k": k, "pos": pos, "revealed": []})
            d = shown["data"]
            f, i, j = int(d["f"]), int(d["i"]), int(d["j"])
            vals = [float(it["v"]) for it in shown["items"]]
            roles = [it["role"] for it in shown["items"]]
            if kind.startswith("activation:"):
                assert vals[roles.index("a-value")] == L0["forward"]["a"][f][i][j]
                assert close(vals[-1], gp[f, i, j]), (vals, gp[f, i, j])
                checked["fwd"] += 1
            else:
                at = roles.index("dz-value")
                da, g, dz = vals[at - 2 : at + 1]
                assert da == L0["backward"]["dC_da"][f][i][j]
                assert close(g, gp[f, i, j]), (g, gp[f, i, j])
                assert dz == L0["backward"]["dC_dz"][f][i][j]
                checked["back"] += 1

    # the pool backward: each window's share (δ, or δ/n for average) and the running sum
    dA = np.asarray(L1["backward"]["dC_da"])
    dX = np.asarray(L1["backward"]["dC_da_prev"])
    _, Ho, Wo = dA.shape
    H, W = shape[1], shape[2]
    k = kinds.index("pool_back:1")
    for c in range(1):  # the channel the step opens with
        targets = []
        for i in range(Ho):
            for j in range(Wo):
                if pool == "maxpool2d":
                    r, q = L1["argmax"][c][i][j]
                    targets.append([(r, q, dA[c, i, j])])
                else:
                    cells = [(i * 2 + u - 1, j * 2 + v - 1) for u in range(3) for v in range(3)]
                    targets.append([(r, q, dA[c, i, j] / 9) for r, q in cells
                                    if 0 <= r < H and 0 <= q < W])  # fmt: skip
        revealed = list(range(Ho * Wo + 1))
        shown = None
        for pos in range(Ho * Wo):
            shown = page.evaluate(SHOW_ALL, {"k": k, "pos": pos, "revealed": revealed})
            assert int(shown["data"]["f"]) == c
            r, q, _ = targets[pos][0]
            into = [v for t in targets for (rr, qq, v) in t if (rr, qq) == (r, q)]
            items = shown["items"]
            at = [it["role"] for it in items].index("dx-value")
            assert float(items[at]["v"]) == dX[c, r, q]
            assert [float(it["v"]) for it in items[at - len(into) : at]] == [float(v) for v in into]
            assert close(sum(into), dX[c, r, q])
            checked["pool"] += 1
        for n_rev, got in zip(revealed, shown["running"], strict=True):
            want = np.zeros((H, W))
            for t in targets[:n_rev]:
                for r, q, v in t:
                    want[r, q] += v
            assert np.allclose(np.asarray(got), want, rtol=0, atol=1e-12)
            checked["running"] += 1
        assert np.allclose(np.asarray(shown["running"][-1]), dX[c], rtol=0, atol=1e-12)
    print(checked)
    assert all(checked.values()), checked
    assert not page.messages.problems(), page.messages.problems()


# ---------------------------------------------------------------------- the learn card
def _arr(v) -> np.ndarray:
    """A JSON array, or the page's exact base64 form {dtype, shape, data}, as NumPy."""
    if isinstance(v, dict) and "data" in v:
        raw = base64.b64decode(v["data"])
        return np.frombuffer(raw, dtype=np.dtype(v["dtype"]).newbyteorder("<")).reshape(v["shape"])
    return np.asarray(v, dtype=np.float64)


def _percent_ok(text: str, p: float) -> bool:
    """`text` ("87.3%", "99.999%", "3e-12%") is 100·p rounded to the digits it shows."""
    s = text.strip().rstrip("%").replace("\u2212", "-")
    x = 100 * p
    if "e" in s:
        mant = s.split("e")[0]
        digits = len(mant.replace("-", "").replace(".", ""))
        return math.isclose(float(s), x, rel_tol=0.5 * 10 ** (1 - digits) + 1e-12)
    decimals = len(s.split(".")[1]) if "." in s else 0
    return abs(float(s) - x) <= 0.5 * 10**-decimals * (1 + 1e-9)


def test_learn_card_deltas_and_percentages_equal_numpy(page, server):
    from .test_learning import apply_step, open_url, post_json

    open_url(page, server + "/?s=maxpool-middle&lang=en")
    page.wait_for_function("() => !document.querySelector('#learn-apply').disabled")
    with page.expect_response(lambda r: r.url.endswith("/api/learn")) as resp:
        body = apply_step(page, 1)
    assert body == post_json(resp.value.request)
    r = resp.value.json()
    before = body["params"]
    after = [{k: _arr(v) for k, v in p.items()} for p in r["updated_params"]]
    buttons = page.locator("#learn-layers button")
    layers = [i for i, p in enumerate(before) if p.get("w")]
    assert buttons.count() == len(layers)
    for b, i in enumerate(layers):
        btn = buttons.nth(b)
        assert int(btn.get_attribute("data-layer")) == i
        dw = after[i]["w"] - np.asarray(before[i]["w"], dtype=np.float64)
        db = after[i]["b"] - np.asarray(before[i]["b"], dtype=np.float64)
        title = btn.get_attribute("title")  # max |ΔW| = …, max |Δb| = … (full float64)
        shown = [float(part.split("=")[1]) for part in title.split(",")]
        assert shown == [float(np.max(np.abs(dw))), float(np.max(np.abs(db)))], title
    # the target's probability before and after, as percentages that round 100·a honestly
    text = page.locator("#learn-prob").inner_text()
    k = body["target"] if isinstance(body["target"], int) else int(np.argmax(body["target"]))
    p_before = float(_arr(r["output_before"])[k])
    p_after = float(_arr(r["trace"]["output"])[k])
    b_txt, a_txt = text.split(":")[1].split("\u2192")
    assert _percent_ok(b_txt, p_before), (b_txt, p_before)
    assert _percent_ok(a_txt, p_after), (a_txt, p_after)
    assert p_after > p_before
    assert not page.messages.problems(), page.messages.problems()
