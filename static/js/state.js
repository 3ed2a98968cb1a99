// The shared application state: one plain object, changed only through set(), observed by views.
// share.js mirrors part of it into the URL.

const state = {
  source: { kind: "model", id: "" }, // or { kind: "scenario", id }
  sources: { models: [], scenarios: [] },
  base: null,            // a scenario's own {spec, input, params, target} (from /api/scenarios/{id})
  values: null,          // a scenario's current {input, params, target}: edited or learned
  input: null,           // the digit model's input (the 28×28 the server made of the drawing)
  params: null,          // the digit model's parameters after learning steps (null: the bundled ones)
  paramsWire: null,      // {of: params, params: their exact base64 as /api/learn answered}: sent back as is
  spec: null,            // the network spec sent with `params`
  lr: null,              // the learning rate of "Apply one step"
  lrUser: false,         // the user (or the link) chose lr
  learned: null,         // the last step: {trace (before), updated, lossAfter, steps, outputAfter}
  pendingStep: null,     // the step a shared link asks for, applied when its trace arrives
  probabilities: null,
  prediction: null,
  target: null,          // null: the predicted class
  trace: null,
  steps: [],
  step: 0,
  playing: false,
  speed: 1,
  busy: false,
  error: "",
};

const listeners = [];

export function get() {
  return state;
}

/** Merge `patch` into the state, then call every listener watching one of the changed keys. */
export function set(patch) {
  const changed = [];
  for (const [k, v] of Object.entries(patch)) {
    if (state[k] !== v) {
      state[k] = v;
      changed.push(k);
    }
  }
  if (!changed.length) return;
  for (const { keys, fn } of listeners) {
    if (keys.some((k) => changed.includes(k))) fn(state, changed);
  }
}

/** Call fn(state, changedKeys) whenever one of `keys` changes. */
export function subscribe(keys, fn) {
  listeners.push({ keys, fn });
}
