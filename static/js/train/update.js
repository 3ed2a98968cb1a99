// The optimizer's update of one weight, worked in numbers. Every number is the server's (the
// `update` of a `trace` answer); the printed operands get as many digits as the equation needs to
// hold as printed (format.js's fitDigits rule).

import { fitDigits, fmt, full, roundSig } from "../format.js";
import { t } from "../i18n.js";

const MINUS = "\u2212";

function num(v, d) {
  const s = fmt(v, d);
  return `<span class="num" title="${full(v)}">${s}</span>`;
}

/** One equation line: `name = symbolic = numeric = result`, operands fitted to the result. */
function line(name, symbolic, values, evalFn, numericTemplate, result) {
  const { d, rd } = fitDigits(values, evalFn, result);
  const parts = values.map((v) => num(roundSig(v, d), d));
  const numeric = numericTemplate(parts);
  return `<div class="eq"><span class="eq-name">${name}</span> = ${symbolic} = ${numeric} = <strong>${num(result, rd)}</strong></div>`;
}

const paren = (s, v) => (v < 0 ? `(${s})` : s);

export function weightLabel(u, layerType) {
  return `${t("train.update.layer", { i: u.layer, type: layerType || "" })} ${u.name}[${u.index.join(", ")}]`;
}

/** HTML of the worked update (all values from the server). */
export function updateHtml(u, { layerType, exampleGrad } = {}) {
  const rows = [];
  const opt = t(`train.opt.${u.optimizer}`);
  rows.push(`<p class="hint">${t("train.update.intro", { opt, w: weightLabel(u, layerType), n: u.batch_size })}</p>`);
  if (exampleGrad !== undefined && exampleGrad !== null) {
    rows.push(`<p class="hint">${t("train.update.example", { g: num(exampleGrad, 6), n: u.batch_size })}</p>`);
  }
  let g = u.g;
  let gName = "g";
  if (u.weight_decay) {
    rows.push(
      line("g′", "g + λ·w", [u.g, u.weight_decay, u.w], ([a, l, w]) => a + l * w,
        ([a, l, w]) => `${a} + ${l}·${paren(w, u.w)}`, u.g_decayed),
    );
    g = u.g_decayed;
    gName = "g′";
  }
  if (u.optimizer === "sgd") {
    rows.push(
      line("w′", `w ${MINUS} lr·${gName}`, [u.w, u.lr, g], ([w, lr, gg]) => w - lr * gg,
        ([w, lr, gg]) => `${w} ${MINUS} ${lr}·${paren(gg, g)}`, u.w_new),
    );
  } else if (u.optimizer === "momentum") {
    rows.push(
      line("v′", `μ·v + ${gName}`, [u.momentum, u.v, g], ([m, v, gg]) => m * v + gg,
        ([m, v, gg]) => `${m}·${paren(v, u.v)} + ${paren(gg, g)}`, u.v_new),
    );
    rows.push(
      line("w′", `w ${MINUS} lr·v′`, [u.w, u.lr, u.v_new], ([w, lr, v]) => w - lr * v,
        ([w, lr, v]) => `${w} ${MINUS} ${lr}·${paren(v, u.v_new)}`, u.w_new),
    );
  } else {
    rows.push(
      line("m′", `β₁·m + (1 ${MINUS} β₁)·${gName}`, [u.beta1, u.m, g], ([b, m, gg]) => b * m + (1 - b) * gg,
        ([b, m, gg]) => `${b}·${paren(m, u.m)} + (1 ${MINUS} ${b})·${paren(gg, g)}`, u.m_new),
    );
    rows.push(
      line("v′", `β₂·v + (1 ${MINUS} β₂)·${gName}²`, [u.beta2, u.v, g], ([b, v, gg]) => b * v + (1 - b) * gg * gg,
        ([b, v, gg]) => `${b}·${v} + (1 ${MINUS} ${b})·${paren(gg, g)}²`, u.v_new),
    );
    rows.push(
      line("m̂", `m′ / (1 ${MINUS} β₁^${u.t})`, [u.m_new, u.bias_correction1], ([m, c]) => m / c,
        ([m, c]) => `${paren(m, u.m_new)} / ${c}`, u.m_hat),
    );
    rows.push(
      line("v̂", `v′ / (1 ${MINUS} β₂^${u.t})`, [u.v_new, u.bias_correction2], ([v, c]) => v / c,
        ([v, c]) => `${v} / ${c}`, u.v_hat),
    );
    rows.push(
      line("Δw", "lr·m̂ / (√v̂ + ε)", [u.lr, u.m_hat, u.v_hat, u.eps], ([lr, m, v, e]) => (lr * m) / (Math.sqrt(v) + e),
        ([lr, m, v, e]) => `${lr}·${paren(m, u.m_hat)} / (√${v} + ${e})`, u.update),
    );
    rows.push(
      line("w′", `w ${MINUS} Δw`, [u.w, u.update], ([w, d]) => w - d,
        ([w, d]) => `${w} ${MINUS} ${paren(d, u.update)}`, u.w_new),
    );
  }
  rows.push(`<p class="hint">${t("train.update.float32")}</p>`);
  return rows.join("");
}

/** This example's own dC/dw of the weight, read from the trace (the batch's g is their mean). */
export function exampleGradient(trace, u) {
  const l = trace && trace.layers && trace.layers[u.layer];
  const arr = l && l.backward && (u.name === "w" ? l.backward.dC_dw : l.backward.dC_db);
  if (!arr) return null;
  let v = arr;
  for (const i of u.index) v = v ? v[i] : undefined;
  return typeof v === "number" ? v : null;
}
