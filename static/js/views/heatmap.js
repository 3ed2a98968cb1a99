// Heatmaps on canvas: 1-pixel-per-cell images for the overview, and Grid, a pre-rendered map with
// padding, grid lines and (when the cells are big enough) every number, for the detail views.

import { CONFIG } from "../config.js";
import { fmt } from "../format.js";
import { lut, lutIndex, rgb, textColor } from "../math/colors.js";

export const FONT = 'system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", sans-serif';

/** Paint a 2-D map into `canvas` at one pixel per cell (CSS scales it, pixelated); null as 0. */
export function paintMap(canvas, map, maxAbs) {
  const h = map.length;
  const w = map[0].length;
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const data = img.data;
  const LUT = lut(); // rgb() without an array per cell: ~100 maps after every step
  for (let i = 0; i < h; i++) {
    const row = map[i];
    for (let j = 0; j < w; j++) {
      const v = row[j];
      const k = lutIndex(v === null ? 0 : v, maxAbs) * 3;
      const o = (i * w + j) * 4;
      data[o] = LUT[k];
      data[o + 1] = LUT[k + 1];
      data[o + 2] = LUT[k + 2];
      data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/**
 * A canvas of w×h CSS pixels (at the device pixel ratio) and its context, scaled to CSS pixels:
 * `reuse` (a canvas no longer shown, e.g. the previous position's window) when it has that size,
 * cleared, else a new one (creating a canvas and its context is most of what a small map costs).
 */
function offscreen(w, h, reuse = null) {
  const dpr = window.devicePixelRatio || 1;
  const [cw, ch] = [Math.max(1, Math.ceil(w * dpr)), Math.max(1, Math.ceil(h * dpr))];
  if (reuse && reuse.width === cw && reuse.height === ch) {
    const ctx = reuse.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, cw, ch);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [reuse, ctx];
  }
  const c = document.createElement("canvas");
  c.width = cw;
  c.height = ch;
  const ctx = c.getContext("2d");
  ctx.scale(dpr, dpr);
  return [c, ctx];
}

/**
 * A map drawn at (x, y) with cells of cw×ch pixels. `values` is the unpadded H×W map (or null for an
 * empty grid); `pad` = [ph, pw] cells drawn around it holding `padValue`; `extra` = [eh, ew] more
 * padding cells at the bottom/right (used to show cells no window reaches).
 * Coordinates (r, c) passed to the drawing methods are in the padded grid.
 */
export class Grid {
  constructor({ values, rows, cols, maxAbs, cw, ch, x = 0, y = 0, pad = [0, 0], extra = [0, 0],
    padValue = 0, numbers, empty = false }) {
    this.values = values;
    this.rows = values ? values.length : rows;
    this.cols = values ? values[0].length : cols;
    this.maxAbs = maxAbs;
    this.cw = cw;
    this.ch = ch ?? cw;
    this.x = x;
    this.y = y;
    this.pad = pad;
    this.extra = extra;
    this.padValue = padValue;
    this.prows = this.rows + 2 * pad[0] + extra[0];
    this.pcols = this.cols + 2 * pad[1] + extra[1];
    this.width = this.pcols * this.cw;
    this.height = this.prows * this.ch;
    this.numbers = numbers ?? Math.min(this.cw, this.ch) >= CONFIG.cell.numberMin;
    this.empty = empty;
    this.base = null;
  }

  /** Value at padded (r, c): interior values, or the padding value outside. */
  valueAt(r, c) {
    const i = r - this.pad[0];
    const j = c - this.pad[1];
    if (!this.values || i < 0 || j < 0 || i >= this.rows || j >= this.cols) return this.padValue;
    return this.values[i][j];
  }

  isPad(r, c) {
    const i = r - this.pad[0];
    const j = c - this.pad[1];
    return i < 0 || j < 0 || i >= this.rows || j >= this.cols;
  }

  /** Padded (r, c) under the page-independent canvas point (px, py), or null. */
  hit(px, py) {
    const c = Math.floor((px - this.x) / this.cw);
    const r = Math.floor((py - this.y) / this.ch);
    return r >= 0 && c >= 0 && r < this.prows && c < this.pcols ? [r, c] : null;
  }

  /** Paint the map once (draw() then blits it); `reuse`: a canvas of a grid no longer drawn. */
  render(reuse = null) {
    const [canvas, ctx] = offscreen(this.width, this.height, reuse);
    const { cw, ch } = this;
    const font = Math.max(8, Math.min(13, Math.floor(Math.min(cw / 3.3, ch / 2))));
    ctx.font = `${font}px ${FONT}`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (let r = 0; r < this.prows; r++) {
      for (let c = 0; c < this.pcols; c++) {
        const pad = this.isPad(r, c);
        const v = this.valueAt(r, c);
        ctx.fillStyle = this.empty ? CONFIG.colors.empty : pad ? CONFIG.colors.padding : rgbCss(v, this.maxAbs);
        ctx.fillRect(c * cw, r * ch, cw, ch);
        if (this.numbers && !this.empty) {
          ctx.fillStyle = pad ? CONFIG.colors.text : textColor(v, this.maxAbs);
          if (!fitText(ctx, v, cw - 1, font, c * cw + cw / 2, r * ch + ch / 2 + 0.5)) this.dropped = (this.dropped || 0) + 1;
        }
      }
    }
    if (Math.min(cw, ch) >= 5) {
      ctx.strokeStyle = CONFIG.colors.grid;
      ctx.lineWidth = 1;
      ctx.beginPath();
      // The last line sits inside the map, so the right and bottom borders are drawn too.
      for (let r = 0; r <= this.prows; r++) {
        const y = Math.min(r * ch + 0.5, this.height - 0.5);
        ctx.moveTo(0, y);
        ctx.lineTo(this.width, y);
      }
      for (let c = 0; c <= this.pcols; c++) {
        const x = Math.min(c * cw + 0.5, this.width - 0.5);
        ctx.moveTo(x, 0);
        ctx.lineTo(x, this.height);
      }
      ctx.stroke();
    }
    this.base = canvas;
    return this;
  }

  draw(ctx) {
    if (!this.base) this.render();
    ctx.drawImage(this.base, this.x, this.y, this.width, this.height);
  }

  /** Draw only the first `n` interior cells in row-major order; the rest as empty cells. */
  drawPartial(ctx, n, emptyGrid) {
    if (!this.base) this.render();
    emptyGrid.draw(ctx);
    const n1 = Math.max(0, Math.min(n, this.rows * this.cols));
    const full = Math.floor(n1 / this.cols);
    const rest = n1 % this.cols;
    const dpr = this.base.width / this.width;
    const [ox, oy] = [this.pad[1] * this.cw, this.pad[0] * this.ch];
    const blit = (sx, sy, w, h) => {
      if (w > 0 && h > 0) {
        ctx.drawImage(this.base, sx * dpr, sy * dpr, w * dpr, h * dpr, this.x + sx, this.y + sy, w, h);
      }
    };
    blit(ox, oy, this.cols * this.cw, full * this.ch);
    blit(ox, oy + full * this.ch, rest * this.cw, this.ch);
  }

  /** Stroke a rectangle around h×w padded cells starting at (r, c). */
  outline(ctx, r, c, h, w, color, lineWidth = 2) {
    ctx.strokeStyle = color;
    ctx.lineWidth = lineWidth;
    ctx.strokeRect(this.x + c * this.cw + 1, this.y + r * this.ch + 1, w * this.cw - 2, h * this.ch - 2);
  }

  /** Translucent fill over a list of padded [r, c] cells. */
  shade(ctx, cells, color, alpha = 0.35) {
    ctx.save();
    ctx.globalAlpha = alpha;
    ctx.fillStyle = color;
    for (const [r, c] of cells) ctx.fillRect(this.x + c * this.cw, this.y + r * this.ch, this.cw, this.ch);
    ctx.restore();
  }

  /** Cells that no window covers: a tint and diagonal hatching, so they differ from covered cells. */
  hatch(ctx, cells, color) {
    ctx.save();
    ctx.globalAlpha = 0.28;
    ctx.fillStyle = color;
    for (const [r, c] of cells) ctx.fillRect(this.x + c * this.cw, this.y + r * this.ch, this.cw, this.ch);
    ctx.globalAlpha = 0.9;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (const [r, c] of cells) {
      const x0 = this.x + c * this.cw;
      const y0 = this.y + r * this.ch;
      for (let k = 6; k < this.cw + this.ch; k += 8) {
        const a = Math.min(k, this.ch);
        const b = Math.max(0, k - this.ch);
        ctx.moveTo(x0 + b, y0 + a);
        ctx.lineTo(x0 + Math.min(k, this.cw), y0 + (k - Math.min(k, this.cw)));
      }
    }
    ctx.stroke();
    ctx.restore();
  }

  center(r, c) {
    return [this.x + (c + 0.5) * this.cw, this.y + (r + 0.5) * this.ch];
  }
}

/**
 * Write v centred at (x, y) in at most `room` pixels: fewer digits, then a compact exponent
 * ("−5e-3"), then a smaller font (down to 7 px). False when nothing fits (the cell stays a colour).
 */
function fitText(ctx, v, room, font, x, y) {
  const texts = [fmt(v), fmt(v, 2), fmt(v, 1)];
  // Then without the leading zero ("−.07", as compact tables print it) and as "−7e-2".
  if (v !== 0 && Number.isFinite(v)) texts.push(...texts.map((s) => s.replace(/^(\u2212?)0\./, "$1.")), compactExp(v));
  for (let size = font; size >= 7; size -= 1) {
    ctx.font = `${size}px ${FONT}`;
    for (const s of texts) {
      if (ctx.measureText(s).width <= room) {
        ctx.fillText(s, x, y);
        ctx.font = `${font}px ${FONT}`;
        return true;
      }
    }
  }
  ctx.font = `${font}px ${FONT}`;
  return false;
}

/** −0.004804 → "−5e-3": one significant digit in exponent form. */
function compactExp(v) {
  const s = v.toExponential(0).replace("e+", "e");
  return s.startsWith("-") ? "\u2212" + s.slice(1) : s;
}

const cssCache = new Map();
function rgbCss(v, maxAbs) {
  const key = lutIndex(v, maxAbs);
  let s = cssCache.get(key);
  if (!s) {
    const [r, g, b] = rgb(v, maxAbs);
    s = `rgb(${r},${g},${b})`;
    cssCache.set(key, s);
  }
  return s;
}

/** Cell size that fits `cols`×`rows` cells into w×h pixels, clamped to the configured range. */
export function fitCell(cols, rows, w, h, max = CONFIG.cell.max) {
  return Math.max(CONFIG.cell.min, Math.min(max, Math.floor(Math.min(w / cols, h / rows))));
}
