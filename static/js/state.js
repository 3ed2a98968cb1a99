// The shared application state: one plain object, changed only through set(), observed by views.
// Everything here is serializable, so issue 6 can mirror it into the URL.

const state = {
  source: { kind: "model", id: "" }, // or { kind: "scenario", id }
  sources: { models: [], scenarios: [] },
  scenario: null,        // the scenario's {title, note, spec, params, input, target}
  input: null,           // the network input (28×28 for the digit model, the scenario's otherwise)
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
