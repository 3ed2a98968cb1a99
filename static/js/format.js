// Number formatting: compact for cells, 4 significant digits for formulas, full for titles.

const MINUS = "\u2212";

function sign(s) {
  return s.startsWith("-") ? MINUS + s.slice(1) : s;
}

/** Up to `digits` significant digits, trailing zeros dropped, exponent form for tiny/huge values. */
export function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : v < 0 ? MINUS + "∞" : "NaN";
  if (v === 0) return "0";
  const a = Math.abs(v);
  let s;
  if (a >= 1e4 || a < 1e-3) {
    s = v.toExponential(Math.max(0, digits - 1)).replace(/\.?0+e/, "e").replace("e+", "e");
  } else {
    s = v.toPrecision(digits);
    if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
  }
  return sign(s);
}

/** The formula precision (4 significant digits). */
export const fmt4 = (v) => fmt(v, 4);

/** The full float64 value, as JSON would write it (for title and data-value). */
export function full(v) {
  if (v === null || v === undefined) return "";
  return String(v);
}

/** A shape as "C×H×W". */
export function shapeText(shape) {
  return (shape || []).join("×");
}

/** Integer with thin-space thousands separators. */
export function count(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u2009");
}

export function percent(p) {
  return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%";
}
