// Dense backward: dC/db = dC/dz; dC/dw = dC/dz ⊗ a_prev (row u is dC/dz_u times a_prev);
// dC/da_prev = Wᵀ dC/dz (input k collects w_{u,k}·dC/dz_u from every unit).

import { CONFIG } from "../config.js";
import { maxAbs } from "../math/tensor.js";
import { fitDigits } from "../format.js";
import { grad, math, mn, mo, mrow, noteLine, product, sumEquation, sym } from "../math/mathml.js";
import { clear, label, t } from "./common.js";
import { denseLayout, grid } from "./dense.js";

export function denseBackward(ui, { step, layer }) {
  const mode = step.kind; // bias_grad | weight_grad | input_grad
  const a = layer.forward.a_prev;
  const Wt = layer.params.w;
  const { dC_dz: dz, dC_db: db, dC_dw: dw, dC_da_prev: dx } = layer.backward;
  const units = Wt.length;
  const inF = a.length;
  const L = denseLayout(ui, units, inF);
  const topVals = mode === "input_grad" ? dx : a;
  const topG = grid(L.top, [topVals], maxAbs(topVals));
  const matVals = mode === "input_grad" ? Wt : dw; // the bias step previews the weight gradient
  const matG = grid(L.mat, matVals, maxAbs(matVals));
  const colVals = mode === "bias_grad" ? db : dz;
  const colG = grid(L.col, colVals.map((v) => [v]), maxAbs(colVals), { numbers: L.col.ch >= 16 });
  let sel = 0;

  ui.explain(t("denseBack." + mode + (mode === "input_grad" && units === 1 ? "One" : ""), { units, inF }));
  ui.notes(t("denseBack.notes"));

  function select(p) {
    sel = p;
    let f;
    if (mode === "bias_grad") {
      f = [math(grad(sym("b", p)), mo("="), grad(sym("z", p)), mo("="), mn(db[p], { role: "db-value" }))];
    } else if (mode === "weight_grad") {
      // One small equation per weight of row p: its non-zero ones in order, up to the limit.
      const nz = [];
      a.forEach((v, k) => { if (dz[p] * v !== 0) nz.push(k); });
      const shown = nz.slice(0, CONFIG.formulaMaxTerms);
      const entries = shown.map((k) => {
        const { d, rd } = fitDigits([dz[p], a[k]], ([x, y]) => x * y, dw[p][k]);
        return mrow(sym("w", `${p},${k}`), mo(":"), product(dz[p], a[k], { digits: d }), mo("="), mn(dw[p][k], { digits: rd }));
      });
      f = [math(grad(sym("w", `${p},k`)), mo("="), grad(sym("z", p)), mo("·"), sym("a", "k"))];
      for (let k = 0; k < entries.length; k += 3) {
        const line = [];
        entries.slice(k, k + 3).forEach((e, q) => line.push(...(q ? [mo(";"), e] : [e])));
        f.push(math(...line));
      }
      if (!entries.length) f.push(math(mn(0)));
      const zeros = inF - nz.length;
      const notes = [];
      if (nz.length > shown.length) notes.push(t("sum.firstNonZero", { k: shown.length, n: nz.length }));
      if (zeros) notes.push(t(zeros === 1 ? "sum.zeroOne" : "sum.zeros", { m: zeros, why: t("sum.whyDenseW") }));
      if (notes.length) f.push(noteLine(notes.join(" ")));
    } else {
      const terms = dz.map((d, u) => ({ a: Wt[u][p], b: d }));
      f = [math(grad(sym("a", p)), mo("="), mo("∑"), sym("w", `u,${p}`), grad(sym("z", "u"))),
        ...sumEquation({ lhs: [mo("=")], terms, result: dx[p], role: "dx-value", perLine: 5, zeroReason: t("sum.whyDz") })];
    }
    ui.formula(...f);
    Object.assign(ui.root.dataset, { f: String(p), i: "0", j: String(p) });
  }

  function draw() {
    const g = ui.g;
    clear(ui);
    topG.draw(g);
    matG.draw(g);
    colG.draw(g);
    if (mode === "input_grad") {
      matG.outline(g, 0, sel, units, 1, CONFIG.colors.kernel, 2);
      topG.outline(g, 0, sel, 1, 1, CONFIG.colors.focus, 3);
    } else {
      if (mode === "weight_grad") matG.outline(g, sel, 0, 1, inF, CONFIG.colors.kernel, 2);
      colG.outline(g, sel, 0, 1, 1, CONFIG.colors.focus, 3);
    }
    label(g, topG, t(mode === "input_grad" ? "panel.dxVec" : "dense.aPrev"), `${inF}`);
    label(g, matG, t(mode === "input_grad" ? "dense.w" : "panel.dwMat"), `${units}×${inF}`);
    label(g, colG, t(mode === "bias_grad" ? "panel.dbVec" : "panel.dzVec"), `${units}`);
  }

  function hit(x, y) {
    if (mode === "input_grad") {
      const h = topG.hit(x, y) || matG.hit(x, y);
      return h ? h[1] : null;
    }
    const h = colG.hit(x, y) || matG.hit(x, y);
    return h ? h[0] : null;
  }

  return { positions: mode === "input_grad" ? inF : units, select, draw, hit, grids: () => [topG, matG, colG] };
}
