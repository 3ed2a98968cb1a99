// "The network is already sure": on the loss step and the first backward step of a confident
// classifier, say why every gradient is tiny and offer the runner-up class as the target.

import { fmt, percent } from "../format.js";
import { t } from "../i18n.js";
import { flat, maxAbs } from "../math/tensor.js";

const $ = (id) => document.getElementById(id);
export const CONFIDENT = 0.99; // the target's probability from which the notice shows

/** Show or hide the notice for step `index` of `steps`; onPick(k) makes class k the target. */
export function updateConfident(trace, steps, index, onPick) {
  const box = $("confident");
  const step = steps[index];
  const out = trace && trace.output;
  const y = trace ? flat(trace.target ?? []) : [];
  const k = y.indexOf(1);
  const firstBack = steps.findIndex((s) => s.phase === "backward");
  const where = step && (step.phase === "loss" || index === firstBack);
  const classifier = trace && trace.network.loss === "cross_entropy" && Array.isArray(out) && k >= 0;
  if (!where || !classifier || !(out[k] >= CONFIDENT)) {
    box.hidden = true;
    return;
  }
  let runner = -1;
  out.forEach((p, c) => { if (c !== k && (runner < 0 || p > out[runner])) runner = c; });
  const last = trace.layers[trace.layers.length - 1].backward;
  const g = maxAbs(last.dC_dz || last.dC_da || []);
  $("confident-text").textContent = t("confident.notice", { p: percent(out[k]), k, g: fmt(g, 2) });
  const b = $("confident-pick");
  b.textContent = t("confident.button", { k: runner });
  b.setAttribute("aria-label", t("confident.buttonAria", { k: runner }));
  b.onclick = () => onPick(runner);
  box.hidden = false;
}
