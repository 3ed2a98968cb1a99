// Conv backward, parameters: dC/db_f is the SUM of dC/dz_f over every position; dC/dw[f, c, u, v] is
// a_prev correlated with dC/dz (dilated by the stride): the δ map slides over the padded input.

import { CONFIG } from "../config.js";
import { dilate2d, maxAbs, rc, sum } from "../math/tensor.js";
import { fmt } from "../format.js";
import { grad, math, mn, mo, mrow, mtext, sumEquation, sym, sigma } from "../math/mathml.js";
import { between, channelPicker, clear, gridAt, label, layoutRow, t } from "./common.js";

export function convBias(ui, { layer }) {
  const dz = layer.backward.dC_dz;
  const db = layer.backward.dC_db;
  const f = channelPicker(ui, "f", "detail.outChannel", dz.length);
  const m = dz[f];
  const [Ho, Wo] = [m.length, m[0].length];
  const places = layoutRow(ui, [{ rows: Ho, cols: Wo }, { rows: 1, cols: 2, zoom: true }], { gap: 70 });
  const dzG = gridAt(places[0], { values: m, maxAbs: maxAbs(m) }).render();
  const dbPlace = { ...places[1], cw: places[1].cw * 2 };
  const dbGrid = (v) => gridAt(dbPlace, { values: [[v]], maxAbs: maxAbs(db) || Math.abs(v), numbers: true }).render();
  const dbFinal = dbGrid(db[f]);
  let dbG = dbFinal;
  let shownRevealed = -1;
  const flatDz = m.flat();
  const prefix = [];
  flatDz.reduce((s, v, k) => (prefix[k] = s + v), 0);
  ui.root.dataset.shown = JSON.stringify(flatDz);
  ui.explain(t(flatDz.length === 1 ? "convBack.biasOne" : "convBack.bias", { n: flatDz.length }));
  ui.notes(t("convBack.biasNote"));
  let cur = 0;

  function select(p) {
    cur = p;
    ui.formula(...sumEquation({ lhs: [grad(sym("b", f)), mo("="), sigma("i,j"), grad(sym("z", `${f},i,j`)), mo("=")],
      terms: flatDz.map((v) => ({ v })), result: db[f], role: "db-value", perLine: Math.max(4, Math.min(8, Wo)),
      zeroReason: t("sum.whyDz") }),
    math(mtext(t("convBack.running", { k: p + 1, n: flatDz.length })), mo("="), mn(prefix[p], { role: "running" })));
    const [i, j] = rc(p, Wo);
    Object.assign(ui.root.dataset, { f: String(f), i: String(i), j: String(j) });
  }

  function draw(p, revealed) {
    const g = ui.g;
    clear(ui);
    if (revealed !== shownRevealed) {
      dbG = revealed >= Ho * Wo ? dbFinal : dbGrid(prefix[Math.max(0, revealed - 1)]);
      shownRevealed = revealed;
    }
    dzG.draw(g);
    const cells = [];
    for (let k = 0; k < Math.min(revealed, Ho * Wo); k++) cells.push(rc(k, Wo));
    dzG.shade(g, cells, CONFIG.colors.window, 0.25);
    const [i, j] = rc(cur, Wo);
    dzG.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
    dbG.draw(g);
    between(g, dzG, dbG, "∑");
    label(g, dzG, t("panel.dz", { c: f }), `${Ho}×${Wo}`);
    label(g, dbG, t("panel.db", { c: f }), t("convBack.runningShort", { v: fmt(prefix[Math.min(revealed, Ho * Wo) - 1], 4) }));
  }

  function hit(x, y) {
    const h = dzG.hit(x, y);
    return h ? h[0] * Wo + h[1] : null;
  }

  return { positions: Ho * Wo, select, draw, hit, grids: () => [dzG, dbG] };
}

/** "u + s·i" written plainly: "i", "2 + i", "2·i", "1 + 2·i" (never "1+1i"). */
function offset(u, s, idx) {
  const step = s === 1 ? idx : `${s}·${idx}`;
  return u ? `${u} + ${step}` : step;
}

export function convWeight(ui, { spec, layer }) {
  const A = layer.forward.a_prev;
  const dz = layer.backward.dC_dz;
  const dw = layer.backward.dC_dw;
  const [kh, kw] = spec.kernel_size;
  const [sh, sw] = spec.stride;
  const [ph, pw] = spec.padding;
  const f = channelPicker(ui, "f", "detail.outChannel", dz.length);
  const c = channelPicker(ui, "c", "detail.inChannel", A.length);
  const [H, W] = [A[0].length, A[0][0].length];
  const [Ho, Wo] = [dz[0].length, dz[0][0].length];
  const D = dilate2d(dz[f], sh, sw);
  const [Hd, Wd] = [D.length, D[0].length];
  const places = layoutRow(ui, [{ rows: H + 2 * ph, cols: W + 2 * pw }, { rows: Hd, cols: Wd }, { rows: Ho, cols: Wo },
    { rows: kh, cols: kw, zoom: true }], { gap: 40 });
  const aG = gridAt(places[0], { values: A[c], maxAbs: maxAbs(A), pad: [ph, pw] }).render();
  const dG = gridAt(places[1], { values: D, maxAbs: maxAbs(dz[f]) }).render();
  const inserted = [];
  for (let r = 0; r < Hd; r++) for (let q = 0; q < Wd; q++) if (r % sh || q % sw) inserted.push([r, q]);
  const dwG = gridAt(places[3], { values: dw[f][c], maxAbs: maxAbs(dw[f]), numbers: true }).render();
  const dwEmpty = gridAt(places[3], { rows: kh, cols: kw, empty: true }).render();
  // Padded input cells no forward window reached (when H + 2p − k is not divisible by the stride).
  const uncovered = [];
  const [cH, cW] = [(Ho - 1) * sh + kh, (Wo - 1) * sw + kw];
  for (let r = 0; r < H + 2 * ph; r++) for (let q = 0; q < W + 2 * pw; q++) if (r >= cH || q >= cW) uncovered.push([r, q]);
  let prodG = null;
  let cur = [0, 0];

  ui.explain(t("convBack.weight", { s: `${sh}×${sw}` }));
  ui.notes(t("convBack.weightNote") + (sh > 1 || sw > 1 ? " " + t("convBack.dilated", { s: sh }) : "") +
    (uncovered.length ? " " + t("conv.uncovered", { n: uncovered.length }) : ""));

  function select(p) {
    const [u, v] = rc(p, kw);
    cur = [u, v];
    const prods = dz[f].map((row, i) => row.map((d, j) => aG.valueAt(u + i * sh, v + j * sw) * d));
    prodG = gridAt(places[2], { values: prods, maxAbs: maxAbs(prods) }).render(prodG && prodG.base);
    const terms = [];
    dz[f].forEach((row, i) => row.forEach((d, j) => terms.push({ a: aG.valueAt(u + i * sh, v + j * sw), b: d })));
    ui.formula(...sumEquation({ lhs: [grad(sym("w", `${f},${c},${u},${v}`)), mo("="), sigma("i,j"),
      mrow(sym("a", `pad ${c}, ${offset(u, sh, "i")}, ${offset(v, sw, "j")}`)), mo("·"), grad(sym("z", `${f},i,j`)), mo("=")],
    terms, result: dw[f][c][u][v], role: "dw-value", perLine: Math.min(6, Math.max(3, Wo)), zeroReason: t("sum.whyConvW") }));
    Object.assign(ui.root.dataset, { f: String(f), c: String(c), i: String(u), j: String(v) });
  }

  function draw(p, revealed) {
    const [u, v] = cur;
    const g = ui.g;
    clear(ui);
    aG.draw(g);
    aG.outline(g, u, v, Hd, Wd, CONFIG.colors.window, 3);
    const hits = [];
    for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) hits.push([u + i * sh, v + j * sw]);
    aG.shade(g, hits, CONFIG.colors.window, 0.22);
    if (uncovered.length) aG.hatch(g, uncovered, CONFIG.colors.uncovered);
    dG.draw(g);
    if (inserted.length) dG.shade(g, inserted, CONFIG.colors.padding, 0.7);
    if (prodG) prodG.draw(g);
    dwG.drawPartial(g, revealed, dwEmpty);
    dwG.outline(g, u, v, 1, 1, CONFIG.colors.focus, 3);
    label(g, aG, t("conv.input", { c }), t(ph || pw ? "conv.inputSub" : "conv.inputSubNoPad", { shape: `${H}×${W}`, ph, pw }));
    label(g, dG, t(sh > 1 || sw > 1 ? "panel.dzDilated" : "panel.dz", { c: f }), `${Hd}×${Wd}`);
    label(g, prodG, t("convBack.products"), `${Ho}×${Wo}`);
    label(g, dwG, t("panel.dw", { c: `${f},${c}` }), `${kh}×${kw}`);
    between(g, aG, dG, "⋆");
    between(g, dG, prodG, "=");
    between(g, prodG, dwG, "∑");
  }

  function hit(x, y) {
    const h = dwG.hit(x, y);
    return h ? h[0] * kw + h[1] : null;
  }

  return { positions: kh * kw, select, draw, hit, grids: () => [aG, dG, prodG, dwG] };
}
