// The concat (Inception) block's own steps: the join (each branch's output becomes channels
// [start, stop) of the block's output), the slicing of ∂C/∂z back to each branch, and the sum of
// the branches' gradients at the shared input. Every number is the trace's: forward.a,
// branches[b][-1].forward.a; split.dC_da (the slices); split.dC_da_prev and backward.dC_da_prev.

import { fitDigits } from "../format.js";
import { grad, math, mn, mo, mtext, sym } from "../math/mathml.js";
import { t } from "./common.js";
import { cellwise } from "./residual.js";

/** Which branch output channel c of the block comes from: [branch, channel within it]. */
function source(channels, c) {
  const b = channels.findIndex(([s, e]) => c >= s && c < e);
  return [b, c - channels[b][0]];
}

/** One 3-D tensor per output channel c: the branch's map that becomes it. */
function perChannel(channels, tensors) {
  const out = [];
  channels.forEach(([s, e], b) => {
    for (let c = s; c < e; c++) out.push(tensors[b][c - s]);
  });
  return out;
}

export function concatJoin(ui, { layer }) {
  const ends = layer.branches.map((chain) => chain[chain.length - 1].forward.a);
  const from = perChannel(layer.channels, ends);
  return cellwise(ui, {
    panels: [
      { title: t("cat.branchOut"), tensor: from },
      { title: t("cat.out"), tensor: layer.forward.a },
    ],
    signs: ["→"],
    explain: t("cat.joinExplain", { n: layer.branches.length, ch: layer.channels.map(([s, e]) => e - s).join(" + ") }),
    notes: t("cat.joinNotes"),
    formula: (name, v, c, i, j) => {
      const [b, k] = source(layer.channels, c);
      return [math(sym("a", name), mo("="), sym("a", `B${b + 1}: ${k},${i},${j}`), mo("="), mn(v[1], { role: "join-value" })),
        math(mtext(t("cat.channelOf", { c, b: b + 1, k, s: layer.channels[b][0] })))];
    },
  });
}

export function concatSplit(ui, { layer }) {
  const slices = perChannel(layer.channels, layer.split.dC_da);
  return cellwise(ui, {
    panels: [
      { title: t("cat.dz"), tensor: layer.backward.dC_dz },
      { title: t("cat.slice"), tensor: slices },
    ],
    signs: ["→"],
    explain: t("cat.splitExplain"),
    notes: t("cat.splitNotes"),
    formula: (name, v, c, i, j) => {
      const [b, k] = source(layer.channels, c);
      return [math(grad(sym("a", `B${b + 1}: ${k},${i},${j}`)), mo("="), grad(sym("z", name)), mo("="), mn(v[1], { role: "slice-value" })),
        math(mtext(t("cat.channelOf", { c, b: b + 1, k, s: layer.channels[b][0] })))];
    },
  });
}

export function concatSum(ui, { layer }) {
  const parts = layer.split.dC_da_prev;
  return cellwise(ui, {
    panels: [
      ...parts.map((p, b) => ({ title: t("cat.branchGrad", { b: b + 1 }), tensor: p })),
      { title: t("cat.total"), tensor: layer.backward.dC_da_prev },
    ],
    signs: [...parts.slice(1).map(() => "+"), "="],
    explain: t("cat.sumExplain", { n: parts.length }),
    notes: t("cat.sumNotes"),
    formula: (name, v) => {
      const total = v[v.length - 1];
      const terms = v.slice(0, -1);
      const { d, rd } = fitDigits(terms, (xs) => xs.reduce((s, x) => s + x, 0), total);
      const lhs = grad(sym("a", `prev ${name}`));
      const names = terms.map((_, b) => grad(sym("a", `prev ${name} (B${b + 1})`)));
      const nums = terms.flatMap((x, b) => (b ? [mo("+"), mn(x, { paren: true, digits: d })] : [mn(x, { digits: d })]));
      return [math(lhs, mo("="), ...names.flatMap((n, b) => (b ? [mo("+"), n] : [n])), mo("="), ...nums, mo("="),
        mn(total, { role: "sum-value", digits: rd }))];
    },
  });
}
