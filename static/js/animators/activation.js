// The activation, forward (a = g(z)) and backward (dC/dz = dC/da ⊙ g′(z); a − y for softmax with
// cross-entropy), cell by cell, with the curve of g and g′ beside the maps.

import { CONFIG } from "../config.js";
import { fitDigits, fmt } from "../format.js";
import { maxAbs, rc } from "../math/tensor.js";
import { grad, math, mi, mn, mo, mrow, msup, mtext, sym, sigma } from "../math/mathml.js";
import { asMaps, between, cellName, channelPicker, clear, gridAt, label, layoutColumn, layoutRow, t } from "./common.js";

const G = {
  identity: (z) => z,
  relu: (z) => Math.max(0, z),
  sigmoid: (z) => 1 / (1 + Math.exp(-z)),
  tanh: (z) => Math.tanh(z),
};
const DG = {
  identity: () => 1,
  relu: (z) => (z > 0 ? 1 : 0),
  sigmoid: (z) => G.sigmoid(z) * (1 - G.sigmoid(z)),
  tanh: (z) => 1 - Math.tanh(z) ** 2,
};

export function activation(ui, { trace, step, spec, layer }) {
  const act = spec.activation;
  const backward = step.kind === "activation_back";
  const last = step.layer === trace.layers.length - 1;
  const softCE = backward && last && act === "softmax" && trace.network.loss === "cross_entropy";
  const { forward: fw, backward: bw } = layer;
  const z = asMaps(fw.z);
  const ch = channelPicker(ui, "f", "detail.channel", z.maps.length);
  const pick = (x) => asMaps(x).maps[ch];
  let panels;
  if (!backward) panels = [["z", pick(fw.z)], ["a", pick(fw.a)]];
  else if (softCE) panels = [["a", pick(fw.a)], ["y", pick(trace.target)], ["dz", pick(bw.dC_dz)]];
  else if (act === "softmax") panels = [["da", pick(bw.dC_da)], ["a", pick(fw.a)], ["dz", pick(bw.dC_dz)]];
  else panels = [["da", pick(bw.dC_da)], ["gp", pick(fw.z).map((r) => r.map((v) => (v === null ? null : DG[act](v))))], ["dz", pick(bw.dC_dz)]];
  // The signs between the panels: z → a;  ∂C/∂a ⊙ g′ = ∂C/∂z;  a − y = ∂C/∂z.
  const signs = !backward ? ["→"] : softCE ? ["−", "="] : act === "softmax" ? ["·", "="] : ["⊙", "="];
  const rows = panels[0][1].length;
  const cols = panels[0][1][0].length;
  const plot = act in G;
  const items = panels.map(() => ({ rows, cols }));
  if (plot) items.push({ rows: 5, cols: 6, zoom: true });
  let places;
  if (rows === 1) {
    const plotW = plot ? 6 * 40 + 40 : 0;
    places = layoutColumn(ui, panels.length, cols, { right: plotW });
    if (plot) places.push({ x: ui.width - plotW, y: places[0].y, cw: 40, ch: 40 });
  } else places = layoutRow(ui, items, { gap: 44 });
  const grids = panels.map(([, m], k) => gridAt(places[k], { values: m, maxAbs: maxAbs(m) }).render());
  const plotPlace = plot ? places[places.length - 1] : null;

  const key = backward ? (softCE ? "act.backSoftCE" : act === "softmax" ? "act.backSoftmax" : "act.back")
    : act === "softmax" ? "act.forwardSoftmax" : "act.forward";
  ui.explain(t(key, { g: act }));
  ui.notes(t("act.g." + act));
  let cur = [0, 0];

  function select(p) {
    const [i, j] = rc(p, cols);
    cur = [i, j];
    const name = cellName(z.vector, ch, i, j, cols);
    const v = (k) => panels[k][1][i][j];
    let parts;
    let extra = null;
    if (!backward && act === "softmax") {
      // a = e^z / Σ e^z with z and the sum printed so that the shown quotient holds.
      const den = fw.z.reduce((s, x) => s + Math.exp(x), 0);
      const { d, rd } = fitDigits([v(0), den], ([zz, dd]) => Math.exp(zz) / dd, v(1));
      parts = [sym("a", name), mo("="), mrow(msup(mi("e"), mrow(sym("z", name))), mo("/"),
        mrow(mo("∑"), msup(mi("e"), sym("z", "j")))), mo("="), mrow(msup(mi("e"), mn(v(0), { digits: d })), mo("/"), mn(den, { digits: d })),
        mo("="), mn(v(1), { role: "a-value", digits: rd })];
    } else if (!backward) {
      const { d, rd } = fitDigits([v(0)], ([zz]) => G[act](zz), v(1));
      const gp = DG[act](v(0));
      const f2 = fitDigits([v(0)], ([zz]) => DG[act](zz), gp);
      parts = [sym("a", name), mo("="), mi(act), mo("("), mn(v(0), { digits: d }), mo(")"), mo("="), mn(v(1), { role: "a-value", digits: rd })];
      extra = math(mrow(mi(act), mo("′"), mo("("), mn(v(0), { digits: f2.d }), mo(")")), mo("="), mn(gp, { digits: f2.rd }));
    } else if (softCE) {
      const { d, rd } = fitDigits([v(0), v(1)], ([p1, p2]) => p1 - p2, v(2));
      parts = [grad(sym("z", name)), mo("="), sym("a", name), mo("−"), sym("y", name), mo("="),
        mn(v(0), { digits: d }), mo("−"), mn(v(1), { digits: d }), mo("="), mn(v(2), { role: "dz-value", digits: rd })];
    } else if (act === "softmax") {
      parts = [grad(sym("z", name)), mo("="), sym("a", name), mo("("), grad(sym("a", name)), mo("−"),
        sigma("j"), grad(sym("a", "j")), sym("a", "j"), mo(")"), mo("="), mn(v(2), { role: "dz-value" })];
    } else {
      const { d, rd } = fitDigits([v(0), v(1)], ([p1, p2]) => p1 * p2, v(2));
      parts = [grad(sym("z", name)), mo("="), grad(sym("a", name)), mo("·"), mrow(mi(act), mo("′"), mo("("), sym("z", name), mo(")")),
        mo("="), mn(v(0), { paren: true, digits: d }), mo("·"), mn(v(1), { digits: d }), mo("="), mn(v(2), { role: "dz-value", digits: rd })];
    }
    ui.formula(math(...parts), ...(extra ? [extra] : []));
    Object.assign(ui.root.dataset, { f: String(ch), i: String(i), j: String(j) });
  }

  function drawPlot(g, zv) {
    const { x, y } = plotPlace;
    const w = 6 * plotPlace.cw;
    const h = 5 * plotPlace.ch;
    const m = Math.max(1, Math.abs(zv) * 1.2, maxAbs(fw.z) * 0.6);
    const ys = act === "identity" ? m : act === "relu" ? m : 1.1;
    const X = (v) => x + ((v + m) / (2 * m)) * w;
    const Y = (v) => y + h / 2 - (v / ys) * (h / 2);
    g.save();
    g.fillStyle = "#f8fafc";
    g.fillRect(x, y, w, h);
    g.strokeStyle = "#94a3b8";
    g.beginPath();
    g.moveTo(x, Y(0));
    g.lineTo(x + w, Y(0));
    g.moveTo(X(0), y);
    g.lineTo(X(0), y + h);
    g.stroke();
    for (const [fn, color, dash] of [[G[act], CONFIG.colors.positive, []], [DG[act], CONFIG.colors.kernel, [5, 4]]]) {
      g.strokeStyle = typeof color === "string" ? color : `rgb(${color.join(",")})`;
      g.setLineDash(dash);
      g.lineWidth = 2;
      g.beginPath();
      for (let k = 0; k <= 120; k++) {
        const zz = -m + (2 * m * k) / 120;
        const yy = Math.max(y, Math.min(y + h, Y(fn(zz))));
        k ? g.lineTo(X(zz), yy) : g.moveTo(X(zz), yy);
      }
      g.stroke();
    }
    g.setLineDash([]);
    g.fillStyle = CONFIG.colors.focus;
    g.beginPath();
    g.arc(X(zv), Math.max(y, Math.min(y + h, Y(G[act](zv)))), 5, 0, 2 * Math.PI);
    g.fill();
    g.font = `11px ${ui.font}`;
    g.fillText(`z = ${fmt(zv)}`, x + 4, y + h - 6);
    g.restore();
    label(g, { x, y, width: w }, t("act.plot", { g: act }), t("act.plotSub", { g: act }));
  }

  function draw(p, revealed) {
    const [i, j] = cur;
    clear(ui);
    const g = ui.g;
    grids.forEach((grid, k) => {
      if (k === grids.length - 1) {
        const empty = gridAt(places[k], { rows, cols, empty: true });
        grid.drawPartial(g, revealed, grid.empty0 || (grid.empty0 = empty.render()));
      } else grid.draw(g);
      grid.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
      const shape = z.vector ? `${z.n}` : `${rows}×${cols}`;
      label(g, grid, t("panel." + panels[k][0] + (z.vector ? "Vec" : ""), { c: ch }), shape);
      if (k) between(g, grids[k - 1], grid, signs[k - 1]);
    });
    if (plot) drawPlot(g, pick(fw.z)[i][j]);
  }

  function hit(x, y) {
    for (const grid of grids) {
      const h = grid.hit(x, y);
      if (h && (!z.vector || h[0] * cols + h[1] < z.n)) return h[0] * cols + h[1];
    }
    return null;
  }

  return { positions: z.vector ? z.n : rows * cols, select, draw, hit, grids: () => grids };
}
