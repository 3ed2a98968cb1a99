// conv forward: the kernel window slides over the zero-padded input by the stride; at each position
// the element-wise products, their sum and the bias give one output cell z[f, i, j].

import { CONFIG } from "../config.js";
import { maxAbs, rc } from "../math/tensor.js";
import { mo, sumEquation, sym } from "../math/mathml.js";
import { between, channelPicker, clear, gridAt, label, layoutRow, link, small, t } from "./common.js";

export function convForward(ui, { spec, layer }) {
  const A = layer.forward.a_prev;
  const Wt = layer.params.w;
  const Z = layer.forward.z;
  const [kh, kw] = spec.kernel_size;
  const [sh, sw] = spec.stride;
  const [ph, pw] = spec.padding;
  const cin = A.length;
  const [H, W] = [A[0].length, A[0][0].length];
  const [Ho, Wo] = [Z[0].length, Z[0][0].length];
  const f = channelPicker(ui, "f", "detail.outChannel", Z.length);
  const c = channelPicker(ui, "c", "detail.inChannel", cin);
  const zoomWindow = !small(H + 2 * ph, W + 2 * pw);

  const items = [{ cols: W + 2 * pw, rows: H + 2 * ph }];
  if (zoomWindow) items.push({ cols: kw, rows: kh, zoom: true });
  items.push({ cols: kw, rows: kh, zoom: true }, { cols: Wo, rows: Ho });
  const places = layoutRow(ui, items);
  const input = gridAt(places[0], { values: A[c], maxAbs: maxAbs(A), pad: [ph, pw] }).render();
  const kPlace = places[zoomWindow ? 2 : 1];
  const kernel = gridAt(kPlace, { values: Wt[f][c], maxAbs: maxAbs(Wt[f]), numbers: true }).render();
  const oPlace = places[places.length - 1];
  const out = gridAt(oPlace, { values: Z[f], maxAbs: maxAbs(Z[f]) }).render();
  const empty = gridAt(oPlace, { rows: Ho, cols: Wo, empty: true }).render();
  // Where the output cells are on the canvas (lets tests click a cell).
  ui.root.dataset.outGrid = JSON.stringify([out.x, out.y, out.cw, out.ch]);
  let win = null;

  // Rows/cols of the padded input that no window reaches when (H + 2p − k) is not divisible by s.
  const coveredH = (Ho - 1) * sh + kh;
  const coveredW = (Wo - 1) * sw + kw;
  const uncovered = [];
  for (let r = 0; r < H + 2 * ph; r++) {
    for (let q = 0; q < W + 2 * pw; q++) if (r >= coveredH || q >= coveredW) uncovered.push([r, q]);
  }

  ui.explain(t(ph || pw ? "conv.explain" : "conv.explainNoPad", { k: `${kh}×${kw}`, s: `${sh}×${sw}`, p: `${ph}×${pw}` }));
  const notes = t("conv.shape", { H, W, kh, kw, ph, pw, sh, sw, Ho, Wo }) +
    (uncovered.length ? " " + t("conv.uncovered", { n: uncovered.length }) : "") + " " + t("detail.clickHint");

  let cur = [0, 0];

  function select(p) {
    const [i, j] = rc(p, Wo);
    cur = [i, j];
    const wv = [];
    const terms = [];
    for (let u = 0; u < kh; u++) {
      const row = [];
      for (let v = 0; v < kw; v++) {
        const xv = input.valueAt(i * sh + u, j * sw + v);
        row.push(xv);
        terms.push({ a: xv, b: Wt[f][c][u][v] });
      }
      wv.push(row);
    }
    if (zoomWindow) {
      win = gridAt(places[1], { values: wv, maxAbs: input.maxAbs, numbers: true }).render(win && win.base);
    }
    let others = 0;
    for (let cc = 0; cc < cin; cc++) {
      if (cc === c) continue;
      for (let u = 0; u < kh; u++) {
        for (let v = 0; v < kw; v++) {
          const r = i * sh + u - ph;
          const q = j * sw + v - pw;
          if (r >= 0 && q >= 0 && r < H && q < W) others += A[cc][r][q] * Wt[f][cc][u][v];
        }
      }
    }
    const extra = [];
    if (cin > 1) extra.push({ v: others, label: t(cin === 2 ? "conv.otherChannelsOne" : "conv.otherChannels", { n: cin - 1 }) });
    extra.push({ v: layer.params.b[f], label: `b${f}` });
    // One line per kernel row keeps the products readable; every product is printed.
    ui.formula(...sumEquation({ lhs: [sym("z", `${f},${i},${j}`), mo("=")], terms, extra, result: Z[f][i][j],
      role: "z-value", all: Infinity, perLine: kh * kw <= 9 ? 9 : kw }));
    Object.assign(ui.root.dataset, { f: String(f), c: String(c), i: String(i), j: String(j) });
    const [r0, c0] = [Math.max(0, i * sh - ph), Math.max(0, j * sw - pw)];
    const [r1, c1] = [Math.min(H - 1, i * sh - ph + kh - 1), Math.min(W - 1, j * sw - pw + kw - 1)];
    ui.notes(notes + " " + t("conv.receptive", { i, j, r0, r1, c0, c1 }));
  }

  function draw(p, revealed) {
    const [i, j] = cur;
    clear(ui);
    const g = ui.g;
    input.draw(g);
    if (uncovered.length) input.hatch(g, uncovered, CONFIG.colors.uncovered);
    input.outline(g, i * sh, j * sw, kh, kw, CONFIG.colors.window, 3);
    if (win) win.draw(g);
    kernel.draw(g);
    kernel.outline(g, 0, 0, kh, kw, CONFIG.colors.kernel, 3);
    out.drawPartial(g, revealed, empty);
    out.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
    const [x1, y1] = input.center(i * sh + kh / 2 - 0.5, j * sw + kw / 2 - 0.5);
    const [x2, y2] = out.center(i, j);
    link(g, x1, y1, x2, y2, CONFIG.colors.window);
    label(g, input, t("conv.input", { c }), t(ph || pw ? "conv.inputSub" : "conv.inputSubNoPad", { shape: `${H}×${W}`, ph, pw }));
    if (win) {
      label(g, win, t("conv.window"), `[${i * sh - ph}…${i * sh - ph + kh - 1}, ${j * sw - pw}…${j * sw - pw + kw - 1}]`);
      between(g, win, kernel, "⊙");
    }
    label(g, kernel, t("conv.kernel", { f, c }), `${kh}×${kw}`);
    label(g, out, t("conv.output", { f }), `${Ho}×${Wo}`);
    between(g, kernel, out, "→");
  }

  function hit(x, y) {
    const h = out.hit(x, y);
    return h ? h[0] * Wo + h[1] : null;
  }

  return { positions: Ho * Wo, select, draw, hit, grids: () => [input, win, kernel, out] };
}

