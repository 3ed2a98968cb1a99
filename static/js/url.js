// Shareable state in the URL query (TensorFlow Playground style): read once on load, rewritten with
// history.replaceState whenever the state changes. The format is documented in docs/ui.md:
//   ?m=digits | ?s=<scenario id>   the network
//   &step=<n>                      the step, 1-based as the counter shows it
//   &t=<class>                     the loss target of a classifier (absent: the predicted class)
//   &lang=en|zh                    the language
//   &lr=<learning rate>
//   &x=f64.<base64url>             the digit model's exact input: its float64 values (little-endian,
//                                  row-major), deflate-compressed (CompressionStream "deflate-raw")
//                                  (old links: &x=<base64url>, 4 bits per pixel, still read)
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

const editOk = (i, v, n, maxAbs) => Number.isInteger(i) && i >= 0 && i < n && Number.isFinite(v) && Math.abs(v) <= maxAbs;

/**
 * The scenario's values with the edits of an "i:v,…" text applied. Bad entries (unknown index,
 * not a number, beyond the API's ±1e6) are skipped (share.js names them in its notice).
 */
export function applyEdits(base, text, maxAbs = 1e6) {
  const list = flatValues(base);
  for (const part of (text || "").split(",")) {
    const [i, v] = part.split(":").map(Number);
    if (editOk(i, v, list.length, maxAbs)) list[i] = v;
  }
  return unflatValues(base, list);
}

async function pipe(bytes, stream) {
  const out = new Response(new Blob([bytes]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

/**
 * The exact network input as text: "f64." + base64url(deflate-raw(float64 little-endian bytes)).
 * Lossless: the receiver traces the very same numbers, so every number on its screen is the same.
 */
export async function encodeExact(map) {
  const v = new Float64Array(flat(map));
  const le = new DataView(new ArrayBuffer(v.length * 8));
  v.forEach((x, k) => le.setFloat64(k * 8, x, true));
  return "f64." + toBase64url(await pipe(new Uint8Array(le.buffer), new CompressionStream("deflate-raw")));
}

/**
 * The inverse of encodeExact for an h×w map with values in [0, 1]; null when the text is not
 * such a map (wrong length, not finite, out of range, not deflate data).
 */
export async function decodeExact(text, h, w) {
  if (!text.startsWith("f64.")) return null;
  let bytes;
  try {
    const packed = fromBase64url(text.slice(4));
    if (packed.length > 64 * 1024) return null;
    bytes = await pipe(packed, new DecompressionStream("deflate-raw"));
  } catch {
    return null;
  }
  if (bytes.length !== h * w * 8) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = [];
  for (let i = 0; i < h; i++) {
    const row = [];
    for (let j = 0; j < w; j++) {
      const x = dv.getFloat64((i * w + j) * 8, true);
      if (!(x >= 0 && x <= 1)) return null;
      row.push(x);
    }
    out.push(row);
  }
  return out;
}

/** The query parameters of the page, as an object of strings. */
export function readUrl() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

/**
 * Replace the page's URL (no new history entry) with these parameters (empty ones dropped). The
 * fragment is kept (the playground's network travels in it as #net=…) unless `hash` says
 * otherwise ("" drops it).
 */
export function writeUrl(params, hash = location.hash) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const url = `${location.pathname}?${q.toString().replace(/%3A/g, ":").replace(/%2C/g, ",")}${hash}`;
  if (url !== location.pathname + location.search + location.hash) history.replaceState(null, "", url);
}
