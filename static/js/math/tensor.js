// Small helpers over the nested arrays of the trace. Pure functions, no DOM.

/** The shape of a nested array (assumes it is rectangular, as the API guarantees). */
export function shapeOf(a) {
  const s = [];
  let x = a;
  while (Array.isArray(x)) {
    s.push(x.length);
    x = x[0];
  }
  return s;
}

/** A tensor as a list of 2-D maps: C×H×W → C maps; a vector → one 1×N map; H×W → one map. */
export function toMaps(a) {
  const d = shapeOf(a).length;
  if (d === 3) return a;
  if (d === 2) return [a];
  if (d === 1) return [[a]];
  return [[[a]]];
}

export function flat(a) {
  return Array.isArray(a) ? a.flat(Infinity) : [a];
}

/** max |v| over the finite numbers of a (nested) array; 0 when none. Walks it without flattening. */
export function maxAbs(a) {
  if (!Array.isArray(a)) return Number.isFinite(a) ? Math.abs(a) : 0;
  let m = 0;
  for (let k = 0; k < a.length; k++) {
    const v = a[k];
    const x = Array.isArray(v) ? maxAbs(v) : Number.isFinite(v) ? Math.abs(v) : 0;
    if (x > m) m = x;
  }
  return m;
}

/** {lo, hi}: the smallest and largest finite number of a (nested) array (±Infinity when none). */
export function finiteRange(a, out = { lo: Infinity, hi: -Infinity }) {
  if (!Array.isArray(a)) {
    if (Number.isFinite(a)) {
      if (a < out.lo) out.lo = a;
      if (a > out.hi) out.hi = a;
    }
    return out;
  }
  for (let k = 0; k < a.length; k++) finiteRange(a[k], out);
  return out;
}

export function sum(values) {
  let s = 0;
  for (const v of values) s += v;
  return s;
}

export function zeros(h, w) {
  return Array.from({ length: h }, () => new Array(w).fill(0));
}

/** Zero-pad (or pad with `value`) a 2-D map by [top/bottom, left/right], plus extra bottom/right. */
export function pad2d(m, ph, pw, value = 0, extraH = 0, extraW = 0) {
  const h = m.length;
  const w = m[0].length;
  const out = Array.from({ length: h + 2 * ph + extraH }, () =>
    new Array(w + 2 * pw + extraW).fill(value));
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) out[i + ph][j + pw] = m[i][j];
  return out;
}

/** Insert stride−1 zeros between the cells of a 2-D map. */
export function dilate2d(m, sh, sw) {
  const h = m.length;
  const w = m[0].length;
  const out = zeros((h - 1) * sh + 1, (w - 1) * sw + 1);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) out[i * sh][j * sw] = m[i][j];
  return out;
}

export function rot180(m) {
  return m.slice().reverse().map((row) => row.slice().reverse());
}

/** The kh×kw window of map m at top-left (r, c). */
export function window2d(m, r, c, kh, kw) {
  const out = [];
  for (let u = 0; u < kh; u++) out.push(m[r + u].slice(c, c + kw));
  return out;
}

/** Row-major position k → [row, col] on a grid with `cols` columns. */
export function rc(k, cols) {
  return [Math.floor(k / cols), k % cols];
}

/** H_out = floor((H + 2p − k) / s) + 1 */
export function outSize(h, k, s, p) {
  return Math.floor((h + 2 * p - k) / s) + 1;
}
