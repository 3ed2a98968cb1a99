// Shared helpers of the animators: laying grids out in a row, labels, channel pickers.

import { CONFIG } from "../config.js";
import { t } from "../i18n.js";
import { fitCell, Grid } from "../views/heatmap.js";

export const LABEL_H = 34;

/**
 * Place items left to right in the canvas. Each item is {cols, rows} (a map sharing one cell size)
 * or {cols, rows, zoom: true} (a number grid with its own, larger cells). Returns [{x, y, cw, ch}].
 */
export function layoutRow(ui, items, { gap = 36, top = LABEL_H, bottom = 8, maxCell } = {}) {
  const availH = ui.height - top - bottom;
  const zoomCell = (it) => Math.max(18, Math.min(CONFIG.cell.zoom,
    Math.floor(availH / it.rows), Math.floor((ui.width * 0.17) / it.cols)));
  const zoomW = items.filter((it) => it.zoom).reduce((s, it) => s + it.cols * zoomCell(it), 0);
  const maps = items.filter((it) => !it.zoom);
  const mapCols = maps.reduce((s, it) => s + it.cols, 0);
  const maxRows = Math.max(1, ...maps.map((it) => it.rows));
  const availW = ui.width - zoomW - gap * (items.length - 1) - 16 - 40 * maps.length;
  const cell = maps.length ? fitCell(mapCols, maxRows, availW, availH, maxCell) : 0;
  // Tiny maps get big cells; their zoomed neighbours (kernels) then match them.
  const sizes = items.map((it) => (it.zoom ? Math.max(zoomCell(it), Math.min(cell, Math.floor(availH / it.rows))) : cell));
  const widths = items.map((it, k) => Math.max(it.cols * sizes[k], MIN_W));
  const total = widths.reduce((s, w) => s + w, 0) + gap * (items.length - 1);
  let x = Math.max(8, Math.floor((ui.width - total) / 2));
  return items.map((it, k) => {
    const place = { x, y: top, cw: sizes[k], ch: sizes[k], room: widths[k] + gap - 10 };
    x += widths[k] + gap;
    return place;
  });
}

const MIN_W = 120;

/**
 * One-row maps (short vectors) stacked vertically, so each gets the full width and big cells.
 * `right` pixels stay free on the right (e.g. for a plot). Returns [{x, y, cw, ch}].
 */
export function layoutColumn(ui, n, cols, { top = LABEL_H, gapY = 16, right = 0 } = {}) {
  const step = LABEL_H + gapY;
  const byH = Math.floor((ui.height - top - 8 - (n - 1) * step) / n);
  const byW = Math.floor((ui.width - right - 100) / cols);
  const cell = Math.max(CONFIG.cell.min, Math.min(64, byH, byW));
  const x = Math.max(60, Math.floor((ui.width - right - cols * cell) / 2));
  return Array.from({ length: n }, (_, k) => ({ x, y: top + k * (cell + step), cw: cell, ch: cell, room: cols * cell }));
}

/** A Grid built at a placement from layoutRow. */
export function gridAt(place, opts) {
  const g = new Grid({ ...opts, x: place.x, y: place.y, cw: place.cw, ch: place.ch });
  g.room = place.room;
  return g;
}

/** A two-line label above a grid: the name, then the shape or a value. */
export function label(g, grid, title, sub) {
  if (grid && !grid.title) grid.title = title;
  g.save();
  g.fillStyle = CONFIG.colors.text;
  g.font = `600 12px ${FONT_STACK}`;
  g.textAlign = "left";
  g.textBaseline = "alphabetic";
  const maxW = grid.room || Math.max(grid.width, 120);
  g.fillText(title, grid.x, grid.y - 19, maxW);
  if (sub) {
    g.fillStyle = "#475569";
    g.font = `11px ${FONT_STACK}`;
    g.fillText(sub, grid.x, grid.y - 6, maxW);
  }
  g.restore();
}

const FONT_STACK = 'system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", sans-serif';

/** An operator sign (⋆, =, →, …) centred between two grids. */
export function between(g, left, right, text) {
  const stacked = right.y >= left.y + left.height;
  const x = stacked ? left.x - 28 : (left.x + left.width + right.x) / 2;
  const y = stacked ? right.y + right.height / 2 : Math.min(left.y + left.height / 2, right.y + right.height / 2);
  g.save();
  g.fillStyle = "#334155";
  g.font = `600 18px ${FONT_STACK}`;
  g.textAlign = "center";
  g.textBaseline = "middle";
  g.fillText(text, x, y);
  g.restore();
}

/** A faint line from the middle of one rectangle to another (focus → result). */
export function link(g, x1, y1, x2, y2, color) {
  g.save();
  g.strokeStyle = color;
  g.globalAlpha = 0.55;
  g.setLineDash([4, 4]);
  g.lineWidth = 1.5;
  g.beginPath();
  g.moveTo(x1, y1);
  g.lineTo(x2, y2);
  g.stroke();
  g.restore();
}

/** A channel picker (only when there is more than one channel); keeps the choice in ui.selection. */
export function channelPicker(ui, key, labelKey, n) {
  const value = Math.min(ui.selection[key] ?? 0, n - 1);
  ui.selection[key] = value;
  if (n > 1) {
    const opts = Array.from({ length: n }, (_, i) => ({ value: i, label: String(i) }));
    ui.select(labelKey, opts, value, (v) => {
      ui.selection[key] = Number(v);
      ui.remount();
    });
  }
  return value;
}

/** Clear the canvas. */
export function clear(ui) {
  ui.g.clearRect(0, 0, ui.width, ui.height);
}

/** "[r, c]" in the learner's row/column terms. */
export function at(r, c) {
  return `[${r}, ${c}]`;
}

/** Whether a map is small enough to print every number. */
export function small(rows, cols) {
  return Math.max(rows, cols) <= CONFIG.numbersMaxSide;
}

export { t };

/** The maps of a tensor: C×H×W as is; a vector wrapped into rows of at most `wrap` cells. */
export function asMaps(a, wrap = 16) {
  if (!Array.isArray(a[0])) {
    const cols = Math.min(wrap, a.length);
    const rows = Math.ceil(a.length / cols);
    const m = Array.from({ length: rows }, (_, i) =>
      Array.from({ length: cols }, (_, j) => (i * cols + j < a.length ? a[i * cols + j] : null)));
    return { maps: [m], vector: true, n: a.length };
  }
  return { maps: a, vector: false, n: a[0].length * a[0][0].length };
}

/** Index text of cell p: "k" for vectors, "c,i,j" for maps. */
export function cellName(vector, ch, i, j, cols) {
  return vector ? String(i * cols + j) : `${ch},${i},${j}`;
}
