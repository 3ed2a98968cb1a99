// Tiny MathML builder. Numbers carry their full float64 value in data-value and title.

import { CONFIG } from "../config.js";
import { fitDigits, fmt, full, RESULT_DIGITS } from "../format.js";
import { t } from "../i18n.js";

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

/**
 * A number with `digits` significant digits (4 by default; formulas pass what fitDigits chose);
 * negative ones in parentheses when `paren`.
 */
export function mn(v, { role, paren = false, cls, digits = RESULT_DIGITS } = {}) {
  const attrs = { title: full(v), "data-value": full(v), "data-role": role, class: cls };
  const s = fmt(v, digits);
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
  return mrow(mn(a, { paren: true, ...attrs }), mo("·"), mn(b, { paren: true, digits: attrs.digits }));
}

/** One formula line: an inline <math> in its own left-aligned block. */
export function math(...children) {
  const line = document.createElement("div");
  line.className = "fline";
  line.append(el("math", [mrow(...children)]));
  return line;
}

/** Several formula lines that form ONE equation (a long sum): one block, read as a whole. */
export function block(...lines) {
  const div = document.createElement("div");
  div.className = "eq";
  div.append(...lines);
  return div;
}

/** A line of plain text under a formula (what was left out of a sum, and why). */
export function noteLine(text) {
  const p = document.createElement("div");
  p.className = "fline fnote";
  p.textContent = text;
  return p;
}

/** A long sum over several lines, every term shown: `lhs` then the terms, then `tail`. */
export function sumLines(lhs, terms, tail, perLine = 9) {
  const out = [];
  for (let k = 0; k < terms.length; k += perLine) {
    const chunk = joined(terms.slice(k, k + perLine), "+", Infinity);
    out.push(k === 0 ? math(...lhs, chunk) : math(mo("+"), chunk));
  }
  out.push(math(...tail));
  return block(...out);
}

const termValue = (x) => ("v" in x ? x.v : x.a * x.b);

/**
 * A sum that adds up as printed. `terms`: [{a, b}] (products) or [{v}]; `extra`: [{v, label}]
 * further addends (other channels, the bias); `result`: the number the sum gives (the trace's).
 *
 * Up to `all` terms: every term is printed, zeros included (small worked examples). More: the
 * non-zero terms in order of position, or, when there are more than `limit`, the `limit`
 * largest by size, then one addend "+ S (N more terms)"; a note says which terms are shown and
 * how many are 0 and why (`zeroReason`). Digits by fitDigits, so the printed sum holds.
 * Returns the formula nodes: one block (the equation) and, when something was left out, a note.
 */
export function sumEquation({ lhs, terms, extra = [], result, role, limit = CONFIG.formulaMaxTerms,
  all = CONFIG.formulaAllTerms, perLine = 8, zeroReason = "" }) {
  const vals = terms.map(termValue);
  let shown = terms.map((_, k) => k);
  let hidden = [];
  let bySize = false;
  let zeros = 0;
  if (terms.length > all) {
    const nz = shown.filter((k) => vals[k] !== 0);
    zeros = terms.length - nz.length;
    shown = nz;
    if (nz.length > limit) {
      bySize = true;
      const order = nz.slice().sort((p, q) => Math.abs(vals[q]) - Math.abs(vals[p]) || p - q);
      shown = order.slice(0, limit);
      hidden = order.slice(limit);
    }
  }
  let rest = 0;
  for (const k of hidden) rest += vals[k];
  const ops = [];
  for (const k of shown) {
    if ("v" in terms[k]) ops.push(terms[k].v);
    else ops.push(terms[k].a, terms[k].b);
  }
  if (hidden.length) ops.push(rest);
  for (const e of extra) ops.push(e.v);
  const evalFn = (p) => {
    let s = 0;
    let i = 0;
    for (const k of shown) s += "v" in terms[k] ? p[i++] : p[i++] * p[i++];
    if (hidden.length) s += p[i++];
    for (let e = 0; e < extra.length; e++) s += p[i++];
    return s;
  };
  const { d, rd } = fitDigits(ops, evalFn, result);
  const nodes = shown.map((k) => ("v" in terms[k] ? mn(terms[k].v, { paren: true, digits: d })
    : product(terms[k].a, terms[k].b, { digits: d })));
  if (!nodes.length) nodes.push(mn(0));
  const tail = [];
  if (hidden.length) tail.push(mo("+"), under(mn(rest, { paren: true, digits: d }), t(hidden.length === 1 ? "sum.moreLabelOne" : "sum.moreLabel", { n: hidden.length })));
  for (const e of extra) tail.push(mo("+"), e.label ? under(mn(e.v, { paren: true, digits: d }), e.label) : mn(e.v, { paren: true, digits: d }));
  tail.push(mo("="), mn(result, { role, digits: rd }));
  const lines = [];
  for (let k = 0; k < nodes.length; k += perLine) {
    const chunk = joined(nodes.slice(k, k + perLine), "+", Infinity);
    lines.push([...(k === 0 ? lhs : [mo("+")]), chunk]);
  }
  // A short sum keeps its result on the same line; a long one gets a line of its own.
  if (lines.length === 1 && nodes.length + tail.length / 2 <= perLine + 2) lines[0].push(...tail);
  else lines.push(tail);
  const out = [block(...lines.map((l) => math(...l)))];
  const notes = [];
  if (bySize) notes.push(t("sum.bySize", { k: shown.length, n: shown.length + hidden.length, m: hidden.length, s: fmt(rest, d) }));
  else if (zeros) notes.push(t("sum.nonZero", { k: shown.length }));
  if (zeros) notes.push(t(zeros === 1 ? "sum.zeroOne" : "sum.zeros", { m: zeros, why: zeroReason }));
  if (notes.length) out.push(noteLine(notes.join(" ")));
  return out;
}
