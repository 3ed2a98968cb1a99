// Pool backward. Max: each output gradient goes to its window's argmax (the mask); where windows
// overlap, one input cell can receive several contributions that add up. Average: every cell of a
// window receives δ / (kH·kW).

import { CONFIG } from "../config.js";
import { maxAbs, rc, zeros } from "../math/tensor.js";
import { fitDigits } from "../format.js";
import { grad, joined, math, mfrac, mn, mo, mtext, sym } from "../math/mathml.js";
import { between, channelPicker, clear, gridAt, label, layoutRow, t } from "./common.js";

export function poolBackward(ui, { spec, layer }) {
  const isMax = spec.type === "maxpool2d";
  const [kh, kw] = spec.kernel_size;
  const [sh, sw] = spec.stride;
  const [ph, pw] = spec.padding;
  const A = layer.forward.a_prev;
  const dA = layer.backward.dC_da;
  const dX = layer.backward.dC_da_prev;
  const c = channelPicker(ui, "c", "detail.channel", A.length);
  const [H, W] = [A[0].length, A[0][0].length];
  const [Ho, Wo] = [dA[0].length, dA[0][0].length];
  const n = kh * kw;
  // targets[k]: the input cells (unpadded) output cell k sends gradient to, with the share.
  const targets = [];
  for (let i = 0; i < Ho; i++) {
    for (let j = 0; j < Wo; j++) {
      const d = dA[c][i][j];
      if (isMax) {
        const [r, q] = layer.argmax[c][i][j];
        targets.push([[r, q, d]]);
      } else {
        const list = [];
        for (let u = 0; u < kh; u++) {
          for (let v = 0; v < kw; v++) {
            const r = i * sh + u - ph;
            const q = j * sw + v - pw;
            if (r >= 0 && q >= 0 && r < H && q < W) list.push([r, q, d / n]);
          }
        }
        targets.push(list);
      }
    }
  }
  const contributions = zeros(H, W).map((row) => row.map(() => []));
  targets.forEach((list, k) => list.forEach(([r, q, v]) => contributions[r][q].push([k, v])));
  const places = layoutRow(ui, [{ rows: H + 2 * ph, cols: W + 2 * pw }, { rows: Ho, cols: Wo }, { rows: H, cols: W }], { gap: 48 });
  const aG = gridAt(places[0], { values: A[c], maxAbs: maxAbs(A[c]), pad: [ph, pw], padValue: isMax ? -Infinity : 0 }).render();
  const dG = gridAt(places[1], { values: dA[c], maxAbs: maxAbs(dA[c]) }).render();
  const scale = maxAbs(dX[c]) || maxAbs(dA[c]);
  const finalG = gridAt(places[2], { values: dX[c], maxAbs: scale }).render();
  let accG = finalG;
  let cur = 0;
  let lastRevealed = -1;

  ui.explain(t(isMax ? "poolBack.max" : "poolBack.avg", { n }));
  ui.notes(t(isMax ? "poolBack.maxNote" : "poolBack.avgNote"));

  function select(k) {
    cur = k;
    const [i, j] = rc(k, Wo);
    const d = dA[c][i][j];
    const [r, q] = targets[k].length ? targets[k][0] : [0, 0];
    let f;
    const list = contributions[r][q];
    const sumFit = fitDigits(list.map(([, v]) => v), (pv) => pv.reduce((s2, x) => s2 + x, 0), dX[c][r][q]);
    const sumLine = [grad(sym("a", `prev ${c},${r},${q}`)), mo("="),
      joined(list.map(([, v]) => mn(v, { paren: true, digits: sumFit.d })), "+", Infinity), mo("="),
      mn(dX[c][r][q], { role: "dx-value", digits: sumFit.rd })];
    if (isMax) {
      f = [math(grad(sym("a", `${c},${i},${j}`)), mo("="), mn(d), mo("→"), mtext(t("poolBack.to", { r, q }))),
        math(...sumLine, mtext("\u2003" + t(list.length === 1 ? "poolBack.countOne" : "poolBack.count", { n: list.length })))];
    } else {
      const share = fitDigits([d], ([x]) => x / n, d / n);
      f = [math(mtext(t("poolBack.share") + " "), mfrac(mn(d, { digits: share.d }), mn(n)), mo("="), mn(d / n, { digits: share.rd })),
        math(...sumLine)];
    }
    ui.formula(...f);
    Object.assign(ui.root.dataset, { f: String(c), i: String(i), j: String(j) });
  }

  /** The running sum the animation reveals: the contributions of the first `revealed` windows. */
  function runningSum(revealed) {
    const m = zeros(H, W);
    for (let k = 0; k < revealed; k++) for (const [r, q, v] of targets[k]) m[r][q] += v;
    return m;
  }

  function accumulated(revealed) {
    if (revealed >= Ho * Wo) return finalG;
    return gridAt(places[2], { values: runningSum(revealed), maxAbs: scale }).render();
  }

  function draw(_pos, revealed) {
    const g = ui.g;
    if (revealed !== lastRevealed) {
      accG = accumulated(revealed);
      lastRevealed = revealed;
    }
    const [i, j] = rc(cur, Wo);
    clear(ui);
    aG.draw(g);
    aG.outline(g, i * sh, j * sw, kh, kw, CONFIG.colors.window, 3);
    dG.draw(g);
    dG.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
    accG.draw(g);
    for (const [r, q] of targets[cur]) {
      aG.outline(g, r + ph, q + pw, 1, 1, CONFIG.colors.highlight, 3);
      accG.outline(g, r, q, 1, 1, CONFIG.colors.highlight, 3);
    }
    if (isMax) {
      const multi = [];
      contributions.forEach((row, r) => row.forEach((list, q) => list.length > 1 && multi.push([r, q])));
      accG.shade(g, multi, CONFIG.colors.kernel, 0.25);
    }
    label(g, aG, t("pool.input", { c }), isMax ? t("poolBack.maskSub") : `${H}×${W}`);
    label(g, dG, t("panel.da", { c }), `${Ho}×${Wo}`);
    label(g, accG, t("panel.dx", { c }), `${H}×${W}`);
    between(g, dG, accG, "→");
  }

  function hit(x, y) {
    const h = dG.hit(x, y);
    return h ? h[0] * Wo + h[1] : null;
  }

  return { positions: Ho * Wo, select, draw, hit, grids: () => [aG, dG, accG], runningSum };
}
