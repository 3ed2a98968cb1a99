// Wires the views to the state and the API. No numbers are made up here: all come from the API.

import { api } from "./api.js";
import { CONFIG } from "./config.js";
import { applyI18n, initialLang, onLangChange, pick, setLang, t } from "./i18n.js";
import { get, set, subscribe } from "./state.js";
import { buildSteps } from "./steps.js";
import { DetailView } from "./views/detail.js";
import { Overview } from "./views/overview.js";
import { Pad, paintSeen } from "./views/pad.js";
import { Probabilities } from "./views/probabilities.js";
import { Stepper } from "./views/stepper.js";

const $ = (id) => document.getElementById(id);
let traceSeq = 0;
let predicting = false;
let pendingImage = null;
let traceTimer = 0;
let playTimer = 0;

function status(text) {
  $("status").textContent = text;
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
  pendingImage = { image, final, version };
  if (!predicting) sendPredict();
}

async function sendPredict() {
  const job = pendingImage;
  if (!job) return;
  pendingImage = null;
  predicting = true;
  try {
    const res = await api.predict(get().source.id, job.image);
    set({ input: res.input, probabilities: res.probabilities, prediction: res.prediction });
    fillTargets();
    probs.update(res.probabilities, res.prediction, currentTarget(), job.version);
    if (job.final) scheduleTrace(0);
  } catch (err) {
    status(t("status.error", { msg: err.message }));
  } finally {
    predicting = false;
    if (pendingImage) {
      setTimeout(sendPredict, pendingImage.final ? 0 : CONFIG.predictDebounceMs);
    }
  }
}

function currentTarget() {
  const s = get();
  return s.target ?? s.prediction ?? 0;
}

function scheduleTrace(delay = CONFIG.traceDebounceMs) {
  clearTimeout(traceTimer);
  traceTimer = setTimeout(runTrace, delay);
}

async function runTrace() {
  const s = get();
  const seq = ++traceSeq;
  let body;
  if (s.source.kind === "scenario") body = { scenario: s.source.id };
  else {
    if (!s.input) return;
    body = { model: s.source.id, input: s.input, target: currentTarget() };
  }
  set({ busy: true });
  try {
    const trace = await api.trace(body);
    if (seq !== traceSeq) return;
    trace.__key = JSON.stringify(trace.network.layers.map((l) => [l.type, l.output_shape]));
    const old = get().trace;
    const steps = buildSteps(trace);
    const keep = old && old.__key === trace.__key ? Math.min(get().step, steps.length - 1) : 0;
    set({ trace, steps, step: keep, busy: false, error: "" });
    showStep();
    status("");
    document.body.dataset.traces = String(seq);
  } catch (err) {
    set({ busy: false });
    status(t("status.error", { msg: err.message }));
  }
}

// ------------------------------------------------------------------ stepping
function go(i) {
  const { steps } = get();
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
  stepper.render(trace, steps, step, playing);
  overview.render(trace, steps[step]);
  detail.show(trace, steps[step], step);
  $("overview-mode").textContent = steps[step].grad ? t("overview.modeGrad") : t("overview.modeAct");
  const loss = trace.loss;
  $("loss-line").textContent = t("target.loss", { C: loss.toPrecision(4) });
  $("loss-line").title = String(loss);
}

subscribe(["step"], showStep);
subscribe(["playing"], (s) => {
  stepper.render(s.trace, s.steps, s.step, s.playing);
  if (s.playing) stepDone();
});
subscribe(["speed"], (s) => detail.setSpeed(s.speed));
subscribe(["target"], (s) => {
  fillTargets();
  probs.update(s.probabilities, s.prediction, currentTarget());
  scheduleTrace(0);
});

document.addEventListener("keydown", (e) => {
  const tag = (e.target.tagName || "").toLowerCase();
  if (["input", "select", "textarea"].includes(tag) || e.target === $("pad") || e.altKey || e.ctrlKey || e.metaKey) return;
  if (tag === "button" && (e.key === " " || e.key === "Enter")) return; // the focused button's own action
  if (e.key === "ArrowRight") go(get().step + 1);
  else if (e.key === "ArrowLeft") go(get().step - 1);
  else if (e.key === " ") togglePlay();
  else if (e.key === "]") detail.focus(Math.floor(detail.pos ?? 0) + 1);
  else if (e.key === "[") detail.focus(Math.floor(detail.pos ?? 0) - 1);
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
function fillTargets() {
  const sel = $("target-select");
  const s = get();
  const n = s.probabilities ? s.probabilities.length : 10;
  const value = s.target === null ? "auto" : String(s.target);
  sel.replaceChildren();
  const auto = document.createElement("option");
  auto.value = "auto";
  auto.textContent = t("target.auto", { k: s.prediction ?? "–" });
  sel.append(auto);
  for (let k = 0; k < n; k++) {
    const o = document.createElement("option");
    o.value = String(k);
    o.textContent = t("target.class", { k });
    sel.append(o);
  }
  sel.value = value;
}

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
  fillSources();
  fillTargets();
  const s = get();
  probs.update(s.probabilities, s.prediction, currentTarget());
  showScenarioNote();
  showStep();
});

function fillSources() {
  const sel = $("source-select");
  const { sources, source } = get();
  sel.replaceChildren();
  for (const m of sources.models) {
    const o = document.createElement("option");
    o.value = "model:" + m.name;
    o.textContent = t("source.model", { name: m.name });
    sel.append(o);
  }
  for (const sc of sources.scenarios) {
    const o = document.createElement("option");
    o.value = "scenario:" + sc.id;
    o.textContent = pick(sc.title);
    sel.append(o);
  }
  sel.value = `${source.kind}:${source.id}`;
}

$("source-select").addEventListener("change", (e) => {
  const [kind, ...rest] = e.target.value.split(":");
  selectSource(kind, rest.join(":"));
});

function showScenarioNote() {
  const s = get();
  const sc = s.source.kind === "scenario" ? s.sources.scenarios.find((x) => x.id === s.source.id) : null;
  $("note-card").hidden = !sc;
  if (sc) {
    $("note-title").textContent = pick(sc.title);
    $("note-text").textContent = pick(sc.note);
  }
}

function selectSource(kind, id) {
  const isModel = kind === "model";
  set({ source: { kind, id }, target: null, step: 0, playing: false });
  document.body.dataset.source = kind;
  for (const cid of ["pad-card", "seen-card", "probs-card", "target-card"]) $(cid).hidden = !isModel;
  showScenarioNote();
  if (isModel) pad.changed(true);
  else scheduleTrace(0);
}

async function start() {
  setLang(initialLang());
  applyI18n();
  subscribe(["input"], (s) => s.input && paintSeen($("seen"), s.input));
  probs.update(null, null, null);
  fillTargets();
  try {
    const [models, scenarios] = await Promise.all([api.models(), api.scenarios().catch(() => [])]);
    const list = Array.isArray(models) ? models : models.models || [];
    const scs = Array.isArray(scenarios) ? scenarios : scenarios.scenarios || [];
    set({ sources: { models: list, scenarios: scs } });
    const first = list.find((m) => m.name === CONFIG.defaultModel) || list[0];
    set({ source: first ? { kind: "model", id: first.name } : { kind: "scenario", id: scs[0]?.id } });
    fillSources();
    selectSource(get().source.kind, get().source.id);
  } catch (err) {
    status(t("status.error", { msg: err.message }));
  }
}

start();
