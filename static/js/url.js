// Shareable state in the URL query (TensorFlow Playground style): read once on load, rewritten with
// history.replaceState whenever the state changes. The format is documented in docs/ui.md:
//   ?m=digits | ?s=<scenario id>   the network
//   &step=<n>                      the step, 1-based as the counter shows it
//   &t=<class>                     the loss target of a classifier (absent: the predicted class)
//   &lang=en|zh                    the language
//   &lr=<learning rate>
//   &x=<base64url>                 the digit model's input, 4 bits per pixel, row-major, 2 pixels a byte
//   &e=<i>:<v>,<i>:<v>…            a scenario's edited values: flat index → value (see flatValues)

import { flat } from "./math/tensor.js";

const LEVELS = 15; // 4 bits per pixel

function toBase64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** An H×W map of values in [0, 1] as base64url, 4 bits per pixel. */
export function encodeImage(map) {
  const v = flat(map).map((x) => Math.max(0, Math.min(LEVELS, Math.round(x * LEVELS))));
  const bytes = new Uint8Array(Math.ceil(v.length / 2));
  v.forEach((q, k) => {
    bytes[k >> 1] |= k % 2 ? q : q << 4;
  });
  return toBase64url(bytes);
}

/** The inverse of encodeImage for an h×w map (values k/15); null when the text does not fit. */
export function decodeImage(text, h, w) {
  let bytes;
  try {
    bytes = fromBase64url(text);
  } catch {
    return null;
  }
  if (bytes.length !== Math.ceil((h * w) / 2)) return null;
  return Array.from({ length: h }, (_, i) => Array.from({ length: w }, (_, j) => {
    const k = i * w + j;
    const q = k % 2 ? bytes[k >> 1] & 15 : bytes[k >> 1] >> 4;
    return q / LEVELS;
  }));
}

/** A scenario's values as one flat list: input, then each layer's w and b, then the target. */
export function flatValues({ input, params, target }) {
  const out = [...flat(input)];
  for (const p of params) if (p && p.w) out.push(...flat(p.w), ...flat(p.b));
  out.push(...flat(target));
  return out;
}

/** Rebuild nested values like `like` from a flat list (the inverse of flatValues). */
export function unflatValues(like, list) {
  let k = 0;
  const fill = (a) => (Array.isArray(a) ? a.map(fill) : list[k++]);
  return {
    input: fill(like.input),
    params: like.params.map((p) => (p && p.w ? { w: fill(p.w), b: fill(p.b) } : p)),
    target: fill(like.target),
  };
}

/** "i:v,…" for the values that differ from the scenario's own. */
export function encodeEdits(base, values) {
  const a = flatValues(base);
  const b = flatValues(values);
  return b.map((v, i) => (v !== a[i] ? `${i}:${v}` : "")).filter(Boolean).join(",");
}

/** The scenario's values with the edits of an "i:v,…" text applied (bad entries are skipped). */
export function applyEdits(base, text) {
  const list = flatValues(base);
  for (const part of (text || "").split(",")) {
    const [i, v] = part.split(":").map(Number);
    if (Number.isInteger(i) && i >= 0 && i < list.length && Number.isFinite(v)) list[i] = v;
  }
  return unflatValues(base, list);
}

/** The query parameters of the page, as an object of strings. */
export function readUrl() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

/** Replace the page's URL (no new history entry) with these parameters (empty ones dropped). */
export function writeUrl(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const url = `${location.pathname}?${q.toString().replace(/%3A/g, ":").replace(/%2C/g, ",")}`;
  if (url !== location.pathname + location.search) history.replaceState(null, "", url);
}
