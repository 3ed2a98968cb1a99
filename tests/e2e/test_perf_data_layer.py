"""The page's lean data layer (static/js/api.js, session.js) in Chromium: what the faster page
asks for and decodes lazily is, once read, exactly the complete trace.

For the digit model the page asks for every tensor of the layer in view and a, dC_da, dC_db of
the others (`lazySelection`), decodes base64 into typed arrays and nests them only when a view
reads them (`decodeLazy`), and fills in another layer when a step of it opens (`fillLayer`, as
`ensureLayer` does). Here every layer is filled in and every tensor read: the trace object must
equal, number for number, the complete trace the API sends by default (nested JSON lists)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e

LAYER_KEYS = ["a_prev", "z", "a", "dC_da", "dC_dz", "dC_db", "dC_dw", "dC_da_prev"]

LEAN_THEN_FILLED = """async ({ body, shown, keys }) => {
  const base = document.querySelector('script[type=module]').src.replace(/main\\.js$/, '');
  const api = await import(base + 'api.js');
  const session = await import(base + 'session.js');
  const sel = session.lazySelection(shown);
  const lean = await api.api.trace({ ...body, ...api.LEAN, ...sel });
  const params = await api.paramsOf('digits');
  const tr = api.completeTrace(lean, body.input, params);
  const sent = lean.layers.map((l) => Object.keys({ ...l.forward, ...l.backward }).sort());
  // nothing nested yet: the tensors are getters until a view reads them
  const lazy = Object.getOwnPropertyDescriptor(tr.layers[shown].forward, 'a').get !== undefined;
  for (let j = 0; j < tr.layers.length; j++) {
    if (j === shown) continue;
    const ask = { ...body, ...api.LEAN, layers: [j], exclude: sel.every_layer };
    const more = await api.api.trace(ask);
    api.fillLayer(tr, j, more.layers[j], body.input);
  }
  const out = tr.layers.map((l) => {
    const o = {};
    for (const k of keys) o[k] = k in l.forward ? l.forward[k] : l.backward[k];
    o.argmax = l.argmax ?? null;
    o.w = l.params.w ?? null;
    o.flatW = l.params.w ? Array.from(api.flatValues(l.params, 'w')) : null;
    return o;
  });
  return { sent, lazy, out, loss: tr.loss, output: tr.output, target: tr.target };
}"""


@pytest.mark.parametrize("shown", [0, 3, 5])
def test_lean_lazy_trace_equals_the_complete_one(page, server, shown):
    x = [
        [((i * 7 + j * 3) % 11) / 10 if 4 < i < 24 and 9 < j < 19 else 0.0 for j in range(28)]
        for i in range(28)
    ]
    body = {"model": "digits", "input": x, "target": 3}
    got = page.evaluate(LEAN_THEN_FILLED, {"body": body, "shown": shown, "keys": LAYER_KEYS})
    full = httpx.post(server + "/api/trace", json=body, timeout=60).json()
    assert got["lazy"]
    # the layer in view came whole; the others only a, dC_da, dC_db (and layer 0's dC_da_prev)
    assert "dC_dw" in got["sent"][shown] or full["layers"][shown]["backward"]["dC_dw"] is None
    for j, keys in enumerate(got["sent"]):
        if j != shown:
            assert set(keys) <= {"a", "dC_da", "dC_db", "dC_da_prev"}, (j, keys)
    assert got["loss"] == full["loss"] and got["output"] == full["output"]
    assert got["target"] == full["target"]
    for j, (mine, want) in enumerate(zip(got["out"], full["layers"], strict=True)):
        for k in LAYER_KEYS:
            part = "forward" if k in ("a_prev", "z", "a") else "backward"
            ref = want[part][k]
            if k == "a_prev" and j == 0:
                ref = [x]  # the request's [H][W] input is layer 0's [1][H][W] a_prev
            assert mine[k] == ref, (j, k)
        assert mine["argmax"] == want.get("argmax"), j
        assert mine["w"] == want["params"].get("w"), j
        if mine["flatW"] is not None:
            flat = []
            stack = [want["params"]["w"]]
            while stack:
                v = stack.pop()
                if isinstance(v, list):
                    stack.extend(reversed(v))
                else:
                    flat.append(v)
            assert mine["flatW"] == flat, j
    assert not page.messages.problems(), page.messages.problems()
