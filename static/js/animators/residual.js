// The residual block's own steps: the add z = F(x) + skip (forward), the split of ∂C/∂z to both
// paths (backward), and the sum of the two gradients at the block's input. Every number is the
// trace's: split.f, split.skip, forward.z; backward.dC_dz; split.dC_da_prev_path,
// split.dC_da_prev_skip and backward.dC_da_prev (which the engine computes as that sum).

import { CONFIG } from "../config.js";
import { fitDigits } from "../format.js";
import { maxAbs, rc } from "../math/tensor.js";
import { grad, math, mn, mo, mrow, mtext, sym } from "../math/mathml.js";
import { asMaps, between, cellName, channelPicker, clear, gridAt, label, layoutColumn, layoutRow, t } from "./common.js";

/**
 * Maps of the same shape side by side, one channel at a time, the focus sweeping every cell.
 * panels: [{title, tensor}]; signs: the operator between neighbours; formula(name, values, ch, i, j)
 * returns the MathML rows for the cell. The last panel fills in as the sweep goes.
 */
export function cellwise(ui, { panels, signs, formula, explain, notes, channelKey = "f" }) {
  const first = asMaps(panels[0].tensor);
  const ch = channelPicker(ui, channelKey, "detail.channel", first.maps.length);
  const maps = panels.map((p) => asMaps(p.tensor).maps[Math.min(ch, asMaps(p.tensor).maps.length - 1)]);
  const rows = maps[0].length;
  const cols = maps[0][0].length;
  const scale = Math.max(...maps.map((m) => maxAbs(m)));
  const places = rows === 1 ? layoutColumn(ui, panels.length, cols) : layoutRow(ui, panels.map(() => ({ rows, cols })), { gap: 48 });
  const grids = maps.map((m, k) => gridAt(places[k], { values: m, maxAbs: scale }).render());
  const empty = gridAt(places[places.length - 1], { rows, cols, empty: true }).render();
  ui.explain(explain);
  ui.notes(notes);
  let cur = [0, 0];

  function select(p) {
    const [i, j] = rc(p, cols);
    cur = [i, j];
    const name = cellName(first.vector, ch, i, j, cols);
    ui.formula(...formula(name, maps.map((m) => m[i][j]), ch, i, j));
    Object.assign(ui.root.dataset, { f: String(ch), i: String(i), j: String(j) });
  }

  function draw(p, revealed) {
    const [i, j] = cur;
    const g = ui.g;
    clear(ui);
    grids.forEach((grid, k) => {
      if (k === grids.length - 1) grid.drawPartial(g, revealed, empty);
      else grid.draw(g);
      grid.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
      label(g, grid, panels[k].title, first.vector ? `${first.n}` : t("detail.channelOf", { c: ch, h: rows, w: cols }));
      if (k) between(g, grids[k - 1], grid, signs[k - 1]);
    });
  }

  function hit(x, y) {
    for (const grid of grids) {
      const h = grid.hit(x, y);
      if (h && (!first.vector || h[0] * cols + h[1] < first.n)) return h[0] * cols + h[1];
    }
    return null;
  }

  return { positions: first.vector ? first.n : rows * cols, select, draw, hit, grids: () => grids };
}

/** a op b = c with the numbers printed to as many digits as make the printed equation hold. */
export function sumRow(lhs, names, values, role) {
  const [a, b, c] = values;
  const { d, rd } = fitDigits([a, b], ([x, y]) => x + y, c);
  return math(lhs, mo("="), names[0], mo("+"), names[1], mo("="), mn(a, { digits: d }), mo("+"),
    mn(b, { paren: true, digits: d }), mo("="), mn(c, { role, digits: rd }));
}

export function residualAdd(ui, { layer }) {
  const sp = layer.split;
  return cellwise(ui, {
    panels: [
      { title: t("res.f"), tensor: sp.f },
      { title: t("res.skip"), tensor: sp.skip },
      { title: t("res.z"), tensor: layer.forward.z },
    ],
    signs: ["+", "="],
    explain: t("res.addExplain"),
    notes: t("res.addNotes"),
    formula: (name, v) => [sumRow(sym("z", name), [mrow(sym("F", name)), sym("skip", name)], v, "z-value")],
  });
}

export function residualSplit(ui, { layer }) {
  const dz = layer.backward.dC_dz;
  return cellwise(ui, {
    panels: [
      { title: t("res.dz"), tensor: dz },
      { title: t("res.toF"), tensor: dz },
      { title: t("res.toSkip"), tensor: dz },
    ],
    signs: ["→", "&"],
    explain: t("res.splitExplain"),
    notes: t("res.splitNotes"),
    formula: (name, v) => [
      math(grad(sym("F", name)), mo("="), grad(sym("skip", name)), mo("="), grad(sym("z", name)), mo("="),
        mn(v[0], { role: "split-value" })),
      math(mtext(t("res.splitWhy"))),
    ],
  });
}

export function residualSum(ui, { layer }) {
  const sp = layer.split;
  return cellwise(ui, {
    panels: [
      { title: t("res.path"), tensor: sp.dC_da_prev_path },
      { title: t("res.skipGrad"), tensor: sp.dC_da_prev_skip },
      { title: t("res.total"), tensor: layer.backward.dC_da_prev },
    ],
    signs: ["+", "="],
    explain: t("res.sumExplain"),
    notes: t(layer.projection ? "res.sumNotesProj" : "res.sumNotes"),
    formula: (name, v) => [
      sumRow(grad(sym("a", `prev ${name}`)), [
        grad(sym("a", `prev ${name} ${t("res.viaF")}`)),
        grad(sym("a", `prev ${name} ${t("res.viaSkip")}`)),
      ], v, "sum-value"),
    ],
  });
}
