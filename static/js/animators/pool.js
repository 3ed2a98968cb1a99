// Max / average pooling forward: the window moves by the stride; the max is highlighted (or every
// cell shares the mean); the output fills in.

import { CONFIG } from "../config.js";
import { maxAbs, rc } from "../math/tensor.js";
import { fitDigits } from "../format.js";
import { joined, math, mfrac, mi, mn, mo, mrow, mtext, sym } from "../math/mathml.js";
import { between, channelPicker, clear, gridAt, label, layoutRow, link, small, t } from "./common.js";

export function poolForward(ui, { spec, layer }) {
  const isMax = spec.type === "maxpool2d";
  const A = layer.forward.a_prev;
  const Z = layer.forward.a;
  const [kh, kw] = spec.kernel_size;
  const [sh, sw] = spec.stride;
  const [ph, pw] = spec.padding;
  const [H, W] = [A[0].length, A[0][0].length];
  const [Ho, Wo] = [Z[0].length, Z[0][0].length];
  const c = channelPicker(ui, "c", "detail.channel", A.length);
  const zoom = !small(H + 2 * ph, W + 2 * pw);
  const items = [{ cols: W + 2 * pw, rows: H + 2 * ph }];
  if (zoom) items.push({ cols: kw, rows: kh, zoom: true });
  items.push({ cols: Wo, rows: Ho });
  const places = layoutRow(ui, items, { gap: 44 });
  const padValue = isMax ? -Infinity : 0;
  const scale = maxAbs(A[c]);
  const input = gridAt(places[0], { values: A[c], maxAbs: scale, pad: [ph, pw], padValue }).render();
  const oPlace = places[places.length - 1];
  const out = gridAt(oPlace, { values: Z[c], maxAbs: scale }).render();
  const empty = gridAt(oPlace, { rows: Ho, cols: Wo, empty: true }).render();
  let win = null;
  let cur = [0, 0];
  let best = null;

  ui.explain(t(isMax ? "pool.explainMax" : "pool.explainAvg", { k: `${kh}×${kw}`, s: `${sh}×${sw}` }));
  ui.notes(t("conv.shape", { H, W, kh, kw, ph, pw, sh, sw, Ho, Wo }) + " " + t("detail.clickHint"));

  function select(p) {
    const [i, j] = rc(p, Wo);
    cur = [i, j];
    const vals = [];
    for (let u = 0; u < kh; u++) {
      const row = [];
      for (let v = 0; v < kw; v++) row.push(input.valueAt(i * sh + u, j * sw + v));
      vals.push(row);
    }
    const flatVals = vals.flat();
    const { d, rd } = fitDigits(flatVals, (pv) => (isMax ? Math.max(...pv) : pv.reduce((s2, x) => s2 + x, 0) / (kh * kw)), Z[c][i][j]);
    const terms = flatVals.map((x) => mn(x, { paren: !isMax, digits: d }));
    if (isMax && layer.argmax) {
      const [r, q] = layer.argmax[c][i][j];
      best = [r + ph, q + pw];
    }
    if (zoom) win = gridAt(places[1], { values: vals, maxAbs: scale, numbers: true }).render(win && win.base);
    const y = Z[c][i][j];
    const lhs = [sym("a", `${c},${i},${j}`), mo("=")];
    const body = isMax
      ? [mi("max"), mo("("), joined(terms, ","), mo(")")]
      : [mfrac(joined(terms, "+"), mn(kh * kw))];
    const tail = [mo("="), mn(y, { role: "pool-value", digits: rd })];
    const note = isMax && best ? [mtext("\u2003"), mtext(t("pool.argmax", { r: best[0] - ph, c: best[1] - pw }))] : [];
    ui.formula(math(...lhs, mrow(...body), ...tail, ...note));
    Object.assign(ui.root.dataset, { f: String(c), i: String(i), j: String(j) });
  }

  function draw(p, revealed) {
    const [i, j] = cur;
    const g = ui.g;
    clear(ui);
    input.draw(g);
    input.outline(g, i * sh, j * sw, kh, kw, CONFIG.colors.window, 3);
    if (best) input.outline(g, best[0], best[1], 1, 1, CONFIG.colors.highlight, 3);
    if (!isMax) {
      const cells = [];
      for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) cells.push([i * sh + u, j * sw + v]);
      input.shade(g, cells, CONFIG.colors.window, 0.18);
    }
    if (win) {
      win.draw(g);
      if (best) win.outline(g, best[0] - i * sh, best[1] - j * sw, 1, 1, CONFIG.colors.highlight, 3);
      label(g, win, t("conv.window"), `${kh}×${kw}`);
      between(g, win, out, isMax ? "max" : "mean");
    } else between(g, input, out, isMax ? "max" : "mean");
    out.drawPartial(g, revealed, empty);
    out.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
    const [x1, y1] = input.center(i * sh + kh / 2 - 0.5, j * sw + kw / 2 - 0.5);
    const [x2, y2] = out.center(i, j);
    link(g, x1, y1, x2, y2, CONFIG.colors.window);
    label(g, input, t("pool.input", { c }), t(ph || pw ? "conv.inputSub" : "conv.inputSubNoPad", { shape: `${H}×${W}`, ph, pw }));
    label(g, out, t("pool.output", { c }), `${Ho}×${Wo}`);
  }

  function hit(x, y) {
    const h = out.hit(x, y);
    return h ? h[0] * Wo + h[1] : null;
  }

  return { positions: Ho * Wo, select, draw, hit, grids: () => [input, win, out] };
}
