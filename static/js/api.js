// The only module that talks to the server. Every number the UI shows comes from these calls.

// Bodies larger than this go up gzip-compressed (Content-Encoding: gzip; the server inflates
// them, capped): a learner's 128k digit-model parameters as exact base64 are 1.4 MB, ~0.6 MB
// gzipped, or as their changes to the model's own (what the page sends) ~0.2 MB, ~0.15 MB
// gzipped; a drawing sent to /api/predict (112×112 numbers, mostly 0) ~28 KB, ~3 KB gzipped.
const GZIP_ABOVE = 4 * 1024;

async function gzip(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}

// The next "Apply one step" body of learned weights, gzipped ahead of time (in idle time after
// the trace it follows): gzipping the learned weights (1.4 MB as every value, ~0.2 MB as
// changes) was most of a step's time in the page. Used only when the body sent is this one: the
// same `params` object (the learned weights as received) and the same other fields, so the
// click need not even write the text again.
let ahead = null;

function aheadKey(body) {
  const { params, ...rest } = body;
  return JSON.stringify(rest);
}

/** Gzip `body` now, for a request that will probably send exactly it next. */
export function gzipAhead(body) {
  if (typeof CompressionStream !== "function") return;
  const key = aheadKey(body);
  if (ahead && ahead.params === body.params && ahead.key === key) return;
  const text = JSON.stringify(body);
  if (text.length <= GZIP_ABOVE) return;
  const made = (ahead = { params: body.params, key, bytes: gzip(text), ready: null });
  made.bytes.then(
    (b) => (made.ready = b),
    () => ahead === made && (ahead = null),
  );
}

/** The gzipped bytes of `body` made ahead of time ({bytes: promise, ready: bytes or null}), or null. */
function gzippedAhead(body) {
  if (!ahead || body === null || typeof body !== "object" || body.params !== ahead.params) return null;
  return aheadKey(body) === ahead.key ? ahead : null;
}

// A stroke's end sends its drawing (~26 KB of text, ~0.3-3 KB gzipped) as it is: gzip in the
// page runs in steps between the views' animation frames and then takes 1 to 40 ms, more than
// sending 26 KB costs. Bodies above this (learned weights) are still gzipped.
const GZIP_URGENT_ABOVE = 64 * 1024;

/**
 * `unsent`: an AbortSignal that cancels the request only while it is not sent yet (its body may
 * still be gzipping); once sent it runs to its end. Cancelled, it rejects with an AbortError.
 */
async function request(method, url, body, signal, gzipAbove = GZIP_ABOVE, unsent = null) {
  const init = { method, headers: { Accept: "application/json" }, signal };
  const early = body !== undefined && gzippedAhead(body);
  if (early) {
    init.headers["Content-Type"] = "application/json";
    // bytes already made: fetch starts within this call (no await before it)
    init.body = early.ready || (await early.bytes.catch(() => gzip(JSON.stringify(body))));
    init.headers["Content-Encoding"] = "gzip";
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
    if (init.body.length > gzipAbove && typeof CompressionStream === "function") {
      init.body = await gzip(init.body);
      init.headers["Content-Encoding"] = "gzip";
    }
  }
  if (unsent && unsent.aborted) throw new DOMException("not sent: no longer wanted", "AbortError");
  const res = await fetch(url, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const d = data && data.detail;
    const msg = Array.isArray(d) ? d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ") : d || res.statusText;
    const err = new Error(String(msg));
    err.status = res.status;
    throw err;
  }
  return data;
}

export const api = {
  models: () => request("GET", "/api/models"),
  model: (name) => request("GET", `/api/models/${encodeURIComponent(name)}`),
  scenarios: () => request("GET", "/api/scenarios"),
  scenario: (id) => request("GET", `/api/scenarios/${encodeURIComponent(id)}`),
  /** `unsent` (an AbortSignal) drops the request while its body is still being made. */
  predict: (model, image, unsent = null) => request("POST", "/api/predict", { model, image }, undefined, GZIP_ABOVE, unsent),
  /** body: {model, input, target} | {scenario, input?, target?} | {network, params, seed, input, target} */
  trace: (body, signal) => request("POST", "/api/trace", body, signal, body.image ? GZIP_URGENT_ABOVE : GZIP_ABOVE),
  /** One SGD step in one round trip: {loss_before, loss_after, output_before, updated_params, trace, …} */
  learn: (body, signal) => request("POST", "/api/learn", body, signal),
  /** A model with its parameters as exact base64 (cached by the browser: ETag, 304 on reload). */
  modelB64: (name) => request("GET", `/api/models/${encodeURIComponent(name)}?encoding=base64`),
  /** A few real MNIST test digits: {samples: [{index, label, input}]} */
  samples: () => request("GET", "/api/samples"),
  /** A PNG/JPEG through /api/predict's upload path: {input, probabilities, prediction} */
  predictUpload: async (model, file) => {
    const form = new FormData();
    form.append("model", model);
    form.append("file", file);
    const res = await fetch("/api/predict", { method: "POST", body: form, headers: { Accept: "application/json" } });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const d = data && data.detail;
      throw new Error(Array.isArray(d) ? d.map((e) => e.msg).join("; ") : String(d || res.statusText));
    }
    return data;
  },
};

// ------------------------------------------------------------------ lean traces
// The page asks /api/trace only for what it draws: no parameters it already has (the model's come
// once from GET /api/models/{name}, cached), nothing twice ("dedupe"), exact float64 as base64.
// `completeTrace` rebuilds today's self-contained trace object from that, so the views see
// layers[i].forward.{a_prev, z, a}, layers[i].backward.{…} and layers[i].params as before.

/** The selection the page sends with every trace and learning step. */
export const LEAN = Object.freeze({ include: ["forward", "backward", "argmax"], dedupe: true, encoding: "base64" });

function bytesOf(b64) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(b64);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A flat typed array as nested plain arrays of `shape` (numbers, as JSON would give). */
export function nest(values, shape) {
  if (shape.length === 0) return values[0];
  if (shape.length === 1) return Array.from(values);
  // by offsets into `values` (a typed-array view per row and a shape copy per call were most of
  // what nesting a learning step's tensors cost); stride[d]: values per index of dimension d
  const last = shape.length - 1;
  const stride = new Array(shape.length).fill(1);
  for (let d = last - 1; d >= 0; d--) stride[d] = stride[d + 1] * shape[d + 1];
  const build = (d, off) => {
    const n = shape[d];
    const out = []; // packed, as Array.from's
    if (d === last) for (let i = 0; i < n; i++) out.push(values[off + i]);
    else for (let i = 0; i < n; i++) out.push(build(d + 1, off + i * stride[d]));
    return out;
  };
  return build(0, 0);
}

function isEncoded(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && typeof v.data === "string" && Array.isArray(v.shape) && typeof v.dtype === "string" && !("changed" in v);
}

// Decoded values of an encoded array, kept beside it (never on it: the encoded object may be sent
// back as it is, e.g. the learned parameters).
const decoded = new WeakMap();

/** {dtype, shape, data} -> its values as one flat Float64Array (int64 argmax as numbers). */
export function valuesOf(enc) {
  let values = decoded.get(enc);
  if (values) return values;
  const bytes = bytesOf(enc.data);
  // fromBase64 gives a fresh, aligned buffer; atob's copy is too
  const buf = bytes.byteOffset % 8 === 0 ? bytes.buffer : bytes.slice().buffer;
  if (enc.dtype === "int64") values = Float64Array.from(new BigInt64Array(buf, 0, bytes.length / 8), (b) => Number(b));
  else values = new Float64Array(buf, 0, bytes.length / 8);
  decoded.set(enc, values);
  return values;
}

/** {dtype, shape, data} -> nested arrays (float64 exactly; int64 argmax as numbers). */
export function decodeArray(enc) {
  return nest(valuesOf(enc), enc.shape);
}

/** Every encoded array inside `x` decoded (a new object; `x` is left as it is). */
export function decodeAll(x) {
  if (isEncoded(x)) return decodeArray(x);
  if (Array.isArray(x)) return x.map(decodeAll);
  if (x !== null && typeof x === "object") {
    const out = {};
    for (const [k, v] of Object.entries(x)) out[k] = decodeAll(v);
    return out;
  }
  return x;
}

const ENCODED = Symbol("encoded");

/** obj[key] as the value make() gives, made on the first read (a plain property from then on). */
export function lazyProperty(obj, key, make, made = () => {}) {
  const settle = (value) => Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  Object.defineProperty(obj, key, {
    enumerable: true,
    configurable: true,
    get() {
      const value = make();
      settle(value);
      made(value);
      return value;
    },
    set: settle,
  });
}

/** Whether obj has `key` with a value (true for a lazy one not read yet), without making it. */
export function present(obj, key) {
  const d = obj ? Object.getOwnPropertyDescriptor(obj, key) : undefined;
  return Boolean(d && (d.get || (d.value !== null && d.value !== undefined)));
}

/**
 * `decodeAll`, but every encoded array under an object key becomes nested arrays only when it is
 * first read (a view that never reads a tensor never pays for it); `flatValues(obj, key)` reads
 * its values without nesting them. Reading, JSON.stringify and spreading see the same values as
 * with decodeAll.
 */
export function decodeLazy(x) {
  if (isEncoded(x)) return decodeArray(x);
  if (Array.isArray(x)) return x.map(decodeLazy);
  if (x === null || typeof x !== "object") return x;
  const out = {};
  for (const [k, v] of Object.entries(x)) {
    if (isEncoded(v) && v.shape.length) {
      if (!out[ENCODED]) Object.defineProperty(out, ENCODED, { value: {}, enumerable: false });
      const rec = (out[ENCODED][k] = { enc: v, made: undefined });
      lazyProperty(out, k, () => decodeArray(v), (value) => (rec.made = value));
    } else out[k] = decodeLazy(v);
  }
  return out;
}

/** The shape of obj[key] (from its encoded form while it has one: nothing is nested). */
export function shapeAt(obj, key) {
  const rec = obj[ENCODED] && obj[ENCODED][key];
  const d = Object.getOwnPropertyDescriptor(obj, key);
  if (rec && d && (d.get || d.value === rec.made)) return rec.enc.shape;
  const shape = [];
  for (let x = obj[key]; Array.isArray(x); x = x[0]) shape.push(x.length);
  return shape;
}

/** The values of obj[key] as one flat Float64Array (from its encoded bytes while it holds them). */
export function flatValues(obj, key) {
  const rec = obj[ENCODED] && obj[ENCODED][key];
  const d = Object.getOwnPropertyDescriptor(obj, key);
  if (rec && d && (d.get || d.value === rec.made)) return valuesOf(rec.enc);
  const v = obj[key];
  return Float64Array.from(Array.isArray(v) ? v.flat(Infinity) : [v]);
}

function reshapeLike(value, shape) {
  // the request's [H][W] input for a one-channel network is layer 0's [1][H][W] a_prev
  let v = value;
  let depth = 0;
  for (let x = v; Array.isArray(x); x = x[0]) depth++;
  while (depth < shape.length) {
    v = [v];
    depth++;
  }
  return v;
}

/**
 * Today's complete trace object from a lean answer: omitted tensors filled in from where the
 * answer says they are ("layers[i-1].forward.a", "input"), parameters from `params` (the ones
 * the request used) when the answer has none. `input` is the request's input (or, for a
 * request with `image`, the answer's `input`).
 */
export function completeTrace(lean, input, params) {
  const tr = decodeLazy(lean);
  tr.layers.forEach((l, i) => {
    l.forward = l.forward || {};
    l.backward = l.backward || {};
    refer(tr, l, l.omitted, input);
    if (!l.params) l.params = (params && params[i]) || {};
  });
  return tr;
}

const FORWARD = ["a_prev", "z", "a"];

/** The keys `omitted` names, in layer `l`, read where they are when first asked for. */
function refer(tr, l, omitted, input) {
  for (const [key, ref] of Object.entries(omitted || {})) {
    const part = FORWARD.includes(key) ? "forward" : "backward";
    if (key in l[part]) continue;
    // that tensor is then nested once, shared
    lazyProperty(l[part], key, () => {
      if (ref === "input") return reshapeLike(input ?? tr.input, l.input_shape);
      const m = /^layers\[(\d+)\]\.(forward|backward)\.(\w+)$/.exec(ref);
      return m ? tr.layers[Number(m[1])][m[2]][m[3]] : undefined;
    });
  }
}

/**
 * Layer i of the trace object `tr` (from completeTrace) gets the tensors of `entry` (layer i of
 * another answer for the same request, e.g. asked for with "layers": [i]) that it lacks: decoded
 * when first read, and the keys `entry` names in "omitted" read where they are.
 */
export function fillLayer(tr, i, entry, input) {
  const l = tr.layers[i];
  const got = decodeLazy(entry);
  for (const part of ["forward", "backward"]) {
    const src = got[part] || {};
    for (const k of Object.keys(src)) if (!(k in l[part])) lazyProperty(l[part], k, () => src[k]);
  }
  if ("argmax" in got && !("argmax" in l)) lazyProperty(l, "argmax", () => got.argmax);
  refer(tr, l, entry.omitted, input);
}

/**
 * Exact float64 base64 of nested arrays (what /api/trace and /api/learn accept for params):
 * {dtype: "float64", shape, data}.
 */
export function encodeArray(nested) {
  const shape = [];
  for (let x = nested; Array.isArray(x); x = x[0]) shape.push(x.length);
  const values = Float64Array.from(Array.isArray(nested) ? nested.flat(Infinity) : [nested]);
  const bytes = new Uint8Array(values.buffer);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return { dtype: "float64", shape, data: btoa(bin) };
}

/**
 * Learned parameters answered as changes to a bundled model's own (`updated_params_as:
 * "changes"`: per array {dtype, shape, changed: base64 bitmask, data: base64 of the changed
 * values}) as decodeLazy would give them in full: `own` (the model's, from paramsOf) with the
 * changed values put in. Copies only: the float64 values are exactly the server's. The wire
 * form itself is what the next request sends back.
 */
export function paramsFromChanges(wire, own) {
  return wire.map((p, i) => {
    const out = {};
    for (const [k, ch] of Object.entries(p || {})) {
      const values = flatValues(own[i], k).slice();
      const bits = bytesOf(ch.changed);
      const b = bytesOf(ch.data);
      const vals = new Float64Array(b.byteOffset % 8 === 0 ? b.buffer : b.slice().buffer, 0, b.length / 8);
      let j = 0;
      for (let byte = 0; byte < bits.length; byte++) {
        for (let m = bits[byte], at = byte * 8; m; m >>= 1, at++) if (m & 1) values[at] = vals[j++];
      }
      if (j !== vals.length) throw new Error(`updated_params[${i}].${k}: ${vals.length} values for ${j} changes`);
      const enc = { dtype: "float64", shape: ch.shape, data: "" }; // never sent: decoded already
      decoded.set(enc, values);
      out[k] = enc;
    }
    return decodeLazy(out);
  });
}

const modelParams = new Map();

/** A bundled model's parameters, nested (downloaded once per page; the HTTP cache keeps them). */
export function paramsOf(name) {
  if (!modelParams.has(name)) {
    const p = api.modelB64(name).then((m) => decodeLazy(m.params));
    p.catch(() => modelParams.delete(name));
    modelParams.set(name, p);
  }
  return modelParams.get(name);
}
