// The Train view: start a training run over WebSocket /api/train, watch it learn (curves, kernels,
// feature maps, gradient norms, the batch), pause into a step's backprop in the stepper, and see
// the dev gallery and confusion matrix afterwards. Every number is the server's.

import { fmt, percent } from "../format.js";
import { onLangChange, t } from "../i18n.js";
import { lineChart, paintGrid, thumbs } from "./draw.js";
import { TrainSocket } from "./socket.js";
import { exampleGradient, updateHtml } from "./update.js";
import { playgroundStatus } from "../playground/index.js";
import { shapeText } from "../playground/shapes.js";

const $ = (id) => document.getElementById(id);

// Strengths of the switchable augmentations (the server caps them; see docs/api.md).
const AUGMENT = {
  shift: { shift: 2 },
  rotation: { rotation: 12 },
  flip: { flip: true },
  noise: { noise: 0.1 },
  contrast: { contrast: 0.3, brightness: 0.2 },
};
const LENET = {
  input_shape: [1, 28, 28],
  layers: [
    { type: "conv2d", out_channels: 8, kernel_size: 5, activation: "relu" },
    { type: "maxpool2d", kernel_size: 2 },
    { type: "conv2d", out_channels: 16, kernel_size: 5, activation: "relu" },
    { type: "maxpool2d", kernel_size: 2 },
    { type: "flatten" },
    { type: "dense", units: 10, activation: "softmax" },
  ],
  loss: "cross_entropy",
};
const SMOOTH = 0.98; // the smoothed loss: an exponential moving average, bias-corrected

/** A run's state before its first message; `state`: idle | connecting | running | paused | done | closed. */
function freshRun(state) {
  return {
    state,
    started: null,
    losses: { xs: [], ys: [], sm: [] },
    evals: { xs: [], ys: [] },
    ema: 0,
    emaN: 0,
    snapshot: null,
    lastStep: null,
    lastEval: null,
    done: null,
    pendingTrace: null, // {kind: "batch" | "dev", ...} the trace asked for
    lastUpdate: null,
  };
}
const run = freshRun("idle");
let hooks = { showTrace: () => {}, status: () => {} };
let dirty = new Set();
let frame = 0;
const socket = new TrainSocket({ onMessage, onClose });

// ------------------------------------------------------------------ view switching
function visible() {
  return document.body.dataset.view === "train";
}

export function showView(train) {
  document.body.dataset.view = train ? "train" : "stepper";
  $("train-view").hidden = !train;
  const tab = $("train-tab");
  if (tab) tab.setAttribute("aria-pressed", String(train));
  if (train) {
    networkNote();
    dirty = new Set(["curves", "snapshot", "stats"]);
    schedule();
  }
}

// ------------------------------------------------------------------ start and commands
function startMessage() {
  const net = $("train-network").value;
  const name = $("train-optimizer").value;
  const augment = {};
  for (const k of Object.keys(AUGMENT)) if ($(`aug-${k}`).checked) Object.assign(augment, AUGMENT[k]);
  const msg = {
    type: "start",
    init: net === "digits-pretrained" ? "pretrained" : "random",
    seed: 0,
    optimizer: { name, lr: Number($("train-lr").value) },
    batch_size: Number($("train-batch").value),
    augment,
    max_steps: Math.max(1, Math.round(Number($("train-steps").value) || 1)),
  };
  if (net === "lenet-random") msg.network = LENET;
  else if (net === "playground") msg.network = playgroundStatus().spec;
  else msg.model = "digits";
  return msg;
}

/** Under the network choice: the playground's network, or why it can't be trained on digits. */
function networkNote() {
  const p = $("train-net-why");
  const chosen = $("train-network").value === "playground";
  p.hidden = !chosen;
  if (!chosen) {
    if (run.state !== "connecting") $("train-start").disabled = false;
    delete p.dataset.reason;
    return true;
  }
  const st = playgroundStatus();
  const shape = st.shape ? shapeText(st.shape) : "?";
  p.dataset.reason = st.reason || "ok";
  p.classList.toggle("bad", Boolean(st.reason));
  p.textContent = st.reason
    ? t(`train.pg.${st.reason}`, { shape, digit: t("pg.inputDigit") })
    : t("train.pg.ok", { layers: st.layers, madds: st.madds.toLocaleString(), shape });
  if (run.state !== "connecting") $("train-start").disabled = Boolean(st.reason);
  return !st.reason;
}

function start() {
  if (!networkNote()) return;
  Object.assign(run, freshRun("connecting"));
  $("train-results").hidden = true;
  $("train-paused").hidden = true;
  $("train-update").replaceChildren();
  document.body.dataset.trainEvals = "0";
  document.body.dataset.trainSteps = "0";
  say(t("train.status.connecting"));
  socket.start(startMessage());
  buttons();
  dirty = new Set(["curves", "stats", "snapshot"]);
  schedule();
}

function command(type, extra = {}) {
  socket.send({ type, ...extra });
}

function say(text) {
  $("train-status").textContent = text;
}

function buttons() {
  const s = run.state;
  const live = ["running", "paused"].includes(s);
  $("train-start").disabled = s === "connecting" || ($("train-network").value === "playground" && Boolean(playgroundStatus().reason));
  $("train-start").textContent = t(live ? "train.restart" : "train.start");
  $("train-pause").disabled = s !== "running";
  $("train-step").disabled = s !== "paused";
  $("train-resume").disabled = s !== "paused";
  $("train-stop").disabled = !live;
  $("train-paused").hidden = s !== "paused";
  document.body.dataset.trainState = s;
}

// ------------------------------------------------------------------ messages
function onMessage(m) {
  switch (m.type) {
    case "started":
      run.started = m;
      say(t("train.status.started", { n: m.train_size, dev: m.eval_size }));
      showFlip();
      fillExamples(m.batch_size);
      break;
    case "step": {
      const L = run.losses;
      m.losses.forEach((v, i) => {
        const x = m.first_step + i;
        if (L.xs.length && x <= L.xs[L.xs.length - 1]) return;
        run.ema = SMOOTH * run.ema + (1 - SMOOTH) * v;
        run.emaN += 1;
        L.xs.push(x);
        L.ys.push(v);
        L.sm.push(run.ema / (1 - Math.pow(SMOOTH, run.emaN)));
      });
      run.lastStep = m;
      document.body.dataset.trainSteps = String(m.step);
      dirty.add("curves").add("stats");
      break;
    }
    case "eval":
      if (!run.evals.xs.length || m.step > run.evals.xs[run.evals.xs.length - 1]) {
        run.evals.xs.push(m.step);
        run.evals.ys.push(m.accuracy);
      }
      run.lastEval = m;
      document.body.dataset.trainEvals = String(run.evals.xs.length);
      document.body.dataset.trainAccuracy = String(m.accuracy);
      dirty.add("curves").add("stats");
      break;
    case "snapshot":
      run.snapshot = m;
      dirty.add("snapshot");
      break;
    case "state":
      run.state = m.state;
      if (m.state === "paused") say(t("train.status.paused", { step: m.step }));
      else if (m.state === "running") say(t("train.status.running"));
      else if (m.state === "done") say(t(`train.status.done.${m.reason}`, { step: m.step }));
      buttons();
      break;
    case "lr":
      $("train-lr").value = String(m.lr);
      break;
    case "trace":
      onTrace(m);
      break;
    case "done":
      run.done = m;
      showResults(m);
      break;
    case "error": {
      const d = (m.detail && m.detail[0]) || {};
      say(t("train.status.error", { where: (d.loc || []).join("."), msg: d.msg || "" }));
      if (run.pendingTrace) run.pendingTrace = null;
      $("train-open").disabled = false;
      break;
    }
    default:
      break;
  }
  schedule();
}

function onClose(code) {
  const wasLive = ["connecting", "running", "paused"].includes(run.state);
  run.state = run.state === "done" ? "done" : "closed";
  if (wasLive && code !== 1000) say(t("train.status.closed", { code }));
  buttons();
  if (run.state === "done") $("train-stop").disabled = true;
}

// ------------------------------------------------------------------ drawing (one frame at most)
function schedule() {
  if (frame || !visible()) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const d = dirty;
    dirty = new Set();
    if (d.has("curves")) drawCurves();
    if (d.has("stats")) drawStats();
    if (d.has("snapshot")) drawSnapshot();
  });
}

function drawCurves() {
  const L = run.losses;
  lineChart(
    $("train-loss"),
    [
      { xs: L.xs, ys: L.ys, color: "#93c5fd", width: 1 },
      { xs: L.xs, ys: L.sm, color: "#1d4ed8", width: 2 },
    ],
    { xLabel: t("train.axis.step"), yLabel: t("train.axis.loss"), yMin: 0, xMax: run.started?.max_steps ?? null },
  );
  const E = run.evals;
  lineChart($("train-acc"), [{ xs: E.xs, ys: E.ys, color: "#c2410c", width: 2, dots: true }], {
    xLabel: t("train.axis.step"),
    yLabel: t("train.axis.acc"),
    yMin: 0,
    yMax: 1,
    xMax: run.started?.max_steps ?? null,
    percent: true,
  });
  const last = E.ys.length ? percent(E.ys[E.ys.length - 1]) : "–";
  const lossNow = L.sm.length ? fmt(L.sm[L.sm.length - 1], 4) : "–";
  $("train-loss").setAttribute("aria-label", t("train.lossAria") + " " + t("train.lossNow", { loss: lossNow, n: L.xs.length }));
  $("train-acc").setAttribute("aria-label", t("train.accAria") + " " + t("train.accNow", { acc: last, n: E.xs.length }));
}

function eta(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  const m = Math.floor(s / 60);
  return m ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}

function drawStats() {
  const m = run.lastStep;
  $("ts-step").textContent = m ? `${m.step} / ${run.started?.max_steps ?? "?"}` : "–";
  $("ts-epoch").textContent = m ? `${m.epoch} (${fmt(m.epoch_progress, 3)})` : "–";
  $("ts-loss").textContent = m ? fmt(m.loss, 4) : "–";
  $("ts-dev").textContent = run.lastEval ? percent(run.lastEval.accuracy) : "–";
  $("ts-speed").textContent = m ? `${fmt(m.images_per_s, 4)} ${t("train.perSecond")}` : "–";
  $("ts-eta").textContent = m && run.state === "running" ? eta(m.eta_s) : "–";
}

function drawSnapshot() {
  const s = run.snapshot;
  if (!s) return;
  if (s.kernels) {
    const w = s.kernels.w;
    let m = 0;
    for (const k of w) for (const row of k[0]) for (const v of row) m = Math.max(m, Math.abs(v));
    thumbs($("train-kernels"), w, (c, k) => paintGrid(c, k[0], { mode: "div", scale: m || 1 }),
      (k, i) => t("train.kernelAria", { i }));
    $("train-kernels-caption").textContent = t("train.kernels", { layer: s.kernels.layer, n: w.length, step: s.step, max: fmt(m, 3) });
  }
  const box = $("train-maps");
  box.replaceChildren();
  for (const fm of s.feature_maps) {
    const row = document.createElement("div");
    row.className = "maps-row";
    const label = document.createElement("span");
    label.textContent = t("train.mapsLayer", { layer: fm.layer, k: fm.maps.length, n: fm.channels });
    const strip = document.createElement("div");
    strip.className = "thumbs";
    thumbs(strip, fm.maps, (c, mp) => paintGrid(c, mp, { mode: "pos" }), (mp, i) => t("train.mapAria", { layer: fm.layer, i }));
    row.append(label, strip);
    box.append(row);
  }
  const p = s.probe;
  $("train-probe-caption").textContent = t("train.probe", { label: p.label, pred: p.prediction, p: percent(p.probabilities[p.prediction]) });
  drawNorms(s.norms);
  const b = s.batch;
  thumbs($("train-batch-orig"), b.original, (c, img) => paintGrid(c, img), (img, i) => t("train.thumbAria", { i, label: b.labels[i] }));
  thumbs($("train-batch-aug"), b.augmented, (c, img) => paintGrid(c, img), (img, i) => t("train.thumbAugAria", { i, label: b.labels[i] }));
  $("train-batch-caption").textContent = t("train.batchCaption", { step: b.step, k: b.labels.length, labels: b.labels.join(" ") });
}

function drawNorms(norms) {
  const list = $("train-norms");
  list.replaceChildren();
  const grads = norms.map((n) => n.grad).filter((g) => g !== null && g > 0);
  // log scale: vanishing and exploding gradients differ by orders of magnitude
  const lo = grads.length ? Math.log10(Math.min(...grads)) - 1 : -6;
  const hi = grads.length ? Math.log10(Math.max(...grads)) + 0.2 : 0;
  for (const n of norms) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = t("train.normLayer", { layer: n.layer, type: n.type });
    const bar = document.createElement("span");
    bar.className = "norm-bar";
    const fill = document.createElement("span");
    fill.className = "norm-fill";
    const frac = n.grad ? (Math.log10(n.grad) - lo) / Math.max(1e-9, hi - lo) : 0;
    fill.style.width = `${Math.max(2, Math.min(100, frac * 100))}%`;
    bar.append(fill);
    const val = document.createElement("span");
    val.className = "num";
    val.textContent = t("train.normValues", { g: n.grad === null ? "–" : fmt(n.grad, 3), w: fmt(n.weight, 3) });
    li.append(name, bar, val);
    list.append(li);
  }
}

// ------------------------------------------------------------------ flip example
function showFlip() {
  const on = $("aug-flip").checked;
  $("train-flip").hidden = !on;
  $("train-flip-text").textContent = t("train.flip.why");
  const ex = run.started && run.started.flip_example;
  for (const id of ["flip-original", "flip-mirrored"]) $(id).hidden = !ex;
  if (ex) {
    paintGrid($("flip-original"), ex.image);
    paintGrid($("flip-mirrored"), ex.flipped);
  }
}

// ------------------------------------------------------------------ paused: trace and update
function fillExamples(n) {
  const sel = $("train-example");
  sel.replaceChildren();
  for (let i = 0; i < n; i++) {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = String(i);
    sel.append(o);
  }
}

function openStep() {
  if (run.state !== "paused") return;
  run.pendingTrace = { kind: "batch" };
  $("train-open").disabled = true;
  say(t("train.status.tracing"));
  command("trace", { index: Number($("train-example").value) || 0 });
}

function traceDev(dev) {
  run.pendingTrace = { kind: "dev" };
  say(t("train.status.tracing"));
  command("trace", { dev });
}

function onTrace(m) {
  $("train-open").disabled = false;
  run.pendingTrace = null;
  const tr = m.trace;
  const layerType = m.update ? tr.network.layers[m.update.layer].type : "";
  const input = tr.layers[0].forward.a_prev;
  const image = Array.isArray(input) && input.length === 1 ? input[0] : input;
  if (m.update) {
    run.lastUpdate = m;
    const html = updateHtml(m.update, { layerType, exampleGrad: exampleGradient(tr, m.update) });
    $("train-update").innerHTML = html;
    sideCard(m, html);
  } else {
    removeSideCard();
  }
  say(
    m.update
      ? t("train.status.traced", { step: m.step + 1, i: m.index, label: m.label })
      : t("train.status.tracedDev", { dev: m.dev, label: m.label }),
  );
  showView(false);
  hooks.showTrace(tr, image, m.update ? m.update.layer : null);
  document.body.dataset.trainTrace = String(m.step);
}

function removeSideCard() {
  const old = $("train-update-card");
  if (old) old.remove();
}

/** The worked update next to the stepper, at the top of the side column. */
function sideCard(m, html) {
  removeSideCard();
  const side = $("side");
  if (!side) return;
  const card = document.createElement("section");
  card.className = "card train-update-card";
  card.id = "train-update-card";
  const h = document.createElement("h2");
  h.textContent = t("train.update.title", { step: m.step + 1, i: m.index });
  const body = document.createElement("div");
  body.className = "train-update";
  body.innerHTML = html;
  const back = document.createElement("button");
  back.type = "button";
  back.textContent = t("train.update.back");
  back.addEventListener("click", () => showView(true));
  card.append(h, body, back);
  side.prepend(card);
}

// ------------------------------------------------------------------ results
function showResults(d) {
  $("train-results").hidden = false;
  $("train-results-summary").textContent = t("train.resultsSummary", {
    acc: percent(d.eval.accuracy),
    n: d.eval.size,
    wrong: d.misclassified,
    step: d.step,
  });
  const table = $("train-confusion");
  table.replaceChildren();
  const cap = document.createElement("caption");
  cap.textContent = t("train.confusionCaption");
  const head = document.createElement("tr");
  head.append(cell("th", ""));
  for (let k = 0; k < 10; k++) head.append(cell("th", String(k), "col"));
  table.append(cap, head);
  const max = Math.max(...d.confusion.flat());
  d.confusion.forEach((row, i) => {
    const tr = document.createElement("tr");
    tr.append(cell("th", String(i), "row"));
    row.forEach((v, j) => {
      const c = cell("td", String(v));
      if (v && i !== j) c.className = "off";
      if (v && i === j) c.className = "diag";
      c.style.setProperty("--w", String(v / (max || 1)));
      tr.append(c);
    });
    table.append(tr);
  });
  const gal = $("train-gallery");
  gal.replaceChildren();
  for (const g of d.gallery) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = g.label === g.prediction ? "right" : "wrong";
    const c = document.createElement("canvas");
    paintGrid(c, g.image);
    const cap2 = document.createElement("span");
    cap2.textContent = `${g.label} → ${g.prediction}`;
    b.setAttribute("aria-label", t("train.galleryAria", { label: g.label, pred: g.prediction, p: percent(g.confidence) }));
    b.title = t("train.galleryAria", { label: g.label, pred: g.prediction, p: percent(g.confidence) });
    b.append(c, cap2);
    b.addEventListener("click", () => traceDev(g.dev));
    li.append(b);
    gal.append(li);
  }
}

function cell(tag, text, scope) {
  const c = document.createElement(tag);
  c.textContent = text;
  if (scope) c.scope = scope;
  return c;
}

// ------------------------------------------------------------------ wiring
export function initTrain(h) {
  hooks = { ...hooks, ...h };
  const tab = $("train-tab");
  if (tab) tab.addEventListener("click", () => showView(!visible()));
  $("train-back").addEventListener("click", () => showView(false));
  $("train-form").addEventListener("submit", (e) => e.preventDefault());
  $("train-start").addEventListener("click", start);
  $("train-pause").addEventListener("click", () => command("pause"));
  $("train-step").addEventListener("click", () => command("step"));
  $("train-resume").addEventListener("click", () => command("resume"));
  $("train-stop").addEventListener("click", () => command("stop"));
  $("train-open").addEventListener("click", openStep);
  $("aug-flip").addEventListener("change", showFlip);
  $("train-network").addEventListener("change", networkNote);
  $("train-optimizer").addEventListener("change", (e) => {
    $("train-lr").value = e.target.value === "adam" ? "0.001" : e.target.value === "sgd" ? "0.1" : "0.05";
  });
  $("train-lr").addEventListener("change", (e) => {
    const lr = Number(e.target.value);
    if (["running", "paused"].includes(run.state) && lr > 0 && lr <= 10) command("set_lr", { lr });
  });
  // Keys while the Train view shows (captured before the stepper's): Space pauses or resumes,
  // S takes one step while paused.
  document.addEventListener(
    "keydown",
    (e) => {
      if (!visible() || e.altKey || e.ctrlKey || e.metaKey) return;
      const tag = (e.target.tagName || "").toLowerCase();
      if (["input", "select", "textarea", "button"].includes(tag) && e.key === " ") return;
      if (["input", "select", "textarea"].includes(tag)) return;
      if (e.key === " ") {
        if (run.state === "running") command("pause");
        else if (run.state === "paused") command("resume");
      } else if (e.key === "s" || e.key === "S") {
        if (run.state === "paused") command("step");
      } else if (e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "a" || e.key === "A") {
        // the stepper's keys do nothing here
      } else return;
      e.preventDefault();
      e.stopImmediatePropagation();
    },
    true,
  );
  window.addEventListener("resize", () => {
    dirty.add("curves");
    schedule();
  });
  onLangChange(() => {
    buttons();
    networkNote();
    showFlip();
    dirty = new Set(["curves", "stats", "snapshot"]);
    if (run.done) showResults(run.done);
    if (run.lastUpdate && run.lastUpdate.update) {
      const m = run.lastUpdate;
      const layerType = m.trace.network.layers[m.update.layer].type;
      const html = updateHtml(m.update, { layerType, exampleGrad: exampleGradient(m.trace, m.update) });
      $("train-update").innerHTML = html;
      if ($("train-update-card")) sideCard(m, html);
    }
    schedule();
  });
  document.body.dataset.view = "stepper";
  buttons();
}
