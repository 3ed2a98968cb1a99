// The network overview: one column per layer output (plus the input), every feature map a heatmap
// with its shape and a legend of the numbers. In backward steps the columns show dC/da instead.

import { CONFIG } from "../config.js";
import { fmt, shapeText, full } from "../format.js";
import { t } from "../i18n.js";
import { legendCanvas } from "../math/colors.js";
import { finiteRange, flat, toMaps } from "../math/tensor.js";
import { asMaps } from "../animators/common.js";
import { FONT, paintMap } from "./heatmap.js";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const LEGEND = legendCanvas(84, 8);

export function layerName(spec) {
  if (!spec) return t("layer.input");
  const k = spec.kernel_size ? spec.kernel_size.join("×") : "";
  const act = spec.activation && spec.activation !== "identity" ? ` · ${spec.activation}` : "";
  if (spec.type === "conv2d") return t(spec.out_channels === 1 ? "layer.convOne" : "layer.conv", { k, n: spec.out_channels }) + act;
  if (spec.type === "maxpool2d") return t("layer.maxpool", { k });
  if (spec.type === "avgpool2d") return t("layer.avgpool", { k });
  if (spec.type === "flatten") return t("layer.flatten");
  if (spec.type === "residual") return t("layer.residual") + act;
  if (spec.type === "concat") return t("layer.concat", { n: spec.branches.length });
  return t(spec.units === 1 ? "layer.denseOne" : "layer.dense", { n: spec.units }) + act;
}

/**
 * The name in a column's head: the full name when it wraps into two lines of `width` pixels
 * without a word wider than the column, else the short one ("conv 5×5 · relu": the filters or
 * units are the shape printed under it). Returns {text, lines}. Measured with a canvas (no layout).
 */
function headName(spec, width) {
  const full = layerName(spec);
  const fits = (text, maxLines) => {
    const lines = wrapLines(text, width, HEAD_FONT);
    return lines <= maxLines ? lines : 0;
  };
  const lines = fits(full, 2);
  if (lines) return { text: full, lines };
  const k = spec && spec.kernel_size ? spec.kernel_size.join("×") : "";
  const act = spec && spec.activation && spec.activation !== "identity" ? ` · ${spec.activation}` : "";
  const short = !spec ? full : spec.type === "conv2d" ? t("layer.convShort", { k }) + act
    : spec.type === "dense" ? t("layer.denseShort") + act : full;
  return { text: short, lines: Math.max(1, wrapLines(short, width, HEAD_FONT)) };
}

const HEAD_FONT = `600 12px ${FONT}`;
const NUMS_FONT = `10px ${FONT}`;
const SHAPE_FONT = `11px ${FONT}`;
let measurer = null;

function textWidth(text, font) {
  if (!measurer) measurer = document.createElement("canvas").getContext("2d");
  measurer.font = font;
  return measurer.measureText(text).width;
}

/**
 * How many lines `text` takes when wrapped at spaces into `width` px (CJK anywhere); Infinity when
 * a word is wider than the width (it would be cut). The canvas measures text without a layout.
 */
function wrapLines(text, width, font) {
  if (!measurer) measurer = document.createElement("canvas").getContext("2d");
  measurer.font = font;
  const w = (s) => measurer.measureText(s).width;
  const space = w(" ");
  let lines = 1;
  let x = 0;
  for (const word of text.split(" ")) {
    const ww = w(word);
    if (ww > width && !/[\u3000-\u9fff\uff00-\uffef]/.test(word)) return Infinity;
    if (x === 0) x = ww;
    else if (x + space + ww <= width) x += space + ww;
    else {
      lines += 1;
      x = ww;
    }
    while (x > width) { // a CJK run wider than the column breaks between characters
      lines += 1;
      x -= width;
    }
  }
  return lines;
}

// Heights (CSS px) of a column's parts, as app.css sets them: line heights, gaps, paddings. The
// maps get what is left of the overview's height, so nothing is cut at the bottom.
const ROW = { name: 15, shape: 14, kind: 12, nums: 12, gaps: 4 + 4 + 1, pad: 4 + 6 + 2 };

const SVG = "http://www.w3.org/2000/svg";

/**
 * A block drawn as a block inside its overview column: a residual block's inner layers in a row
 * with the skip as an arc over them (to the ⊕ where they meet), a concat block's branches side
 * by side. The chip of the inner layer the current step is in is highlighted.
 */
function blockDiagram(spec, entry, step) {
  const box = el("div", `ov-block ov-${spec.type}`);
  const chip = (s, e) => {
    const c = el("span", "ov-chip", layerName(s));
    c.title = `${layerName(s)} · ${shapeText(s.output_shape)}`;
    if (step && step.entry && e && step.entry === e) c.classList.add("current");
    return c;
  };
  const inner = [];
  if (spec.type === "residual") {
    const lane = el("div", "ov-lane");
    spec.layers.forEach((s, j) => {
      lane.append(chip(s, entry && entry.layers && entry.layers[j]));
      inner.push(layerName(s));
    });
    lane.append(el("span", "ov-plus", "⊕"));
    const arc = document.createElementNS(SVG, "svg");
    arc.setAttribute("class", "ov-arc");
    arc.setAttribute("viewBox", "0 0 100 20");
    arc.setAttribute("preserveAspectRatio", "none");
    arc.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", "M 2 19 C 2 2, 98 2, 98 19");
    arc.append(path);
    const skip = el("span", "ov-skip-label", t("overview.skip") + (spec.projection ? ` · ${layerName(spec.projection)}` : ""));
    if (spec.projection && step && step.entry && entry && step.entry === entry.projection) skip.classList.add("current");
    inner.push(skip.textContent);
    box.append(skip, arc, lane);
  } else {
    spec.branches.forEach((chain, b) => {
      const lane = el("div", "ov-lane");
      lane.append(el("span", "ov-branch-label", t("overview.branch", { b: b + 1 })));
      chain.forEach((s, j) => lane.append(chip(s, entry && entry.branches && entry.branches[b] && entry.branches[b][j])));
      inner.push(chain.map(layerName).join(" → "));
      box.append(lane);
    });
  }
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", t("overview.blockAria", { name: layerName(spec), inner: inner.join("; ") }));
  return box;
}


export class Overview {
  constructor(root, { onPick }) {
    this.root = root;
    this.onPick = onPick;
    // The canvases of the last render, reused by the next one (column:channel → canvas): a
    // digit trace's overview has ~100 maps, and creating a canvas and its 2-D context for each
    // was most of what redrawing the overview cost after every stroke and learning step.
    this.canvases = new Map();
    // The box's size, measured (a forced layout) only when it may have changed: reading it at
    // every render made the browser lay the whole page out once more in the middle of showing a
    // learning step (the DOM written just before). A change of the box's size (window, media
    // query, a scrollbar coming or going) marks it for measuring again at the next render.
    this.size = null;
    if (typeof ResizeObserver === "function") new ResizeObserver(() => { this.size = null; }).observe(root);
  }

  /** The canvas `key` of the previous render (its context kept), or a new one. */
  canvas(key, cls) {
    let c = this.canvases.get(key);
    if (!c) {
      c = el("canvas", cls);
      this.canvases.set(key, c);
    }
    return c;
  }

  /** Values of column k (0 = input) in forward (a) or backward (dC/da) mode. */
  values(trace, k, grad) {
    if (!grad) return k === 0 ? trace.layers[0].forward.a_prev : trace.layers[k - 1].forward.a;
    return k === 0 ? trace.layers[0].backward.dC_da_prev : trace.layers[k - 1].backward.dC_da;
  }

  render(trace, step) {
    this.root.replaceChildren();
    if (!trace || !step) return;
    const L = trace.layers.length;
    // measured empty, as the columns are laid out into it (no scrollbar yet), at its CSS height
    if (!this.size) {
      this.root.style.height = "";
      this.size = { w: this.root.clientWidth, h: this.root.clientHeight };
    }
    // Every column has the same width and every column fits the width (a projector at 1024 px
    // shows the last one too). On a phone the columns wrap into rows, read top to bottom, and
    // the maps get a fixed height (the overview is as tall as its rows, nothing scrolls in it).
    const wrap = Boolean(window.matchMedia && window.matchMedia("(max-width: 600px)").matches);
    const gap = 8;
    const perRow = wrap ? Math.max(2, Math.floor((this.size.w + gap) / (92 + gap))) : L + 1;
    this.colMax = wrap ? Math.floor((this.size.w + gap) / perRow) - gap - 12
      : Math.max(56, Math.min(CONFIG.overview.colMax, Math.floor((this.size.w + gap) / (L + 1)) - gap - 12));
    this.root.style.setProperty("--ov-col-w", `${this.colMax + 12}px`);
    this.root.classList.toggle("wrapped", wrap);
    const cols = [];
    let nameLines = 1;
    let numsLines = 1;
    for (let k = 0; k <= L; k++) {
      const spec = k ? trace.network.layers[k - 1] : null;
      const shape = k ? spec.output_shape : trace.network.input_shape;
      // Forward: columns up to the current one are computed. Backward: gradients exist from the
      // current column on; earlier columns keep their activations, dimmed.
      const grad = step.grad && k >= step.column;
      const computed = step.grad ? true : k <= step.column;
      const col = el("div", "ov-col");
      col.setAttribute("role", "listitem");
      col.classList.toggle("current", k === step.column);
      col.classList.toggle("pending", !computed || (step.grad && !grad));
      col.classList.toggle("grad", grad);
      const head = el("button", "ov-head");
      head.type = "button";
      const name = headName(spec, this.colMax);
      nameLines = Math.max(nameLines, name.lines);
      head.append(el("span", "ov-name", name.text), el("span", "ov-shape", shapeText(shape)));
      head.title = layerName(spec);
      head.setAttribute("aria-label", t("overview.columnAria", { name: layerName(spec), shape: shapeText(shape) }));
      head.addEventListener("click", () => this.onPick(k));
      col.append(head);
      if (spec && (spec.type === "residual" || spec.type === "concat")) {
        col.classList.add("ov-block-col");
        col.append(blockDiagram(spec, trace.layers[k - 1], step));
      }
      // While a conv or dense step computes z, its column shows z (the activation comes next).
      const showZ = !grad && k === step.column && (step.kind === "conv" || step.kind === "dense") &&
        trace.network.layers[k - 1].activation !== "identity";
      const vals = !computed ? null : showZ ? trace.layers[k - 1].forward.z : this.values(trace, k, grad);
      // one walk over the tensor for both: its finite range, and max |v| from it
      const range = vals ? finiteRange(vals) : null;
      const m = range && range.lo <= range.hi ? Math.max(Math.abs(range.lo), Math.abs(range.hi)) : 0;
      const legend = this.legend(vals, range, m, grad ? "∂C/∂a" : showZ ? "z" : "a", k);
      numsLines = Math.max(numsLines, Math.min(2, wrapLines(legend.dataset.nums || "", this.colMax - 4, NUMS_FONT)));
      col.append(legend);
      // the column's own width: its widest part (the same before and after it is computed)
      const parts = [name.lines === 1 ? textWidth(name.text, HEAD_FONT) : this.colMax,
        textWidth(shapeText(shape), SHAPE_FONT), textWidth(legend.dataset.kind, `italic ${NUMS_FONT}`) + 3 + 84];
      cols.push({ col, vals, m, grad, k, shape, parts });
    }
    // Every column's name and legend take the same room, so the maps start at one height.
    this.root.style.setProperty("--ov-name-h", `${nameLines * ROW.name}px`);
    this.root.style.setProperty("--ov-nums-h", `${numsLines * ROW.nums}px`);
    const headH = ROW.pad + nameLines * ROW.name + ROW.shape + ROW.kind + numsLines * ROW.nums + ROW.gaps + 4;
    // A block's diagram takes room of its own (the skip arc over a row of chips, or a line per
    // branch): a box too low for it and a row of maps grows (it does not scroll inside).
    const diagram = (spec) => (!spec ? 0 : spec.type === "residual" ? 66 : spec.type === "concat" ? 8 + 21 * spec.branches.length : 0);
    const tallest = Math.max(0, ...trace.network.layers.map(diagram));
    const boxH = wrap ? 0 : Math.max(this.size.h, tallest ? headH + tallest + 36 : 0);
    this.root.style.height = !wrap && boxH > this.size.h ? `${boxH}px` : "";
    const mapsH = wrap ? 132 : Math.max(40, boxH - headH);
    for (const { col, vals, m, grad, k, shape, parts } of cols) {
      const block = col.classList.contains("ov-block-col");
      const h = block ? Math.max(30, mapsH - diagram(trace.network.layers[k - 1])) : mapsH;
      col.append(this.maps(vals, m, h, grad ? t("overview.grad") : t("overview.act"), k));
      // Narrower than the share when its parts are (a worked example's few small maps), never wider;
      // on a phone every column takes its share of a row.
      const w = wrap || block ? this.colMax : Math.min(this.colMax, Math.ceil(Math.max(56, ...parts, this.mapsLayout(shape, h).width)) + 2);
      col.style.width = `${w + 12}px`;
      this.root.append(col);
    }
    this.strip(trace, step);
    // The current column scrolled into view: read where it is in the next animation frame, when
    // the browser lays the page out to paint it anyway (not now, which forced one more layout).
    cancelAnimationFrame(this.scrollRaf);
    const cur = this.root.children[step.column];
    if (cur) {
      this.scrollRaf = requestAnimationFrame(() => {
        if (cur.parentNode !== this.root) return;
        const box = this.root.getBoundingClientRect();
        const r = cur.getBoundingClientRect();
        if (r.left < box.left || r.right > box.right) this.root.scrollLeft += r.left - box.left - 8;
      });
    }
  }

  /**
   * The gradient size per layer: ‖∂C/∂a‖ (L2) of the input and of each layer's output, on a log
   * scale, so vanishing or exploding gradients show at a glance. The numbers are the trace's own:
   * its per-layer "norms" when the API sends them, else computed here from the trace's tensors.
   */
  strip(trace, step) {
    const box = document.getElementById("grad-strip");
    if (!box) return;
    const norm = (a) => (a ? Math.sqrt(flat(a).reduce((s, v) => s + v * v, 0)) : null);
    const vals = [norm(trace.layers[0].backward && trace.layers[0].backward.dC_da_prev)];
    trace.layers.forEach((l) => {
      const given = l.norms && typeof l.norms.dC_da === "number" ? l.norms.dC_da : null;
      vals.push(given ?? norm(l.backward && l.backward.dC_da));
    });
    // an infinite norm (the softmax-underflow −∞ of dC/da) is drawn full height, labelled ∞
    const known = vals.filter((v) => v !== null && v > 0 && Number.isFinite(v));
    box.hidden = !known.length;
    if (!known.length) return;
    const lo = Math.log10(Math.min(...known));
    const hi = Math.log10(Math.max(...known));
    box.replaceChildren();
    const title = el("span", "gs-title", t("strip.title"));
    const ol = el("ol");
    ol.setAttribute("aria-label", t("strip.aria"));
    vals.forEach((v, k) => {
      const spec = k ? trace.network.layers[k - 1] : null;
      const li = el("li");
      const track = el("div", "gs-track");
      const bar = el("div", "gs-bar");
      const frac = v === null ? 0 : v === 0 ? 0 : v === Infinity ? 1 : hi > lo ? 0.1 + 0.9 * ((Math.log10(v) - lo) / (hi - lo)) : 1;
      bar.style.height = `${Math.round(frac * 100)}%`;
      track.append(bar);
      const text = v === null ? "–" : fmt(v, 2);
      const val = el("span", "gs-val", text);
      li.title = t("strip.bar", { name: layerName(spec), v: v === null ? "–" : Number.isFinite(v) ? full(v) : text });
      if (v === Infinity) li.title += "\n" + t("loss.underflow");
      li.setAttribute("aria-label", t("strip.bar", { name: layerName(spec), v: text }));
      li.classList.toggle("current", step.grad && k === step.column);
      li.dataset.value = v === null ? "" : String(v);
      li.append(track, val);
      ol.append(li);
    });
    box.append(title, ol);
  }

  /**
   * The legend of a column: its scale is symmetric (±max |v| of this tensor, so tiny gradients
   * are as visible as large ones); the ends are labelled, the true range is in the tooltip and
   * the accessible name, and an all-zero tensor says "all ≈ 0" instead of a blank scale.
   * `range`: {lo, hi} of the finite values, `m`: max |v| of them (0 when none), from render().
   */
  legend(vals, range, m, kind, k) {
    const box = el("div", "ov-legend");
    const c = this.canvas(`legend:${k}`, "ov-legend-bar");
    if (c.width !== LEGEND.width || c.height !== LEGEND.height) {
      c.width = LEGEND.width;
      c.height = LEGEND.height;
      c.getContext("2d").drawImage(LEGEND, 0, 0);
    }
    c.style.visibility = "";
    const nums = el("div", "ov-legend-nums");
    if (vals && !(m > 0)) {
      const s = el("span", "ov-legend-zero", t("legend.allZero"));
      box.dataset.nums = s.textContent;
      s.title = t("legend.allZeroTitle", { m: "1e-308" });
      nums.append(s);
      c.style.visibility = "hidden";
    } else if (vals) {
      const { lo, hi } = range;
      // −m and +m under the bar's ends; a column too narrow for both on one line prints ±m once
      // (the same number: the scale is symmetric)
      const ends = [-m, m].map((v) => (v > 0 ? "+" : "") + fmt(v, 2));
      const room = Math.min(84, this.colMax - textWidth(kind, `italic ${NUMS_FONT}`) - 3) - 6;
      const both = wrapLines(ends.join(" "), room, NUMS_FONT) === 1;
      for (const text of both ? ends : [`±${fmt(m, 2)}`]) nums.append(el("span", "", text));
      nums.classList.toggle("sym", !both);
      box.dataset.nums = [...nums.children].map((e) => e.textContent).join(" ");
      box.title = t("legend.range", { lo: full(lo), hi: full(hi), m: full(m) });
      box.setAttribute("aria-label", `${kind}: ${t("legend.range", { lo: fmt(lo, 3), hi: fmt(hi, 3), m: fmt(m, 3) })}`);
      box.dataset.min = String(lo);
      box.dataset.max = String(hi);
    }
    const top = el("div", "ov-legend-top");
    top.append(el("span", "ov-kind", kind), c);
    box.dataset.kind = kind;
    box.append(top, nums);
    return box;
  }

  /** How n maps of mh×mw (or one wrapped vector) are laid out in a column: per row, scale. */
  grid(n, mh, mw, vector, height) {
    const gap = 3;
    const fit = (per) => {
      const rows = Math.ceil(n / per);
      const byH = Math.floor((height - gap * (rows - 1)) / rows);
      const byW = Math.floor((this.colMax - gap * (per - 1)) / per);
      return Math.min(CONFIG.overview.mapMax, byH, byW);
    };
    let perRow = 1;
    for (let per = 2; per <= n; per++) if (fit(per) > fit(perRow)) perRow = per;
    const size = Math.max(4, fit(perRow));
    const scale = vector ? Math.min(Math.min(120, this.colMax) / mw, height / mh, 12) : size / Math.max(mh, mw);
    const cell = Math.max(4, Math.round(mw * scale));
    return { perRow, scale, width: vector ? cell : perRow * cell + gap * (perRow - 1) };
  }

  /** The maps' layout for a tensor of `shape` (C×H×W maps, or a vector), computed or not. */
  mapsLayout(shape, height) {
    if (shape.length === 3) return this.grid(shape[0], shape[1], shape[2], false, height);
    if (shape.length === 2) return this.grid(1, shape[0], shape[1], false, height);
    const n = shape.reduce((a, b) => a * b, 1);
    const cols = Math.min(n > 256 ? CONFIG.overview.vectorRowsMax : 16, n);
    return this.grid(1, Math.ceil(n / cols), cols, true, height);
  }

  maps(vals, m, height, what, k) {
    const wrap = el("div", "ov-maps");
    if (!vals) {
      wrap.append(el("div", "ov-empty", t("overview.pending")));
      return wrap;
    }
    const { maps, vector } = Array.isArray(vals[0]) ? { maps: toMaps(vals), vector: false } : asMaps(vals, vals.length > 256 ? CONFIG.overview.vectorRowsMax : 16);
    const [mh, mw] = [maps[0].length, maps[0][0].length];
    const { perRow, scale } = this.grid(maps.length, mh, mw, vector, height);
    wrap.style.gridTemplateColumns = `repeat(${perRow}, auto)`;
    maps.forEach((map, c) => {
      const cv = this.canvas(`${k}:${c}`, "ov-map");
      paintMap(cv, map, m); // (a wrapped vector's empty tail cells, null, are painted as 0)
      cv.style.width = `${Math.max(4, Math.round(mw * scale))}px`;
      cv.style.height = `${Math.max(4, Math.round(mh * scale))}px`;
      cv.setAttribute("role", "img");
      cv.setAttribute("aria-label", `${what} ${vector ? "" : t("overview.channel", { c })}`.trim());
      cv.title = vector ? what : `${what} · ${t("overview.channel", { c })}`;
      wrap.append(cv);
    });
    return wrap;
  }
}
