// "Learn from this drawing": the learning rate, Apply one step, Reset, and what the step changed:
// the loss before and after, per layer the largest |ΔW| and |Δb|, and ΔW of one layer as a heatmap.
// Every number comes from the API (the trace's params and the answer's updated_params).

import { fmt, fmt4, full, percent } from "../format.js";
import { t } from "../i18n.js";
import { flatValues, lazyProperty, nest, present, shapeAt } from "../api.js";
import { flat } from "../math/tensor.js";
import { layerName } from "./overview.js";
import { paintMap } from "./heatmap.js";

const $ = (id) => document.getElementById(id);

/** A number as shown, kept on one line: a word joiner after an exponent's sign stops a narrow
 * card from breaking "3.66e-12" into "3.66e-" and "12" (invisible, and screen readers skip it). */
const whole = (text) => text.replace(/e([+-])/g, "e$1\u2060");

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** a − b element-wise over nested arrays of the same shape. */
export function subtract(a, b) {
  return Array.isArray(a) ? a.map((x, k) => subtract(x, b[k])) : a - b;
}

/** after − before over flat values. */
function delta(after, before) {
  const d = new Float64Array(after.length);
  for (let k = 0; k < d.length; k++) d[k] = after[k] - before[k];
  return d;
}

/** The largest finite |after − before| over flat values (no array made). */
function maxDelta(after, before) {
  let m = 0;
  for (let k = 0; k < after.length; k++) {
    const a = Math.abs(after[k] - before[k]);
    if (a > m && a !== Infinity) m = a;
  }
  return m;
}

/**
 * Per layer with parameters: {layer, dw, db, maxW, maxB} from the params before and after.
 * The largest |Δ| over the flat float64 values (128 k for the digit model: well under a
 * millisecond); `dw` and `db` are computed and nested only when read (the heatmap reads one
 * layer's), so a step allocates no array of 128 k differences.
 */
export function paramDeltas(before, after) {
  const out = [];
  before.forEach((p, i) => {
    if (!p || !present(p, "w")) return;
    const [aw, bw] = [flatValues(after[i], "w"), flatValues(p, "w")];
    const [ab, bb] = [flatValues(after[i], "b"), flatValues(p, "b")];
    const shapes = { w: shapeAt(after[i], "w"), b: shapeAt(after[i], "b") };
    const d = { layer: i, maxW: maxDelta(aw, bw), maxB: maxDelta(ab, bb) };
    lazyProperty(d, "dw", () => nest(delta(aw, bw), shapes.w));
    lazyProperty(d, "db", () => nest(delta(ab, bb), shapes.b));
    out.push(d);
  });
  return out;
}

const MAP_MAX_H = 220; // CSS pixels of the ΔW heatmap

/**
 * ΔW as one map: a dense layer's matrix as it is; a conv layer's (out, in, kH, kW) kernels as
 * blocks separated by a one-cell gap (zero, drawn white): one row of blocks per filter, one column
 * per input channel, or, with one input channel, the filters in rows of up to 8.
 */
export function mosaic(dw) {
  if (!Array.isArray(dw[0][0])) return { map: dw, name: "ΔW" };
  const [O, I, kh, kw] = [dw.length, dw[0].length, dw[0][0].length, dw[0][0][0].length];
  const perRow = I === 1 ? Math.min(8, O) : I;
  const rows = I === 1 ? Math.ceil(O / perRow) : O;
  const map = Array.from({ length: rows * (kh + 1) - 1 }, () => new Array(perRow * (kw + 1) - 1).fill(0));
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < I; c++) {
      const [br, bc] = I === 1 ? [Math.floor(o / perRow), o % perRow] : [o, c];
      for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) map[br * (kh + 1) + i][bc * (kw + 1) + j] = dw[o][c][i][j];
    }
  }
  return { map, name: `ΔW (${O}×${I}×${kh}×${kw})` };
}

export class LearnPanel {
  /** onApply(), onReset(), onRate(lr) */
  constructor({ onApply, onReset, onRate }) {
    this.selected = null;
    this.result = null;
    // The ΔW map's room, measured (a forced layout) only when its box may have changed (a
    // resize, or the result box shown again), not at every step while the page is being written.
    this.mapRoom = null;
    // (its height follows the map drawn in it: only a new width counts)
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(([e]) => {
        if (e.contentRect.width !== this.mapBoxW) this.mapRoom = null;
        this.mapBoxW = e.contentRect.width;
      }).observe($("learn-map"));
    }
    $("learn-apply").addEventListener("click", () => onApply());
    $("learn-reset").addEventListener("click", () => onReset());
    const rate = $("learn-rate");
    // A rate that is not a positive number disables Apply and says why (a negative rate would
    // climb the loss instead of descending it).
    const check = (commit) => {
      const v = Number(rate.value);
      const ok = rate.value !== "" && Number.isFinite(v) && v > 0;
      this.rateInvalid = !ok;
      rate.setAttribute("aria-invalid", String(!ok));
      $("learn-rate-error").hidden = ok;
      if (!ok) $("learn-apply").disabled = true;
      else if (this.enabled) $("learn-apply").disabled = !this.enabled.hasParams || !this.enabled.ready || this.enabled.busy;
      if (ok && commit) onRate(v);
    };
    rate.addEventListener("input", () => check(false));
    rate.addEventListener("change", () => check(true));
  }

  setRate(lr) {
    const rate = $("learn-rate");
    // The user's refused entry stays on screen (with its reason) until they fix it or the rate changes.
    if (this.rateInvalid && lr === this.lastLr) return;
    this.lastLr = lr;
    if (lr === null || lr === undefined) rate.value = "";
    else if (rate.value === "" || Number(rate.value) !== lr) rate.value = String(lr);
    rate.setAttribute("aria-invalid", "false");
    this.rateInvalid = false;
    $("learn-rate-error").hidden = true;
  }

  /** Whether the network has parameters to learn; busy while a step runs; changed: params differ. */
  setEnabled({ hasParams, ready, busy, changed }) {
    this.enabled = { hasParams, ready, busy };
    $("learn-apply").disabled = !hasParams || !ready || busy || Boolean(this.rateInvalid);
    $("learn-reset").disabled = !changed || busy;
    $("learn-rate").disabled = !hasParams;
    $("learn-none").hidden = hasParams;
  }

  /**
   * result: {trace (before the step), updated, lossAfter, steps, lr, outputAfter} or null.
   * The per-layer list and the heatmap show updated − trace.layers[i].params.
   */
  show(result, spec, force = false) {
    // The same step's card is on screen already: nothing to redo (show() runs when the step
    // starts, when the state changes and when it ends); `force`: its texts changed (language).
    if (!force && result && this.shownResult === result) return;
    this.shownResult = result;
    this.result = result;
    this.spec = spec;
    const box = $("learn-result");
    if (box.hidden !== !result) this.mapRoom = null;
    box.hidden = !result;
    $("learn-card").dataset.steps = String(result ? result.steps : 0);
    if (!result) return;
    const { trace, lossAfter } = result;
    const loss = $("learn-loss");
    loss.textContent = t("learn.loss", { before: whole(fmt4(trace.loss)), after: whole(fmt4(lossAfter)), n: result.steps });
    loss.dataset.before = full(trace.loss);
    loss.dataset.after = full(lossAfter);
    loss.title = `${full(trace.loss)} → ${full(lossAfter)}`;
    const probLine = $("learn-prob");
    const k = trace.network.loss === "cross_entropy" ? flat(trace.target).indexOf(1) : -1;
    probLine.hidden = k < 0 || !result.outputAfter;
    if (!probLine.hidden) {
      probLine.textContent = t("learn.prob", {
        k, before: percent(trace.output[k]), after: percent(result.outputAfter[k]),
      });
    }
    // ΔW of 128 k parameters takes a while: computed once per step's result (show() runs again
    // when the step starts, when the state changes and when it ends, with the same result)
    if (this.deltasOf !== result) this.deltas = paramDeltas(trace.layers.map((l) => l.params), result.updated);
    this.deltasOf = result;
    if (!this.deltas.some((d) => d.layer === this.selected)) this.selected = this.deltas.length ? this.deltas[0].layer : null;
    this.renderList();
    this.renderMap();
  }

  renderList() {
    const list = $("learn-layers");
    list.replaceChildren();
    for (const d of this.deltas) {
      const spec = this.spec.layers[d.layer];
      const b = el("button", "learn-layer");
      b.type = "button";
      b.dataset.layer = String(d.layer);
      b.setAttribute("aria-pressed", String(d.layer === this.selected));
      const text = t("learn.layerDelta", { n: d.layer + 1, name: layerName(spec), w: whole(fmt(d.maxW)), b: whole(fmt(d.maxB)) });
      b.textContent = text;
      b.title = `max |ΔW| = ${full(d.maxW)}, max |Δb| = ${full(d.maxB)}`;
      b.setAttribute("aria-label", t("learn.layerAria", { text }));
      b.addEventListener("click", () => {
        this.selected = d.layer;
        this.renderList();
        this.renderMap();
      });
      const li = el("li");
      li.append(b);
      list.append(li);
    }
  }

  renderMap() {
    const wrap = $("learn-map");
    wrap.replaceChildren();
    const d = this.deltas.find((x) => x.layer === this.selected);
    if (!d) return;
    const { map, name } = mosaic(d.dw);
    const cv = el("canvas", "learn-map-cell");
    paintMap(cv, map, d.maxW || 1);
    if (this.mapRoom === null) this.mapRoom = wrap.clientWidth;
    const room = this.mapRoom || 260;
    const [h, w] = [map.length, map[0].length];
    const scale = Math.min(room / w, Math.max(1, Math.floor(MAP_MAX_H / h)), 12);
    cv.style.width = `${Math.max(2, Math.round(w * scale))}px`;
    cv.style.height = `${Math.max(2, Math.round(h * Math.max(scale, 2)))}px`;
    cv.setAttribute("role", "img");
    cv.setAttribute("aria-label", t("learn.mapAria", { name, m: fmt(d.maxW) }));
    cv.title = name;
    wrap.append(cv);
    $("learn-map-legend").textContent = t("learn.mapLegend", { n: d.layer + 1, m: whole(fmt(d.maxW)) });
  }
}
