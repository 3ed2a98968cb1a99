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
  const n = el("mn", fmt4(v), attrs);
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
