// Dense forward: z = W a + b. The weight matrix is a heatmap (one row per unit, one column per input),
// a_prev runs along its top, z down its right side, and the selected unit's products underneath.

import { CONFIG } from "../config.js";
import { maxAbs } from "../math/tensor.js";
import { math, mo, sigma, sumEquation, sym } from "../math/mathml.js";
import { Grid } from "../views/heatmap.js";
import { clear, label, LABEL_H, t } from "./common.js";

/** Geometry shared by the dense animators: top strip (length inF), matrix units×inF, side column. */
export function denseLayout(ui, units, inF) {
  const side = 64;
  const fitW = (ui.width - side - 90) / inF;
  const cw = fitW >= 2 ? Math.min(40, Math.floor(fitW)) : fitW;
  const ch = Math.max(2, Math.min(34, Math.floor((ui.height - 3 * LABEL_H - 12) / (units + 2))));
  const matW = cw * inF;
  const x = Math.max(12, Math.floor((ui.width - matW - side - 50) / 2));
  const top = { x, y: LABEL_H, cw, ch: Math.max(ch, 10) };
  const mat = { x, y: LABEL_H * 2 + top.ch, cw, ch };
  const col = { x: x + matW + 36, y: mat.y, cw: Math.max(ch, 48), ch };
  const bottom = { x, y: mat.y + units * ch + LABEL_H, cw, ch: Math.max(ch, 10) };
  return { top, mat, col, bottom };
}

export function grid(place, values, scale, extra = {}) {
  return new Grid({ values, maxAbs: scale, x: place.x, y: place.y, cw: place.cw, ch: place.ch, ...extra }).render();
}

export function denseForward(ui, { spec, layer }) {
  const a = layer.forward.a_prev;
  const Wt = layer.params.w;
  const b = layer.params.b;
  const z = layer.forward.z;
  const units = Wt.length;
  const inF = a.length;
  const L = denseLayout(ui, units, inF);
  const topG = grid(L.top, [a], maxAbs(a));
  const matG = grid(L.mat, Wt, maxAbs(Wt));
  const zG = grid(L.col, z.map((v) => [v]), maxAbs(z), { numbers: L.col.ch >= 16 });
  const emptyZ = new Grid({ rows: units, cols: 1, empty: true, x: L.col.x, y: L.col.y, cw: L.col.cw, ch: L.col.ch }).render();
  let prodG = null;
  let u = 0;

  ui.explain(t(units === 1 ? "dense.explainOne" : "dense.explain", { units, inF }));
  ui.notes(t("dense.notes", { units, inF, act: spec.activation }));

  function select(p) {
    u = p;
    const prods = a.map((v, k) => v * Wt[u][k]);
    prodG = grid(L.bottom, [prods], maxAbs(prods));
    const terms = a.map((v, k) => ({ a: Wt[u][k], b: v }));
    ui.formula(math(sym("z", u), mo("="), sigma("k"), sym("w", `${u},k`), sym("a", "k"), mo("+"), sym("b", u)),
      ...sumEquation({ lhs: [mo("=")], terms, extra: [{ v: b[u], label: `b${u}` }], result: z[u], role: "z-value",
        perLine: 6, zeroReason: t("sum.whyDense") }));
    Object.assign(ui.root.dataset, { f: String(u), i: "0", j: String(u) });
  }

  function draw(p, revealed) {
    const g = ui.g;
    clear(ui);
    topG.draw(g);
    matG.draw(g);
    matG.outline(g, u, 0, 1, inF, CONFIG.colors.kernel, 2);
    zG.drawPartial(g, revealed, emptyZ);
    zG.outline(g, u, 0, 1, 1, CONFIG.colors.focus, 3);
    if (prodG) prodG.draw(g);
    label(g, topG, t("dense.aPrev"), `${inF}`);
    label(g, matG, t("dense.w"), `${units}×${inF}`);
    label(g, zG, t("dense.z"), `${units}`);
    if (prodG) label(g, prodG, t("dense.products", { u }), t("dense.productsSub"));
  }

  function hit(x, y) {
    const h = zG.hit(x, y) || matG.hit(x, y);
    return h ? h[0] : null;
  }

  return { positions: units, select, draw, hit, grids: () => [topG, matG, zG, prodG] };
}
