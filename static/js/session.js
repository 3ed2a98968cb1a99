// What goes to /api/trace for the current state, the source pickers of the side column, and the
// learning-rate suggestion. Pure functions of the state (plus the DOM of the pickers).

import { LEAN, api, completeTrace, decodeLazy, fillLayer, paramsOf } from "./api.js";
import { pick, t } from "./i18n.js";
import { flat } from "./math/tensor.js";
import { onnxTraceBody } from "./onnx.js";

const $ = (id) => document.getElementById(id);

/** The class the loss compares with: the chosen one, else the predicted one. */
export function currentTarget(s) {
  return s.target ?? s.prediction ?? 0;
}

/**
 * The /api/trace body for the state, or null when there is nothing to trace yet.
 * Digit model: {model, input, target}, or {network, params, …} once a learning step changed the
 * weights; with `image` (the pad's drawing at a stroke's end) that instead of the input (the
 * server makes the 28×28 and returns it). Its target, unless the learner chose one, is
 * "predicted": the class the network predicts for this input, resolved by the server in the
 * same request. Scenario: always its (possibly edited) values as a custom network.
 */
export function traceBody(s, image = null) {
  if (s.source.kind === "onnx") return onnxTraceBody(s); // an uploaded .onnx network
  if (s.source.kind === "scenario") {
    if (!s.values) return null;
    const { input, params, target } = s.values;
    return { network: s.base.spec, params, input, target };
  }
  if (!s.input && !image) return null;
  const common = { ...(image ? { image } : { input: s.input }), target: s.target ?? "predicted" };
  // learned weights travel as the last step's answer gave them (exact changes to the model's own)
  return s.params ? { model: s.source.id, params: wireParams(s), ...common } : { model: s.source.id, ...common };
}

/**
 * The trace for `body` (from traceBody), as the views expect it: asks only for what the page
 * draws (api.js LEAN: no parameters, nothing twice) and rebuilds the rest from what the page has
 * (the input it sent, the parameters it sent or the model's, downloaded once).
 */
export async function fetchTrace(s, body, signal) {
  const own = body.model === undefined && body.params === undefined; // a network seeded on the server
  const include = own ? [...LEAN.include, "params"] : LEAN.include;
  const shown = shownLayer(s);
  const lazy = s.source.kind === "model" ? lazySelection(shown) : {};
  const [lean, params] = await Promise.all([
    api.trace({ ...body, ...LEAN, include, ...lazy }, signal),
    body.model !== undefined && !body.params ? paramsOf(body.model) : null,
  ]);
  const trace = completeTrace(lean, body.input, params || paramsSent(s, body));
  if (s.source.kind === "model") lazyTrace(trace, concreteBody(body, trace), shown);
  return trace;
}

/** `body` as it traces the same sample again: the 28×28 its image became, the class it resolved. */
function concreteBody(body, trace) {
  if (body.image === undefined && body.target !== "predicted") return body;
  const { image, ...rest } = body;
  const target = Array.from(trace.target).indexOf(1);
  return { ...rest, input: body.input ?? trace.input, target: body.target === "predicted" ? target : body.target };
}

// A digit trace is 213 k numbers, 113 k of them weight gradients, and one step's views read one
// layer's tensors (the overview every layer's a or ∂C/∂a). So the page asks for every tensor of
// the layer in view and, for the others, for what the overview draws (plus the bias gradients,
// and the references "dedupe" gives for free); a step of another layer fetches that layer's
// tensors when it is opened (ensureLayer), as a stroke never pays for what nobody looks at.
const EVERY = ["a_prev", "a", "dC_da", "dC_da_prev", "dC_db"];

/** The selection fields of a digit-model trace (or learning step) showing layer `shown`. */
export function lazySelection(shown) {
  return { layers: [shown], every_layer: EVERY };
}

/** The layer of the step the next trace will open at (layer 0 before the first trace). */
export function shownLayer(s) {
  const step = s.trace && s.steps[s.pendingStep ?? s.step];
  return step ? step.layer : 0;
}

/** Marks `trace` (of the digit model, asked for with lazySelection(shown)) as filled in later. */
export function lazyTrace(trace, body, shown) {
  trace.__lazy = { body, complete: new Set([shown]), pending: {} };
  return trace;
}

/**
 * Null when layer i of `trace` has every tensor the views read; else a promise that fetches the
 * missing ones into the trace object (once per layer: POST /api/trace with "layers": [i]; with
 * learned weights, which must go up with the request, every missing layer at once).
 */
export function ensureLayer(trace, i) {
  const lazy = trace && trace.__lazy;
  if (!lazy || !trace.layers[i] || lazy.complete.has(i)) return null;
  if (!lazy.pending[i]) {
    const want = lazy.body.params ? trace.layers.map((_, j) => j).filter((j) => !lazy.complete.has(j)) : [i];
    const p = api
      .trace({ ...lazy.body, ...LEAN, layers: want, exclude: EVERY })
      .then((r) => {
        for (const j of want) {
          fillLayer(trace, j, r.layers[j], lazy.body.input);
          lazy.complete.add(j);
        }
      })
      .catch((err) => {
        for (const j of want) delete lazy.pending[j];
        throw err;
      });
    for (const j of want) lazy.pending[j] = p;
  }
  return lazy.pending[i];
}

/** The state's learned parameters as sent: their exact base64 when the state holds it. */
function wireParams(s) {
  return s.paramsWire && s.paramsWire.of === s.params ? s.paramsWire.params : s.params;
}

/** The nested parameters a request body carries (the state's, when it sent their base64). */
export function paramsSent(s, body) {
  if (!body.params) return null;
  if (s.paramsWire && body.params === s.paramsWire.params) return s.paramsWire.of;
  return decodeLazy(body.params);
}

/** A deep copy of a scenario's {input, params, target}. */
export function copyValues(v) {
  return JSON.parse(JSON.stringify({ input: v.input, params: v.params, target: v.target }));
}

/**
 * A learning rate for a worked example, from its own trace: the 1-2-5 value at or below half the
 * Polyak step C / ‖∂C/∂θ‖² (the step that would reach C = 0 if the loss were linear). The examples'
 * scales differ by orders of magnitude, so one fixed default cannot fit them all. Null: no gradient.
 */
export function suggestRate(trace) {
  let g2 = 0;
  for (const l of trace.layers) {
    for (const k of ["dC_dw", "dC_db"]) if (l.backward[k]) for (const v of flat(l.backward[k])) g2 += v * v;
  }
  if (!(g2 > 0) || !(trace.loss > 0)) return null;
  const v = trace.loss / (2 * g2);
  const e = Math.floor(Math.log10(v));
  const m = v / 10 ** e;
  const d = m >= 5 ? 5 : m >= 2 ? 2 : 1;
  return Number((d * 10 ** e).toPrecision(1));
}

/**
 * Whether the network of the trace has any parameters to learn: a layer's weight `w`, or, in a
 * block (residual, concat), a flat dotted name such as `layers.0.w` or an inner entry's own `w`.
 */
export function hasParams(trace) {
  return Boolean(trace && trace.layers.some(learnable));
}

function learnable(l) {
  if (!l) return false;
  if (l.params && Object.keys(l.params).some((k) => k === "w" || k.endsWith(".w"))) return true;
  const inner = [...(l.layers || []), ...(l.branches || []).flat(), l.projection];
  return inner.some(learnable);
}

export function fillTargets(s) {
  const sel = $("target-select");
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

export function fillSources(s) {
  const sel = $("source-select");
  const { sources, source } = s;
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
  if (s.onnx) {
    const o = document.createElement("option");
    o.value = "onnx:" + s.onnx.name;
    o.textContent = t("onnx.source", { name: s.onnx.name });
    sel.append(o);
  }
  sel.value = `${source.kind}:${source.id}`;
}

export function showScenarioNote(s, edited) {
  const sc = s.source.kind === "scenario" ? s.sources.scenarios.find((x) => x.id === s.source.id) : null;
  $("note-card").hidden = !sc;
  if (sc) {
    $("note-title").textContent = pick(sc.title);
    $("note-text").textContent = pick(sc.note);
  }
  $("note-edited").hidden = !edited;
}
