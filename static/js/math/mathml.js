// Tiny MathML builder. Numbers carry their full float64 value in data-value and title.

import { CONFIG } from "../config.js";
import { fmt4, full } from "../format.js";

const NS = "http://www.w3.org/1998/Math/MathML";

function el(tag, children = [], attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const c of [].concat(children)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

export const mi = (s, attrs) => el("mi", s, attrs);
export const mo = (s, attrs) => el("mo", s, attrs);
export const mtext = (s, attrs) => el("mtext", s, attrs);
export const mrow = (...c) => el("mrow", c);
export const msub = (base, sub) => el("msub", [base, sub]);
export const msup = (base, sup) => el("msup", [base, sup]);
export const mfrac = (a, b) => el("mfrac", [a, b]);

/** A number in 4 significant digits; negative ones in parentheses when `paren`. */
export function mn(v, { role, paren = false, cls } = {}) {
  const attrs = { title: full(v), "data-value": full(v), "data-role": role, class: cls };
  const s = fmt4(v);
  const e = s.indexOf("e");
  // 1.234e-5 is written 1.234 × 10⁻⁵; the element carrying data-value wraps the whole number.
  const n = e < 0 ? el("mn", s, attrs)
    : el("mrow", [el("mn", s.slice(0, e)), el("mo", "×"), el("msup", [el("mn", "10"), el("mn", s.slice(e + 1).replace("-", "\u2212"))])], attrs);
  return paren && v < 0 ? mrow(mo("("), n, mo(")")) : n;
}

/** A named symbol with a subscript, e.g. sym("w", "1,2") → w₁,₂ */
export function sym(name, sub) {
  return sub === undefined ? mi(name) : msub(mi(name), mrow(mtext(String(sub))));
}

/** dC/dname as a fraction. */
export function grad(name) {
  return mfrac(mrow(mi("∂"), mi("C")), mrow(mi("∂"), typeof name === "string" ? mi(name) : name));
}

/**
 * a₁ op a₂ op … with long lists elided to their first and last terms around "⋯".
 * `terms` are MathML nodes; returns an mrow.
 */
export function joined(terms, op = "+", maxTerms = CONFIG.formulaMaxTerms) {
  let list = terms;
  if (terms.length > maxTerms) {
    const head = Math.ceil((maxTerms - 1) * 0.7);
    const tail = maxTerms - 1 - head;
    list = [...terms.slice(0, head), mo("⋯"), ...terms.slice(terms.length - tail)];
  }
  const parts = [];
  list.forEach((node, i) => {
    if (i) parts.push(mo(op));
    parts.push(node);
  });
  return el("mrow", parts);
}

/** A number with a small label under it (e.g. the bias under its value). */
export function under(node, text) {
  return el("munder", [node, el("mtext", text, { class: "under" })]);
}

/** A summation sign with its index underneath. */
export function sigma(index) {
  return el("munder", [mo("∑", { largeop: "true" }), el("mtext", index, { class: "under" })]);
}

/** a · b with the real numbers. */
export function product(a, b, attrs = {}) {
  return mrow(mn(a, { paren: true, ...attrs }), mo("·"), mn(b, { paren: true }));
}

/** One formula line: an inline <math> in its own left-aligned block. */
export function math(...children) {
  const line = document.createElement("div");
  line.className = "fline";
  line.append(el("math", [mrow(...children)]));
  return line;
}

/**
 * A long sum over several lines: `lhs` then the terms, perLine per line (long lists keep their
 * first and last terms around "⋯"), then `tail` (e.g. "= value") on a line of its own.
 */
export function sumLines(lhs, terms, tail, perLine = 9, maxLines = 3) {
  let list = terms;
  const max = perLine * maxLines;
  if (terms.length > max) list = [...terms.slice(0, max - 3), mo("⋯"), ...terms.slice(terms.length - 2)];
  const out = [];
  for (let k = 0; k < list.length; k += perLine) {
    const chunk = joined(list.slice(k, k + perLine), "+", Infinity);
    out.push(k === 0 ? math(...lhs, chunk) : math(mo("+"), chunk));
  }
  out.push(math(...tail));
  return out;
}
