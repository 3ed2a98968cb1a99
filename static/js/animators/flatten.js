// Flatten (forward) and its backward (a reshape back): cell [c, i, j] ↔ index k = c·H·W + i·W + j.
// The vector is drawn with one row per channel, so the correspondence stays visible.

import { CONFIG } from "../config.js";
import { maxAbs } from "../math/tensor.js";
import { grad, math, mn, mo, sym } from "../math/mathml.js";
import { between, clear, gridAt, label, layoutRow, t } from "./common.js";

export function flatten(ui, { step, layer }) {
  const back = step.kind === "flatten_back";
  const maps = back ? layer.backward.dC_da_prev : layer.forward.a_prev;
  const vec = back ? layer.backward.dC_da : layer.forward.a;
  const C = maps.length;
  const [H, W] = [maps[0].length, maps[0][0].length];
  const rowsOfVec = Array.from({ length: C }, (_, c) => vec.slice(c * H * W, (c + 1) * H * W));
  const scale = maxAbs(vec);
  const items = back
    ? [{ cols: H * W, rows: C }, { cols: W, rows: H }]
    : [{ cols: W, rows: H }, { cols: H * W, rows: C }];
  const places = layoutRow(ui, items, { gap: 48 });
  const vPlace = places[back ? 0 : 1];
  const mPlace = places[back ? 1 : 0];
  const vGrid = gridAt(vPlace, { values: rowsOfVec, maxAbs: scale }).render();
  const mGrids = maps.map((m) => gridAt(mPlace, { values: m, maxAbs: scale }).render());
  let cur = [0, 0, 0];

  ui.explain(t(back ? "flatten.explainBack" : "flatten.explain", { C, H, W, n: C * H * W }));
  ui.notes(t("flatten.notes"));

  function select(k) {
    const c = Math.floor(k / (H * W));
    const i = Math.floor((k % (H * W)) / W);
    const j = k % W;
    cur = [c, i, j];
    const v = vec[k];
    const parts = back
      ? [grad(sym("a", `prev ${c},${i},${j}`)), mo("="), grad(sym("a", k)), mo("="), mn(v, { role: "flat-value" })]
      : [sym("a", k), mo("="), sym("a", `prev ${c},${i},${j}`), mo("="), mn(v, { role: "flat-value" })];
    ui.formula(math(...parts), math(sym("k", ""), mo("="), mn(c), mo("·"), mn(H * W), mo("+"), mn(i), mo("·"),
      mn(W), mo("+"), mn(j), mo("="), mn(k)));
    Object.assign(ui.root.dataset, { f: String(c), i: String(i), j: String(j), k: String(k) });
  }

  function draw() {
    const [c, i, j] = cur;
    const g = ui.g;
    clear(ui);
    const m = mGrids[c];
    m.draw(g);
    m.outline(g, i, j, 1, 1, CONFIG.colors.focus, 3);
    vGrid.draw(g);
    vGrid.outline(g, c, 0, 1, H * W, CONFIG.colors.window, 2);
    vGrid.outline(g, c, i * W + j, 1, 1, CONFIG.colors.focus, 3);
    const mt = back ? t("flatten.gradMap", { c }) : t("flatten.map", { c });
    label(g, m, mt, `${C}×${H}×${W}`);
    label(g, vGrid, t(back ? "flatten.gradVec" : "flatten.vec"), t("flatten.vecSub", { n: C * H * W, C }));
    between(g, back ? vGrid : m, back ? m : vGrid, "→");
  }

  function hit(x, y) {
    const hv = vGrid.hit(x, y);
    if (hv) return hv[0] * H * W + hv[1];
    const hm = mGrids[cur[0]].hit(x, y);
    return hm ? cur[0] * H * W + hm[0] * W + hm[1] : null;
  }

  return { positions: C * H * W, select, draw, hit, grids: () => [vGrid, mGrids[cur[0]]] };
}
