// Learning and editing: "Apply one step" (one SGD step through the API's learning_rate), Reset,
// and the in-place editor of a worked example's values. The step's new parameters become the
// state's parameters, so every later trace uses them.

import { LEAN, api, completeTrace, decodeLazy, gzipAhead, paramsFromChanges, paramsOf } from "./api.js";
import { CONFIG } from "./config.js";
import { t } from "./i18n.js";
import { copyValues, hasParams, lazySelection, lazyTrace, shownLayer, showScenarioNote, suggestRate, traceBody } from "./session.js";
import { get, set, subscribe } from "./state.js";
import { applyEdits } from "./url.js";
import { Editor, setAt } from "./views/editor.js";
import { LearnPanel, subtract } from "./views/learn.js";

let runTrace = async () => {};
let showTrace = () => {};
let status = () => {};
let hold = () => {};
let stepping = false;
let editor = null;
let panel = null;

/** The state's scenario values differ from the scenario's own. */
export function isEdited(s) {
  return Boolean(s.base && s.values && JSON.stringify(copyValues(s.base)) !== JSON.stringify(s.values));
}

/** Parameters changed by learning (or edits) compared with the bundled / scenario ones. */
function paramsChanged(s) {
  // a bundled model or an uploaded .onnx network: learned parameters replace its own
  if (s.source.kind === "model" || s.source.kind === "onnx") return Boolean(s.params);
  return Boolean(s.base && s.values && JSON.stringify(s.base.params) !== JSON.stringify(s.values.params));
}

export function learningChanged(force = false) {
  if (!panel) return;
  const s = get();
  const title = document.getElementById("learn-title");
  title.dataset.i18n = s.source.kind === "scenario" ? "learn.titleExample" : "learn.title";
  title.textContent = t(title.dataset.i18n);
  panel.setEnabled({ hasParams: !s.trace || hasParams(s.trace), ready: Boolean(s.trace), busy: stepping, changed: paramsChanged(s) });
  panel.setRate(s.lr);
  panel.show(s.learned, s.trace ? s.trace.network : null, force);
}

function renderEditor() {
  const s = get();
  if (!editor || s.source.kind !== "scenario" || !s.base || !s.values) return;
  let changed = null;
  if (s.learned) {
    changed = {};
    s.learned.trace.layers.forEach((l, i) => {
      if (!l.params || !l.params.w) return;
      changed[`w${i}`] = subtract(s.learned.updated[i].w, l.params.w);
      changed[`b${i}`] = subtract(s.learned.updated[i].b, l.params.b);
    });
  }
  const edited = isEdited(s);
  editor.render(s.values, s.base.network, { edited, changed });
  showScenarioNote(s, edited);
}

/** Re-render the learning panel and the editor (after a language change). */
export function refreshLearning() {
  learningChanged(true);
  renderEditor();
}

/** Fetch a scenario's values (and apply the edits of a shared link). */
export async function loadScenario(id, edits) {
  const sc = await api.scenario(id);
  if (get().source.id !== id) return;
  const base = { spec: sc.spec, network: sc.network || sc.spec, ...copyValues(sc) };
  const values = edits ? applyEdits(copyValues(base), edits) : copyValues(base);
  set({ base, values, input: null });
}

/**
 * The POST /api/learn body for a trace body and a learning rate: the new trace as the page asks
 * for traces (on the digit model: no weight gradient but the one of the step in view, and the
 * learned weights as their changes to the model's own: a step moves about a sixth of them).
 */
function learnBody(body, lr, shown, model) {
  const lazy = model ? { ...lazySelection(shown), updated_params_as: "changes" } : {};
  return { ...body, learning_rate: lr, ...LEAN, include: [...LEAN.include, "updated_params"], ...lazy };
}

let aheadTimer = 0;

/** In idle time: gzip the next step's body (the learned weights, ~0.2 MB as changes) before the click. */
function prepareNextStep() {
  clearTimeout(aheadTimer);
  aheadTimer = setTimeout(() => {
    const idle = window.requestIdleCallback || ((f) => f());
    idle(
      () => {
        const s = get();
        const body = s.trace && s.params && s.lr > 0 && !stepping ? traceBody(s) : null;
        if (body && body.params) gzipAhead(learnBody(body, s.lr, shownLayer(s), s.source.kind === "model"));
      },
      { timeout: 200 }, // soon: a learner may click again within a second
    );
  }, 0);
}

/**
 * One SGD step with the chosen learning rate: ONE request (POST /api/learn) answers the loss
 * before and after, the new parameters (exact base64, sent back as is by the next request) and
 * the trace with them, which the views then show.
 */
export async function applyStep() {
  const s = get();
  const body = traceBody(s);
  if (stepping || !s.trace || !body || !hasParams(s.trace) || !(s.lr > 0)) return;
  stepping = true;
  performance.mark("learn:start");
  const shown = shownLayer(s);
  const model = s.source.kind === "model";
  // sent first (with a body gzipped ahead, fetch starts in this very call): the page's own
  // updates below run while the request travels
  const answer = api.learn(learnBody(body, s.lr, shown, model));
  hold(true); // the view the step's trace replaces stops animating meanwhile
  learningChanged();
  try {
    const r = await answer;
    performance.mark("learn:answer");
    // nested arrays only where a view reads them (the learn card reads the flat values)
    const updated = model ? paramsFromChanges(r.updated_params, await paramsOf(body.model)) : decodeLazy(r.updated_params);
    const trace = completeTrace(r.trace, body.input, updated);
    if (model) {
      // another layer's weight gradient comes when a step of it is opened, with these weights
      const target = Array.from(trace.target).indexOf(1);
      const next = { model: body.model, params: r.updated_params, input: body.input, target };
      lazyTrace(trace, next, shown);
    }
    // the trace the page shows is the one before the step (same input, target and parameters)
    const before = { ...s.trace, loss: r.loss_before, output: decodeLazy(r.output_before) };
    const learned = { trace: before, updated, lossAfter: r.loss_after, lr: s.lr,
      steps: (s.learned ? s.learned.steps : 0) + 1, outputAfter: trace.output };
    if (s.source.kind === "scenario") set({ values: { ...s.values, params: updated }, learned });
    else set({ params: updated, paramsWire: { of: updated, params: r.updated_params }, spec: trace.network, learned });
    performance.mark("learn:state");
    showTrace(trace);
    performance.mark("learn:views");
  } catch (err) {
    hold(false);
    status(t("status.error", { msg: err.message }));
  } finally {
    stepping = false;
    learningChanged();
    performance.mark("learn:card");
  }
}

/** Back to the bundled weights (model) or the scenario's own parameters. */
function resetParams() {
  const s = get();
  if (s.source.kind === "scenario") {
    if (!s.base) return;
    set({ values: { ...s.values, params: copyValues(s.base).params }, learned: null });
  } else {
    set({ params: null, paramsWire: null, spec: null, learned: null });
  }
  runTrace();
}

export function initLearning(hooks) {
  ({ runTrace, showTrace, status } = hooks);
  hold = hooks.hold || hold;
  panel = new LearnPanel({
    onApply: applyStep,
    onReset: resetParams,
    onRate: (lr) => set({ lr, lrUser: true }),
  });
  editor = new Editor(document.getElementById("editor"), {
    onEdit: (path, v) => {
      const s = get();
      const [key, ...rest] = path;
      set({ values: { ...s.values, [key]: setAt(s.values[key], rest, v) }, learned: null });
      runTrace();
    },
    onReset: () => {
      const s = get();
      if (!s.base) return;
      set({ values: copyValues(s.base), learned: null });
      runTrace();
    },
  });
  subscribe(["values", "learned", "base"], renderEditor);
  subscribe(["trace", "learned", "lr", "params"], (s) => {
    // A worked example's learning rate is suggested from its first trace, unless the user chose one.
    if (s.lr === null && s.trace) {
      set({ lr: s.source.kind === "scenario" ? suggestRate(s.trace) ?? CONFIG.learningRate : CONFIG.learningRate });
      return;
    }
    learningChanged();
    if (s.params) prepareNextStep();
  });
  // the next step's body names the layer in view (its weight gradient comes with the step)
  subscribe(["step"], (s) => s.params && s.source.kind === "model" && prepareNextStep());
}
