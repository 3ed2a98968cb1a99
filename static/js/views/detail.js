// The detail view: hosts one animator for the current step and runs its requestAnimationFrame loop.
// A "sweep" moves the focus over every position (output cell, weight, …) at the chosen speed.

import { CONFIG } from "../config.js";
import { fmt, full, shapeText } from "../format.js";
import { flat, shapeOf } from "../math/tensor.js";
import { t } from "../i18n.js";
import { FONT } from "./heatmap.js";
import { ANIMATORS } from "../animators/index.js";
import { stepTitleKey } from "../steps.js";

// The tensor each kind of step produces (trace part, key, printed name): what the announcer reads out.
// While a sweep runs, the formula on screen changes at most this often (10 a second).
const FORMULA_SWEEP_MS = 100;

const STEP_RESULTS = {
  conv: ["forward", "z", "z"],
  dense: ["forward", "z", "z"],
  activation: ["forward", "a", "a"],
  pool: ["forward", "a", "a"],
  flatten: ["forward", "a", "a"],
  res_add: ["forward", "z", "z"],
  concat_join: ["forward", "a", "a"],
  activation_back: ["backward", "dC_dz", "∂C/∂z"],
  bias_grad: ["backward", "dC_db", "∂C/∂b"],
  weight_grad: ["backward", "dC_dw", "∂C/∂w"],
  input_grad: ["backward", "dC_da_prev", "∂C/∂a_prev"],
  pool_back: ["backward", "dC_da_prev", "∂C/∂a_prev"],
  flatten_back: ["backward", "dC_da_prev", "∂C/∂a_prev"],
  res_sum: ["backward", "dC_da_prev", "∂C/∂a_prev"],
  concat_sum: ["backward", "dC_da_prev", "∂C/∂a_prev"],
};

function h(tag, cls, attrs = {}) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

export class DetailView {
  constructor(root, { onDone }) {
    this.root = root;
    this.onDone = onDone;
    this.speed = 1;
    this.anim = null;
    this.raf = 0;
    this.frameTimes = [];
    this.build();
    // The stage's size is measured (a forced layout) only when it may have changed: measuring it
    // at every mount laid the page out once more while a learning step's new views were written.
    this.stageSize = null;
    new ResizeObserver((entries) => {
      // a phone's stage takes the height of the canvas it holds: only a new width counts
      const r = entries[entries.length - 1].contentRect;
      if (this.phone && this.stageSize && this.narrow.matches && Math.abs(r.width - this.stageSize.w) <= 2) return;
      this.stageSize = null;
      this.resize();
    }).observe(this.stage);
    // A phone lays the page out in one column: the stage is as tall as what the step draws (no
    // blank box under it) and, when a step's maps need more width than the screen, it scrolls
    // sideways (said under it; the stage is a tab stop whose arrow keys scroll it).
    this.narrow = window.matchMedia ? window.matchMedia("(max-width: 600px)") : { matches: false };
    this.stage.addEventListener("keydown", (e) => {
      if (e.target === this.stage && ["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) e.stopPropagation();
    });
  }

  build() {
    this.root.replaceChildren();
    const head = h("div", "detail-head");
    this.title = h("h2", "detail-title", { id: "detail-title" });
    this.explainEl = h("p", "detail-explain", { id: "detail-explain" });
    head.append(this.title, this.explainEl);
    this.controls = h("div", "detail-controls");
    this.stage = h("div", "detail-stage");
    this.canvas = h("canvas", "detail-canvas", { role: "img", tabindex: "0" });
    this.stage.append(this.canvas);
    // Not a live region: it changes at every focus position; the step is announced once (announce()).
    this.formulaEl = h("div", "formula", { id: "formula" });
    this.notesEl = h("p", "detail-notes", { id: "detail-notes" });
    this.colorsEl = h("p", "detail-colors", { id: "detail-colors" });
    this.cellEl = h("p", "detail-colors", { id: "detail-cell", "aria-live": "polite" });
    this.wideEl = h("p", "detail-wide-hint", { id: "detail-wide-hint" });
    this.wideEl.hidden = true;
    this.root.append(head, this.controls, this.stage, this.wideEl, this.colorsEl, this.cellEl, this.formulaEl, this.notesEl);
    this.canvas.addEventListener("click", (e) => this.click(e));
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.reduced = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : { matches: false };
    this.announcements = 0;
  }

  /** Tell screen readers the step and its result, once per step (not per frame, not on resize). */
  announce() {
    const { trace, step, index } = this;
    const key = `${trace.__key}|${index}|${trace.loss}|${document.documentElement.lang}`;
    if (key === this.announced) return;
    this.announced = key;
    const total = Number(document.getElementById("step-counter").dataset.total) || index + 1;
    let text = t("announce.step", { i: index + 1, n: total, title: this.title.textContent }) + " " + this.explainEl.textContent;
    if (step.phase === "loss") text += " " + t("announce.loss", { C: fmt(trace.loss, 6) });
    else text += this.resultText();
    const el = document.getElementById("announcer");
    if (!el) return;
    el.textContent = text;
    this.announcements += 1;
    document.body.dataset.announcements = String(this.announcements);
  }

  /** " Result ∂C/∂w: 32×1×5×5, from m to M." — the tensor this step produces, for the announcer. */
  resultText() {
    const { step, trace } = this;
    const entry = step.entry || trace.layers[step.layer];
    const [part, key, name] = STEP_RESULTS[step.kind] || [];
    const tensor = part && entry && entry[part] ? entry[part][key] : null;
    if (tensor === null || tensor === undefined) return "";
    const values = typeof tensor === "number" ? [tensor] : flat(tensor);
    if (!values.length) return "";
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const shape = typeof tensor === "number" ? "1" : shapeText(shapeOf(tensor));
    return " " + t("announce.result", { name, shape, min: fmt(lo, 3), max: fmt(hi, 3) });
  }

  /**
   * Hold the animation where it is (on) or let it go on (off): while a new trace is on its way,
   * the view it will replace stops drawing frames, which on a busy machine took the main thread
   * from the answer (showing the new trace lets it go again).
   */
  hold(on) {
    this.held = Boolean(on);
  }

  /** Show `step` of `trace`; restarts the sweep. */
  show(trace, step, index) {
    this.held = false;
    this.trace = trace;
    this.step = step;
    this.index = index;
    this.selection = {};
    this.mount();
  }

  mount() {
    cancelAnimationFrame(this.raf);
    const { trace, step } = this;
    if (!trace || !step) return;
    // a step inside a block carries its inner layer's spec and trace entry (steps.js)
    const spec = step.spec || trace.network.layers[step.layer];
    this.title.textContent = t(stepTitleKey(step, spec), this.titleVars(spec));
    this.controls.replaceChildren();
    this.formulaEl.replaceChildren();
    this.notesEl.textContent = "";
    this.root.dataset.kind = step.kind;
    this.root.dataset.layer = String(step.layer);
    this.canvas.setAttribute("aria-label", this.title.textContent);
    this.sizeCanvas();
    const factory = ANIMATORS[step.kind];
    const make = () => factory(this.ui(), { trace, step, spec, layer: step.entry || trace.layers[step.layer] });
    this.anim = make();
    // Phone: a canvas as wide as the step's maps need (the layout's minimum widths), scrolled
    // sideways in the stage; laid out again until it fits (two passes at most in practice).
    for (let pass = 0; this.phone && pass < 3; pass++) {
      const need = this.contentWidth();
      if (need <= this.cssW + 1) break;
      this.sizeCanvas(need);
      this.controls.replaceChildren(); // the animator adds its pickers again
      this.anim = make();
    }
    // still a little short: a wider canvas, the same layout
    if (this.phone && this.contentWidth(true) > this.cssW + 1) this.sizeCanvas(this.contentWidth(true));
    this.markWide();
    // How many drawn maps are too big to print their numbers (0 for every worked example).
    const grids = (this.anim.grids ? this.anim.grids() : []).filter((g) => g && !g.empty);
    this.root.dataset.unnumbered = String(grids.filter((g) => !g.numbers).length);
    this.addSweepControls();
    this.cellEl.textContent = "";
    this.colorsDone = false;
    this.fitted = false;
    this.restart();
    this.announce();
  }

  /** After the first frame (labels drawn): name the maps that show colours only. */
  colorsNote() {
    const grids = (this.anim.grids ? this.anim.grids() : []).filter((g) => g && !g.empty);
    const plain = grids.filter((g) => !g.numbers || g.dropped);
    this.root.dataset.unnumbered = String(plain.length);
    // Each colours-only map with its scale: ±max|v| of that map, or "all 0".
    const names = plain.filter((g) => g.title).map((g) => `${g.title} (${g.maxAbs > 0 ? "±" + fmt(g.maxAbs, 2) : t("legend.allZero")})`);
    this.colorsEl.textContent = plain.length
      ? t("detail.colorsOnly", { names: names.length === plain.length ? names.join("; ") : String(plain.length) }) : "";
  }

  titleVars(spec) {
    const k = spec.kernel_size ? spec.kernel_size.join("×") : "";
    return { n: this.step.label || this.step.layer + 1, k, act: spec.activation || "", units: spec.units ?? "" };
  }

  /** The toolkit an animator gets: canvas, text, controls, and a way to move the focus. */
  ui() {
    return {
      canvas: this.canvas,
      g: this.g,
      width: this.cssW,
      height: this.cssH,
      font: FONT,
      root: this.root,
      explain: (text) => { this.explainEl.textContent = text; },
      notes: (text) => { this.notesEl.textContent = text; },
      formula: (...nodes) => this.setFormula(nodes),
      select: (labelKey, options, value, onChange) => this.addSelect(labelKey, options, value, onChange),
      selection: this.selection,
      remount: () => this.mount(),
      focus: (pos) => this.focus(pos),
    };
  }

  /**
   * Show the focused position's formula. A sweep moves the focus up to ~130 times a second,
   * faster than anyone reads, and each new formula costs a MathML layout that held the page's
   * main thread (and every answer from the server behind it): while sweeping, a formula is put
   * on screen at most every FORMULA_SWEEP_MS, and the latest one always when the sweep ends or
   * pauses. A focused position (click, keys, slider) shows its formula at once.
   */
  setFormula(nodes) {
    const now = performance.now();
    if (this.sweeping && now - this.formulaAt < FORMULA_SWEEP_MS) {
      this.pendingFormula = nodes;
      return;
    }
    this.pendingFormula = null;
    this.formulaAt = now;
    this.formulaEl.replaceChildren(...nodes);
  }

  flushFormula() {
    if (!this.pendingFormula) return;
    const nodes = this.pendingFormula;
    this.pendingFormula = null;
    this.formulaAt = performance.now();
    this.formulaEl.replaceChildren(...nodes);
  }

  addSelect(labelKey, options, value, onChange) {
    const label = h("label", "field compact");
    const span = h("span");
    span.textContent = t(labelKey);
    const sel = h("select", "", { "aria-label": t(labelKey) });
    for (const o of options) {
      const opt = h("option");
      opt.value = String(o.value);
      opt.textContent = o.label;
      sel.append(opt);
    }
    sel.value = String(value);
    sel.addEventListener("change", () => onChange(sel.value));
    label.append(span, sel);
    this.controls.append(label);
    return sel;
  }

  /**
   * The sweep's button, slider and position text: made once and moved back in at every mount
   * (making a range input anew cost ~9 ms of every step shown, a learning step's too).
   */
  addSweepControls() {
    const n = this.anim.positions;
    if (!this.sweepWrap) {
      this.sweepBtn = h("button", "", { type: "button", id: "sweep-toggle" });
      this.sweepBtn.addEventListener("click", () => (this.sweeping ? this.pause() : this.restart()));
      this.slider = h("input", "", { type: "range", min: "0", max: String(Math.max(0, n - 1)),
        step: "1", value: "0", id: "position", "aria-label": t("detail.positionAria") });
      this.slider.addEventListener("input", () => this.focus(Number(this.slider.value)));
      this.posText = h("span", "counter", { id: "position-text" });
      this.sweepWrap = h("div", "sweep");
      this.sweepWrap.append(this.sweepBtn, this.slider, this.posText);
    }
    const max = String(Math.max(0, n - 1));
    if (this.slider.getAttribute("max") !== max) this.slider.setAttribute("max", max);
    this.slider.value = "0";
    const aria = t("detail.positionAria");
    if (this.slider.getAttribute("aria-label") !== aria) this.slider.setAttribute("aria-label", aria);
    this.posText.textContent = "";
    this.sweepWrap.hidden = n <= 1;
    this.controls.append(this.sweepWrap);
  }

  /**
   * The width what the step draws needs: its maps (at least 120 px each, room for their labels)
   * with 8 px on either side; `right`: up to the right edge as laid out now.
   */
  contentWidth(right = false) {
    let lo = Infinity;
    let hi = 0;
    for (const g of this.anim.grids ? this.anim.grids() : []) {
      if (!g || !g.width) continue;
      lo = Math.min(lo, g.x);
      hi = Math.max(hi, g.x + Math.max(g.width, 120));
    }
    if (!hi) return 0;
    return Math.ceil(right ? hi + 8 : hi - lo + 16);
  }

  /** Whether the stage scrolls sideways (phone, a step wider than the screen): say so under it. */
  markWide() {
    const wide = this.phone && this.cssW > this.stageSize.w + 1;
    // a new step starts at its left edge (on phones only: the read lays the page out)
    if (this.phone && this.stage.scrollLeft) this.stage.scrollLeft = 0;
    this.stage.classList.toggle("wide", wide);
    this.root.dataset.wide = String(wide);
    this.wideEl.hidden = !wide;
    this.wideEl.textContent = wide ? t("detail.wide") : "";
    if (wide) {
      this.stage.tabIndex = 0;
      this.stage.setAttribute("role", "region");
      this.stage.setAttribute("aria-label", t("detail.wideAria"));
    } else {
      this.stage.removeAttribute("tabindex");
      this.stage.removeAttribute("role");
      this.stage.removeAttribute("aria-label");
    }
  }

  /**
   * Phone: once the first frame is drawn, the canvas is cut to the height it used (the lowest
   * painted row), so no blank box sits between the maps and the formula. One read of the
   * canvas per step shown, on phones only.
   */
  fitHeight() {
    const dpr = window.devicePixelRatio || 1;
    const { height } = this.canvas;
    // a copy of every 3rd column (nearest, not smoothed) into a small canvas made for reading
    const width = Math.ceil(this.canvas.width / 3);
    if (!this.probe) {
      this.probe = document.createElement("canvas");
      this.probeG = this.probe.getContext("2d", { willReadFrequently: true });
    }
    this.probe.width = width;
    this.probe.height = height;
    this.probeG.imageSmoothingEnabled = false;
    this.probeG.drawImage(this.canvas, 0, 0, width, height);
    const data = this.probeG.getImageData(0, 0, width, height).data;
    let last = -1;
    for (let y = height - 1; y >= 0 && last < 0; y--) {
      const row = y * width * 4;
      for (let x = 3; x < width * 4; x += 4) {
        if (data[row + x] !== 0) {
          last = y;
          break;
        }
      }
    }
    const h = Math.max(120, Math.ceil((last + 1) / dpr) + 12);
    if (h >= this.cssH - 4) return false;
    this.cssH = h;
    this.canvas.height = Math.floor(h * dpr);
    this.canvas.style.height = h + "px";
    this.g.setTransform(dpr, 0, 0, dpr, 0, 0);
    return true;
  }

  sizeCanvas(width) {
    const dpr = window.devicePixelRatio || 1;
    this.phone = Boolean(this.narrow && this.narrow.matches);
    this.stage.classList.toggle("fit", this.phone);
    if (!this.stageSize) this.stageSize = { w: this.stage.clientWidth, h: this.stage.clientHeight };
    this.cssW = Math.max(320, width || this.stageSize.w);
    // on a phone the animator lays out in the height a stage had before (min(62vh, 460 px)), then
    // fitHeight() cuts off what it left blank
    this.cssH = this.phone ? Math.max(200, Math.min(460, Math.round(window.innerHeight * 0.62))) : Math.max(200, this.stageSize.h);
    this.canvas.width = Math.floor(this.cssW * dpr);
    this.canvas.height = Math.floor(this.cssH * dpr);
    this.canvas.style.width = this.cssW + "px";
    this.canvas.style.height = this.cssH + "px";
    this.g = this.canvas.getContext("2d");
    this.g.setTransform(dpr, 0, 0, dpr, 0, 0);
  }

  resize() {
    if (!this.anim) return;
    const w = Math.max(320, this.stage.clientWidth);
    const hgt = Math.max(200, this.stage.clientHeight);
    const phone = Boolean(this.narrow && this.narrow.matches);
    // a phone's stage takes the canvas's height (and may scroll sideways): only its width counts
    if (phone && this.phone) {
      if (Math.abs(w - Math.max(320, this.stageSize ? this.stageSize.w : 0)) > 2) this.mount();
      return;
    }
    if (phone !== this.phone || Math.abs(w - this.cssW) > 2 || Math.abs(hgt - this.cssH) > 2) this.mount();
  }

  setSpeed(speed) {
    this.speed = speed;
  }

  rate() {
    const n = this.anim.positions;
    return Math.max(CONFIG.minPositionsPerSecond, n / CONFIG.sweepSeconds) * this.speed;
  }

  restart() {
    this.pos = 0;
    // prefers-reduced-motion: no sweep; the step opens on its result (every cell filled in).
    this.sweeping = this.anim.positions > 1 && !this.reduced.matches;
    this.root.dataset.reducedMotion = String(Boolean(this.reduced.matches));
    this.doneSent = false;
    this.lastPos = -1;
    this.formulaAt = -Infinity;
    this.pendingFormula = null;
    this.last = performance.now();
    this.started = this.last;
    this.updateSweepButton();
    cancelAnimationFrame(this.raf);
    this.raf = requestAnimationFrame((ts) => this.frame(ts));
  }

  pause() {
    this.sweeping = false;
    this.flushFormula();
    this.updateSweepButton();
  }

  focus(pos) {
    this.sweeping = false;
    this.pos = Math.max(0, Math.min(this.anim.positions - 1, pos));
    this.lastPos = -1;
    this.updateSweepButton();
  }

  updateSweepButton() {
    this.root.dataset.sweeping = String(Boolean(this.sweeping));
    if (!this.sweepBtn) return;
    const key = this.sweeping ? "detail.pauseSweep" : "detail.replaySweep";
    this.sweepBtn.textContent = t(key);
    this.sweepBtn.setAttribute("aria-label", t(key + "Aria"));
  }

  frame(ts) {
    this.raf = requestAnimationFrame((t2) => this.frame(t2));
    if (this.held) {
      this.last = ts; // the sweep goes on from here, not by the time held
      return;
    }
    this.frameTimes.push(ts);
    if (this.frameTimes.length > 600) this.frameTimes.shift();
    const dt = Math.max(0, Math.min(0.1, (ts - this.last) / 1000));
    this.last = ts;
    const n = this.anim.positions;
    if (this.sweeping) {
      this.pos += this.rate() * dt;
      if (this.pos >= n - 1) {
        this.pos = n - 1;
        this.sweeping = false;
        this.updateSweepButton();
      }
    } else if (this.pendingFormula && ts - this.formulaAt >= FORMULA_SWEEP_MS) {
      this.flushFormula();
    }
    const ip = Math.max(0, Math.floor(this.pos));
    const revealed = this.sweeping ? ip + 1 : n;
    if (ip !== this.lastPos || this.sweeping || this.lastRevealed !== revealed) {
      if (ip !== this.lastPos) {
        this.anim.select(ip);
        this.slider.value = String(ip);
        this.posText.textContent = t("detail.position", { i: ip + 1, n });
      }
      this.anim.draw(ip, revealed);
      if (this.phone && !this.fitted) {
        this.fitted = true;
        if (this.fitHeight()) this.anim.draw(ip, revealed);
      }
      this.lastPos = ip;
      this.lastRevealed = revealed;
      if (!this.colorsDone) {
        this.colorsDone = true;
        this.colorsNote();
      }
    }
    const dwellDone = ts - this.started > CONFIG.dwellSeconds * 1000 / this.speed;
    if (!this.sweeping && !this.doneSent && (n > 1 || dwellDone)) {
      this.doneSent = true;
      this.onDone();
    }
  }

  click(e) {
    const r = this.canvas.getBoundingClientRect();
    const [x, y] = [e.clientX - r.left, e.clientY - r.top];
    const pos = this.anim.hit ? this.anim.hit(x, y) : null;
    if (pos !== null && pos !== undefined) this.focus(pos);
    // Any cell of any map: its full value in words (touch screens have no hover).
    for (const g of this.anim.grids ? this.anim.grids() : []) {
      const cell = g && !g.empty ? g.hit(x, y) : null;
      if (cell) {
        this.cellEl.textContent = t("detail.cellValue", { name: g.title || "", r: cell[0] - g.pad[0], c: cell[1] - g.pad[1],
          v: full(g.valueAt(cell[0], cell[1])) });
        break;
      }
    }
  }

  /** Pointer over a cell: a pointer cursor where a click moves the focus, the full value as a tooltip. */
  hover(e) {
    const r = this.canvas.getBoundingClientRect();
    const [x, y] = [e.clientX - r.left, e.clientY - r.top];
    const pos = this.anim.hit ? this.anim.hit(x, y) : null;
    this.canvas.style.cursor = pos === null || pos === undefined ? "default" : "pointer";
    let title = "";
    for (const g of this.anim.grids ? this.anim.grids() : []) {
      const cell = g && !g.empty ? g.hit(x, y) : null;
      if (cell) {
        title = full(g.valueAt(cell[0], cell[1]));
        break;
      }
    }
    if (this.canvas.title !== title) this.canvas.title = title;
  }

  /** Frames per second over the last `ms` milliseconds (for the performance test). */
  fps(ms = 2000) {
    const ft = this.frameTimes;
    if (ft.length < 2) return 0;
    const end = ft[ft.length - 1];
    const recent = ft.filter((x) => x >= end - ms);
    return ((recent.length - 1) * 1000) / (end - recent[0]);
  }
}
