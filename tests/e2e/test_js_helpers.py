"""The front end's pure helpers (static/js/math, format), run as ES modules inside Chromium."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def run(page, module: str, body: str):
    """Evaluate `body` with the module's exports bound to `m`."""
    return page.evaluate(f"async () => {{ const m = await import('/static/js/{module}'); {body} }}")


def test_tensor_helpers(page):
    r = run(
        page,
        "math/tensor.js",
        """return {
          dil: m.dilate2d([[1, 2], [3, 4]], 2, 2),
          pad: m.pad2d([[5]], 1, 2, 0, 1, 0),
          rot: m.rot180([[1, 2, 3], [4, 5, 6]]),
          win: m.window2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]], 1, 1, 2, 2),
          out: [m.outSize(28, 5, 1, 2), m.outSize(6, 3, 2, 0), m.outSize(7, 3, 2, 1)],
          shape: m.shapeOf([[[1, 2, 3]], [[4, 5, 6]]]),
          rc: m.rc(13, 5),
          maxAbs: m.maxAbs([[-3, 2], [1, null]]),
        };""",
    )
    assert r["dil"] == [[1, 0, 2], [0, 0, 0], [3, 0, 4]]
    assert r["pad"] == [[0, 0, 0, 0, 0], [0, 0, 5, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert r["rot"] == [[6, 5, 4], [3, 2, 1]]
    assert r["win"] == [[5, 6], [8, 9]]
    assert r["out"] == [28, 2, 4]
    assert r["shape"] == [2, 1, 3]
    assert r["rc"] == [2, 3]
    assert r["maxAbs"] == 3


def test_number_formatting(page):
    r = run(
        page,
        "format.js",
        """return [m.fmt(0), m.fmt(0.5), m.fmt(-0.123456), m.fmt4(3.14159265), m.fmt(1.5e-7),
                  m.fmt(123456), m.fmt(-Infinity), m.full(0.1 + 0.2), m.shapeText([1, 28, 28])];""",
    )
    assert r == [
        "0",
        "0.5",
        "\u22120.123",
        "3.142",
        "1.5e-7",
        "1.23e5",
        "\u2212\u221e",
        "0.30000000000000004",
        "1×28×28",
    ]


def test_colour_scale_is_diverging_and_symmetric(page):
    r = run(
        page,
        "math/colors.js",
        "return [m.rgb(-1, 1), m.rgb(0, 1), m.rgb(1, 1), m.rgb(5, 1), m.lutIndex(0, 0)];",
    )
    neg, zero, pos, clipped, mid = r
    assert neg[2] > neg[0]  # blue for negative
    assert pos[0] > pos[2]  # orange for positive
    assert min(zero) > 240  # near-white for zero
    assert clipped == pos
    assert mid in (127, 128)


def test_steps_follow_the_network(page):
    r = run(
        page,
        "steps.js",
        """const L = (type, activation) => ({ type, activation,
             backward: { dC_da_prev: [0] } });
        const trace = { network: { layers: [L('conv2d', 'relu'), L('maxpool2d'), L('flatten'),
                                            L('dense', 'softmax')] },
                        layers: [L(), L(), L(), L()] };
        return m.buildSteps(trace).map((s) => `${s.kind}@${s.layer}`);""",
    )
    assert r == [
        "conv@0",
        "activation@0",
        "pool@1",
        "flatten@2",
        "dense@3",
        "activation@3",
        "loss@3",
        "activation_back@3",
        "bias_grad@3",
        "weight_grad@3",
        "input_grad@3",
        "flatten_back@2",
        "pool_back@1",
        "activation_back@0",
        "bias_grad@0",
        "weight_grad@0",
        "input_grad@0",
    ]


def test_url_state_encoding(page):
    r = run(
        page,
        "url.js",
        """const img = [[0, 1, 0.5], [0.2, 0, 1]];
        const base = {input: [[[1, 2], [3, 4]]], params: [{w: [[[[1, -1]]]], b: [1]}, {}],
                      target: [5]};
        const edited = {input: [[[1, 2.5], [3, 4]]], params: [{w: [[[[1, -7]]]], b: [1]}, {}],
                        target: [6]};
        const text = m.encodeEdits(base, edited);
        return {
          img: m.decodeImage(m.encodeImage(img), 2, 3),
          len: m.encodeImage(Array.from({length: 28}, () => new Array(28).fill(1))).length,
          bad: m.decodeImage("AAAA", 28, 28),
          text,
          back: m.applyEdits(base, text),
          junk: m.applyEdits(base, "x:1,99:2,0:NaN,1:3"),
        };""",
    )
    assert r["img"] == [[0, 1, 8 / 15], [3 / 15, 0, 1]]
    assert r["len"] == 523 and r["bad"] is None
    assert r["text"] == "1:2.5,5:-7,7:6"
    assert r["back"]["input"] == [[[1, 2.5], [3, 4]]] and r["back"]["params"][0]["w"] == [
        [[[1, -7]]]
    ]
    assert r["back"]["target"] == [6] and r["back"]["params"][1] == {}
    assert r["junk"]["input"] == [[[1, 3], [3, 4]]]


def test_suggested_learning_rate(page):
    r = run(
        page,
        "session.js",
        """const layer = (dw, db) => ({params: {}, backward: {dC_dw: dw, dC_db: db}});
        return [
          m.suggestRate({loss: 2, layers: [layer([[12, 10, 6, 4]], [2]), layer(null, null)]}),
          m.suggestRate({loss: 0, layers: [layer([[1]], [1])]}),
          m.suggestRate({loss: 1, layers: [layer(null, null)]}),
        ];""",
    )
    # 2 / (2 · (144 + 100 + 36 + 16 + 4)) = 1/300 → the 1-2-5 value below it is 0.002
    assert r == [0.002, None, None]


def test_printing_rule_and_percentages(page):
    r = run(
        page,
        "format.js",
        """const a = 0.99999064181234, y = 1, g = a - y;
        const f = m.fitDigits([a, y], ([p, q]) => p - q, g);
        const shown = m.roundSig(a, f.d) - m.roundSig(y, f.d);
        return {d: f.d, ok: m.roundSig(shown, f.rd) === m.roundSig(g, f.rd), a4: m.fmt(a, 4),
                pct: [m.percent(0.9999906), m.percent(3e-14), m.percent(1), m.percent(0),
                      m.percent(0.5)]};""",
    )
    assert r["a4"] == "1"  # what 4 digits would print: the old bug
    assert r["d"] >= 7 and r["ok"]
    assert r["pct"] == ["99.999%", "3e-12%", "100%", "0%", "50.0%"]


def test_exact_input_encoding_round_trips(page):
    r = run(
        page,
        "url.js",
        """const x = Array.from({length: 28}, (_, i) => Array.from({length: 28},
             (_, j) => ((i * 28 + j) % 7 === 0 ? 0 : Math.sin(i * 28 + j) ** 2)));
        const text = await m.encodeExact(x);
        const back = await m.decodeExact(text, 28, 28);
        return {same: JSON.stringify(back) === JSON.stringify(x), prefix: text.slice(0, 4),
                bad: [await m.decodeExact('f64.AAAA', 28, 28), await m.decodeExact('xyz', 28, 28),
                      await m.decodeExact(await m.encodeExact([[2]]), 1, 1)]};""",
    )
    assert r["same"] and r["prefix"] == "f64."
    assert r["bad"] == [None, None, None]  # not deflate, not the format, out of [0, 1]
