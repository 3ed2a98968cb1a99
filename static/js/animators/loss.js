// The loss: the output a beside the target y, the cost C, and the gradient that starts the
// backward pass: dC/da = a − y for MSE, or dC/dz = a − y for softmax with cross-entropy.

import { CONFIG } from "../config.js";
import { flat, maxAbs, rc } from "../math/tensor.js";
import { fitDigits } from "../format.js";
import { grad, joined, math, mfrac, mi, mn, mo, mrow, msup, mtext, sym } from "../math/mathml.js";
import { asMaps, between, cellName, channelPicker, clear, gridAt, label, layoutColumn, layoutRow, t } from "./common.js";

export function loss(ui, { trace }) {
  const last = trace.layers[trace.layers.length - 1];
  const ce = trace.network.loss === "cross_entropy";
  const softCE = ce && trace.network.layers[trace.layers.length - 1].activation === "softmax";
  const a = trace.output;
  const y = trace.target;
  const gvals = softCE ? last.backward.dC_dz : last.backward.dC_da;
  const A = asMaps(a);
  const ch = channelPicker(ui, "f", "detail.channel", A.maps.length);
  const panels = [A.maps[ch], asMaps(y).maps[ch], asMaps(gvals).maps[ch]];
  const rows = panels[0].length;
  const cols = panels[0][0].length;
  const places = rows === 1 ? layoutColumn(ui, panels.length, cols)
    : layoutRow(ui, panels.map(() => ({ rows, cols })), { gap: 48 });
  const grids = panels.map((m, k) => gridAt(places[k], { values: m, maxAbs: maxAbs(m) || 1 }).render());
  let cur = [0, 0];
  // Softmax underflow (a logit gap over ~710): the target's probability is exactly 0 in float64,
  // so ∂C/∂a = −y/a is −∞ there (the API sends −inf; it is not used by backpropagation).
  const kT = ce ? flat(y).indexOf(1) : -1;
  const underflow = kT >= 0 && flat(a)[kT] === 0;

  ui.explain(t(ce ? (softCE ? "loss.explainSoftCE" : "loss.explainCE") : "loss.explainMSE"));
  const canRetarget = document.body.dataset.source === "model";
  ui.notes(t(canRetarget ? "loss.notes" : "loss.notesFixed", { C: trace.loss.toPrecision(6) }));

  function costFormula() {
    const flatA = A.vector ? a : a.flat(Infinity);
    const flatY = A.vector ? y : y.flat(Infinity);
    if (ce) {
      // C = −log a_k of the true a_k: printed with the digits that make −log(shown) = shown C.
      const k = flatY.findIndex((v) => v === 1);
      if (underflow) {
        // a_k is exactly 0 in float64: −log 0 would be ∞, so C is printed as the engine computes
        // it, log Σ e^z − z_k (log-sum-exp over the last layer's z), which holds as printed.
        const z = flat(last.forward.z);
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
        const { d, rd } = fitDigits([lse, z[k]], ([p1, p2]) => p1 - p2, trace.loss);
        return math(mi("C"), mo("="), mo("−"), mi("log"), sym("a", k), mo("="), mi("log"), mo("∑"), msup(mi("e"), sym("z", "j")),
          mo("−"), sym("z", k), mo("="), mn(lse, { digits: d }), mo("−"), mn(z[k], { paren: true, digits: d }), mo("="),
          mn(trace.loss, { role: "loss-value", digits: rd }));
      }
      const { d, rd } = fitDigits([flatA[k]], ([x]) => -Math.log(x), trace.loss);
      return math(mi("C"), mo("="), mo("−"), mo("∑"), sym("y", "k"), mi("log"), sym("a", "k"), mo("="),
        mo("−"), mi("log"), mrow(mo("("), mn(flatA[k], { digits: d }), mo(")")), mo("="),
        mn(trace.loss, { role: "loss-value", digits: rd }));
    }
    const ops = flatA.flatMap((v, k) => [v, flatY[k]]);
    const evalFn = (p) => {
      let s2 = 0;
      for (let k = 0; k < p.length; k += 2) s2 += (p[k] - p[k + 1]) ** 2;
      return s2 / 2;
    };
    const { d, rd } = fitDigits(ops, evalFn, trace.loss);
    const terms = flatA.map((v, k) => msup(mrow(mo("("), mn(v, { digits: d }), mo("−"), mn(flatY[k], { digits: d }), mo(")")), mn(2)));
    return math(mi("C"), mo("="), mfrac(mn(1), mn(2)), mo("∑"), msup(mrow(mo("("), sym("a", "k"), mo("−"), sym("y", "k"), mo(")")), mn(2)),
      mo("="), mfrac(mn(1), mn(2)), mrow(mo("("), joined(terms, "+", Infinity), mo(")")), mo("="),
      mn(trace.loss, { role: "loss-value", digits: rd }));
  }

  function select(p) {
    const [i, j] = rc(p, cols);
    cur = [i, j];
    const name = cellName(A.vector, ch, i, j, cols);
    const [av, yv, gv] = panels.map((m) => m[i][j]);
    const lhs = softCE ? grad(sym("z", name)) : grad(sym("a", name));
    let rhs;
    if (ce && !softCE) {
      const { d, rd } = fitDigits([yv, av], ([p1, p2]) => -p1 / p2, gv);
      rhs = [mo("−"), mfrac(sym("y", name), sym("a", name)), mo("="), mo("−"), mfrac(mn(yv, { digits: d }), mn(av, { digits: d })),
        mo("="), mn(gv, { role: "grad-value", digits: rd })];
    } else {
      const { d, rd } = fitDigits([av, yv], ([p1, p2]) => p1 - p2, gv);
      rhs = [sym("a", name), mo("−"), sym("y", name), mo("="), mn(av, { digits: d }), mo("−"), mn(yv, { digits: d }),
        mo("="), mn(gv, { role: "grad-value", digits: rd })];
    }
    const notes = softCE ? [math(mtext(t("loss.softCEnote")))] : [];
    if (underflow) {
      // ∂C/∂a_k = −y_k / a_k = −1/0 = −∞, from the trace's own dC/da (−inf), and why
      const dA = flat(last.backward.dC_da || [])[kT];
      const kName = String(kT);
      if (softCE) {
        notes.push(math(grad(sym("a", kName)), mo("="), mo("−"), mfrac(sym("y", kName), sym("a", kName)), mo("="), mo("−"),
          mfrac(mn(flat(y)[kT]), mn(flat(a)[kT])), mo("="), mn(dA ?? -flat(y)[kT] / flat(a)[kT], { role: "da-underflow" })));
      }
      notes.push(math(mtext(t("loss.underflow"))));
    }
    ui.formula(costFormula(), math(lhs, mo("="), ...rhs), ...notes);
    ui.root.dataset.underflow = String(underflow);
    Object.assign(ui.root.dataset, { f: String(ch), i: String(i), j: String(j) });
  }

  function draw() {
    const [i, j] = cur;
    const g = ui.g;
    clear(ui);
    grids.forEach((grid, k) => {
      grid.draw(g);
      grid.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
      if (k) between(g, grids[k - 1], grid, k === 1 ? "↔" : "→");
    });
    const shape = A.vector ? `${A.n}` : `${rows}×${cols}`;
    const v = A.vector ? "Vec" : "";
    label(g, grids[0], t("panel.a" + v, { c: ch }), shape);
    label(g, grids[1], t("panel.y" + v, { c: ch }), shape);
    label(g, grids[2], t((softCE ? "panel.dz" : "panel.da") + v, { c: ch }), shape);
  }

  function hit(x, yy) {
    for (const grid of grids) {
      const h = grid.hit(x, yy);
      if (h && (!A.vector || h[0] * cols + h[1] < A.n)) return h[0] * cols + h[1];
    }
    return null;
  }

  return { positions: A.vector ? A.n : rows * cols, select, draw, hit, grids: () => grids };
}
