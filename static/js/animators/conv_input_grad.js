// Conv backward to the input: dC/da_prev. Gather: rot180(w) slides over the dilated dC/dz, zero-padded
// by k − 1 (the full convolution); then the forward padding is cropped away. Scatter (same numbers):
// each δ cell stamps w·δ onto the input window it came from; a cell adds up every stamp covering it.

import { CONFIG } from "../config.js";
import { dilate2d, maxAbs, pad2d, rc, rot180 } from "../math/tensor.js";
import { grad, math, mn, mo, mtext, sumEquation, sym } from "../math/mathml.js";
import { between, channelPicker, clear, gridAt, label, layoutRow, t } from "./common.js";

export function convInputGrad(ui, { spec, layer }) {
  const Wt = layer.params.w;
  const dz = layer.backward.dC_dz;
  const dx = layer.backward.dC_da_prev;
  const [kh, kw] = spec.kernel_size;
  const [sh, sw] = spec.stride;
  const [ph, pw] = spec.padding;
  const c = channelPicker(ui, "c", "detail.inChannel", dx.length);
  const f = channelPicker(ui, "f", "detail.outChannel", dz.length);
  const [H, W] = [dx[0].length, dx[0][0].length];
  const [Hp, Wp] = [H + 2 * ph, W + 2 * pw];
  const [Ho, Wo] = [dz[0].length, dz[0][0].length];
  // P_f: dilated δ of channel f, padded by k − 1, plus the rows/cols no forward window reached.
  const Pof = (ff) => {
    const D = dilate2d(dz[ff], sh, sw);
    return pad2d(D, kh - 1, kw - 1, 0, Hp - ((Ho - 1) * sh + kh), Wp - ((Wo - 1) * sw + kw));
  };
  const P = Pof(f);
  const rots = Wt.map((wf) => rot180(wf[c]));
  const gatherOne = (Pm, rot, p, q) => {
    let s = 0;
    for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) s += Pm[p + u][q + v] * rot[u][v];
    return s;
  };
  const Ps = dz.map((_, ff) => (ff === f ? P : Pof(ff)));
  const full = [];
  for (let p = 0; p < Hp; p++) {
    const row = new Array(Wp);
    for (let q = 0; q < Wp; q++) {
      // channel by channel in order, from 0 (the sum and its rounding as before, in a plain loop)
      let s = 0;
      for (let ff = 0; ff < Ps.length; ff++) s += gatherOne(Ps[ff], rots[ff], p, q);
      row[q] = s;
    }
    full.push(row);
  }
  const places = layoutRow(ui, [{ rows: P.length, cols: P[0].length }, { rows: kh, cols: kw, zoom: true },
    { rows: Hp, cols: Wp }], { gap: 44 });
  const pG = gridAt(places[0], { values: P, maxAbs: maxAbs(dz[f]) }).render();
  const rG = gridAt(places[1], { values: rots[f], maxAbs: maxAbs(Wt), numbers: true }).render();
  const scale = maxAbs(dx[c]) || maxAbs(full);
  const outG = gridAt(places[2], { values: full, maxAbs: scale }).render();
  const outEmpty = gridAt(places[2], { rows: Hp, cols: Wp, empty: true }).render();
  const border = [];
  const extra = [];
  const isDelta = (r, q) => {
    const i = r - (kh - 1);
    const j = q - (kw - 1);
    return i >= 0 && j >= 0 && i % sh === 0 && j % sw === 0 && i / sh < Ho && j / sw < Wo;
  };
  const eh = Hp - ((Ho - 1) * sh + kh);
  const ew = Wp - ((Wo - 1) * sw + kw);
  P.forEach((row, r) => row.forEach((_, q) => {
    if (r >= P.length - eh || q >= row.length - ew) extra.push([r, q]);
    else if (!isDelta(r, q)) border.push([r, q]);
  }));
  // Input cells (padded coords) that no forward window covered: their gradient is zero.
  const uncovered = [];
  for (let r = 0; r < Hp; r++) for (let q = 0; q < Wp; q++) if (r >= Hp - eh || q >= Wp - ew) uncovered.push([r, q]);
  const cropped = [];
  for (let r = 0; r < Hp; r++) for (let q = 0; q < Wp; q++) if (r < ph || q < pw || r >= Hp - ph || q >= Wp - pw) cropped.push([r, q]);

  const strided = sh > 1 || sw > 1; // stride 1: nothing to dilate, say so
  ui.explain(t(strided ? "convBack.input" : "convBack.input1", { k: `${kh}×${kw}` }));
  ui.notes(t("convBack.scatterGather") + (cropped.length ? " " + t("convBack.crop", { ph, pw }) : "") +
    (uncovered.length ? " " + t("conv.uncovered", { n: uncovered.length }) : ""));
  let cur = [0, 0];
  let sources = [];

  function select(pos) {
    const [p, q] = rc(pos, Wp);
    cur = [p, q];
    const terms = [];
    for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) terms.push({ a: P[p + u][q + v], b: rots[f][u][v] });
    const own = gatherOne(P, rots[f], p, q);
    // Scatter view: the δ cells whose forward window covered padded cell (p, q).
    sources = [];
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        if (p >= i * sh && p < i * sh + kh && q >= j * sw && q < j * sw + kw) sources.push([i, j]);
      }
    }
    const inside = p >= ph && q >= pw && p < Hp - ph && q < Wp - pw;
    const extra = dz.length > 1 ? [{ v: full[p][q] - own, label: t(dz.length === 2 ? "convBack.otherOutOne" : "convBack.otherOut", { n: dz.length - 1 }) }] : [];
    const result = inside ? dx[c][p - ph][q - pw] : full[p][q];
    const tail = inside
      ? math(grad(sym("a", `prev ${c},${p - ph},${q - pw}`)), mo("="), mn(dx[c][p - ph][q - pw], { role: "dx-value" }),
        mtext("\u2003" + t(sources.length === 1 ? "convBack.sourcesOne" : "convBack.sources", { n: sources.length })))
      : math(mtext(t("convBack.croppedCell")));
    ui.formula(...sumEquation({ lhs: [grad(sym("a", `pad ${c},${p},${q}`)), mo("=")], terms, extra, result,
      perLine: kh * kw <= 9 ? 9 : kw, all: 49, zeroReason: t("sum.whyGather") }), tail);
    Object.assign(ui.root.dataset, { f: String(f), c: String(c), i: String(p - ph), j: String(q - pw) });
  }

  function draw(pos, revealed) {
    const [p, q] = cur;
    const g = ui.g;
    clear(ui);
    pG.draw(g);
    pG.shade(g, border, CONFIG.colors.padding, 0.55);
    if (extra.length) pG.shade(g, extra, CONFIG.colors.uncovered, 0.3);
    pG.outline(g, p, q, kh, kw, CONFIG.colors.kernel, 3);
    pG.shade(g, sources.map(([i, j]) => [kh - 1 + i * sh, kw - 1 + j * sw]), CONFIG.colors.highlight, 0.6);
    rG.draw(g);
    outG.drawPartial(g, revealed, outEmpty);
    outG.shade(g, cropped, CONFIG.colors.padding, 0.55);
    if (uncovered.length) outG.hatch(g, uncovered, CONFIG.colors.uncovered);
    for (const [i, j] of sources) outG.outline(g, i * sh, j * sw, kh, kw, CONFIG.colors.highlight, 2);
    outG.outline(g, p, q, 1, 1, CONFIG.colors.focus, 3);
    if (ph || pw) outG.outline(g, ph, pw, H, W, CONFIG.colors.window, 2);
    label(g, pG, t(strided ? "convBack.padded" : "convBack.padded1", { f }), `${P.length}×${P[0].length}`);
    label(g, rG, t("convBack.rot", { f, c }), `${kh}×${kw}`);
    label(g, outG, t("convBack.result", { c }), t(ph || pw ? "convBack.resultSub" : "convBack.resultSubNoPad", { shape: `${H}×${W}`, ph, pw }));
    between(g, pG, rG, "⋆");
    between(g, rG, outG, "→");
  }

  function hit(x, y) {
    const h = outG.hit(x, y);
    return h ? h[0] * Wp + h[1] : null;
  }

  return { positions: Hp * Wp, select, draw, hit, grids: () => [pG, rG, outG] };
}
