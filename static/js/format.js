// Number formatting: compact for cells, enough significant digits for formulas, full for titles.
//
// The printing rule of every formula (docs/ui.md): the result is printed with 4 significant
// digits; its operands with the fewest significant digits (at least 4) for which the shown
// operands, recomputed, give the shown result to the shown precision. fitDigits finds them.

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
    if (s.includes("e")) s = Number(s).toString();
    if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
  }
  return sign(s);
}

/** The formula precision of a result (4 significant digits). */
export const RESULT_DIGITS = 4;
export const fmt4 = (v) => fmt(v, RESULT_DIGITS);

/** v rounded to d significant digits: exactly the value fmt(v, d) prints. */
export function roundSig(v, d) {
  if (!Number.isFinite(v) || v === 0) return v;
  return Number(v.toPrecision(Math.max(1, Math.min(17, d))));
}

/**
 * The digits for a formula: the fewest significant digits d (≥ 4) for the operands `values`
 * such that evalFn(operands rounded to d) rounds to `result` at `rd` digits (rd = 4, or more
 * when the result sits on a rounding boundary). Returns {d, rd}.
 */
export function fitDigits(values, evalFn, result, min = RESULT_DIGITS) {
  for (let rd = RESULT_DIGITS; rd <= 17; rd++) {
    const want = roundSig(result, rd);
    for (let d = Math.max(min, rd); d <= 17; d++) {
      const got = evalFn(values.map((v) => roundSig(v, d)));
      if (roundSig(got, rd) === want) return { d, rd };
    }
  }
  return { d: 17, rd: 17 };
}

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

/**
 * A probability as a percentage that never rounds to a different claim: 0.9999906 is
 * "99.999%" (not "100%"), 3e-14 is "3e-12%" (not "0%"); exactly 0 and 1 are "0%" and "100%".
 */
export function percent(p) {
  if (p === null || p === undefined || !Number.isFinite(p)) return "–";
  if (p === 0 || p === 1) return `${100 * p}%`;
  const x = 100 * p;
  if (p >= 0.001 && p < 0.995) return x.toFixed(1) + "%";
  if (p < 0.001) return fmt(x, 2) + "%";
  for (let d = 3; d <= 17; d++) {
    const s = x.toPrecision(d);
    if (Number(s) < 100) return s.replace(/0+$/, "") + "%";
  }
  return x + "%";
}
