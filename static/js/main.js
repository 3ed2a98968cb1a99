// Wires the views to the state and the API. No numbers are made up here: all come from the API.

import { api } from "./api.js";
import { CONFIG } from "./config.js";
import { fmt } from "./format.js";
import { applyI18n, initialLang, onLangChange, setLang, t } from "./i18n.js";
import { currentTarget, ensureLayer, fetchTrace, fillSources, fillTargets, showScenarioNote, traceBody } from "./session.js";
import { get, set, subscribe } from "./state.js";
import { buildSteps } from "./steps.js";
import { initLearning, learningChanged, loadScenario, refreshLearning, applyStep } from "./learning.js";
import { initShare, restoreFromUrl, stateToUrl } from "./share.js";
import { DetailView } from "./views/detail.js";
import { Overview } from "./views/overview.js";
import { Pad, paintSeen } from "./views/pad.js";
import { Probabilities } from "./views/probabilities.js";
import { Stepper } from "./views/stepper.js";
import { initTrain } from "./train/index.js";
import { initPlayground } from "./playground/index.js";
import { initSamples } from "./views/samples.js";
import { updateConfident } from "./views/confident.js";
import { enterOnnx, initOnnx, isOnnx } from "./onnx.js";

const $ = (id) => document.getElementById(id);
let traceSeq = 0;
let predicting = false;
let predictSeq = 0; // the newest /api/predict sent
let predictShown = 0; // the newest whose answer is shown (older answers arriving late are dropped)
let pendingImage = null;
let predictUnsent = null; // cancels the newest /api/predict while its body is still gzipping
let traceTimer = 0;
let playTimer = 0;

function status(text) {
  $("status").textContent = text;
}

/** A short notice at the top of the main column (e.g. parts of a link that were dropped). */
function notice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
}

/** Trace an exact network input (a sample digit, an uploaded picture): shown on the pad too. */
async function useInput(input) {
  if (get().source.kind !== "model") return;
  pad.setBackground(input);
  // the loss target defaults to the predicted class: the trace's "predicted" resolves it
  set({ input, learned: null, target: null, prediction: null });
  await runTrace();
}

const probs = new Probabilities($("probs"), { onPick: (k) => set({ target: k }) });
const overview = new Overview($("overview"), { onPick: pickColumn });
const detail = new DetailView($("detail"), { onDone: stepDone });
const stepper = new Stepper({
  onGo: (i) => go(i),
  onPlay: () => togglePlay(),
  onSpeed: (s) => set({ speed: s }),
});
const pad = new Pad($("pad"), { onChange: drawingChanged });

// ------------------------------------------------------------------ drawing → predict → trace
function drawingChanged(image, { final, version }) {
  if (pad.isEmpty() && !traceBlank && get().source.kind === "model") {
    // A blank pad costs no request: its empty state is drawn from the model's shapes, and the
    // first stroke (or the first step the learner asks for) brings the trace.
    pendingImage = null;
    showEmpty();
    return;
  }
  pendingImage = { image, final, version };
  if (pad.isEmpty()) set({ learned: null });
  // The stroke's end is ONE request: the trace of the drawing itself (POST /api/trace with
  // `image`), which also brings the 28×28 input, the bars and the prediction. A predict still on
  // its way with an older drawing is not waited for; its late answer is dropped.
  if (final && traceDrawing()) return;
  if (!predicting || final) sendPredict();
}

/** The stroke's end on the digit model: trace the drawing in one request. False: not here. */
function traceDrawing() {
  const s = get();
  if (s.source.kind !== "model" || !pendingImage) return false;
  const job = pendingImage;
  pendingImage = null;
  predictShown = ++predictSeq; // every predict still on its way is for an older drawing
  predicting = false;
  // one not sent yet (its body still gzipping) is not sent at all: the trace answers instead
  if (predictUnsent) predictUnsent.abort();
  predictUnsent = null;
  runTrace(job);
  return true;
}

let traceBlank = false;

/** The network's columns with their shapes and no values yet (no trace, nothing requested). */
function showEmpty() {
  const s = get();
  const model = s.sources.models.find((m) => m.name === s.source.id);
  clearTimeout(traceTimer);
  traceSeq++; // an answer still on its way is for a drawing that is gone
  set({ trace: null, steps: [], step: 0, input: null, learned: null, busy: false });
  if (s.probabilities) {
    set({ probabilities: null, prediction: null });
    probs.update(null, null, null);
  }
  if (model && model.network) {
    const network = model.network;
    const layers = network.layers.map((l, i) => ({ index: i, type: l.type, input_shape: l.input_shape,
      output_shape: l.output_shape, forward: {}, backward: {}, params: {} }));
    overview.render({ network, layers }, { phase: "forward", kind: "empty", layer: -1, column: -1, grad: false });
  }
  const canvas = $("detail").querySelector("canvas");
  if (canvas) canvas.setAttribute("aria-label", t("pad.placeholder"));
  document.body.dataset.empty = "true";
  if (!document.body.dataset.traces) document.body.dataset.traces = "0";
  document.body.dataset.tracing = "false";
}

/** The blank pad's trace, asked for by a step (the learner wants to see the steps of nothing). */
function traceBlankPad(step) {
  set({ pendingStep: step });
  traceBlank = true;
  try {
    pad.changed(true);
  } finally {
    traceBlank = false;
  }
}

async function sendPredict() {
  const job = pendingImage;
  if (!job) return;
  pendingImage = null;
  predicting = true;
  const seq = ++predictSeq;
  const unsent = (predictUnsent = new AbortController());
  try {
    const res = await api.predict(isOnnx(get()) ? CONFIG.defaultModel : get().source.id, job.image, unsent.signal);
    if (seq < predictShown) return; // a newer drawing's answer is already shown
    predictShown = seq;
    // With learned weights the bars come from the trace (the bundled model answers /api/predict).
    if (get().params || isOnnx(get())) set({ input: res.input, learned: null });
    else set({ input: res.input, probabilities: res.probabilities, prediction: res.prediction, learned: null });
    fillTargets(get());
    probs.update(get().probabilities, get().prediction, currentTarget(get()), job.version);
    if (job.final) scheduleTrace(0);
  } catch (err) {
    if (err.name !== "AbortError") status(t("status.error", { msg: err.message }));
  } finally {
    if (predictUnsent === unsent) predictUnsent = null;
    if (seq === predictSeq) predicting = false;
    if (pendingImage && !predicting) {
      setTimeout(sendPredict, pendingImage.final ? 0 : CONFIG.predictDebounceMs);
    }
  }
}

function scheduleTrace(delay = CONFIG.traceDebounceMs) {
  document.body.dataset.tracing = "true"; // for the e2e tests: a trace is on its way
  clearTimeout(traceTimer);
  traceTimer = setTimeout(runTrace, delay);
}

/**
 * Trace the current state, or with `job` ({image, version} of the pad at a stroke's end) the
 * drawing itself: its 28×28 input and the bars then come with the trace. Resolves when the
 * views show it (or the trace failed).
 */
async function runTrace(job = null) {
  clearTimeout(traceTimer);
  const body = job && job.image ? traceBody(get(), job.image) : traceBody(get());
  if (!body) {
    document.body.dataset.tracing = "false";
    return;
  }
  const seq = ++traceSeq;
  document.body.dataset.tracing = "true";
  performance.mark("trace:start");
  detail.hold(true); // the view this trace replaces stops animating meanwhile
  set({ busy: true });
  try {
    const trace = await fetchTrace(get(), body);
    performance.mark("trace:answer");
    if (seq !== traceSeq) return;
    // the step that stays in view gets its layer's lazily fetched tensors before anything shows
    const steps = buildSteps(trace);
    const kept = steps[keptStep(trace, steps)];
    await (kept ? ensureLayer(trace, kept.layer) : null);
    if (seq !== traceSeq) return;
    if (job) set({ input: trace.input, learned: null });
    performance.mark("trace:state");
    showTrace(trace, seq, job ? job.version : undefined);
    performance.mark("trace:views");
  } catch (err) {
    set({ busy: false });
    status(t("status.error", { msg: err.message }));
    if (seq === traceSeq) {
      document.body.dataset.tracing = "false";
      detail.hold(false);
    }
  }
}

/** The step a new trace opens at: the current one when the network is the same, or a link's. */
function keptStep(trace, steps) {
  const s = get();
  const key = JSON.stringify(trace.network.layers.map((l) => [l.type, l.output_shape]));
  let keep = s.trace && s.trace.__key === key ? Math.min(s.step, steps.length - 1) : 0;
  if (s.pendingStep !== null) keep = Math.max(0, Math.min(steps.length - 1, s.pendingStep));
  return keep;
}

/**
 * Show a complete trace object (from runTrace, or from a learning step's one answer); `version`:
 * the pad's drawing the bars now belong to (a stroke's trace).
 */
function showTrace(trace, seq = ++traceSeq, version = undefined) {
  trace.__key = JSON.stringify(trace.network.layers.map((l) => [l.type, l.output_shape]));
  const s = get();
  const steps = buildSteps(trace);
  const keep = keptStep(trace, steps);
  const patch = { trace, steps, step: keep, busy: false, error: "", pendingStep: null };
  if (trace.prediction !== undefined && (s.source.kind === "model" || isOnnx(s))) {
    Object.assign(patch, { probabilities: trace.output, prediction: trace.prediction });
  }
  set(patch);
  delete document.body.dataset.empty;
  if (patch.probabilities) probs.update(trace.output, trace.prediction, currentTarget(get()), version);
  fillTargets(get());
  showStep();
  status("");
  document.body.dataset.traces = String(seq);
  document.body.dataset.tracing = "false";
}

// ------------------------------------------------------------------ stepping
function go(i) {
  const { steps } = get();
  if (!steps.length && !get().trace && get().source.kind === "model" && pad.isEmpty()) return traceBlankPad(Math.max(0, i));
  if (!steps.length) return;
  set({ step: Math.max(0, Math.min(steps.length - 1, i)) });
}

function togglePlay() {
  const s = get();
  if (!s.steps.length) return;
  if (!s.playing && s.step >= s.steps.length - 1) set({ step: 0 });
  set({ playing: !s.playing });
}

function stepDone() {
  const s = get();
  if (!s.playing) return;
  clearTimeout(playTimer);
  playTimer = setTimeout(() => {
    const now = get();
    if (!now.playing) return;
    if (now.step >= now.steps.length - 1) set({ playing: false });
    else go(now.step + 1);
  }, 600 / s.speed);
}

function pickColumn(k) {
  const { steps, step } = get();
  const backward = steps[step] && steps[step].phase !== "forward";
  const idx = steps.findIndex((s) => (backward ? s.phase === "backward" : s.phase === "forward") && s.column === k);
  const any = idx >= 0 ? idx : k === 0 && !backward ? 0 : steps.findIndex((s) => s.column === k);
  if (any >= 0) go(any);
}

function showStep() {
  const { trace, steps, step, playing } = get();
  if (!trace) return;
  // a step of a layer whose tensors are not here yet: fetch them, then show
  const wait = steps[step] ? ensureLayer(trace, steps[step].layer) : null;
  if (wait) {
    wait.then(
      () => get().trace === trace && get().step === step && showStep(),
      (err) => {
        detail.hold(false);
        status(t("status.error", { msg: err.message }));
      },
    );
    return;
  }
  stepper.render(trace, steps, step, playing);
  overview.render(trace, steps[step]);
  detail.show(trace, steps[step], step);
  updateConfident(trace, steps, step, (k) => set({ target: k }));
  $("overview-mode").textContent = steps[step].grad ? t("overview.modeGrad") : t("overview.modeAct");
  const loss = trace.loss;
  $("loss-line").textContent = t("target.loss", { C: fmt(loss, 6) });
  $("loss-line").title = String(loss);
  $("loss-line").dataset.value = String(loss);
}

subscribe(["step"], showStep);
subscribe(["playing"], (s) => {
  stepper.render(s.trace, s.steps, s.step, s.playing);
  if (s.playing) stepDone();
});
subscribe(["speed"], (s) => detail.setSpeed(s.speed));
subscribe(["target"], (s) => {
  set({ learned: null });
  fillTargets(s);
  probs.update(s.probabilities, s.prediction, currentTarget(s));
  scheduleTrace(0);
});
subscribe(["source", "step", "target", "lr", "input", "values", "trace"], stateToUrl);

document.addEventListener("keydown", (e) => {
  const tag = (e.target.tagName || "").toLowerCase();
  if (["input", "select", "textarea"].includes(tag) || e.target === $("pad") || e.altKey || e.ctrlKey || e.metaKey) return;
  if (tag === "button" && (e.key === " " || e.key === "Enter")) return; // the focused button's own action
  if (e.key === "ArrowRight") go(get().step + 1);
  else if (e.key === "ArrowLeft") go(get().step - 1);
  else if (e.key === " ") togglePlay();
  else if (e.key === "]") detail.focus(Math.floor(detail.pos ?? 0) + 1);
  else if (e.key === "[") detail.focus(Math.floor(detail.pos ?? 0) - 1);
  else if (e.key === "a" || e.key === "A") applyStep();
  else return;
  e.preventDefault();
});

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    const s = get();
    if (s.trace) overview.render(s.trace, s.steps[s.step]);
  }, 150);
});

// ------------------------------------------------------------------ sources, target, language
$("target-select").addEventListener("change", (e) => {
  set({ target: e.target.value === "auto" ? null : Number(e.target.value) });
});
$("pad-undo").addEventListener("click", () => pad.undo());
$("pad-clear").addEventListener("click", () => pad.clear());
for (const b of document.querySelectorAll(".lang-btn")) b.addEventListener("click", () => setLang(b.dataset.lang));

onLangChange((name) => {
  pad.setPlaceholder(t("pad.placeholder"));
  $("step-track").dataset.key = ""; // rebuild the step dots with translated labels
  for (const b of document.querySelectorAll(".lang-btn")) b.setAttribute("aria-pressed", String(b.dataset.lang === name));
  const s = get();
  fillSources(s);
  fillTargets(s);
  probs.update(s.probabilities, s.prediction, currentTarget(s));
  refreshLearning();
  showStep();
  stateToUrl();
});

$("source-select").addEventListener("change", (e) => {
  const [kind, ...rest] = e.target.value.split(":");
  selectSource(kind, rest.join(":"));
});

/** Switch to a model or scenario; `restore` (from a shared link) carries its input or edits. */
async function selectSource(kind, id, restore = {}) {
  const isModel = kind === "model";
  set({ source: { kind, id }, target: restore.target ?? null, step: 0, playing: false, params: null,
    spec: null, learned: null, base: null, values: null, trace: null, pendingStep: restore.step ?? null,
    lr: restore.lr ?? null, lrUser: Boolean(restore.lr) });
  document.body.dataset.source = kind;
  if (kind === "onnx") return enterOnnx(); // an uploaded .onnx: onnx.js shows it
  for (const cid of ["pad-card", "seen-card", "probs-card", "target-card"]) $(cid).hidden = !isModel;
  $("edit-card").hidden = isModel;
  if (!isModel) {
    showScenarioNote(get(), false);
    await loadScenario(id, restore.edits);
    return runTrace();
  }
  showScenarioNote(get(), false);
  learningChanged();
  if (restore.input) {
    pad.setBackground(restore.input);
    set({ input: restore.input });
    return runTrace();
  }
  pad.changed(true);
}

async function start() {
  const url = restoreFromUrl();
  initLearning({ runTrace, showTrace, status, hold: (on) => detail.hold(on) });
  setLang(url.lang || initialLang());
  applyI18n();
  subscribe(["input"], (s) => s.input && paintSeen($("seen"), s.input));
  probs.update(null, null, null);
  fillTargets(get());
  initShare({ status });
  initSamples({ onInput: useInput, model: () => (get().source.kind === "model" && get().source.id) || CONFIG.defaultModel, status });
  initOnnx({ selectSource, runTrace, status, pad });
  try {
    const [models, scenarios] = await Promise.all([api.models(), api.scenarios().catch(() => [])]);
    const list = Array.isArray(models) ? models : models.models || [];
    const scs = Array.isArray(scenarios) ? scenarios : scenarios.scenarios || [];
    set({ sources: { models: list, scenarios: scs } });
    const first = list.find((m) => m.name === CONFIG.defaultModel) || list[0];
    const source = url.resolve(list, scs) || (first ? { kind: "model", id: first.name } : { kind: "scenario", id: scs[0]?.id });
    set({ source });
    fillSources(get());
    const restore = await url.restore(list);
    if (url.problems.length) notice(t("link.ignored", { parts: url.problems.join(", ") }));
    await selectSource(source.kind, source.id, restore);
    // A link whose values the API refuses still ends with a trace: the source's own values.
    if (!get().trace && (restore.edits || restore.input)) await selectSource(source.kind, source.id, {});
  } catch (err) {
    status(t("status.error", { msg: err.message }));
  }
}

// Train mode (static/js/train): its view, and a trace answer from a training run shown here.
function showTrainTrace(trace, input, layer = null) {
  trace.__key = JSON.stringify(trace.network.layers.map((l) => [l.type, l.output_shape]));
  const steps = buildSteps(trace);
  // a training step's trace opens on ∂C/∂w of the layer whose update is worked out
  const at = layer === null ? -1 : steps.findIndex((s) => s.kind === "weight_grad" && s.layer === layer);
  const patch = { trace, steps, step: Math.max(0, at), playing: false, learned: null };
  if (Array.isArray(input) && input.length === 28) patch.input = input;
  if (trace.prediction !== undefined) Object.assign(patch, { probabilities: trace.output, prediction: trace.prediction });
  set(patch);
  delete document.body.dataset.empty;
  if (patch.probabilities) probs.update(trace.output, trace.prediction, currentTarget(get()));
  showStep();
}
initTrain({ showTrace: showTrainTrace, status });

// The architecture playground (static/js/playground): a network of the learner's own, traced
// and stepped through here like a worked example (its parameters seeded on the server).
initPlayground({
  traceNetwork: async (spec, input, target, params, network) => {
    set({ source: { kind: "scenario", id: "playground" }, base: { spec, network, params, input, target },
      values: { input, params, target }, target: null, step: 0, playing: false,
      params: null, learned: null, trace: null, pendingStep: null });
    document.body.dataset.source = "playground";
    for (const cid of ["pad-card", "seen-card", "probs-card", "target-card", "edit-card", "note-card"]) $(cid).hidden = true;
    await runTrace();
  },
  digit: () => (get().input && get().input.length === 28 ? get().input : null),
  status,
});

start();
